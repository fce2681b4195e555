"""Figures of classifier results: confusion matrices and the hyper-parameter search.

matplotlib is imported lazily and only through :class:`matplotlib.figure.Figure` (no pyplot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from agnlens.classes import CLASS_NAMES
from agnlens.plot._text import plain
from agnlens.plot.embedding import new_axes

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes


def plot_confusion(
    matrix: Any,
    classes: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draw a confusion matrix with counts and row-normalised shares.

    Rows are the true classes, columns the predicted ones; the colour is the share of the row
    (the recall of the class on the diagonal), each cell says the count and that share.

    Parameters
    ----------
    matrix : array-like of int, shape (n_classes, n_classes)
        Counts, ``matrix[i, j]`` = spectra of true class i predicted as class j.
    classes : sequence of str, length n_classes
        Class names in the matrix order.
    ax : matplotlib Axes, optional
        Axes to draw into; a new figure is made otherwise.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    m = np.asarray(matrix, dtype=float)
    names = [str(c) for c in classes]
    k = len(names)
    if m.shape != (k, k):
        raise ValueError(f"matrix must be square with one row per class ({k}×{k} for {names}), got {m.shape}")
    if np.any(m < 0) or not np.all(np.isfinite(m)):
        raise ValueError("matrix must hold non-negative finite counts")
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    if ax is None:
        ax = new_axes((1.6 + 1.3 * k, 1.2 + 1.2 * k))
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            colour = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(round(m[i, j]))}\n{100 * share[i, j]:.1f}%", ha="center", va="center",
                    color=colour, fontsize="small")
    ticks = [plain(CLASS_NAMES.get(c, c)) for c in names]
    ax.set_xticks(range(k), ticks)
    ax.set_yticks(range(k), ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(plain(title))
    return ax


def _gamma_key(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value) in ("", "nan", "None"):
        return ""
    try:
        return f"γ={float(value):.3g}"
    except (TypeError, ValueError):
        return f"γ={value}"


def plot_tuning(table: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Validation F1 against C, one line per kernel / γ / class weighting; the best point starred.

    Parameters
    ----------
    table : pandas.DataFrame
        The search table (``tuning_*.csv``): columns ``kernel``, ``C``, ``validation_f1`` and
        optionally ``gamma``, ``class_weight``, ``best`` (bool).
    ax : matplotlib Axes, optional
        Axes to draw into; a new figure is made otherwise.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    missing = {"kernel", "C", "validation_f1"} - set(table.columns)
    if missing:
        raise ValueError(f"tuning table lacks the columns {sorted(missing)}; it has {list(table.columns)}")
    df = table.copy()
    df["_gamma"] = df["gamma"].map(_gamma_key) if "gamma" in df else ""
    df["_cw"] = df["class_weight"].fillna("none").astype(str) if "class_weight" in df else ""
    df["_deg"] = (df["degree"].map(lambda d: "" if _gamma_key(d) == "" else f"degree {int(float(d))}")
                  if "degree" in df else "")
    if ax is None:
        ax = new_axes((8.4, 4.2))
    groups = df.groupby(["kernel", "_deg", "_gamma", "_cw"], sort=True, dropna=False)
    # one colour per kernel setting, one line style per class weighting
    settings = sorted({key[:3] for key in groups.groups})
    weights = sorted({key[3] for key in groups.groups})
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(settings) <= 10 else "tab20"]
    styles = ["-", "--", ":", "-."]
    for (kernel, deg, gamma, cw), g in groups:
        g = g.sort_values("C")
        label = ", ".join(p for p in (str(kernel), deg, gamma, f"weights {cw}" if cw else "") if p)
        ax.plot(g["C"].astype(float), g["validation_f1"].astype(float), marker="o", ms=3, lw=1, label=label,
                color=cmap(settings.index((kernel, deg, gamma)) % cmap.N),
                linestyle=styles[weights.index(cw) % len(styles)])
    if "best" in df:
        best = df[df["best"].astype(str).str.lower().isin(["true", "1"])]
    else:
        best = df.loc[[df["validation_f1"].astype(float).idxmax()]]
    if len(best):
        ax.scatter(best["C"].astype(float), best["validation_f1"].astype(float), marker="*", s=160,
                   c="gold", edgecolors="black", zorder=5, label="selected")
    ax.set_xscale("log")
    ax.set_xlabel("C (regularisation)")
    ax.set_ylabel("validation macro F1")
    if title:
        ax.set_title(plain(title))
    # beside the axes: a search has many configurations and the curves fill the plot
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              ncol=2 if groups.ngroups > 14 else 1, frameon=False)
    ax.grid(alpha=0.3)
    return ax
