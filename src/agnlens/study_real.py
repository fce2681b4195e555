"""Real spectra beside the study: SVM and physics baseline side by side, written into a results folder.

:func:`real_section` runs the study's verbs on labelled real spectra: the physics baseline measures
them (:func:`agnlens.models.baseline.measure`, once), :func:`agnlens.stages.classify` classifies them
with every applicability check (its ``not-agn`` check reading those measurements, so on a grid
without Hα it sees [N II]/Hα of the ``balmer`` grid), the explain stage computes every spectrum's map
(:func:`agnlens.stages.explain_saliency`) and draws the figures of the disagreements
(:func:`agnlens.stages.explanations.write_saliency_figures`), and the type 1 are tested for centre vs
wings with their own widths (:func:`agnlens.explain.wingtest.centre_wings_test`). It writes, through
:class:`~agnlens.results.ResultsFolder` (its ``real`` sub-folder):

* ``real/predictions.csv`` — the predictions table of ``agnlens classify --measure`` (the columns
  of :func:`agnlens.stages.classify`, then the measurement columns
  :data:`agnlens.models.baseline.MEASURE_COLUMNS` and ``agrees_with_baseline``) and
  ``saliency_figure`` (relative to the results folder, "" when none);
* ``real/figures/saliency/<spec_id>.png`` — the saliency figures of the disagreements (at most
  :data:`MAX_FIGURES`, label contradictions first);
* ``real/figures/thumbnails.png`` — small spectra with their probabilities;

and returns the ``real`` entry of ``metrics.json``. ``build_report`` shows it as the real-data
section. No score here is simulated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from agnlens.classes import CLASSES
from agnlens.results import ResultsFolder
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

__all__ = ["TRUST_COLUMNS", "measure_inputs", "real_section"]

#: Columns of the applicability check (``classify``'s trust stage) the report reads.
TRUST_COLUMNS = ("applicable", "flags", "z_offset_kms")
#: Most thumbnails in the one small-multiples figure.
MAX_THUMBNAILS = 24
#: Most saliency figures of disagreements (label contradictions first).
MAX_FIGURES = 12
#: Why a real spectrum's figure was drawn (its title says it).
WHY = {"wrong": "SVM contradicts the catalogue", "disagree": "SVM and baseline disagree"}


def real_section(
    out: str | Path,
    spectra: SpectrumSet,
    model,
    *,
    measure_spectra: SpectrumSet | None = None,
    seed: int = 0,
    source: str = "",
    max_figures: int = MAX_FIGURES,
    figure_format: str = "png",
    dpi: float | None = None,
) -> dict:
    """Classify, measure and explain labelled real spectra; write ``out/real/``.

    Parameters
    ----------
    out : path-like
        The results folder.
    spectra : SpectrumSet
        Real spectra on the model's grid, with labels (``""`` when unknown).
    model : fitted classifier
        The study's three-class model (a SpectrumSVC: ``predict_proba``, ``classes_``, exact gradients).
    measure_spectra : SpectrumSet, optional
        The same spectra on a grid reaching Hα (``balmer``), for the Hα measurements and the
        ``not-agn`` check; default: ``spectra`` (Hβ only on the ``paper`` grid). Rows are matched by
        ``spec_id``.
    seed : int
        Seed of the null test.
    source : str
        Where the spectra came from (shown in the report).
    max_figures : int
        At most this many saliency figures: spectra whose label the SVM contradicts first, then
        those where SVM and baseline disagree.
    figure_format, dpi
        As in :func:`agnlens.plot.save.save_figure` (default its ``DPI``); the saliency figures
        share one colour scale.

    Returns
    -------
    dict
        The ``real`` entry of ``metrics.json``: counts, per-label agreement, centre vs wings.
    """
    from agnlens.atomic import write_csv
    from agnlens.explain.wingtest import centre_wings_test
    from agnlens.models.applicability import reason
    from agnlens.models.baseline import measure
    from agnlens.stages import classify, explain_saliency
    from agnlens.stages.explanations import write_saliency_figures
    from agnlens.stages.predictions import join_measurements

    results = ResultsFolder(out)  # absolute once: the names below are joined onto it, never twice
    folder = results.real
    target = spectra if measure_spectra is None else measure_spectra
    measurements = measure(target)  # once: the not-agn check and the measurement columns share it
    table = join_measurements(classify(model, spectra, measurements=measurements), measurements)
    classes = [str(c) for c in model.classes_]
    predicted = table["predicted_label"].to_numpy(dtype=str)
    baseline = table["baseline_label"].fillna("").to_numpy(dtype=str)

    # explain where SVM and baseline disagree, or where the SVM contradicts a class label
    labelled = np.isin(table["label"], classes)
    disagree = (baseline != "") & (predicted != baseline)
    wrong = labelled & (predicted != table["label"].to_numpy(dtype=str))
    # contradictions of the label first, then disagreements with the baseline; at most max_figures
    # figures (each costs more than classifying and measuring a spectrum)
    rows = np.concatenate([np.flatnonzero(wrong), np.flatnonzero(disagree & ~wrong)])[:max_figures]
    sal = explain_saliency(model, spectra, method="gradient")  # every map: cheap (one gradient each)
    sal.reason = np.where(wrong, WHY["wrong"], np.where(disagree, WHY["disagree"], ""))
    figures = np.full(len(table), "", dtype=object)
    if rows.size:
        flags = table["flags"].fillna("").astype(str)
        notes = [f"not applicable: {reason(f)}" if f else None for f in flags]
        names = write_saliency_figures(sal, folder, rows, notes=notes, figure_format=figure_format, dpi=dpi)
        figures[rows] = [results.relative(folder / name) for name in names]
    table["saliency_figure"] = figures
    _thumbnails(spectra, table, classes, folder, figure_format)
    write_csv(folder.predictions, table, float_format="%.6g")

    type1 = np.flatnonzero(spectra.labels == "type1")
    cw = (centre_wings_test(sal[type1], table[["spec_id", "hb_fwhm_broad", "hb_fwhm_narrow"]], seed=seed)
          if type1.size else None)
    return {
        "n_spectra": int(len(table)), "source": source, "classes": classes,
        "per_label": _per_label(table, classes),
        "n_disagree": int(disagree.sum()), "n_svm_wrong": int(wrong.sum()), "n_figures": int(rows.size),
        "n_explainable": int((disagree | wrong).sum()),
        "trust_columns": [c for c in TRUST_COLUMNS if c in table],
        "measure_grid": str(target.grid), "centre_wings_type1": None if cw is None else cw.summary,
    }


def _per_label(table: pd.DataFrame, classes: list[str]) -> list[dict]:
    """SVM and baseline counts per catalogue label (the classes first, then any other label)."""
    labels = table["label"].fillna("").astype(str)
    out = []
    for lab in [c for c in CLASSES if (labels == c).any()] + sorted(set(labels) - set(CLASSES)):
        sub = table[labels == lab]
        out.append({
            "label": lab or "unlabelled", "n": int(len(sub)),
            "svm": {c: int((sub["predicted_label"] == c).sum()) for c in classes},
            "baseline": {c: int((sub["baseline_label"] == c).sum()) for c in classes},
            "svm_correct": int((sub["predicted_label"] == lab).sum()) if lab in classes else None,
            "baseline_correct": int((sub["baseline_label"] == lab).sum()) if lab in classes else None,
            "agree": int(sub["agrees_with_baseline"].fillna(False).sum()),
        })
    return out


def _thumbnails(spectra: SpectrumSet, table: pd.DataFrame, classes: list[str], folder: ResultsFolder,
                figure_format: str) -> None:
    """``figures/thumbnails.png``: the spectra with a saliency figure first, each titled with its
    label, prediction and probabilities (at most :data:`MAX_THUMBNAILS`)."""
    from agnlens.plot.save import save_figure
    from agnlens.plot.spectra import plot_thumbnails

    order = np.argsort(~table["saliency_figure"].astype(bool).to_numpy(), kind="stable")[:MAX_THUMBNAILS]
    titles = [f"{table['spec_id'].iloc[i]}  {table['label'].iloc[i]} → {table['predicted_label'].iloc[i]}\n"
              + " ".join(f"p({c}) {table[f'p_{c}'].iloc[i]:.2f}" for c in classes) for i in order]
    save_figure(plot_thumbnails(spectra[order], titles), folder.figure("thumbnails"), format=figure_format, dpi=80)


def measure_inputs(inputs, predictions: pd.DataFrame, *, grid: str = "balmer") -> pd.DataFrame:
    """``predictions`` with the physics baseline's measurements beside each row (``classify --measure``).

    Parameters
    ----------
    inputs : iterable of path-like
        The FITS files, folders, globs or stores that were classified. Files are read again onto
        ``grid`` (default ``balmer``, which reaches Hα); a store is measured on its own grid.
    predictions : DataFrame
        ``spec_id`` and ``predicted_label``, one row per classified spectrum.
    grid : str

    Returns
    -------
    DataFrame
        ``predictions`` with :data:`agnlens.models.baseline.MEASURE_COLUMNS` appended (matched by
        ``spec_id``; NaN / "" for a spectrum the baseline could not read), including
        ``agrees_with_baseline``.
    """
    from agnlens.models.baseline import measure
    from agnlens.stages import read_inputs
    from agnlens.stages.predictions import join_measurements

    spectra, _ = read_inputs(inputs, grid=grid)  # rejections were reported by the classify pass
    return join_measurements(predictions, measure(spectra))
