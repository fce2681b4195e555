"""Merging a DESI target's camera arms (B, R, Z) onto one wavelength axis.

Where two arms overlap, each pixel is their inverse-variance weighted mean over the arms whose
pixel is good (masked pixels left out); elsewhere the one arm's values are kept bit for bit. Each
join is judged for a jump between the cameras (a flux-calibration mismatch shows as a step at
the join, which a classifier would read as a spectral feature).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agnlens.errors import ReadError

__all__ = ["JUMP_FRACTION", "JUMP_SIGMA", "MIN_OVERLAP_PIXELS", "ArmLayout", "Merged", "merge_arms", "merge_rows"]

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


@dataclass
class ArmLayout:
    """Where each arm's pixels go on the merged axis: the same for every target of a file, so built once.

    Attributes
    ----------
    arms : list of str
    wavelength : ndarray of shape (n,)
        The merged axis: every arm's wavelengths, each once.
    index : list of ndarray of int
        Per arm, its pixels' places on the merged axis.
    counts : ndarray of int, shape (n,)
        How many arms cover each merged pixel (2 on the overlaps).
    joins : list of (str, ndarray, ndarray)
        Per pair of neighbouring arms (``"B-R"``): the pixels of each at their common wavelengths.
    """

    arms: list[str]
    wavelength: np.ndarray
    index: list[np.ndarray]
    counts: np.ndarray
    joins: list[tuple[str, np.ndarray, np.ndarray]]

    @classmethod
    def build(cls, arms: Sequence[str], wavelengths: Sequence[np.ndarray], source: str = "<desi>") -> ArmLayout:
        """The layout of arms with these wavelengths; ReadError when they are not on one pixel grid."""
        keys = [_keys(w) for w in wavelengths]
        for arm, k in zip(arms, keys):
            if k.size > 1 and not np.all(np.diff(k) > 0):
                raise ReadError(source, f"the {arm} arm's wavelengths are not strictly increasing")
        axis = np.unique(np.concatenate(keys))
        index = [np.searchsorted(axis, k) for k in keys]
        wavelength = np.empty(axis.size)
        counts = np.zeros(axis.size, dtype=np.int64)
        for w, idx in zip(wavelengths, index):
            wavelength[idx] = w
            counts[idx] += 1
        joins = []
        for a in range(len(arms) - 1):
            common, ia, ib = np.intersect1d(keys[a], keys[a + 1], return_indices=True)
            lo, hi = max(keys[a][0], keys[a + 1][0]), min(keys[a][-1], keys[a + 1][-1])
            inside = int(((keys[a] >= lo) & (keys[a] <= hi)).sum()) if hi >= lo else 0
            if common.size < inside:
                raise ReadError(
                    source,
                    f"the {arms[a]} and {arms[a + 1]} arms overlap but are not on one pixel grid "
                    f"({inside - common.size} of the {arms[a]} arm's overlap pixels have no {arms[a + 1]} "
                    f"pixel at the same wavelength)",
                )
            joins.append((f"{arms[a]}-{arms[a + 1]}", ia, ib))
        return cls(list(arms), wavelength, index, counts, joins)


def merge_arms(
    arms: Sequence[str],
    wavelengths: Sequence[np.ndarray],
    fluxes: Sequence[np.ndarray],
    ivars: Sequence[np.ndarray],
    bad: Sequence[np.ndarray],
    *,
    source: str = "<desi>",
    layout: ArmLayout | None = None,
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
    layout : ArmLayout, optional
        :meth:`ArmLayout.build` of these arms and wavelengths, made once for many targets.

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
    layout = layout or ArmLayout.build(arms, wavelengths, source)
    return merge_rows(layout, [np.asarray(f)[None] for f in fluxes], [np.asarray(v)[None] for v in ivars],
                      [np.asarray(b)[None] for b in bad])[0]


def _span(idx: np.ndarray) -> slice | np.ndarray:
    """``idx`` as a slice when it is a contiguous run (cheap 2-D column access), else as it is."""
    if idx.size and idx[-1] - idx[0] + 1 == idx.size:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _nanmedian(x: np.ndarray, axis: int) -> np.ndarray:
    """Median over ``axis`` ignoring NaN; NaN (quietly) where everything is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": a target without good pixels
        return np.nanmedian(x, axis=axis)


@np.errstate(all="ignore")
def merge_rows(
    layout: ArmLayout,
    fluxes: Sequence[np.ndarray],
    ivars: Sequence[np.ndarray],
    bad: Sequence[np.ndarray],
) -> list[Merged]:
    """:func:`merge_arms` of many targets at once: per arm, arrays of shape (n_targets, n_arm_pixels).

    Returns
    -------
    list of Merged
        One per target (row), in order.
    """
    m, n = np.asarray(fluxes[0]).shape[0], layout.wavelength.size
    num, den = np.zeros((m, n)), np.zeros((m, n))
    fs = [np.asarray(f, dtype=np.float64) for f in fluxes]
    vs = [np.asarray(v, dtype=np.float64) for v in ivars]
    goods = []
    spans = [_span(idx) for idx in layout.index]
    for sel, f, iv, b in zip(spans, fs, vs, bad):  # an arm's pixels are distinct: plain += is exact
        good = ~np.asarray(b, dtype=bool) & np.isfinite(f) & np.isfinite(iv) & (iv > 0)
        goods.append(good)
        w = np.where(good, iv, 0.0)
        num[:, sel] += w * np.where(good, f, 0.0)
        den[:, sel] += w
    mask = ~(den > 0)
    flux = num / np.where(mask, 1.0, den)
    if mask.any():  # no good pixel here: the mean of the arms' finite values, for the eye (ivar is 0)
        rows, cols = np.nonzero(mask)
        total, count = np.zeros(rows.size), np.zeros(rows.size)
        for idx, f in zip(layout.index, fs):
            j = np.full(n, -1)
            j[idx] = np.arange(idx.size)
            at = j[cols]
            has = np.flatnonzero(at >= 0)
            v = f[rows[has], at[has]]
            fin = np.isfinite(v)
            total[has] += np.where(fin, v, 0.0)
            count[has] += fin
        flux[rows, cols] = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    for idx, sel, f in zip(layout.index, spans, fs):  # a pixel one arm alone covers keeps its value bit for bit
        alone = layout.counts[idx] == 1
        view = flux[:, sel]  # a view when the arm's pixels are contiguous on the axis (DESI's are)
        view[:, alone] = np.where(mask[:, sel][:, alone], view[:, alone], f[:, alone])
        if not isinstance(sel, slice):
            flux[:, sel] = view
    ivar = np.where(mask, 0.0, den)

    scale = _nanmedian(np.where(mask, np.nan, np.abs(flux)), axis=1)  # NaN for a row with no good pixel
    jumps: list[dict[str, float]] = [{} for _ in range(m)]
    flagged: list[list[str]] = [[] for _ in range(m)]
    for a, (name, ia, ib) in enumerate(layout.joins):
        ok = goods[a][:, ia] & goods[a + 1][:, ib]
        k = ok.sum(axis=1)
        fa = _nanmedian(np.where(ok, fs[a][:, ia], np.nan), axis=1)
        fb = _nanmedian(np.where(ok, fs[a + 1][:, ib], np.nan), axis=1)
        va = _nanmedian(np.where(ok, 1.0 / vs[a][:, ia], np.nan), axis=1)
        vb = _nanmedian(np.where(ok, 1.0 / vs[a + 1][:, ib], np.nan), axis=1)
        diff = fa - fb
        err = 1.2533 * np.sqrt((va + vb) / np.maximum(k, 1))  # standard error of a median: sqrt(pi/2) a mean's
        judged = (k >= MIN_OVERLAP_PIXELS) & np.isfinite(scale) & (scale > 0)
        for r in range(m):
            jumps[r][name] = float(diff[r] / scale[r]) if judged[r] else float("nan")
            if judged[r] and abs(diff[r]) > JUMP_SIGMA * err[r] and abs(diff[r]) > JUMP_FRACTION * scale[r]:
                flagged[r].append(name)
    return [Merged(layout.wavelength.copy(), flux[r], ivar[r], mask[r], jumps[r], flagged[r]) for r in range(m)]
