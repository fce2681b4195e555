"""The rest-frame wavelength grid: one :class:`Grid` type that every layer shares.

A grid is its pixel centres (exact float64 values), their spacing, the window whose median flux
normalises a spectrum, and a name. Two grids are equal when their wavelengths are the same to the
bit and their spacing and normalisation window agree; the name is a label only. It travels as a
JSON-safe dict (:meth:`Grid.to_dict`, holding every wavelength, so :meth:`Grid.from_dict` rebuilds
it exactly) in model files, store attributes and the provenance of a spectrum set.

The presets: ``paper`` is the reference study's grid (Peruzzi et al. 2021: 1000 linear pixels from
3729 to 5266 Å, normalised at 5100 Å); ``balmer`` covers Hγ to Hα + [N II] with broad wings at the
SDSS pixel size.

agnlens 0.2 recorded a grid as its name alone (store attributes) or as a summary without the
wavelengths (``name, n_pixels, lo, hi, spacing, norm_window``: model files and provenance);
:meth:`Grid.from_dict` and :func:`grid_for` still read both.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import numpy as np

from agnlens.lines import NORM_WINDOW

#: The spacings a grid may declare; ``custom`` promises nothing.
SPACINGS = ("linear", "log", "custom")
#: How evenly ``linear`` (in λ) or ``log`` (in log λ) pixels must be spaced, relatively.
_SPACING_RTOL = 1e-6


@dataclass(frozen=True, eq=False)
class Grid:
    """A named rest-frame wavelength grid with its normalisation window.

    Parameters
    ----------
    name : str
        ``"paper"``, ``"balmer"`` or any label (not part of equality).
    wavelength : ndarray of shape (n_pixels,)
        Pixel centres in Å, finite and strictly increasing; kept as a read-only float64 copy.
    norm_window : (float, float) or None
        Rest-frame range (Å), inside the grid, whose median good flux divides each spectrum; None
        for a grid that is not known to be normalised (spectra from elsewhere).
    spacing : {"linear", "log", "custom"}
        ``linear``/``log`` are checked: the pixels must be evenly spaced in λ / log λ.

    Notes
    -----
    Equality compares every wavelength exactly, the spacing and the window; the hash agrees with it.
    """

    name: str
    wavelength: np.ndarray = field(repr=False)
    norm_window: tuple[float, float] | None = NORM_WINDOW
    spacing: str = "custom"

    def __post_init__(self) -> None:
        wl = np.array(self.wavelength, dtype=np.float64)  # a copy: the caller's array stays theirs
        if wl.ndim != 1 or wl.size < 2 or not np.all(np.isfinite(wl)) or not np.all(np.diff(wl) > 0):
            raise ValueError(
                f"grid {self.name!r}: wavelength must be a 1-D, finite, strictly increasing array of at "
                f"least 2 pixels, got shape {wl.shape}; pass the pixel centres in Å"
            )
        wl.flags.writeable = False
        object.__setattr__(self, "wavelength", wl)
        object.__setattr__(self, "name", str(self.name))
        if self.spacing not in SPACINGS:
            raise ValueError(f"grid {self.name!r}: spacing must be one of {SPACINGS}, got {self.spacing!r}")
        steps = np.diff(wl) if self.spacing == "linear" else np.diff(np.log10(wl)) if self.spacing == "log" else None
        if steps is not None and not np.allclose(steps, steps[0], rtol=_SPACING_RTOL, atol=0.0):
            raise ValueError(
                f"grid {self.name!r}: the pixels are not evenly spaced in "
                f"{'λ' if self.spacing == 'linear' else 'log λ'} (steps {steps.min():.6g}–{steps.max():.6g}); "
                f"declare spacing='custom'"
            )
        if self.norm_window is not None:
            lo, hi = (float(v) for v in self.norm_window)
            if not (wl[0] <= lo < hi <= wl[-1]):
                raise ValueError(
                    f"grid {self.name!r}: normalisation window {lo:g}–{hi:g} Å lies outside the grid "
                    f"{wl[0]:.1f}–{wl[-1]:.1f} Å; give a window inside it (or None)"
                )
            object.__setattr__(self, "norm_window", (lo, hi))

    # ------------------------------------------------------------------------------- identity
    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Grid):
            return NotImplemented
        return (
            self.spacing == other.spacing
            and self.norm_window == other.norm_window
            and self.wavelength.shape == other.wavelength.shape
            and bool(np.array_equal(self.wavelength, other.wavelength))
        )

    def __hash__(self) -> int:
        return self._hash

    @cached_property
    def _hash(self) -> int:
        # from a digest, not hash(bytes): the value is the same in every process (a pickled grid
        # carries it to Dask workers)
        h = hashlib.blake2b(self.wavelength.tobytes(), digest_size=8)
        h.update(f"{self.spacing} {self.norm_window}".encode())
        return int.from_bytes(h.digest(), "little", signed=True)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Grid({self.name!r}, {self._extent()})"

    def label(self) -> str:
        """``grid 'paper' (1000 px 3729.0–5266.0 Å, linear, normalised at 5075–5125 Å)``, for messages."""
        return f"grid {self.name!r} ({self._extent()})"

    def _extent(self) -> str:
        wl, w = self.wavelength, self.norm_window
        norm = "no normalisation window" if w is None else f"normalised at {w[0]:g}–{w[1]:g} Å"
        return f"{wl.size} px {wl[0]:.1f}–{wl[-1]:.1f} Å, {self.spacing}, {norm}"

    # ----------------------------------------------------------------------------- properties
    @property
    def n_pixels(self) -> int:
        return int(self.wavelength.size)

    @property
    def edges(self) -> np.ndarray:
        """Pixel edges, shape (n_pixels + 1,)."""
        return pixel_edges(self.wavelength)

    # ------------------------------------------------------------------------------- the dict
    def describe(self) -> dict[str, Any]:
        """A short JSON-safe summary for people (no wavelengths): name, n_pixels, lo, hi, spacing,
        norm_window."""
        return {
            "name": self.name,
            "n_pixels": self.n_pixels,
            "lo": float(self.wavelength[0]),
            "hi": float(self.wavelength[-1]),
            "spacing": self.spacing,
            "norm_window": None if self.norm_window is None else list(self.norm_window),
        }

    def to_dict(self) -> dict[str, Any]:
        """The grid as a JSON-safe dict: :meth:`describe` plus every wavelength (``from_dict``
        rebuilds it exactly; Python's JSON writes floats that read back to the same bits)."""
        return {**self.describe(), "wavelength": self.wavelength.tolist()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Grid:
        """The grid a :meth:`to_dict` dict describes, exactly.

        A summary without ``wavelength`` (written by agnlens 0.2) is rebuilt: the preset of its
        name when the pixel count and end points match it, else from its linear or log spacing.

        Raises
        ------
        ValueError
            A dict that is not a grid, whose wavelengths disagree with its summary, or a custom
            summary that cannot be rebuilt.
        """
        if not isinstance(record, dict) or "name" not in record:
            raise ValueError(f"not a grid record (a dict with 'name' and 'wavelength'): {str(record)[:80]!r}")
        name = str(record["name"])
        window = record.get("norm_window")
        window = None if window is None else tuple(float(v) for v in window)
        spacing = str(record.get("spacing") or "custom")
        if "wavelength" in record:
            grid = cls(name, np.asarray(record["wavelength"], dtype=np.float64), window, spacing)
            summary = {k: record[k] for k in ("n_pixels", "lo", "hi") if k in record}
            if summary and summary != {k: v for k, v in grid.describe().items() if k in summary}:
                raise ValueError(
                    f"grid {name!r}: its wavelengths ({grid.n_pixels} px {grid.wavelength[0]:.6g}–"
                    f"{grid.wavelength[-1]:.6g} Å) disagree with its summary {summary}; the record was edited "
                    f"or damaged"
                )
            return grid
        return _rebuild(name, record, window, spacing)


def pixel_edges(centres: np.ndarray) -> np.ndarray:
    """Edges of pixels with the given centres (midpoints; end pixels mirrored)."""
    c = np.asarray(centres, dtype=np.float64)
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


@cache
def paper_grid() -> Grid:
    """The reference study's grid: 1000 linear pixels from 3729 to 5266 Å."""
    return Grid("paper", np.linspace(3729.0, 5266.0, 1000), spacing="linear")


@cache
def balmer_grid() -> Grid:
    """Hγ to Hα + [N II] with broad wings: 4000–6700 Å, log-λ at the SDSS pixel size (1e-4 dex)."""
    loglam = np.arange(np.log10(4000.0), np.log10(6700.0), 1e-4)
    return Grid("balmer", 10.0**loglam, spacing="log")


#: The preset grids by name.
GRIDS = {"paper": paper_grid, "balmer": balmer_grid}


def get_grid(grid: str | Grid | np.ndarray) -> Grid:
    """A :class:`Grid` from a preset name, a Grid, or an array of pixel centres (a ``custom`` grid
    normalised at :data:`~agnlens.lines.NORM_WINDOW`)."""
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, str):
        try:
            return GRIDS[grid]()
        except KeyError:
            raise ValueError(f"unknown grid {grid!r}; choose one of {sorted(GRIDS)} or pass an array") from None
    return Grid("custom", np.asarray(grid, dtype=float))


def grid_for(wavelength: np.ndarray, record: Any = None) -> Grid:
    """The grid of spectra whose pixel centres are ``wavelength``, described by ``record``.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
    record : Grid, dict, str or None
        A Grid (checked against ``wavelength``), a :meth:`Grid.to_dict` dict or an agnlens 0.2
        summary (its name, spacing and window, on ``wavelength``), or a bare name (agnlens 0.2
        stores; the preset of that name when ``wavelength`` is exactly it). None: a ``custom`` grid
        without a normalisation window.

    Raises
    ------
    ValueError
        ``record`` describes other wavelengths than ``wavelength``.
    """
    wl = np.asarray(wavelength, dtype=np.float64)
    if isinstance(record, dict) and "wavelength" in record:
        record = Grid.from_dict(record)
    if isinstance(record, Grid):
        if record.wavelength.shape != wl.shape or not np.array_equal(record.wavelength, wl):
            raise ValueError(
                f"grid {record!r} does not hold the spectra's wavelengths ({wl.size} px); pass the grid "
                f"the spectra were preprocessed onto"
            )
        return record
    if isinstance(record, dict):  # agnlens 0.2 summary: its labels, on the wavelengths given
        window = record.get("norm_window")
        return _labelled(str(record.get("name", "custom")), wl,
                         None if window is None else tuple(float(v) for v in window),
                         str(record.get("spacing") or "custom"))
    name = "custom" if record is None else str(record)
    preset = GRIDS.get(name)
    if preset is not None and preset().wavelength.shape == wl.shape and np.array_equal(preset().wavelength, wl):
        return preset()
    return Grid(name, wl, norm_window=None)


def _labelled(name: str, wl: np.ndarray, window, spacing: str) -> Grid:
    """Grid(name, wl, window, spacing), dropping labels ``wl`` does not satisfy (a window outside
    it, an uneven declared spacing): old records are read, never refused for their labels."""
    preset = GRIDS.get(name)
    if preset is not None and preset().wavelength.shape == wl.shape and np.array_equal(preset().wavelength, wl) \
            and (window is None or window == preset().norm_window):
        return preset()
    try:
        return Grid(name, wl, window, spacing)
    except ValueError:
        return Grid(name, wl, None, "custom")


def _rebuild(name: str, record: dict, window, spacing: str) -> Grid:
    """The grid an agnlens 0.2 summary (no wavelengths) names."""
    try:
        n, lo, hi = int(record["n_pixels"]), float(record["lo"]), float(record["hi"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"grid {name!r}: the record has neither wavelengths nor n_pixels, lo and hi: {sorted(record)}"
        ) from None
    preset = GRIDS.get(name)
    if preset is not None:
        g = preset()
        if g.n_pixels == n and math.isclose(g.wavelength[0], lo) and math.isclose(g.wavelength[-1], hi):
            return g
    if spacing == "linear":
        return Grid(name, np.linspace(lo, hi, n), window, "linear")
    if spacing == "log":
        return Grid(name, np.logspace(np.log10(lo), np.log10(hi), n), window, "log")
    raise ValueError(
        f"grid {name!r} ({n} px {lo:.1f}–{hi:.1f} Å, spacing {spacing!r}) was recorded without its wavelengths "
        f"and cannot be rebuilt from its summary"
    )
