"""Saliency figures: spectra coloured by signed saliency, galleries, line tables, faithfulness.

matplotlib is imported lazily and only through :class:`matplotlib.figure.Figure` (no pyplot
state). Functions drawing one panel take ``ax=None`` and return the Axes; functions drawing
several panels return the Figure. Nothing is shown or saved here.

Colours: a diverging map (``"RdBu_r"``) with symmetric limits ±max|s|, so white is exactly zero,
red pixels raise the explained probability and blue ones lower it. A map that is zero to round-off
(|s| < :data:`ZERO_SCALE`, e.g. a collapsed kernel) is drawn grey with its true scale written on the
panel, never with a colour bar stretched over 1e-33. Fe II blends are shaded, lines are labelled
without overlaps, and single-spectrum figures zoom on Hβ–[O III] and Hα–[N II] so that the narrow
lines can be read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from agnlens.lines import BANDS, lines_in
from agnlens.plot._text import plain

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CMAP = "RdBu_r"
COLORBAR_LABEL = "∂p/∂flux (per unit normalised flux)"
#: A map whose largest |value| is below this is zero to round-off: drawn grey, scale written out.
ZERO_SCALE = 1e-12
#: Zoom windows of the single-spectrum figures (rest Å): Hβ–[O III] and Hα–[N II].
ZOOMS = ((4820.0, 5030.0, "Hβ–[O III]"), (6520.0, 6610.0, "Hα–[N II]"))
FEII_COLOUR = "#efe3c2"
#: Colours of the classes (Okabe-Ito), as in :mod:`agnlens.plot.embedding`.
CLASS_COLOURS = {"type1": "#0072B2", "type2": "#D55E00", "intermediate": "#009E73", "all": "#444444"}


def _new_figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _new_axes(figsize=(9.0, 3.6)):
    return _new_figure(figsize).add_subplot()


def _limit(values: np.ndarray, vmax: float | None) -> float:
    if vmax is not None:
        return float(vmax)
    m = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    return m if m > 0 and np.isfinite(m) else 1.0


def mark_lines(ax: Axes, wavelength: np.ndarray, *, labels: bool = True, min_sep_aa: float | None = None,
               bands: bool = True, fontsize: float = 7) -> list:
    """Dotted vertical lines at every line of :data:`agnlens.lines.LINES` inside the axis range,
    labelled at the top without overlaps, and the Fe II blends of :data:`agnlens.lines.BANDS` shaded.

    Labels sharing a name (the [O III] or [N II] pair) are written once (on wide axes); a label closer than
    ``min_sep_aa`` (default: the width of a label at ``fontsize`` on this axis) to the previous one
    goes one row lower (three rows), and is dropped only when every row is taken.
    """
    texts = []
    lo, hi = float(np.min(wavelength)), float(np.max(wavelength))
    trans = ax.get_xaxis_transform()
    if bands:
        for band in BANDS:
            if band.kind == "feii" and band.hi > lo and band.lo < hi:
                ax.axvspan(max(band.lo, lo), min(band.hi, hi), color=FEII_COLOUR, alpha=0.6, lw=0, zorder=-1)
                ax.text(0.5 * (max(band.lo, lo) + min(band.hi, hi)), 0.02, "Fe II", transform=trans, ha="center",
                        va="bottom", fontsize=fontsize, color="#8a6d1f")
    if min_sep_aa is None:
        width_in = ax.bbox.width / ax.figure.dpi or 1.0  # the axes' width in inches (also inside a SubFigure)
        min_sep_aa = 1.6 * fontsize / 72.0 * (hi - lo) / width_in
    rows_last = [-np.inf, -np.inf, -np.inf]
    seen: dict[str, float] = {}
    for item in lines_in(wavelength):
        style = ":" if item.kind != "absorption" else "--"
        ax.axvline(item.wavelength, color="0.55", lw=0.6, ls=style, zorder=0)
        # a pair sharing a label ([O III], [N II]) is labelled once, unless the axis is a zoom
        if not labels or item.wavelength - seen.get(item.label, -np.inf) < min(150.0, 0.1 * (hi - lo)):
            continue
        free = [r for r, last in enumerate(rows_last) if item.wavelength - last >= min_sep_aa]
        if not free:
            continue
        row = free[0]
        texts.append(
            ax.text(item.wavelength, 0.98 - 0.16 * row, item.label, transform=trans, rotation=90, ha="right",
                    va="top", fontsize=fontsize, color="0.3")
        )
        rows_last[row] = item.wavelength
        seen[item.label] = item.wavelength
    return texts


def _collapsed_note(ax: Axes, values: np.ndarray, note: str | None) -> None:
    scale = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    text = f"saliency zero to round-off: max |∂p/∂flux| = {scale:.1e}"
    _note(ax, f"{note}\n{text}" if note else text)


def _note(ax: Axes, text: str) -> None:
    ax.text(0.01, 0.10, text, transform=ax.transAxes, ha="left", va="bottom", fontsize=8, color="#b2182b",
            bbox=dict(facecolor="white", edgecolor="#b2182b", alpha=0.85, lw=0.6))


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
    linewidth: float = 1.6,
    note: str | None = None,
    zoom: bool = False,
) -> Axes:
    """Draw a spectrum as a line coloured by its signed saliency.

    Parameters
    ----------
    wavelength, flux, values : ndarray of shape (n_pixels,)
        Rest-frame grid (Å), normalised flux and the saliency of every pixel.
    ax : matplotlib Axes, optional
        Drawn on a new Figure when None.
    title : str, optional
        E.g. spec_id, true and predicted type and probabilities (:meth:`Saliency.plot` makes one).
    lines : bool
        Mark and label the lines of :data:`agnlens.lines.LINES` in range.
    cmap : str
        Diverging colour map; the limits are symmetric, ±``vmax`` (default max |values|).
    colorbar : bool
        Add a colour bar labelled ``colorbar_label`` (not for a map that is zero to round-off,
        whose true scale is written on the panel instead).
    linewidth : float
        Width of the trace (points).
    note : str, optional
        A warning written on the panel, e.g. ``"not applicable: kernel collapse"``.
    zoom : bool
        With ``ax=None``: add panels zoomed on Hβ–[O III] and Hα–[N II] (those inside the grid)
        below the spectrum, with a thicker trace, so that the narrow lines can be read.

    Returns
    -------
    matplotlib.axes.Axes
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
        fig = _new_figure((10.0, 6.0))
        grid = fig.add_gridspec(2, len(windows), height_ratios=(1.4, 1.0))
        ax = fig.add_subplot(grid[0, :])
        zoom_axes = [fig.add_subplot(grid[1, k]) for k in range(len(windows))]
    elif ax is None:
        ax = _new_axes()
    collapsed = vmax is None and _limit(values, None) < ZERO_SCALE
    limit = _limit(values, vmax)
    lc = _trace(ax, wavelength, flux, values, cmap, limit, linewidth, collapsed)
    ax.set_xlim(wavelength[0], wavelength[-1])
    ax.set_ylim(*flux_limits(flux, 6))
    ax.set_xlabel("rest wavelength (Å)")
    ax.set_ylabel("flux / flux(5100 Å)")
    if lines:
        mark_lines(ax, wavelength)
    if collapsed:
        _collapsed_note(ax, values, note)
    elif note:
        _note(ax, note)
    if colorbar and not collapsed:
        cb = ax.figure.colorbar(lc, ax=[ax, *zoom_axes], label=plain(colorbar_label), pad=0.01)
        from matplotlib.ticker import ScalarFormatter

        if isinstance(cb.formatter, ScalarFormatter):
            cb.formatter.set_powerlimits((-3, 4))  # ×10ⁿ beyond: tick labels stay short
    for zax, window in zip(zoom_axes, windows):
        _zoom(zax, window, wavelength, flux, values, cmap, limit, collapsed)
    if title:
        ax.set_title(plain(title), fontsize=9)
    return ax


def zoom_windows(wavelength: np.ndarray) -> list[tuple[float, float, str]]:
    """The windows of :data:`ZOOMS` inside the grid ``wavelength`` (Å)."""
    return [(lo, hi, name) for lo, hi, name in ZOOMS if lo >= wavelength[0] and hi <= wavelength[-1]]


def flux_limits(flux: np.ndarray, top: float, pad_fraction: float = 0.05) -> tuple[float, float]:
    """y limits of a trace: one pad (``pad_fraction`` of the flux range) below, ``top`` pads above
    (room for the line labels)."""
    pad = pad_fraction * (np.nanmax(flux) - np.nanmin(flux) or 1.0)
    return float(np.nanmin(flux) - pad), float(np.nanmax(flux) + top * pad)


def _trace(ax, wavelength, flux, values, cmap, limit, linewidth, collapsed):
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    points = np.column_stack([wavelength, flux])
    segments = np.stack([points[:-1], points[1:]], axis=1)
    if collapsed:
        lc = LineCollection(segments, colors="0.45", linewidths=linewidth)
    else:
        lc = LineCollection(segments, cmap=cmap, norm=Normalize(-limit, limit), linewidths=linewidth)
        lc.set_array(0.5 * (values[:-1] + values[1:]))
    ax.add_collection(lc)
    return lc


def _zoom(ax, window, wavelength, flux, values, cmap, limit, collapsed) -> None:
    """One zoomed panel on ``window = (lo, hi, name)``, same colour scale, thicker trace."""
    lo, hi, name = window
    sel = (wavelength >= lo) & (wavelength <= hi)
    _trace(ax, wavelength[sel], flux[sel], values[sel], cmap, limit, 2.6, collapsed)
    ax.set_xlim(lo, hi)
    ax.set_ylim(*flux_limits(flux[sel], 5, 0.08))
    mark_lines(ax, wavelength[sel], bands=False)
    ax.set_title(f"zoom: {name}", fontsize=8)
    ax.set_xlabel("rest wavelength (Å)")
    ax.set_ylabel("flux / flux(5100 Å)")


def plot_saliency_panels(
    wavelength: np.ndarray,
    flux: np.ndarray,
    values: Mapping[str, np.ndarray] | np.ndarray,
    *,
    classes: Sequence[str] | None = None,
    probabilities: Sequence[float] | None = None,
    title: str | None = None,
    shared_scale: bool = True,
    figsize: tuple[float, float] | None = None,
    note: str | None = None,
) -> Figure:
    """One panel per class: the same spectrum coloured by the saliency of each class's probability.

    Parameters
    ----------
    wavelength, flux : ndarray of shape (n_pixels,)
    values : dict class → ndarray (n_pixels,), or ndarray of shape (n_classes, n_pixels)
    classes : sequence of str, optional
        Class names when ``values`` is an array.
    probabilities : sequence of float, optional
        p of each class, shown in the panel titles.
    title : str, optional
        Figure title (e.g. spec_id, true and predicted type).
    shared_scale : bool
        One symmetric colour scale for all panels, so that their colours compare.
    note : str, optional
        A warning written on every panel (e.g. ``"not applicable: kernel collapse"``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(values, Mapping):
        classes = list(values)
        maps = np.array([np.asarray(values[c], dtype=float) for c in classes])
    else:
        maps = np.atleast_2d(np.asarray(values, dtype=float))
        classes = list(classes) if classes is not None else [f"class {k}" for k in range(maps.shape[0])]
    if len(classes) != maps.shape[0]:
        raise ValueError(f"got {maps.shape[0]} saliency maps but {len(classes)} class names")
    fig = _new_figure(figsize or (9.0, 2.6 * len(classes)))
    axes = fig.subplots(len(classes), 1, sharex=True, squeeze=False)[:, 0]
    vmax = _limit(maps, None) if shared_scale and _limit(maps, None) >= ZERO_SCALE else None
    for k, (ax, cls) in enumerate(zip(axes, classes)):
        p = f", p = {probabilities[k]:.3f}" if probabilities is not None else ""
        plot_saliency(wavelength, flux, maps[k], ax=ax, title=f"saliency of p({cls}){p}", vmax=vmax,
                      colorbar_label=f"∂p({cls})/∂flux", note=note)
        if k < len(classes) - 1:
            ax.set_xlabel("")
    if title:
        fig.suptitle(plain(title), fontsize=10)
    return fig


def plot_gallery(
    saliency,
    indices: Sequence[int] | None = None,
    *,
    ncols: int = 3,
    panel_size: tuple[float, float] = (4.2, 2.4),
    max_panels: int = 60,
    title: str | None = None,
    flags: Sequence[str] | None = None,
) -> Figure:
    """A grid of small saliency panels (e.g. every misclassified spectrum plus a random sample).

    Parameters
    ----------
    saliency : Saliency
    indices : sequence of int, optional
        Rows to draw (default all, up to ``max_panels``).
    ncols : int
    panel_size : (float, float)
        Size of one panel in inches.
    flags : sequence of str, shape (n_spectra,), optional
        Applicability flags per spectrum (as in ``classify``); flagged panels say "not applicable".

    Each panel has its own colour bar (scales differ from spectrum to spectrum).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from agnlens.models.applicability import reason

    idx = list(range(len(saliency))) if indices is None else [int(i) for i in indices]
    idx = idx[:max_panels]
    if not idx:
        raise ValueError("plot_gallery needs at least one spectrum index")
    ncols = max(1, min(ncols, len(idx)))
    nrows = int(np.ceil(len(idx) / ncols))
    fig = _new_figure((panel_size[0] * ncols, panel_size[1] * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, i in zip(axes, idx):
        p = saliency.probabilities[i, saliency.target_index[i]]
        head = (
            f"{saliency.spec_id[i]}\ntrue {saliency.labels[i] or '?'} → {saliency.predicted[i]}, "
            f"p({saliency.target[i]}) = {p:.2f}"
        )
        note = f"not applicable: {reason(flags[i])}" if flags is not None and flags[i] else None
        plot_saliency(saliency.wavelength, saliency.flux[i], saliency.values[i], ax=ax, title=head,
                      colorbar=False, linewidth=1.2, note=note, lines=False)
        mark_lines(ax, saliency.wavelength, fontsize=5)
        values = saliency.values[i]
        if _limit(values, None) >= ZERO_SCALE:
            cb = fig.colorbar(ax.collections[0], ax=ax, pad=0.01, fraction=0.05)
            cb.ax.tick_params(labelsize=5)
            cb.formatter.set_powerlimits((-2, 2))
        ax.set_xlabel("rest λ (Å)", fontsize=6)
        ax.set_ylabel("flux / f(5100)", fontsize=6)
        ax.tick_params(labelsize=6)
        for text in ax.texts:
            if text.get_fontsize() > 6:
                text.set_fontsize(6)
    for ax in axes[len(idx):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(f"{plain(title)}   (colour: ∂p/∂flux per unit normalised flux)")
    return fig


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
        fig = _new_figure((6.0 * len(result), 3.8))
        axes = fig.subplots(1, len(result), squeeze=False)[0]
        for a, r in zip(axes, result):
            plot_centre_wings(r, ax=a, band=band)
        return fig
    if ax is None:
        ax = _new_axes((6.4, 4.0))
    v = result.velocity
    rng = np.random.default_rng(0)
    for cls, prof in result.profiles.items():
        colour = CLASS_COLOURS.get(cls, None)
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
        The result of :func:`agnlens.explain.faithfulness.faithfulness`, or its ``curves`` dict
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
    fig = _new_figure(figsize)
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

