"""Read a spectrum from a plain table (FITS binary table, CSV or ECSV), for non-SDSS users.

Column names are found case-insensitively among common spellings; a ``loglam`` column is
converted with 10**x; an error column (σ) becomes ``ivar = 1/σ²``.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np

from agnlens.errors import ReadError
from agnlens.spectra import Spectrum

log = logging.getLogger(__name__)

__all__ = ["read_table", "WAVELENGTH_NAMES", "FLUX_NAMES", "ERROR_NAMES", "IVAR_NAMES"]

#: Recognised column names (case-insensitive), in order of preference.
WAVELENGTH_NAMES = ("wavelength", "wave", "lambda", "lam", "wl", "loglam")
FLUX_NAMES = ("flux", "f_lambda", "flam", "fluxdensity")
ERROR_NAMES = ("error", "err", "sigma", "flux_err", "flux_error", "uncertainty", "ferr", "noise")
IVAR_NAMES = ("ivar", "inverse_variance", "invvar", "flux_ivar")
Z_NAMES = ("z", "redshift")
ID_NAMES = ("spec_id", "specid", "id", "name", "object", "objname")


def read_table(
    path: str | os.PathLike | IO[bytes],
    *,
    wavelength: str | None = None,
    flux: str | None = None,
    error: str | None = None,
    ivar: str | None = None,
    z: float | None = None,
    spec_id: str | None = None,
) -> Spectrum:
    """Read one spectrum from a table with wavelength, flux and error (or ivar) columns.

    Parameters
    ----------
    path : path-like or binary file object
        A FITS binary table, ``.csv`` or ``.ecsv`` file (anything :class:`astropy.table.Table`
        reads). A file object needs a ``name`` whose suffix tells the format.
    wavelength, flux, error, ivar : str, optional
        Column names; by default found among common names (``wavelength|wave|lambda|loglam``,
        ``flux``, ``error|err|sigma|flux_err|uncertainty`` or ``ivar|inverse_variance``). A
        column named ``loglam`` holds log10 λ. Without an error or ivar column every finite pixel
        gets ``ivar = 1``, with a warning in the log.
    z : float, optional
        The redshift; by default a ``z``/``redshift`` column (first row) or the table's ``Z`` /
        ``REDSHIFT`` metadata. NaN (preprocess then rejects the spectrum) if none is found.
    spec_id : str, optional
        Default: the table's ``SPEC_ID``/``ID``/``NAME`` metadata, else the file stem.

    Returns
    -------
    Spectrum
        Observed frame (wavelength in Å, sorted ascending); ``meta["format"] = "table"``.

    Raises
    ------
    ReadError
        The file cannot be read as a table, a column is missing or not numeric, the table is
        empty, or the wavelengths are not finite.
    """
    source = str(getattr(path, "name", "<file object>")) if hasattr(path, "read") else str(path)
    table = _read_astropy_table(path, source)
    if len(table) == 0:
        raise ReadError(source, "the table has no rows (empty spectrum)")
    columns = {name.lower(): name for name in table.colnames}

    wl_name = _pick(source, columns, wavelength, WAVELENGTH_NAMES, "wavelength")
    fl_name = _pick(source, columns, flux, FLUX_NAMES, "flux")
    wl = _numeric(source, table, wl_name)
    if wl_name.lower() == "loglam":
        with np.errstate(over="ignore", invalid="ignore"):
            wl = 10.0**wl
    fl = _numeric(source, table, fl_name)
    if ivar is not None or (error is None and _find(columns, IVAR_NAMES)):
        iv_name = _pick(source, columns, ivar, IVAR_NAMES, "ivar")
        iv = _numeric(source, table, iv_name)
    elif error is not None or _find(columns, ERROR_NAMES):
        err_name = _pick(source, columns, error, ERROR_NAMES, "error")
        sigma = _numeric(source, table, err_name)
        ok = np.isfinite(sigma) & (sigma > 0)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            iv = np.where(ok, 1.0 / np.where(ok, sigma, 1.0) ** 2, 0.0)
    else:
        log.warning("%s: no error or ivar column; every finite pixel gets ivar = 1", source)
        iv = np.ones_like(fl)

    if wl.size and not np.all(np.isfinite(wl)):
        raise ReadError(source, f"column {wl_name!r} has NaN or infinite wavelengths")
    order = np.argsort(wl, kind="stable")
    wl, fl, iv = wl[order], fl[order], iv[order]
    if wl.size > 1 and not np.all(np.diff(wl) > 0):
        raise ReadError(source, f"column {wl_name!r} has repeated wavelengths")
    if wl[0] <= 0:
        raise ReadError(source, f"column {wl_name!r} has non-positive wavelengths ({wl[0]:g})")
    mask = ~np.isfinite(fl) | ~np.isfinite(iv) | ~(iv > 0)
    iv = np.where(mask, 0.0, iv)

    meta_lc = {str(k).lower(): v for k, v in table.meta.items()}
    if z is None:
        z = _redshift(source, table, columns, meta_lc)
    if spec_id is None:
        spec_id = next((str(meta_lc[k]) for k in ID_NAMES if k in meta_lc), None)
        if spec_id is None:
            name = Path(source).name
            for suffix in (".gz", ".fits", ".fit", ".csv", ".ecsv"):
                if name.lower().endswith(suffix):
                    name = name[: -len(suffix)]
            spec_id = name
    meta: dict[str, Any] = {
        "spec_id": str(spec_id),
        "z": float(z),
        "z_err": float("nan"),
        "zwarning": 0,
        "sdss_class": "",
        "sdss_subclass": "",
        "survey": "",
        "source": source,
        "format": "table",
        "simulated": False,
    }
    return Spectrum(wavelength=wl, flux=fl, ivar=iv, mask=mask, meta=meta, frame="observed")


def _read_astropy_table(path, source: str):
    from astropy.table import Table

    fmt = None
    name = source.lower()
    if name.endswith(".ecsv"):
        fmt = "ascii.ecsv"
    elif name.endswith(".csv"):
        fmt = "ascii.csv"
    elif name.endswith((".fits", ".fit", ".fits.gz", ".fit.gz", ".fts")):
        fmt = "fits"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if hasattr(path, "read"):
                data = path.read()
                if fmt is None:
                    fmt = "fits" if data[:9] == b"SIMPLE  =" else "ascii.csv"
                src = io.BytesIO(data) if fmt == "fits" else data.decode("utf-8", "replace")
                table = Table.read(src, format=fmt)
            else:
                table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except ReadError:
        raise
    except FileNotFoundError:
        raise ReadError(source, "no such file") from None
    except MemoryError:
        raise ReadError(source, "the file declares more data than can be read") from None
    except Exception as exc:  # astropy raises many types (OSError, ValueError, KeyError, TypeError...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReadError(source, f"cannot read as a table ({reason[:200]})") from None
    for w in caught:
        text = str(w.message)
        if "truncat" in text.lower():
            raise ReadError(source, "truncated: the file is shorter than its header says")
        log.debug("%s: %s: %s", source, w.category.__name__, text)
    if table.colnames and any(getattr(table[c], "ndim", 1) != 1 for c in table.colnames):
        # Keep only 1-D columns; a vector column cannot be a spectrum column.
        table = table[[c for c in table.colnames if table[c].ndim == 1]]
    return table


def _find(columns: dict[str, str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in columns:
            return columns[n]
    return None


def _pick(source: str, columns: dict[str, str], given: str | None, names: tuple[str, ...], what: str) -> str:
    if given is not None:
        if given.lower() not in columns:
            raise ReadError(source, f"no column {given!r} (the table has {_list(columns)})")
        return columns[given.lower()]
    found = _find(columns, names)
    if found is None:
        raise ReadError(
            source,
            f"no {what} column: expected one named {' | '.join(names)} (the table has {_list(columns)}); "
            f"pass {what}=NAME to choose one",
        )
    return found


def _list(columns: dict[str, str]) -> str:
    names = list(columns.values())
    return ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") if names else "no columns"


def _numeric(source: str, table, name: str) -> np.ndarray:
    col = table[name]
    try:
        values = np.ma.filled(np.ma.asarray(col, dtype=np.float64), np.nan)
    except (TypeError, ValueError):
        raise ReadError(source, f"column {name!r} is not numeric (dtype {col.dtype})") from None
    return np.asarray(values, dtype=np.float64).ravel()


def _redshift(source: str, table, columns: dict[str, str], meta_lc: dict[str, Any]) -> float:
    name = _find(columns, Z_NAMES)
    if name is not None:
        values = _numeric(source, table, name)
        finite = values[np.isfinite(values)]
        if finite.size and not np.all(finite == finite[0]):
            raise ReadError(source, f"column {name!r} has several different redshifts; pass z=VALUE")
        return float(finite[0]) if finite.size else float("nan")
    for key in ("z", "redshift"):
        if key in meta_lc:
            try:
                return float(meta_lc[key])
            except (TypeError, ValueError):
                raise ReadError(source, f"table metadata {key.upper()} = {meta_lc[key]!r} is not a number") from None
    log.warning("%s: no redshift column or Z/REDSHIFT metadata; pass z=VALUE", source)
    return float("nan")
