"""A minimal read-only FITS walker for spectrum files (SDSS, DESI): headers, binary tables, images
(row slices of them), streamed, size-bounded gunzip, and memory-mapped reading of large files.

Why not :mod:`astropy.io.fits`: opening the two HDUs an SDSS reader needs costs 21–160 ms per
file with astropy (it builds Column objects for the 126–236-column SPECOBJ/SPALL rows) and 1–3 ms
here; ``benchmarks/bench_fits.py`` keeps that measured. The tests cross-check every array against
astropy.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import zlib
from typing import IO, Any

import numpy as np

from agnlens.errors import ReadError

_BLOCK = 2880
_CARD = 80
#: Upper bound on header blocks per HDU (a SPALL header has 7); guards against garbage files.
_MAX_HEADER_BLOCKS = 1000
#: A ``.gz`` input may decompress to at most this many bytes (a full BOSS spec file is ~1.3 MB,
#: a full Legacy one ~0.9 MB): a small gzip bomb must not cost gigabytes. Decompression is
#: streamed and stops at the limit. Pass ``max_bytes=`` to :func:`agnlens.io.read_spectrum` to change it.
MAX_GUNZIP_BYTES = 64 * 2**20
#: Uncompressed files larger than this are memory-mapped rather than read: a DESI coadd of
#: thousands of targets is hundreds of MB, and a reader touching one target's rows then pages in
#: only those.
MAP_BYTES = 16 * 2**20


# --------------------------------------------------------------------------------------------
# A minimal read-only FITS walker
# --------------------------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?")
_TFORM_RE = re.compile(r"\s*(\d*)([LXBIJKAEDCMPQ])")
_QUOTED_TFORM_RE = re.compile(r"\s*'\s*(\d*)([LXBIJKAEDCMPQ])[^']*'(?!')")
_QUOTED_NAME_RE = re.compile(r"\s*'([^']*)'(?!')")
_TFORM_SIZE = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16, "P": 8, "Q": 16}
_TFORM_DTYPE = {"L": "i1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
BITPIX_DTYPE = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class _Undefined:
    """A header keyword present without a value."""


def _parse_value(raw: str) -> Any:
    """Parse the value field (columns 11–80) of a header card; ValueError if malformed."""
    s = raw.lstrip()
    if s.startswith("'"):
        parts, i = [], 1
        while True:
            j = s.find("'", i)
            if j < 0:
                raise ValueError("unterminated string")
            if s[j + 1 : j + 2] == "'":  # '' is an escaped quote
                parts.append(s[i : j + 1])
                i = j + 2
                continue
            parts.append(s[i:j])
            return "".join(parts).rstrip()
    v = s.split("/", 1)[0].strip()
    if v == "T":
        return True
    if v == "F":
        return False
    if not v:
        return _Undefined
    if _INT_RE.fullmatch(v):
        return int(v)
    if _FLOAT_RE.fullmatch(v):
        return float(v.replace("D", "E").replace("d", "e"))
    raise ValueError(f"unreadable value {v[:20]!r}")


class Hdu:
    """One header-data unit: raw header cards and where its data lie."""

    __slots__ = ("index", "cards", "data_start", "data_size", "end", "_values")

    def __init__(self, index: int, cards: dict[str, str], data_start: int):
        self.index = index
        self.cards = cards
        self.data_start = data_start
        self.data_size = 0
        self.end = data_start
        self._values: dict[str, Any] = {}

    @property
    def name(self) -> str:
        raw = self.cards.get("EXTNAME")
        try:
            v = _parse_value(raw) if raw is not None else ""
        except ValueError:
            return ""
        return v.strip().upper() if isinstance(v, str) else ""

    @property
    def label(self) -> str:
        return f"HDU {self.index} {self.name!r}" if self.name else f"HDU {self.index}"

    def has(self, key: str) -> bool:
        return key in self.cards

    def get(self, key: str, default: Any = None) -> Any:
        """The parsed value of ``key``; ``default`` when absent, undefined or unparsable."""
        try:
            v = self.value(key, "")
        except ReadError:
            return default
        return default if v is _Undefined or v is None else v

    def value(self, key: str, source: str) -> Any:
        """The parsed value of ``key`` (None if absent); ReadError if present but unreadable."""
        if key in self._values:
            return self._values[key]
        raw = self.cards.get(key)
        if raw is None:
            v = None
        else:
            try:
                v = _parse_value(raw)
            except ValueError as exc:
                raise ReadError(source, f"{self.label}: header keyword {key} is unreadable ({exc})") from None
        self._values[key] = v
        return v


class FitsFile:
    """Walk the HDUs of a FITS file held in memory (``bytes``), parsing headers on demand."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.source = source
        self.hdus: list[Hdu] = []
        self._done = False

    def error(self, reason: str) -> ReadError:
        return ReadError(self.source, reason)

    def hdu(self, index: int) -> Hdu | None:
        """The HDU number ``index`` (0 = primary), or None when the file has fewer HDUs."""
        while len(self.hdus) <= index and not self._done:
            self._read_next()
        return self.hdus[index] if index < len(self.hdus) else None

    def primary(self) -> Hdu:
        """The primary HDU (a damaged header raises :class:`ReadError`, as does an empty file)."""
        hdu = self.hdu(0)
        if hdu is None:
            raise self.error("not a FITS file (it is empty)")
        return hdu

    def find(self, names: tuple[str, ...]) -> Hdu | None:
        """The first HDU whose EXTNAME is one of ``names``."""
        i = 0
        while True:
            h = self.hdu(i)
            if h is None:
                return None
            if h.name in names:
                return h
            i += 1

    def _read_next(self) -> None:
        index = len(self.hdus)
        start = self.hdus[-1].end if self.hdus else 0
        if start >= len(self.data) or (index > 0 and not self.data[start : start + _BLOCK].strip(b"\0 ")):
            self._done = True  # end of file, or trailing padding
            return
        cards: dict[str, str] = {}
        pos, first = start, None
        for _ in range(_MAX_HEADER_BLOCKS):
            block = self.data[pos : pos + _BLOCK]
            if len(block) < _BLOCK:
                if index == 0 and first is None:
                    raise self.error("not a FITS file (header could not be parsed: shorter than one 2880-byte block)")
                raise self.error(f"truncated: the header of HDU {index} ends before its END card")
            text = block.decode("latin-1")
            pos += _BLOCK
            ended = False
            for k in range(0, _BLOCK, _CARD):
                key = text[k : k + 8].rstrip()
                if first is None:
                    first = key
                    if index == 0 and (key != "SIMPLE" or text[k + 8 : k + 10] != "= "):
                        raise self.error("not a FITS file (header could not be parsed: it does not start with SIMPLE)")
                    if index > 0 and key != "XTENSION":
                        raise self.error(
                            f"HDU {index} header does not start with XTENSION (the file is corrupt or "
                            f"HDU {index - 1} is longer than its header says)"
                        )
                if key == "END":
                    ended = True
                    break
                if text[k + 8 : k + 10] == "= " and key not in cards:
                    cards[key] = text[k + 10 : k + _CARD]
            if ended:
                break
        else:
            raise self.error(f"HDU {index} header has no END card")
        hdu = Hdu(index, cards, pos)
        if index == 0 and hdu.get("SIMPLE") is not True:
            raise self.error("not a FITS file (SIMPLE is not T)")
        hdu.data_size = self._data_size(hdu)
        hdu.end = pos + -(-hdu.data_size // _BLOCK) * _BLOCK
        self.hdus.append(hdu)

    def _data_size(self, hdu: Hdu) -> int:
        bitpix = self.int_key(hdu, "BITPIX")
        if bitpix not in BITPIX_DTYPE:
            raise self.error(f"{hdu.label}: BITPIX = {bitpix}, expected one of 8, 16, 32, 64, -32, -64")
        naxis = self.int_key(hdu, "NAXIS", lo=0, hi=999)
        if naxis == 0:
            return 0
        n = 1
        for i in range(1, naxis + 1):
            n *= self.int_key(hdu, f"NAXIS{i}", lo=0)
        pcount = self.int_key(hdu, "PCOUNT", default=0, lo=0)
        gcount = self.int_key(hdu, "GCOUNT", default=1, lo=0)
        return abs(bitpix) // 8 * gcount * (pcount + n)

    def int_key(self, hdu: Hdu, key: str, *, default: int | None = None, lo: int | None = None,
                hi: int | None = None) -> int:
        v = hdu.value(key, self.source)
        if v is None or v is _Undefined:
            if default is not None:
                return default
            raise self.error(f"{hdu.label}: header keyword {key} is missing")
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(f"{hdu.label}: header keyword {key} = {v!r}, expected an integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.error(f"{hdu.label}: header keyword {key} = {v} is out of range")
        return v

    def float_key(self, hdu: Hdu, key: str, *, default: float | None = None) -> float:
        v = hdu.value(key, self.source)
        if v is None or v is _Undefined:
            if default is not None:
                return default
            raise self.error(f"{hdu.label}: header keyword {key} is missing")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(f"{hdu.label}: header keyword {key} = {v!r}, expected a number")
        return float(v)

    def check_complete(self) -> int:
        """Walk every HDU and check its data lies within the file; return the number of HDUs."""
        i = 0
        while (h := self.hdu(i)) is not None:
            self.data_bytes(h)
            i += 1
        return i

    def data_bytes(self, hdu: Hdu, nbytes: int | None = None) -> memoryview:
        """The first ``nbytes`` (default all) of the HDU's data; ReadError if the file ends early."""
        n = hdu.data_size if nbytes is None else nbytes
        if hdu.data_start + n > len(self.data):
            raise self.error(f"truncated: {hdu.label} data is shorter than its header says")
        return memoryview(self.data)[hdu.data_start : hdu.data_start + n]


class BinTable:
    """Column access to a binary table HDU, reading only the requested fields."""

    def __init__(self, f: FitsFile, hdu: Hdu):
        self.f, self.hdu = f, hdu
        xt = hdu.get("XTENSION", "")
        if not isinstance(xt, str) or xt.strip() != "BINTABLE":
            raise f.error(f"{hdu.label} is not a binary table (XTENSION = {xt!r})")
        if f.int_key(hdu, "NAXIS") != 2:
            raise f.error(f"{hdu.label}: a binary table needs NAXIS = 2")
        self.row_bytes = f.int_key(hdu, "NAXIS1", lo=0)
        self.n_rows = f.int_key(hdu, "NAXIS2", lo=0)
        n_fields = f.int_key(hdu, "TFIELDS", lo=0, hi=999)
        self.columns: dict[str, tuple[int, str, int, int]] = {}  # name -> (offset, code, repeat, n)
        self.names: list[str] = []
        offset = 0
        cards = hdu.cards
        for i in range(1, n_fields + 1):
            # Fast path for the usual 'FORM    ' / 'name    ' strings; anything else is parsed fully.
            raw = cards.get(f"TFORM{i}")
            m = _QUOTED_TFORM_RE.match(raw) if raw is not None else None
            if m is None:
                tform = hdu.value(f"TFORM{i}", f.source)
                m = _TFORM_RE.match(tform) if isinstance(tform, str) else None
                if m is None:
                    raise f.error(f"{hdu.label}: TFORM{i} = {tform!r} is not a binary table format")
            repeat = int(m.group(1)) if m.group(1) else 1
            code = m.group(2)
            width = (repeat + 7) // 8 if code == "X" else repeat * _TFORM_SIZE[code]
            raw = cards.get(f"TTYPE{i}")
            m = _QUOTED_NAME_RE.match(raw) if raw is not None else None
            if m is not None:
                name = m.group(1).strip()
            else:
                name = hdu.value(f"TTYPE{i}", f.source)
                name = name.strip() if isinstance(name, str) else ""
            if name:
                self.names.append(name)
                self.columns.setdefault(name.lower(), (offset, code, repeat, i))
            offset += width
        if offset != self.row_bytes:
            raise f.error(
                f"{hdu.label}: its columns add up to {offset} bytes per row, but NAXIS1 says {self.row_bytes}"
            )

    def has(self, name: str) -> bool:
        return name.lower() in self.columns

    def _field(self, name: str, rows: int) -> tuple[memoryview, str, int, int, int]:
        try:
            offset, code, repeat, i = self.columns[name.lower()]
        except KeyError:
            raise self.f.error(f"{self.hdu.label} has no column {name!r}") from None
        raw = self.f.data_bytes(self.hdu, rows * self.row_bytes)
        return raw, code, repeat, i, offset

    def column(self, name: str) -> np.ndarray:
        """A scalar numeric column as a float64 or int64 array of shape (n_rows,)."""
        raw, code, repeat, i, offset = self._field(name, self.n_rows)
        if code not in _TFORM_DTYPE or repeat != 1:
            raise self.f.error(
                f"{self.hdu.label}: column {name!r} has format {repeat}{code}, expected a scalar number"
            )
        arr = np.ndarray((self.n_rows,), dtype=_TFORM_DTYPE[code], buffer=raw, offset=offset,
                         strides=(self.row_bytes,))
        return self._scale(arr, i)

    def text(self, name: str) -> np.ndarray:
        """A character column as an array of stripped ``str``, shape (n_rows,)."""
        raw, code, repeat, i, offset = self._field(name, self.n_rows)
        if code != "A":
            raise self.f.error(f"{self.hdu.label}: column {name!r} has format {repeat}{code}, expected text")
        if not self.n_rows:
            return np.array([], dtype=str)
        arr = np.ndarray((self.n_rows,), dtype=f"S{repeat}", buffer=raw, offset=offset, strides=(self.row_bytes,))
        return np.char.strip(np.char.decode(arr, "ascii", "replace"), "\0 ")

    def scalar(self, name: str, row: int = 0) -> Any:
        """One cell: a Python int/float (first element of a vector column) or a stripped str."""
        raw, code, repeat, i, offset = self._field(name, row + 1)
        start = row * self.row_bytes + offset
        if code == "A":
            return bytes(raw[start : start + repeat]).decode("ascii", "replace").strip("\0 ")
        if code == "L":
            return bytes(raw[start : start + 1]) == b"T"
        if code not in _TFORM_DTYPE or repeat < 1:
            raise self.f.error(f"{self.hdu.label}: column {name!r} has format {repeat}{code}, expected a number")
        arr = np.ndarray((1,), dtype=_TFORM_DTYPE[code], buffer=raw, offset=start)
        return self._scale(arr, i)[0].item()

    def number(self, name: str, row: int = 0) -> float:
        """One numeric cell as a float (NaN allowed); ReadError if the column holds text."""
        v = self.scalar(name, row)
        if isinstance(v, str):
            raise self.f.error(f"{self.hdu.label}: column {name!r} holds text ({v[:20]!r}), expected a number")
        return float(v)

    def integer(self, name: str, row: int = 0) -> int:
        """One integer cell; ReadError if it is text, not finite or not whole."""
        v = self.number(name, row)
        if not math.isfinite(v) or v != int(v):
            raise self.f.error(f"{self.hdu.label}: column {name!r} = {v!r}, expected an integer")
        return int(v)

    def _scale(self, arr: np.ndarray, i: int) -> np.ndarray:
        tscal = self.f.float_key(self.hdu, f"TSCAL{i}", default=1.0)
        tzero = self.f.float_key(self.hdu, f"TZERO{i}", default=0.0)
        if not (math.isfinite(tscal) and math.isfinite(tzero)):
            raise self.f.error(f"{self.hdu.label}: TSCAL{i}/TZERO{i} = {tscal}/{tzero}, expected finite numbers")
        if arr.dtype.kind == "f":
            out = arr.astype(np.float64)
            if tscal == 1.0 and tzero == 0.0:
                return out
            with np.errstate(over="ignore", invalid="ignore"):
                return out * tscal + tzero
        out = arr.astype(np.int64)
        if tscal == 1.0 and tzero == int(tzero) and abs(tzero) < 2**62:
            return out + int(tzero) if tzero else out
        with np.errstate(over="ignore", invalid="ignore"):
            return out * tscal + tzero


def load_bytes(path: str | os.PathLike | IO[bytes], max_bytes: int = MAX_GUNZIP_BYTES) -> tuple[bytes, str]:
    """The file's bytes (gunzipped if needed, to at most ``max_bytes``) and the name for messages.

    An uncompressed file larger than :data:`MAP_BYTES` comes back memory-mapped (read-only, sliced
    like bytes): only the pages a reader touches are read.
    """
    if hasattr(path, "read"):
        source = str(getattr(path, "name", "<file object>"))
        try:
            data = path.read()
        except OSError as exc:
            raise ReadError(source, f"cannot read: {exc}") from None
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"{source}: expected a binary file object, got one returning {type(data).__name__}")
        data = bytes(data)
    else:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size > MAP_BYTES and fh.read(2) != b"\x1f\x8b":
                    return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), source  # type: ignore[return-value]
                fh.seek(0)
                data = fh.read()
        except FileNotFoundError:
            raise ReadError(source, "no such file") from None
        except IsADirectoryError:
            raise ReadError(source, "is a directory, expected a file") from None
        except OSError as exc:
            raise ReadError(source, f"cannot read: {exc.strerror or exc}") from None
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, source, max_bytes)
    return data, source


def _gunzip(data: bytes, source: str, max_bytes: int) -> bytes:
    """Decompress gzip ``data`` (all members), streamed, stopping as soon as it passes ``max_bytes``."""
    out = bytearray()
    rest = data
    try:
        while rest[:2] == b"\x1f\x8b":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            tail = rest
            while not d.eof:
                chunk = d.decompress(tail, min(2**20, max_bytes + 1 - len(out)))  # 1 MiB steps
                out += chunk
                if len(out) > max_bytes:
                    raise ReadError(
                        source,
                        f"decompresses to more than {max_bytes:,} bytes, the limit for a .gz input "
                        f"(a real SDSS spectrum is a few MB; a gzip bomb?); decompression stopped there",
                    )
                tail = d.unconsumed_tail
                if not chunk and not tail:
                    raise ReadError(source, "corrupt gzip file (truncated)")
            rest = d.unused_data
    except zlib.error as exc:
        raise ReadError(source, f"corrupt gzip file ({exc})") from None
    return bytes(out)


def sniff_fits(path: str | os.PathLike | IO[bytes]) -> str:
    """Tell what kind of file ``path`` is from its content.

    Returns
    -------
    str
        ``"spec"`` (DR8+ SDSS spectrum), ``"spSpec"`` (DR7), ``"desi"`` (a DESI ``coadd-*`` or
        ``spectra-*`` file), ``"desi-redshifts"`` (a DESI ``redrock-*`` file), ``"fits"`` (another
        FITS file) or ``"other"`` (not FITS).

    Raises
    ------
    ReadError
        If the file starts like FITS but its primary or first extension header is damaged.
    """
    data, source = load_bytes(path)
    return sniff_bytes(data, source)


def sniff_bytes(data: bytes, source: str, f: FitsFile | None = None) -> str:
    """:func:`sniff_fits` of loaded bytes (``f``: their :class:`FitsFile`, kept for the reader)."""
    if data[:9] != b"SIMPLE  =":
        return "other"
    f = FitsFile(data, source) if f is None else f
    # A damaged structure raises ReadError here, with a better reason than any fallback reader.
    primary = f.primary()
    if primary.has("COEFF0") and primary.get("NAXIS") == 2:
        return "spSpec"
    h1 = f.hdu(1)
    if h1 is not None and (h1.name == "COADD" or _looks_like_coadd(h1)):
        return "spec"
    if h1 is not None and h1.name == "FIBERMAP":  # DESI coadd-*/spectra-*: FIBERMAP, then the arms
        return "desi"
    if h1 is not None and h1.name == "REDSHIFTS":  # DESI redrock-*: the companion of a coadd
        return "desi-redshifts"
    return "fits"


def _looks_like_coadd(hdu: Hdu) -> bool:
    names = set()
    for key in hdu.cards:
        if key.startswith("TTYPE"):
            v = hdu.get(key)
            if isinstance(v, str):
                names.add(v.strip().lower())
    return {"loglam", "flux", "ivar"} <= names
