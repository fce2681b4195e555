"""The line list: emission and absorption features, Fe II bands and continuum windows.

Wavelengths are vacuum Å, as SDSS uses (see ``shared/DOMAIN.md``). Used by preprocessing (the
normalisation window), the simulator, the line-level explanations and the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

C_KMS = 299_792.458


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
