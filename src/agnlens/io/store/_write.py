"""Writing a store: a new one (:func:`write_store`) or more rows on an existing one
(:func:`append_store`); the layout and the safety rules are in :mod:`agnlens.io.store`."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agnlens.atomic import exclusive_lock, jsonable, temp_sibling
from agnlens.io.store._format import (
    ARRAYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    INTEGRITY,
    block_of,
    check_chunk_size,
    check_unique_ids,
    checked_codecs,
    column_entry,
    column_specs,
    column_values,
    current_attrs,
    is_agnlens_store,
    open_store_group,
    read_checked,
    read_column,
    zarr_dtype,
)
from agnlens.io.store._read import store_grid
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

#: Source file names are listed in the provenance up to this many; beyond, a count and a hash.
MAX_LISTED_SOURCES = 100


ProgressCallback = Callable[[int, int], None]



# --------------------------------------------------------------------------------------- writing
def write_store(
    spectra: SpectrumSet,
    path: str | os.PathLike,
    *,
    chunk_size: int = 1024,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write a spectrum set to a new Zarr store, atomically.

    Parameters
    ----------
    spectra : SpectrumSet
        The spectra; ``flux``/``ivar``/``mask`` of shape (n_spectra, n_pixels) may be numpy or
        dask arrays (they are written one chunk of rows at a time, so a lazily opened store can
        be copied with bounded memory).
    path : str or path-like
        The store directory to create (conventionally ``*.zarr``).
    chunk_size : int, default 1024
        Spectra per chunk (rows); flux chunks have shape (chunk_size, n_pixels).
    overwrite : bool, default False
        Replace an existing store at ``path``; otherwise an existing path is an error.
    progress : callable, optional
        Called as ``progress(rows_written, n_spectra)`` after each chunk (for progress bars).

    Returns
    -------
    pathlib.Path
        The store path.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False, or it exists and is not an agnlens store
        (only a store is ever replaced).
    BlockingIOError
        Another process kept writing ``path`` for longer than the lock timeout.
    ValueError
        Bad ``chunk_size``, duplicate spec_ids, or a metadata column name Zarr cannot hold.
    """
    path = Path(path)
    chunk_size = check_chunk_size(chunk_size)
    if not isinstance(spectra, SpectrumSet):
        raise TypeError(f"write_store: expected a SpectrumSet, got {type(spectra).__name__}")
    check_replaceable(path, overwrite)
    check_unique_ids(spectra.meta, where=f"write_store {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path):
        check_replaceable(path, overwrite)  # again, now that no other writer can change it
        tmp = temp_sibling(path, "tmp")
        try:
            _write_new(spectra, tmp, chunk_size, progress)
            _swap_into_place(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("wrote %d spectra to %s", len(spectra), path)
    return path


def append_store(
    spectra: SpectrumSet,
    path: str | os.PathLike,
    *,
    progress: ProgressCallback | None = None,
) -> Path:
    """Append spectra to an existing store, safely against interruption.

    The new rows are written after the committed ones and the committed row count is updated
    last, so an interrupted append leaves the store as it was (see the module docstring).

    Parameters
    ----------
    spectra : SpectrumSet
        Spectra on exactly the store's grid (``spectra.grid ==`` the store's). Their metadata
        columns must be among the store's; store columns they lack are filled with empty values
        (NaN, 0, ``""``, False), and values must convert to the stored column's dtype.
    path : str or path-like
        An existing agnlens store.
    progress : callable, optional
        Called as ``progress(rows_written, n_new)`` after each chunk.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ReadError
        ``path`` is not an agnlens store.
    BlockingIOError
        Another process kept writing ``path`` for longer than the lock timeout.
    RuntimeError
        The store changed under the append (a writer that ignored the lock); nothing is committed.
    ValueError
        The grid or the metadata columns differ, or a spec_id is already in the store (or
        repeated among the new spectra); the message names the spec_ids.
    """
    path = Path(path)
    if not isinstance(spectra, SpectrumSet):
        raise TypeError(f"append_store: expected a SpectrumSet, got {type(spectra).__name__}")
    import zarr

    open_store_group(path, mode="r")  # a clear error before taking the lock of a path that is no store
    with exclusive_lock(path), zarr.config.set({"array.write_empty_chunks": True}):
        return _append_locked(spectra, path, progress)


def _append_locked(spectra: SpectrumSet, path: Path, progress: ProgressCallback | None) -> Path:
    group, info = open_store_group(path, mode="r+")
    n_old, uid_old = info["n_spectra"], info.get("uid")
    grid = store_grid(info, read_checked(group["wavelength"], 0, None, path), path)
    if spectra.grid != grid:
        raise ValueError(
            f"{path}: the spectra are on {spectra.grid.label()} but the store holds {grid.label()} (grids are "
            f"equal when every wavelength, the spacing and the normalisation window are); append only spectra "
            f"preprocessed onto exactly the store's grid, or write a new store"
        )
    columns = info["columns"]
    new_meta = spectra.meta
    stored_names = [c["name"] for c in columns]
    extra = [c for c in new_meta.columns if c not in stored_names]
    if extra:
        raise ValueError(
            f"{path}: the spectra have metadata columns {extra} that the store does not hold "
            f"(store columns: {stored_names}); drop them or write a new store"
        )
    existing = read_column(group["meta"], column_entry(columns, "spec_id"), 0, n_old, path)
    new_ids = new_meta["spec_id"].astype(str)
    check_unique_ids(new_meta, where=f"append_store {path}")
    clash = sorted(set(new_ids[new_ids != ""]) & set(existing[existing != ""]))
    if clash:
        shown = ", ".join(clash[:10]) + (f" and {len(clash) - 10} more" if len(clash) > 10 else "")
        raise ValueError(
            f"{path}: {len(clash)} spec_id(s) already in the store: {shown}; drop them from the "
            f"new spectra before appending"
        )
    m = len(spectra)
    if m == 0:
        return path
    n_new = n_old + m
    chunk = info["chunk_size"]
    arrays = {name: group[name] for name in ARRAYS}
    meta_group = group["meta"]
    meta_arrays = {c["name"]: meta_group[c["array"]] for c in columns}
    prepared = {c["name"]: column_values(new_meta, c, m, path) for c in columns}
    every: dict[Any, Any] = {**arrays, **{("meta", k): v for k, v in meta_arrays.items()}}
    before: list[tuple[int, int, dict]] = []  # what each written block replaced (for the roll-back)
    try:
        # grow first (uncommitted rows are invisible to readers), write, then commit the count
        for arr in every.values():
            arr.resize((n_new, *arr.shape[1:]))
        done = 0
        # the first block only fills the partly written last chunk, so later blocks are aligned
        first = min(m, chunk - n_old % chunk) if n_old % chunk else min(m, chunk)
        bounds = [(0, first)] + [(a, min(a + chunk, m)) for a in range(first, m, chunk)]
        for a, b in bounds:
            block = {name: block_of(getattr(spectra, name), a, b, arr.dtype) for name, arr in arrays.items()}
            block.update({("meta", k): prepared[k][a:b] for k in meta_arrays})
            _unchanged(path, n_old, uid_old)  # a writer that ignored the lock: stop before writing over it
            before.append((a, b, {key: arr[n_old + a : n_old + b] for key, arr in every.items()}))
            for key, arr in every.items():
                arr[n_old + a : n_old + b] = block[key]
            done = b
            if progress is not None:
                progress(done, m)
        all_sources = np.concatenate(
            [read_column(meta_group, column_entry(columns, "source"), 0, n_old, path), prepared["source"]]
        )
        attrs = current_attrs(path)
        _unchanged(path, n_old, uid_old, attrs)
        prov = dict(attrs.get("provenance", {}))
        prov["source_files"] = _describe_sources(all_sources)
        # record how the appended spectra differ from the store's own provenance (usually nothing)
        differs = {
            k: v for k, v in jsonable(spectra.provenance).items()
            if k not in ("created", "source_files", "appends") and prov.get(k) != v
        }
        prov.setdefault("appends", []).append(
            {"n": int(m), "time": _now(), "software": _software(), "differs": differs}
        )
        attrs["provenance"] = prov
        attrs["n_spectra"] = int(n_new)
        attrs["uid"] = uuid.uuid4().hex  # new content, new identity (results of the old one are stale)
        group.attrs["agnlens"] = attrs  # the commit: one atomic rewrite of zarr.json
    except BaseException:
        # best effort roll-back of the shapes; if even this fails, readers still see n_old rows
        # (not after a failed compare-and-swap: the shapes then belong to the other writer, and
        # the rows this append wrote over the other writer's are put back as they were)
        if current_attrs(path).get("uid") != uid_old:
            _roll_back(path, n_old, new_ids.to_numpy(), before)
            raise
        try:
            for arr in every.values():
                arr.resize((n_old, *arr.shape[1:]))
        except Exception:  # pragma: no cover - the store stays valid without it
            log.debug("could not shrink %s back after a failed append", path, exc_info=True)
        raise
    log.info("appended %d spectra to %s (now %d)", m, path, n_new)
    return path


def _unchanged(path: Path, n_old: int, uid_old, attrs: dict | None = None) -> None:
    """The compare of the compare-and-swap: the store still has the row count and identity the
    append started from (a writer that ignored the lock changes them)."""
    attrs = current_attrs(path) if attrs is None else attrs
    if attrs.get("n_spectra") != n_old or attrs.get("uid") != uid_old:
        raise RuntimeError(
            f"{path}: the store changed while spectra were being appended (it had {n_old} "
            f"rows, now {attrs.get('n_spectra')}); another program wrote it without agnlens' "
            f"lock. Nothing of this append was committed and its rows were rolled back; check the "
            f"store and append again"
        )


def _roll_back(path: Path, n_old: int, new_ids: np.ndarray, before: list[tuple[int, int, dict]]) -> None:
    """Put back what an append whose compare-and-swap failed wrote over: every row that still
    holds this append's spec_id gets the values it had before (another writer's committed rows);
    rows another writer has written since are left as they are."""
    import zarr

    try:
        group: Any = zarr.open_group(str(path), mode="r+", zarr_format=3)
        columns = current_attrs(path).get("columns", [])
        ids_array = next(c["array"] for c in columns if c["name"] == "spec_id")
        names = {c["name"]: c["array"] for c in columns}
        for a, b, old in before:
            n_rows = group["meta"][ids_array].shape[0]
            stop = min(n_old + b, n_rows)
            if stop <= n_old + a:
                continue
            now = [str(v) for v in np.asarray(group["meta"][ids_array][n_old + a : stop]).tolist()]
            ours = np.flatnonzero([x == str(y) for x, y in zip(now, new_ids[a : stop - n_old])])
            if ours.size == 0:
                continue
            for key, values in old.items():
                arr = group["meta"][names[key[1]]] if isinstance(key, tuple) else group[key]
                current = np.asarray(arr[n_old + a : stop])
                current[ours] = np.asarray(values)[ours]
                arr[n_old + a : stop] = current
    except Exception:  # pragma: no cover - reported by the caller's error; nothing more to do
        log.warning("%s: could not roll back the rows of a failed append", path, exc_info=True)


# ------------------------------------------------------------------------------------- internals
def _write_new(spectra: SpectrumSet, tmp: Path, chunk_size: int, progress: ProgressCallback | None) -> None:
    import zarr

    n, n_pix = len(spectra), spectra.n_pixels
    group = zarr.open_group(str(tmp), mode="w-", zarr_format=3)
    group.create_array(
        "wavelength", data=np.asarray(spectra.wavelength, dtype=np.float64), chunks=(max(n_pix, 1),),
        **checked_codecs(),
    )
    arrays = {
        name: group.create_array(
            name, shape=(n, n_pix), dtype=dtype, chunks=(chunk_size, max(n_pix, 1)), **checked_codecs()
        )
        for name, dtype in (("flux", np.float32), ("ivar", np.float32), ("mask", bool))
    }
    meta_group = group.create_group("meta")
    columns = column_specs(spectra.meta, where=str(tmp))
    meta_arrays = {}
    for spec in columns:
        values = column_values(spectra.meta, spec, n, tmp)
        arr = meta_group.create_array(
            spec["array"], shape=(n,), dtype=zarr_dtype(spec), chunks=(chunk_size,), **checked_codecs()
        )
        meta_arrays[spec["name"]] = (arr, values)
    for a in range(0, n, chunk_size):
        b = min(a + chunk_size, n)
        for name, arr in arrays.items():
            arr[a:b] = block_of(getattr(spectra, name), a, b, arr.dtype)
        for arr, values in meta_arrays.values():
            arr[a:b] = values[a:b]
        if progress is not None:
            progress(b, n)
    prov = jsonable(spectra.provenance)  # its "grid" is spectra.grid.to_dict()
    prov.setdefault("software", _software())
    prov.setdefault("simulated", spectra.simulated)
    # facts about this store's own content, never inherited from the set's origin (a subset of
    # another store must not claim that store's files, creation time or appends)
    prov.pop("appends", None)
    prov["created"] = _now()
    prov["source_files"] = _describe_sources(spectra.meta["source"].astype(str).to_numpy())
    group.attrs["agnlens"] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "n_spectra": int(n),
        "uid": uuid.uuid4().hex,
        "grid": spectra.grid.name,  # the name, as agnlens 0.2 wrote it; the grid is in the provenance
        "chunk_size": int(chunk_size),
        "columns": columns,
        "provenance": prov,
        "integrity": INTEGRITY,
    }


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path`` (an absent path, or a store :func:`check_replaceable` passed)."""
    if not path.exists():
        os.rename(tmp, path)
        return
    old = temp_sibling(path, "old")
    os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def check_replaceable(path: Path, overwrite: bool) -> None:
    """Only an agnlens store is ever replaced, and only with ``overwrite``."""
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(
            f"{path}: already exists; pass overwrite=True (CLI: --overwrite) to replace it, or "
            f"append_store (CLI: --append) to add spectra"
        )
    if path.is_symlink() or not is_agnlens_store(path):
        raise FileExistsError(
            f"{path}: exists and is not an agnlens store; --overwrite only ever replaces a store "
            f"agnlens wrote. Move it away or choose another output name"
        )


def _describe_sources(sources) -> dict:
    names = sorted({str(s) for s in sources if str(s)})
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
    out: dict[str, Any] = {"count": len(names), "sha256": digest}
    if len(names) <= MAX_LISTED_SOURCES:
        out["files"] = names
    return out



def _software() -> str:
    from agnlens._version import __version__

    return f"agnlens {__version__}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
