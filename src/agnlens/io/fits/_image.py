"""Images of a FITS file read by :mod:`agnlens.io.fits._read`: their shape, and row slices of them, plain
or tile-compressed (GZIP_1/GZIP_2 with one row per tile, as DESI ``spectra-*`` files store their
masks; FITS standard 4.0, section 10). Reading rows ``start:stop`` touches only those rows' bytes,
so a target range of a memory-mapped file costs that range.
"""

from __future__ import annotations

import zlib

import numpy as np

from agnlens.io.fits._read import BITPIX_DTYPE, BinTable, FitsFile, Hdu

__all__ = ["image_rows", "image_shape"]


def image_shape(f: FitsFile, hdu: Hdu) -> tuple[int, ...]:
    """(NAXIS2, NAXIS1) of a 2-D image, (NAXIS1,) of a 1-D one; a tile-compressed image's own shape."""
    z = "Z" if hdu.get("ZIMAGE") is True else ""
    naxis = f.int_key(hdu, f"{z}NAXIS", lo=0, hi=999)
    n1 = f.int_key(hdu, f"{z}NAXIS1", lo=0)
    return (f.int_key(hdu, f"{z}NAXIS2", lo=0), n1) if naxis == 2 else (n1,)


def image_rows(f: FitsFile, hdu: Hdu, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of an image HDU (all of a 1-D one), scaled by BSCALE/BZERO.

    Only those rows' bytes are touched, so reading a target range of a memory-mapped file costs
    that range. Floats come back as float64, integers as int64.

    Returns
    -------
    ndarray of shape (stop - start, NAXIS1), or (NAXIS1,) for a 1-D image
    """
    if hdu.get("ZIMAGE") is True:
        return _compressed_rows(f, hdu, start, stop)
    naxis = f.int_key(hdu, "NAXIS", lo=0, hi=999)
    if naxis not in (1, 2):
        raise f.error(f"{hdu.label}: expected a 1-D or 2-D image, NAXIS = {naxis}")
    dtype = np.dtype(BITPIX_DTYPE[f.int_key(hdu, "BITPIX")])
    n1 = f.int_key(hdu, "NAXIS1", lo=0)
    n2 = f.int_key(hdu, "NAXIS2", lo=0) if naxis == 2 else 1
    stop = n2 if stop is None else min(stop, n2)
    start = max(0, min(start, stop))
    row = n1 * dtype.itemsize
    raw = f.data_bytes(hdu, stop * row)[start * row : stop * row]
    arr = np.frombuffer(raw, dtype=dtype).reshape(stop - start, n1)
    bscale = f.float_key(hdu, "BSCALE", default=1.0)
    bzero = f.float_key(hdu, "BZERO", default=0.0)
    out: np.ndarray
    if dtype.kind == "f":
        out = arr.astype(np.float64)
        if bscale != 1.0 or bzero != 0.0:
            out = out * bscale + bzero
    elif bscale == 1.0 and bzero == int(bzero):
        out = arr.astype(np.int64) + int(bzero)  # unsigned integers are stored with BZERO = 2**(n-1)
    else:
        out = arr * bscale + bzero
    return out[0] if naxis == 1 else out


def _compressed_rows(f: FitsFile, hdu: Hdu, start: int, stop: int | None) -> np.ndarray:
    """Rows of a tile-compressed integer image (FITS standard 10.1) stored one row per tile with
    GZIP_1 or GZIP_2: what DESI ``spectra-*`` files do with their ``X_MASK`` images."""
    cmp = hdu.get("ZCMPTYPE", "")
    if f.int_key(hdu, "ZNAXIS", lo=0) != 2 or cmp not in ("GZIP_1", "GZIP_2"):
        raise f.error(f"{hdu.label}: tile compression {cmp!r} of a {hdu.get('ZNAXIS')}-D image is not "
                         f"supported (only GZIP_1/GZIP_2 of a 2-D image); decompress the file with fpack -U")
    n2, n1 = image_shape(f, hdu)
    if f.int_key(hdu, "ZTILE1", default=n1) != n1 or f.int_key(hdu, "ZTILE2", default=1) != 1:
        raise f.error(f"{hdu.label}: only one-row tiles are supported (ZTILE1 = NAXIS1, ZTILE2 = 1)")
    zbitpix = f.int_key(hdu, "ZBITPIX")
    if zbitpix not in (8, 16, 32, 64):
        raise f.error(f"{hdu.label}: ZBITPIX = {zbitpix}; only compressed integer images are supported")
    dtype = np.dtype(BITPIX_DTYPE[zbitpix])
    table = BinTable(f, hdu)
    try:
        offset, code, repeat, _ = table.columns["compressed_data"]
    except KeyError:
        raise f.error(f"{hdu.label}: no COMPRESSED_DATA column") from None
    if code not in ("P", "Q"):
        raise f.error(f"{hdu.label}: COMPRESSED_DATA has format {code}, expected a P or Q descriptor")
    desc = np.dtype(">i4" if code == "P" else ">i8")
    heap = hdu.data_start + f.int_key(hdu, "THEAP", default=table.row_bytes * table.n_rows)
    stop = n2 if stop is None else min(stop, n2)
    start = max(0, min(start, stop))
    rows = f.data_bytes(hdu, stop * table.row_bytes)
    out = np.empty((stop - start, n1), dtype=np.int64)
    for k, r in enumerate(range(start, stop)):
        count, where = np.frombuffer(rows, dtype=desc, count=2, offset=r * table.row_bytes + offset)
        lo = heap + int(where)
        if lo + int(count) > len(f.data) or count <= 0:
            raise f.error(f"{hdu.label}: tile {r} lies outside the file (truncated?)")
        try:
            raw = zlib.decompress(bytes(f.data[lo : lo + int(count)]), 16 + zlib.MAX_WBITS)
        except zlib.error as exc:
            raise f.error(f"{hdu.label}: tile {r} is not valid gzip ({exc})") from None
        if len(raw) != n1 * dtype.itemsize:
            raise f.error(f"{hdu.label}: tile {r} holds {len(raw)} bytes, expected {n1 * dtype.itemsize}")
        if cmp == "GZIP_2":  # bytes were shuffled: all most significant bytes first
            raw = np.frombuffer(raw, np.uint8).reshape(dtype.itemsize, n1).T.tobytes()
        out[k] = np.frombuffer(raw, dtype=dtype)
    bzero = f.float_key(hdu, "BZERO", default=0.0)
    return out + int(bzero) if bzero == int(bzero) else out * f.float_key(hdu, "BSCALE", default=1.0) + bzero
