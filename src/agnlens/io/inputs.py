"""Which files to read, and reading any one of them.

:func:`expand_inputs` turns what a user typed (files, directories, glob patterns) into a sorted
list of files; :func:`read_spectra` reads every spectrum of one file of any supported format,
detected from its content (one for an SDSS file or a table, one per target for a DESI file);
:func:`read_spectrum` reads a file that holds one spectrum.

A DESI file's targets are named ``FILE[TARGETID]`` (the ``source`` of each spectrum and of each
rejection): such a name, or ``FILE[ID,ID,...]`` or ``FILE[rows=START:STOP]``, is an input like a
file, and reads only those targets.
"""

from __future__ import annotations

import glob
import io
import logging
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from agnlens.errors import ReadError, RejectedSpectrum
from agnlens.io.desi import SkippedFibres, desi_from_fits, zwarn_problem
from agnlens.io.fits import MAX_GUNZIP_BYTES, FitsFile, load_bytes, sniff_bytes
from agnlens.io.sdss import DEFAULT_BAD_BITS, spec_from_fits, spspec_from_fits, zwarning_problem
from agnlens.spectra import Spectrum

log = logging.getLogger(__name__)

__all__ = [
    "FITS_SUFFIXES",
    "TABLE_SUFFIXES",
    "count_spectra",
    "display_name",
    "expand_inputs",
    "read_spectra",
    "read_spectrum",
    "redshift_problem",
    "split_item",
    "target_ranges",
]

#: ``FILE[ID,ID...]`` or ``FILE[rows=START:STOP]``: some targets of a multi-target (DESI) file.
_ITEM_RE = re.compile(r"^(?P<path>.+)\[(?P<sel>rows=\d+:\d+|-?\d+(?:,-?\d+)*)\]$", re.DOTALL)

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
    targets: dict[Path, tuple[Path, list[str]]] = {}
    for item in inputs:
        text = os.fsdecode(item)  # bytes that are not UTF-8 become surrogates, as os.listdir gives
        m = _ITEM_RE.match(text)
        if m and not Path(text).exists() and Path(m["path"]).is_file():  # some targets of a file
            p = Path(m["path"])
            targets.setdefault(p.resolve(), (p, []))[1].append(m["sel"])
            continue
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
    for key, (p, selectors) in targets.items():
        if key in found:
            continue  # the whole file is read anyway
        ids = [s for s in selectors if not s.startswith("rows=")]
        if ids:  # the targets of one file in one item: the file is opened once
            found[Path(f"{key}#ids")] = Path(f"{p}[{','.join(dict.fromkeys(','.join(ids).split(',')))}]")
        for s in dict.fromkeys(s for s in selectors if s.startswith("rows=")):
            found[Path(f"{key}#{s}")] = Path(f"{p}[{s}]")
    return sorted(found.values(), key=lambda p: str(p))


def split_item(item: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """The file an input names and which of its targets: ``("coadd.fits", {"targets": [1, 2]})``
    for ``coadd.fits[1,2]``, ``{"rows": (0, 100)}`` for ``coadd.fits[rows=0:100]``, ``{}`` for a file."""
    text = os.fspath(item)
    text = text if isinstance(text, str) else os.fsdecode(text)
    m = _ITEM_RE.match(text)
    if not m or Path(text).exists():
        return text, {}
    sel = m["sel"]
    if sel.startswith("rows="):
        a, b = sel[5:].split(":")
        return m["path"], {"rows": (int(a), int(b))}
    return m["path"], {"targets": [int(t) for t in sel.split(",")]}


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


def count_spectra(item: str | os.PathLike) -> int:
    """How many spectra an input holds, from its first megabyte: a DESI file's FIBERMAP rows (those
    of its ``[rows=A:B]`` or ``[TARGETID,...]``), 1 for any other file (or one unreadable here).
    Only files named as DESI names them (``coadd-*``, ``spectra-*``) are opened: an estimate for
    cutting work into tasks, which costs an SDSS ingest nothing."""
    path, select = split_item(item)
    if not re.match(r"(coadd|spectra)-", Path(path).name, re.IGNORECASE):
        return 1
    try:
        with open(path, "rb") as fh:
            head = fh.read(2**20)
        if head[:2] == b"\x1f\x8b":
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 2**20)
        f = FitsFile(head, path)
        h1 = f.hdu(1)
        if h1 is None or h1.name != "FIBERMAP":
            return 1
        n = f.int_key(h1, "NAXIS2", lo=0)
    except (OSError, ReadError, zlib.error):
        return 1
    if "rows" in select:
        return max(0, min(select["rows"][1], n) - select["rows"][0])
    return len(select["targets"]) if "targets" in select else n


def target_ranges(items: Iterable[str | os.PathLike], size: int) -> list[tuple[str, int]]:
    """Each input with its number of spectra (:func:`count_spectra`), a DESI file of more than
    ``size`` targets cut into ``FILE[rows=A:B]`` ranges of ``size``: units of work whose memory is
    bounded by ``size`` spectra, not by the file."""
    out: list[tuple[str, int]] = []
    for item in (str(os.fspath(i)) for i in items):
        n = count_spectra(item)
        if n <= size or split_item(item)[1]:
            out.append((str(item), n))
        else:
            out.extend((f"{item}[rows={a}:{min(a + size, n)}]", min(size, n - a)) for a in range(0, n, size))
    return out


def work_batches(items: Iterable[str | os.PathLike], size: int) -> list[list[str]]:
    """``items`` cut into tasks of at most ``size`` spectra each, in order (a big DESI file in
    :func:`target_ranges`): what one worker reads and works on at a time."""
    batches: list[list[str]] = []
    held = 0
    for item, n in target_ranges(items, size):
        if not batches or held + n > size:
            batches.append([])
            held = 0
        batches[-1].append(item)
        held += n
    return batches


def read_spectra(item: str | os.PathLike, **kw) -> Iterator[Spectrum | RejectedSpectrum | SkippedFibres]:
    """Every spectrum of one file, format detected from the content.

    Parameters
    ----------
    item : path-like
        A file (any format of :func:`read_spectrum`, or a DESI ``coadd-*``/``spectra-*`` file), or
        some targets of a DESI file: ``FILE[TARGETID,...]``, ``FILE[rows=START:STOP]``.
    **kw
        As :func:`read_spectrum` (for the formats it reads).

    Yields
    ------
    Spectrum
        One for an SDSS file or a table; one per target of a DESI file
        (:func:`agnlens.io.desi.read_desi`), observed frame.
    RejectedSpectrum
        A target of a DESI file that cannot be used (the rest of the file is read).
    SkippedFibres
        A DESI file's fibres without a target (sky, unassigned, broken), counted.

    Nothing is yielded for a DESI ``redrock-*`` file: it is read with the coadd beside it.

    Raises
    ------
    ReadError
        When the file cannot be read at all.
    """
    path, select = split_item(item)
    data, source = load_bytes(path, kw.pop("max_bytes", MAX_GUNZIP_BYTES))
    f = FitsFile(data, source)  # parsed once: what sniffing reads, the reader does not read again
    kind = sniff_bytes(data, source, f)
    if kind == "desi-redshifts":
        log.debug("%s: a DESI redrock file, read with the coadd beside it", source)
        return
    if kind == "desi":
        if kw:
            raise TypeError(f"{source}: is a DESI file; its reader takes no {sorted(kw)}")
        yield from desi_from_fits(f, Path(path), item=source, **select)
        return
    if select:
        raise ReadError(source, "only a DESI file holds several targets to choose with [TARGETID] or [rows=A:B]")
    yield _read_one(data, source, kind, kw, f)


def redshift_problem(meta: dict) -> str | None:
    """Why a spectrum's redshift cannot be used (missing, or flagged by its survey's pipeline), or None.

    Parameters
    ----------
    meta : dict
        A spectrum's metadata: ``z``, ``zwarning`` and ``format`` (DESI's ZWARN bits are judged
        by :func:`agnlens.io.desi.zwarn_problem`, SDSS's ZWARNING by
        :func:`agnlens.io.sdss.zwarning_problem`).

    Returns
    -------
    str or None
    """
    desi = str(meta.get("format", "")).startswith("desi")
    z = meta.get("z", math.nan)
    if desi and not (isinstance(z, (int, float)) and math.isfinite(z)):
        return (
            f"no redshift for TARGETID {meta.get('targetid')}: no redrock-*.fits beside the file holds it and "
            f"no catalogue row gives it; pass --labels with a table of TARGETID and Z (e.g. a zpix/ztile catalogue)"
        )
    zwarning = int(meta.get("zwarning", 0) or 0)
    return zwarn_problem(zwarning) if desi else zwarning_problem(zwarning)


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
    data, source = load_bytes(path, kw.pop("max_bytes", MAX_GUNZIP_BYTES))
    f = FitsFile(data, source)
    kind = sniff_bytes(data, source, f)
    if kind in ("desi", "desi-redshifts"):
        raise ReadError(source, "is a DESI file of many targets (or their redshifts); read it with "
                                "agnlens.io.read_spectra, which gives one spectrum per target")
    return _read_one(data, source, kind, kw, f)


def _read_one(data: bytes, source: str, kind: str, kw: dict, f: FitsFile) -> Spectrum:
    if kind in ("spec", "spSpec"):
        extra = set(kw) - {"bad_bits"}
        if extra:
            raise TypeError(f"{source}: is an SDSS {kind} file; read_sdss takes no {sorted(extra)} (only bad_bits)")
        bad_bits = kw.get("bad_bits", DEFAULT_BAD_BITS)
        return spec_from_fits(f, bad_bits) if kind == "spec" else spspec_from_fits(f, bad_bits)
    if "bad_bits" in kw:
        raise TypeError(f"{source}: is not an SDSS spectrum; bad_bits only applies to SDSS files")
    from agnlens.io.table import read_table

    lower = source.lower()
    if kind == "fits":
        # Our walker checks the structure first, so astropy never meets a truncated file or a
        # header that promises gigabytes.
        f.check_complete()
    if kind == "fits" or lower.endswith((".csv", ".ecsv")):
        buf = io.BytesIO(data)
        buf.name = source
        return read_table(buf, **kw)
    raise ReadError(
        source,
        "not a FITS file (header could not be parsed); plain tables must be named *.csv or *.ecsv",
    )
