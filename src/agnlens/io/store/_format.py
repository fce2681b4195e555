"""How a store's arrays are written and checked: checksummed chunks, missing chunks named, and the
metadata table encoded as one 1-D array per column (kinds, dtypes, missing values).

:mod:`agnlens.io.store` writes, appends and opens stores through these.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from agnlens.errors import ReadError

log = logging.getLogger(__name__)

#: Marker in the root attributes that says "this Zarr group is an agnlens store".
FORMAT_NAME = "agnlens-store"
#: Version of the layout above; bump on incompatible changes.
FORMAT_VERSION = 1
#: What a store written by this version guarantees (readers verify it when present).
INTEGRITY = "crc32c chunks, all written"

#: The per-pixel arrays of a store, each (n_rows, n_pixels).
ARRAYS = ("flux", "ivar", "mask")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")

#: Storage of the standard metadata columns (used when a table is empty and cannot tell).
_CANONICAL_KINDS = {
    "spec_id": ("str", "str"),
    "label": ("str", "str"),
    "sdss_class": ("str", "str"),
    "sdss_subclass": ("str", "str"),
    "source": ("str", "str"),
    "z": ("float", "<f8"),
    "snr": ("float", "<f8"),
    "zwarning": ("int", "<i8"),
}


def checked_codecs() -> dict:
    """Codecs and config of every array: zstd, then a CRC32C checksum of the compressed chunk; every
    chunk written (an absent chunk is then damage, never "all zeros")."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return {"compressors": (ZstdCodec(level=0), Crc32cCodec()), "config": {"write_empty_chunks": True}}


class Checked:
    """A Zarr array seen through :func:`read_checked` (what dask reads lazily opened stores through)."""

    def __init__(self, array, path: Path):
        self.array, self.path = array, path
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        rows = key[0] if isinstance(key, tuple) else key
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            return np.asarray(self.array[key])
        start, stop, _ = rows.indices(self.shape[0])
        values = read_checked(self.array, start, stop, self.path)
        return values[(slice(None), *key[1:])] if isinstance(key, tuple) else values


def read_checked(array, start: int, stop: int | None, path) -> np.ndarray:
    """Rows ``start:stop`` of a store array; a chunk that fails its checksum or cannot be decoded
    is a :class:`ReadError` naming the store, the array and the chunk."""
    try:
        return np.asarray(array[start:stop])
    except Exception as exc:  # zarr raises ValueError on a bad checksum, others on garbage
        size = array.chunks[0]
        stop = array.shape[0] if stop is None else stop
        bad = start // size
        for i in range(start // size, max(start, stop - 1) // size + 1):
            try:
                array[i * size : min((i + 1) * size, array.shape[0])]
            except Exception:
                bad = i
                break
        raise ReadError(
            path,
            f"array {array.path!r}, chunk {bad} (rows {bad * size}-{min((bad + 1) * size, array.shape[0]) - 1}) "
            f"is damaged ({type(exc).__name__}: {exc}); restore the store from a copy or rebuild it",
        ) from exc


def check_chunks(group, attrs: dict, path: Path) -> None:
    """Every chunk of the committed rows exists (stores with the integrity marker write all)."""
    n = attrs["n_spectra"]
    names = [*ARRAYS, "wavelength"] + [f"meta/{c['array']}" for c in attrs["columns"]]
    for name in names:
        array = group[name]
        rows = array.shape[0] if name == "wavelength" else n
        size = array.chunks[0]
        for i in range(-(-rows // size)):
            key = array.metadata.encode_chunk_key((i,) + (0,) * (array.ndim - 1))
            if not (path / name / key).is_file():
                raise ReadError(
                    path,
                    f"array {name!r} has lost chunk {i} (rows {i * size}-{min((i + 1) * size, rows) - 1}, "
                    f"file {name}/{key}); restore the store from a copy or rebuild it",
                )


def check_unique_ids(meta: pd.DataFrame, where: str) -> None:
    ids = meta["spec_id"].astype(str)
    ids = ids[ids != ""]
    dup = ids[ids.duplicated()].unique().tolist()
    if dup:
        shown = ", ".join(dup[:10]) + (f" and {len(dup) - 10} more" if len(dup) > 10 else "")
        raise ValueError(f"{where}: duplicate spec_id(s) {shown}; every spectrum needs its own spec_id")


def column_specs(meta: pd.DataFrame, where: str) -> list[dict]:
    """How each metadata column is stored: name, array name, kind, numpy dtype, pandas dtype."""
    specs, used = [], set()
    for i, name in enumerate(meta.columns):
        if not isinstance(name, str):
            raise ValueError(f"{where}: metadata column names must be strings, got {name!r}")
        array = name if _SAFE_NAME.match(name) and not name.startswith("__") else f"col{i:03d}"
        if array in used:
            array = f"col{i:03d}"
        used.add(array)
        col = meta[name]
        dtype = col.dtype
        if len(col) == 0 and name in _CANONICAL_KINDS:
            # an empty table has no values to infer from; the standard columns' kinds are known
            kind, np_dtype = _CANONICAL_KINDS[name]
            specs.append({"name": name, "array": array, "kind": kind, "dtype": np_dtype,
                          "pandas_dtype": "str" if kind == "str" else np_dtype})
            continue
        if pd.api.types.is_bool_dtype(dtype) and not col.isna().any():
            kind, np_dtype = "bool", "bool"
        elif isinstance(dtype, np.dtype) and dtype.kind in "iuf":
            kind, np_dtype = ("int" if dtype.kind in "iu" else "float"), dtype.str
        elif pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
            # pandas nullable numbers: missing values become NaN
            kind, np_dtype = "float", "<f8"
        else:
            kind, np_dtype = "str", "str"
        specs.append({"name": name, "array": array, "kind": kind, "dtype": np_dtype, "pandas_dtype": str(dtype)})
    return specs


def column_entry(columns: list[dict], name: str) -> dict:
    for c in columns:
        if c["name"] == name:
            return c
    raise KeyError(name)


def zarr_dtype(spec: dict):
    return str if spec["kind"] == "str" else np.dtype(spec["dtype"])


def column_values(meta: pd.DataFrame, spec: dict, n: int, where) -> np.ndarray:
    """The column as the numpy array to store (missing columns get the kind's empty value)."""
    name, kind = spec["name"], spec["kind"]
    if name not in meta.columns:
        fill = {"str": "", "float": np.nan, "int": 0, "bool": False}[kind]
        if kind == "int":
            log.debug("%s: column %r missing; filled with 0", where, name)
        return np.full(n, fill, dtype=object if kind == "str" else np.dtype(spec["dtype"]))
    col = meta[name]
    if kind == "str":
        return np.array(["" if _isna(v) else str(v) for v in col], dtype=object)
    try:
        if kind == "int" and col.isna().any():
            raise ValueError("missing values")
        return col.to_numpy(dtype=np.dtype(spec["dtype"]))
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{where}: metadata column {name!r} must hold {spec['dtype']} values like the store "
            f"({exc}); convert it before appending"
        ) from exc


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def block_of(arr, a: int, b: int, dtype) -> np.ndarray:
    return np.asarray(arr[a:b]).astype(dtype, copy=False)


def read_column(meta_group, spec: dict, start: int, stop: int, path) -> np.ndarray:
    return column_from(meta_group[spec["array"]], spec, start, stop, path)


def column_from(array, spec: dict, start: int, stop: int, path) -> np.ndarray:
    values = read_checked(array, start, stop, path)
    if spec["kind"] == "str":
        return values.astype(object)
    return values


def read_meta(group, info: dict, start: int, stop: int, path) -> pd.DataFrame:
    meta_group = group["meta"]
    specs = info["columns"]
    return meta_frame({c["name"]: read_column(meta_group, c, start, stop, path) for c in specs}, specs, stop - start)


def meta_frame(values: dict, specs: list[dict], n: int) -> pd.DataFrame:
    data = {}
    for spec in specs:
        series = pd.Series(values[spec["name"]], name=spec["name"])
        if spec["kind"] == "str":
            try:
                series = series.astype(spec.get("pandas_dtype", "object"))
            except (TypeError, ValueError):
                series = series.astype(object)
        data[spec["name"]] = series
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def is_agnlens_store(path: Path) -> bool:
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    marker = meta.get("attributes", {}).get("agnlens") if isinstance(meta, dict) else None
    return isinstance(marker, dict) and marker.get("format") == FORMAT_NAME


def current_attrs(path: Path) -> dict:
    """The committed attributes as they are on disk now (no cache)."""
    try:
        return json.loads((path / "zarr.json").read_text())["attributes"]["agnlens"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def open_store_group(path: Path, mode: Literal["r", "r+"]):
    import zarr

    if not path.exists():
        raise ReadError(path, "no such store; create one with `agnlens ingest` or `agnlens simulate --out`")
    if not (path / "zarr.json").is_file():
        raise ReadError(
            path, "not an agnlens store (no zarr.json: not a Zarr v3 group); expected a directory written by agnlens"
        )
    try:
        group = zarr.open_group(str(path), mode=mode, zarr_format=3)
    except Exception as exc:  # zarr raises several kinds on a broken group
        raise ReadError(path, f"not a readable Zarr v3 group ({type(exc).__name__}: {exc})") from exc
    attrs = group.attrs.get("agnlens")
    if not isinstance(attrs, dict) or attrs.get("format") != FORMAT_NAME:
        raise ReadError(path, "a Zarr group but not an agnlens store (no 'agnlens' format marker in its attributes)")
    if attrs.get("version") != FORMAT_VERSION:
        raise ReadError(
            path,
            f"agnlens store format version {attrs.get('version')!r}, this agnlens reads version "
            f"{FORMAT_VERSION}; rewrite the store with this version",
        )
    for key in ("n_spectra", "grid", "chunk_size", "columns", "provenance"):
        if key not in attrs:
            raise ReadError(path, f"agnlens store attributes lack {key!r}; the store is damaged, rewrite it")
    n = attrs["n_spectra"]
    try:
        arrays = dict(group.arrays())
        groups = dict(group.groups())
        meta_members = set(groups["meta"].array_keys()) if "meta" in groups else None
    except Exception as exc:
        raise ReadError(path, f"cannot list the store's arrays ({type(exc).__name__}: {exc})") from exc
    missing = [name for name in (*ARRAYS, "wavelength") if name not in arrays]
    if meta_members is None:
        missing.append("meta/")
    else:
        missing += [f"meta/{c['array']}" for c in attrs["columns"] if c["array"] not in meta_members]
    if missing:
        raise ReadError(path, f"agnlens store is missing {', '.join(missing)}; the store is damaged, rewrite it")
    n_pix = arrays["wavelength"].shape[0]
    for name in ARRAYS:
        shape = arrays[name].shape
        if len(shape) != 2 or shape[1] != n_pix or shape[0] < n:
            raise ReadError(
                path, f"array {name!r} has shape {shape}, expected at least ({n}, {n_pix}); the store is damaged"
            )
    if attrs.get("integrity") == INTEGRITY:
        check_chunks(group, attrs, path)
    return group, attrs


def check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer (spectra per chunk), got {chunk_size!r}")
    return int(chunk_size)
