"""The attribution methods behind :func:`agnlens.explain.attribution.saliency` — target resolution,
the continuum and baselines, finite differences, SmoothGrad, Integrated Gradients, occlusion."""

from __future__ import annotations

import numpy as np

from agnlens.explain.result import is_array
from agnlens.lines import LINES, window
from agnlens.spectra import SpectrumSet

#: Half widths (km/s) of the regions masked around lines when fitting a continuum. Broad lines get
#: wide masks because type 1 wings reach several thousand km/s.
CONTINUUM_MASK_KMS = {"broad": 5000.0, "narrow": 800.0, "absorption": 600.0}


# --------------------------------------------------------------------------------------------
# helpers shared with faithfulness and linestats


def resolve_target(target, classes: np.ndarray, n: int, *, predicted: np.ndarray | None = None) -> np.ndarray:
    """Turn a target specification into class indices, shape (n,).

    ``None`` → the predicted class (``predicted`` must then be given, as labels); a class label;
    an int that is not a label → a column index; an array of shape (n,) of labels or indices.
    """
    classes = np.asarray(classes)
    cls_str = classes.astype(str)
    known = ", ".join(cls_str)

    def one(t) -> int:
        if isinstance(t, (str, np.str_)) or not np.issubdtype(np.asarray(t).dtype, np.integer):
            hit = np.flatnonzero(cls_str == str(t))
            if hit.size == 0:
                raise ValueError(f"target class {t!r} is not one of the model's classes ({known})")
            return int(hit[0])
        if t in set(classes.tolist()) and not np.issubdtype(classes.dtype, np.str_):
            return int(np.flatnonzero(classes == t)[0])
        if not 0 <= int(t) < len(classes):
            raise ValueError(f"target index {t} is out of range for {len(classes)} classes ({known})")
        return int(t)

    if target is None:
        if predicted is None:
            raise ValueError("target=None needs the predicted classes")
        return np.array([one(p) for p in np.asarray(predicted).astype(str)], dtype=np.int64)
    arr = np.asarray(target)
    if arr.ndim == 0:
        return np.full(n, one(arr.item()), dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"target has shape {arr.shape}, expected a single class or one per spectrum ({n},)")
    lookup = {}
    out = np.empty(n, dtype=np.int64)
    for i, t in enumerate(arr.tolist()):
        if t not in lookup:
            lookup[t] = one(t)
        out[i] = lookup[t]
    return out


def proba_gradient_of(model, X: np.ndarray, target_index: np.ndarray, *, chunk_size: int = 256) -> np.ndarray:
    """Exact ∂p_target/∂x, shape (n, n_pixels), via :func:`agnlens.explain.gradient.proba_gradient`.

    ``target_index`` holds one class index per row of ``X``.
    """
    from agnlens.explain.gradient import proba_gradient

    target_index = np.asarray(target_index, dtype=np.int64)
    if X.shape[0] == 0:
        return np.zeros(X.shape)
    return proba_gradient(model, X, target=target_index, chunk_size=int(chunk_size))


def continuum(
    wavelength: np.ndarray,
    flux: np.ndarray,
    *,
    mask_kms: dict[str, float] | None = None,
    width_aa: float = 120.0,
) -> np.ndarray:
    """A smooth line-free continuum of each spectrum.

    Pixels within ``mask_kms[kind]`` of every line of :data:`agnlens.lines.LINES` are masked
    (:data:`CONTINUUM_MASK_KMS` by default: broad lines ±5000 km/s, forbidden ±800, absorption
    ±600); the running median (``width_aa`` Å wide) of the remaining pixels is interpolated
    across the masked gaps and smoothed with a boxcar of the same width. A running median follows
    the 4000 Å break and host curvature better than a low-order polynomial.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
    flux : ndarray of shape (n_pixels,) or (n_spectra, n_pixels)

    Returns
    -------
    ndarray of the shape of ``flux``
    """
    from scipy.ndimage import median_filter, uniform_filter1d

    wavelength = np.asarray(wavelength, dtype=float)
    flux = np.asarray(flux, dtype=float)
    single = flux.ndim == 1
    F = np.atleast_2d(flux)
    widths = dict(CONTINUUM_MASK_KMS)
    widths.update(mask_kms or {})
    masked = np.zeros(wavelength.size, dtype=bool)
    for item in LINES:
        masked |= window(wavelength, item.wavelength, widths.get(item.kind, 800.0))
    keep = np.flatnonzero(~masked)
    if keep.size < 10:
        # the grid is nearly all line: fall back to the running median of every pixel
        keep = np.arange(wavelength.size)
    step = float(np.median(np.diff(wavelength)))
    size = max(3, int(round(width_aa / step)) | 1)
    # row by row: scipy's 1-D median filter is ~20x faster than the same filter over a 2-D array
    med = np.array([median_filter(row, size=min(size, keep.size), mode="nearest") for row in F[:, keep]])
    med = med.reshape(F.shape[0], keep.size)
    out = np.empty_like(F)
    for i in range(F.shape[0]):
        out[i] = np.interp(wavelength, wavelength[keep], med[i])
    out = uniform_filter1d(out, size=min(size, wavelength.size), axis=1, mode="nearest")
    return out[0] if single else out


def make_baseline(
    baseline,
    flux: np.ndarray,
    wavelength: np.ndarray | None,
    *,
    baseline_spectra=None,
    baseline_class: str = "type2",
) -> np.ndarray:
    """A baseline spectrum per row of ``flux``, shape (n, n_pixels).

    ``"zeros"``; ``"continuum"`` (:func:`continuum` of each spectrum, needs ``wavelength``);
    ``"type2-mean"`` (the mean of ``baseline_spectra``: an array (m, n_pixels), or a SpectrumSet
    whose rows labelled ``baseline_class`` are averaged); or an array of shape (n_pixels,) or
    (n, n_pixels).
    """
    flux = np.asarray(flux, dtype=float)
    if is_array(baseline):
        arr = np.asarray(baseline, dtype=float)
        try:
            return np.broadcast_to(arr, flux.shape).copy()
        except ValueError:
            raise ValueError(
                f"baseline array has shape {arr.shape}, expected ({flux.shape[1]},) or {flux.shape}"
            ) from None
    if baseline == "zeros":
        return np.zeros_like(flux)
    if baseline == "continuum":
        if wavelength is None:
            raise ValueError("baseline='continuum' needs the wavelength grid: pass wavelength= or a SpectrumSet")
        return continuum(wavelength, flux)
    if baseline in ("type2-mean", "class-mean"):
        if baseline_spectra is None:
            raise ValueError(
                f"baseline={baseline!r} needs the spectra to average: pass baseline_spectra= "
                f"(an array (m, n_pixels) or a SpectrumSet with {baseline_class!r} labels)"
            )
        if isinstance(baseline_spectra, SpectrumSet):
            rows = baseline_spectra.labels == baseline_class
            if not np.any(rows):
                raise ValueError(
                    f"baseline_spectra has no spectrum labelled {baseline_class!r} "
                    f"(labels: {sorted(set(baseline_spectra.labels))}); pass baseline_class="
                )
            ref = np.asarray(baseline_spectra.flux[rows], dtype=float)
        else:
            ref = np.atleast_2d(np.asarray(baseline_spectra, dtype=float))
        if ref.shape[1] != flux.shape[1]:
            raise ValueError(
                f"baseline_spectra have {ref.shape[1]} pixels, the explained spectra {flux.shape[1]}; "
                f"put them on the same grid"
            )
        return np.broadcast_to(ref.mean(axis=0), flux.shape).copy()
    raise ValueError(
        f"unknown baseline {baseline!r}; choose 'continuum', 'zeros', 'type2-mean' or pass an array"
    )


def predict_target_proba(model, X: np.ndarray, target_index: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """``predict_proba(X)[i, target_index[i]]`` in batches, shape (n,)."""
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], batch_size):
        stop = start + batch_size
        p = np.asarray(model.predict_proba(X[start:stop]), dtype=float)
        out[start:stop] = p[np.arange(p.shape[0]), target_index[start:stop]]
    return out


# --------------------------------------------------------------------------------------------
# the methods


def finite_difference(model, X, t_idx, *, step: float, batch_size: int) -> np.ndarray:
    """Forward differences with a relative step, as in the reference study.

    Pixel j of spectrum i is nudged by ``h = step·x_ij``; a pixel whose flux is 0 is nudged by
    ``step`` × the spectrum's median |flux| instead (a relative nudge of 0 would divide by 0).
    """
    if step <= 0:
        raise ValueError(f"finite-difference step must be positive, got {step}")
    n, n_pix = X.shape
    out = np.empty((n, n_pix))
    p0 = predict_target_proba(model, X, t_idx)
    batch_size = max(1, int(batch_size))
    for i in range(n):
        x = X[i]
        h = step * x
        fallback = step * (np.median(np.abs(x)) or 1.0)
        h = np.where(h == 0, fallback, h)
        for start in range(0, n_pix, batch_size):
            cols = np.arange(start, min(start + batch_size, n_pix))
            batch = np.repeat(x[None, :], cols.size, axis=0)
            batch[np.arange(cols.size), cols] += h[cols]
            dh = batch[np.arange(cols.size), cols] - x[cols]  # the step as represented in floats
            p = np.asarray(model.predict_proba(batch), dtype=float)[:, t_idx[i]]
            out[i, cols] = (p - p0[i]) / dh
    return out


def smoothgrad(model, X, t_idx, *, n_samples: int, sigma: float, seed: int, chunk_size: int) -> np.ndarray:
    if n_samples < 1 or sigma < 0:
        raise ValueError(f"smoothgrad needs n_samples ≥ 1 and sigma ≥ 0, got {n_samples} and {sigma}")
    rng = np.random.default_rng(seed)
    n, n_pix = X.shape
    out = np.empty((n, n_pix))
    scale = sigma * X.std(axis=1)
    per_chunk = max(1, int(chunk_size) // n_samples) if chunk_size else 1
    for start in range(0, n, per_chunk):
        rows = np.arange(start, min(start + per_chunk, n))
        noisy = np.repeat(X[rows], n_samples, axis=0)
        noisy += rng.standard_normal(noisy.shape) * np.repeat(scale[rows], n_samples)[:, None]
        g = proba_gradient_of(model, noisy, np.repeat(t_idx[rows], n_samples), chunk_size=chunk_size)
        out[rows] = g.reshape(rows.size, n_samples, n_pix).mean(axis=1)
    return out


#: Integrated Gradients by Gauss–Legendre: a spectrum whose completeness error exceeds this is
#: integrated again with twice the nodes, ...
IG_TOLERANCE = 1e-6
#: ... up to this many (the error falls geometrically: 32 → 64 nodes took the worst of 95 real
#: spectra, an out-of-distribution one, from 1.9e-4 to 5e-9).
IG_MAX_NODES = 128


def integrated_gradients(model, X, t_idx, base, *, n_steps: int, rule: str, chunk_size: int):
    """Integrated Gradients and each row's completeness error; with ``rule="gauss-legendre"`` the
    rows whose error exceeds :data:`IG_TOLERANCE` are integrated again with twice the nodes, up to
    :data:`IG_MAX_NODES`."""
    values, error = _integrated_gradients(model, X, t_idx, base, n_steps=n_steps, rule=rule, chunk_size=chunk_size)
    steps = n_steps
    while rule == "gauss-legendre" and 2 * steps <= IG_MAX_NODES:
        again = np.flatnonzero(np.abs(error) > IG_TOLERANCE)
        if again.size == 0:
            break
        steps *= 2
        values[again], error[again] = _integrated_gradients(model, X[again], t_idx[again], base[again], n_steps=steps,
                                                            rule=rule, chunk_size=chunk_size)
    return values, error


def _integrated_gradients(model, X, t_idx, base, *, n_steps: int, rule: str, chunk_size: int):
    if n_steps < 1:
        raise ValueError(f"integrated gradients needs n_steps ≥ 1, got {n_steps}")
    if rule == "trapezoid":
        alphas = np.linspace(0.0, 1.0, n_steps + 1)
        weights = np.full(n_steps + 1, 1.0 / n_steps)
        weights[[0, -1]] *= 0.5
    elif rule == "midpoint":
        alphas = (np.arange(n_steps) + 0.5) / n_steps
        weights = np.full(n_steps, 1.0 / n_steps)
    elif rule == "gauss-legendre":
        # p along the straight path is smooth (analytic for the SVM's sigmoids and coupling), so
        # Gauss–Legendre converges geometrically: 32 nodes beat 200 trapezoid intervals
        nodes, w = np.polynomial.legendre.leggauss(n_steps)
        alphas, weights = (nodes + 1.0) / 2.0, w / 2.0
    else:
        raise ValueError(f"unknown integration rule {rule!r}; choose 'gauss-legendre', 'trapezoid' or 'midpoint'")
    n, n_pix = X.shape
    m = alphas.size
    avg_grad = np.empty((n, n_pix))
    per_chunk = max(1, int(chunk_size) // m)
    for start in range(0, n, per_chunk):
        rows = np.arange(start, min(start + per_chunk, n))
        path = base[rows, None, :] + alphas[None, :, None] * (X[rows] - base[rows])[:, None, :]
        g = proba_gradient_of(model, path.reshape(-1, n_pix), np.repeat(t_idx[rows], m), chunk_size=chunk_size)
        avg_grad[rows] = np.tensordot(weights, g.reshape(rows.size, m, n_pix), axes=([0], [1]))
    values = (X - base) * avg_grad
    gap = predict_target_proba(model, X, t_idx) - predict_target_proba(model, base, t_idx)
    return values, values.sum(axis=1) - gap


def occlusion(model, X, t_idx, fill, *, width: int, stride: int, batch_size: int) -> np.ndarray:
    n, n_pix = X.shape
    width, stride = int(width), int(stride)
    if not 1 <= width <= n_pix or stride < 1:
        raise ValueError(f"occlusion needs 1 ≤ window ≤ {n_pix} pixels and stride ≥ 1, got {width} and {stride}")
    positions = list(range(0, n_pix - width + 1, stride))
    if positions[-1] != n_pix - width:
        positions.append(n_pix - width)  # cover the last pixels too
    starts = np.asarray(positions)
    n_win = starts.size
    cover = np.zeros((n_win, n_pix), dtype=bool)
    for w, s in enumerate(starts):
        cover[w, s : s + width] = True
    n_cover = cover.sum(axis=0)
    p0 = predict_target_proba(model, X, t_idx)
    out = np.empty((n, n_pix))
    per_batch = max(1, int(batch_size) // n_win)
    for start in range(0, n, per_batch):
        rows = np.arange(start, min(start + per_batch, n))
        occluded = np.where(cover[None], fill[rows][:, None, :], X[rows][:, None, :])
        p = predict_target_proba(model, occluded.reshape(-1, n_pix), np.repeat(t_idx[rows], n_win))
        dp = p0[rows, None] - p.reshape(rows.size, n_win)
        out[rows] = (dp / width) @ cover / n_cover
    return out
