"""Which files to read, and reading any one of them.

:func:`expand_inputs` turns what a user typed (files, directories, glob patterns) into a sorted
list of files; :func:`read_spectrum` reads one file of any supported format, detected from its
content.
"""

from __future__ import annotations

import glob
import io
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from agnlens.errors import ReadError
from agnlens.io.fits import MAX_GUNZIP_BYTES, _Fits, _load, _sniff
from agnlens.io.sdss import DEFAULT_BAD_BITS, _read_spec, _read_spspec
from agnlens.spectra import Spectrum

log = logging.getLogger(__name__)

__all__ = ["FITS_SUFFIXES", "TABLE_SUFFIXES", "display_name", "expand_inputs", "read_spectrum"]

#: Files picked up when a directory is given.
FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fit.gz")
#: Plain-table files, read only when named explicitly (or matched by a pattern).
TABLE_SUFFIXES = (".csv", ".ecsv")

_GLOB_CHARS = set("*?[")


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, directories and glob patterns into a sorted, de-duplicated list of files.

    Parameters
    ----------
    inputs : iterable of str or path-like
        A file is taken as is (whatever its suffix); a directory is searched recursively for
        FITS files (:data:`FITS_SUFFIXES`); a pattern with ``*``, ``?`` or ``[`` is expanded
        (``**`` recurses) and matching files of any suffix are taken.

    Returns
    -------
    list of Path
        Sorted, each file once (compared by resolved path).

    Raises
    ------
    FileNotFoundError
        Naming the first input that matches no file.
    TypeError
        If ``inputs`` is a single string or path instead of a list of them.
    """
    if isinstance(inputs, (str, bytes, os.PathLike)):
        raise TypeError(
            f"expand_inputs expects a list of paths or patterns, got the single {type(inputs).__name__} "
            f"{inputs!r}; wrap it in a list"
        )
    found: dict[Path, Path] = {}
    for item in inputs:
        text = os.fsdecode(item)  # bytes that are not UTF-8 become surrogates, as os.listdir gives
        matches = _expand_one(text)
        if not matches:
            if any(c in text for c in _GLOB_CHARS) and not Path(text).exists():
                raise FileNotFoundError(f"{text}: the pattern matches no file")
            if Path(text).is_dir():
                raise FileNotFoundError(
                    f"{text}: the directory holds no FITS file ({', '.join('*' + s for s in FITS_SUFFIXES)})"
                )
            raise FileNotFoundError(f"{text}: no such file or directory")
        for p in matches:
            found.setdefault(p.resolve(), p)
    return sorted(found.values(), key=lambda p: str(p))


def display_name(path: str | os.PathLike | bytes) -> str:
    """A path as printable text: bytes of a name that are not valid UTF-8 shown as ``\\xNN``.

    A file name is bytes on POSIX; Python decodes the invalid ones to lone surrogates, which cannot
    be printed, written to a CSV or stored. The result equals ``os.fspath(path)`` for every valid
    name, so ``display_name(p) != os.fspath(p)`` tells that a name is not valid UTF-8.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _expand_one(text: str) -> list[Path]:
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(FITS_SUFFIXES)]
    if any(c in text for c in _GLOB_CHARS):
        out = []
        for m in glob.glob(str(path), recursive=True):
            p = Path(m)
            if p.is_file():
                out.append(p)
            elif p.is_dir():
                out.extend(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(FITS_SUFFIXES))
        return out
    return []


def read_spectrum(path: str | os.PathLike | IO[bytes], **kw) -> Spectrum:
    """Read one spectrum file of any supported format, detected from its content.

    SDSS DR8+ ``spec`` files (a FITS file whose HDU 1 is ``COADD``) and DR7 ``spSpec`` files (a
    primary image with a ``COEFF0`` wavelength solution) go to :func:`agnlens.io.read_sdss`;
    other FITS tables and ``.csv`` / ``.ecsv`` files go to :func:`agnlens.io.read_table`.

    Parameters
    ----------
    path : path-like or binary file object
        A file object (e.g. :class:`io.BytesIO`) is read from memory; give it a ``name`` for
        messages and, for CSV/ECSV, for the format.
    **kw
        Passed to the reader: ``bad_bits`` for SDSS files; ``wavelength``, ``flux``, ``error``,
        ``ivar``, ``z``, ``spec_id`` for tables. ``max_bytes`` (any format) caps what a ``.gz``
        file may decompress to (default :data:`agnlens.io.fits.MAX_GUNZIP_BYTES`).

    Returns
    -------
    Spectrum
        Observed frame.

    Raises
    ------
    ReadError
        Naming the file and the reason (not a FITS file, truncated, missing HDU or column...).
    TypeError
        If a keyword does not belong to the detected format's reader.
    """
    data, source = _load(path, kw.pop("max_bytes", MAX_GUNZIP_BYTES))
    kind = _sniff(data, source)
    if kind in ("spec", "spSpec"):
        extra = set(kw) - {"bad_bits"}
        if extra:
            raise TypeError(f"{source}: is an SDSS {kind} file; read_sdss takes no {sorted(extra)} (only bad_bits)")
        f = _Fits(data, source)
        bad_bits = kw.get("bad_bits", DEFAULT_BAD_BITS)
        return _read_spec(f, bad_bits) if kind == "spec" else _read_spspec(f, bad_bits)
    if "bad_bits" in kw:
        raise TypeError(f"{source}: is not an SDSS spectrum; bad_bits only applies to SDSS files")
    from agnlens.io.table import read_table

    lower = source.lower()
    if kind == "fits":
        # Our walker checks the structure first, so astropy never meets a truncated file or a
        # header that promises gigabytes.
        _Fits(data, source).check_complete()
    if kind == "fits" or lower.endswith((".csv", ".ecsv")):
        buf = io.BytesIO(data)
        buf.name = source
        return read_table(buf, **kw)
    raise ReadError(
        source,
        "not a FITS file (header could not be parsed); plain tables must be named *.csv or *.ecsv",
    )
