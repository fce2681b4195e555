"""Redshift check: do the narrow lines sit where the catalogue redshift puts them?

A spectrum placed at the wrong redshift is explained as if its lines were missing. This module
measures the velocity offset of the narrow emission lines ([O II], [Ne III], Hβ, [O III], Hα,
[N II]) from their expected rest wavelengths, in two steps:

1. the continuum (and most of any broad line) is removed with a running median ``MEDIAN_KMS`` wide;
   the residual is cross-correlated, weighted by the inverse variance, with a template of narrow
   Gaussians at the lines' rest wavelengths over ±``SEARCH_KMS``;
2. around the correlation peak every line is fitted with a Gaussian on a straight continuum
   (:func:`scipy.optimize.curve_fit`); the lines detected at ≥ ``MIN_LINE_SNR`` σ give one velocity
   each, and the offset is their inverse-variance mean with an error that also covers their scatter.

Velocities are ``c ln(λ_measured / λ_expected)``, positive when the lines are redder than the
redshift says; the corrected redshift is ``(1 + z) exp(Δv / c) - 1`` (:func:`corrected_z`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from agnlens.lines import C_KMS, line

#: Narrow lines used, with template weights (typical relative strengths in AGN).
NARROW_LINES = {
    "OII_3727": 0.25, "OII_3730": 0.25, "NeIII_3870": 0.15, "Hbeta": 0.3, "OIII_4960": 0.33,
    "OIII_5008": 1.0, "NII_6550": 0.2, "Halpha": 1.0, "NII_6585": 0.6,
}
#: Lines fitted one by one (Å); the [O II] 3727/3730 doublet is unresolved at SDSS resolution and is
#: fitted as one line at its mean wavelength.
FITTED_LINES = {
    "OII_3727+3730": 3728.48, **{n: line(n).wavelength for n in NARROW_LINES if not n.startswith("OII")},
}
#: Half-width (km/s) of the window fitted around each line, centred on the correlation peak.
FIT_HALF_WIDTH_KMS = 1200.0
#: A fitted line centre further than this from the correlation peak is not used (km/s).
MAX_SHIFT_FROM_PEAK_KMS = 600.0
#: Width of the running median that removes continuum and broad lines (km/s).
MEDIAN_KMS = 3000.0
#: Cross-correlation search range ± (km/s) and step.
SEARCH_KMS = 8000.0
STEP_KMS = 40.0
#: Template line width (Gaussian sigma, km/s): a typical narrow line at SDSS resolution.
TEMPLATE_SIGMA_KMS = 150.0
#: A line counts when its fitted amplitude is at least this many standard errors.
MIN_LINE_SNR = 5.0
#: |Δv| above this (and above 3 σ) is flagged ``redshift-offset``.
MAX_OFFSET_KMS = 500.0


@dataclass
class RedshiftCheck:
    """The narrow-line velocity offset of one spectrum.

    Attributes
    ----------
    offset_kms : float
        Δv of the narrow lines from the assumed redshift (NaN when no line was detected).
    error_kms : float
        Its 1 σ error.
    lines : list of str
        Names of the lines that gave a velocity.
    """

    offset_kms: float = np.nan
    error_kms: float = np.nan
    lines: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """|Δv| > :data:`MAX_OFFSET_KMS` and more than 3 σ from zero."""
        v, e = self.offset_kms, self.error_kms
        return bool(np.isfinite(v) and abs(v) > MAX_OFFSET_KMS and abs(v) > 3.0 * e)


def corrected_z(z: float, offset_kms: float) -> float:
    """The redshift that puts the lines at rest: ``(1 + z) exp(Δv / c) - 1``."""
    return float((1.0 + z) * np.exp(offset_kms / C_KMS) - 1.0)


def _running_median(loglam: np.ndarray, flux: np.ndarray, good: np.ndarray, width_kms: float) -> np.ndarray:
    """Running median ``width_kms`` wide (bad pixels interpolated over first); the pixel width is
    taken as the median velocity step, which is exact on log-λ grids and close on linear ones."""
    from scipy.ndimage import median_filter

    step_kms = float(np.median(np.diff(loglam))) * np.log(10.0) * C_KMS
    size = max(3, int(round(width_kms / step_kms)) | 1)
    filled = np.interp(loglam, loglam[good], flux[good])
    return median_filter(filled, size=size, mode="nearest")


@functools.lru_cache(maxsize=8)
def _templates(wl_bytes: bytes) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The cross-correlation shifts and, per narrow line the grid reaches, its pixels and its
    template at every shift — they depend on the wavelength grid only, so a set of spectra on one
    grid computes them once (they were half of the check's time)."""
    wl = np.frombuffer(wl_bytes, dtype=np.float64)
    reach = SEARCH_KMS + 5 * TEMPLATE_SIGMA_KMS
    names = [n for n in NARROW_LINES
             if wl[0] < line(n).wavelength * np.exp(-reach / C_KMS)
             and line(n).wavelength * np.exp(reach / C_KMS) < wl[-1]]
    vel = np.log(wl)[:, None]  # ln λ; the template of a line at v sits at ln λ_l + v / c
    shifts = np.arange(-SEARCH_KMS, SEARCH_KMS + STEP_KMS / 2, STEP_KMS)
    sig = TEMPLATE_SIGMA_KMS / C_KMS
    templates = []
    for n in names:
        centre = np.log(line(n).wavelength) + shifts / C_KMS
        near = np.flatnonzero(np.abs(vel[:, 0] - np.log(line(n).wavelength)) < (reach + 5 * TEMPLATE_SIGMA_KMS) / C_KMS)
        t = NARROW_LINES[n] * np.exp(-0.5 * ((vel[near] - centre[None, :]) / sig) ** 2)
        t.flags.writeable = False
        templates.append((near, t))
    return shifts, templates


def _gauss_line(x, amp, centre, sigma, c0, c1):
    return amp * np.exp(-0.5 * ((x - centre) / sigma) ** 2) + c0 + c1 * x


def check_redshift(wavelength, flux, ivar, mask=None) -> RedshiftCheck:
    """Velocity offset of the narrow lines of one rest-frame spectrum.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
        Rest-frame wavelength (Å) at the assumed redshift, increasing.
    flux, ivar : ndarray of shape (n_pixels,)
    mask : ndarray of bool, shape (n_pixels,), optional
        True where a pixel is bad (besides ``ivar == 0``).

    Returns
    -------
    RedshiftCheck
    """
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    wl = np.asarray(wavelength, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    if wl.ndim != 1 or flux.shape != wl.shape or ivar.shape != wl.shape:
        raise ValueError(
            f"check_redshift needs wavelength, flux and ivar of one shape (n_pixels,), got "
            f"{wl.shape}, {flux.shape} and {ivar.shape}"
        )
    good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar)
    if mask is not None:
        good &= ~np.asarray(mask, dtype=bool)
    shifts, templates = _templates(wl.tobytes())
    if good.sum() < 20 or not templates:
        return RedshiftCheck()
    loglam = np.log10(wl)
    resid = flux - _running_median(loglam, flux, good, MEDIAN_KMS)
    w = np.where(good & np.isfinite(resid), ivar, 0.0)
    resid = np.where(w > 0, resid, 0.0)
    num = np.zeros(shifts.size)
    den = np.zeros(shifts.size)
    for near, t in templates:
        num += (w[near, None] * resid[near, None] * t).sum(axis=0)
        den += (w[near, None] * t * t).sum(axis=0)
    ccf = np.where(den > 0, num / np.sqrt(np.maximum(den, 1e-300)), -np.inf)
    v0 = float(shifts[int(np.argmax(ccf))])

    velocities, errors, used = [], [], []
    for name, rest in FITTED_LINES.items():
        x = C_KMS * (np.log(wl) - np.log(rest))  # velocity of every pixel relative to this line
        sel = good & (np.abs(x - v0) < FIT_HALF_WIDTH_KMS)
        if sel.sum() < 8:
            continue
        xs, ys = x[sel], resid[sel]
        p0 = [max(float(ys.max()), 1e-3), v0, TEMPLATE_SIGMA_KMS, 0.0, 0.0]
        try:  # Levenberg-Marquardt (fast); the bounds are checked afterwards
            with warnings.catch_warnings():  # an undetermined covariance is caught below
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, pcov = curve_fit(_gauss_line, xs - v0, ys, p0=[p0[0], 0.0, *p0[2:]],
                                       sigma=1.0 / np.sqrt(ivar[sel]), absolute_sigma=True, maxfev=400)
        except (RuntimeError, ValueError):
            continue
        perr = np.sqrt(np.clip(np.diag(pcov), 0.0, np.inf))
        amp, centre, width = popt[0], popt[1] + v0, abs(popt[2])
        if not (np.all(np.isfinite(perr)) and perr[0] > 0 and perr[1] > 0 and amp / perr[0] >= MIN_LINE_SNR
                and abs(centre - v0) < MAX_SHIFT_FROM_PEAK_KMS and 40.0 <= width <= 600.0):
            continue
        velocities.append(centre)
        errors.append(perr[1])
        used.append(name)
    if not velocities:
        return RedshiftCheck()
    v, e = np.asarray(velocities), np.asarray(errors)
    wgt = 1.0 / e**2
    mean = float(np.sum(wgt * v) / wgt.sum())
    formal = float(np.sqrt(1.0 / wgt.sum()))
    scatter = float(np.std(v, ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return RedshiftCheck(mean, max(formal, scatter), used)


def check_spectrum(spectrum) -> RedshiftCheck:
    """:func:`check_redshift` of an observed-frame :class:`~agnlens.spectra.Spectrum` at its ``z``."""
    z = spectrum.z
    if not np.isfinite(z) or z < 0:
        return RedshiftCheck()
    wl = spectrum.wavelength if spectrum.frame == "rest" else spectrum.wavelength / (1.0 + z)
    return check_redshift(wl, spectrum.flux, spectrum.ivar, spectrum.mask)


def check_set(spectra) -> list[RedshiftCheck]:
    """:func:`check_redshift` of every spectrum of a (rest-frame) :class:`~agnlens.spectra.SpectrumSet`."""
    return [
        check_redshift(spectra.wavelength, spectra.flux[i], spectra.ivar[i], spectra.mask[i])
        for i in range(len(spectra))
    ]
