"""Reading a store: the whole of it (eagerly or lazily on Dask), a block of rows, its chunks and a summary.

Written by :mod:`agnlens.io.store._write`; the layout is described in :mod:`agnlens.io.store`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.errors import ReadError
from agnlens.grid import Grid, grid_for
from agnlens.io.store._format import (
    ARRAYS,
    FORMAT_VERSION,
    Checked,
    check_chunk_size,
    column_entry,
    column_from,
    meta_frame,
    open_store_group,
    read_checked,
    read_column,
    read_meta,
)
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------- reading
def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding a Zarr (v3) group (an agnlens store or not)."""
    path = Path(path)
    return path.is_dir() and (path / "zarr.json").is_file()


def open_store(path: str | os.PathLike, *, lazy: bool = True) -> SpectrumSet:
    """Open a store as a :class:`SpectrumSet`.

    Parameters
    ----------
    path : str or path-like
        An agnlens store directory.
    lazy : bool, default True
        If True, ``flux``, ``ivar`` and ``mask`` are dask arrays backed by the Zarr chunks (nothing
        is read until computed); if False they are numpy arrays. The metadata table is always read.

    Returns
    -------
    SpectrumSet
        flux, ivar of shape (n_spectra, n_pixels) float32, mask bool, wavelength float64.

    Raises
    ------
    ReadError
        ``path`` does not exist or is not an agnlens store (missing arrays or attributes, other
        format version).
    """
    path = Path(path)
    group, info = open_store_group(path, mode="r")
    n = info["n_spectra"]
    if lazy:
        import dask.array as da

        data = {
            name: da.from_array(
                Checked(group[name], path), chunks=group[name].chunks, asarray=True, lock=False,
                name=f"agnlens-store-{info.get('uid') or uuid.uuid4().hex}-{name}",
            )[:n]
            for name in ARRAYS
        }
    else:
        data = {name: read_checked(group[name], 0, n, path) for name in ARRAYS}
    grid = store_grid(info, read_checked(group["wavelength"], 0, None, path), path)
    return SpectrumSet(
        wavelength=grid.wavelength,
        meta=read_meta(group, info, 0, n, path),
        grid=grid,
        provenance=info["provenance"],
        **data,
    )


def store_grid(info: dict, wavelength: np.ndarray, path: str | os.PathLike) -> Grid:
    """The :class:`~agnlens.grid.Grid` of a store: its wavelength array, labelled by the grid record
    of its provenance (``Grid.to_dict``; agnlens 0.2 wrote a summary there or the bare name in its
    attributes).

    Raises
    ------
    ReadError
        The record names other wavelengths than the array holds, or the array is no grid.
    """
    record = info["provenance"].get("grid") if isinstance(info.get("provenance"), dict) else None
    try:
        return grid_for(wavelength, record if isinstance(record, dict) else info["grid"])
    except ValueError as exc:
        raise ReadError(path, f"its wavelength array and its grid record do not make one grid ({exc}); the store "
                              f"is damaged, rewrite it") from None


def read_rows(
    path: str | os.PathLike, start: int, stop: int, *, columns: Sequence[str] | None = None
) -> SpectrumSet:
    """Read rows ``start:stop`` of a store into memory (numpy), touching only their chunks.

    This is what parallel workers call: each opens the store itself and reads only its chunk.
    The opened arrays are cached per process for as long as the store's ``uid`` is unchanged,
    so reading many chunks of one store costs one small metadata read per chunk.

    Parameters
    ----------
    columns : sequence of str, optional
        Metadata columns to read (default all); the standard ones not read get empty values.

    Returns
    -------
    SpectrumSet
        ``stop - start`` spectra (fewer if ``stop`` is past the end).
    """
    handles, info = _cached_handles(Path(path))
    n = info["n_spectra"]
    start, stop = max(0, int(start)), min(n, int(stop))
    if stop < start:
        stop = start
    specs = info["columns"]
    if columns is not None:
        unknown = sorted(set(columns) - {c["name"] for c in specs})
        if unknown:
            raise ValueError(f"{path}: no metadata column(s) {unknown}; the store has {[c['name'] for c in specs]}")
        specs = [c for c in specs if c["name"] in set(columns)]
    grid = handles["grid"]
    return SpectrumSet(
        wavelength=grid.wavelength,
        flux=read_checked(handles["flux"], start, stop, path),
        ivar=read_checked(handles["ivar"], start, stop, path),
        mask=read_checked(handles["mask"], start, stop, path),
        meta=meta_frame(
            {c["name"]: column_from(handles["meta/" + c["array"]], c, start, stop, path) for c in specs},
            specs, stop - start,
        ),
        grid=grid,
        provenance=info["provenance"],
    )


#: Per-process cache of opened stores: resolved path -> (uid, array handles).
_HANDLES: dict[str, tuple[str, dict]] = {}


def _cached_handles(path: Path) -> tuple[dict, dict]:
    import zarr

    key = str(path.resolve())
    try:
        # one read of the root zarr.json says whether the cached handles are still this store
        attrs = zarr.open_group(key, mode="r", zarr_format=3).attrs.get("agnlens")
    except Exception:
        attrs = None
    cached = _HANDLES.get(key)
    if (
        cached is not None
        and isinstance(attrs, dict)
        and attrs.get("uid")
        and attrs.get("uid") == cached[0]
        and attrs.get("version") == FORMAT_VERSION
    ):
        return cached[1], attrs
    group, attrs = open_store_group(path, mode="r")  # full validation, clear errors
    handles = {name: group[name] for name in ARRAYS}
    handles["grid"] = store_grid(attrs, read_checked(group["wavelength"], 0, None, path), path)
    meta_group = group["meta"]
    for c in attrs["columns"]:
        handles["meta/" + c["array"]] = meta_group[c["array"]]
    if attrs.get("uid"):
        _HANDLES[key] = (attrs["uid"], handles)
    return handles, attrs


def store_chunks(path: str | os.PathLike, chunk_size: int | None = None) -> list[tuple[int, int]]:
    """Row ranges ``(start, stop)`` covering the store, aligned to its chunks.

    Parameters
    ----------
    chunk_size : int, optional
        Rows per range; default the store's chunk size. Use a multiple of it so that no two
        ranges share a Zarr chunk.
    """
    _, info = open_store_group(Path(path), mode="r")
    size = info["chunk_size"] if chunk_size is None else check_chunk_size(chunk_size)
    n = info["n_spectra"]
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def store_info(path: str | os.PathLike) -> dict[str, Any]:
    """Summarise a store without reading its spectra (for ``agnlens info``).

    Returns
    -------
    dict
        ``path``, ``n_spectra``, ``counts`` (spectra per label; ``""`` = unlabelled), ``grid``
        (:meth:`~agnlens.grid.Grid.describe`: name, n_pixels, lo, hi, spacing, norm_window),
        ``grid_name``, ``chunk_size``, ``simulated``, ``provenance``, ``format_version``, ``uid``
        (changes with every write and append), ``columns`` (metadata column names).
    """
    path = Path(path)
    group, info = open_store_group(path, mode="r")
    n = info["n_spectra"]
    labels = read_column(group["meta"], column_entry(info["columns"], "label"), 0, n, path)
    counts = pd.Series(labels, dtype=object).value_counts()
    prov = info["provenance"]
    grid = store_grid(info, read_checked(group["wavelength"], 0, None, path), path).describe()
    return {
        "path": str(path),
        "n_spectra": int(n),
        "counts": {str(k): int(v) for k, v in counts.items()},
        "grid": grid,
        "grid_name": grid["name"],
        "chunk_size": int(info["chunk_size"]),
        "simulated": bool(prov.get("simulated", False)),
        "provenance": prov,
        "format_version": int(info["version"]),
        "uid": str(info.get("uid", "")),
        "columns": [c["name"] for c in info["columns"]],
    }
