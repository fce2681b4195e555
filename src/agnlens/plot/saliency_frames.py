"""Many saliency figures on one wavelength grid, drawn fast (the demo draws dozens).

Building and laying out a matplotlib figure of :func:`agnlens.plot.saliency.plot_saliency` costs
about half a second, and nearly all of it goes into what every figure on one grid shares: the axes,
the marked and labelled lines, the Fe II bands, the zoom panels' wavelength axes, the colour bar and
the layout. :class:`SaliencyFrames` draws the figure once, keeps the shared part as a background
image and, per spectrum, redraws only what changes — the coloured traces, the flux axes, the colour
bar's ticks and the title — then lays the line labels back on top (the same order as a full draw:
labels above the trace). About a seventh of the CPU time of a new figure each time.

The layout is computed once, with room for tick labels as wide as ``−0.0125`` on every vertical
axis (the colour bar switches to an offset ×10ⁿ beyond 10⁻³ and 10⁴), and then kept.
A map that is zero to round-off, or a spectrum with a note, is drawn as a new figure by
:func:`agnlens.plot.saliency.plot_saliency` (rare; it needs the grey trace and the written scale).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from agnlens.plot._text import plain
from agnlens.plot.saliency import ZERO_SCALE, flux_limits, plot_saliency, zoom_windows

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: The widest tick label the fixed layout leaves room for.
_PROBE_TICK = {"flux": "\N{MINUS SIGN}0.25", "colour": "\N{MINUS SIGN}0.0125"}


class SaliencyFrames:
    """One saliency figure redrawn for spectrum after spectrum on the same grid.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
        The rest-frame grid (Å) of every spectrum to draw.
    zoom : bool
        Add the panels zoomed on Hβ–[O III] and Hα–[N II] (those inside the grid), as
        ``plot_saliency(..., zoom=True)``.
    dpi : float
        Resolution of the images.

    Examples
    --------
    >>> frames = SaliencyFrames(sal.wavelength)                         # doctest: +SKIP
    >>> rgba = frames.render(sal.flux[0], sal.values[0], title="...")   # doctest: +SKIP
    """

    def __init__(self, wavelength: np.ndarray, *, zoom: bool = True, dpi: float = 90.0):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection
        from matplotlib.ticker import FuncFormatter

        self.wavelength = np.asarray(wavelength, dtype=float)
        self.zoom, self.dpi = zoom, float(dpi)
        wl = self.wavelength
        # a first figure from the plotting function itself, so that the frames look exactly like it
        ax = plot_saliency(wl, np.ones_like(wl), np.linspace(-1.0, 1.0, wl.size), zoom=zoom, title="probe\nprobe")
        fig = self.figure = cast("Figure", ax.figure)
        fig.set_dpi(self.dpi)
        self.canvas = FigureCanvasAgg(fig)
        self.ax = ax
        self.trace = next(c for c in ax.collections if isinstance(c, LineCollection))
        colorbar = self.trace.colorbar
        if colorbar is None:
            raise RuntimeError("saliency_frames: plot_saliency drew no colour bar")
        self.zoom_axes = [a for a in fig.axes if a is not ax and a is not colorbar.ax]
        windows = zoom_windows(wl) if self.zoom_axes else []
        self.zoom_traces = [next(c for c in a.collections if isinstance(c, LineCollection)) for a in self.zoom_axes]
        self.zoom_pixels = [(wl >= lo) & (wl <= hi) for lo, hi, _ in windows]
        self.colorbar = colorbar
        self._segments = [_Segments(t, w) for t, w in
                          zip([self.trace, *self.zoom_traces], [wl, *(wl[sel] for sel in self.zoom_pixels)])]
        flux_axes = [ax.yaxis, *(a.yaxis for a in self.zoom_axes)]
        vertical = [*flux_axes, colorbar.ax.yaxis]

        # lay out once with the widest tick labels a frame may have, then keep that layout
        formatters = [axis.get_major_formatter() for axis in vertical]
        for axis in vertical:
            probe = _PROBE_TICK["colour" if axis is colorbar.ax.yaxis else "flux"]
            axis.set_major_formatter(FuncFormatter(lambda x, pos, probe=probe: probe))
        self.canvas.draw()
        fig.set_layout_engine("none")
        for axis, formatter in zip(vertical, formatters):
            axis.set_major_formatter(formatter)
            x, y = axis.label.get_position()
            axis.set_label_coords(x, y, transform=axis.label.get_transform())

        # what changes from frame to frame; the rest is the background
        self._dynamic = [self.trace, *self.zoom_traces, *vertical, ax.title]
        texts = [t for a in (ax, *self.zoom_axes) for t in a.texts]
        labels = [axis.label for axis in vertical]
        for artist in self._dynamic:
            artist.set_animated(True)
        for text in texts:
            text.set_visible(False)
        self.canvas.draw()
        renderer = self.canvas.get_renderer()
        for label in labels:  # drawn once into the background; the axes redraw only their ticks
            label.draw(renderer)
            label.set_visible(False)
        self._background = self.canvas.copy_from_bbox(fig.bbox)

        # the labels of the lines and bands, alone on a transparent image, to lay over each frame
        renderer.clear()
        for text in texts:
            text.set_visible(True)
            text.draw(renderer)
            text.set_visible(False)
        overlay = np.asarray(self.canvas.buffer_rgba())
        self._over_at = np.nonzero(overlay[..., 3])
        over = overlay[self._over_at].astype(np.float32)
        self._over_alpha = over[:, 3:] / 255.0
        self._over_rgb = over[:, :3] * self._over_alpha

    def render(self, flux: np.ndarray, values: np.ndarray, *, title: str | None = None,
               note: str | None = None) -> np.ndarray:
        """The figure of one spectrum as an RGBA image.

        Parameters
        ----------
        flux, values : ndarray of shape (n_pixels,)
            Normalised flux and saliency on :attr:`wavelength`.
        title : str, optional
        note : str, optional
            A warning written on the panel (drawn as a new figure).

        Returns
        -------
        ndarray of uint8, shape (height, width, 4)
        """
        flux = np.asarray(flux, dtype=float)
        values = np.asarray(values, dtype=float)
        if flux.shape != self.wavelength.shape or values.shape != self.wavelength.shape:
            raise ValueError(f"SaliencyFrames.render needs flux and values of shape {self.wavelength.shape} "
                             f"(the frames' grid), got {flux.shape} and {values.shape}")
        limit = float(np.nanmax(np.abs(values))) if values.size else 0.0
        if note or not (np.isfinite(limit) and limit >= ZERO_SCALE):
            return self._new_figure(flux, values, title, note)
        main, *zooms = self._segments
        main.update(flux, values, limit)
        self.ax.set_ylim(*flux_limits(flux, 6))
        # the colour bar's colours run from −limit to +limit whatever the limit: it is in the
        # background already; only its axis (the tick labels) follows the new limits
        self.colorbar.ax.set_ylim(-limit, limit)
        for zax, segments, sel in zip(self.zoom_axes, zooms, self.zoom_pixels):
            segments.update(flux[sel], values[sel], limit)
            zax.set_ylim(*flux_limits(flux[sel], 5, 0.08))
        self.ax.set_title(plain(title) if title else "", fontsize=9)
        self.canvas.restore_region(self._background)
        for artist in self._dynamic:
            self.figure.draw_artist(artist)
        image = np.array(self.canvas.buffer_rgba())
        under = image[self._over_at][:, :3].astype(np.float32)  # the labels "over" the frame
        blended = self._over_rgb + under * (1.0 - self._over_alpha)
        image[self._over_at + (slice(0, 3),)] = np.rint(blended).astype(np.uint8)
        return image

    def _new_figure(self, flux, values, title, note) -> np.ndarray:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        ax = plot_saliency(self.wavelength, flux, values, zoom=self.zoom, title=title, note=note)
        fig = cast("Figure", ax.figure)
        fig.set_dpi(self.dpi)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.array(canvas.buffer_rgba())


class _Segments:
    """A trace's segments updated in place: its paths are views of one array (no new Path per
    segment and frame), and its colour limits change without redrawing the colour bar."""

    def __init__(self, trace, wavelength: np.ndarray):
        self.trace = trace
        self.xy = np.empty((wavelength.size - 1, 2, 2))
        self.xy[:, 0, 0], self.xy[:, 1, 0] = wavelength[:-1], wavelength[1:]
        trace.set_segments(self.xy)
        paths = trace.get_paths()
        self.in_place = bool(paths) and np.shares_memory(paths[0].vertices, self.xy)

    def update(self, flux: np.ndarray, values: np.ndarray, limit: float) -> None:
        self.xy[:, 0, 1], self.xy[:, 1, 1] = flux[:-1], flux[1:]
        if not self.in_place:  # a matplotlib that copies the segments
            self.trace.set_segments(self.xy)
        self.trace.set_array(0.5 * (values[:-1] + values[1:]))
        with self.trace.norm.callbacks.blocked():
            self.trace.set_clim(-limit, limit)
        self.trace.stale = True


def saliency_images(saliency, rows: Sequence[int] | None = None, *, zoom: bool = True,
                    dpi: float = 90.0, notes: Sequence[str | None] | None = None) -> Iterator[np.ndarray]:
    """The figure of each spectrum of a Saliency, as ``saliency.plot(i, zoom=zoom)`` draws it, fast.

    Parameters
    ----------
    saliency : Saliency
    rows : sequence of int, optional
        Rows to draw (default all).
    zoom, dpi
        As in :class:`SaliencyFrames`.
    notes : sequence of str or None, optional
        A note per row of ``saliency`` (e.g. "not applicable: ..."), drawn on its figure.

    Yields
    ------
    ndarray of uint8, shape (height, width, 4)
        One RGBA image per row (write it with :func:`png_bytes`).
    """
    rows = range(len(saliency)) if rows is None else rows
    frames = None
    for i in rows:
        frames = frames or SaliencyFrames(saliency.wavelength, zoom=zoom, dpi=dpi)
        note = notes[i] if notes is not None else None
        yield frames.render(saliency.flux[i], saliency.values[i], title=saliency.figure_title(int(i)), note=note)


def png_bytes(image: np.ndarray, dpi: float = 90.0) -> bytes:
    """An RGBA image encoded as PNG (figures are opaque: stored as RGB), with its resolution.

    Full colour: a 256-colour palette would turn the palest trace colours (saliency near zero)
    into the white of the background.
    """
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)[..., :3]).save(buf, format="PNG", compress_level=3, dpi=(dpi, dpi))
    return buf.getvalue()


__all__ = ["SaliencyFrames", "png_bytes", "saliency_images"]
