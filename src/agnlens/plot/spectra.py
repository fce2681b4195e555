"""Spectra figures: rest frame, normalised at 5100 Å, stacked, with the lines marked.

matplotlib is imported lazily and only through :class:`matplotlib.figure.Figure` (no pyplot
state).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agnlens.lines import LINES, NORM_WINDOW
from agnlens.plot._text import plain
from agnlens.spectra import Spectrum, SpectrumSet

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

#: Colours of the line markers by kind (emission with a broad component, forbidden, absorption).
LINE_COLOURS = {"broad": "#0072B2", "narrow": "#009E73", "absorption": "#D55E00"}


def _as_curves(spectra: Any, rest: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """(wavelength, flux, good, name) per spectrum."""
    from agnlens.preprocess import to_rest_frame

    if isinstance(spectra, Spectrum):
        spectra = [spectra]
    curves = []
    if isinstance(spectra, SpectrumSet):
        for i in range(len(spectra)):
            good = ~spectra.mask[i]
            curves.append((spectra.wavelength, spectra.flux[i].astype(float), good, str(spectra.spec_id[i])))
        return curves
    if not isinstance(spectra, Sequence) or not all(isinstance(s, Spectrum) for s in spectra):
        raise TypeError(
            f"plot_spectra: expected a Spectrum, a list of Spectrum or a SpectrumSet, got {type(spectra).__name__}"
        )
    for s in spectra:
        if rest and s.frame == "observed":
            s = to_rest_frame(s)
        curves.append((s.wavelength, s.flux, s.good, s.spec_id))
    return curves


def plot_spectra(
    spectra: Spectrum | Sequence[Spectrum] | SpectrumSet,
    *,
    ax: Axes | None = None,
    labels: Sequence[str] | None = None,
    colors: Sequence[str] | str | None = None,
    rest: bool = True,
    normalise: bool = True,
    offset: float | str = "auto",
    xlim: tuple[float, float] | None = None,
    mark_lines: bool = True,
    title: str | None = None,
    linewidth: float = 0.6,
) -> Axes:
    """Draw spectra one above the other, with the emission and absorption lines marked.

    Parameters
    ----------
    spectra : Spectrum, list of Spectrum or SpectrumSet
        Observed-frame spectra are shifted to the rest frame when ``rest`` is True. A
        SpectrumSet is drawn as stored (already rest frame and normalised).
    ax : matplotlib Axes, optional
        Axes to draw on; default a new :class:`matplotlib.figure.Figure`.
    labels : list of str, optional
        Text beside each spectrum (default its spec_id).
    colors : str or list of str, optional
        One colour for all, or one per spectrum.
    rest : bool, default True
    normalise : bool, default True
        Divide each spectrum by its median good flux in the 5075–5125 Å window (rest frame).
    offset : float or "auto", default "auto"
        Vertical step between spectra; "auto" stacks them without overlap.
    xlim : (float, float), optional
        Wavelength range (Å) to draw; default the union of the spectra.
    mark_lines : bool, default True
        Dotted verticals and names for the lines of :data:`agnlens.lines.LINES` in range.
    title : str, optional
    linewidth : float, default 0.6

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on (``ax.figure`` is the figure).
    """
    curves = _as_curves(spectra, rest)
    if not curves:
        raise ValueError("plot_spectra: no spectra to draw")
    if labels is not None and len(labels) != len(curves):
        raise ValueError(f"plot_spectra: {len(labels)} labels for {len(curves)} spectra; give one per spectrum")
    if colors is None or isinstance(colors, str):
        colors = [colors or "k"] * len(curves)
    elif len(colors) != len(curves):
        raise ValueError(f"plot_spectra: {len(colors)} colours for {len(curves)} spectra; give one per spectrum")
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(8.0, 1.2 + 1.3 * len(curves)), layout="constrained").add_subplot()
    lo = min(float(w[0]) for w, *_ in curves) if xlim is None else xlim[0]
    hi = max(float(w[-1]) for w, *_ in curves) if xlim is None else xlim[1]

    base = 0.0
    bottom, spans = np.inf, []
    for k, (wave, flux, good, name) in enumerate(curves):
        flux = np.where(good, flux, np.nan)
        if normalise and not isinstance(spectra, SpectrumSet):
            sel = good & (wave >= NORM_WINDOW[0]) & (wave <= NORM_WINDOW[1])
            scale = float(np.median(flux[sel])) if np.any(sel) else np.nan
            if np.isfinite(scale) and scale > 0:
                flux = flux / scale
            else:
                log.warning("plot_spectra: %s has no positive flux at 5075–5125 Å; drawn unnormalised", name)
        inside = (wave >= lo) & (wave <= hi) & np.isfinite(flux)
        if not np.any(inside):
            continue
        # stack by the continuum's range, so that one strong narrow line does not squash the rest
        y_lo, y_hi = np.nanpercentile(flux[inside], [1.0, 97.0])
        if offset == "auto":
            shift = base - y_lo if k else 0.0
        else:
            shift = float(offset) * k
        ax.plot(wave[inside], flux[inside] + shift, color=colors[k], lw=linewidth)
        text = labels[k] if labels is not None else name
        ax.text(hi, np.nanmedian(flux[inside][-50:]) + shift, plain(f" {text}"), fontsize=7, va="center", ha="left",
                color=colors[k], clip_on=False)
        base = y_hi + shift + 0.1 * max(y_hi - y_lo, 0.5)
        bottom = min(bottom, y_lo + shift)
        spans.append(y_hi - y_lo)

    if offset == "auto" and spans:
        # room for the top spectrum's lines; stronger lines of lower spectra may be cut
        span = float(np.median(spans))
        ax.set_ylim(bottom - 0.1 * span, base + 1.2 * span)
    if mark_lines:
        seen_y = ax.get_ylim()
        for j, line in enumerate(item for item in LINES if lo <= item.wavelength <= hi):
            colour = LINE_COLOURS.get(line.kind, "0.5")
            ax.axvline(line.wavelength, color=colour, lw=0.5, ls=":", alpha=0.8, zorder=0)
            ax.text(line.wavelength, 1.0 + 0.035 * (j % 2), line.label, transform=ax.get_xaxis_transform(),
                    rotation=90, fontsize=6, color=colour, ha="center", va="bottom")
        ax.set_ylim(seen_y)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("rest-frame wavelength (Å)" if rest else "wavelength (Å)")
    ax.set_ylabel("flux / flux(5100 Å) + offset" if normalise else "flux + offset")
    ax.set_yticks([])
    if title:
        ax.set_title(plain(title), fontsize=9, pad=28 if mark_lines else 6)
    return ax


def plot_class_saliency(saliency, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Class-averaged saliency spectrum: the mean map of each explained class against wavelength.

    Parameters
    ----------
    saliency : agnlens.explain.attribution.Saliency
        Maps of shape (n_spectra, n_pixels); grouped by their target class.
    ax : Axes, optional
    title : str, optional

    Returns
    -------
    Axes
    """
    from agnlens.classes import CLASS_COLOURS, CLASS_NAMES

    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(9.0, 3.4), layout="constrained").add_subplot()
    wl = saliency.wavelength
    for cls in saliency.classes:
        sel = np.asarray(saliency.target) == cls
        if sel.any():
            ax.plot(wl, saliency.values[sel].mean(axis=0), lw=0.8, color=CLASS_COLOURS.get(str(cls), "0.4"),
                    label=f"{CLASS_NAMES.get(str(cls), cls)} ({int(sel.sum())} maps)")
    ax.axhline(0.0, color="0.6", lw=0.5)
    for j, line in enumerate(item for item in LINES if wl[0] <= item.wavelength <= wl[-1]):
        colour = LINE_COLOURS.get(line.kind, "0.5")
        ax.axvline(line.wavelength, color=colour, lw=0.4, ls=":", alpha=0.8, zorder=0)
        ax.text(line.wavelength, 1.0 + 0.04 * (j % 2), line.label, transform=ax.get_xaxis_transform(),
                rotation=90, fontsize=6, color=colour, ha="center", va="bottom")
    ax.set_xlim(wl[0], wl[-1])
    ax.set_xlabel("rest-frame wavelength (Å)")
    ax.set_ylabel("mean ∂p(target)/∂flux")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title or "class-averaged saliency (mean over the explained spectra of each predicted class)",
                 fontsize=9, pad=26)
    return ax


def plot_thumbnails(spectra: SpectrumSet, titles: Sequence[str], *, n_col: int = 4) -> Any:
    """Small multiples: one small panel per spectrum with its title (e.g. label, prediction, probabilities).

    Parameters
    ----------
    spectra : SpectrumSet
    titles : sequence of str, one per spectrum
    n_col : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if len(titles) != len(spectra):
        raise ValueError(f"plot_thumbnails: {len(spectra)} spectra but {len(titles)} titles")
    n_row = max(1, int(np.ceil(len(spectra) / n_col)))
    fig = Figure(figsize=(12.0, 1.9 * n_row))
    fig.subplots_adjust(left=0.03, right=0.99, bottom=0.04, top=0.97, hspace=0.7, wspace=0.08)
    for k in range(len(spectra)):
        ax = fig.add_subplot(n_row, n_col, k + 1)
        good = ~spectra.mask[k]
        ax.plot(spectra.wavelength[good], spectra.flux[k][good], lw=0.5, color="0.2")
        ax.set_title(plain(titles[k]), fontsize=6.5)
        ax.tick_params(labelsize=5)
        ax.set_yticks([])
    return fig
