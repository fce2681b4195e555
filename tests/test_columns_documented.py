"""Every column agnlens writes is in the column reference (docs/columns.md), so that no future column
goes undocumented: classify, baseline and explain run on the real spectra in tests/data, and each
column of each CSV they write must be named in the page."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from agnlens.cli import main

from realdata import LABELS, SPECTRA

PAGE = Path(__file__).resolve().parents[1] / "docs" / "columns.md"


def documented() -> list[re.Pattern]:
    """The columns the page names: the first cell of every table row, and the names listed in the
    sentences that point back to a table ("... as above"); ``<class>`` stands for any class."""
    names: set[str] = set()
    for block in PAGE.read_text(encoding="utf-8").split("\n\n"):
        for line in block.splitlines():
            if line.startswith("| `"):
                names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
        if "as above" in block or "as in the predictions" in block:
            names.update(re.findall(r"`([a-z_<>]+)`", block))
    return [re.compile(re.escape(n).replace(re.escape("<class>"), r"[a-z0-9]+") + r"\Z") for n in names]


def undocumented(columns, patterns) -> list[str]:
    return [c for c in columns if not any(p.match(c) for p in patterns)]


def test_the_reader_of_the_page_finds_its_names():
    patterns = documented()
    assert undocumented(["spec_id", "p_type1", "p_intermediate_err", "hb_fwhm_broad", "line", "rank"], patterns) == []
    assert undocumented(["p_", "predicted", "true_label", "nonsense"], patterns) == ["p_", "predicted", "true_label",
                                                                                      "nonsense"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The CSV tables of classify (every optional column on), baseline and explain on real spectra."""
    d = tmp_path_factory.mktemp("columns")
    common = [str(SPECTRA), "--labels", str(LABELS)]
    assert main(["-q", "classify", *common, "--measure", "--refine-z", "--out", str(d / "c.csv")]) == 0
    assert main(["-q", "baseline", *common, "--out", str(d / "baseline.csv")]) == 0
    assert main(["-q", "explain", *common, "--max-figures", "0", "--out", str(d / "ex")]) == 0
    return {p.relative_to(d).as_posix(): pd.read_csv(p, nrows=1).columns for p in sorted(d.rglob("*.csv"))}


def test_every_column_of_every_table_is_documented(outputs):
    assert {"c.csv", "baseline.csv", "ex/saliency/index.csv", "ex/line_table.csv"} <= set(outputs)
    patterns = documented()
    missing = {name: undocumented(columns, patterns) for name, columns in outputs.items()}
    assert not any(missing.values()), f"columns missing from {PAGE.name}: {missing}"
    # the catalogue's label and the SVM's answer, under their one name each
    assert {"label", "predicted_label"} <= set(outputs["c.csv"])
