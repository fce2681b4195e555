"""The t-SNE map figure: classes coloured, misclassified and explained spectra marked.

matplotlib is imported lazily and only through :class:`matplotlib.figure.Figure` (no pyplot
state), so that the library can be used headless and in threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from agnlens.classes import CLASS_COLOURS, CLASS_NAMES
from agnlens.plot._text import plain

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes


OTHER_COLOUR = "#9a9a9a"
#: Human-readable class names for legends.


def _bool_mask(values: Any, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=bool)
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a boolean array of shape ({n},) like coords, got shape {arr.shape}")
    if arr.dtype != bool:
        # CSV round trips give strings or 0/1
        arr = np.isin(np.char.lower(arr.astype(str)), ["true", "1", "1.0", "yes"])
    return arr


def new_axes(figsize: tuple[float, float] = (6.4, 5.2)) -> Axes:
    """Return fresh axes on a new :class:`matplotlib.figure.Figure` (no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def plot_embedding(
    coords: Any,
    labels: Any,
    *,
    predicted: Any = None,
    misclassified: Any = None,
    explained: Any = None,
    simulated: bool = False,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Scatter a t-SNE map with the classes coloured.

    Type 2 spectra (usually the majority) are drawn first, then type 1, then intermediates on
    top, so that intermediates stay visible between or among the others.

    Parameters
    ----------
    coords : array-like of shape (n_spectra, 2)
        Map coordinates.
    labels : array-like of shape (n_spectra,)
        True class of every spectrum ("type1", "type2", "intermediate"; anything else is grey).
    predicted : array-like of shape (n_spectra,), optional
        Predicted class; used to derive ``misclassified`` when that is not given (entries that
        are empty or missing count as not predicted).
    misclassified : array-like of bool, shape (n_spectra,), optional
        Marked with a black ×  (typically: test spectra the classifier got wrong).
    explained : array-like of bool, shape (n_spectra,), optional
        Spectra with a saliency map, marked with an open black circle.
    simulated : bool, default False
        Say "simulated" in the title.
    title : str, optional
        Title; a default one is written otherwise.
    ax : matplotlib Axes, optional
        Axes to draw into; a new figure is made otherwise.

    Returns
    -------
    matplotlib.axes.Axes
    """
    xy = np.asarray(coords, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"coords must have shape (n_spectra, 2), got {xy.shape}")
    n = xy.shape[0]
    y = np.asarray(labels).astype(str)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) like coords, got {y.shape}")
    if misclassified is None and predicted is not None:
        pred = np.asarray(predicted).astype(str)
        if pred.shape != (n,):
            raise ValueError(f"predicted must have shape ({n},) like coords, got {pred.shape}")
        has_pred = ~np.isin(pred, ["", "nan", "None"])
        wrong = has_pred & (pred != y)
    else:
        wrong = _bool_mask(misclassified, n, "misclassified")
    expl = _bool_mask(explained, n, "explained")

    if ax is None:
        ax = new_axes()
    size = float(np.clip(3000.0 / max(n, 1), 4.0, 25.0))
    others = ~np.isin(y, list(CLASS_COLOURS))
    if others.any():
        ax.scatter(xy[others, 0], xy[others, 1], s=size, c=OTHER_COLOUR, linewidths=0, label=f"other ({others.sum()})")
    for cls in ("type2", "type1", "intermediate"):
        sel = y == cls
        if sel.any():
            ax.scatter(
                xy[sel, 0], xy[sel, 1], s=size, c=CLASS_COLOURS[cls], linewidths=0, alpha=0.8,
                label=f"{CLASS_NAMES[cls]} ({sel.sum()})",
            )
    if expl.any():
        ax.scatter(
            xy[expl, 0], xy[expl, 1], s=size * 4 + 10, facecolors="none", edgecolors="black", linewidths=0.8,
            label=f"saliency map ({expl.sum()})",
        )
    if wrong.any():
        ax.scatter(xy[wrong, 0], xy[wrong, 1], s=size * 2 + 12, c="black", marker="x", linewidths=1.0,
                   label=f"misclassified ({wrong.sum()})")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    if title is None:
        title = f"t-SNE map of {n} {'simulated ' if simulated else ''}spectra"
    elif simulated and "simulated" not in title.lower():
        title = f"{title} (simulated)"
    ax.set_title(plain(title))
    ax.set_xticks([])
    ax.set_yticks([])
    legend = ax.legend(loc="best", fontsize="small", framealpha=0.85)
    for handle in getattr(legend, "legend_handles", []):
        if hasattr(handle, "set_sizes"):  # same, readable marker size in the legend whatever the point size
            handle.set_sizes([30.0])
    return ax


def plot_embedding_values(coords: Any, values: dict[str, Any], *, simulated: bool = False) -> Any:
    """The t-SNE map once per quantity, points coloured by its value (e.g. broad FWHM, [O III]/Hβ).

    Parameters
    ----------
    coords : array-like of shape (n, 2)
    values : dict name → array-like of shape (n,)
        One panel per entry; NaN points are drawn grey underneath.
    simulated : bool
        Say so in the titles.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    coords = np.asarray(coords, dtype=float)
    fig = Figure(figsize=(4.2 * max(len(values), 1), 3.9), layout="constrained")
    for k, (name, vals) in enumerate(values.items()):
        ax = fig.add_subplot(1, len(values), k + 1)
        v = np.asarray(vals, dtype=float)
        if v.shape != (coords.shape[0],):
            raise ValueError(f"values[{name!r}] must have shape ({coords.shape[0]},) like coords, got {v.shape}")
        ok = np.isfinite(v)
        ax.scatter(coords[~ok, 0], coords[~ok, 1], s=3, color="#dddddd", lw=0)
        sc = ax.scatter(coords[ok, 0], coords[ok, 1], c=v[ok], s=4, lw=0, cmap="viridis")
        fig.colorbar(sc, ax=ax, shrink=0.8)
        ax.set_title(name + (" (simulated truth)" if simulated else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
