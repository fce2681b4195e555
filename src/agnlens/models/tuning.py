"""Stratified splits and a fast hyper-parameter search on a validation split.

The search reuses kernel matrices: for every (kernel, gamma) one Gram matrix of the training
spectra and one cross block (validation x training) are computed with BLAS, then every C and
class-weight value is fitted by ``sklearn.svm.SVC(kernel="precomputed")`` and scored on the
validation block. Ranges are scaled to the data (gamma around scikit-learn's "scale" value) and a
range whose edge wins is widened once in that direction. The test split is never touched here.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from agnlens.classes import TASK_CLASSES
from agnlens.models.search import Search
from agnlens.models.svm import (
    KERNELS,
    SpectrumSVC,
)

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
SCORINGS = ("macro_f1", "accuracy", "balanced_accuracy")
#: Fewest spectra of a class that a stratified 64/16/20 split can put in every part.
MIN_PER_CLASS = 5
#: Fewest usable spectra (labelled with a class of the task) :func:`train` accepts.
MIN_SPECTRA = 20

#: Default C grid, log-spaced.
DEFAULT_C = tuple(10.0 ** np.arange(-3, 3))
#: Default gamma grid, as multiples of 1 / (n_features * Var(X_train)).
DEFAULT_GAMMA_FACTORS = tuple(10.0 ** np.arange(-2, 3))
#: How many grid steps (one decade each on the default grids) a winning edge is extended by.
WIDEN_DECADES = 2


def split(labels, *, fractions=(0.64, 0.16, 0.20), seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified train / validation / test split, fixed by a seed.

    Every class is shuffled with ``numpy.random.default_rng(seed)`` and cut in the given
    fractions (largest-remainder rounding, so the parts add up to the class size).

    Parameters
    ----------
    labels : array-like of shape (n_spectra,)
    fractions : (float, float, float)
        Shares of train, validation and test; positive, summing to 1.
    seed : int

    Returns
    -------
    dict
        ``{"train": idx, "validation": idx, "test": idx}``, sorted integer index arrays that
        partition ``range(n_spectra)``.
    """
    labels = np.asarray(labels)
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or np.any(fr <= 0) or not np.isclose(fr.sum(), 1.0):
        raise ValueError(
            f"split: fractions must be three positive shares (train, validation, test) summing to 1, got {fractions!r}"
        )
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"split: labels must be a non-empty 1-D array, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {name: [] for name in SPLIT_NAMES}
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        exact = fr * idx.size
        counts = np.floor(exact).astype(int)
        for k in np.argsort(-(exact - counts), kind="stable")[: idx.size - counts.sum()]:
            counts[k] += 1
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for k, name in enumerate(SPLIT_NAMES):
            parts[name].append(idx[bounds[k] : bounds[k + 1]])
    return {name: np.sort(np.concatenate(p)).astype(np.int64) for name, p in parts.items()}


@dataclass
class TuningResult:
    """Outcome of :func:`tune`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (kernel, C, gamma, class_weight): kernel, C, gamma, degree, class_weight,
        validation_f1, validation_accuracy, validation_balanced_accuracy, vote_f1, scored_by,
        n_train (training spectra of the cell's last fit: fewer for cells dropped by halving),
        n_support, fit_s (the SVM fit), best. ``validation_*`` are the scores of the cell's
        calibrated model exactly as :meth:`SpectrumSVC.predict` would give them when ``scored_by``
        is ``"calibrated"``, else of libsvm's one-vs-one vote (``scored_by = "vote"``);
        ``vote_f1`` is the vote's macro F1 for every cell.
    best_params : dict
        kernel, C, gamma (None for linear), degree (None unless poly), class_weight.
    best_estimator : SpectrumSVC
        The best cell fitted (with probability calibration) on the training split: the search's
        own fit, identical to ``SpectrumSVC(**best_params, ...).fit`` on the training split.
    widened : list of str
        Notes on ranges widened because their edge won.
    scoring : str
    tuning_s : float
        Wall time of the search.
    """

    table: pd.DataFrame
    best_params: dict
    best_estimator: SpectrumSVC
    widened: list[str] = field(default_factory=list)
    scoring: str = "macro_f1"
    tuning_s: float = 0.0


def _n_jobs(n_jobs) -> int:
    if n_jobs is None:
        return max(1, os.cpu_count() or 1)
    if not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ValueError(f"tune: n_jobs must be a positive integer or None, got {n_jobs!r}")
    return int(n_jobs)


def tune(
    X,
    y,
    *,
    train_idx,
    val_idx,
    kernels=("linear", "rbf", "poly"),
    C=None,
    gamma=None,
    class_weight=(None, "balanced"),
    scoring: str = "macro_f1",
    standardize: bool = False,
    degree: int = 3,
    coef0: float = 0.0,
    calibration_cv: int | None = 5,
    refine: int | None = 8,
    halving: bool = False,
    random_state: int | None = 0,
    n_jobs: int | None = None,
) -> TuningResult:
    """Search kernel, C, gamma and class weight on a validation split; refit the best on train.

    Parameters
    ----------
    X : array-like of shape (n_spectra, n_features)
    y : array-like of shape (n_spectra,)
        Labels; only ``y[train_idx]`` and ``y[val_idx]`` are used.
    train_idx, val_idx : array-like of int
        Rows of the training and validation splits (the test split is not touched).
    kernels : sequence of {"linear", "rbf", "poly"}
    C : sequence of float, optional
        Default ``10^-3 .. 10^2`` (one per decade).
    gamma : sequence of float, optional
        Used by rbf. Default ``gamma0 * 10^-2 .. 10^2`` with ``gamma0 = 1 / (n_features *
        Var(X_train))`` (scikit-learn's "scale"). The polynomial kernel uses ``gamma0`` only: with
        ``coef0 = 0`` its gamma merely rescales C.
    class_weight : sequence of {None, "balanced"} or dicts
    scoring : {"macro_f1", "accuracy", "balanced_accuracy"}
        Validation score that picks the best cell.
    standardize : bool
        Standardise features (fitted on the training split) before the kernels, and in the
        refitted model.
    degree, coef0 : polynomial kernel parameters.
    calibration_cv : int or None
        Calibration folds of the refined cells and of the refitted model (see :class:`SpectrumSVC`).
    refine : int or None
        How many leading cells (by the vote score) are calibrated and re-scored by the model's own
        ``predict``; the best of them wins. None: all cells (exact, ~6x slower).
    halving : bool
        Successive halving over the training spectra (:mod:`agnlens.models.search`): cells are
        first fitted on a stratified third, ninth, ... of the training split and only the leading
        third of them (but at least ``refine``) goes on to the next rung; ``refine`` then picks among
        the cells of the last rung (the whole split). Range widening is decided on the first rung's
        scores. Off: every cell is fitted on the whole split.
    random_state : int or None
        Seed of the calibration folds.
    n_jobs : int or None
        Threads fitting cells in parallel (None: all cores). Results do not depend on it.

    Returns
    -------
    TuningResult

    Notes
    -----
    The search has two stages. Every cell is fitted once on the precomputed training kernel and
    scored by libsvm's vote on the validation block (``scored_by = "vote"``). The ``refine``
    leading cells are then calibrated (out-of-fold Platt sigmoids on sub-blocks of the same kernel,
    folds as in :class:`SpectrumSVC`) and re-scored by the argmax of their probabilities
    (``scored_by = "calibrated"``); the best calibrated cell wins, and its validation scores are
    exactly those of the refitted model's own ``predict``. If the best vote cell sits on the
    edge of the C or gamma range (of its kernel), that range is extended by ``WIDEN_DECADES``
    grid steps in that direction, once, and the search goes on; the notes say so.
    """
    if scoring not in SCORINGS:
        raise ValueError(f"tune: scoring must be one of {SCORINGS}, got {scoring!r}")
    if refine is not None and (not isinstance(refine, (int, np.integer)) or refine < 1):
        raise ValueError(f"tune: refine must be a positive integer or None (all cells), got {refine!r}")
    kernels = tuple(kernels)
    bad = [k for k in kernels if k not in KERNELS]
    if not kernels or bad:
        raise ValueError(f"tune: kernels must be a non-empty subset of {KERNELS}, got {list(kernels)}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    val_idx = np.asarray(val_idx, dtype=np.int64)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"tune: X must be 2-D with one row per label, got X {X.shape} and y {y.shape}")
    if train_idx.size == 0 or val_idx.size == 0:
        raise ValueError("tune: train_idx and val_idx must both be non-empty (see agnlens.models.tuning.split)")
    if np.intersect1d(train_idx, val_idx).size:
        raise ValueError("tune: train_idx and val_idx overlap; the validation spectra must not be trained on")
    ytr, yva = y[train_idx], y[val_idx]
    if np.unique(ytr).size < 2:
        raise ValueError(f"tune: the training split holds fewer than two classes ({np.unique(ytr).tolist()})")
    t_start = time.perf_counter()
    Xtr, Xva = X[train_idx], X[val_idx]
    if standardize:
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xva = scaler.transform(Xtr), scaler.transform(Xva)
    var = Xtr.var()
    gamma0 = 1.0 / (Xtr.shape[1] * var) if var > 0 else 1.0
    Cs = sorted(float(c) for c in (DEFAULT_C if C is None else C))
    gammas = sorted(float(g) for g in (np.multiply(gamma0, DEFAULT_GAMMA_FACTORS) if gamma is None else gamma))
    if not Cs or min(Cs) <= 0 or not gammas or min(gammas) <= 0:
        raise ValueError(f"tune: C and gamma values must be positive, got C={C!r}, gamma={gamma!r}")
    class_weights = list(class_weight)
    ranges = {k: {"C": list(Cs), "gamma": list(gammas) if k == "rbf" else [gamma0]} for k in kernels}
    search = Search(Xtr, ytr, Xva, yva, scoring, degree, coef0, calibration_cv, random_state, _n_jobs(n_jobs),
                     halving=halving)
    for k in kernels:
        search.run(k, ranges[k]["gamma"], ranges[k]["C"], class_weights)

    widened: list[str] = []
    done_dirs: set = set()
    while True:
        best = search.best(calibrated=False)
        k = best["kernel"]
        grew = False
        for name, value in (("C", best["C"]), ("gamma", best["gamma"])):
            if value is None or (name == "gamma" and k != "rbf"):
                continue
            values = ranges[k][name]
            if len(values) < 2:
                continue
            for side, edge in (("low", values[0]), ("high", values[-1])):
                if not np.isclose(value, edge) or (k, name, side) in done_dirs:
                    continue
                done_dirs.add((k, name, side))
                step = values[1] / values[0] if side == "low" else values[-1] / values[-2]
                new = [edge * step ** (i if side == "high" else -i) for i in range(1, WIDEN_DECADES + 1)]
                ranges[k][name] = sorted(values + new)
                widened.append(
                    f"{k}: best {name}={value:.3g} sat at the {side} edge; range widened to "
                    f"{min(ranges[k][name]):.3g}..{max(ranges[k][name]):.3g}"
                )
                log.info("%s", widened[-1])
                grew = True
        if not grew:
            break
        search.run(k, ranges[k]["gamma"], ranges[k]["C"], class_weights)
    search.halve(min_keep=refine or 1)
    search.refine(refine)
    best = search.best(calibrated=True)
    for name, side in (("C", "low"), ("C", "high"), ("gamma", "low"), ("gamma", "high")):
        values = ranges[best["kernel"]][name]
        v = best[name]
        if v is not None and len(values) > 1 and np.isclose(v, values[0 if side == "low" else -1]) and (
            best["kernel"], name, side) in done_dirs:
            widened.append(f"{best['kernel']}: best {name}={v:.3g} still at the {side} edge after widening")
    tuning_s = time.perf_counter() - t_start

    table = pd.DataFrame(search.rows)
    table["best"] = False
    table.loc[search.rows.index(best), "best"] = True
    table = table.drop(columns=["score", "vote_score"])
    best_params = {
        "kernel": best["kernel"],
        "C": best["C"],
        "gamma": best["gamma"],
        "degree": best["degree"],
        "class_weight": best["class_weight"],
    }
    # the search fitted and calibrated the best cell exactly as SpectrumSVC.fit would: adopt, not refit
    estimator = SpectrumSVC(
        kernel=best["kernel"],
        C=best["C"],
        gamma=best["gamma"] if best["gamma"] is not None else "scale",
        degree=degree,
        coef0=coef0,
        class_weight=best["class_weight"],
        standardize=standardize,
        calibration_cv=calibration_cv,
        random_state=random_state,
    ).adopt_fit(X[train_idx], ytr, *search.models[search.rows.index(best)])
    log.info(
        "best of %d cells: %s (validation %s %.4f) in %.1f s",
        len(table), best_params, scoring, best["score"], tuning_s,
    )
    return TuningResult(
        table=table,
        best_params=best_params,
        best_estimator=estimator,
        widened=widened,
        scoring=scoring,
        tuning_s=tuning_s,
    )




@dataclass
class TrainResult:
    """Outcome of :func:`train`: the tuned model, its scores and everything a model file carries.

    Attributes
    ----------
    model : SpectrumSVC
    tuning : TuningResult
    split : dict of str to ndarray
        Row indices (into the spectra given to :func:`train`) of train, validation and test.
    validation, test : dict
        :func:`agnlens.models.metrics.evaluate` of the model's ``predict`` on each split.
    metadata : dict
        For :func:`agnlens.models.persistence.save_model`.
    """

    model: SpectrumSVC
    tuning: TuningResult
    split: dict
    validation: dict
    test: dict
    metadata: dict


def train(
    spectra,
    *,
    task: str = "multiclass",
    seed: int = 0,
    fractions=(0.64, 0.16, 0.20),
    kernels=("linear", "rbf", "poly"),
    n_boot: int = 1000,
    n_jobs: int | None = None,
    halving: bool = False,
) -> TrainResult:
    """Split, tune on validation, score once on test: the study's training protocol.

    Parameters
    ----------
    spectra : SpectrumSet
        Labelled spectra on one grid (labels ``type1``, ``type2``, ``intermediate``; others and
        unlabelled spectra are left out; the binary task also leaves intermediates out).
    task : {"binary", "multiclass"}
    seed : int
        Seed of the split and of the calibration folds.
    fractions : (float, float, float)
        Train, validation, test shares.
    kernels : sequence of str
    n_boot : int
        Bootstrap resamples for the test intervals.
    n_jobs : int or None
    halving : bool
        Tune by successive halving over the training spectra (see :func:`tune`): several times
        faster on large grids; the chosen cell can differ from the full search's.

    Returns
    -------
    TrainResult
    """
    from agnlens.models.domain import TrainingDomain
    from agnlens.models.metrics import evaluate
    from agnlens.models.persistence import training_data_hash, training_range

    if task not in TASK_CLASSES:
        raise ValueError(f"train: task must be one of {sorted(TASK_CLASSES)}, got {task!r}")
    classes = TASK_CLASSES[task]
    labels = spectra.labels
    keep = np.flatnonzero(np.isin(labels, classes))
    counts = {c: int(np.sum(labels[keep] == c)) for c in classes}
    scarce = [c for c, k in counts.items() if k < MIN_PER_CLASS]
    if keep.size < MIN_SPECTRA or scarce:
        left_out = len(labels) - keep.size
        raise ValueError(
            f"train: the {task} task needs at least {MIN_SPECTRA} usable spectra (labelled "
            f"{', '.join(classes)}) and at least {MIN_PER_CLASS} of every class for a stratified "
            f"train/validation/test split; got {keep.size} with counts {counts}"
            + (f" ({left_out} more unlabelled or of another class, left out)" if left_out else "")
            + f" — add labelled spectra{' of ' + ', '.join(scarce) if scarce else ''} (labels come from "
            "agnlens ingest --labels; simulated ones: agnlens simulate --fits-dir sim/, then agnlens ingest "
            "sim/ --labels sim/labels.csv --append --out STORE)"
        )
    X = np.asarray(spectra.flux[keep], dtype=np.float64)
    y = labels[keep]
    if not np.all(np.isfinite(X)):
        raise ValueError("train: the flux holds NaN or infinite values; re-ingest the spectra with agnlens ingest")
    parts = split(y, fractions=fractions, seed=seed)
    result = tune(X, y, train_idx=parts["train"], val_idx=parts["validation"], kernels=kernels,
                  random_state=seed, n_jobs=n_jobs, halving=halving)
    model = result.best_estimator
    # what the training spectra look like, for the applicability check (thresholds on validation)
    model.training_domain_ = TrainingDomain().fit(X[parts["train"]], X[parts["validation"]])
    # the redshifts and S/N it has seen, for the z-out-of-range check
    model.training_range_ = training_range(spectra.meta.iloc[keep[parts["train"]]])
    scores = {}
    for name in ("validation", "test"):
        idx = parts[name]
        proba = model.predict_proba(X[idx])
        pred = model.classes_[np.argmax(proba, axis=1)]
        scores[name] = evaluate(y[idx], pred, proba, list(model.classes_), n_boot=0 if name == "validation" else n_boot,
                                seed=seed)
    metadata = {
        "task": task,
        "grid": spectra.grid.to_dict(),
        "preprocessing": {k: v for k, v in spectra.provenance.items() if k != "grid"},
        "simulated": bool(spectra.simulated),
        "split_seed": int(seed),
        "split_fractions": list(fractions),
        "split_sizes": {k: int(len(v)) for k, v in parts.items()},
        "data_hash": training_data_hash(spectra.flux[keep], y),
        "training_range": model.training_range_,
        "n_spectra": int(keep.size),
        "best_params": result.best_params,
        "tuning": result.table.to_dict(orient="records"),
        "tuning_widened": result.widened,
        "tuning_s": result.tuning_s,
        "validation": scores["validation"],
        "test": scores["test"],
    }
    log.info("%s: validation F1 %.3f, test F1 %.3f", task, scores["validation"]["f1"], scores["test"]["f1"])
    return TrainResult(model, result, {k: keep[v] for k, v in parts.items()}, scores["validation"], scores["test"],
                       metadata)
