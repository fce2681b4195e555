"""Writing figures: the formats, the default resolution, atomic writes; every figure agnlens
writes goes through :func:`save_figure` (a file) or :func:`figure_png` (bytes for a page).

PNG is what the HTML report embeds, so it is always written; a vector format (PDF, SVG) for a
paper is written beside it, with the same name. Vector files carry no creation date and SVG ids
come from a fixed salt, so that a rerun writes the same bytes.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

from agnlens.atomic import atomic_path

#: Output formats of the figures; PNG is always written too (the HTML report embeds it).
FORMATS = ("png", "pdf", "svg")
#: Default resolution of the PNG figures (dots per inch): print quality at the figures' size
#: (a 7.2-inch wide figure is 1,440 pixels wide).
DPI = 200
#: No creation date in vector files.
_METADATA = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def check_format(format: str) -> str:
    """``format`` if it is one of :data:`FORMATS`, else a ValueError saying which are."""
    if format not in FORMATS:
        raise ValueError(f"figure format must be one of {', '.join(FORMATS)}, got {format!r}")
    return format


def check_dpi(dpi) -> float:
    """``dpi`` as a float if it is a number from 10 to 1200, else a ValueError."""
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not 10 <= float(dpi) <= 1200:
        raise ValueError(f"dpi must be a number from 10 to 1200, got {dpi!r}")
    return float(dpi)


def save_figure(fig, path: str | os.PathLike, *, format: str = "png", dpi: float = DPI,
                png: bool = True) -> list[Path]:
    """Write the matplotlib Figure ``fig`` to ``path`` with its suffix replaced by ``format``,
    atomically, and (``png=True``) the PNG beside it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : path-like
        The file name; its suffix is replaced.
    format : {"png", "pdf", "svg"}
    dpi : float
        Resolution of the PNG (and of the rasterised parts of a vector file).
    png : bool
        Also write the PNG when ``format`` is a vector one.

    Returns
    -------
    list of Path
        The files written, PNG first.
    """
    from matplotlib import rc_context

    check_format(format)
    dpi = check_dpi(dpi)
    written = []
    for fmt in dict.fromkeys((["png"] if png else []) + [format]):
        target = Path(path).with_suffix(f".{fmt}")
        # a fixed salt: the SVG's element ids are the same from run to run
        with atomic_path(target) as tmp, rc_context({"svg.hashsalt": "agnlens"}):
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_METADATA.get(fmt))
        written.append(target)
    return written


def figure_png(fig, *, dpi: float = DPI) -> bytes:
    """The PNG bytes of the matplotlib Figure ``fig``, in memory (what a page embeds as a data URI)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=check_dpi(dpi))
    return buf.getvalue()


__all__ = ["DPI", "FORMATS", "check_dpi", "check_format", "figure_png", "save_figure"]
