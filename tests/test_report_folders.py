"""Every command with relative paths, from a working directory of its own, as a user types them: the
real spectra of tests/data classified, explained and reported (and shown in headless Chromium), and
a small study with real spectra beside it. Each runs ``python -m agnlens.cli`` in a subprocess.

The first run builds the default models and the t-SNE map of their training sample if the agnlens
cache does not hold them yet (a few minutes); later runs read the cache.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from realdata import N_SPECTRA, SDSS

pytestmark = pytest.mark.slow

#: The sections of the page of explained spectra that the real spectra of tests/data must fill.
SPECTRA_SECTIONS = ("summary", "spectra", "saliency", "map", "baseline", "provenance")


def agnlens(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "agnlens.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, f"agnlens {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def explained(tmp_path_factory) -> Path:
    """``agnlens classify D --out c.csv && agnlens explain D --out ex && agnlens report ex``, every path
    relative to the working directory; returns the working directory."""
    work = tmp_path_factory.mktemp("work")
    shutil.copytree(SDSS, work / "D")
    agnlens("classify", "D/spectra", "--labels", "D/labels.csv", "--out", "c.csv", cwd=work)
    agnlens("explain", "D/spectra", "--labels", "D/labels.csv", "--out", "ex", cwd=work)
    agnlens("report", "ex", cwd=work)
    return work


def _rows(html: str, table_id: str) -> int:
    table = html[html.index(f'id="{table_id}"'):]
    return table[: table.index("</table>")].count("<tr") - 1  # less the header row


def test_classify_explain_report_with_relative_paths(explained):
    page = (explained / "ex" / "report.html").read_text("utf-8")
    for sid in SPECTRA_SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    assert "Not computed" not in page
    assert _rows(page, "spectra-table") == N_SPECTRA
    assert page.count('<img class="saliency"') == N_SPECTRA
    # explain's predictions are classify's table: the same columns, the same answers for the same spectra
    c = pd.read_csv(explained / "c.csv", dtype={"spec_id": str}).set_index("spec_id").sort_index()
    e = pd.read_csv(explained / "ex" / "predictions.csv", dtype={"spec_id": str}).set_index("spec_id").sort_index()
    assert list(c.columns) == list(e.columns[: len(c.columns)])
    assert list(e["predicted_label"]) == list(c["predicted_label"])
    pcols = [k for k in c.columns if k.startswith("p_")]
    pd.testing.assert_frame_equal(e[pcols], c[pcols], rtol=1e-5, atol=1e-6)
    # the report again, from another working directory, into a page named relative to it
    (explained / "sub").mkdir(exist_ok=True)
    agnlens("report", "../ex", "--out", "page.html", cwd=explained / "sub")
    again = (explained / "sub" / "page.html").read_text("utf-8")
    assert again.count('<img class="saliency"') == N_SPECTRA


def test_a_small_study_with_real_spectra_and_relative_paths(tmp_path):
    """``demo --real`` with relative paths: the real-data section is the run's, and the figures are in."""
    shutil.copytree(SDSS, tmp_path / "D")
    agnlens("demo", "--n", "150", "--n-random", "4", "--real", "D/spectra", "--labels", "D/labels.csv",
            "--out", "study", cwd=tmp_path)
    page = (tmp_path / "study" / "report.html").read_text("utf-8")
    assert "Not computed" not in page
    real = page[page.index('<section id="real">'):]
    assert "not the built-in models" in real[: real.index("</section>")]  # says which model it used
    assert len(re.findall(r'<img [^>]*src="data:image/png', page)) >= 10


@pytest.mark.browser
def test_report_of_explained_real_spectra_in_chromium(explained, tmp_path):
    """The page of ``agnlens explain`` on real spectra in a real browser: the table, the gallery and
    the interactive map with these spectra on the map of the training sample."""
    from test_report_browser import screenshot, selfcheck

    page = explained / "ex" / "report.html"
    res = selfcheck(page, tmp_path, sections=SPECTRA_SECTIONS)
    assert res["errors"] == [] and res["stderr_console"] == [], res
    assert res["resources"] == [], f"the page fetched resources: {res['resources']}"
    assert all(res["sections"].values()), res["sections"]
    assert len(res["images"]) == N_SPECTRA
    assert all(img["complete"] and img["w"] > 0 and img["shown"] > 50 for img in res["images"]), res["images"]
    m = res["map"]
    assert m["ready"] and m["n"] == m["circles"] > N_SPECTRA  # the training sample and these spectra
    assert m["hit"] and m["hoverShown"] and m["specId"] in m["hoverText"] and "predicted:" in m["hoverText"]
    assert m["detailShown"] and m["sameSrc"] and m["detailWidth"] > 0
    shot = screenshot(page, tmp_path / "explained.png", width=1280, height=1600)
    assert shot.stat().st_size > 20_000
