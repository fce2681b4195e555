"""Preprocessing: rest frame, bad pixels, flux-conserving resampling, normalisation.

The reference study (Peruzzi et al. 2021) divided wavelengths by 1+z, divided each spectrum by its
flux at 5100 Å and resampled linearly onto 1000 points from 3729 to 5266 Å. That is the ``paper``
grid (:mod:`agnlens.grid`, where the grids live; re-exported here).

:func:`preprocess_one` takes a :class:`~agnlens.spectra.Spectrum` on its own pixels and returns it
on the grid (a Spectrum carrying the :class:`~agnlens.grid.Grid`); :func:`preprocess` does many and
stacks them into a :class:`~agnlens.spectra.SpectrumSet`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from agnlens.errors import RejectedSpectrum
from agnlens.grid import GRIDS, Grid, balmer_grid, get_grid, paper_grid, pixel_edges  # noqa: F401  (re-exported)
from agnlens.lines import NORM_WINDOW
from agnlens.spectra import Spectrum, SpectrumSet

log = logging.getLogger(__name__)

#: An output pixel is good when at least this share of it is covered by good input pixels.
MIN_PIXEL_COVERAGE = 0.5
#: A spectrum needs at least this many good pixels per grid pixel over the grid's range.
MIN_INPUT_SAMPLING = 0.5
#: Sets and stores hold float32: a normalised value beyond this would become ±inf there.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def to_rest_frame(spectrum: Spectrum) -> Spectrum:
    """Shift an observed spectrum to the rest frame: λ/(1+z), F_λ·(1+z), ivar/(1+z)².

    Raises
    ------
    RejectedSpectrum
        If the redshift is missing, not finite or negative.
    """
    if spectrum.frame == "rest":
        return spectrum
    z = spectrum.z
    if not np.isfinite(z):
        raise RejectedSpectrum(_source(spectrum), "no redshift (z is missing or not finite)")
    if z < 0:
        raise RejectedSpectrum(_source(spectrum), f"negative redshift z = {z:g}")
    a = 1.0 + z
    return Spectrum(
        wavelength=spectrum.wavelength / a,
        flux=spectrum.flux * a,
        ivar=spectrum.ivar / a**2,
        mask=spectrum.mask,
        meta=dict(spectrum.meta),
        frame="rest",
    )


def resample(
    wavelength: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    new_wavelength: np.ndarray,
    good: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flux-conserving resampling with inverse-variance propagation.

    Each output pixel takes the overlap-weighted mean of the good input pixels it covers, so the
    integral of the flux over any range of whole output pixels is conserved. Variances add with
    the squared weights.

    Parameters
    ----------
    wavelength : ndarray of shape (n_in,)
        Input pixel centres (strictly increasing).
    flux, ivar : ndarray of shape (n_in,)
    new_wavelength : ndarray of shape (n_out,)
        Output pixel centres (strictly increasing).
    good : ndarray of bool, shape (n_in,), optional
        Usable input pixels; default ``ivar > 0`` and finite flux.

    Returns
    -------
    flux : ndarray of shape (n_out,)
        NaN where no good input covers the pixel.
    ivar : ndarray of shape (n_out,)
        0 where no good input covers the pixel.
    coverage : ndarray of shape (n_out,)
        Share (0–1) of each output pixel covered by good input pixels.
    """
    wavelength = np.asarray(wavelength, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    if good is None:
        good = (ivar > 0) & np.isfinite(flux)
    good = np.asarray(good, dtype=bool) & np.isfinite(flux) & np.isfinite(ivar)
    return _resampled(_Sums(wavelength, flux, ivar, np.asarray(new_wavelength, dtype=np.float64), good))


class _Sums:
    """The overlap-weighted sums of :func:`resample` over the good input pixels (``good`` already
    excludes non-finite and ivar ≤ 0 pixels): weights, flux and variance per output pixel, and the
    overlaps they came from. :func:`resample` and :func:`neighbour_correlation` both start here, so
    preprocessing computes them once per spectrum."""

    def __init__(self, wavelength, flux, ivar, new_wavelength, good):
        self.e_in, self.lo, self.hi, self.first, self.last = _overlaps(wavelength, new_wavelength)
        self.good = good
        self.var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
        f_clean = np.where(good, flux, 0.0)
        self.weight = np.zeros(self.lo.size)
        self.flux = np.zeros(self.lo.size)
        self.variance = np.zeros(self.lo.size)
        n_overlap = int(np.max(self.last - self.first)) + 1 if self.last.size else 0
        # Loop over the (few) overlap slots, vectorised over all output pixels.
        for k in range(n_overlap):
            i = np.minimum(self.first + k, wavelength.size - 1)
            w = np.where((self.first + k) <= self.last, self.weights(self.lo, self.hi, i), 0.0)
            self.weight += w
            self.flux += w * f_clean[i]
            self.variance += w * w * self.var[i]

    def weights(self, j_lo, j_hi, i):
        """Overlap of output pixel spans [j_lo, j_hi] with input pixels i, where those are good."""
        w = np.maximum(np.minimum(j_hi, self.e_in[i + 1]) - np.maximum(j_lo, self.e_in[i]), 0.0)
        return np.where(self.good[i], w, 0.0)


def _resampled(sums: _Sums) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    covered = sums.weight > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out_flux = np.where(covered, sums.flux / sums.weight, np.nan)
        out_var = np.where(covered, sums.variance / sums.weight**2, np.inf)
        out_ivar = np.where(covered & (out_var > 0), 1.0 / out_var, 0.0)
    coverage = sums.weight / (sums.hi - sums.lo)
    return out_flux, out_ivar, coverage


def _overlaps(wavelength: np.ndarray, new_wavelength: np.ndarray):
    """Input edges, output pixel edges (lo, hi) and the first and last input pixel overlapping each
    output pixel (inclusive)."""
    e_in = pixel_edges(wavelength)
    e_out = pixel_edges(new_wavelength)
    lo, hi = e_out[:-1], e_out[1:]
    first = np.clip(np.searchsorted(e_in, lo, side="right") - 1, 0, wavelength.size - 1)
    last = np.clip(np.searchsorted(e_in, hi, side="left") - 1, 0, wavelength.size - 1)
    return e_in, lo, hi, first, last


def neighbour_correlation(
    wavelength: np.ndarray,
    ivar: np.ndarray,
    new_wavelength: np.ndarray,
    good: np.ndarray,
) -> float:
    """The median correlation of the noise of neighbouring output pixels of :func:`resample`.

    Two neighbouring output pixels share the input pixel that straddles their common edge, so
    their noise is correlated: on a grid as fine as SDSS's pixels (``balmer``) each output pixel is
    two input pixels split at a fixed phase ``a`` and the correlation is
    ``a(1−a)/(a² + (1−a)²)``, up to 0.5. The variance of a sum over many pixels (a probability's
    response to the noise, :mod:`agnlens.explain.uncertainty`) is up to twice what the per-pixel
    ``ivar`` alone says. Pixels further apart share no input pixel when the output pixels are at
    least as wide as the input ones (true of the built-in grids for SDSS spectra).

    Parameters
    ----------
    wavelength, ivar, good : ndarray of shape (n_in,)
        As given to :func:`resample` (rest frame).
    new_wavelength : ndarray of shape (n_out,)

    Returns
    -------
    float
        The median over neighbouring pairs that share a good input pixel; 0 when none does.
    """
    wavelength = np.asarray(wavelength, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    good = np.asarray(good, dtype=bool) & np.isfinite(ivar) & (ivar > 0)
    return _correlation(_Sums(wavelength, np.zeros_like(ivar), ivar, np.asarray(new_wavelength, dtype=np.float64),
                              good))


def _correlation(sums: _Sums) -> float:
    """:func:`neighbour_correlation` from the resampling's sums."""
    out_w, lo, hi = sums.weight, sums.lo, sums.hi
    shared = sums.last[:-1]
    pair = (shared == sums.first[1:]) & (out_w[:-1] > 0) & (out_w[1:] > 0)
    if not np.any(pair):
        return 0.0
    j = np.flatnonzero(pair)
    i = shared[j]
    shared_w = sums.weights(lo[j], hi[j], i) * sums.weights(lo[j + 1], hi[j + 1], i)
    cov = shared_w * sums.var[i] / (out_w[j] * out_w[j + 1])
    sd = np.sqrt(sums.variance[j] * sums.variance[j + 1]) / (out_w[j] * out_w[j + 1])
    rho = np.divide(cov, sd, out=np.zeros(j.size), where=sd > 0)
    return float(np.median(rho))


def normalise(
    wavelength: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
    good: np.ndarray,
    window: tuple[float, float] = NORM_WINDOW,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Divide by the median good flux in ``window``; returns flux, ivar and the divisor.

    Raises
    ------
    ValueError
        If the window has no good pixel or its median flux is not positive.
    """
    sel = good & (wavelength >= window[0]) & (wavelength <= window[1])
    if not np.any(sel):
        raise ValueError(f"no good pixel in the normalisation window {window[0]:.0f}–{window[1]:.0f} Å")
    scale = float(np.median(flux[sel]))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(
            f"median flux in the normalisation window {window[0]:.0f}–{window[1]:.0f} Å is "
            f"{scale:.3g}, expected a positive value"
        )
    return flux / scale, ivar * scale**2, scale


def preprocess_one(
    spectrum: Spectrum,
    grid: str | Grid = "paper",
    max_bad_fraction: float = 0.1,
) -> Spectrum:
    """Rest frame, resample and normalise one spectrum onto ``grid``.

    Returns
    -------
    Spectrum
        On ``grid`` (``.grid`` set, rest frame): ``flux``, ``ivar`` of shape (n_pixels,) normalised,
        bad pixels linearly interpolated from their neighbours with ivar 0; ``mask`` True where bad
        or uncovered; ``meta`` the spectrum's metadata plus ``snr`` (median flux·√ivar over good
        pixels), ``norm_flux``, ``bad_fraction`` and ``pixel_corr`` (the noise correlation of
        neighbouring pixels, :func:`neighbour_correlation`).

    Raises
    ------
    RejectedSpectrum
        With the reason: no or negative redshift, no good pixel, too little of the grid covered,
        nothing to normalise by, or a normalised flux or ivar beyond the float32 range the sets
        and stores hold (a finite float64 value there would turn into ±inf).
    """
    grid = get_grid(grid)
    source = _source(spectrum)
    if grid.norm_window is None:
        raise ValueError(f"grid {grid.name!r} has no normalisation window; give it one to preprocess onto it")
    if not np.any(spectrum.good):
        raise RejectedSpectrum(source, "all pixels are bad (ivar = 0, masked or non-finite flux)")
    rest = to_rest_frame(spectrum)
    if rest.wavelength.size < 2:
        raise RejectedSpectrum(source, f"has {rest.wavelength.size} pixel(s); a spectrum needs many for a grid")
    # resampled once: the flux and ivar on the grid and the noise correlation of neighbouring pixels
    # (rest.good already excludes ivar <= 0 and non-finite flux; resample and neighbour_correlation
    # would each add the same finite-ivar condition)
    sums = _Sums(np.asarray(rest.wavelength, dtype=np.float64), np.asarray(rest.flux, dtype=np.float64),
                 np.asarray(rest.ivar, dtype=np.float64), grid.wavelength, rest.good & np.isfinite(rest.ivar))
    flux, ivar, coverage = _resampled(sums)
    good = coverage >= MIN_PIXEL_COVERAGE
    bad_fraction = 1.0 - good.mean()
    if bad_fraction > max_bad_fraction:
        obs = spectrum.wavelength
        raise RejectedSpectrum(
            source,
            f"covers only {100 * (1 - bad_fraction):.0f}% of the {grid.name} grid "
            f"({grid.wavelength[0]:.0f}–{grid.wavelength[-1]:.0f} Å rest; observed "
            f"{obs[0]:.0f}–{obs[-1]:.0f} Å at z = {spectrum.z:.4f}), more than "
            f"{100 * max_bad_fraction:.0f}% of the grid is bad or uncovered",
        )
    _check_sampling(source, rest, grid)
    try:
        flux, ivar, scale = normalise(grid.wavelength, flux, ivar, good, grid.norm_window)
    except ValueError as exc:
        raise RejectedSpectrum(source, str(exc)) from None
    _check_float32(source, grid.wavelength, flux, ivar, good, scale)
    # Fill bad pixels so that models see a continuous spectrum; their ivar stays 0.
    ivar = np.where(good, ivar, 0.0)
    flux = np.where(good, flux, np.interp(grid.wavelength, grid.wavelength[good], flux[good]))
    meta = dict(spectrum.meta)
    meta["snr"] = float(np.median(flux[good] * np.sqrt(ivar[good])))
    meta["norm_flux"] = scale
    meta["bad_fraction"] = float(bad_fraction)
    meta["pixel_corr"] = _correlation(sums)
    return Spectrum(grid.wavelength, flux, ivar, ~good, meta, frame="rest", grid=grid)


def _check_sampling(source: str, rest: Spectrum, grid: Grid) -> None:
    """Reject a spectrum with fewer good pixels over the grid's range than half the grid's: too
    short or too coarse to be put on it (a 2-pixel spectrum spanning the grid covered all of it)."""
    wl = np.asarray(rest.wavelength, dtype=float)
    lo, hi = float(grid.wavelength[0]), float(grid.wavelength[-1])
    n_good = int(np.count_nonzero(rest.good & (wl >= lo) & (wl <= hi)))
    needed = int(np.ceil(MIN_INPUT_SAMPLING * grid.wavelength.size))
    if n_good < needed:
        raise RejectedSpectrum(
            source,
            f"has {n_good} good pixel(s) over the {grid.name} grid's range ({lo:.0f}–{hi:.0f} Å rest), fewer "
            f"than {needed} (half the grid's {grid.wavelength.size}): too short or too coarse for it",
        )


def _check_float32(source: str, wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray,
                   good: np.ndarray, scale: float) -> None:
    """Reject a spectrum whose normalised good pixels would not survive the cast to float32."""
    for name, values in (("flux", flux), ("ivar", ivar)):
        over = good & ~(np.abs(values) <= FLOAT32_MAX)
        if np.any(over):
            i = int(np.flatnonzero(over)[np.argmax(np.abs(values[over]))])
            raise RejectedSpectrum(
                source,
                f"normalised {name} reaches {values[i]:.3g} at {wavelength[i]:.0f} Å (the spectrum was "
                f"divided by {scale:.3g}), beyond the float32 range (±{FLOAT32_MAX:.3g}) of a spectrum "
                f"set; a pixel or the continuum is wrong ({int(over.sum())} pixel(s) affected)",
            )


@dataclass
class Rejection:
    """A spectrum that was not accepted, and why."""

    source: str
    reason: str
    spec_id: str = ""

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def preprocess(
    spectra: Iterable[Spectrum],
    grid: str | Grid = "paper",
    max_bad_fraction: float = 0.1,
    provenance: dict | None = None,
) -> tuple[SpectrumSet, list[Rejection]]:
    """Preprocess many spectra onto one grid; a bad one is rejected, never fatal.

    Returns
    -------
    spectra : SpectrumSet
        The accepted spectra (float32 flux and ivar).
    rejected : list of Rejection
        One entry per spectrum that could not be used, with the reason.
    """
    grid = get_grid(grid)
    rows, rejected = [], []
    for spectrum in spectra:
        try:
            rows.append(preprocess_one(spectrum, grid, max_bad_fraction))
        except RejectedSpectrum as exc:
            log.debug("rejected %s", exc)
            rejected.append(Rejection(exc.source, exc.reason, spectrum.spec_id))
    prov = preprocessing_provenance(grid, max_bad_fraction)
    prov.update(provenance or {})
    return SpectrumSet.from_spectra(rows, grid, prov), rejected


def preprocessing_provenance(grid: Grid, max_bad_fraction: float) -> dict:
    """How spectra were put on ``grid``: stored with every set, store and model."""
    from agnlens._version import __version__

    window = grid.norm_window
    return {
        "grid": grid.to_dict(),
        "normalisation": "none" if window is None else f"median good flux in {window[0]:.0f}–{window[1]:.0f} Å (rest)",
        "resampling": "flux-conserving, overlap-weighted, inverse variance propagated",
        "max_bad_fraction": max_bad_fraction,
        "software": f"agnlens {__version__}",
    }


def _source(spectrum: Spectrum) -> str:
    return str(spectrum.meta.get("source") or spectrum.spec_id or "<spectrum>")
