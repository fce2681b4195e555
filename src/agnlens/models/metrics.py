"""Classification scores with bootstrap confidence intervals (test sets are small).

Everything is computed from confusion matrices, so that the bootstrap is one vectorised
``bincount`` over all resamples at once. The keys follow ``docs/results-layout.md``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def _confusions(t: np.ndarray, p: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Confusion matrices (rows true, columns predicted); ``rows`` (n_boot, n) resample indices."""
    if rows is None:
        return np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    n_boot = rows.shape[0]
    codes = (np.arange(n_boot)[:, None] * (k * k) + t[rows] * k + p[rows]).ravel()
    return np.bincount(codes, minlength=n_boot * k * k).reshape(n_boot, k, k)


def _scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class and macro scores of confusion matrices of shape (..., k, k); 0 where undefined."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    true = cm.sum(axis=-1).astype(np.float64)
    pred = cm.sum(axis=-2).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred > 0, tp / pred, 0.0)
        recall = np.where(true > 0, tp / true, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2.0 * precision * recall / denom, 0.0)
        total = true.sum(axis=-1)
        accuracy = tp.sum(axis=-1) / total
        present = true > 0
        balanced = np.where(present, recall, 0.0).sum(axis=-1) / present.sum(axis=-1)
    return {
        "precision_k": precision,
        "recall_k": recall,
        "f1_k": f1,
        "precision": precision.mean(axis=-1),
        "recall": recall.mean(axis=-1),
        "f1": f1.mean(axis=-1),
        "accuracy": accuracy,
        "balanced_accuracy": balanced,
    }


def evaluate(y_true, y_pred, proba, classes, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Scores of a classifier on one split, with bootstrap 95 % intervals.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted labels (values of ``classes``).
    proba : array-like of shape (n, n_classes) or None
        Predicted probabilities, columns in ``classes`` order (for ROC AUC; None skips it).
    classes : sequence
        Class labels, in the order of ``proba``'s columns and of the confusion matrix.
    n_boot : int
        Bootstrap resamples (0: no intervals).
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``f1``, ``precision``, ``recall`` (macro averages over ``classes``; a class never
        predicted has precision 0), ``accuracy``, ``balanced_accuracy`` (mean recall over classes
        present in ``y_true``), ``roc_auc`` (binary: AUC of ``proba[:, 1]``; multiclass: macro
        one-vs-rest; None when fewer than two classes are present), ``confusion_matrix`` (list
        of lists, rows true, columns predicted, in ``classes`` order), ``per_class``
        ({class: {precision, recall, f1, support}}), ``n``, and when ``n_boot > 0`` the percentile
        intervals ``f1_ci95``, ``precision_ci95``, ``recall_ci95``, ``accuracy_ci95`` as
        ``[lo, hi]`` and ``n_boot``.
    """
    classes = list(classes)
    k = len(classes)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(
            f"evaluate: y_true and y_pred must be non-empty 1-D arrays of one length, got shapes "
            f"{y_true.shape} and {y_pred.shape}"
        )
    if k < 2 or len(set(classes)) != k:
        raise ValueError(f"evaluate: classes must list at least two distinct labels, got {classes}")
    lookup = {c: i for i, c in enumerate(classes)}
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        unknown = sorted({str(v) for v in np.unique(arr) if v not in lookup})
        if unknown:
            raise ValueError(f"evaluate: {name} holds labels {unknown} that are not in classes {classes}")
    t = np.array([lookup[v] for v in y_true.tolist()], dtype=np.int64)
    p = np.array([lookup[v] for v in y_pred.tolist()], dtype=np.int64)
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"evaluate: n_boot must be a non-negative integer, got {n_boot!r}")

    cm = _confusions(t, p, k)
    s = _scores(cm)
    out: dict = {
        "n": int(t.size),
        "f1": float(s["f1"]),
        "precision": float(s["precision"]),
        "recall": float(s["recall"]),
        "accuracy": float(s["accuracy"]),
        "balanced_accuracy": float(s["balanced_accuracy"]),
        "roc_auc": _roc_auc(t, proba, k),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            str(c): {
                "precision": float(s["precision_k"][i]),
                "recall": float(s["recall_k"][i]),
                "f1": float(s["f1_k"][i]),
                "support": int(cm[i].sum()),
            }
            for i, c in enumerate(classes)
        },
    }
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, t.size, size=(int(n_boot), t.size))
        b = _scores(_confusions(t, p, k, rows))
        for key in ("f1", "precision", "recall", "accuracy"):
            lo, hi = np.percentile(b[key], [2.5, 97.5])
            out[f"{key}_ci95"] = [float(lo), float(hi)]
        out["n_boot"] = int(n_boot)
    return out


def _roc_auc(t: np.ndarray, proba, k: int) -> float | None:
    if proba is None:
        return None
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (t.size, k):
        raise ValueError(f"evaluate: proba must have shape (n, n_classes) = ({t.size}, {k}), got {proba.shape}")
    present = np.unique(t)
    if present.size < 2:
        return None
    if k == 2:
        return float(roc_auc_score(t == 1, proba[:, 1]))
    # macro one-vs-rest over the classes present in y_true
    return float(np.mean([roc_auc_score(t == c, proba[:, c]) for c in present]))
