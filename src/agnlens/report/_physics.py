"""Report sections on the physics beside the predictions and on real spectra.

* :func:`physics_context` — the baseline's rules, the measurements of the explained spectra and
  their agreement with the SVM, centre vs wings with each object's widths and its null test, the
  class-averaged saliency, the t-SNE map coloured by physical quantities, and the misclassified
  intermediates by subtype (``measurements.csv``, ``centre_wings_test.csv``, figures).
* :func:`real_context` — the real-data section (``real/predictions.csv``, ``real/figures/``):
  SVM vs baseline per label, flagged predictions with their reasons, disagreements with their
  saliency figures, thumbnails, the measurements table, centre vs wings on the real type 1.

Both read only files of the results folder and ``metrics.json``; what is missing is "not computed".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.classes import CLASSES
from agnlens.results import ResultsFolder

#: Columns of the applicability check written by ``classify`` (shown when present).
TRUST_COLUMNS = ("applicable", "flags", "z_offset_kms")
#: Measurement columns shown in the tables, with their headings.
MEASURE_HEADINGS = {
    "hb_fwhm_broad": "FWHM Hβ broad (km/s)", "ha_fwhm_broad": "FWHM Hα broad (km/s)",
    "r_oiii_hb": "[O III]/Hβ total", "oiii_hb_narrow": "[O III]/Hβ narrow", "nii_ha": "[N II]/Hα",
    "balmer_decrement_narrow": "Hα/Hβ narrow", "bpt_class": "BPT", "subtype": "subtype",
    "baseline_label": "baseline", "baseline_flags": "baseline flags",
}
_MAX_ROWS = 120
_DTYPES = {c: str for c in ("spec_id", "label", "predicted_label", "subtype", "bpt_class", "baseline_label",
                            "baseline_flags", "flags", "saliency_figure")}


def _read(folder: Path, name: str | Path) -> pd.DataFrame | None:
    path = folder / name
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, dtype=_DTYPES)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return None


def cell_text(row: dict, col: str) -> str:
    from agnlens.report._folder import class_name, fmt

    v = row.get(col)
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    if col in ("hb_fwhm_broad", "ha_fwhm_broad"):
        err = row.get(col + "_err")
        text = f"{float(v):,.0f}"
        return text + (f" ± {float(err):,.0f}" if isinstance(err, float) and np.isfinite(err) else "")
    if col in ("baseline_label", "label", "predicted_label"):
        return class_name(v)
    if isinstance(v, (float, np.floating)):
        return fmt(v, 2)
    return str(v)


def _measure_rows(table: pd.DataFrame, first: list[str]) -> dict:
    from agnlens.report._folder import records_of

    cols = [c for c in first if c in table] + [c for c in MEASURE_HEADINGS if c in table]
    heads = {"spec_id": "spectrum", "label": "label", "predicted_label": "SVM", "p_max": "p(SVM)",
             "agrees_with_baseline": "agrees"} | MEASURE_HEADINGS
    rows = [[cell_text(r, c) for c in cols] for r in records_of(table.head(_MAX_ROWS))]
    return {"columns": [heads.get(c, c) for c in cols], "rows": rows, "n": len(table),
            "n_shown": min(len(table), _MAX_ROWS)}


def physics_context(metrics: dict, folder: Path) -> dict:
    """Context of the physics section (see the module docstring)."""
    from agnlens.models.baseline import rules
    from agnlens.report._folder import embed_figure, section_of

    s = section_of(metrics, "saliency")
    measured = _read(folder, ResultsFolder(folder).measurements)
    ctx: dict[str, Any] = {"rules": rules(), "measurements": None, "agreement": s.get("baseline_agreement"),
                           "cw_test": s.get("centre_wings_test"),
                           "class_saliency": embed_figure(folder, ResultsFolder(folder).figure("class_saliency")),
                           "tsne_physics": embed_figure(folder, ResultsFolder(folder).figure("tsne_physics"),
                                                   max_width=1000),
                           "by_subtype": None}
    if measured is not None and len(measured):
        ctx["measurements"] = _measure_rows(measured, ["spec_id", "agrees_with_baseline"])
    sub = section_of(metrics, "multiclass").get("intermediate_by_subtype")
    if isinstance(sub, dict) and sub:
        classes = list(CLASSES)
        ctx["by_subtype"] = {"classes": classes, "rows": [{"subtype": k, "n": sum(v.values()),
                                                           "cells": [v.get(c, 0) for c in classes]}
                                                          for k, v in sub.items()]}
    ctx["computed"] = any(ctx[k] for k in ("measurements", "cw_test", "class_saliency", "tsne_physics", "by_subtype"))
    return ctx


def real_context(metrics: dict, folder: Path) -> dict:
    """Context of the real-data section (see the module docstring)."""
    from agnlens.report._folder import as_bool, embed_figure

    r = metrics.get("real")
    table = _read(folder, ResultsFolder(folder).real.predictions)
    ctx: dict[str, Any] = {"computed": isinstance(r, dict) and table is not None}
    if not isinstance(r, dict) or table is None:
        return ctx
    classes = [str(c) for c in r.get("classes") or []]
    pcols = [f"p_{c}" for c in classes if f"p_{c}" in table]
    table = table.assign(p_max=table[pcols].max(axis=1) if pcols else np.nan)
    ctx.update(source=r.get("source") or "", n=len(table), per_label=r.get("per_label") or [], classes=classes,
               cw=r.get("centre_wings_type1"), measure_grid=r.get("measure_grid"),
               thumbnails=embed_figure(folder, ResultsFolder(folder).real.figure("thumbnails"), max_width=1000))
    trust = [c for c in TRUST_COLUMNS if c in table]
    ctx["trust_computed"] = len(trust) == len(TRUST_COLUMNS)
    flagged = []
    for rec in table.to_dict(orient="records"):
        reasons = []
        if ctx["trust_computed"]:
            if not as_bool(pd.Series([rec.get("applicable")]))[0]:
                reasons.append("not applicable")
            if isinstance(rec.get("flags"), str) and rec["flags"]:
                reasons.append(rec["flags"].replace(";", ", "))
            z = rec.get("z_offset_kms")
            if isinstance(z, (int, float)) and np.isfinite(z) and abs(z) > 500:
                reasons.append(f"narrow lines at {z:+,.0f} km/s from the catalogue redshift")
        if isinstance(rec.get("baseline_flags"), str) and rec["baseline_flags"]:
            reasons.append("baseline: " + rec["baseline_flags"].replace(";", ", "))
        if reasons:
            flagged.append({"spec_id": str(rec["spec_id"]), "label": str(rec.get("label", "")),
                            "predicted": str(rec.get("predicted_label", "")), "reasons": "; ".join(reasons)})
    ctx["flagged"] = flagged
    disagreements = []
    if "saliency_figure" in table:
        for rec in table.to_dict(orient="records"):
            rel = rec.get("saliency_figure")
            if isinstance(rel, str) and rel:
                disagreements.append({"spec_id": str(rec["spec_id"]), "label": str(rec.get("label", "")),
                                      "predicted": str(rec.get("predicted_label", "")),
                                      "baseline": str(rec.get("baseline_label", "") or ""),
                                      "subtype": str(rec.get("subtype", "") or ""),
                                      "p": rec.get("p_max"), "figure": embed_figure(folder, rel, max_width=700)})
    ctx["disagreements"] = disagreements
    ctx["n_explainable"] = int(r.get("n_explainable") or len(disagreements))
    ctx["measurements"] = _measure_rows(table, ["spec_id", "label", "predicted_label", "p_max", "agrees_with_baseline"])
    return ctx
