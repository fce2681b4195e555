"""Fitting a probability model: ``SpectrumSVC.fit`` vs ``SVC(probability=True).fit``, and the
quality of the probabilities.

Both fit the RBF model of ``bench_predict`` (same ``C``, same ``gamma``) on the training split of
the default simulated set (3,346 spectra × 1,000 px, three-class; 600 with ``--quick``); both
calibrate on 5 internal folds. The probabilities of each are scored on the test split (never seen
by either fit): log loss, Brier score and the expected calibration error (ECE, 10 equal-width bins
of the top-class probability; the reliability curve is in the note), plus the share of spectra
whose ``predict`` is not the most probable class (agnlens: 0 by construction).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

#: Bins of the reliability curve / ECE.
N_BINS = 10


def reliability(proba: np.ndarray, y_idx: np.ndarray, n_bins: int = N_BINS) -> tuple[float, list]:
    """Expected calibration error and the reliability curve of the top-class probability.

    Returns
    -------
    ece : float
        ``sum_b (n_b / n) |accuracy_b - confidence_b|`` over equal-width bins of the top probability.
    curve : list of (confidence, accuracy, count)
        One entry per non-empty bin.
    """
    conf = proba.max(axis=1)
    hit = proba.argmax(axis=1) == y_idx
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece, curve = 0.0, []
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
            curve.append((float(conf[sel].mean()), float(hit[sel].mean()), int(sel.sum())))
    return float(ece), curve


def quality(proba: np.ndarray, y_idx: np.ndarray) -> dict:
    """Log loss, Brier score and ECE of probabilities against class indices."""
    from sklearn.metrics import log_loss

    onehot = np.eye(proba.shape[1])[y_idx]
    ece, curve = reliability(proba, y_idx)
    return {"log_loss": float(log_loss(y_idx, proba, labels=np.arange(proba.shape[1]))),
            "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))), "ece": ece, "curve": curve}


def run(quick: bool = False) -> list[dict]:
    from bench_predict import C_RBF, problem, sklearn_svc

    from agnlens.models.svm import SpectrumSVC

    X, y, parts, _ = problem(quick)
    tr, te = parts["train"], parts["test"]
    fit_ours, fit_peer = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        ours = SpectrumSVC(kernel="rbf", C=C_RBF, gamma="scale", calibration_cv=5, random_state=0).fit(X[tr], y[tr])
        fit_ours.append(time.perf_counter() - t0)
    for _ in range(1 if not quick else 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            t0 = time.perf_counter()
            peer = sklearn_svc(kernel="rbf", C=C_RBF, gamma=ours.gamma_).fit(X[tr], y[tr])
            fit_peer.append(time.perf_counter() - t0)
            p_peer = peer.predict_proba(X[te])
            disagree_peer = float(np.mean(peer.classes_[p_peer.argmax(axis=1)] != peer.predict(X[te])))
    p_ours = ours.predict_proba(X[te])
    disagree_ours = float(np.mean(ours.classes_[p_ours.argmax(axis=1)] != ours.predict(X[te])))
    y_idx = np.searchsorted(ours.classes_, y[te])
    q_ours, q_peer = quality(p_ours, y_idx), quality(p_peer, y_idx)
    t_ours, t_peer = min(fit_ours), min(fit_peer)
    curve = lambda q: " ".join(f"{c:.2f}:{a:.2f}({k})" for c, a, k in q["curve"])  # noqa: E731
    n, d = X.shape
    return [dict(
        benchmark=f"fit with probabilities, {tr.size} × {d} px, RBF C={C_RBF}, 5 calibration folds "
                  f"(test log loss agnlens {q_ours['log_loss']:.4f}, sklearn {q_peer['log_loss']:.4f}; "
                  f"ECE {q_ours['ece']:.4f} vs {q_peer['ece']:.4f})",
        ours=t_ours, peer=t_peer, peer_name="sklearn SVC(probability=True).fit", unit="s", ratio=t_peer / t_ours,
        note=f"agnlens fits {', '.join(f'{t:.2f}' for t in fit_ours)} s, "
             f"sklearn {', '.join(f'{t:.2f}' for t in fit_peer)} s; "
             f"test split {te.size} spectra: Brier agnlens {q_ours['brier']:.4f}, sklearn {q_peer['brier']:.4f}; "
             f"predict != argmax(predict_proba): agnlens {disagree_ours:.2%}, sklearn {disagree_peer:.2%}; "
             f"reliability (confidence:accuracy(count)) agnlens {curve(q_ours)}; sklearn {curve(q_peer)}",
    )]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
