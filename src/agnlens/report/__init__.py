"""One self-contained HTML report from any results folder (see ``docs/results-layout.md``).

:func:`build_report` reads only the files of the results folder — a study's ``metrics.json``, or the
predictions table of explained or classified spectra (:mod:`agnlens.report._spectra`), the CSV
tables and the PNG figures — and writes ``report.html`` beside them, atomically. The page has
no external references: figures are embedded as ``data:`` URIs (downscaled), the CSS and the
JavaScript of the interactive t-SNE map are inlined, and the map's points travel as JSON inside a
``<script type="application/json">`` block. All text goes through Jinja2 with autoescaping on.

A study's page has the study's sections, a section whose files are missing shown with a short
"not computed" note; the page of a folder of spectra has the sections its files make (the
spectra, their contributions, gallery, map, baseline) and leaves the others out.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.classes import TASKS
from agnlens.report._folder import (
    ResultsFolderError,
    as_bool,
    class_name,
    embed_figure,
    finite_or_none,
    fmt,
    fmt_ci,
    fmt_g,
    fmt_s,
    opposite_signs,
    read_frame,
    read_metrics,
    records_of,
    section_of,
    tuning_figure,
)
from agnlens.report._tsne_map import map_context
from agnlens.results import ResultsFolder

logger = logging.getLogger(__name__)

__all__ = ["ResultsFolderError", "build_report"]

#: Section ids of a study's page, in order (the browser test checks each of them).
SECTIONS = ("summary", "data-and-split", "tuning", "results", "saliency", "lines", "physics", "map", "real",
            "provenance")
TASK_TITLES = {"binary": "Two classes: type 1 vs type 2", "multiclass": "Three classes: type 1, type 2, intermediate"}



# ----------------------------------------------------------------------------------------------
# section contexts


def _task_context(metrics: dict, task: str, folder: Path, tuning: pd.DataFrame | None) -> dict:
    m = metrics.get(task)
    ctx: dict[str, Any] = {"name": task, "title": TASK_TITLES[task], "computed": isinstance(m, dict), "n_boot": None}
    if not isinstance(m, dict):
        return ctx
    classes = [str(c) for c in m.get("classes") or []]
    test = m.get("test") or {}
    val = m.get("validation") or {}
    rows = []
    for key, label in (("f1", "F1 (macro)"), ("precision", "precision (macro)"), ("recall", "recall (macro)"),
                       ("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC AUC")):
        if key in test or key in val:
            rows.append({"name": label, "test": test.get(key), "ci": fmt_ci(test.get(f"{key}_ci95")),
                         "validation": val.get(key)})
    per_class = []
    for cls, vals in (test.get("per_class") or {}).items():
        if isinstance(vals, dict):
            per_class.append({"cls": class_name(cls), "precision": vals.get("precision"),
                              "recall": vals.get("recall"), "f1": vals.get("f1", vals.get("f1-score")),
                              "support": vals.get("support")})
    cm = test.get("confusion_matrix")
    confusion = None
    if isinstance(cm, list) and cm and all(isinstance(r, list) for r in cm):
        arr = np.asarray(cm, dtype=float)
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1]:
            names = classes if len(classes) == arr.shape[0] else [str(i) for i in range(arr.shape[0])]
            row_sum = arr.sum(axis=1, keepdims=True)
            share = np.divide(arr, row_sum, out=np.zeros_like(arr), where=row_sum > 0)
            confusion = {"classes": [class_name(c) for c in names],
                         "rows": [[{"n": int(arr[i, j]), "share": 100 * share[i, j], "diag": i == j}
                                   for j in range(arr.shape[1])] for i in range(arr.shape[0])]}
    best = m.get("best_params") or {}
    ctx.update(
        classes=[class_name(c) for c in classes],
        best_params=[{"name": k, "value": fmt_g(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                      else str(v)} for k, v in best.items() if v is not None],
        validation_f1=val.get("f1"),
        test_f1=test.get("f1"),
        test_f1_ci=fmt_ci(test.get("f1_ci95")),
        test_accuracy=test.get("accuracy"),
        rows=rows,
        per_class=per_class,
        confusion=confusion,
        confusion_figure=embed_figure(folder, ResultsFolder(folder).figure(f"confusion_{task}"), max_width=520),
        tuning_s=m.get("tuning_s"),
        n_boot=test.get("n_boot"),
        tuning=None,
    )
    if tuning is not None and len(tuning):
        cols = [c for c in ("kernel", "C", "gamma", "degree", "class_weight", "validation_f1", "fit_s") if c in tuning]
        df = tuning.copy()
        if "validation_f1" in df:
            df = df.sort_values("validation_f1", ascending=False, kind="stable")
        best_mask = as_bool(df["best"]) if "best" in df else np.zeros(len(df), bool)
        shown = df.head(12)
        table_rows = []
        for (_, row), is_best in zip(shown.iterrows(), best_mask[: len(shown)]):
            cells = []
            for c in cols:
                v = row[c]
                if c == "validation_f1":
                    cells.append(fmt(v))
                elif c == "fit_s":
                    cells.append(fmt_s(v))
                elif c in ("C", "gamma", "degree"):
                    cells.append(fmt_g(v))
                elif c == "class_weight":  # empty means unweighted in the search table
                    cells.append("none" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
                else:
                    cells.append("—" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
            table_rows.append({"cells": cells, "best": bool(is_best)})
        # the pipeline's own, if it wrote one
        figure = embed_figure(folder, ResultsFolder(folder).figure(f"tuning_{task}"))
        if figure is None and {"kernel", "C", "validation_f1"} <= set(tuning.columns):
            try:
                figure = tuning_figure(tuning, TASK_TITLES[task])
            except (ValueError, TypeError) as exc:
                logger.warning("report: tuning figure for %s failed (%s)", task, exc)
        ctx["tuning"] = {
            "columns": [{"C": "C", "gamma": "γ", "class_weight": "class weights", "validation_f1": "validation F1",
                         "fit_s": "fit time"}.get(c, c) for c in cols],
            "score_col": cols.index("validation_f1") if "validation_f1" in cols else -1,
            "rows": table_rows,
            "n_total": len(tuning),
            "kernels": sorted({str(k) for k in tuning["kernel"]}) if "kernel" in tuning else [],
            "figure": figure,
        }
    return ctx


def _saliency_context(metrics: dict, folder: Path, embedding: pd.DataFrame | None, max_per_reason: int) -> dict:
    s = section_of(metrics, "saliency")
    index = read_frame(folder, ResultsFolder(folder).saliency_index)
    figure_of: dict[str, str] = {}
    if embedding is not None and {"spec_id", "saliency_figure"} <= set(embedding.columns):
        for sid, rel in zip(embedding["spec_id"], embedding["saliency_figure"]):
            if isinstance(rel, str) and rel:
                figure_of[str(sid)] = rel
    groups: dict[str, list[dict[str, Any]]] = {"misclassified": [], "random": []}
    n_left_out = {"misclassified": 0, "random": 0}
    figure_ids: dict[str, str] = {}
    if index is not None and "spec_id" in index:
        for i, row in enumerate(index.to_dict(orient="records")):
            reason = str(row.get("reason", "random"))
            reason = reason if reason in groups else "random"
            if len(groups[reason]) >= max_per_reason:
                n_left_out[reason] += 1
                continue
            sid = str(row["spec_id"])
            rel = figure_of.get(sid) or ResultsFolder.saliency_figure_name(sid)
            fig = embed_figure(folder, rel, max_width=900)
            fig_id = f"sal-{i}"
            if fig is not None:
                figure_ids[sid] = fig_id
            groups[reason].append({
                "id": fig_id, "spec_id": sid, "label": class_name(row.get("label", "")),
                "predicted": class_name(row.get("predicted_label", "")),
                "target": class_name(row.get("target_class", row.get("predicted_label", ""))),
                "figure": fig, "rel": rel,
            })
    return {
        "computed": bool(s) or index is not None,
        "n_maps": s.get("n_maps"),
        "method": s.get("method"),
        "target": s.get("target", "predicted class"),
        "max_rel_error": s.get("max_rel_error_vs_finite_differences"),
        "mean_rel_error": s.get("mean_rel_error_vs_finite_differences"),
        "n_misclassified": s.get("n_misclassified"),
        "n_random": s.get("n_random"),
        "groups": groups,
        "n_left_out": n_left_out,
        "index_found": index is not None,
        "figure_ids": figure_ids,
    }


def _lines_context(metrics: dict, folder: Path) -> dict:
    s = section_of(metrics, "saliency")
    ctx: dict[str, Any] = {}
    table = read_frame(folder, ResultsFolder(folder).line_table)
    ctx["line_table"] = None
    if table is not None and {"line", "class"} <= set(table.columns):
        value = "share_abs" if "share_abs" in table else "mean_abs_saliency" if "mean_abs_saliency" in table else None
        if value is not None:
            wide = table.pivot_table(index="line", columns="class", values=value, aggfunc="first", sort=False)
            signed = (table.pivot_table(index="line", columns="class", values="mean_saliency", aggfunc="first",
                                        sort=False) if "mean_saliency" in table else None)
            meta = table.drop_duplicates("line").set_index("line")
            classes = [str(c) for c in wide.columns]
            rows = []
            for line in wide.index:
                rec = meta.loc[line]
                window = (f"{fmt(rec['lo'], 0)}–{fmt(rec['hi'], 0)}" if {"lo", "hi"} <= set(meta.columns) else "")
                cells = []
                for c in wide.columns:
                    v = wide.loc[line, c]
                    sign = None if signed is None or c not in signed.columns else finite_or_none(signed.loc[line, c])
                    cells.append({"value": (100 * v if value == "share_abs" else v), "sign": sign})
                rows.append({"line": str(line), "kind": str(rec.get("kind", "")), "window": window, "cells": cells})
            ctx["line_table"] = {"classes": [class_name(c) for c in classes], "rows": rows,
                                 "value": value, "percent": value == "share_abs"}
    ctx["line_figure"] = embed_figure(folder, ResultsFolder(folder).figure("line_table"))
    cw = read_frame(folder, ResultsFolder(folder).centre_wings)
    ctx["centre_wings"] = None
    if cw is not None and len(cw):
        cols = [c for c in ("line", "class", "centre_mean", "wings_mean", "contrast", "n_spectra") if c in cw]
        ctx["centre_wings"] = {
            "columns": cols,
            "rows": [[(class_name(r[c]) if c == "class" else fmt_g(r[c]) if c != "line" and c != "n_spectra"
                       else fmt(r[c]) if c == "n_spectra" else str(r[c])) for c in cols] for r in records_of(cw)],
            "opposite": [str(r["line"]) + " / " + class_name(r.get("class", ""))
                         for r in records_of(cw) if opposite_signs(r.get("centre_mean"), r.get("wings_mean"))],
        }
    ctx["centre_wings_figure"] = embed_figure(folder, ResultsFolder(folder).figure("centre_wings"))
    cw_summary = s.get("centre_wings")
    ctx["centre_wings_summary"] = (
        [{"key": str(k), "value": fmt_g(v) if finite_or_none(v) is not None else str(v)} for k, v in cw_summary.items()
         if not isinstance(v, (dict, list))]
        if isinstance(cw_summary, dict) else []
    )
    faith = read_frame(folder, ResultsFolder(folder).faithfulness)
    ctx["faithfulness"] = None
    if faith is not None and len(faith) and "method" in faith:
        cols = [c for c in ("deletion_auc", "insertion_auc", "random_deletion_auc", "n_spectra") if c in faith]
        ctx["faithfulness"] = {
            "columns": cols,
            "rows": [{"method": str(r["method"]),
                      "cells": [fmt(r[c]) if c == "n_spectra" else fmt(r[c], 3) for c in cols]}
                     for r in records_of(faith)],
        }
    ctx["faithfulness_figure"] = embed_figure(folder, ResultsFolder(folder).figure("faithfulness"))
    ranking = s.get("faithfulness_ranking")
    ctx["ranking"] = [str(r) for r in ranking] if isinstance(ranking, list) else []
    ctx["computed"] = any(ctx[k] for k in ("line_table", "line_figure", "centre_wings", "centre_wings_figure",
                                           "faithfulness", "faithfulness_figure"))
    return ctx


def _provenance_context(metrics: dict, folder: Path) -> dict:
    d = section_of(metrics, "dataset")
    timings = section_of(metrics, "timings_s")
    versions = section_of(metrics, "versions")
    total = timings.get("total")
    stages = [{"stage": str(k), "seconds": v,
               "share": 100 * v / total if finite_or_none(v) is not None and finite_or_none(total) else None}
              for k, v in timings.items() if k != "total"]
    files = []
    results = ResultsFolder(folder)
    for path in results.files():
        rel = results.relative(path)
        files.append({"name": rel, "present": path.is_file(), "size": path.stat().st_size if path.is_file() else 0})
    return {
        "seed": d.get("seed", section_of(metrics, "split").get("seed")),
        "data_hash": d.get("data_hash"),
        "versions": [{"name": str(k), "value": str(v)} for k, v in versions.items()],
        "stages": stages,
        "total": total,
        "files": files,
    }


def _human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# ----------------------------------------------------------------------------------------------


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: resources.files("agnlens.report").joinpath(name).read_text("utf-8")),
        autoescape=True,  # every {{ value }} is HTML-escaped; only our own sanitised JSON is Markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt, fmt_g=fmt_g, fmt_ci=fmt_ci, fmt_s=fmt_s, class_name=class_name,
                       human_size=_human_size)
    return env


def build_report(
    results_dir: str | Path,
    *,
    max_gallery: int = 60,
    output: str | Path | None = None,
) -> Path:
    """Write ``report.html``: one self-contained page built from a results folder.

    Parameters
    ----------
    results_dir : str or Path
        A results folder (layout in ``docs/results-layout.md``): a study (``agnlens demo --out DIR``,
        its ``metrics.json``; missing tables or figures are reported as not computed), or explained
        or classified spectra (``agnlens explain SPECTRA --out DIR``: a ``predictions.csv`` or
        ``saliency/index.csv``, here or in ``grid-<name>/`` sub-folders).
    max_gallery : int, default 60
        At most this many saliency figures per group (misclassified, random; all the explained
        spectra of a folder of spectra) are embedded, to keep the page small; the others stay in
        ``figures/saliency/``.
    output : str or Path, optional
        Where to write the page (default ``results_dir/report.html``).

    Returns
    -------
    Path
        The written page.

    Raises
    ------
    ResultsFolderError
        If ``results_dir`` is not a folder, holds neither a study nor predictions, or its
        ``metrics.json`` is not a JSON object.
    """
    from agnlens.report._physics import physics_context, real_context
    from agnlens.report._spectra import folder_kind, spectra_page

    folder = ResultsFolder(results_dir).root
    if not folder.is_dir():
        raise ResultsFolderError(
            f"{folder}: not a folder; pass a results folder (of `agnlens demo --out DIR` or `agnlens explain "
            "SPECTRA --out DIR`)"
        )
    if not isinstance(max_gallery, (int, np.integer)) or max_gallery < 0:
        raise ValueError(f"max_gallery must be a non-negative integer, got {max_gallery!r}")
    kind = folder_kind(folder)
    if kind != "study":
        return _write(folder, "spectra.html", spectra_page(folder, kind, int(max_gallery)), output)
    metrics = read_metrics(folder)
    dataset = section_of(metrics, "dataset")
    simulated = bool(dataset.get("simulated", False))
    embedding = read_frame(folder, ResultsFolder(folder).embedding)

    tasks = [_task_context(metrics, t, folder, read_frame(folder, ResultsFolder(folder).tuning(t))) for t in TASKS]
    saliency = _saliency_context(metrics, folder, embedding, int(max_gallery))
    split = section_of(metrics, "split")
    counts = section_of(dataset, "counts")
    n_total = sum(v for v in counts.values() if isinstance(v, (int, float))) or dataset.get("n_spectra")
    grid = dataset.get("grid")
    context = {
        "title": "agnlens report" + (" — simulated data" if simulated else ""),
        "simulated": simulated,
        "dataset": {
            "n_spectra": dataset.get("n_spectra"),
            "counts": [{"cls": class_name(k), "n": v,
                        "share": 100 * v / n_total if n_total and isinstance(v, (int, float)) else None}
                       for k, v in counts.items()],
            "grid": ([{"key": str(k), "value": fmt_g(v) if isinstance(v, float) else str(v)}
                      for k, v in grid.items()] if isinstance(grid, dict) else
                     ([{"key": "grid", "value": str(grid)}] if grid else [])),
            "seed": dataset.get("seed"),
            "source": dataset.get("source"),
        },
        "split": [{"name": k, "n": split.get(k)} for k in ("train", "validation", "test") if k in split],
        "split_seed": split.get("seed"),
        "tasks": tasks,
        "saliency": saliency,
        "lines": _lines_context(metrics, folder),
        "map": map_context(metrics, folder, embedding, saliency["figure_ids"]),
        "physics": physics_context(metrics, folder),
        "real": real_context(metrics, folder),
        "provenance": _provenance_context(metrics, folder),
        "sections": SECTIONS,
    }
    return _write(folder, "template.html", context, output)


def _write(folder: Path, template: str, context: dict, output: str | Path | None) -> Path:
    """Render ``template`` with ``context`` (plus what every page has) and write it atomically."""
    from agnlens._version import __version__
    from agnlens.atomic import write_text

    context = context | {
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "agnlens_version": __version__,
        "folder_name": folder.name,
        "css": resources.files("agnlens.report").joinpath("style.css").read_text("utf-8"),
        "js": resources.files("agnlens.report").joinpath("map.js").read_text("utf-8"),
    }
    html = _environment().get_template(template).render(**context)
    target = Path(output) if output is not None else ResultsFolder(folder).report
    write_text(target, html)
    logger.debug("report: wrote %s (%s)", target, _human_size(len(html.encode("utf-8"))))
    return target
