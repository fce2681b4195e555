"""The report of a folder of spectra (agnlens.report._spectra): a hand-made explain folder whose every
number is known, read back through the page's readers and the built page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agnlens.cli import main
from agnlens.models.applicability import FLAG_MEANINGS
from agnlens.report import ResultsFolderError, build_report
from agnlens.report._spectra import (
    baseline_context,
    contributions_context,
    folder_kind,
    read_predictions,
    table_context,
)
from agnlens.results import ResultsFolder

IDS = ["0266-51602-0013", "0332-52367-0639", "0392-51793-0517", "1163-52669-0292"]


def _png(path: Path) -> None:
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(3, 1.5))
    fig.add_subplot().plot([0, 1, 2], [1, 3, 2])
    fig.savefig(path, dpi=40)


def make_explain_folder(root: Path, ids=IDS, grid: str = "balmer") -> Path:
    """An explain folder as docs/results-layout.md describes it, with four spectra."""
    folder = ResultsFolder(root)
    folder.saliency.mkdir(parents=True, exist_ok=True)
    n = len(ids)
    p1 = np.linspace(0.9, 0.1, n)
    table = pd.DataFrame({
        "spec_id": ids, "label": ["non-agn", "type1", "type2", "intermediate"][:n],
        "predicted_label": ["type2", "type1", "type2", "type2"][:n],
        "p_intermediate": (1 - p1) / 2, "p_type1": p1, "p_type2": (1 - p1) / 2,
        "applicable": [True, True, False, True][:n], "flags": ["", "", "kernel-collapse;redshift-offset", ""][:n],
        "z_offset_kms": [10.0, -5.0, 812.0, 3.0][:n], "grid": grid,
        "hb_fwhm_broad": [np.nan, 5336.0, np.nan, np.nan][:n],
        "baseline_label": ["type2", "type1", "", "intermediate"][:n],
        "subtype": ["2", "1.2", "?", "1.9"][:n],
    })
    table["p_type1_err"] = [np.nan, 0.05, np.nan, np.nan][:n]
    table.to_csv(folder.predictions, index=False)
    pd.DataFrame({"row": range(n), "spec_id": ids, "label": table["label"], "predicted_label": table["predicted_label"],
                  "target_class": table["predicted_label"], "reason": "explained",
                  "p_target": 0.7}).to_csv(folder.saliency_index, index=False)
    for i, sid in enumerate(ids[:2]):  # figures for the first two only
        _png(folder.saliency_figure(sid, i))
    parts = ["Hα broad wings", "[O III] 5008", "continuum", "Hβ narrow core"]
    values = dict(zip(ids, ([0.02, -0.30, 0.10, 0.05], [0.40, 0.01, -0.2, 0.3])))
    rows = [{"spec_id": sid, "predicted_label": "type2", "target_class": "type2", "part": part, "kind": "line",
             "lo": 0, "hi": 1, "contribution": v, "share": abs(v) / sum(map(abs, vals))}
            for sid, vals in values.items() for part, v in zip(parts, vals)]
    pd.DataFrame(rows).to_csv(folder.line_contributions, index=False)
    ref = pd.DataFrame({"spec_id": [f"sim{i}" for i in range(30)], "label": ["type1", "type2", "intermediate"] * 10,
                        "predicted_label": "", "split": "simulated training", "explained": False,
                        "x": np.arange(30.0), "y": np.arange(30.0) % 7})
    mine = table[["spec_id", "label", "predicted_label"]].assign(split="explained", explained=True,
                                                                  x=np.arange(n) + 0.5, y=1.0)
    pd.concat([ref, mine]).to_csv(folder.embedding, index=False)
    (folder.root / "provenance.json").write_text(json.dumps({"models": [{
        "model_file": "/cache/default-multiclass-balmer.skops", "model_sha256": "ab" * 32,
        "model_classes": ["intermediate", "type1", "type2"], "model_grid": {"name": grid},
        "model_convention": "spectroscopic", "model_simulated_training_data": True}]}))
    return folder.root


def test_folder_kinds(tmp_path):
    explain = make_explain_folder(tmp_path / "ex")
    assert folder_kind(explain) == "explain"
    only = tmp_path / "only"
    only.mkdir()
    pd.read_csv(explain / "predictions.csv").to_csv(only / "predictions.csv", index=False)
    assert folder_kind(only) == "predictions"
    html = build_report(only).read_text("utf-8")  # a classify table alone: its table and baseline, nothing else
    assert '<section id="spectra">' in html and '<section id="baseline">' in html and "Not computed" not in html
    assert '<section id="saliency">' not in html and '<section id="map">' not in html
    assert "classified spectra" in html and "no provenance.json" in html
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "metrics.json").write_text("{}")
    assert folder_kind(tmp_path / "study") == "study"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsFolderError, match=r"no metrics.json .*agnlens demo.*predictions.csv.*agnlens explain"):
        folder_kind(tmp_path / "empty")


def test_per_spectrum_table(tmp_path):
    folder = make_explain_folder(tmp_path / "ex")
    table = read_predictions(folder)
    ctx = table_context(table, {IDS[0]: "sal-0-0"})
    cols = ctx["columns"]
    assert cols[:3] == ["spectrum", "catalogue label", "predicted"] and "flags" in cols and ctx["err"]
    rows = {r["spec_id"]: dict(zip(cols[1:], r["cells"])) for r in ctx["rows"]}
    for sid, rec in zip(table["spec_id"], table.to_dict(orient="records")):
        assert rows[sid]["p(type 1)"].startswith(f"{rec['p_type1']:.2f}")
    assert rows[IDS[1]]["p(type 1)"] == f"{table.loc[1, 'p_type1']:.2f} ± 0.05"
    flags = rows[IDS[2]]["flags"]
    assert FLAG_MEANINGS["kernel-collapse"] in flags and FLAG_MEANINGS["redshift-offset"] in flags and "+812" in flags
    assert rows[IDS[2]]["applicable"] == "no" and rows[IDS[0]]["flags"] == "—"
    flagged = {r["spec_id"] for r in ctx["rows"] if r["flagged"]}
    assert flagged == set(table.loc[~table["applicable"], "spec_id"])
    # the catalogue label contradicted: a class label that differs from the prediction
    contra = {r["spec_id"] for r in ctx["rows"] if r["contradicts"]}
    expected = {s for s, lab, p in zip(table["spec_id"], table["label"], table["predicted_label"])
                if lab in ("type1", "type2", "intermediate") and lab != p}
    assert contra == expected == {IDS[3]}
    assert ctx["rows"][0]["figure"] == "sal-0-0" and ctx["rows"][1]["figure"] is None


def test_contributions_are_the_largest_by_magnitude(tmp_path):
    folder = make_explain_folder(tmp_path / "ex")
    raw = pd.read_csv(folder / "line_contributions.csv")
    ctx = {c["spec_id"]: c for c in contributions_context(folder)}
    assert set(ctx) == set(raw["spec_id"])
    for sid, rows in raw.groupby("spec_id"):
        top = rows.loc[rows["contribution"].abs().nlargest(3).index]
        assert [p["part"] for p in ctx[sid]["parts"]] == list(top["part"])
        assert [p["value"] for p in ctx[sid]["parts"]] == list(top["contribution"])


def test_baseline_disagreements(tmp_path):
    table = read_predictions(make_explain_folder(tmp_path / "ex"))
    ctx = baseline_context(table, {})
    expected = [s for s, b, p in zip(table["spec_id"], table["baseline_label"], table["predicted_label"])
                if b and b != p]
    assert [r["spec_id"] for r in ctx["rows"]] == expected == [IDS[3]]
    assert ctx["n_compared"] == sum(b != "" for b in table["baseline_label"])
    assert ctx["n_agree"] == ctx["n_compared"] - len(expected)
    assert baseline_context(table.drop(columns=["baseline_label"]), {}) is None


def section_of(html: str, sid: str) -> str:
    part = html[html.index(f'<section id="{sid}">'):]
    return part[: part.index("</section>")]


def test_page_of_an_explain_folder(tmp_path):
    folder = make_explain_folder(tmp_path / "ex")
    html = build_report(folder).read_text("utf-8")
    for sid in ("summary", "spectra", "contributions", "saliency", "map", "baseline", "provenance"):
        assert f'<section id="{sid}">' in html, sid
    assert "Not computed" not in html and "metrics.json" not in html
    assert "calibrated on simulated spectra" in html and "agnlens explain" in html
    assert section_of(html, "spectra").count("<tr") == 1 + len(IDS)
    assert section_of(html, "saliency").count('alt="saliency map of ') == 2
    assert "Hα broad wings" in section_of(html, "contributions")
    data = json.loads(re.search(r'<script type="application/json" id="map-data">(.*?)</script>', html, re.S).group(1))
    assert sum(data["new"]) == len(IDS) and len(data["x"]) == 30 + len(IDS)
    assert [p for p, new in zip(data["pred"], data["new"]) if new] == ["type2", "type1", "type2", "type2"]
    # without the optional files, their sections are left out, not marked "not computed"
    for name in ("line_contributions.csv", "embedding.csv"):
        (folder / name).unlink()
    html = build_report(folder).read_text("utf-8")
    assert '<section id="contributions">' not in html and '<section id="map">' not in html
    assert "Not computed" not in html


def test_page_of_a_folder_with_grid_subfolders(tmp_path):
    folder = tmp_path / "ex"
    make_explain_folder(folder / "grid-balmer", IDS[:3], grid="balmer")
    make_explain_folder(folder / "grid-paper", IDS[3:], grid="paper")
    (folder / "grid-balmer" / "provenance.json").rename(folder / "provenance.json")
    assert folder_kind(folder) == "explain"
    assert len(read_predictions(folder)) == len(IDS)
    html = build_report(folder).read_text("utf-8")
    assert section_of(html, "spectra").count("<tr") == 1 + len(IDS) and "<th>grid</th>" in html
    assert "grid-balmer, grid-paper" in html and "grid-paper" in section_of(html, "map")  # the other grid's map


def test_cli_report_of_an_explain_folder_with_relative_paths(tmp_path, monkeypatch, capsys):
    make_explain_folder(tmp_path / "ex")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["report", "../ex", "--out", "page.html"]) == 0
    assert (tmp_path / "elsewhere" / "page.html").is_file() and "page.html" in capsys.readouterr().out
    assert main(["report", "../ex", "--out", "../ex/predictions.csv"]) == 2  # never onto an input
    assert "input" in capsys.readouterr().err
