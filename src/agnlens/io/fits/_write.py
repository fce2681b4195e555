"""Writing FITS: header cards, headers and binary-table HDUs, formatted directly as bytes
(fixed-format cards, big-endian binary tables, FITS standard 4.0), because building astropy HDUs
costs ~50 ms per file. The readers of this package (and astropy, in the tests) read them back.
Column formats written: ``E`` (float32), ``J`` (int32), ``L`` (logical) and ``nA`` (strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Column", "bintable_hdu", "header_block", "header_card", "pad_block"]


def header_card(key: str, value: Any, comment: str = "") -> str:
    """One 80-character FITS header card (fixed format)."""
    if isinstance(value, (bool, np.bool_)):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, (int, np.integer)):
        text = f"{int(value):>20d}"
    elif isinstance(value, (float, np.floating)):
        text = f"{float(value):>20.12G}" if np.isfinite(value) else f"{'NAN':>20}"
    else:
        quoted = str(value).replace("'", "''")
        text = f"'{quoted:<8}'"
        text = f"{text:<20}"
    card = f"{key:<8}= {text}"
    if comment:
        card = f"{card} / {comment}"
    if len(card) > 80 or not card.isascii():
        raise ValueError(f"FITS header card {key} = {value!r} does not fit one card (ASCII, 80 characters); "
                         f"shorten the value")
    return f"{card:<80}"


def header_block(cards: list[str]) -> bytes:
    """A header: the cards, ``END``, blank-padded to whole 2880-byte blocks."""
    text = "".join(cards) + f"{'END':<80}"
    text += " " * (-len(text) % 2880)
    return text.encode("ascii")


def pad_block(data: bytes) -> bytes:
    """A data unit zero-padded to whole 2880-byte blocks."""
    return data + b"\0" * (-len(data) % 2880)


#: One binary-table column: (name, TFORM, values).
Column = tuple[str, str, Sequence[Any] | np.ndarray]


def bintable_hdu(name: str, columns: Sequence[Column], extra: Sequence[str] = ()) -> bytes:
    """A binary-table HDU (header and data) from (name, TFORM, array) columns."""
    dtypes = []
    for col, fmt, _ in columns:
        if fmt == "E":
            dtypes.append((col, ">f4"))
        elif fmt == "J":
            dtypes.append((col, ">i4"))
        elif fmt == "L":
            dtypes.append((col, "S1"))
        else:  # nA
            dtypes.append((col, f"S{int(fmt[:-1])}"))
    n_rows = len(columns[0][2])
    table = np.zeros(n_rows, dtype=dtypes)
    for col, fmt, arr in columns:
        if fmt == "L":
            table[col] = np.where(np.asarray(arr, dtype=bool), b"T", b"F")
        elif fmt.endswith("A"):
            table[col] = [str(v).encode("ascii", "replace")[: int(fmt[:-1])] for v in arr]
        else:
            table[col] = arr
    cards = [
        header_card("XTENSION", "BINTABLE", "binary table extension"),
        header_card("BITPIX", 8), header_card("NAXIS", 2),
        header_card("NAXIS1", table.dtype.itemsize, "bytes per row"), header_card("NAXIS2", n_rows, "rows"),
        header_card("PCOUNT", 0), header_card("GCOUNT", 1), header_card("TFIELDS", len(columns)),
    ]
    for i, (col, fmt, _) in enumerate(columns, start=1):
        cards += [header_card(f"TTYPE{i}", col), header_card(f"TFORM{i}", fmt)]
    cards.append(header_card("EXTNAME", name))
    cards += list(extra)
    return header_block(cards) + pad_block(table.tobytes())
