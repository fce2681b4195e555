"""Real spectra beside the study: SVM and physics baseline side by side, written into a results folder.

:func:`real_section` classifies labelled real spectra with the study's model, measures them with
the physics baseline (:func:`agnlens.models.baseline.measure`), explains the spectra where the two
disagree (or where the SVM contradicts the label), tests centre vs wings on the real type 1 with
their own widths (:func:`agnlens.explain.wingtest.centre_wings_test`), and writes

* ``real/predictions.csv`` — one row per spectrum: ``spec_id, label, predicted_label, p_<class>``, the
  measurement columns (:data:`agnlens.models.baseline.MEASURE_COLUMNS`) and, when the input table
  carries them, the applicability columns ``applicable, flags, z_offset_kms``;
* ``real/figures/<spec_id>.png`` — the saliency figures of the disagreements (at most
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

from agnlens.atomic import atomic_path, write_csv
from agnlens.results import ResultsFolder, safe_name
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

__all__ = ["TRUST_COLUMNS", "measure_inputs", "real_section"]

#: Columns of the applicability check (``classify``'s trust stage), copied when present.
TRUST_COLUMNS = ("applicable", "flags", "z_offset_kms")
#: Most thumbnails in the one small-multiples figure.
MAX_THUMBNAILS = 24
#: Most saliency figures of disagreements (label contradictions first).
MAX_FIGURES = 12


def real_section(
    out: str | Path,
    spectra: SpectrumSet,
    model,
    *,
    measure_spectra: SpectrumSet | None = None,
    trust: pd.DataFrame | None = None,
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
        The study's three-class model (``predict_proba`` on flux arrays, ``classes_``).
    measure_spectra : SpectrumSet, optional
        The same spectra on a grid reaching Hα (``balmer``), for the Hα measurements; default:
        ``spectra`` (Hβ only on the ``paper`` grid). Rows are matched by ``spec_id``.
    trust : DataFrame, optional
        ``spec_id`` with ``applicable``, ``flags``, ``z_offset_kms`` (the classify stage's
        applicability check); default: computed here by :func:`agnlens.stages.classify`.
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
    from agnlens.explain.saliency import saliency
    from agnlens.explain.wingtest import centre_wings_test
    from agnlens.models.baseline import measure

    results = ResultsFolder(out)  # absolute once: the names below are joined onto it, never twice
    folder = results.real.root
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    X = np.asarray(spectra.flux, dtype=np.float64)
    proba = model.predict_proba(X)
    classes = [str(c) for c in model.classes_]
    predicted = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)].astype(str)
    table = pd.DataFrame({"spec_id": spectra.spec_id, "label": spectra.labels, "predicted_label": predicted})
    for k, c in enumerate(classes):
        table[f"p_{c}"] = proba[:, k]
    target = spectra if measure_spectra is None else measure_spectra
    measurements = measure(target)
    measured = measurements.set_index("spec_id").reindex(table["spec_id"])
    table = table.join(measured.reset_index(drop=True))
    baseline = table["baseline_label"].fillna("").to_numpy(dtype=str)
    agree = pd.array(predicted == baseline, dtype="boolean")
    agree[baseline == ""] = pd.NA
    table["agrees_with_baseline"] = agree
    if trust is None:
        from agnlens.stages import classify

        trust = classify(model, spectra, measurements=measurements)  # not-agn from the Hα grid too
    if "spec_id" in trust:
        cols = [c for c in TRUST_COLUMNS if c in trust]
        table = table.merge(trust[["spec_id", *cols]].drop_duplicates("spec_id"), on="spec_id", how="left")

    # explain where SVM and baseline disagree, or where the SVM contradicts a class label
    labelled = np.isin(table["label"], classes)
    disagree = (baseline != "") & (predicted != baseline)
    wrong = labelled & (predicted != table["label"].to_numpy(dtype=str))
    # contradictions of the label first, then disagreements with the baseline; at most MAX_FIGURES
    # figures (each costs more than classifying and measuring a spectrum)
    explain = np.concatenate([np.flatnonzero(wrong), np.flatnonzero(disagree & ~wrong)])[:max_figures]
    figures = np.full(len(table), "", dtype=object)
    sal_all = saliency(model, spectra, method="gradient")  # every map: cheap (one gradient each)
    sal_all.reason = np.where(wrong, "SVM contradicts the catalogue",
                              np.where(disagree, "SVM and baseline disagree", ""))
    if explain.size:
        from agnlens.plot.saliency import attribution_label, shared_limit, shared_scale_note
        from agnlens.plot.save import DPI, save_figure

        vmax = shared_limit(sal_all.values[explain])
        for i in explain:
            rel = f"real/figures/{safe_name(table['spec_id'].iloc[i])}.png"
            label = f"{attribution_label(sal_all.method, sal_all.target[i])}\n{shared_scale_note(explain.size)}"
            save_figure(sal_all.plot(int(i), vmax=vmax, colorbar_label=label).figure, results / rel,
                        format=figure_format, dpi=DPI if dpi is None else dpi)
            figures[i] = rel
    table["saliency_figure"] = figures
    from agnlens.plot.spectra import plot_thumbnails

    order = np.argsort(~table["saliency_figure"].astype(bool).to_numpy(), kind="stable")[:MAX_THUMBNAILS]
    titles = [f"{table['spec_id'].iloc[i]}  {table['label'].iloc[i]} → {table['predicted_label'].iloc[i]}\n"
              + " ".join(f"p({c}) {table[f'p_{c}'].iloc[i]:.2f}" for c in classes) for i in order]
    _save(plot_thumbnails(spectra[order], titles), results.real.figure("thumbnails"), dpi=80)
    write_csv(results.real.predictions, table, float_format="%.6g")

    type1 = spectra.labels == "type1"
    cw = centre_wings_test(sal_all[np.flatnonzero(type1)] if type1.any() else sal_all[:0],
                           table[["spec_id", "hb_fwhm_broad", "hb_fwhm_narrow"]], seed=seed) if type1.any() else None
    per_label = []
    for lab in [c for c in ("type1", "type2", "intermediate") if (table["label"] == c).any()] + sorted(
            set(table["label"]) - {"type1", "type2", "intermediate"}):
        sub = table[table["label"] == lab]
        per_label.append({
            "label": lab or "unlabelled", "n": int(len(sub)),
            "svm": {c: int((sub["predicted_label"] == c).sum()) for c in classes},
            "baseline": {c: int((sub["baseline_label"] == c).sum()) for c in classes},
            "svm_correct": int((sub["predicted_label"] == lab).sum()) if lab in classes else None,
            "baseline_correct": int((sub["baseline_label"] == lab).sum()) if lab in classes else None,
            "agree": int(sub["agrees_with_baseline"].fillna(False).sum()),
        })
    return {
        "n_spectra": int(len(table)), "source": source, "classes": classes, "per_label": per_label,
        "n_disagree": int(disagree.sum()), "n_svm_wrong": int(wrong.sum()), "n_figures": int(explain.size),
        "n_explainable": int((disagree | wrong).sum()),
        "trust_columns": [c for c in TRUST_COLUMNS if c in table],
        "measure_grid": str(target.grid), "centre_wings_type1": None if cw is None else cw.summary,
    }


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
    from agnlens.stages.classify import join_measurements

    spectra, _ = read_inputs(inputs, grid=grid)  # rejections were reported by the classify pass
    return join_measurements(predictions, measure(spectra))




def _save(fig, path: Path, dpi: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
