"""Saliency figures: a spectrum with its attribution, and the line-level statistics.

matplotlib is imported lazily and only through :class:`matplotlib.figure.Figure` (no pyplot
state). Functions drawing one panel take ``ax=None`` and return the Axes; functions drawing
several panels return the Figure. Nothing is shown or saved here (:mod:`agnlens.plot.save` writes).

A spectrum is always drawn as a black line, so every emission line stays visible whatever its
attribution; the attribution is a colour band under it, in the same Axes and on the same
wavelength axis (an inset along the bottom, :data:`BAND` of its height). Colours: a diverging map
(``"RdBu_r"``) with symmetric limits ±``vmax``, white exactly zero, red pixels raise the explained
probability and blue ones lower it. Figures of one run share one ``vmax``
(:func:`shared_limit`), so that their colours compare; the colour bar says what the attribution
is (:func:`attribution_label`) and that its scale is shared. A map that is zero to round-off
(|s| < :data:`ZERO_SCALE`, e.g. a collapsed kernel) gets a grey band and its true scale written on
the panel. Fe II blends are shaded, lines are labelled without overlaps
(:mod:`agnlens.plot.line_labels`), and single-spectrum figures zoom on Hβ–[O III] and Hα–[N II].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.ticker import MaxNLocator

from agnlens.classes import CLASS_COLOURS, CLASS_NAMES
from agnlens.plot._text import plain
from agnlens.plot.line_labels import mark_lines

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CMAP = "RdBu_r"
#: The colour bar's label when the method is not known.
COLORBAR_LABEL = "∂p/∂flux, per unit normalised flux"
#: A map whose largest |value| is below this is zero to round-off: drawn grey, scale written out.
ZERO_SCALE = 1e-12
#: Zoom windows of the single-spectrum figures (rest Å): Hβ–[O III] and Hα–[N II].
ZOOMS = ((4820.0, 5030.0, "Hβ–[O III]"), (6520.0, 6610.0, "Hα–[N II]"))
#: Colours of the classes (Okabe-Ito), as in :mod:`agnlens.plot.embedding`.
#: A class's own colour, and dark grey for the mean over all classes.
COLOURS = {**CLASS_COLOURS, "all": "#444444"}
#: Height of the attribution band, as a fraction of the spectrum's Axes.
BAND = 0.11
#: Room for the line labels above the spectrum, as a fraction of the Axes.
HEADROOM = 0.3
#: Percentile of |attribution| over a run's maps that sets its shared colour limit.
SHARED_PERCENTILE = 99.5
#: What each method's values are (``{t}``: the explained class).
_ATTRIBUTION = {
    "gradient": "∂p({t})/∂flux, per unit normalised flux",
    "smoothgrad": "SmoothGrad: mean ∂p({t})/∂flux, per unit normalised flux",
    "finite-difference": "Δp({t})/Δflux (+1 % nudges), per unit normalised flux",
    "integrated-gradients": "Integrated Gradients: Δp({t}) per pixel",
    "occlusion": "occlusion: Δp({t}) per pixel",
}


def attribution_label(method: str, target: str | None = None) -> str:
    """What a map of ``method`` is, with its units, for a colour bar: ``"∂p(type 1)/∂flux ..."``.

    Parameters
    ----------
    method : str
        ``Saliency.method``; a method this module does not know is named as it is.
    target : str, optional
        The explained class (default: "explained class", for figures mixing targets).
    """
    t = CLASS_NAMES.get(str(target), str(target)) if target is not None else "explained class"
    return _ATTRIBUTION.get(str(method), f"{method}: attribution to p({{t}})").format(t=t)


def shared_limit(values, percentile: float = SHARED_PERCENTILE) -> float:
    """One symmetric colour limit for many maps: the ``percentile`` of the absolute values over all their
    finite pixels (pixels beyond it saturate; the colour bar shows arrows).

    Parameters
    ----------
    values : array-like of shape (n_spectra, n_pixels), or callable
        The maps; or a function returning an iterator over chunks of their rows (called twice: maps
        on disk are read chunk by chunk, never held whole; only the largest values are kept).

    Returns
    -------
    float
        Positive; 1.0 when every value is zero to round-off (:data:`ZERO_SCALE`). The percentile
        interpolates linearly between the two nearest values, as :func:`numpy.percentile` does.
    """
    chunks = values if callable(values) else (lambda: [values])
    n = sum(int(np.isfinite(np.asarray(c, dtype=float)).sum()) for c in chunks())
    if not n:
        return 1.0
    rank = percentile / 100.0 * (n - 1)
    need = n - int(np.floor(rank))  # the values of rank floor(rank) and up
    top = np.empty(0)
    for c in chunks():
        a = np.abs(np.asarray(c, dtype=float))
        top = np.concatenate([top, a[np.isfinite(a)]])
        if top.size > need:
            top = np.partition(top, top.size - need)[top.size - need:]
    top.sort()
    frac = rank - np.floor(rank)
    limit = float(top[0] + (top[min(1, top.size - 1)] - top[0]) * frac)
    if not limit >= ZERO_SCALE:  # most pixels exactly zero: the largest value instead
        limit = float(top[-1])
    return limit if limit >= ZERO_SCALE else 1.0


def shared_scale_note(n_maps: int, percentile: float = SHARED_PERCENTILE) -> str:
    """The line a colour bar of a shared scale carries."""
    return f"one scale for {n_maps} maps: {percentile:g}th pct of |value|"


class FluxLocator(MaxNLocator):
    """Flux ticks only where the spectrum is drawn: none beside the attribution band."""

    def __init__(self):
        super().__init__(nbins="auto", steps=[1, 2, 2.5, 5, 10])

    def tick_values(self, vmin, vmax):
        ticks = super().tick_values(vmin, vmax)
        return ticks[ticks >= vmin + (BAND + 0.02) * (vmax - vmin)]


def new_figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _new_axes(figsize=(9.0, 3.6)):
    return new_figure(figsize).add_subplot()


def _limit(values: np.ndarray, vmax: float | None) -> float:
    if vmax is not None:
        return float(vmax)
    m = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    return m if m > 0 and np.isfinite(m) else 1.0


def _collapsed_note(ax: Axes, values: np.ndarray, note: str | None) -> None:
    scale = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    text = f"attribution zero to round-off: max |value| = {scale:.1e}"
    _note(ax, f"{note}\n{text}" if note else text)


def _note(ax: Axes, text: str) -> None:
    ax.text(0.01, BAND + 0.03, text, transform=ax.transAxes, ha="left", va="bottom", fontsize=7, color="#b2182b",
            bbox=dict(facecolor="white", edgecolor="#b2182b", alpha=0.85, lw=0.6), zorder=5)


def plot_saliency(
    wavelength: np.ndarray,
    flux: np.ndarray,
    values: np.ndarray,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    lines: bool = True,
    cmap: str = CMAP,
    vmax: float | None = None,
    colorbar: bool = True,
    colorbar_label: str = COLORBAR_LABEL,
    linewidth: float = 0.7,
    note: str | None = None,
    zoom: bool = False,
    fontsize: float = 7,
) -> Axes:
    """Draw a spectrum as a black line with its signed attribution as a colour band beneath it.

    Parameters
    ----------
    wavelength, flux, values : ndarray of shape (n_pixels,)
        Rest-frame grid (Å), normalised flux and the attribution of every pixel.
    ax : matplotlib Axes, optional
        Drawn on a new Figure when None.
    title : str, optional
        E.g. :meth:`Saliency.figure_title` (spec_id, classes, what is explained and why).
    lines : bool
        Mark and label the lines of :data:`agnlens.lines.LINES` in range.
    cmap : str
        Diverging colour map; the limits are symmetric, ±``vmax``.
    vmax : float, optional
        The colour limit; default the largest absolute value (one figure alone). Figures that are compared
        should share one (:func:`shared_limit`): values beyond it saturate.
    colorbar : bool
        Add a colour bar labelled ``colorbar_label`` (say what the values are:
        :func:`attribution_label`).
    linewidth : float
        Width of the spectrum (points).
    note : str, optional
        A warning written on the panel, e.g. ``"not applicable: kernel collapse"``.
    zoom : bool
        With ``ax=None``: add panels zoomed on Hβ–[O III] and Hα–[N II] (those inside the grid)
        below the spectrum, so that the narrow lines can be read.
    fontsize : float
        Of the line labels (points).

    Returns
    -------
    matplotlib.axes.Axes
        The spectrum's Axes; the band is ``ax.child_axes[0]``, its colours ``band.collections[0]``.
    """
    wavelength = np.asarray(wavelength, dtype=float)
    flux = np.asarray(flux, dtype=float)
    values = np.asarray(values, dtype=float)
    if not (wavelength.ndim == 1 and flux.shape == wavelength.shape and values.shape == wavelength.shape):
        raise ValueError(
            f"plot_saliency needs wavelength, flux and values of one shape (n_pixels,), got "
            f"{wavelength.shape}, {flux.shape} and {values.shape}"
        )
    windows = zoom_windows(wavelength)
    zoom_axes = []
    if ax is None and zoom and windows:
        fig = new_figure((7.2, 4.9))
        grid = fig.add_gridspec(2, len(windows), height_ratios=(1.35, 1.0))
        ax = fig.add_subplot(grid[0, :])
        zoom_axes = [fig.add_subplot(grid[1, k]) for k in range(len(windows))]
    elif ax is None:
        ax = _new_axes((7.2, 3.3))
    collapsed = _limit(values, None) < ZERO_SCALE
    limit = _limit(values, vmax)
    mesh = draw_spectrum(ax, wavelength, flux, values, cmap=cmap, limit=limit, linewidth=linewidth,
                         collapsed=collapsed)
    ax.set_xlim(wavelength[0], wavelength[-1])
    ax.set_xlabel("rest wavelength (Å)")
    ax.set_ylabel("flux / flux(5100 Å)")
    if lines:
        mark_lines(ax, wavelength, fontsize=fontsize)
    if collapsed:
        _collapsed_note(ax, values, note)
    elif note:
        _note(ax, note)
    if colorbar:
        cb = ax.figure.colorbar(mesh, ax=[ax, *zoom_axes], pad=0.01, extend="neither" if vmax is None else "both",
                                aspect=30)
        style_colorbar(cb, colorbar_label)
    for zax, (lo, hi, name) in zip(zoom_axes, windows):
        sel = (wavelength >= lo) & (wavelength <= hi)
        draw_spectrum(zax, wavelength[sel], flux[sel], values[sel], cmap=cmap, limit=limit,
                      linewidth=1.5 * linewidth, collapsed=collapsed)
        zax.set_xlim(lo, hi)
        mark_lines(zax, wavelength[sel], bands=False, fontsize=fontsize)
        zax.set_title(f"zoom: {name}", fontsize=8)
        zax.set_xlabel("rest wavelength (Å)")
        zax.set_ylabel("flux / flux(5100 Å)")
    if title:
        ax.set_title(plain(title), fontsize=8)
    return ax


def style_colorbar(cb, label: str, fontsize: float = 8) -> None:
    """Label a colour bar, its lines wrapped to the bar's length, and write its ticks as short
    numbers (``0.015``, ``2e-06``): an offset ×10ⁿ would collide with a horizontal bar's label."""
    import textwrap

    from matplotlib.ticker import FuncFormatter

    fig, box = cb.ax.figure, cb.ax.get_position()
    length_in = (box.height * fig.get_figheight() if cb.orientation == "vertical" else box.width * fig.get_figwidth())
    width = max(20, int(0.9 * length_in * 72 / (0.6 * fontsize)))  # characters of ~0.6 em
    lines = [w for line in plain(label).split("\n") for w in textwrap.wrap(line, width) or [""]]
    cb.set_label("\n".join(lines), fontsize=fontsize)
    cb.ax.tick_params(labelsize=7)
    cb.formatter = FuncFormatter(lambda v, pos: f"{v:.2g}".replace("-", "\N{MINUS SIGN}"))
    cb.update_ticks()


def draw_spectrum(ax: Axes, wavelength: np.ndarray, flux: np.ndarray, values: np.ndarray, *, cmap: str = CMAP,
                  limit: float = 1.0, linewidth: float = 0.7, collapsed: bool = False):
    """The spectrum as a black line on ``ax`` and its attribution as a colour band along the
    bottom (an inset Axes sharing the wavelength axis); y limits leave room for both.

    Returns
    -------
    matplotlib.collections.QuadMesh
        The band's colours (``None`` colours when ``collapsed``: a grey band).
    """
    from matplotlib.colors import Normalize

    ax.plot(wavelength, flux, color="black", lw=linewidth, solid_joinstyle="round", zorder=2, gid="spectrum")
    ax.set_ylim(*flux_limits(flux))
    ax.yaxis.set_major_locator(FluxLocator())
    band = ax.inset_axes((0.0, 0.0, 1.0, BAND), sharex=ax, zorder=4)
    edges = pixel_edges(wavelength)
    mesh = band.pcolormesh(edges, [0.0, 1.0], values[None, :], cmap=cmap, norm=Normalize(-limit, limit),
                           shading="flat", rasterized=True)
    if collapsed:
        mesh.set_array(None)
        mesh.set_facecolor("0.82")
    band.set_ylim(0.0, 1.0)
    band.set_yticks([])
    band.tick_params(axis="x", bottom=False, labelbottom=False)
    for spine in band.spines.values():
        spine.set_linewidth(0.4)
        spine.set_color("0.5")
    return mesh


def spectrum_line(ax: Axes):
    """The spectrum's Line2D that :func:`draw_spectrum` drew on ``ax``."""
    return next(line for line in ax.lines if line.get_gid() == "spectrum")


def pixel_edges(wavelength: np.ndarray) -> np.ndarray:
    """Edges of the pixels centred on ``wavelength`` (midpoints; a log-uniform grid stays exact
    enough), shape (n_pixels + 1,)."""
    w = np.asarray(wavelength, dtype=float)
    if w.size == 1:
        return np.array([w[0] - 0.5, w[0] + 0.5])
    mid = 0.5 * (w[:-1] + w[1:])
    return np.concatenate([[w[0] - (mid[0] - w[0])], mid, [w[-1] + (w[-1] - mid[-1])]])


def zoom_windows(wavelength: np.ndarray) -> list[tuple[float, float, str]]:
    """The windows of :data:`ZOOMS` inside the grid ``wavelength`` (Å)."""
    return [(lo, hi, name) for lo, hi, name in ZOOMS if lo >= wavelength[0] and hi <= wavelength[-1]]


def flux_limits(flux: np.ndarray, headroom: float = HEADROOM, bottom: float = BAND) -> tuple[float, float]:
    """y limits that put the trace between the band (``bottom`` of the Axes, plus a gap) and
    ``headroom`` under the top (room for the line labels)."""
    lo, hi = float(np.nanmin(flux)), float(np.nanmax(flux))
    span = (hi - lo) or 1.0
    unit = span / (1.0 - headroom - bottom - 0.04)
    return lo - (bottom + 0.03) * unit, hi + headroom * unit


def plot_centre_wings(result, *, ax: Axes | None = None, band: str = "ci") -> Axes | Figure:
    """Stacked saliency around a line in velocity space, one curve per class.

    Parameters
    ----------
    result : CentreWings or sequence of CentreWings
        From :func:`agnlens.explain.linestats.centre_wings`; a sequence gives one panel per line
        (and a Figure is returned).
    ax : Axes, optional
        For a single result.
    band : {"ci", "spread", "none"}
        Shade the bootstrap 95 % interval of the mean profile ("ci") or the 16–84 % spread of the
        spectra ("spread").

    Returns
    -------
    Axes for one result, Figure for a sequence.
    """
    if isinstance(result, Sequence):
        fig = new_figure((6.0 * len(result), 3.8))
        axes = fig.subplots(1, len(result), squeeze=False)[0]
        for a, r in zip(axes, result):
            plot_centre_wings(r, ax=a, band=band)
        return fig
    if ax is None:
        ax = _new_axes((6.4, 4.0))
    v = result.velocity
    rng = np.random.default_rng(0)
    for cls, prof in result.profiles.items():
        colour = COLOURS.get(cls, None)
        mean = prof.mean(axis=0)
        (line,) = ax.plot(v, mean, color=colour, lw=1.6 if cls != "all" else 1.0,
                          ls="-" if cls != "all" else "--", label=plain(f"{cls} (n={prof.shape[0]})"))
        if band == "spread" and prof.shape[0] > 1:
            lo, hi = np.percentile(prof, [16, 84], axis=0)
            ax.fill_between(v, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
        elif band == "ci" and prof.shape[0] > 1 and cls != "all":
            boot = prof[rng.integers(0, prof.shape[0], size=(200, prof.shape[0]))].mean(axis=1)
            lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
            ax.fill_between(v, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    ax.axhline(0.0, color="0.3", lw=0.6)
    ax.axvspan(-result.core_kms, result.core_kms, color="0.85", alpha=0.5, lw=0, label="core")
    w0, w1 = result.wing_kms
    for sign in (-1, 1):
        ax.axvspan(sign * w0, sign * w1, color="#f3e6c4", alpha=0.5, lw=0,
                   label="wings" if sign == 1 else None)
    ax.set_xlim(v[0], v[-1])
    ax.set_xlabel(f"velocity from {result.line} (km/s)")
    ax.set_ylabel("mean saliency  ∂p/∂flux")
    ax.set_title(plain(f"{result.line}: centre vs wings"), fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return ax


def plot_faithfulness(curves, *, figsize: tuple[float, float] = (10.0, 3.8)) -> Figure:
    """Mean deletion and insertion curves per method, with the random order as a yardstick.

    Parameters
    ----------
    curves : Faithfulness or dict
        The result of :func:`agnlens.explain.curves.faithfulness`, or its ``curves`` dict
        ``{"fraction": ..., "deletion": {method: curve}, "insertion": {...}}``.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: deletion (lower area is better) and insertion (higher area is better).
    """
    table = getattr(curves, "table", None)
    data = getattr(curves, "curves", curves)
    if not isinstance(data, Mapping) or "fraction" not in data:
        raise TypeError(
            f"plot_faithfulness needs a Faithfulness result or its curves dict, got {type(curves).__name__}"
        )
    fraction = np.asarray(data["fraction"])
    fig = new_figure(figsize)
    axes = fig.subplots(1, 2, sharey=True)
    aucs = {}
    if table is not None:
        aucs = {r["method"]: (r["deletion_auc"], r["insertion_auc"]) for r in table.to_dict(orient="records")}
    for ax, kind in zip(axes, ("deletion", "insertion")):
        for name, curve in data.get(kind, {}).items():
            style = dict(color="0.4", ls="--", lw=1.2) if name == "random" else dict(lw=1.5)
            label = name
            if name in aucs:
                label = f"{name} (AUC {aucs[name][0 if kind == 'deletion' else 1]:.3f})"
            ax.plot(fraction, np.asarray(curve), label=label, **style)
        better = "lower" if kind == "deletion" else "higher"
        ax.set_title(f"{kind} ({better} area is better)", fontsize=10)
        ax.set_xlabel(f"fraction of pixels {'deleted' if kind == 'deletion' else 'inserted'}")
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("p(explained class)")
    return fig


def plot_line_table(
    table,
    *,
    value: str = "mean_saliency",
    ax: Axes | None = None,
    annotate: bool = True,
) -> Axes:
    """Heat map of a line table: windows (rows) × classes (columns).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`agnlens.explain.linestats.line_table`.
    value : str
        Column to show: ``"mean_saliency"`` (signed, diverging map with symmetric limits),
        ``"mean_abs_saliency"``, ``"share_abs"`` or ``"enrichment"`` (sequential map).

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.colors import Normalize

    if value not in table.columns:
        raise ValueError(f"line table has no column {value!r}; columns: {list(table.columns)}")
    pivot = table.pivot_table(index="line", columns="class", values=value, aggfunc="first", sort=False)
    data = pivot.to_numpy(dtype=float)
    if ax is None:
        ax = _new_axes((1.6 + 1.4 * data.shape[1], 0.9 + 0.32 * data.shape[0]))
    signed = value == "mean_saliency"
    limit = _limit(data, None)
    norm = Normalize(-limit, limit) if signed else Normalize(0, limit)
    image = ax.imshow(data, aspect="auto", cmap=CMAP if signed else "viridis", norm=norm)
    ax.set_xticks(range(data.shape[1]), [plain(c) for c in pivot.columns], fontsize=8)
    ax.set_yticks(range(data.shape[0]), [plain(r) for r in pivot.index], fontsize=8)
    if annotate:
        for (r, c), x in np.ndenumerate(data):
            if np.isfinite(x):
                ax.text(c, r, f"{x:.2g}", ha="center", va="center", fontsize=6,
                        color="black" if not signed or abs(x) < 0.6 * limit else "white")
    ax.figure.colorbar(image, ax=ax, label=value.replace("_", " "))
    ax.set_title("line-level saliency per class", fontsize=10)
    return ax

