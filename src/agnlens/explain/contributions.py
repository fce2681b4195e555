"""Line contributions: an attribution summed over the lines and the continuum of each spectrum.

An attribution that adds up to the decision — Integrated Gradients, whose map sums to
p(x) − p(x′) — can be read part by part: the sum of the map over the pixels of a line is how much
that line moved the probability of the explained class. :func:`line_contributions` does that for
the disjoint parts of :func:`agnlens.lines.parts_on` (Balmer cores and broad wings, forbidden
lines, absorption features, Fe II blends and the continuum, which together hold every pixel once,
so a spectrum's contributions add up to the sum of its map); :func:`contribution_sentence` and
:func:`describe_contributions` put them in words ("Hα broad wings: +0.80 towards type 1").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agnlens.classes import CLASS_NAMES
from agnlens.explain.result import Saliency
from agnlens.lines import parts_on

#: Columns of ``line_contributions.csv`` (``docs/results-layout.md``).
CONTRIBUTION_COLUMNS = ["spec_id", "predicted_label", "target_class", "part", "kind", "lo", "hi", "contribution",
                        "share"]


def line_contributions(saliency: Saliency) -> pd.DataFrame:
    """Each spectrum's attribution summed over every part of the spectrum.

    Parameters
    ----------
    saliency : Saliency
        Best an attribution in probability units that adds up to the decision (the default
        ``"integrated-gradients"``: Σ over the parts = p(x) − p(baseline)); for ``"gradient"`` the
        sums are of ∂p/∂flux and have no such meaning.

    Returns
    -------
    pandas.DataFrame
        One row per spectrum and part (spectra in order, parts in the order of
        :func:`agnlens.lines.parts_on`, the continuum last), columns :data:`CONTRIBUTION_COLUMNS`:
        ``part`` (e.g. ``"Hβ broad wings"``), ``kind``, ``lo``/``hi`` (rest Å: the part's range;
        a part holds the pixels of its range that no earlier part holds), ``contribution`` (the
        signed sum of the attribution over the part: positive pushes towards ``target_class``)
        and ``share`` (the part's summed absolute attribution over the spectrum's; NaN for a map of zeros).
    """
    parts = parts_on(saliency.wavelength)
    masks = np.array([mask for _, mask in parts], dtype=float)  # (n_parts, n_pixels), disjoint
    values = saliency.values
    contribution = values @ masks.T  # (n_spectra, n_parts)
    magnitude = np.abs(values) @ masks.T
    total = magnitude.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, magnitude / total, np.nan)
    n, k = contribution.shape
    frame = pd.DataFrame({
        "spec_id": np.repeat(saliency.spec_id, k),
        "predicted_label": np.repeat(saliency.predicted, k),
        "target_class": np.repeat(saliency.target, k),
        "part": np.tile([p.name for p, _ in parts], n),
        "kind": np.tile([p.kind for p, _ in parts], n),
        "lo": np.tile([p.lo for p, _ in parts], n),
        "hi": np.tile([p.hi for p, _ in parts], n),
        "contribution": contribution.ravel(),
        "share": share.ravel(),
    })
    return frame[CONTRIBUTION_COLUMNS]


def contribution_sentence(part: str, contribution: float, target_class: str) -> str:
    """One part's contribution in words: ``"Hα broad wings: +0.80 towards type 1"`` (or
    ``"[O III] 5008: −0.12 against type 1"``)."""
    target = CLASS_NAMES.get(str(target_class), str(target_class))
    sign = "+" if contribution >= 0 else "−"
    return f"{part}: {sign}{abs(contribution):.2f} {'towards' if contribution >= 0 else 'against'} {target}"


def describe_contributions(table: pd.DataFrame, spec_id: str, top: int = 3) -> str:
    """The ``top`` largest contributions of one spectrum of a :func:`line_contributions` table, as
    one line: ``"Hα broad wings: +0.80 towards type 1; Hβ broad wings: +0.15 towards type 1; ..."``.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`line_contributions` (or ``line_contributions.csv``).
    spec_id : str
    top : int
        Parts shown, largest absolute contribution first.
    """
    rows = table[table["spec_id"].astype(str) == str(spec_id)]
    if rows.empty:
        raise KeyError(f"spec_id {spec_id!r} is not in the line-contribution table ({table['spec_id'].nunique()} "
                       "spectra)")
    rows = rows.loc[rows["contribution"].abs().sort_values(ascending=False, kind="stable").index[: max(1, int(top))]]
    return "; ".join(contribution_sentence(r.part, r.contribution, r.target_class) for r in rows.itertuples())


__all__ = ["CONTRIBUTION_COLUMNS", "contribution_sentence", "describe_contributions", "line_contributions"]
