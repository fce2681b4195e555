"""Physical features of preprocessed spectra: the numbers an astronomer compares first.

:func:`spectral_features` measures, for every spectrum of a rest-frame normalised
:class:`~agnlens.spectra.SpectrumSet`, its S/N, continuum slope, 4000 Å break, blue end, broad
Hβ and Hα widths, broad/narrow Hα, narrow-line width, [O III]/Hβ (total and narrow), [N II]/Hα,
narrow Balmer decrement, optical Fe II strength, [O III] equivalent width, and the [O III] profile
(core centroid, wing share). The line quantities come from the Gaussian fits of
:class:`agnlens.models.baseline.PhysicsBaseline` (its public ``measure``), the [O III] profile's
from the flux above a straight continuum; the continuum quantities are window measurements over
good pixels (``ivar > 0``). A quantity whose windows the
grid or the spectrum does not cover is NaN — never a guess.

This module sits at the level of ``models`` (it calls the baseline fitter); ``realism``,
``report`` and the docs can reuse it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from agnlens.lines import NORM_WINDOW, line, velocity
from agnlens.spectra import SpectrumSet

__all__ = ["FEATURES", "spectral_features"]

#: Feature name → what it is (units). The order is the order of the table columns.
FEATURES: dict[str, str] = {
    "snr_5100": "median S/N per pixel in the rest 5075–5125 Å continuum",
    "continuum_slope": "α_λ of F_λ ∝ λ^α between the 4180–4240 and 5075–5125 Å windows",
    "dn4000": "4000 Å break, <F_ν> 4000–4100 / 3850–3950 Å (Balogh et al. 1999)",
    "blue_end": "<F_λ> 3700–3720 / 4000–4100 Å (the Balmer continuum's and blended Balmer lines' foot)",
    "fwhm_broad_hbeta": "intrinsic FWHM of broad Hβ (km/s), where a broad component counts",
    "fwhm_broad_halpha": "intrinsic FWHM of broad Hα (km/s), where a broad component counts",
    "broad_narrow_halpha": "broad Hα / narrow Hα flux, where a broad Hα component counts",
    "fwhm_narrow": "intrinsic FWHM of the narrow lines (km/s), tied to [O III] 5008 in the Hβ complex",
    "oiii_hbeta": "[O III] 5008 / Hβ (narrow + broad)",
    "oiii_hbeta_narrow": "[O III] 5008 / narrow Hβ (the BPT ratio)",
    "nii_halpha": "[N II] 6585 / narrow Hα",
    "narrow_balmer_decrement": "narrow Hα / narrow Hβ",
    "r_feii": "Fe II 4434–4684 Å excess over the continuum / broad Hβ flux",
    "ew_oiii": "equivalent width of [O III] 5008 (Å) against the 5100 Å continuum",
    "oiii_shift": "centroid (km/s) of the [O III] 5008 core (above half its peak) from the rest wavelength",
    "oiii_wing": "share of the [O III] 5008 flux within ±2,000 km/s that lies beyond ±600 km/s",
}

# Continuum windows (rest Å) for the slope and the Fe II pseudo-continuum: nearly line-free in
# AGN spectra (between Hδ and Hγ; beside the normalisation window).
_BLUE = (4180.0, 4240.0)
_RED = NORM_WINDOW
_FEII = (4434.0, 4684.0)
_DN_BLUE = (3850.0, 3950.0)
_DN_RED = (4000.0, 4100.0)
_BLUE_END = (3700.0, 3720.0)
# [O III] 5008: a straight continuum through two windows beside it, the profile within ±2,000 km/s
_OIII_CONT = ((4975.0, 4985.0), (5035.0, 5045.0))
# A window counts as measured when at least this share of its pixels is good.
_MIN_GOOD = 0.5


def spectral_features(spectra: SpectrumSet, *, lines: bool = True) -> pd.DataFrame:
    """Measure :data:`FEATURES` for every spectrum.

    Parameters
    ----------
    spectra : SpectrumSet
        Rest frame, normalised at 5100 Å (as :func:`agnlens.preprocess.preprocess` makes them),
        on a grid that covers the Hβ + [O III] window (4640–5080 Å) when ``lines`` is True.
    lines : bool, default True
        Fit the lines with the physics baseline (about 10 ms per spectrum); False leaves the line
        features NaN (for a quick look at the continuum).

    Returns
    -------
    pandas.DataFrame
        One row per spectrum: ``spec_id`` then the :data:`FEATURES` columns (float, NaN where not
        measurable).
    """
    if not isinstance(spectra, SpectrumSet):
        raise TypeError(f"spectral_features expects a SpectrumSet, got {type(spectra).__name__}")
    wl = spectra.wavelength
    flux = np.asarray(spectra.flux, dtype=float)
    ivar = np.asarray(spectra.ivar, dtype=float)
    good = (ivar > 0) & ~np.asarray(spectra.mask, dtype=bool) & np.isfinite(flux)
    out = pd.DataFrame({"spec_id": spectra.spec_id})
    with np.errstate(invalid="ignore", divide="ignore"):
        out["snr_5100"] = _window_median(wl, flux * np.sqrt(ivar), good, NORM_WINDOW)
        blue = _window_median(wl, flux, good, _BLUE)
        red = _window_median(wl, flux, good, _RED)
        out["continuum_slope"] = np.log10(red / blue) / np.log10(np.mean(_RED) / np.mean(_BLUE))
        fnu = flux * wl**2  # F_ν ∝ λ² F_λ; the constant cancels in the ratio
        out["dn4000"] = _window_mean(wl, fnu, good, _DN_RED) / _window_mean(wl, fnu, good, _DN_BLUE)
        out["blue_end"] = _window_mean(wl, flux, good, _BLUE_END) / _window_mean(wl, flux, good, _DN_RED)
    for name in list(FEATURES)[4:]:
        out[name] = np.nan
    if lines and len(spectra):
        _line_features(spectra, out, blue, red, wl, flux, good)
    return out


def _line_features(spectra, out, blue, red, wl, flux, good) -> None:
    from agnlens.models.baseline import PhysicsBaseline

    table = PhysicsBaseline().fit(spectra).measure(spectra)
    hb_broad = table["hb_broad"].to_numpy(bool)
    ha_broad = table["ha_broad"].to_numpy(bool)
    out["fwhm_broad_hbeta"] = np.where(hb_broad, table["hb_fwhm_broad"], np.nan)
    out["fwhm_broad_halpha"] = np.where(ha_broad, table["ha_fwhm_broad"], np.nan)
    out["fwhm_narrow"] = table["hb_fwhm_narrow"].to_numpy(float)
    out["oiii_hbeta"] = table["r_oiii_hb"].to_numpy(float)
    out["oiii_hbeta_narrow"] = table["oiii_hb_narrow"].to_numpy(float)
    out["nii_halpha"] = table["nii_ha"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        hbn = table["hb_flux_narrow"].to_numpy(float)
        han = table["ha_flux_narrow"].to_numpy(float)
        out["narrow_balmer_decrement"] = np.where((hbn > 0) & (han > 0), han / hbn, np.nan)
        hab = table["ha_flux_broad"].to_numpy(float)
        out["broad_narrow_halpha"] = np.where(ha_broad & (han > 0), hab / han, np.nan)
        # Fe II: the flux above a power-law pseudo-continuum through the two continuum windows.
        slope = np.log(red / blue) / np.log(np.mean(_RED) / np.mean(_BLUE))
        sel = (wl >= _FEII[0]) & (wl <= _FEII[1])
        cont = blue[:, None] * (wl[sel][None, :] / np.mean(_BLUE)) ** slope[:, None]
        excess = np.where(good[:, sel], flux[:, sel] - cont, 0.0)
        dl = np.gradient(wl)[sel]
        covered = good[:, sel].mean(axis=1) >= _MIN_GOOD if sel.any() else np.zeros(len(out), bool)
        feii = np.where(covered, (excess * dl).sum(axis=1) / np.maximum(good[:, sel].mean(axis=1), 1e-9), np.nan)
        hbb = table["hb_flux_broad"].to_numpy(float)
        out["r_feii"] = np.where(hb_broad & (hbb > 0), feii / hbb, np.nan)
        out["ew_oiii"] = table["oiii_flux"].to_numpy(float) / red
    out["oiii_shift"], out["oiii_wing"] = _oiii_profile(wl, flux, good)


def _oiii_profile(wl, flux, good) -> tuple[np.ndarray, np.ndarray]:
    """[O III] 5008 core centroid (km/s) and wing share, without a fit; NaN where not measurable."""
    a, b = (_window_median(wl, flux, good, w) for w in _OIII_CONT)
    x1, x2 = (np.mean(w) for w in _OIII_CONT)
    v = velocity(wl, line("OIII_5008").wavelength)
    sel = np.abs(v) <= 2000.0
    if not sel.any():
        return np.full(len(flux), np.nan), np.full(len(flux), np.nan)
    profile = flux[:, sel] - (a[:, None] + (b - a)[:, None] * (wl[sel][None, :] - x1) / (x2 - x1))
    vs = v[sel]
    with np.errstate(invalid="ignore", divide="ignore"):
        core = profile >= 0.5 * np.max(profile, axis=1, keepdims=True)
        shift = np.sum(np.where(core, profile * vs, 0.0), axis=1) / np.sum(np.where(core, profile, 0.0), axis=1)
        wing = np.sum(np.where(np.abs(vs) > 600.0, profile, 0.0), axis=1) / np.sum(profile, axis=1)
    # bad pixels come filled by interpolation: a few (a sky line) leave the measure usable
    ok = (good[:, sel].mean(axis=1) >= 0.8) & (np.sum(profile, axis=1) > 0) & np.isfinite(a) & np.isfinite(b)
    return np.where(ok, shift, np.nan), np.where(ok, wing, np.nan)


def _window_values(wl, values, good, window):
    sel = (wl >= window[0]) & (wl <= window[1])
    if not sel.any():
        return None, None
    v = np.where(good[:, sel], values[:, sel], np.nan)
    ok = good[:, sel].mean(axis=1) >= _MIN_GOOD
    return v, ok


def _window_median(wl, values, good, window) -> np.ndarray:
    """Median of the good values in ``window`` per spectrum; NaN when the window is not covered."""
    v, ok = _window_values(wl, values, good, window)
    if v is None:
        return np.full(values.shape[0], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows → NaN, as wanted
        return np.where(ok, np.nanmedian(v, axis=1), np.nan)


def _window_mean(wl, values, good, window) -> np.ndarray:
    """Mean of the good values in ``window`` per spectrum; NaN when the window is not covered."""
    v, ok = _window_values(wl, values, good, window)
    if v is None:
        return np.full(values.shape[0], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.where(ok, np.nanmean(v, axis=1), np.nan)
