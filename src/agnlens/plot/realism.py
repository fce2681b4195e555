"""The realism figure: median real vs median simulated spectrum of each class.

matplotlib is imported lazily and only through :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from agnlens.lines import LINES
from agnlens.plot._text import plain

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


class Measured(Protocol):
    """What the figure reads from a :class:`agnlens.realism.RealismResult` (named by its fields
    here, so that the figures need not import the measurement that draws itself through them)."""

    wavelength: np.ndarray
    medians: dict[str, tuple[np.ndarray, np.ndarray]]
    classes: dict[str, dict[str, Any]]


def plot_realism(result: Measured, *, ax=None) -> Figure:
    """One panel per class: the median real (black) and median simulated (orange) spectrum.

    Parameters
    ----------
    result : RealismResult
        Or anything with its ``wavelength``, ``medians`` and ``classes``.
    ax : sequence of matplotlib Axes, optional
        One per class in ``result.medians``; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = list(result.medians)
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9.0, 2.4 * max(1, len(labels)) + 0.4), layout="constrained")
        axes = fig.subplots(max(1, len(labels)), 1, squeeze=False)[:, 0]
    else:
        axes = np.atleast_1d(ax)
        if len(axes) < len(labels):
            raise ValueError(f"plot_realism: {len(labels)} classes need {len(labels)} axes, got {len(axes)}")
        fig = axes[0].figure
    wl = result.wavelength
    for a, label in zip(axes, labels):
        real, sim = result.medians[label]
        c = result.classes[label]
        a.plot(wl, real, color="black", lw=0.8, label=f"real median (n = {c['n_real']})")
        a.plot(wl, sim, color="#E69F00", lw=0.8, alpha=0.9, label=f"simulated median (n = {c['n_simulated']})")
        if c["tested"]:
            best = max(c["auc"].items(), key=lambda kv: kv[1]["mean"])
            note = f"two-sample ROC AUC {best[1]['mean']:.2f} ± {best[1]['std']:.2f} ({best[0]})"
        else:
            note = f"no two-sample test: {c['reason']}"
        a.set_title(plain(f"{label}: {note}"), fontsize=9, loc="left")  # a catalogue's label, drawn as given
        for line in LINES:
            if wl[0] <= line.wavelength <= wl[-1]:
                a.axvline(line.wavelength, color="0.85", lw=0.5, zorder=0)
        finite = np.concatenate([real[np.isfinite(real)], sim[np.isfinite(sim)]])
        if finite.size:
            a.set_ylim(min(0.0, float(np.percentile(finite, 0.5))), float(np.percentile(finite, 99.8)) * 1.1)
        a.set_ylabel("flux / flux(5100 Å)")
        a.legend(fontsize=8, loc="upper right", frameon=False)
    axes[-1].set_xlabel("rest wavelength (Å)")
    fig.suptitle("real vs simulated (simulated spectra at matched redshift and S/N)", fontsize=10)
    return fig
