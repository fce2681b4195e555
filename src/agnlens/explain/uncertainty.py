"""How far the noise of a spectrum moves its prediction: a standard error on every probability.

:func:`proba_std` propagates the pixel noise to every class probability by the delta method,
``σ_p² = Σ_i (∂p/∂x_i)² σ_i² + (Σ_i x_i ∂p/∂x_i)² (σ_m/m)²``, with the exact gradient of
:func:`agnlens.explain.gradient.proba_and_gradient`:

* the first term is the pixel noise of the preprocessed spectrum ``x`` (its ``ivar``, which
  :func:`agnlens.preprocess.resample` propagated through the resampling and the normalisation),
  with the correlation of neighbouring pixels that share an input pixel (``pixel_corr`` in the
  spectra's metadata, :func:`agnlens.preprocess.neighbour_correlation`; 0 where it is missing, as
  for simulated spectra, whose pixels are drawn independently):
  ``Σ_i g_i² σ_i² + 2ρ Σ_i g_i g_{i+1} σ_i σ_{i+1}``;
  a pixel that preprocessing filled in by linear interpolation (``mask``, ``ivar = 0``) is no
  noise-free pixel: it is a weighted mean of its two good neighbours, so its gradient is handed
  to them with the interpolation weights before the sum — the noise is counted where it is;
* the second is the error of the normalisation: every spectrum was divided by the median flux
  ``m`` of the grid's normalisation window, so a relative error ``σ_m/m`` of that median moves
  every pixel at once (``∂x_i/∂m = −x_i/m``). A median is not differentiable at the scale of
  the noise, so ``σ_m`` comes from redrawing the window's pixels (:func:`_median_rel_var`): on a
  flat continuum it is the textbook ``√(π/2) σ/√n``, with a line's wing in the window up to ``σ``.
  For a linear model this term is as large as the first.

It leaves out any error of the redshift, and correlations between pixels that share no input
pixel. :func:`monte_carlo_std`, the independent reference, draws the raw pixels of a
file again from their ``ivar`` and sends every draw through the whole preprocessing and the
model; the test suite compares both on real spectra.

Both are the uncertainty from the noise of *this* spectrum only; they say nothing of how well the
model's probabilities are calibrated, which they are on simulated spectra.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agnlens.explain.gradient import PREDICT_CHUNK, proba_and_gradient
from agnlens.spectra import Spectrum, SpectrumSet

#: Redraws of the normalisation window behind the error of its median (:func:`_median_rel_var`).
MEDIAN_DRAWS = 256
#: ``uncertain``: the two most probable classes are closer than this many standard errors of their
#: difference.
UNCERTAIN_SIGMAS = 2.0


@dataclass
class ProbaUncertainty:
    """The probabilities of some spectra and their standard errors.

    Attributes
    ----------
    proba : ndarray of shape (n_spectra, n_classes)
        ``model.predict_proba`` of the spectra.
    std : ndarray of shape (n_spectra, n_classes)
        The standard error of each probability from the spectrum's noise.
    margin : ndarray of shape (n_spectra,)
        The most probable class's probability minus the second's.
    margin_std : ndarray of shape (n_spectra,)
        The standard error of ``margin`` (from the gradient of the difference, not the two errors
        added: the two probabilities move together).
    """

    proba: np.ndarray
    std: np.ndarray
    margin: np.ndarray
    margin_std: np.ndarray

    @property
    def uncertain(self) -> np.ndarray:
        """True where the top two classes are within :data:`UNCERTAIN_SIGMAS` standard errors."""
        return self.margin < UNCERTAIN_SIGMAS * self.margin_std


def proba_std(model, spectra: SpectrumSet, *, chunk_size: int = PREDICT_CHUNK) -> ProbaUncertainty:
    """Probabilities of ``spectra`` and their standard errors by the delta method.

    Parameters
    ----------
    model : SpectrumSVC
        On the grid of ``spectra``.
    spectra : SpectrumSet
        Preprocessed onto the model's grid (flux, ivar, mask as :func:`agnlens.preprocess.preprocess`
        leaves them).
    chunk_size : int
        Rows per kernel block (see :func:`~agnlens.explain.gradient.proba_and_gradient`).

    Returns
    -------
    ProbaUncertainty
        ``proba`` is bitwise ``model.predict_proba(spectra.flux)`` with the default ``chunk_size``.
    """
    X = np.asarray(spectra.flux, dtype=np.float64)
    n, k = X.shape[0], np.asarray(model.classes_).size
    if n == 0:
        empty = np.empty((0, k))
        return ProbaUncertainty(empty, empty.copy(), np.empty(0), np.empty(0))
    noise = _Noise(spectra)
    grads = []
    proba = np.empty((n, k))
    for j in range(k):
        p, g = proba_and_gradient(model, X, np.full(n, j), chunk_size=chunk_size)
        if j == 0:
            proba = p
        grads.append(g)
    std = np.stack([noise.std(g, X) for g in grads], axis=1)
    order = np.argsort(-proba, axis=1, kind="stable")
    top, second = order[:, 0], order[:, 1] if k > 1 else order[:, 0]
    rows = np.arange(n)
    g_stack = np.stack(grads)  # (k, n, n_pixels)
    margin = proba[rows, top] - proba[rows, second]
    margin_std = noise.std(g_stack[top, rows] - g_stack[second, rows], X)
    return ProbaUncertainty(proba, std, margin, margin_std)


class _Noise:
    """The noise model of preprocessed spectra: pixel variances, fill-in weights, normalisation error."""

    def __init__(self, spectra: SpectrumSet) -> None:
        ivar = np.asarray(spectra.ivar, dtype=np.float64)
        self.good = ~np.asarray(spectra.mask, dtype=bool) & (ivar > 0)
        self.var = np.where(self.good, 1.0 / np.where(self.good, ivar, 1.0), 0.0)
        wavelength = np.asarray(spectra.wavelength, dtype=np.float64)
        self.wavelength = wavelength
        window = spectra.grid.norm_window
        in_window = (wavelength >= window[0]) & (wavelength <= window[1]) if window else np.zeros_like(wavelength, bool)
        self.norm_rel_var = _median_rel_var(np.asarray(spectra.flux, dtype=np.float64)[:, in_window],
                                            self.var[:, in_window], self.good[:, in_window])
        # the fill-in weights of each spectrum with filled pixels, once for every gradient handed over
        self.filled = {i: _fill_in_weights(self.good[i], wavelength)
                       for i in range(ivar.shape[0]) if not self.good[i].all()}
        meta = spectra.meta
        corr = meta["pixel_corr"].to_numpy(dtype=float) if "pixel_corr" in meta else np.zeros(ivar.shape[0])
        self.corr = np.nan_to_num(corr)[:, None]
        self.sd = np.sqrt(self.var)

    def std(self, gradient: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The standard error of the quantity whose gradient is ``gradient`` (n_spectra, n_pixels)."""
        g = np.array(gradient, dtype=np.float64)
        for i, weights in self.filled.items():  # a filled-in pixel's gradient to the pixels it was made from
            g[i] = _to_good_pixels(g[i], self.good[i], self.wavelength, weights)
        pixel = np.einsum("ij,ij->i", g * g, self.var)
        gs = g * self.sd
        pixel += 2.0 * (self.corr[:, 0] * np.einsum("ij,ij->i", gs[:, :-1], gs[:, 1:]))
        pixel = np.maximum(pixel, 0.0)
        norm = np.einsum("ij,ij->i", gradient, X) ** 2 * self.norm_rel_var
        return np.sqrt(pixel + norm)


def _median_rel_var(x: np.ndarray, var: np.ndarray, good: np.ndarray) -> np.ndarray:
    """The relative variance of the median of each row's good values, by redrawing them.

    The median is not differentiable at the scale of the noise, and its error depends on how the
    values are spread: ``√(π/2) σ/√n`` on a flat continuum, up to ``σ`` itself when the window holds
    a line's wing (seen: 3× the formula). So the values are drawn again from their variances
    :data:`MEDIAN_DRAWS` times with one fixed set of normal deviates shared by every row, which
    makes the result independent of chunking and threads.
    """
    out = np.zeros(x.shape[0])
    if x.shape[1] == 0:
        return out
    z = np.random.default_rng(0).standard_normal((MEDIAN_DRAWS, x.shape[1]))
    whole = np.asarray(good.all(axis=1), dtype=bool)
    for start in range(0, x.shape[0], 64):  # rows with every window pixel good: np.median, fast
        rows = np.flatnonzero(whole[start:start + 64]) + start
        med = np.median(x[rows, None, :] + np.sqrt(var[rows, None, :]) * z, axis=2)
        out[rows] = np.var(med, axis=1, ddof=1) / np.median(x[rows], axis=1) ** 2
    for i in np.flatnonzero(~whole):  # the others over their good pixels
        if good[i].sum() >= 1:
            sel = good[i]
            med = np.median(x[i, sel] + np.sqrt(var[i, sel]) * z[:, sel], axis=1)
            out[i] = np.var(med, ddof=1) / np.median(x[i, sel]) ** 2
    return np.nan_to_num(out, nan=0.0, posinf=0.0)


def _fill_in_weights(good: np.ndarray, wavelength: np.ndarray):
    """For the filled-in pixels of one spectrum: their indices, the good pixels left and right of
    each that ``np.interp`` made them from, and the right one's weight (None: no good pixel)."""
    idx = np.flatnonzero(good)
    if idx.size == 0:
        return None
    bad = np.flatnonzero(~good)
    k = np.searchsorted(idx, bad)  # the first good pixel to the right
    right = idx[np.minimum(k, idx.size - 1)]
    left = idx[np.maximum(k - 1, 0)]
    span = wavelength[right] - wavelength[left]
    w_right = np.divide(wavelength[bad] - wavelength[left], span, out=np.zeros(bad.size), where=span > 0)
    w_right = np.where(k == 0, 1.0, np.where(k == idx.size, 0.0, w_right))  # np.interp holds the edge value
    return bad, left, right, w_right


def _to_good_pixels(g: np.ndarray, good: np.ndarray, wavelength: np.ndarray, weights=None) -> np.ndarray:
    """``g`` moved from filled-in pixels to the good pixels ``np.interp`` made them from
    (``weights``: :func:`_fill_in_weights` of ``good``, computed here when not given)."""
    out = np.where(good, g, 0.0)
    weights = _fill_in_weights(good, wavelength) if weights is None else weights
    if weights is None:
        return out
    bad, left, right, w_right = weights
    np.add.at(out, right, g[bad] * w_right)
    np.add.at(out, left, g[bad] * (1.0 - w_right))
    return out


def monte_carlo_std(model, spectrum: Spectrum, grid, *, n_draws: int = 100, seed: int = 0,
                    max_bad_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the probabilities over noisy copies of a raw spectrum.

    Each copy adds normal noise of variance ``1/ivar`` to every good pixel of ``spectrum`` (as read
    from its file, on its own pixels), goes through the whole preprocessing
    (:func:`agnlens.preprocess.preprocess_one`: rest frame, resampling, normalisation, fill-in) and
    the model.

    Parameters
    ----------
    model : SpectrumSVC
    spectrum : Spectrum
        Observed frame, on its own pixels, with its redshift.
    grid : str or Grid
        The model's grid.
    n_draws : int
        Noisy copies (the standard deviation's own relative error is about ``1/√(2 n_draws)``).
    seed : int
        Seed of the noise (``numpy.random.default_rng``).
    max_bad_fraction : float
        As in :func:`agnlens.preprocess.preprocess_one`.

    Returns
    -------
    mean, std : ndarray of shape (n_classes,)
    """
    from agnlens.preprocess import preprocess_one

    if n_draws < 2:
        raise ValueError(f"n_draws must be at least 2 for a standard deviation, got {n_draws}")
    rng = np.random.default_rng(seed)
    good = spectrum.good
    sigma = np.where(good, 1.0 / np.sqrt(np.where(good, spectrum.ivar, 1.0)), 0.0)
    rows = []
    for _ in range(n_draws):
        noisy = Spectrum(spectrum.wavelength, spectrum.flux + sigma * rng.standard_normal(sigma.size),
                         spectrum.ivar, spectrum.mask, dict(spectrum.meta), frame=spectrum.frame)
        rows.append(preprocess_one(noisy, grid, max_bad_fraction).flux)
    proba = np.asarray(model.predict_proba(np.asarray(rows, dtype=np.float64)))
    return proba.mean(axis=0), proba.std(axis=0, ddof=1)
