"""The line list: emission and absorption features, Fe II bands and continuum windows.

Wavelengths are vacuum Å, as SDSS uses. Used by preprocessing (the
normalisation window), the simulator, the line-level explanations and the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

C_KMS = 299_792.458
#: FWHM of a Gaussian over its standard deviation, 2·sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class Line:
    """A spectral feature at ``wavelength`` (vacuum Å).

    ``kind`` is ``"broad"`` for permitted lines that have a broad component in type 1 AGN,
    ``"narrow"`` for forbidden lines, ``"absorption"`` for stellar absorption features.
    """

    name: str
    wavelength: float
    kind: str
    label: str


@dataclass(frozen=True)
class Band:
    """A wavelength range (Å): an Fe II blend or a continuum window."""

    name: str
    lo: float
    hi: float
    kind: str


LINES: tuple[Line, ...] = (
    Line("OII_3727", 3727.09, "narrow", "[O II]"),
    Line("OII_3730", 3729.88, "narrow", "[O II]"),
    Line("NeIII_3870", 3869.86, "narrow", "[Ne III]"),
    Line("CaII_K", 3934.78, "absorption", "Ca K"),
    Line("CaII_H", 3969.59, "absorption", "Ca H"),
    Line("Hdelta", 4102.89, "broad", "Hδ"),
    Line("Gband", 4305.0, "absorption", "G band"),
    Line("Hgamma", 4341.68, "broad", "Hγ"),
    Line("HeII_4687", 4687.02, "broad", "He II"),
    Line("Hbeta", 4862.68, "broad", "Hβ"),
    Line("OIII_4960", 4960.30, "narrow", "[O III]"),
    Line("OIII_5008", 5008.24, "narrow", "[O III]"),
    Line("Mgb", 5177.0, "absorption", "Mg b"),
    Line("HeI_5877", 5877.25, "broad", "He I"),
    Line("NaD", 5894.57, "absorption", "Na D"),
    Line("OI_6302", 6302.05, "narrow", "[O I]"),
    Line("OI_6365", 6365.54, "narrow", "[O I]"),
    Line("NII_6550", 6549.86, "narrow", "[N II]"),
    Line("Halpha", 6564.61, "broad", "Hα"),
    Line("NII_6585", 6585.27, "narrow", "[N II]"),
    Line("SII_6718", 6718.29, "narrow", "[S II]"),
    Line("SII_6733", 6732.67, "narrow", "[S II]"),
)

BANDS: tuple[Band, ...] = (
    Band("FeII_blue", 4400.0, 4700.0, "feii"),
    Band("FeII_red", 5100.0, 5400.0, "feii"),
    Band("cont_4200", 4180.0, 4240.0, "continuum"),
    Band("cont_4550", 4520.0, 4580.0, "continuum"),
    Band("cont_5100", 5075.0, 5125.0, "continuum"),
    Band("cont_5600", 5580.0, 5640.0, "continuum"),
    Band("cont_6200", 6180.0, 6240.0, "continuum"),
)

#: Rest-frame windows (Å) of the lines a type is read from: broad Hβ and broad Hα with their
#: narrow components and [N II] (±~3,500 km/s). A spectrum whose grid covers one of them but whose
#: pixels there are mostly filled in cannot show what decides its type.
KEY_LINE_WINDOWS: dict[str, tuple[float, float]] = {"Hβ": (4800.0, 4920.0), "Hα": (6500.0, 6630.0)}

#: Rest-frame window (Å) whose median flux normalises every spectrum ("the flux at 5100 Å").
NORM_WINDOW = (5075.0, 5125.0)


def line(name: str) -> Line:
    """Return the :class:`Line` called ``name`` (e.g. ``"Hbeta"``)."""
    for item in LINES:
        if item.name == name:
            return item
    known = ", ".join(item.name for item in LINES)
    raise KeyError(f"unknown line {name!r}; known lines: {known}")


def lines_in(wavelength: np.ndarray) -> list[Line]:
    """The lines whose centre falls inside the range of ``wavelength``."""
    lo, hi = float(np.min(wavelength)), float(np.max(wavelength))
    return [item for item in LINES if lo <= item.wavelength <= hi]


def velocity(wavelength: np.ndarray, centre: float) -> np.ndarray:
    """Velocity offset (km/s) of ``wavelength`` from ``centre`` (relativistic Doppler not needed)."""
    return C_KMS * (np.asarray(wavelength, dtype=float) / centre - 1.0)


def window(wavelength: np.ndarray, centre: float, half_width_kms: float) -> np.ndarray:
    """Boolean mask of the pixels within ``±half_width_kms`` of ``centre``."""
    return np.abs(velocity(wavelength, centre)) <= half_width_kms


# ---------------------------------------------------------------------------- attribution parts
#: Half width (km/s) of a Balmer line's core and of a forbidden line's window in :data:`PARTS`:
#: a narrow line of FWHM ≤ 400 km/s is inside to ≥ 2.9 σ.
PART_NARROW_KMS = 500.0
#: Half width (km/s) of an absorption feature's window in :data:`PARTS` (Mg b spans ±500 km/s).
PART_ABSORPTION_KMS = 800.0
#: Outer half width (km/s) of a broad line's wings in :data:`PARTS` (type 1 wings reach several
#: thousand km/s; the same reach as the continuum mask of the Integrated-Gradients baseline).
PART_BROAD_KMS = 5000.0
#: Half width (km/s) of the weak broad He lines' windows in :data:`PARTS`.
PART_HE_KMS = 2000.0


@dataclass(frozen=True)
class Part:
    """A named part of a spectrum, for decomposing an attribution: the pixels in ``[lo, hi]`` Å
    not claimed by an earlier part of :data:`PARTS`.

    ``kind`` is ``"balmer-core"``, ``"narrow"``, ``"absorption"``, ``"broad-wings"``, ``"feii"``
    or ``"continuum"`` (every pixel no other part claims).
    """

    name: str
    lo: float
    hi: float
    kind: str


def _around(label: str, kind: str, half_kms: float, *lines: str) -> Part:
    centres = [line(n).wavelength for n in lines]
    return Part(label, min(centres) * (1 - half_kms / C_KMS), max(centres) * (1 + half_kms / C_KMS), kind)


#: The parts of a spectrum an attribution is summed over, in order of precedence: a pixel belongs
#: to the first part whose range holds it, so the parts never overlap (a broad line's wings are
#: its ±5000 km/s minus its core and any narrow line or absorption feature inside). Pixels no part
#: holds form the ``"continuum"`` part (:func:`parts_on`).
PARTS: tuple[Part, ...] = (
    *(_around(f"{line(n).label} core", "balmer-core", PART_NARROW_KMS, n)
      for n in ("Halpha", "Hbeta", "Hgamma", "Hdelta")),
    _around("[O II] 3727,3730", "narrow", PART_NARROW_KMS, "OII_3727", "OII_3730"),
    _around("[Ne III] 3870", "narrow", PART_NARROW_KMS, "NeIII_3870"),
    _around("[O III] 4960", "narrow", PART_NARROW_KMS, "OIII_4960"),
    _around("[O III] 5008", "narrow", PART_NARROW_KMS, "OIII_5008"),
    _around("[O I] 6302", "narrow", PART_NARROW_KMS, "OI_6302"),
    _around("[N II] 6550", "narrow", PART_NARROW_KMS, "NII_6550"),
    _around("[N II] 6585", "narrow", PART_NARROW_KMS, "NII_6585"),
    _around("[S II] 6718,6733", "narrow", PART_NARROW_KMS, "SII_6718", "SII_6733"),
    _around("Ca II H+K", "absorption", PART_ABSORPTION_KMS, "CaII_K", "CaII_H"),
    _around("G band", "absorption", PART_ABSORPTION_KMS, "Gband"),
    _around("Mg b", "absorption", PART_ABSORPTION_KMS, "Mgb"),
    _around("Na D", "absorption", PART_ABSORPTION_KMS, "NaD"),
    *(_around(f"{line(n).label} broad wings", "broad-wings", PART_BROAD_KMS, n)
      for n in ("Halpha", "Hbeta", "Hgamma", "Hdelta")),
    _around("He II 4687", "broad-wings", PART_HE_KMS, "HeII_4687"),
    _around("He I 5877", "broad-wings", PART_HE_KMS, "HeI_5877"),
    Part("Fe II 4570 blend", 4434.0, 4684.0, "feii"),  # Boroson & Green (1992)'s Fe II window
    Part("Fe II 5250 blend", 5150.0, 5350.0, "feii"),
)


def parts_on(wavelength: np.ndarray) -> list[tuple[Part, np.ndarray]]:
    """The :data:`PARTS` that hold pixels of ``wavelength``, each with its pixels, then the continuum.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
        Rest-frame grid in Å.

    Returns
    -------
    list of (Part, ndarray of bool, shape (n_pixels,))
        Disjoint masks that together hold every pixel once; each part's ``lo``/``hi`` clipped to
        the grid. The last entry is ``Part("continuum", grid start, grid end, "continuum")``.
    """
    wl = np.asarray(wavelength, dtype=float)
    free = np.ones(wl.size, dtype=bool)
    out = []
    for part in PARTS:
        mask = free & (wl >= part.lo) & (wl <= part.hi)
        if mask.any():
            out.append((Part(part.name, max(part.lo, float(wl[0])), min(part.hi, float(wl[-1])), part.kind), mask))
            free &= ~mask
    out.append((Part("continuum", float(wl[0]), float(wl[-1]), "continuum"), free))
    return out
