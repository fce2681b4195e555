"""Exact saliency: closed-form gradients of a :class:`~agnlens.models.svm.SpectrumSVC`.

For a spectrum ``x`` (after the model's optional scaler, ``z = (x - mean) / scale``) the chain is

``z -> f_q(z) = sum_s c_qs K(z, s) + b_q -> r_q = 1/(1 + exp(A_q f_q + B_q)) -> p = couple(r)``

and every link has a closed-form derivative:

* kernels: linear ``dK/dz = s``; rbf ``dK/dz = -2 gamma K(z, s) (z - s)``; poly
  ``dK/dz = degree gamma (gamma <z, s> + coef0)^(degree - 1) s``;
* sigmoid: ``dr/df = -A r (1 - r)``;
* coupling (multiclass): implicit differentiation of the Wu–Lin–Weng linear system
  (:func:`agnlens.models.coupling.couple`); binary: ``p_1 = r``, ``p_0 = 1 - r``;
* scaler: ``d/dx = (d/dz) / scale``.

The per-row weights ``dp_t/df_q`` are folded into one coefficient row per spectrum, so the whole
gradient costs one extra matrix product of the size of the kernel product of ``predict_proba``.
Work is done in chunks of rows, so memory is bounded by ``chunk_size x (n_SV + n_features)``.
"""

from __future__ import annotations

import numpy as np

from agnlens.models.coupling import couple, sigmoid_proba
from agnlens.models.kernels import blas_for
from agnlens.models.svm import PREDICT_CHUNK


def _check_model(model) -> None:
    from agnlens.models.svm import SpectrumSVC

    if not isinstance(model, SpectrumSVC):
        raise TypeError(
            f"exact gradients need a fitted agnlens SpectrumSVC, got {type(model).__name__}; "
            "train one with agnlens.models.SpectrumSVC(...).fit(X, y) or load one with load_model"
        )


def _check_chunk(chunk_size) -> int:
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def resolve_target(model, target, n: int) -> np.ndarray | None:
    """Turn a target specification into per-row class indices (or None for the predicted class).

    Parameters
    ----------
    model : SpectrumSVC
    target : None, int, class label, or array-like of shape (n,)
        None: the predicted class of each row. A class label (a value of ``model.classes_``) or,
        when the classes are not integers, an integer class index. When ``classes_`` hold
        integers, an integer is read as a label. An array gives one class index per row.
    n : int
        Number of rows.

    Returns
    -------
    ndarray of int, shape (n,), or None
    """
    if target is None:
        return None
    classes = model.classes_
    n_classes = classes.size
    if np.ndim(target) == 0:
        matches = np.flatnonzero(classes == target) if not isinstance(target, (bool, np.bool_)) else np.empty(0, int)
        if len(matches):
            return np.full(n, int(matches[0]))
        if isinstance(target, (int, np.integer)) and not np.issubdtype(classes.dtype, np.integer):
            if 0 <= target < n_classes:
                return np.full(n, int(target))
        raise ValueError(
            f"target {target!r} is neither a class of the model ({classes.tolist()}) nor a class index "
            f"0..{n_classes - 1}; pass None for the predicted class"
        )
    idx = np.asarray(target)
    if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"a per-row target must be an integer array of shape ({n},) of class indices, got dtype "
            f"{idx.dtype} and shape {idx.shape}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= n_classes):
        raise ValueError(f"per-row target indices must lie in 0..{n_classes - 1}, got {idx.min()}..{idx.max()}")
    return idx.astype(np.int64)


def _chunk_gradient(model, Z: np.ndarray, t: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, target indices and d p_t / d z for one chunk of scaled rows."""
    SV = model.support_vectors_
    A, B = model.calibration_[:, 0], model.calibration_[:, 1]
    if model.kernel == "linear":
        G = K = None
        f = Z @ model.linear_coef_.T + model.intercept_
    else:
        G = Z @ SV.T
        K = model.kernel_from_gram(Z, G, overwrite=model.kernel == "rbf")  # poly needs G below
        f = K @ model.pair_coef_.T + model.intercept_
    r = sigmoid_proba(f, A, B)
    drdf = -A * r * (1.0 - r)
    n_classes = model.classes_.size
    if n_classes == 2:
        p = np.column_stack([1.0 - r[:, 0], r[:, 0]])
        if t is None:
            t = np.argmax(p, axis=1)
        w = drdf * np.where(t == 1, 1.0, -1.0)[:, None]  # (n, 1)
    else:
        p = couple(r, model.pairs_, n_classes)  # exactly predict_proba's values
        if t is None:
            t = np.argmax(p, axis=1)
        dpdr = couple(r, model.pairs_, n_classes, targets=t)[1]
        w = dpdr * drdf  # (n, n_pairs)
    if K is None:  # the linear kernel (set above)
        gz = w @ model.linear_coef_
    else:
        if model.kernel == "rbf":
            # 2 gamma ((KC @ SV)_i - sum_s KC_is z_i); the factor 2 gamma folded into the (n, n_pairs) weights,
            # the per-row coefficient of every support vector C and K multiplied in place (no full-size pass more)
            KC = np.multiply(K, (2.0 * model.gamma_ * w) @ model.pair_coef_, out=K)
            gz = KC @ SV
            gz -= np.multiply(Z, KC.sum(axis=1)[:, None])
        else:  # poly
            C = w @ model.pair_coef_  # (n, n_SV): per-row coefficient of every support vector
            Kd = (model.gamma_ * G + model.coef0) ** (model.degree - 1)
            gz = (model.degree * model.gamma_) * ((Kd * C) @ SV)
    return p, t, gz


def proba_and_gradient(model, X, target=None, *, chunk_size: int = PREDICT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and the exact gradient of one of them, in one pass over the kernel.

    The kernel block ``K(X, SV)`` is computed once per chunk and serves both the probabilities and
    the gradient, so probabilities plus saliency cost two matrix products of the size of
    ``predict_proba``'s one (instead of three when ``predict_proba`` and :func:`proba_gradient` are
    called one after the other).

    Parameters
    ----------
    model : SpectrumSVC
    X : array-like of shape (n_spectra, n_features)
    target : as in :func:`proba_gradient`
    chunk_size : int
        Rows processed at once (memory: ``chunk_size x (n_SV + n_features)`` floats).

    Returns
    -------
    proba : ndarray of shape (n_spectra, n_classes)
        ``model.predict_proba(X)`` (bitwise with the default ``chunk_size``, which is prediction's
        block size; other block sizes change the last bit of the matrix products).
    gradient : ndarray of shape (n_spectra, n_features)
        ``d proba[i, target_i] / d X[i, j]``.
    """
    _check_model(model)
    chunk_size = _check_chunk(chunk_size)
    Z = model.scale(X)
    t_all = resolve_target(model, target, Z.shape[0])
    proba = np.empty((Z.shape[0], model.classes_.size))
    out = np.empty(Z.shape, dtype=np.float64)
    with blas_for(Z.shape[0]):
        for start in range(0, Z.shape[0], chunk_size):
            sl = slice(start, start + chunk_size)
            proba[sl], _, out[sl] = _chunk_gradient(model, Z[sl], None if t_all is None else t_all[sl])
    if model.scaler_ is not None:
        out /= model.scaler_.scale_
    return proba, out


def proba_gradient(model, X, target=None, *, chunk_size: int = PREDICT_CHUNK) -> np.ndarray:
    """Exact gradient of a class probability with respect to every input pixel.

    Parameters
    ----------
    model : SpectrumSVC
        A fitted model (any kernel, binary or multiclass, with or without ``standardize``).
    X : array-like of shape (n_spectra, n_features)
        Preprocessed spectra, in the model's input space.
    target : None, int, class label, or array-like of int, shape (n_spectra,)
        Class whose probability is differentiated; None means the predicted class of each row
        (see :func:`resolve_target`).
    chunk_size : int
        Rows processed at once (memory bound).

    Returns
    -------
    ndarray of shape (n_spectra, n_features)
        ``d predict_proba(X)[i, target_i] / d X[i, j]``. :func:`proba_and_gradient` also returns
        the probabilities, at no extra cost.
    """
    return proba_and_gradient(model, X, target, chunk_size=chunk_size)[1]


def decision_gradient(model, X, *, chunk_size: int = PREDICT_CHUNK) -> np.ndarray:
    """Exact gradient of every pairwise (one-vs-one) SVM decision value.

    Parameters
    ----------
    model : SpectrumSVC
    X : array-like of shape (n_spectra, n_features)
    chunk_size : int

    Returns
    -------
    ndarray of shape (n_spectra, n_pairs, n_features)
        ``d model.pairwise_decision_function(X)[i, q] / d X[i, j]``; for a linear kernel without
        scaler this is the pair's weight vector ``pair_coef_[q] @ support_vectors_`` on every row.
    """
    _check_model(model)
    chunk_size = _check_chunk(chunk_size)
    Z = model.scale(X)
    n, d = Z.shape
    n_pairs = model.pairs_.shape[0]
    out = np.empty((n, n_pairs, d), dtype=np.float64)
    SV = model.support_vectors_
    for start in range(0, n, chunk_size):
        sl = slice(start, start + chunk_size)
        Zc = Z[sl]
        if model.kernel == "linear":
            out[sl] = model.linear_coef_[None, :, :]
            continue
        G = Zc @ SV.T
        if model.kernel == "rbf":
            K = model.kernel_from_gram(Zc, G, overwrite=True)
            for q in range(n_pairs):
                KC = K * model.pair_coef_[q]
                out[sl, q] = -2.0 * model.gamma_ * (KC.sum(axis=1)[:, None] * Zc - KC @ SV)
        else:
            Kd = (model.gamma_ * G + model.coef0) ** (model.degree - 1)
            for q in range(n_pairs):
                out[sl, q] = (model.degree * model.gamma_) * ((Kd * model.pair_coef_[q]) @ SV)
    if model.scaler_ is not None:
        out /= model.scaler_.scale_
    return out


def finite_difference_gradient(model, X, target=None, *, eps=None) -> np.ndarray:
    """Central finite differences of ``model.predict_proba`` (the reference for :func:`verify`).

    Parameters
    ----------
    model : SpectrumSVC
    X : array-like of shape (n_spectra, n_features)
    target : as in :func:`proba_gradient` (None: the predicted class at the unperturbed row)
    eps : float or ndarray of shape (n_features,), optional
        Step per feature. Default ``1e-4`` times the scaler's per-feature scale, or times the RMS
        of ``X`` without a scaler.

    Returns
    -------
    ndarray of shape (n_spectra, n_features)
    """
    _check_model(model)
    model.scale(X)  # validates shape and fit
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    t = resolve_target(model, target, n)
    if t is None:
        t = np.argmax(model.predict_proba(X), axis=1)
    if eps is None:
        base = model.scaler_.scale_ if model.scaler_ is not None else np.sqrt(np.mean(X**2)) or 1.0
        eps = 1e-4 * np.broadcast_to(base, (d,))
    eps = np.broadcast_to(np.asarray(eps, dtype=np.float64), (d,))
    out = np.empty((n, d))
    steps = np.diag(eps)
    for i in range(n):
        plus = model.predict_proba(X[i] + steps)[:, t[i]]
        minus = model.predict_proba(X[i] - steps)[:, t[i]]
        out[i] = (plus - minus) / (2.0 * eps)
    return out


def verify(model, X, target=None, *, eps=None) -> dict:
    """Compare :func:`proba_gradient` with central finite differences of ``predict_proba``.

    The relative error of spectrum ``i`` is ``max_j |g_ij - fd_ij| / max_j |fd_ij|``: the error is
    measured against the size of the whole saliency map, not pixel by pixel (tiny pixel values
    would make a pixel-wise ratio meaningless). When a map is identically zero (a saturated
    probability) the denominator is the smallest positive float.

    Parameters
    ----------
    model : SpectrumSVC
    X : array-like of shape (n_spectra, n_features)
        Spectra to check (cost: ``2 n_features`` predictions per spectrum; use a few).
    target : as in :func:`proba_gradient`
    eps : as in :func:`finite_difference_gradient`

    Returns
    -------
    dict
        ``max_abs_error``, ``max_rel_error`` (worst spectrum), ``mean_rel_error`` (mean over
        spectra and pixels of ``|g - fd| / max|fd|``), ``rel_error`` (list, one per spectrum),
        ``n_spectra``, ``n_features``.
    """
    _check_model(model)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"verify needs a 2-D array of at least one spectrum, got shape {X.shape}")
    t = resolve_target(model, target, X.shape[0])
    if t is None:
        t = np.argmax(model.predict_proba(X), axis=1)
    g = proba_gradient(model, X, t)
    fd = finite_difference_gradient(model, X, t, eps=eps)
    err = np.abs(g - fd)
    denom = np.maximum(np.abs(fd).max(axis=1), np.finfo(np.float64).tiny)
    rel = err / denom[:, None]
    per_spectrum = rel.max(axis=1)
    return {
        "max_abs_error": float(err.max()),
        "max_rel_error": float(per_spectrum.max()),
        "mean_rel_error": float(rel.mean()),
        "rel_error": per_spectrum.tolist(),
        "n_spectra": int(X.shape[0]),
        "n_features": int(X.shape[1]),
    }
