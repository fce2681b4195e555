"""Many saliency panels in one figure, on one colour scale: a gallery of spectra, or one spectrum
with the attribution of every class.

Each panel is :func:`agnlens.plot.saliency.plot_saliency` on a small Axes (the spectrum as a line,
the attribution as a colour band); all panels share one symmetric colour limit and one colour
bar, so a colour means the same value in every panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from agnlens.classes import CLASS_NAMES
from agnlens.plot._text import plain
from agnlens.plot.saliency import (
    attribution_label,
    new_figure,
    plot_saliency,
    shared_limit,
    shared_scale_note,
    style_colorbar,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def _colorbar(fig, axes, label: str, limit: float, **kwargs):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bands = [a.child_axes[0].collections[0] for a in axes if a.child_axes and a.child_axes[0].collections]
    mappable = next((m for m in bands if m.get_array() is not None), None)
    if mappable is None:  # every map zero to round-off: a colour bar of the shared scale all the same
        mappable = ScalarMappable(Normalize(-limit, limit), cmap="RdBu_r")
    cb = fig.colorbar(mappable, ax=list(axes), extend="both", **kwargs)
    style_colorbar(cb, label)
    return cb


def plot_saliency_panels(
    wavelength: np.ndarray,
    flux: np.ndarray,
    values: Mapping[str, np.ndarray] | np.ndarray,
    *,
    classes: Sequence[str] | None = None,
    probabilities: Sequence[float] | None = None,
    title: str | None = None,
    method: str = "gradient",
    vmax: float | None = None,
    figsize: tuple[float, float] | None = None,
    note: str | None = None,
) -> Figure:
    """One panel per class: the same spectrum with the attribution of each class's probability.

    Parameters
    ----------
    wavelength, flux : ndarray of shape (n_pixels,)
    values : dict class → ndarray (n_pixels,), or ndarray of shape (n_classes, n_pixels)
    classes : sequence of str, optional
        Class names when ``values`` is an array.
    probabilities : sequence of float, optional
        p of each class, shown in the panel titles.
    title : str, optional
        Figure title (e.g. :meth:`Saliency.figure_title`).
    method : str
        The attribution method (named on the colour bar).
    vmax : float, optional
        The shared colour limit (default: :func:`shared_limit` of these maps).
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
    fig = new_figure(figsize or (7.2, 0.8 + 2.0 * len(classes)))
    axes = fig.subplots(len(classes), 1, sharex=True, squeeze=False)[:, 0]
    limit = shared_limit(maps) if vmax is None else float(vmax)
    for k, (ax, cls) in enumerate(zip(axes, classes)):
        p = f", p = {probabilities[k]:.3f}" if probabilities is not None else ""
        plot_saliency(wavelength, flux, maps[k], ax=ax, title=f"attribution of p({CLASS_NAMES.get(cls, cls)}){p}",
                      vmax=limit, colorbar=False, note=note)
        if k < len(classes) - 1:
            ax.set_xlabel("")
    _colorbar(fig, axes, attribution_label(method) + "\none scale for all panels", limit, pad=0.01, aspect=40)
    if title:
        fig.suptitle(plain(title), fontsize=9)
    return fig


def plot_gallery(
    saliency,
    indices: Sequence[int] | None = None,
    *,
    ncols: int = 3,
    panel_size: tuple[float, float] = (3.4, 2.3),
    max_panels: int = 60,
    title: str | None = None,
    flags: Sequence[str] | None = None,
    reasons: Sequence[str] | None = None,
    vmax: float | None = None,
    n_maps: int | None = None,
) -> Figure:
    """A grid of small panels, one spectrum each, on one colour scale.

    Parameters
    ----------
    saliency : Saliency
    indices : sequence of int, optional
        Rows to draw (default all, up to ``max_panels``).
    ncols : int
    panel_size : (float, float)
        Size of one panel in inches.
    title : str, optional
        The figure's title; the method and the shared scale are added to it.
    flags : sequence of str, shape (n_spectra,), optional
        Applicability flags per spectrum (as in ``classify``); flagged panels say "not applicable".
    reasons : sequence of str, shape (len(indices),), optional
        Why each panel is shown (default :attr:`Saliency.reason` of its row), in its title.
    vmax : float, optional
        The colour limit of every panel (default :func:`shared_limit` of the maps drawn); one
        colour bar shows it.
    n_maps : int, optional
        How many maps set ``vmax`` (for the colour bar; default the panels drawn).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from agnlens.models.applicability import reason as flag_reason

    idx = list(range(len(saliency))) if indices is None else [int(i) for i in indices]
    idx = idx[:max_panels]
    if not idx:
        raise ValueError("plot_gallery needs at least one spectrum index")
    if reasons is not None and len(reasons) < len(idx):
        raise ValueError(f"plot_gallery: {len(reasons)} reasons for {len(idx)} panels")
    limit = shared_limit(saliency.values[idx]) if vmax is None else float(vmax)
    ncols = max(1, min(ncols, len(idx)))
    nrows = int(np.ceil(len(idx) / ncols))
    fig = new_figure((panel_size[0] * ncols + 0.8, panel_size[1] * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for n, (ax, i) in enumerate(zip(axes, idx)):
        head = saliency.figure_title(i, short=True, reason=None if reasons is None else reasons[n])
        note = f"not applicable: {flag_reason(flags[i])}" if flags is not None and flags[i] else None
        plot_saliency(saliency.wavelength, saliency.flux[i], saliency.values[i], ax=ax, colorbar=False,
                      vmax=limit, linewidth=0.6, note=note, fontsize=5.5)
        ax.set_title(plain(head), fontsize=6.5)
        ax.set_xlabel("rest wavelength (Å)", fontsize=6.5)
        ax.set_ylabel("flux / flux(5100 Å)", fontsize=6.5)
        ax.tick_params(labelsize=6)
        for text in ax.texts:
            text.set_fontsize(min(text.get_fontsize(), 6))
    for ax in axes[len(idx):]:
        ax.set_visible(False)
    targets = set(saliency.target[idx])
    label = attribution_label(saliency.method, targets.pop() if len(targets) == 1 else None)
    scale = shared_scale_note(len(idx) if n_maps is None else n_maps)
    _colorbar(fig, axes[: len(idx)], f"{label}\n{scale}", limit, location="bottom", shrink=0.6, aspect=45, pad=0.01)
    what = f"attribution of each spectrum's {'predicted class' if _explains_predicted(saliency, idx) else 'class'}"
    fig.suptitle(plain(f"{title + ': ' if title else ''}{what}, {saliency.method}"), fontsize=9)
    return fig


def _explains_predicted(saliency, idx) -> bool:
    return bool(np.all(saliency.target[idx] == saliency.predicted[idx]))


__all__ = ["plot_gallery", "plot_saliency_panels"]
