"""Spectrum containers.

Two containers, so that flux never travels without its wavelength grid:

* :class:`Spectrum` — one spectrum on its own pixels, as read from a file or simulated (observed or
  rest frame), or preprocessed onto a :class:`~agnlens.grid.Grid` (then it carries that grid), with
  its metadata.
* :class:`SpectrumSet` — many spectra on one common :class:`~agnlens.grid.Grid` (what models,
  saliency and the dataset store work with), with a metadata table and the preprocessing provenance;
  :meth:`SpectrumSet.from_spectra` stacks spectra preprocessed onto one grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from agnlens.grid import Grid, grid_for

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
    grid : Grid, optional
        Set when the spectrum was preprocessed onto this grid (rest frame, normalised): then
        ``wavelength`` is ``grid.wavelength``. None for a spectrum on its own pixels.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    frame: str = "observed"
    grid: Grid | None = None

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
        if self.grid is not None:
            if self.frame != "rest":
                raise ValueError(f"Spectrum {self.spec_id!r}: a spectrum on a grid is in the rest frame, got frame "
                                 f"{self.frame!r}")
            self.wavelength = grid_for(self.wavelength, self.grid).wavelength

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
    grid : Grid, str or None
        The common :class:`~agnlens.grid.Grid`, holding exactly ``wavelength``. Given as a name (or
        None), it is made from ``wavelength`` (:func:`agnlens.grid.grid_for`: the preset of that
        name when the wavelengths are exactly it, else a ``custom`` grid).
    provenance : dict, optional
        How the set was made (normalisation, software version, simulated or real...).

    Attributes
    ----------
    grid : Grid
        The one owner of the wavelengths: ``wavelength`` is ``grid.wavelength`` (assigning
        ``wavelength`` makes a new grid of the same name), ``grid.name`` its name, and
        ``provenance["grid"]`` is always ``grid.to_dict()``.
    """

    def __init__(
        self,
        wavelength: np.ndarray,
        flux: np.ndarray,
        ivar: np.ndarray,
        mask: np.ndarray,
        meta: pd.DataFrame,
        grid: Grid | str | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        wavelength = np.asarray(wavelength, dtype=np.float64)
        n, n_pix = len(meta), wavelength.size
        for name, arr in (("flux", flux), ("ivar", ivar), ("mask", mask)):
            if arr.ndim != 2 or arr.shape != (n, n_pix):
                raise ValueError(
                    f"SpectrumSet: {name} has shape {arr.shape}, expected (n_spectra, n_pixels) = "
                    f"({n}, {n_pix})"
                )
        self.flux, self.ivar, self.mask = flux, ivar, mask
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.grid = grid_for(wavelength, grid)
        self.meta = meta.reset_index(drop=True)
        for col in META_COLUMNS:
            if col not in self.meta.columns:
                self.meta[col] = _default_meta(col, n)

    @property
    def grid(self) -> Grid:
        return self._grid

    @grid.setter
    def grid(self, grid: Grid) -> None:
        if not isinstance(grid, Grid):
            raise TypeError(f"SpectrumSet.grid must be a Grid, got {type(grid).__name__}")
        if grid.n_pixels != self.flux.shape[1]:
            raise ValueError(f"SpectrumSet: {grid.label()} does not fit spectra of {self.flux.shape[1]} pixels")
        self._grid = grid
        self.provenance["grid"] = grid.to_dict()

    @property
    def wavelength(self) -> np.ndarray:
        """The grid's pixel centres (Å), shape (n_pixels,); read-only."""
        return self._grid.wavelength

    @wavelength.setter
    def wavelength(self, wavelength: np.ndarray) -> None:
        self.grid = grid_for(wavelength, self._grid.name)

    @classmethod
    def from_spectra(
        cls, spectra: Sequence[Spectrum], grid: Grid | None = None, provenance: dict | None = None
    ) -> SpectrumSet:
        """Stack spectra preprocessed onto one grid (float32 flux and ivar).

        Parameters
        ----------
        spectra : sequence of Spectrum
            Each with ``grid`` set (:func:`agnlens.preprocess.preprocess_one`), all the same grid.
        grid : Grid, optional
            The grid (default: the first spectrum's); required when ``spectra`` is empty.
        provenance : dict, optional

        Raises
        ------
        ValueError
            A spectrum is on no grid or on another one.
        """
        spectra = list(spectra)
        if grid is None and spectra:
            grid = spectra[0].grid
        if grid is None:
            raise ValueError(
                "SpectrumSet.from_spectra: no grid; pass grid= or spectra preprocessed onto one "
                "(agnlens.preprocess.preprocess_one)"
            )
        for s in spectra:
            if s.grid is None or s.grid != grid:
                raise ValueError(
                    f"SpectrumSet.from_spectra: spectrum {s.spec_id!r} is on {s.grid!r}, the set on {grid.label()}; "
                    f"preprocess every spectrum onto the set's grid (agnlens.preprocess.preprocess_one)"
                )
        n_pix = grid.n_pixels
        return cls(
            wavelength=grid.wavelength,
            flux=np.array([s.flux for s in spectra], dtype=np.float32).reshape(-1, n_pix),
            ivar=np.array([s.ivar for s in spectra], dtype=np.float32).reshape(-1, n_pix),
            mask=np.array([s.mask for s in spectra], dtype=bool).reshape(-1, n_pix),
            meta=pd.DataFrame([s.meta for s in spectra]),
            grid=grid,
            provenance=dict(provenance or {}),
        )

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
            if s.grid != first.grid:
                raise ValueError(
                    f"cannot concatenate spectra on different grids ({first.grid.label()} and {s.grid.label()}); "
                    f"preprocess them onto one grid"
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
            f"SpectrumSet({len(self)} {kind} spectra on grid {self.grid.name!r}, {self.n_pixels} px "
            f"{self.wavelength[0]:.0f}–{self.wavelength[-1]:.0f} Å, labels {counts})"
        )


def _default_meta(col: str, n: int):
    if col in ("z", "snr"):
        return np.full(n, np.nan)
    if col == "zwarning":
        return np.zeros(n, dtype=np.int64)
    return [""] * n
