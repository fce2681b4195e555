"""The README and the documentation hold for a newcomer with a plain clone.

- no page points at files a clone does not have (the maintainers' data beside the repository) and
  no relative link is dead;
- the README's Python block and its commands run exactly as written, from a temporary working
  directory with relative paths (:mod:`readmedoc`), and the reports they write are complete;
- the numbers the README states are the numbers those commands give;
- the documentation's worked examples run when downloaded on their own (no local helper module).
"""

from __future__ import annotations

import ast
import html as htmlmod
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import readmedoc
from readmedoc import README, ROOT

DOCS = ROOT / "docs"
GENERATED = ("auto_examples", "generated", "_build")
#: The README's commands run the real thing: the demo's full study (~80 s alone on 2 cores, 5-6 min
#: on 2 cores shared with a dozen processes) and, on a fresh cache, the build of the default models.
COMMAND_TIMEOUT = 1500


def _pages() -> list[Path]:
    """README.md and every documentation source a reader sees (pages and gallery examples)."""
    pages = [README]
    for pattern in ("**/*.md", "**/*.rst", "examples/*.py"):
        pages += [p for p in DOCS.glob(pattern) if not set(GENERATED) & set(p.relative_to(DOCS).parts)]
    return sorted(set(pages))


# -- (a) nothing a clone does not have ------------------------------------------------------------

#: The maintainers keep the 95-spectrum reference sample and the published catalogues beside the
#: repository; a user's machine has neither. Pages name the reference sample ($SDSS95 in
#: docs/results.md) and the catalogues the package ships, never that folder. The package's own
#: text is checked too: its docstrings are the API reference, its help texts the CLI reference.
#: Only the maintainers' tools may use the folder (tests/realdata.py, which skips without it;
#: scripts/, benchmarks/, docs/make_sim_vs_real.py) — none of them is a page a user reads.
MAINTAINERS_ONLY = re.compile(r"\.\./shared|shared/data|shared/GUIDE|shared/DOMAIN")


def test_no_page_points_outside_the_clone():
    found = [
        f"{page.relative_to(ROOT)}:{n}: {line.strip()}"
        for page in [*_pages(), *sorted((ROOT / "src" / "agnlens").rglob("*.py"))]
        for n, line in enumerate(page.read_text("utf-8").splitlines(), 1)
        if MAINTAINERS_ONLY.search(line)
    ]
    assert not found, "paths a clone does not have:\n" + "\n".join(found)


# -- (b) no dead relative link ------------------------------------------------------------------

_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.M | re.S)
_INCLUDE = re.compile(r"^```\{(?:include|literalinclude)\}\s+(\S+)", flags=re.M)


def _repo_files() -> set[str] | None:
    """Files of the repository (tracked, or new and not ignored); None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {line for line in out.splitlines() if (ROOT / line).exists()}


def _targets(page: Path) -> list[str]:
    text = page.read_text("utf-8")
    includes = _INCLUDE.findall(text)
    prose = re.sub(r"`[^`\n]*`", "", _FENCE.sub("", text))  # links inside code are not links
    return includes + _LINK.findall(prose)


def test_no_dead_relative_link():
    files = _repo_files()
    dead = []
    for page in _pages():
        if page.suffix != ".md":
            continue
        for target in _targets(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL (checked by nobody offline) or an anchor in the page
            path = (page.parent / target.split("#", 1)[0]).resolve()
            try:
                rel = path.relative_to(ROOT).as_posix()
            except ValueError:
                dead.append(f"{page.relative_to(ROOT)}: {target} (outside the repository)")
                continue
            if files is None:
                ok = path.exists()
            else:
                ok = rel in files or any(f.startswith(rel + "/") for f in files)
            if not ok:
                dead.append(f"{page.relative_to(ROOT)}: {target} (no such file in the repository)")
    assert not dead, "dead links:\n" + "\n".join(dead)


def test_the_link_check_sees_links():
    """The checker is not vacuous: it finds the README's links, and would catch a dead one."""
    targets = _targets(README)
    assert "docs/results.md" in targets and "docs/report_screenshot.png" in targets
    assert _LINK.findall("see [x](benchmarks/class_convention.py).") == ["benchmarks/class_convention.py"]
    assert "benchmarks/class_convention.py" not in (_repo_files() or set())


# -- (c) the README's Python block ---------------------------------------------------------------

def test_readme_python_block_runs(tmp_path):
    blocks = readmedoc.code_blocks(readmedoc.section("From Python"), "python")
    assert len(blocks) == 1
    cwd = readmedoc.make_clone(tmp_path)
    script = cwd / "readme_block.py"
    script.write_text(blocks[0], "utf-8")
    done = subprocess.run([sys.executable, "-W", "error", script.name], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr[-4000:]
    # one row per real spectrum of the labels table, and the figure
    labels = pd.read_csv(cwd / "tests/data/sdss/labels.csv", dtype={"spec_id": str})
    missing = [s for s in labels["spec_id"] if s not in done.stdout]
    assert not missing, f"spectra missing from the printed table: {missing}\n{done.stdout}"
    assert (cwd / "saliency.png").stat().st_size > 10_000


# -- (d) the README's commands ---------------------------------------------------------------

class _Sections:
    """The report's sections: id -> inner HTML."""

    def __init__(self, page: str):
        self.html = page
        self.body = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S))

    def missing(self, sid: str) -> list[str]:
        """The section's "Not computed" notes."""
        return [htmlmod.unescape(m) for m in re.findall(r'class="missing"[^>]*>(.*?)</p>', self.body[sid], re.S)]

    def images(self, sid: str) -> int:
        return len(re.findall(r'<img[^>]+src="data:image/', self.body[sid]))


#: Sections of the demo's report that show figures (embedded in the page).
DEMO_FIGURE_SECTIONS = ("tuning", "results", "saliency", "lines", "physics", "map")


@pytest.mark.slow
@pytest.mark.timeout(COMMAND_TIMEOUT)
def test_quick_start_demo_writes_the_complete_report(readme_demo):
    from agnlens.report import SECTIONS

    cwd, run = readme_demo
    assert run.returncode == 0, run.explain()
    page = _Sections((cwd / "demo-out" / "report.html").read_text("utf-8"))
    assert set(SECTIONS) <= set(page.body), f"sections missing: {set(SECTIONS) - set(page.body)}"
    not_computed = {sid: page.missing(sid) for sid in SECTIONS if sid != "real" and page.missing(sid)}
    assert not not_computed, f"'Not computed' in the quick start's report: {not_computed}"
    assert page.missing("real"), "the demo has no real spectra: its real-data section says so"
    no_figure = [sid for sid in DEMO_FIGURE_SECTIONS if page.images(sid) == 0]
    assert not no_figure, f"sections without an embedded figure: {no_figure}"
    # every saliency map the study computed is in the gallery (the gallery caps each group at 60)
    n_maps = json.loads((cwd / "demo-out" / "metrics.json").read_text())["saliency"]["n_maps"]
    assert page.images("saliency") >= min(n_maps, 60)


@pytest.mark.slow
@pytest.mark.timeout(COMMAND_TIMEOUT)
def test_readme_simulated_scores_are_the_demos(readme_demo):
    cwd, run = readme_demo
    assert run.returncode == 0, run.explain()
    metrics = json.loads((cwd / "demo-out" / "metrics.json").read_text())
    results = readmedoc.section("Results, in short")
    for task in ("binary", "multiclass"):
        f1 = f"{metrics[task]['test']['f1']:.3f}"
        assert f1 in results, f"README's Results: the demo's {task} test F1 is now {f1}; update the README"
    assert "SIMULATED" in results


@pytest.mark.slow
@pytest.mark.timeout(COMMAND_TIMEOUT)
def test_results_page_figures_are_the_demos(readme_demo):
    """docs/results.md quotes the demo (scores, explained spectra, t-SNE, faithfulness, centre vs
    wings): every figure it gives must be the one the README's demo writes now — exactly, but for
    the t-SNE map's neighbour accuracy, within 0.01: the embedding is not bitwise the same across
    BLAS kernels (0.832 with OpenBLAS's SkylakeX kernels, 0.834 with its Haswell ones)."""
    cwd, run = readme_demo
    assert run.returncode == 0, run.explain()
    out = cwd / "demo-out"
    metrics = json.loads((out / "metrics.json").read_text())
    page = (DOCS / "results.md").read_text("utf-8")
    test = metrics["multiclass"]["test"]
    lo, hi = test["f1_ci95"]
    quoted = [f"{metrics['binary']['test']['f1']:.3f}", f"{test['f1']:.3f} [{lo:.3f}, {hi:.3f}]",
              f"explains {metrics['saliency']['n_maps']} test spectra"]
    knn = re.search(r"10-nearest-neighbour\s+accuracy is (\d\.\d+)", page)
    assert knn and abs(float(knn.group(1)) - metrics["embedding"]["knn_accuracy"]) <= 0.01, (
        f"docs/results.md's t-SNE accuracy, the demo's is {metrics['embedding']['knn_accuracy']:.3f}")
    faithfulness = pd.read_csv(out / "faithfulness.csv").set_index("method")["deletion_auc"]
    quoted += [f"over the {metrics['saliency']['n_maps']} explained spectra",
               f"occlusion {faithfulness['occlusion']:.3f}", f"exact gradient {faithfulness['gradient']:.3f}"]
    wings = metrics["saliency"]["centre_wings_test"]
    quoted += [f"of the {wings['n_tested']} explained test spectra with a measured broad Hβ, {wings['n_opposite']} "
               f"({100 * wings['opposite_fraction']:.0f} %)", f"p = {wings['p_value']:.2f}"]
    flat = " ".join(page.split())
    missing = [q for q in quoted if " ".join(q.split()) not in flat]
    assert not missing, f"docs/results.md no longer quotes the demo: {missing}; update the page"


@pytest.fixture(scope="module")
def own_spectra(tmp_path_factory):
    """The commands of the README's 'Your own spectra', run in order in a plain-clone working
    directory; returns ``(cwd, runs)`` with one :class:`readmedoc.Run` per command."""
    cwd = readmedoc.make_clone(tmp_path_factory.mktemp("readme-own-spectra"))
    return cwd, [readmedoc.run(argv, cwd) for argv in readmedoc.own_spectra_commands()]


def _run_of(runs, verb: str) -> readmedoc.Run:
    return next(r for r in runs if r.argv[1] == verb)


@pytest.mark.slow
@pytest.mark.timeout(COMMAND_TIMEOUT)
def test_own_spectra_classify_and_explain(own_spectra):
    cwd, runs = own_spectra
    assert [r.argv[1] for r in runs] == ["classify", "explain", "report"]
    labels = pd.read_csv(cwd / "tests/data/sdss/labels.csv", dtype={"spec_id": str})
    classify = _run_of(runs, "classify")
    assert classify.returncode == 0, classify.explain()
    table = pd.read_csv(cwd / classify.argv[classify.argv.index("--out") + 1], dtype={"spec_id": str})
    assert dict(zip(table["spec_id"], table["label"])) == dict(zip(labels["spec_id"], labels["label"]))
    explain = _run_of(runs, "explain")
    assert explain.returncode == 0, explain.explain()
    out = cwd / explain.argv[explain.argv.index("--out") + 1]
    assert len(list(out.rglob("*.png"))) >= len(labels), "one figure per spectrum"


@pytest.mark.slow
@pytest.mark.timeout(COMMAND_TIMEOUT)
def test_own_spectra_report_shows_these_spectra(own_spectra):
    cwd, runs = own_spectra
    report = _run_of(runs, "report")
    assert report.returncode == 0, report.explain()
    folder = cwd / report.argv[2]
    page = (folder / "report.html").read_text("utf-8")
    labels = pd.read_csv(cwd / "tests/data/sdss/labels.csv", dtype={"spec_id": str})
    absent = [s for s in labels["spec_id"] if s not in page]
    assert not absent, f"spectra missing from the report's table: {absent}"
    # the gallery of these spectra (one embedded figure each) and their place on the map
    assert len(re.findall(r'<img[^>]+src="data:image/', page)) >= len(labels)
    assert '<section id="map">' in page and "On the map of the training sample" in page


@pytest.mark.slow
@pytest.mark.timeout(COMMAND_TIMEOUT)
def test_readme_real_counts_are_what_classify_gives(own_spectra):
    """The README's sentence on the real spectra in tests/data, checked against its command."""
    cwd, runs = own_spectra
    classify = _run_of(runs, "classify")
    assert classify.returncode == 0, classify.explain()
    t = pd.read_csv(cwd / classify.argv[classify.argv.index("--out") + 1], dtype={"spec_id": str}).fillna({"flags": ""})
    text = " ".join(readmedoc.section("Results, in short").split())
    fix = "; update the README's Results"

    def right(label: str) -> str:
        rows = t[t["label"] == label]
        return f"{int((rows['predicted_label'] == label).sum())} of {len(rows)}"

    assert f"call {right('type1')} type 1 and {right('type2')} type 2 right" in text, (right("type1"), right("type2"))
    inter = t[t["label"] == "intermediate"]
    assert len(inter) == 2, inter.to_string() + fix
    assert f"{right('intermediate')} is called intermediate" in text, right("intermediate") + fix
    controls = t[t["label"] == "non-agn"]
    flagged = controls["flags"].str.contains("not-agn")
    assert len(controls) == 2 and (controls["predicted_label"] == "type2").all(), controls.to_string() + fix
    how_many = {0: "none of them", 1: "one of them", 2: "both"}[int(flagged.sum())]
    assert f"two non-AGN control galaxies are called type 2 — {how_many} flagged `not-agn`" in text, how_many + fix


# -- the gallery examples stand alone ---------------------------------------------------------

@pytest.mark.parametrize("example", sorted((DOCS / "examples").glob("plot_*.py")), ids=lambda p: p.name)
def test_gallery_example_imports_only_installed_modules(example):
    """A downloaded example finds every module it imports in an installation of agnlens[docs]
    (none from a helper file beside it)."""
    tree = ast.parse(example.read_text("utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    local = {p.stem for p in example.parent.glob("*.py")}
    assert not names & local, f"imports a file beside it: {names & local}"
    missing = sorted(n for n in names if importlib.util.find_spec(n) is None)
    assert not missing, f"not installed: {missing}"
