"""Many saliency figures on one wavelength grid and one colour scale, drawn fast (the demo draws dozens).

Building and laying out a matplotlib figure of :func:`agnlens.plot.saliency.plot_saliency` costs
about half a second, and nearly all of it goes into what every figure on one grid shares: the axes,
the marked and labelled lines, the Fe II bands, the zoom panels' wavelength axes, the colour bar and
the layout. :class:`SaliencyFrames` draws the figure once, keeps the shared part as a background
image and, per spectrum, redraws only what changes — the spectra, the attribution bands, the flux
axes and the title — then lays the line labels back on top (the same order as a full draw:
labels above the spectrum). The colour scale is fixed (``vmax``, shared by every frame), so the
colour bar is part of the background.

The layout is computed once, with room for flux tick labels as wide as ``−0.25``, and then kept.
A map that is zero to round-off, or a spectrum with a note, is drawn as a new figure by
:func:`agnlens.plot.saliency.plot_saliency` (rare; it needs the grey band and the written scale).
Only PNG is drawn this way; vector formats are drawn as new figures
(:func:`agnlens.plot.saliency.save_figure`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from agnlens.plot._text import plain
from agnlens.plot.line_labels import LineLabels
from agnlens.plot.saliency import (
    COLORBAR_LABEL,
    ZERO_SCALE,
    attribution_label,
    flux_limits,
    plot_saliency,
    shared_limit,
    shared_scale_note,
    spectrum_line,
    zoom_windows,
)
from agnlens.plot.save import DPI

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: The widest flux tick label the fixed layout leaves room for.
_PROBE_TICK = "\N{MINUS SIGN}0.25"
#: A title of as many lines as :meth:`Saliency.figure_title`'s, for the fixed layout.
_PROBE_TITLE = "probe\nprobe\nprobe"


class SaliencyFrames:
    """One saliency figure redrawn for spectrum after spectrum on the same grid and colour scale.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
        The rest-frame grid (Å) of every spectrum to draw.
    vmax : float
        The colour limit of every frame (:func:`agnlens.plot.saliency.shared_limit`).
    zoom : bool
        Add the panels zoomed on Hβ–[O III] and Hα–[N II] (those inside the grid), as
        ``plot_saliency(..., zoom=True)``.
    dpi : float
        Resolution of the images.
    colorbar_label : str
        What the values are (:func:`agnlens.plot.saliency.attribution_label`).

    Examples
    --------
    >>> frames = SaliencyFrames(sal.wavelength, vmax=shared_limit(sal.values))   # doctest: +SKIP
    >>> rgba = frames.render(sal.flux[0], sal.values[0], title="...")           # doctest: +SKIP
    """

    def __init__(self, wavelength: np.ndarray, *, vmax: float, zoom: bool = True, dpi: float = DPI,
                 colorbar_label: str = COLORBAR_LABEL):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.ticker import FuncFormatter

        self.wavelength = np.asarray(wavelength, dtype=float)
        self.vmax, self.zoom, self.dpi = float(vmax), zoom, float(dpi)
        self.colorbar_label = colorbar_label
        wl = self.wavelength
        # a first figure from the plotting function itself, so that the frames look exactly like it
        probe = np.linspace(-self.vmax, self.vmax, wl.size)
        ax = plot_saliency(wl, np.ones_like(wl), probe, zoom=zoom, title=_PROBE_TITLE, vmax=self.vmax,
                           colorbar_label=colorbar_label)
        fig = self.figure = cast("Figure", ax.figure)
        fig.set_dpi(self.dpi)
        self.canvas = FigureCanvasAgg(fig)
        self.ax = ax
        colorbar = self.colorbar = ax.child_axes[0].collections[0].colorbar
        if colorbar is None:
            raise RuntimeError("saliency_frames: plot_saliency drew no colour bar")
        self.zoom_axes = [a for a in fig.axes if a is not ax and a is not colorbar.ax]
        self.panels = [ax, *self.zoom_axes]
        self.traces = [spectrum_line(a) for a in self.panels]
        self.bands = [a.child_axes[0] for a in self.panels]
        self.meshes = [b.collections[0] for b in self.bands]
        windows = zoom_windows(wl)[: len(self.zoom_axes)]
        self.pixels = [np.ones(wl.size, bool), *((wl >= lo) & (wl <= hi) for lo, hi, _ in windows)]
        flux_axes = [a.yaxis for a in self.panels]

        # lay out once with the widest tick labels a frame may have, then keep that layout
        formatters = [axis.get_major_formatter() for axis in flux_axes]
        for axis in flux_axes:
            axis.set_major_formatter(FuncFormatter(lambda x, pos: _PROBE_TICK))
        self.canvas.draw()  # also places the line labels (LineLabels), for good
        fig.set_layout_engine("none")
        for axis, formatter in zip(flux_axes, formatters):
            axis.set_major_formatter(formatter)
            x, y = axis.label.get_position()
            axis.set_label_coords(x, y, transform=axis.label.get_transform())

        # what changes from frame to frame; the rest is the background
        spines = [s for b in self.bands for s in b.spines.values()]
        self._dynamic = [*self.traces, *self.meshes, *spines, *flux_axes, ax.title]
        for a in self.panels:
            for artist in a.artists:
                if isinstance(artist, LineLabels):
                    artist.set_visible(False)  # keep the places found above
        texts = self.overlaid = [t for a in self.panels for t in a.texts if t.get_visible()]
        labels = [axis.label for axis in flux_axes]
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
            Normalised flux and attribution on :attr:`wavelength`.
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
        largest = float(np.nanmax(np.abs(values))) if values.size else 0.0
        if note or not (np.isfinite(largest) and largest >= ZERO_SCALE):
            return self._new_figure(flux, values, title, note)
        for a, trace, mesh, sel in zip(self.panels, self.traces, self.meshes, self.pixels):
            trace.set_ydata(flux[sel])
            mesh.set_array(values[sel][None, :])
            a.set_ylim(*flux_limits(flux[sel]))
        self.ax.set_title(plain(title) if title else "", fontsize=8)
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

        ax = plot_saliency(self.wavelength, flux, values, zoom=self.zoom, title=title, note=note, vmax=self.vmax,
                           colorbar_label=self.colorbar_label)
        fig = cast("Figure", ax.figure)
        fig.set_dpi(self.dpi)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.array(canvas.buffer_rgba())


def saliency_images(saliency, rows: Sequence[int] | None = None, *, zoom: bool = True, dpi: float = DPI,
                    notes: Sequence[str | None] | None = None, vmax: float | None = None,
                    n_maps: int | None = None) -> Iterator[np.ndarray]:
    """The figure of each spectrum of a Saliency, as ``saliency.plot(i, zoom=zoom, vmax=vmax)``
    draws it, fast, on one colour scale.

    Parameters
    ----------
    saliency : Saliency
    rows : sequence of int, optional
        Rows to draw (default all).
    zoom, dpi
        As in :class:`SaliencyFrames`.
    notes : sequence of str or None, optional
        A note per row of ``saliency`` (e.g. "not applicable: ..."), drawn on its figure.
    vmax : float, optional
        The colour limit of every figure; default :func:`~agnlens.plot.saliency.shared_limit` of
        the maps of ``rows``.
    n_maps : int, optional
        How many maps share the scale, for the colour bar (default ``len(rows)``).

    Yields
    ------
    ndarray of uint8, shape (height, width, 4)
        One RGBA image per row (write it with :func:`png_bytes`).
    """
    rows = list(range(len(saliency)) if rows is None else rows)
    if not rows:
        return
    vmax = shared_limit(saliency.values[rows]) if vmax is None else float(vmax)
    scale = shared_scale_note(len(rows) if n_maps is None else n_maps)
    frames: dict[str, SaliencyFrames] = {}  # one per colour bar label: per explained class
    for i in rows:
        label = f"{attribution_label(saliency.method, saliency.target[i])}\n{scale}"
        if label not in frames:
            frames[label] = SaliencyFrames(saliency.wavelength, vmax=vmax, zoom=zoom, dpi=dpi, colorbar_label=label)
        note = notes[i] if notes is not None else None
        yield frames[label].render(saliency.flux[i], saliency.values[i], title=saliency.figure_title(int(i)),
                                   note=note)


def png_bytes(image: np.ndarray, dpi: float = DPI) -> bytes:
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
