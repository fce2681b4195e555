"""Merging a DESI target's camera arms (B, R, Z) onto one wavelength axis.

Where two arms overlap, each pixel is their inverse-variance weighted mean over the arms whose
pixel is good (masked pixels left out); elsewhere the one arm's values are kept bit for bit. Each
join is judged for a jump between the cameras (a flux-calibration mismatch shows as a step at
the join, which a classifier would read as a spectral feature).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agnlens.errors import ReadError

__all__ = ["JUMP_FRACTION", "JUMP_SIGMA", "MIN_OVERLAP_PIXELS", "Merged", "merge_arms"]

#: A jump between two arms on their overlap is flagged when it exceeds both this many standard
#: errors and this share of the spectrum's typical flux.
JUMP_SIGMA = 5.0
JUMP_FRACTION = 0.1
#: Fewer good overlap pixels than this and a join is not judged.
MIN_OVERLAP_PIXELS = 20


@dataclass
class Merged:
    """One target's arms on one axis: wavelength, flux, ivar, mask (shape (n,)) and the joins judged."""

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    jumps: dict[str, float]  # "B-R" -> jump / typical flux, NaN when the join could not be judged
    flagged: list[str]  # joins whose jump is significant and large


def _keys(wavelength: np.ndarray) -> np.ndarray:
    """Wavelengths as integer milli-Ångström: arms on one pixel grid share keys exactly."""
    return np.rint(np.asarray(wavelength, dtype=np.float64) * 1000.0).astype(np.int64)


@np.errstate(all="ignore")
def merge_arms(
    arms: Sequence[str],
    wavelengths: Sequence[np.ndarray],
    fluxes: Sequence[np.ndarray],
    ivars: Sequence[np.ndarray],
    bad: Sequence[np.ndarray],
    *,
    source: str = "<desi>",
) -> Merged:
    """Merge camera arms onto one wavelength axis by inverse-variance weighting.

    Parameters
    ----------
    arms : sequence of str
        Arm names, blue to red (``"B", "R", "Z"``).
    wavelengths, fluxes, ivars : sequence of ndarray of shape (n_arm_pixels,)
        Per arm; the arms must share one pixel grid where they overlap (DESI's do: 0.8 Å pixels
        from 3600 Å).
    bad : sequence of ndarray of bool, shape (n_arm_pixels,)
        True where an arm's pixel must not be used (mask bits set, ivar ≤ 0, not finite).
    source : str
        For messages.

    Returns
    -------
    Merged
        ``flux = Σ ivarᵢ fluxᵢ / Σ ivarᵢ`` and ``ivar = Σ ivarᵢ`` over the good arm pixels at each
        wavelength (a pixel one arm alone covers keeps that arm's values exactly); ``mask`` where
        no arm has a good pixel (flux there is the mean of the arms' finite values, ivar 0). Each
        join is judged on its good common pixels: ``jumps`` holds the median difference of the two
        arms there over the spectrum's median absolute flux, and ``flagged`` the joins where it
        exceeds :data:`JUMP_FRACTION` and :data:`JUMP_SIGMA` standard errors.

    Raises
    ------
    ReadError
        Two overlapping arms not on one pixel grid, or an arm's wavelengths not increasing.
    """
    keys = [_keys(w) for w in wavelengths]
    for arm, k in zip(arms, keys):
        if k.size > 1 and not np.all(np.diff(k) > 0):
            raise ReadError(source, f"the {arm} arm's wavelengths are not strictly increasing")
    axis = np.unique(np.concatenate(keys))
    index = [np.searchsorted(axis, k) for k in keys]
    n = axis.size
    wavelength = np.empty(n)
    num, den = np.zeros(n), np.zeros(n)
    raw_sum, raw_n = np.zeros(n), np.zeros(n)
    for w, idx, f, iv, b in zip(wavelengths, index, fluxes, ivars, bad):
        wavelength[idx] = w
        f = np.asarray(f, dtype=np.float64)
        iv = np.asarray(iv, dtype=np.float64)
        good = ~np.asarray(b, dtype=bool) & np.isfinite(f) & np.isfinite(iv) & (iv > 0)
        np.add.at(num, idx[good], iv[good] * f[good])
        np.add.at(den, idx[good], iv[good])
        fin = np.isfinite(f)
        np.add.at(raw_sum, idx[fin], f[fin])
        np.add.at(raw_n, idx[fin], 1.0)
    mask = ~(den > 0)
    flux = np.where(mask, np.where(raw_n > 0, raw_sum / np.maximum(raw_n, 1), 0.0), num / np.where(mask, 1.0, den))
    # a pixel one arm alone covers keeps that arm's value bit for bit (no num/den round trip)
    counts = np.zeros(n, dtype=np.int64)
    for idx in index:
        counts[idx] += 1
    for idx, f in zip(index, fluxes):
        keep = (counts[idx] == 1) & ~mask[idx]
        flux[idx[keep]] = np.asarray(f, dtype=np.float64)[keep]

    jumps: dict[str, float] = {}
    flagged: list[str] = []
    scale = float(np.median(np.abs(flux[~mask]))) if np.any(~mask) else np.nan
    for a in range(len(arms) - 1):
        name = f"{arms[a]}-{arms[a + 1]}"
        common, ia, ib = np.intersect1d(keys[a], keys[a + 1], return_indices=True)
        lo, hi = max(keys[a][0], keys[a + 1][0]), min(keys[a][-1], keys[a + 1][-1])
        if hi >= lo:
            inside = (keys[a] >= lo) & (keys[a] <= hi)
            if common.size < int(inside.sum()):
                raise ReadError(
                    source,
                    f"the {arms[a]} and {arms[a + 1]} arms overlap but are not on one pixel grid "
                    f"({int(inside.sum()) - common.size} of the {arms[a]} arm's overlap pixels have no "
                    f"{arms[a + 1]} pixel at the same wavelength)",
                )
        fa, fb = np.asarray(fluxes[a], dtype=np.float64)[ia], np.asarray(fluxes[a + 1], dtype=np.float64)[ib]
        va, vb = np.asarray(ivars[a], dtype=np.float64)[ia], np.asarray(ivars[a + 1], dtype=np.float64)[ib]
        ok = (~np.asarray(bad[a], dtype=bool)[ia] & ~np.asarray(bad[a + 1], dtype=bool)[ib]
              & np.isfinite(fa) & np.isfinite(fb) & (va > 0) & (vb > 0))
        m = int(ok.sum())
        if m < MIN_OVERLAP_PIXELS or not np.isfinite(scale) or scale <= 0:
            jumps[name] = float("nan")
            continue
        diff = float(np.median(fa[ok]) - np.median(fb[ok]))
        # standard error of a median: sqrt(pi/2) times that of a mean
        err = 1.2533 * float(np.sqrt(np.median(1.0 / va[ok]) / m + np.median(1.0 / vb[ok]) / m))
        jumps[name] = diff / scale
        if abs(diff) > JUMP_SIGMA * err and abs(diff) > JUMP_FRACTION * scale:
            flagged.append(name)
    return Merged(wavelength, flux, np.where(mask, 0.0, den), mask, jumps, flagged)
