"""The reproducibility contract of ``docs/reproducing.md``, as the comparisons the tests share.

Bitwise equality is promised only for the same machine, BLAS thread count and chunk size (and not
for the line fits, see below). Across executors (this process vs Dask workers, which run one BLAS
thread), BLAS thread counts, chunk sizes and CPU kinds the same model file gives:

* probabilities within :data:`PROBA_ATOL` (absolute: they are at most 1);
* the applicability diagnostics (``max_kernel``, ``intercept_share``, ``pca_residual``,
  ``mahalanobis``) within :data:`DIAGNOSTIC_RTOL` relative;
* the narrow-line offsets (``z_offset_kms``, ``z_offset_err_kms``: iterative least-squares fits that
  stop at a relative change of 1.5e-8, and whose last bits follow memory alignment even on one
  machine) within :data:`LINE_FIT_RTOL` relative;
* saliency maps within :data:`SALIENCY_RTOL` of each spectrum's largest absolute value;
* the predicted label and the flags identical, except where a value lies within its tolerance of a
  threshold (the two largest probabilities, ``max_kernel`` at the collapse threshold...): there the
  outcome is a coin toss at the last bits, and either answer keeps the contract.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Probabilities, absolute.
PROBA_ATOL = 1e-12
#: max_kernel, intercept_share, pca_residual, mahalanobis, relative.
DIAGNOSTIC_RTOL = 1e-10
#: z_offset_kms, z_offset_err_kms, relative.
LINE_FIT_RTOL = 1e-6
#: Saliency, relative to each spectrum's largest absolute value (float32 maps: a few of their ulps).
SALIENCY_RTOL = 1e-6

DIAGNOSTICS = ("max_kernel", "intercept_share", "pca_residual", "mahalanobis")
LINE_FITS = ("z_offset_kms", "z_offset_err_kms")


def _close(a, b, rtol: float, atol: float = 0.0) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore"):
        return both_nan | (np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b)) + atol)


def _near(values, threshold: float, rtol: float) -> np.ndarray:
    """Rows whose value lies within ``rtol`` (relative) of ``threshold``."""
    v = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.abs(v - threshold) <= rtol * np.maximum(np.abs(v), abs(threshold))


def _at_a_threshold(a: pd.DataFrame, b: pd.DataFrame, model) -> dict[str, np.ndarray]:
    """Per flag code, the rows where a value of either table lies within its tolerance of the
    threshold that sets the flag (where the flag may come out either way)."""
    from agnlens.models.applicability import (
        INTERCEPT_SHARE_COLLAPSE,
        KERNEL_COLLAPSE,
        OOD_MARGIN,
        OOD_QUANTILE,
        support_vector_domain,
    )
    from agnlens.models.domain import TrainingDomain
    from agnlens.redshift import MAX_OFFSET_KMS

    near: dict[str, np.ndarray] = {}
    for t in (a, b):
        collapse = _near(t["max_kernel"], KERNEL_COLLAPSE, DIAGNOSTIC_RTOL) | _near(
            t["intercept_share"], INTERCEPT_SHARE_COLLAPSE, DIAGNOSTIC_RTOL)
        domain = getattr(model, "training_domain_", None)
        if isinstance(domain, TrainingDomain):
            r_max, m_max = domain.thresholds(OOD_QUANTILE, OOD_MARGIN)
            ood = _near(t["pca_residual"], r_max, DIAGNOSTIC_RTOL) | _near(t["mahalanobis"], m_max, DIAGNOSTIC_RTOL)
        elif getattr(model, "kernel", None) == "rbf":  # the nearest support vector: -ln(max_kernel) / gamma
            with np.errstate(divide="ignore"):
                d2 = -np.log(t["max_kernel"].to_numpy(float)) / model.gamma_
            ood = _near(d2, support_vector_domain(model), DIAGNOSTIC_RTOL)
        else:
            ood = np.zeros(len(t), dtype=bool)
        v, e = np.abs(t["z_offset_kms"].to_numpy(float)), t["z_offset_err_kms"].to_numpy(float)
        offset = _near(v, MAX_OFFSET_KMS, LINE_FIT_RTOL) | _near(v, 3.0 * e, LINE_FIT_RTOL)
        for code, rows in (("kernel-collapse", collapse), ("out-of-distribution", ood), ("redshift-offset", offset)):
            near[code] = near.get(code, np.zeros(len(t), dtype=bool)) | rows
    return near


def assert_same_predictions(a: pd.DataFrame, b: pd.DataFrame, model) -> None:
    """Two prediction tables of ``model`` (:func:`agnlens.stages.classify`) keep the contract."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    np.testing.assert_array_equal(a["spec_id"].astype(str), b["spec_id"].astype(str))
    proba = [c for c in a.columns if c.startswith("p_")]
    np.testing.assert_allclose(a[proba].to_numpy(float), b[proba].to_numpy(float), rtol=0, atol=PROBA_ATOL)
    for cols, rtol, atol in ((DIAGNOSTICS, DIAGNOSTIC_RTOL, 0.0), (LINE_FITS, LINE_FIT_RTOL, 1e-9)):
        for c in cols:
            ok = _close(a[c], b[c], rtol, atol)
            assert ok.all(), f"{c} differs beyond the contract in rows {np.flatnonzero(~ok)[:10]}"
    # labels: only a near-tie of the two largest probabilities may go either way
    p = np.sort(a[proba].to_numpy(float), axis=1)
    tie = p[:, -1] - p[:, -2] <= 2 * PROBA_ATOL
    differ = a["predicted_label"].to_numpy() != b["predicted_label"].to_numpy()
    assert not (differ & ~tie).any(), f"labels differ away from a tie in rows {np.flatnonzero(differ & ~tie)}"
    # flags: a code may differ only where its value lies within tolerance of its threshold
    near = _at_a_threshold(a, b, model)
    flags_a, flags_b = (t["flags"].fillna("").astype(str).to_numpy() for t in (a, b))
    for i in np.flatnonzero(flags_a != flags_b):
        changed = (set(flags_a[i].split(";")) ^ set(flags_b[i].split(";"))) - {""}
        unexplained = {c for c in changed if c not in near or not near[c][i]}
        assert not unexplained, f"row {i}: flags {unexplained} differ away from their thresholds"
    for t, flags in ((a, flags_a), (b, flags_b)):
        np.testing.assert_array_equal(t["applicable"].to_numpy(bool), flags == "")
    judged = {*proba, *DIAGNOSTICS, *LINE_FITS, "predicted_label", "flags", "applicable"}
    rest = [c for c in a.columns if c not in judged]
    pd.testing.assert_frame_equal(a[rest], b[rest], check_dtype=False, check_exact=True)  # inputs: exact


def assert_same_saliency(a, b) -> None:
    """Two saliency maps of the same spectra (n_spectra, n_pixels) keep the contract."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = np.maximum(np.abs(a).max(axis=1, keepdims=True), np.abs(b).max(axis=1, keepdims=True))
    assert (np.abs(a - b) <= SALIENCY_RTOL * scale).all(), "saliency differs beyond the contract"
