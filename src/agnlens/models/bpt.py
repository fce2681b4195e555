"""The BPT diagram's published demarcation curves, in one place, and a classifier that uses them.

x = log10([N II] 6585 / Hα), y = log10([O III] 5008 / Hβ) (narrow components):

* Kewley et al. 2001 (ApJ 556, 121), the maximum starburst line:
  y = 0.61 / (x − 0.47) + 1.19; above it (or right of x = 0.47) the lines need an AGN.
* Kauffmann et al. 2003 (MNRAS 346, 1055), the empirical star-forming sequence's upper edge:
  y = 0.61 / (x − 0.05) + 1.30; between the two curves lie *composites*.
* Kewley et al. 2006 (MNRAS 372, 961), Seyfert vs LINER, on the [S II] and [O I] diagrams:
  y = 1.89 log10([S II] 6718+6733 / Hα) + 0.76 and y = 1.18 log10([O I] 6302 / Hα) + 1.30. The
  baseline's fits do not reach [S II] or [O I] (the ``balmer`` grid ends at 6700 Å), so without
  them the AGN branch is split at [O III]/Hβ = 3 (y = 0.48; Ho, Filippenko & Sargent 1997; the
  Seyfert threshold DOMAIN.md quotes).

A class is only given when the four lines are measured: each at S/N ≥ :data:`MIN_BPT_SNR` (3, the
cut of Kauffmann et al. 2003 and Brinchmann et al. 2004). A ratio over a line lost in the noise
puts a spectrum anywhere on the diagram — a quasar whose fit gives [N II] ≈ 0 would otherwise be
"star-forming".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "BPT_CLASSES", "BPT_LINES", "MIN_BPT_SNR", "bpt_class", "bpt_snr", "kauffmann03", "kewley01", "kewley06_oi",
    "kewley06_sii",
]

#: The classes :func:`bpt_class` gives; ``""`` when a ratio is missing (Hα not covered, no line).
BPT_CLASSES = ("star-forming", "composite", "seyfert", "liner")
#: [O III]/Hβ above which an AGN is a Seyfert when [S II] and [O I] are not measured.
SEYFERT_OIII_HB = 3.0
#: Least S/N (flux / its 1 σ error) of each of Hβ, [O III] 5008, Hα and [N II] 6585 for a BPT class.
MIN_BPT_SNR = 3.0


def kewley01(x):
    """Kewley et al. 2001 maximum starburst line: log [O III]/Hβ as a function of log [N II]/Hα (x < 0.47)."""
    return 0.61 / (np.asarray(x, dtype=float) - 0.47) + 1.19


def kauffmann03(x):
    """Kauffmann et al. 2003 star-forming boundary: log [O III]/Hβ as a function of log [N II]/Hα (x < 0.05)."""
    return 0.61 / (np.asarray(x, dtype=float) - 0.05) + 1.30


def kewley06_sii(x_sii):
    """Kewley et al. 2006 Seyfert/LINER line on the [S II] diagram: log [O III]/Hβ at log [S II]/Hα."""
    return 1.89 * np.asarray(x_sii, dtype=float) + 0.76


def kewley06_oi(x_oi):
    """Kewley et al. 2006 Seyfert/LINER line on the [O I] diagram: log [O III]/Hβ at log [O I]/Hα."""
    return 1.18 * np.asarray(x_oi, dtype=float) + 1.30


def bpt_class(nii_ha, oiii_hb, sii_ha=None, *, snr=None) -> np.ndarray:
    """BPT class of each spectrum from its narrow-line ratios.

    Parameters
    ----------
    nii_ha, oiii_hb : array-like of shape (n,)
        [N II] 6585 / Hα and [O III] 5008 / Hβ (narrow, linear ratios). NaN, 0 or inf: no class.
    sii_ha : array-like of shape (n,), optional
        [S II] 6718+6733 / Hα; splits Seyferts from LINERs by Kewley et al. 2006. Without it the
        split is at [O III]/Hβ = 3.
    snr : array-like of shape (n,), optional
        The least S/N of the four lines; below :data:`MIN_BPT_SNR` (or NaN) the class is ``""``.
        Without it every finite ratio is classified.

    Returns
    -------
    ndarray of str, shape (n,)
        ``"star-forming"``, ``"composite"``, ``"seyfert"``, ``"liner"``, or ``""``.
    """
    n2 = np.atleast_1d(np.asarray(nii_ha, dtype=float))
    o3 = np.atleast_1d(np.asarray(oiii_hb, dtype=float))
    if n2.shape != o3.shape:
        raise ValueError(f"bpt_class: nii_ha has shape {n2.shape} but oiii_hb has shape {o3.shape}")
    out = np.full(n2.shape, "", dtype=object)
    ok = np.isfinite(n2) & np.isfinite(o3) & (n2 > 0) & (o3 > 0)
    if snr is not None:
        least = np.atleast_1d(np.asarray(snr, dtype=float))
        if least.shape != n2.shape:
            raise ValueError(f"bpt_class: snr has shape {least.shape} but the ratios have shape {n2.shape}")
        ok &= np.nan_to_num(least, nan=-np.inf) >= MIN_BPT_SNR
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = np.log10(np.where(ok, n2, 1.0)), np.log10(np.where(ok, o3, 1.0))
        agn = (x >= 0.47) | (y > kewley01(x))
        star = (x < 0.05) & (y < kauffmann03(x))
        if sii_ha is None:
            seyfert = y > np.log10(SEYFERT_OIII_HB)
        else:
            s2 = np.atleast_1d(np.asarray(sii_ha, dtype=float))
            has = np.isfinite(s2) & (s2 > 0)
            seyfert = np.where(has, y > kewley06_sii(np.log10(np.where(has, s2, 1.0))), y > np.log10(SEYFERT_OIII_HB))
    out[ok & star] = "star-forming"
    out[ok & ~star & ~agn] = "composite"
    out[ok & agn & seyfert] = "seyfert"
    out[ok & agn & ~seyfert] = "liner"
    return out.astype(str)


#: The BPT lines as (flux, error) columns of :meth:`agnlens.models.baseline.PhysicsBaseline.measure`.
BPT_LINES = (("hb_flux_narrow", "hb_flux_narrow_err"), ("oiii_flux", "oiii_flux_err"),
             ("ha_flux_narrow", "ha_flux_narrow_err"), ("nii_flux", "nii_flux_err"))


def bpt_snr(table: pd.DataFrame) -> np.ndarray:
    """The least S/N of the four BPT lines (narrow Hβ, [O III] 5008, narrow Hα, [N II] 6585).

    Parameters
    ----------
    table : DataFrame
        From :meth:`agnlens.models.baseline.PhysicsBaseline.measure` (the flux and error columns of :data:`BPT_LINES`).

    Returns
    -------
    ndarray of shape (n_spectra,)
        NaN where a line was not fitted (Hα not covered); 0 where an error is 0 (a degenerate fit).
    """
    snr = [np.divide(table[f].to_numpy(float), table[e].to_numpy(float),
                     out=np.zeros(len(table)), where=table[e].to_numpy(float) > 0) for f, e in BPT_LINES]
    nan = np.any([~np.isfinite(table[f].to_numpy(float)) | ~np.isfinite(table[e].to_numpy(float))
                  for f, e in BPT_LINES], axis=0)
    return np.where(nan, np.nan, np.min(snr, axis=0)) if len(table) else np.empty(0)
