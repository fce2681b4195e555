"""Report sections of a results folder of spectra: what ``agnlens explain --out DIR`` writes, or any
folder holding a predictions table in the schema of ``agnlens classify``.

* :func:`folder_kind` — a study (``metrics.json``, ``agnlens demo``), explained spectra
  (``saliency/index.csv``) or predictions only (``predictions.csv``); the folder itself or its
  ``grid-<name>/`` sub-folders (one per model when spectra went to several grids).
* :func:`spectra_context` — the page of such a folder: the models that made it, one row per
  spectrum (catalogue label, prediction, probabilities with their uncertainty when present,
  applicability with reasons, physical measurements), the largest line contributions of each
  decision, the saliency gallery of these spectra and their disagreements with the physics
  baseline. The map (``embedding.csv``) is built by :func:`agnlens.report.build_report`.

Every reader returns None or an empty list for what is absent; the page then leaves the section out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.report._folder import ResultsFolderError, as_bool, class_name, embed_figure, finite_or_none, records_of
from agnlens.report._physics import MEASURE_HEADINGS, cell_text
from agnlens.report._tsne_map import map_context
from agnlens.results import ResultsFolder

#: What each kind of folder is, as the page says it.
FOLDER_KINDS = {
    "study": "a study: the SVM tuned, tested and explained on a labelled sample (agnlens demo)",
    "explain": "spectra classified and explained by a trained model (agnlens explain)",
    "predictions": "spectra classified by a trained model (a predictions table, as agnlens classify writes)",
}
#: Line contributions shown per spectrum, largest |contribution| first.
TOP_CONTRIBUTIONS = 3
#: Rows of the per-spectrum table shown at most.
MAX_ROWS = 500
_DTYPES = {c: str for c in ("spec_id", "label", "predicted_label", "target_class", "flags", "grid", "subtype",
                            "bpt_class", "baseline_label", "baseline_flags", "part", "kind", "reason")}


def parts(folder: Path) -> list[Path]:
    """The folders that hold results: ``folder`` itself, else its ``grid-<name>/`` sub-folders."""
    def has(p: Path) -> bool:
        r = ResultsFolder(p)
        return r.predictions.is_file() or r.saliency_index.is_file()

    if has(folder):
        return [folder]
    return sorted(p for p in folder.glob("grid-*") if p.is_dir() and has(p))


def folder_kind(folder: Path) -> str:
    """``"study"``, ``"explain"`` or ``"predictions"`` (keys of :data:`FOLDER_KINDS`).

    Raises
    ------
    ResultsFolderError
        If the folder holds none of ``metrics.json``, ``predictions.csv``, ``saliency/index.csv``.
    """
    if ResultsFolder(folder).metrics.is_file():
        return "study"
    found = parts(folder)
    if any(ResultsFolder(p).saliency_index.is_file() for p in found):
        return "explain"
    if found:
        return "predictions"
    raise ResultsFolderError(
        f"{folder}: not a results folder: no metrics.json (written by `agnlens demo --out DIR`) and no "
        "predictions.csv or saliency/index.csv (written by `agnlens explain SPECTRA --out DIR`); pass a folder "
        "one of them wrote"
    )


def read_table(path: Path) -> pd.DataFrame | None:
    """A CSV of the folder with its text columns as text ("" for empty), or None when absent/unreadable."""
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, dtype=_DTYPES, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return None
    for col in set(_DTYPES) & set(table.columns):
        table[col] = table[col].fillna("")
    return table


def read_predictions(folder: Path) -> pd.DataFrame | None:
    """``predictions.csv`` of every part of ``folder``, one table (None when there is none)."""
    tables = [t for t in (read_table(ResultsFolder(p).predictions) for p in parts(folder)) if t is not None]
    tables = [t for t in tables if {"spec_id", "predicted_label"} <= set(t.columns)]
    return pd.concat(tables, ignore_index=True) if tables else None


def classes_of(table: pd.DataFrame) -> list[str]:
    """The classes with a probability column ``p_<class>`` (not the ``p_<class>_err`` uncertainties)."""
    return [c[2:] for c in table.columns if c.startswith("p_") and not c.endswith("_err") and c != "p_target"]


def _saliency_method(results: ResultsFolder) -> str:
    """The attribution method of a folder's maps (``saliency/saliency.json``), "" when unknown."""
    import json

    from agnlens.explain.result import INFO_FILE

    try:
        return str(json.loads((results.saliency / INFO_FILE).read_text("utf-8")).get("method", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def flag_reasons(row: dict) -> str:
    """The flags of a prediction with what each means ("" when it is applicable)."""
    from agnlens.models.applicability import FLAG_MEANINGS, NOT_AGN_REASONS

    codes = [c for c in str(row.get("flags") or "").split(";") if c]
    reasons = [f"{c}: {FLAG_MEANINGS.get(c, c.replace('-', ' '))}" for c in codes]
    why = str(row.get("agn_check") or "")
    if "not-agn" in codes and why in NOT_AGN_REASONS:  # which of the two not-agn cases it is
        reasons[codes.index("not-agn")] = f"not-agn: {why}; the models only know AGN"
    z = finite_or_none(row.get("z_offset_kms"))
    if "redshift-offset" in codes and z is not None:
        reasons[codes.index("redshift-offset")] += f" ({z:+,.0f} km/s)"
    return "; ".join(reasons)


def _probability(row: dict, cls: str) -> str:
    p, err = finite_or_none(row.get(f"p_{cls}")), finite_or_none(row.get(f"p_{cls}_err"))
    if p is None:
        return "—"
    return f"{p:.2f}" + (f" ± {err:.2f}" if err is not None else "")


def table_context(table: pd.DataFrame, figure_ids: dict[str, str]) -> dict:
    """The per-spectrum table: one row per spectrum, its cells as text."""
    classes = classes_of(table)
    labelled = "label" in table and (table["label"] != "").any()
    several_grids = "grid" in table and table["grid"].nunique() > 1
    measures = [c for c in MEASURE_HEADINGS if c in table and c != "baseline_flags"]
    columns = (["spectrum"] + (["catalogue label"] if labelled else []) + ["predicted"]
               + [f"p({class_name(c)})" for c in classes] + ["applicable", "flags"]
               + (["grid"] if several_grids else []) + [MEASURE_HEADINGS[c] for c in measures])
    applicable = as_bool(table["applicable"]) if "applicable" in table else np.ones(len(table), bool)
    rows = []
    for rec, ok in zip(records_of(table.head(MAX_ROWS)), applicable):
        sid = str(rec["spec_id"])
        cells = ([rec.get("label") and class_name(rec["label"]) or "—"] if labelled else []) + [
            class_name(rec["predicted_label"])] + [_probability(rec, c) for c in classes] + [
            "yes" if ok else "no", flag_reasons(rec) or "—"] + (
            [str(rec.get("grid") or "—")] if several_grids else []) + [cell_text(rec, c) for c in measures]
        known = labelled and rec.get("label") in classes
        rows.append({"spec_id": sid, "figure": figure_ids.get(sid), "cells": cells, "flagged": not ok,
                     "contradicts": bool(known and rec["label"] != rec["predicted_label"])})
    return {"columns": columns, "rows": rows, "n": len(table), "n_shown": len(rows),
            "err": any(f"p_{c}_err" in table for c in classes)}


def contributions_context(folder: Path) -> list[dict]:
    """Per spectrum, the :data:`TOP_CONTRIBUTIONS` parts of the spectrum that moved its decision most
    (``line_contributions.csv``; empty when absent)."""
    out = []
    for part in parts(folder):
        table = read_table(ResultsFolder(part).line_contributions)
        if table is None or not {"spec_id", "part", "contribution"} <= set(table.columns) or not len(table):
            continue
        table = table.assign(_abs=pd.to_numeric(table["contribution"], errors="coerce").abs())
        for sid, rows in table.groupby("spec_id", sort=False):
            top = rows.sort_values("_abs", ascending=False, kind="stable").head(TOP_CONTRIBUTIONS)
            first = top.iloc[0]
            out.append({
                "spec_id": str(sid), "predicted": class_name(first.get("predicted_label", "")),
                "target": class_name(first.get("target_class", first.get("predicted_label", ""))),
                "parts": [{"part": str(r["part"]), "value": finite_or_none(r["contribution"]),
                           "share": finite_or_none(r["share"]) if "share" in r else None} for _, r in top.iterrows()],
            })
    return out


def gallery_context(folder: Path, table: pd.DataFrame | None, max_gallery: int) -> dict:
    """The saliency figures of these spectra (``figures/saliency/``, in the order of the index)."""
    items: list[dict[str, Any]] = []
    n_without = n_left_out = 0
    method = ""
    by_id = {} if table is None else {str(r["spec_id"]): r for r in records_of(table)}
    for k, part in enumerate(parts(folder)):
        results = ResultsFolder(part)
        index = read_table(results.saliency_index)
        if index is None or "spec_id" not in index:
            continue
        method = method or _saliency_method(results)
        for i, row in enumerate(records_of(index)):
            sid = str(row["spec_id"])
            path = results.saliency_figure(sid, i)
            if not path.is_file():
                n_without += 1
                continue
            if len(items) >= max_gallery:
                n_left_out += 1
                continue
            fig = embed_figure(folder, path.relative_to(folder), max_width=900)
            rec = by_id.get(sid, {})
            predicted = row.get("predicted_label", row.get("predicted", ""))
            items.append({"id": f"sal-{k}-{i}", "spec_id": sid, "figure": fig,
                          "label": class_name(row.get("label", "")), "predicted": class_name(predicted),
                          "target": class_name(row.get("target_class", "")),
                          "p": finite_or_none(row.get("p_target")), "note": flag_reasons(rec),
                          "grid": part.name.removeprefix("grid-") if part != folder else ""})
    return {"figures": items, "n_without_figure": n_without, "n_left_out": n_left_out, "method": method,
            "figure_ids": {it["spec_id"]: it["id"] for it in items if it["figure"] is not None}}


def baseline_context(table: pd.DataFrame | None, figure_ids: dict[str, str]) -> dict | None:
    """Where the SVM and the physics baseline disagree (None when the table has no baseline column)."""
    if table is None or "baseline_label" not in table:
        return None
    base = table["baseline_label"].astype(str)
    compared = base != ""
    disagree = compared & (base != table["predicted_label"].astype(str))
    rows = [{"spec_id": str(r["spec_id"]), "figure": figure_ids.get(str(r["spec_id"])),
             "label": class_name(r.get("label") or "—"), "predicted": class_name(r["predicted_label"]),
             "p": finite_or_none(r.get(f"p_{r['predicted_label']}")), "baseline": class_name(r["baseline_label"]),
             "subtype": str(r.get("subtype") or "—"), "fwhm": cell_text(r, "hb_fwhm_broad"), "flags": flag_reasons(r)}
            for r in records_of(table[disagree])]
    return {"n": len(table), "n_compared": int(compared.sum()), "n_agree": int((compared & ~disagree).sum()),
            "rows": rows}


def models_context(folder: Path) -> list[dict]:
    """The models that made the folder's results (``provenance.json``; empty when absent)."""
    path = ResultsFolder(folder).provenance
    try:
        prov = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        prov = {}
    out = []
    for m in prov.get("models") or [] if isinstance(prov, dict) else []:
        if not isinstance(m, dict):
            continue
        grid = m.get("model_grid") or {}
        out.append({"file": Path(str(m.get("model_file") or "default")).name, "sha256": m.get("model_sha256") or "",
                    "grid": grid.get("name", "") if isinstance(grid, dict) else str(grid),
                    "classes": ", ".join(class_name(c) for c in m.get("model_classes") or []),
                    "convention": m.get("model_convention") or "", "simulated": m.get("model_simulated_training_data")})
    return out


def spectra_context(folder: Path, kind: str, max_gallery: int) -> dict[str, Any]:
    """Context of the page of a folder of spectra (see the module docstring); the map is added by
    :func:`agnlens.report.build_report`."""
    table = read_predictions(folder)
    gallery = gallery_context(folder, table, max_gallery)
    ids = gallery["figure_ids"]
    counts: dict[str, int] = {}
    n_flagged = 0
    if table is not None:
        counts = {class_name(k): int(v) for k, v in table["predicted_label"].value_counts().items()}
        n_flagged = int((~as_bool(table["applicable"])).sum()) if "applicable" in table else 0
    models = models_context(folder)
    grids = set(table["grid"]) if table is not None and "grid" in table else set()
    if grids & {m["grid"] for m in models}:  # the models that classified a spectrum here, not every one resolved
        models = [m for m in models if m["grid"] in grids]
    return {
        "kind": kind, "kind_text": FOLDER_KINDS[kind],
        "parts": [p.name for p in parts(folder) if p != folder],
        "n_spectra": None if table is None else len(table), "counts": counts, "n_flagged": n_flagged,
        "models": models, "simulated_training": any(m["simulated"] for m in models) or not models,
        "table": None if table is None else table_context(table, ids),
        "contributions": contributions_context(folder),
        "gallery": gallery,
        "baseline": baseline_context(table, ids),
    }


def spectra_page(folder: Path, kind: str, max_gallery: int) -> dict:
    """The context of the page of a folder of spectra, with the map of the part (grid) that has the
    most explained spectra on one (each model has its own map)."""
    ctx = spectra_context(folder, kind, max_gallery)
    maps = [(p, e) for p in parts(folder) if (e := read_table(ResultsFolder(p).embedding)) is not None]
    ctx["map"], ctx["map_grid"], ctx["map_others"] = None, "", []
    if maps:
        def n_explained(item):
            return int(as_bool(item[1]["explained"]).sum()) if "explained" in item[1] else len(item[1])

        maps.sort(key=n_explained, reverse=True)
        part, embedding = maps[0]
        ctx["map"] = map_context({}, part, embedding, ctx["gallery"]["figure_ids"])
        ctx["map"]["n_explained"] = n_explained(maps[0])
        ctx["map_grid"] = part.name.removeprefix("grid-") if part != folder else ""
        ctx["map_others"] = [p.name for p, _ in maps[1:]]
    ctx["title"] = "agnlens report — " + ("explained spectra" if kind == "explain" else "classified spectra")
    ctx["simulated"] = False
    return ctx
