"""The tuning search's engine: grid cells fitted and scored on precomputed kernels, one Gram
matrix per (kernel, γ) shared by every C, class weight, calibration fold and halving rung
(:func:`agnlens.models.tuning.tune` drives it).

Successive halving (optional, Jamieson & Talwalkar 2016; the resource is the number of training
spectra, as in scikit-learn's ``HalvingGridSearchCV``): every cell is first fitted on a stratified
subset of ``n / HALVING_FACTOR^R`` training spectra and vote-scored on the whole validation split;
the leading ``1 / HALVING_FACTOR`` of the cells go on to a ``HALVING_FACTOR`` times larger subset,
and so on, the last rung being the whole training split. Subsets are nested and fixed by the seed.
libsvm's time grows faster than linearly with the number of spectra (at large C most of all), so the
cells that lose on a small subset cost little.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from agnlens.models.kernels import (
    fit_with_folds,
    gram,
    kernel_from_gram,
    precomputed_svc,
    rbf_from_distances,
    sq_distances,
    sqnorms,
)
from agnlens.models.svm import (
    calibration_folds,
    class_weights,
    fit_calibration,
    pair_structure,
    proba_from_pairwise,
)

log = logging.getLogger(__name__)

#: Successive halving: each rung keeps 1 / HALVING_FACTOR of the cells on HALVING_FACTOR x the spectra.
HALVING_FACTOR = 3
#: Fewest training spectra of the first halving rung (fewer rungs on small training sets; none below
#: HALVING_FACTOR x this). On the default simulated set a first rung of 238 spectra ranked the cells
#: too noisily (the best cell was dropped); 714 kept it.
HALVING_MIN_ROWS = 500


def _key(cw):
    return tuple(sorted(cw.items())) if isinstance(cw, dict) else cw


def _score(scoring: str, y_true, y_pred) -> float:
    if scoring == "macro_f1":
        return float(f1_score(y_true, y_pred, average="macro"))
    if scoring == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    return float(balanced_accuracy_score(y_true, y_pred))


class Search:
    """Grid cells evaluated on precomputed kernels, cached per (kernel, gamma).

    Stage 1 (:meth:`run`): every cell is fitted once on the training Gram matrix and scored by
    libsvm's one-vs-one vote on the validation block. Stage 2 (:meth:`refine`): the leading cells
    are calibrated exactly as the refitted :class:`SpectrumSVC` would be — Platt sigmoids on
    out-of-fold decision values from the same stratified folds (same seed), coupling — and scored
    by the argmax of their probabilities, i.e. by the model's own ``predict``.
    """

    def __init__(self, Xtr, ytr, Xva, yva, scoring, degree, coef0, calibration_cv, random_state, n_jobs,
                 halving: bool = False) -> None:
        self.n_jobs = n_jobs
        self.classes, self.ytr = np.unique(ytr, return_inverse=True)
        self.yva = np.searchsorted(self.classes, yva)
        self.yva[~np.isin(yva, self.classes)] = -1  # validation classes unseen in training never match
        self.scoring, self.degree, self.coef0 = scoring, degree, coef0
        self.G_tr = gram(Xtr, Xtr)
        self.G_va = gram(Xva, Xtr)
        self.n_tr = sqnorms(Xtr)
        self.n_va = sqnorms(Xva)
        self._D = None  # squared distances (train x train, validation x train), for rbf
        n_splits = calibration_folds(calibration_cv, self.ytr)
        self.folds = (
            list(StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(self.G_tr, self.ytr))
            if n_splits is not None
            else None
        )
        self.rows: list[dict] = []
        self.fits: dict[int, SVC] = {}  # stage-1 fits on the whole training split (row index -> SVC), for stage 2
        self.models: dict[int, tuple[SVC, np.ndarray]] = {}  # refined cells: (SVC, calibration)
        self.done: set = set()
        self.rungs = _rungs(self.ytr, random_state) if halving else [np.arange(self.ytr.size)]

    def kernels(self, kernel, gamma):
        """Training and validation kernel blocks, computed as :class:`SpectrumSVC` computes them."""
        if kernel == "linear":
            return self.G_tr, self.G_va
        if kernel == "poly":
            return (kernel_from_gram(self.G_tr, kernel, gamma, self.degree, self.coef0),
                    kernel_from_gram(self.G_va, kernel, gamma, self.degree, self.coef0))
        if self._D is None:
            self._D = (sq_distances(self.G_tr.copy(), self.n_tr, self.n_tr),
                       sq_distances(self.G_va.copy(), self.n_va, self.n_tr))
        return rbf_from_distances(self._D[0], gamma), rbf_from_distances(self._D[1], gamma)

    def _class_weight(self, cw):
        if isinstance(cw, dict):
            index = {c: i for i, c in enumerate(self.classes.tolist())}
            return {index[c]: float(w) for c, w in cw.items() if c in index}
        return cw

    def _svc(self, C, cw):
        return precomputed_svc(C, self._class_weight(cw))

    def _map(self, fn, items):
        # libsvm releases the GIL, so threads fit cells in parallel; results keep the input order
        if self.n_jobs > 1 and len(items) > 1:
            with ThreadPoolExecutor(self.n_jobs) as pool:
                return list(pool.map(fn, items))
        return [fn(item) for item in items]

    def run(self, kernel, gammas, Cs, class_weights_):
        """Stage 1: fit and vote-score every new cell (on the first halving rung's spectra)."""
        for gamma in gammas:
            todo = [(C, cw) for C in Cs for cw in class_weights_ if (kernel, gamma, C, _key(cw)) not in self.done]
            for C, cw in todo:
                self.done.add((kernel, gamma, C, _key(cw)))
                self.rows.append({
                    "kernel": kernel,
                    "C": float(C),
                    "gamma": None if kernel == "linear" else float(gamma),
                    "degree": self.degree if kernel == "poly" else None,
                    "class_weight": cw,
                })
            self._fit_vote(range(len(self.rows) - len(todo), len(self.rows)), 0)

    def halve(self, min_keep: int = 1) -> None:
        """Successive halving: promote the leading cells rung by rung up to the whole training split
        (the leading ``1 / HALVING_FACTOR^rung`` of the cells, but at least ``min_keep``)."""
        n_cells = len(self.rows)
        for rung in range(1, len(self.rungs)):
            previous = self.rungs[rung - 1].size
            order = sorted((i for i in range(n_cells) if self.rows[i]["n_train"] == previous),
                           key=lambda i: (-self.rows[i]["vote_score"], -self.rows[i]["validation_accuracy"], i))
            keep = order[: max(min_keep, -(-n_cells // HALVING_FACTOR**rung))]
            log.debug("halving rung %d: %d of %d cells on %d spectra", rung, len(keep), len(order),
                      self.rungs[rung].size)
            self._fit_vote(keep, rung)

    def _fit_vote(self, idx, rung: int) -> None:
        """Fit the cells ``idx`` on the spectra of halving rung ``rung`` and score libsvm's vote."""
        sub = self.rungs[rung]
        whole = rung == len(self.rungs) - 1
        groups: dict = {}
        for i in idx:
            groups.setdefault((self.rows[i]["kernel"], self.rows[i]["gamma"]), []).append(i)
        for (kernel, gamma), cells in groups.items():
            K_tr, K_va = self.kernels(kernel, gamma)
            if not whole:
                K_tr, K_va = K_tr[np.ix_(sub, sub)], K_va[:, sub]

            def cell(i, K_tr=K_tr, K_va=K_va):
                row = self.rows[i]
                t0 = time.perf_counter()
                svc = self._svc(row["C"], row["class_weight"]).fit(K_tr, self.ytr[sub])
                return svc, time.perf_counter() - t0, svc.predict(K_va)

            for i, (svc, fit_s, vote) in zip(cells, self._map(cell, cells)):
                f1 = float(f1_score(self.yva, vote, average="macro"))
                self.rows[i].update(
                    validation_f1=f1,
                    validation_accuracy=float(accuracy_score(self.yva, vote)),
                    validation_balanced_accuracy=float(balanced_accuracy_score(self.yva, vote)),
                    vote_f1=f1,
                    scored_by="vote",
                    n_train=int(sub.size),
                    n_support=int(svc.support_.size),
                    fit_s=fit_s,
                    vote_score=_score(self.scoring, self.yva, vote),
                    score=np.nan,
                )
                if whole:
                    self.fits[i] = svc
                log.debug("%s C=%g gamma=%s cw=%s on %d spectra: vote %.4f", kernel, self.rows[i]["C"], gamma,
                          self.rows[i]["class_weight"], sub.size, self.rows[i]["vote_score"])

    def refine(self, n_best: int | None) -> None:
        """Stage 2: calibrate and score by the model's own predict the ``n_best`` leading cells."""
        order = sorted(
            (i for i in range(len(self.rows)) if self.rows[i]["scored_by"] == "vote" and i in self.fits),
            key=lambda i: (-self.rows[i]["vote_score"], -self.rows[i]["validation_accuracy"], i),
        )
        n_refined = sum(r["scored_by"] == "calibrated" for r in self.rows)
        todo = order if n_best is None else order[: max(0, n_best - n_refined)]
        n_classes = self.classes.size
        groups: dict = {}
        for i in todo:
            groups.setdefault((self.rows[i]["kernel"], self.rows[i]["gamma"]), []).append(i)
        for (kernel, gamma), idx in groups.items():
            K_tr, K_va = self.kernels(kernel, gamma)
            inner = self.n_jobs if len(idx) == 1 else 1  # a lone cell fits its folds in parallel instead

            def cell(i, K_tr=K_tr, K_va=K_va, inner=inner):
                row = self.rows[i]
                cw = self._class_weight(row["class_weight"])
                full, f_cal = fit_with_folds(K_tr, self.ytr, row["C"], cw, self.folds, n_jobs=inner,
                                             full=self.fits.pop(i))
                pairs = pair_structure(full.dual_coef_, full.n_support_)[0]
                if f_cal is None:
                    f_cal = full.decision_function(K_tr).reshape(K_tr.shape[0], -1)
                cal = fit_calibration(f_cal, self.ytr, pairs, class_weights(cw, self.ytr, n_classes))
                f_va = full.decision_function(K_va).reshape(K_va.shape[0], -1)
                return np.argmax(proba_from_pairwise(f_va, cal, pairs, n_classes), axis=1), full, cal

            for i, (pred, full, cal) in zip(idx, self._map(cell, idx)):
                self.models[i] = (full, cal)
                self.rows[i].update(
                    validation_f1=float(f1_score(self.yva, pred, average="macro")),
                    validation_accuracy=float(accuracy_score(self.yva, pred)),
                    validation_balanced_accuracy=float(balanced_accuracy_score(self.yva, pred)),
                    scored_by="calibrated",
                    score=_score(self.scoring, self.yva, pred),
                )

    def best(self, calibrated: bool) -> dict:
        """Best cell by the calibrated score (or, before refining, by the vote); ties to the earliest."""
        key = "score" if calibrated else "vote_score"
        acc = "validation_accuracy"
        cand = [i for i in range(len(self.rows)) if not calibrated or self.rows[i]["scored_by"] == "calibrated"]
        return self.rows[min(cand, key=lambda i: (-self.rows[i][key], -self.rows[i][acc], i))]


def _rungs(y: np.ndarray, random_state) -> list[np.ndarray]:
    """Nested stratified subsets of the training rows, smallest first, the last being all rows.

    Rung ``r`` of ``R`` holds about ``n / HALVING_FACTOR^(R - r)`` rows, every class in proportion
    (each class's rows in one seeded random order, the first ones taken); ``R`` is the largest with
    at least ``HALVING_MIN_ROWS`` rows in the first rung.
    """
    n = y.size
    n_rungs = 1
    while n / HALVING_FACTOR**n_rungs >= HALVING_MIN_ROWS:
        n_rungs += 1
    rng = np.random.default_rng(random_state)
    orders = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    rungs = []
    for r in range(n_rungs - 1, 0, -1):
        share = HALVING_FACTOR**-r
        rungs.append(np.sort(np.concatenate([o[: max(2, round(share * o.size))] for o in orders])))
    return rungs + [np.arange(n)]
