"""Spectral lines marked on a wavelength axis, with labels that never overlap.

:func:`mark_lines` draws a dotted vertical line at every line of :data:`agnlens.lines.LINES` inside
the axis, shades the Fe II blends and adds one label per line. Where the labels go is decided when
the figure is drawn — at the axes' final size, with the renderer's own text extents — by a
:class:`LineLabels` artist: each label takes the highest free place under the top of the axes
that overlaps no label already placed, the important lines first (broad Balmer lines, then the
narrow forbidden lines, then the stellar absorption features); a label that finds no place within
:data:`ROWS` rows is hidden, never drawn over another. A layout computed before drawing would be
wrong after constrained layout resizes the axes, or at another dpi.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.artist import Artist

from agnlens.lines import BANDS, lines_in

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.text import Text

FEII_COLOUR = "#efe3c2"
#: Rows of labels under the top of the axes (the flux limits leave room for them).
ROWS = 2
#: Order in which lines claim a place: the lines that classify an AGN first.
_KIND_PRIORITY = {"broad": 0, "narrow": 1, "absorption": 2}
#: Gap kept between two labels (points).
_PAD_PT = 1.5


class LineLabels(Artist):
    """The labels of the marked lines of one Axes, placed without overlaps each time it is drawn.

    The labels are ordinary :class:`~matplotlib.text.Text` artists of the Axes (in ``ax.texts``,
    x in data, y in axes coordinates, anchored at their top); this artist draws nothing itself.
    Its z-order puts it before them in the Axes' drawing order, and when drawn it moves each label
    to its place and hides the labels that have none. An invisible ``LineLabels`` leaves the
    labels where they are.

    Parameters
    ----------
    labels : list of Text
    priority : list of int, optional
        Lower first (default: the order of ``labels``).
    top : float
        The first row's top, in axes coordinates.
    rows : int
        A label goes at most this many rows down.
    pair_aa : float
        A label whose name is already shown within this many Å (the other line of [O III] 4960/5008)
        is shown only in the first row, where there is room; 0 labels both wherever there is room.
    """

    zorder = 2.95  # after the spectrum (2), before the texts (3)

    def __init__(self, labels: list[Text], *, priority: Sequence[int] | None = None, top: float = 0.985,
                 rows: int = ROWS, pair_aa: float = 0.0):
        super().__init__()
        order = np.argsort(priority if priority is not None else np.arange(len(labels)), kind="stable")
        self.labels = [labels[i] for i in order]
        self.top, self.rows, self.pair_aa = float(top), int(rows), float(pair_aa)

    def draw(self, renderer) -> None:
        if not self.get_visible() or not self.labels:
            return
        ax = self.labels[0].axes
        to_axes = ax.transAxes.inverted()
        pad = _PAD_PT * renderer.points_to_pixels(1.0)
        placed: list = []
        shown: dict[str, list[float]] = {}
        frame = ax.get_window_extent(renderer)
        for text in self.labels:
            text.set_visible(True)  # an invisible Text has no extent
            text.set_horizontalalignment("center")
            box = text.get_window_extent(renderer)
            if box.x0 < frame.x0 or box.x1 > frame.x1:  # a line at the edge: its label inside the Axes
                text.set_horizontalalignment("left" if box.x0 < frame.x0 else "right")
            name, x = text.get_text(), float(text.get_position()[0])
            paired = any(abs(x - x0) < self.pair_aa for x0 in shown.get(name, ()))
            y = self.top
            for _ in range(1 if paired else self.rows):
                text.set_y(y)
                box = text.get_window_extent(renderer)
                hits = [b for b in placed if box.x0 < b.x1 + pad and b.x0 < box.x1 + pad
                        and box.y0 < b.y1 + pad and b.y0 < box.y1 + pad]
                if not hits:
                    placed.append(box)
                    shown.setdefault(name, []).append(x)
                    break
                y = to_axes.transform((0.0, min(b.y0 for b in hits) - pad - 0.5))[1]  # 0.5 px: clear of round-off
            else:
                text.set_visible(False)
        self.stale = False


def mark_lines(ax: Axes, wavelength: np.ndarray, *, labels: bool = True, bands: bool = True,
               fontsize: float = 7, pairs: bool | None = None) -> list[Text]:
    """Dotted vertical lines at every line of :data:`agnlens.lines.LINES` inside the axis range,
    labelled at the top without overlaps (:class:`LineLabels`), and the Fe II blends of
    :data:`agnlens.lines.BANDS` shaded and named.

    Parameters
    ----------
    ax : Axes
    wavelength : ndarray of shape (n_pixels,)
        The rest-frame grid (Å) drawn on ``ax``; lines outside its range are left out.
    labels : bool
        Label the lines (else only the dotted lines).
    bands : bool
        Shade and name the Fe II blends.
    fontsize : float
        Of the labels (points).
    pairs : bool, optional
        Label both lines of a pair sharing a name ([O III] 4960/5008, [N II], [S II]) wherever
        there is room; default: only on a zoom (a range under 400 Å), else the second one only
        beside the first.

    Returns
    -------
    list of Text
        The labels, lines then Fe II (those without room are hidden when the figure is drawn).
    """
    lo, hi = float(np.min(wavelength)), float(np.max(wavelength))
    trans = ax.get_xaxis_transform()
    texts, priority = [], []
    for item in lines_in(wavelength):
        ax.axvline(item.wavelength, color="0.6", lw=0.5, ls=":" if item.kind != "absorption" else "--", zorder=0)
        if labels:
            texts.append(ax.text(item.wavelength, 0.985, item.label, transform=trans, rotation=90, ha="center",
                                 va="top", fontsize=fontsize, color="0.25"))
            priority.append(_KIND_PRIORITY.get(item.kind, 3))
    if bands:
        for band in BANDS:
            if band.kind == "feii" and band.hi > lo and band.lo < hi:
                a, b = max(band.lo, lo), min(band.hi, hi)
                ax.axvspan(a, b, color=FEII_COLOUR, alpha=0.6, lw=0, zorder=-1)
                if labels:
                    texts.append(ax.text(0.5 * (a + b), 0.985, "Fe II", transform=trans, ha="center", va="top",
                                         fontsize=fontsize, color="#8a6d1f"))
                    priority.append(len(_KIND_PRIORITY))  # after every line
    if texts:
        pairs = (hi - lo) < 400.0 if pairs is None else pairs
        ax.add_artist(LineLabels(texts, priority=priority, pair_aa=0.0 if pairs else 150.0))
    return texts


def line_label_artists(ax: Axes) -> list[Text]:
    """The line labels :func:`mark_lines` put on ``ax`` (shown or hidden)."""
    return [t for a in ax.artists if isinstance(a, LineLabels) for t in a.labels]


__all__ = ["FEII_COLOUR", "ROWS", "LineLabels", "line_label_artists", "mark_lines"]
