"""The one FITS codec of agnlens: a read-only walker over headers, binary tables and images
(plain or tile-compressed), with size-bounded gunzip and memory-mapped reading, and a writer of
headers and binary tables. The SDSS and DESI readers and the SDSS writer are built on it.
"""

from agnlens.io.fits._image import image_rows, image_shape
from agnlens.io.fits._read import (
    BITPIX_DTYPE,
    MAP_BYTES,
    MAX_GUNZIP_BYTES,
    BinTable,
    FitsFile,
    Hdu,
    load_bytes,
    sniff_bytes,
    sniff_fits,
)
from agnlens.io.fits._write import Column, bintable_hdu, header_block, header_card, pad_block

__all__ = [
    "BITPIX_DTYPE",
    "MAP_BYTES",
    "MAX_GUNZIP_BYTES",
    "BinTable",
    "Column",
    "FitsFile",
    "Hdu",
    "bintable_hdu",
    "header_block",
    "header_card",
    "image_rows",
    "image_shape",
    "load_bytes",
    "pad_block",
    "sniff_bytes",
    "sniff_fits",
]
