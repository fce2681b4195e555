"""Spectrum containers.

Two containers, so that flux never travels without its wavelength grid:

* :class:`Spectrum` — one spectrum on its own grid, as read from a file or simulated (observed or
  rest frame), with its metadata.
* :class:`SpectrumSet` — many spectra resampled onto one common grid (what models, saliency and
  the dataset store work with), with a metadata table and the preprocessing provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: Metadata columns every :class:`SpectrumSet` carries (others may follow).
META_COLUMNS = ("spec_id", "z", "zwarning", "label", "snr", "sdss_class", "sdss_subclass", "source")


def format_spec_id(plate: int, mjd: int, fiber: int) -> str:
    """Return the canonical ``PLATE-MJD-FIBER`` id, zero-padded as 4-5-4 digits."""
    return f"{int(plate):04d}-{int(mjd):05d}-{int(fiber):04d}"


@dataclass(eq=False)
class Spectrum:
    """One spectrum on its own wavelength grid.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
        Vacuum wavelength in Å, strictly increasing.
    flux : ndarray of shape (n_pixels,)
        Flux density (SDSS: 1e-17 erg s⁻¹ cm⁻² Å⁻¹).
    ivar : ndarray of shape (n_pixels,)
        Inverse variance of ``flux``; 0 where the pixel is bad.
    mask : ndarray of bool, shape (n_pixels,)
        True where the pixel is bad (and_mask set, ivar = 0, or non-finite flux).
    meta : dict
        At least ``spec_id``, ``z``, ``zwarning`` and ``source``; readers add ``sdss_class``,
        ``sdss_subclass``, ``survey`` and whatever else the file tells.
    frame : {"observed", "rest"}
        Whether ``wavelength`` is observed or rest frame.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    frame: str = "observed"

    def __post_init__(self) -> None:
        self.wavelength = np.asarray(self.wavelength, dtype=np.float64)
        self.flux = np.asarray(self.flux, dtype=np.float64)
        self.ivar = np.asarray(self.ivar, dtype=np.float64)
        self.mask = np.asarray(self.mask, dtype=bool)
        n = self.wavelength.shape
        for name in ("flux", "ivar", "mask"):
            if getattr(self, name).shape != n:
                raise ValueError(
                    f"Spectrum {self.spec_id!r}: {name} has shape {getattr(self, name).shape}, "
                    f"expected the wavelength's shape {n}"
                )
        if self.frame not in ("observed", "rest"):
            raise ValueError(f"frame must be 'observed' or 'rest', got {self.frame!r}")

    @property
    def spec_id(self) -> str:
        return str(self.meta.get("spec_id", ""))

    @property
    def z(self) -> float:
        return float(self.meta.get("z", np.nan))

    @property
    def good(self) -> np.ndarray:
        """Boolean array, True where the pixel is usable."""
        return ~self.mask & (self.ivar > 0) & np.isfinite(self.flux)

    def __repr__(self) -> str:
        lo, hi = (self.wavelength[0], self.wavelength[-1]) if self.wavelength.size else (np.nan, np.nan)
        return (
            f"Spectrum(spec_id={self.spec_id!r}, z={self.z:.4f}, {self.wavelength.size} px, "
            f"{lo:.0f}–{hi:.0f} Å {self.frame})"
        )


@dataclass(eq=False)
class SpectrumSet:
    """Many spectra on one common wavelength grid.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
        The common (rest-frame) grid in Å.
    flux, ivar : ndarray of shape (n_spectra, n_pixels)
        Normalised flux and its inverse variance. Bad pixels hold an interpolated flux (so models
        see a continuous spectrum) and ``ivar = 0``.
    mask : ndarray of bool, shape (n_spectra, n_pixels)
        True where the pixel is bad or was not covered.
    meta : pandas.DataFrame
        One row per spectrum, columns at least :data:`META_COLUMNS`.
    grid : str
        Name of the grid (``"paper"``, ``"balmer"`` or ``"custom"``).
    provenance : dict
        How the set was made (grid, normalisation, software version, simulated or real...).
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    meta: pd.DataFrame
    grid: str = "custom"
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.wavelength = np.asarray(self.wavelength, dtype=np.float64)
        n_pix = self.wavelength.size
        n = len(self.meta)
        for name in ("flux", "ivar", "mask"):
            arr = getattr(self, name)
            if arr.ndim != 2 or arr.shape != (n, n_pix):
                raise ValueError(
                    f"SpectrumSet: {name} has shape {arr.shape}, expected (n_spectra, n_pixels) = "
                    f"({n}, {n_pix})"
                )
        self.meta = self.meta.reset_index(drop=True)
        for col in META_COLUMNS:
            if col not in self.meta.columns:
                self.meta[col] = _default_meta(col, n)

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def n_pixels(self) -> int:
        return self.wavelength.size

    @property
    def spec_id(self) -> np.ndarray:
        return self.meta["spec_id"].to_numpy(dtype=str)

    @property
    def labels(self) -> np.ndarray:
        """Label strings; ``""`` for unlabelled spectra."""
        return self.meta["label"].fillna("").to_numpy(dtype=str)

    @property
    def simulated(self) -> bool:
        return bool(self.provenance.get("simulated", False))

    def __getitem__(self, index) -> SpectrumSet:
        """Subset by integer array, boolean mask or slice; always returns a SpectrumSet."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self))[index]
        return SpectrumSet(
            wavelength=self.wavelength,
            flux=self.flux[idx],
            ivar=self.ivar[idx],
            mask=self.mask[idx],
            meta=self.meta.iloc[idx].reset_index(drop=True),
            grid=self.grid,
            provenance=dict(self.provenance),
        )

    @classmethod
    def concat(cls, sets: list[SpectrumSet]) -> SpectrumSet:
        """Stack sets that share one grid."""
        if not sets:
            raise ValueError("concat needs at least one SpectrumSet")
        first = sets[0]
        for s in sets[1:]:
            if s.wavelength.shape != first.wavelength.shape or not np.allclose(s.wavelength, first.wavelength):
                raise ValueError(
                    f"cannot concatenate spectra on different grids ({first.grid!r} and {s.grid!r})"
                )
        return cls(
            wavelength=first.wavelength,
            flux=np.concatenate([s.flux for s in sets]),
            ivar=np.concatenate([s.ivar for s in sets]),
            mask=np.concatenate([s.mask for s in sets]),
            meta=pd.concat([s.meta for s in sets], ignore_index=True),
            grid=first.grid,
            provenance=dict(first.provenance),
        )

    def __repr__(self) -> str:
        counts = self.meta["label"].fillna("").replace("", "unlabelled").value_counts().to_dict()
        kind = "simulated" if self.simulated else "real"
        return (
            f"SpectrumSet({len(self)} {kind} spectra on grid {self.grid!r}, {self.n_pixels} px "
            f"{self.wavelength[0]:.0f}–{self.wavelength[-1]:.0f} Å, labels {counts})"
        )


def _default_meta(col: str, n: int):
    if col in ("z", "snr"):
        return np.full(n, np.nan)
    if col == "zwarning":
        return np.zeros(n, dtype=np.int64)
    return [""] * n
