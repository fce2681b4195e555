"""An output never lands on an input, under any spelling (round 3 of the adversarial review):
folders and glob patterns are checked by what they expand to, and an output that the same inputs
would read again is refused before any work. Each case replaced a user's spectrum on 094067f."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from agnlens.cli import main

import realdata


@pytest.fixture(autouse=True)
def _fresh_cli_logging():
    """``main`` points the agnlens logger at this test's captured stderr; unhook it afterwards."""
    yield
    import logging

    logging.getLogger("agnlens").handlers.clear()


@pytest.fixture
def spectra_dir(tmp_path):
    folder = tmp_path / "spectra"
    folder.mkdir()
    for name in ("spec-0332-52367-0639.fits", "spec-0565-52225-0263.fits"):
        shutil.copy(realdata.SPECTRA / name, folder / name)
    return folder


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", ["classify", "baseline"])
@pytest.mark.parametrize("how", ["folder", "glob"])
@pytest.mark.parametrize("name", ["spec-0332-52367-0639.fits", "new.fits"])
def test_an_output_among_the_inputs_is_refused_and_nothing_changes(spectra_dir, capsys, monkeypatch, command, how,
                                                                   name):
    monkeypatch.chdir(spectra_dir.parent)
    before = _digests(spectra_dir)
    source = "spectra" if how == "folder" else "spectra/*.fits"
    assert main([command, source, "--out", f"spectra/{name}"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and ("is also an input" in err or "would be read as an input" in err)
    assert _digests(spectra_dir) == before


def test_a_bad_redshift_in_one_catalogue_row_rejects_that_spectrum_alone(spectra_dir, tmp_path, capsys):
    """A redshift of 1e200 in one row was a traceback (OverflowError) for the whole run; nan, inf and
    −1 were ignored without a word (the file's redshift used instead). Now each is that spectrum's
    rejection, naming the row and the value; the rest is classified (exit 1)."""
    import pandas as pd

    shutil.copy(realdata.SPECTRA / "spec-0440-51885-0148.fits", spectra_dir)
    labels = tmp_path / "labels.csv"
    labels.write_text("spec_id,label,z\n0332-52367-0639,type1,1e200\n0565-52225-0263,type2,-1\n"
                      "0440-51885-0148,type1,\n")
    out = tmp_path / "r.csv"
    assert main(["classify", str(spectra_dir), "--labels", str(labels), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "row 1: the catalogue's redshift is above 10 ('1e200')" in err
    assert "row 2: the catalogue's redshift is negative ('-1')" in err
    table = pd.read_csv(out, dtype={"spec_id": str})
    assert list(table["spec_id"]) == ["0440-51885-0148"]


@pytest.mark.parametrize("value,why", [("inf", "infinite"), ("-inf", "infinite"), ("abc", "not a number"),
                                       ("-0.5", "negative"), ("11", "above 10")])
def test_read_catalog_names_every_unusable_redshift(tmp_path, value, why):
    """(An empty, ``NA`` or ``nan`` cell is a missing value, as pandas reads it: the file's redshift.)"""
    from agnlens.io import read_catalog

    path = tmp_path / "c.csv"
    path.write_text(f"spec_id,label,z\n0332-52367-0639,type1,{value}\n0565-52225-0263,type2,0.1\n")
    cat = read_catalog(path)
    assert why in cat.loc[0, "z_problem"] and cat.loc[1, "z_problem"] == ""
    assert cat.loc[1, "z_override"] == 0.1


# --------------------------------------------------------------- one output contract, every command
SPEC = realdata.SPECTRA / "spec-0332-52367-0639.fits"


def _refusal(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("command", ["classify", "baseline", "train", "evaluate", "report"])
def test_an_existing_output_file_is_refused_without_overwrite_and_kept(tmp_path, capsys, command):
    """On 094067f ``classify``, ``baseline``, ``train``, ``evaluate --out`` and ``report --out``
    replaced any existing file (``thesis.csv``, ``model.docx``) silently. Now: one line, exit 2,
    before any work (the store given to train/evaluate does not even exist)."""
    out = tmp_path / "thesis.csv"
    out.write_text("ten years of work\n")
    results = tmp_path / "results"
    results.mkdir()
    argv = {
        "classify": ["classify", str(SPEC)],
        "baseline": ["baseline", str(SPEC)],
        "train": ["train", str(tmp_path / "none.zarr")],
        "evaluate": ["evaluate", str(tmp_path / "none.zarr")],
        "report": ["report", str(results)],
    }[command]
    line = _refusal([*argv, "--out", str(out)], capsys)
    assert f"--out {out} already exists; pass --overwrite" in line
    assert out.read_text() == "ten years of work\n"


def test_a_companion_file_of_the_output_is_refused_too(tmp_path, capsys):
    """``classify --out r.csv`` also writes ``r.provenance.json``: an existing one is not replaced
    by a run whose CSV would be new (CSV and provenance always from one run)."""
    (tmp_path / "r.provenance.json").write_text("{}")
    line = _refusal(["classify", str(SPEC), "--out", str(tmp_path / "r.csv")], capsys)
    assert "r.provenance.json, already exists" in line and not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("command", ["explain", "realism", "demo"])
def test_an_existing_results_folder_is_refused_without_overwrite(tmp_path, capsys, command):
    """``explain --out`` into an existing folder deleted the user's saliency/notes.txt and wrote
    provenance.json even when nothing could be explained; realism and demo wrote into any folder."""
    out = tmp_path / "mine"
    (out / "saliency").mkdir(parents=True)
    (out / "saliency" / "notes.txt").write_text("my notes\n")
    argv = {
        "explain": ["explain", str(tmp_path / "none.fits")],
        "realism": ["realism", str(tmp_path / "none.fits")],
        "demo": ["demo", "--store", str(tmp_path / "none.zarr")],
    }[command]
    line = _refusal([*argv, "--out", str(out)], capsys)
    assert "already exists and is not empty; pass --overwrite" in line
    assert sorted(p.name for p in out.rglob("*")) == ["notes.txt", "saliency"]


@pytest.mark.parametrize("how", ["folder", "glob"])
def test_realism_never_writes_among_its_inputs(spectra_dir, capsys, how):
    """``realism --out DATA`` wrote realism.json and realism.png among the spectra it read."""
    before = _digests(spectra_dir)
    source = str(spectra_dir) if how == "folder" else str(spectra_dir / "*.fits")
    line = _refusal(["realism", source, "--out", str(spectra_dir)], capsys)
    assert "is also an input" in line or "holds the input" in line
    assert _digests(spectra_dir) == before


def test_explain_overwrite_replaces_only_what_agnlens_wrote(tmp_path, capsys):
    """``--overwrite`` into an explain folder: agnlens's files are replaced, the user's
    ``saliency/notes.txt`` and ``mine.txt`` are kept (the saliency folder was swapped whole)."""
    out = tmp_path / "ex"
    argv = ["explain", str(SPEC), "--out", str(out), "--max-figures", "0"]
    assert main(argv) == 0
    (out / "saliency" / "notes.txt").write_text("my notes\n")
    (out / "mine.txt").write_text("mine\n")
    values = (out / "saliency" / "values.npy").stat().st_mtime_ns
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "saliency" / "notes.txt").read_text() == "my notes\n"
    assert (out / "mine.txt").read_text() == "mine\n"
    assert (out / "saliency" / "values.npy").stat().st_mtime_ns != values  # agnlens's own: replaced
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # nothing left aside


def test_classify_overwrite_replaces_the_results_and_their_provenance(tmp_path, capsys):
    import json

    out = tmp_path / "r.csv"
    out.write_text("old\n")
    (tmp_path / "r.provenance.json").write_text("{}")
    assert main(["classify", str(SPEC), "--out", str(out), "--overwrite"]) == 0
    assert out.read_text().startswith("spec_id")
    assert json.loads((tmp_path / "r.provenance.json").read_text())["n_classified"] == 1


def test_a_results_file_being_written_is_locked_like_a_store(tmp_path, capsys, monkeypatch):
    """Two ``classify`` writing one --out both exited 0 and one result was silently gone (CSV and
    provenance could come from different runs). Now the output is locked for the whole run: a
    second writer waits, then is refused in one line, and writes nothing."""
    from test_adversarial_locks import held_elsewhere

    out = tmp_path / "r.csv"
    with held_elsewhere(out):
        monkeypatch.setenv("AGNLENS_LOCK_TIMEOUT", "0.2")
        line = _refusal(["classify", str(SPEC), "--out", str(out)], capsys)
        assert "another agnlens process" in line and "is writing it" in line
        assert not out.exists() and not (tmp_path / "r.provenance.json").exists()


@pytest.mark.parametrize("command", ["classify", "train"])
def test_an_output_name_too_long_for_its_companion_fails_before_the_work(tmp_path, capsys, command):
    """A 249-character ``--out`` is a legal name, but ``NAME.provenance.json`` / ``NAME.metrics.json``
    beside it is not: classify and train failed on that after all their work (and classify had
    already written the CSV). Now the names are checked first."""
    name = "x" * 245 + (".csv" if command == "classify" else ".skops")
    out = tmp_path / name
    source = str(SPEC) if command == "classify" else str(write_tiny_store(tmp_path))
    line = _refusal([command, source, "--out", str(out)], capsys)
    assert "bytes, longer than the 255 this file system allows" in line
    assert not out.exists()


def write_tiny_store(tmp_path):
    from test_adversarial_store import make_set

    from agnlens.io.store import write_store

    return write_store(make_set(30), tmp_path / "s.zarr")


def test_explain_overwrite_leaves_nothing_of_the_last_run_that_this_run_does_not_write(tmp_path, capsys):
    """A gradient run with no figures ``--overwrite`` an Integrated-Gradients run with figures: no
    line contributions nor figures of the old run stay to be shown as this run's (the report would
    show them), the user's files do; two grids' folders go when the next run uses one grid."""
    out = tmp_path / "ex"
    assert main(["explain", str(SPEC), "--out", str(out), "--max-figures", "1"]) == 0
    assert (out / "line_contributions.csv").is_file() and (out / "figures" / "gallery.png").is_file()
    (out / "figures" / "mine.txt").write_text("mine\n")
    (out / "grid-paper").mkdir()
    (out / "grid-paper" / "predictions.csv").write_text("spec_id\n")
    assert main(["explain", str(SPEC), "--out", str(out), "--max-figures", "0", "--method", "gradient",
                 "--overwrite"]) == 0
    assert not (out / "line_contributions.csv").exists() and not (out / "grid-paper").exists()
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["mine.txt"]
    assert (out / "provenance.json").is_file() and (out / "saliency" / "values.npy").is_file()


def test_a_killed_runs_work_files_are_removed_by_the_next_run(tmp_path, capsys):
    """``kill -9`` leaves the hidden work files of a run; the next run into the folder takes them
    away under its lock (a folder holding only those counts as empty), saying so; a user's hidden
    file stays."""
    out = tmp_path / "ex"
    out.mkdir()

    def leave_work_files():
        (out / ".saliency.tmp-0123abcd").mkdir()
        (out / ".saliency.tmp-0123abcd" / "values.raw").write_bytes(b"\0" * 64)
        (out / ".line_contributions.csv.part-89abcdef").write_text("spec_id\n")

    leave_work_files()
    argv = ["explain", str(SPEC), "--out", str(out), "--max-figures", "0"]
    assert main(argv) == 0
    assert "left by a run that was killed" in capsys.readouterr().err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    leave_work_files()
    (out / ".mine").write_text("a user's hidden file\n")
    assert main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".mine"]


def test_explain_stopped_by_sigterm_removes_its_work_files_and_says_so(tmp_path):
    """SIGTERM (timeout, Slurm, docker stop) mid-run: exit 143, one line, no work file left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from agnlens.io.sdss_write import write_sdss_many
    from agnlens.simulate import simulate

    files = tmp_path / "fits"
    write_sdss_many(simulate(counts={"type1": 60, "type2": 60, "intermediate": 60}, seed=3, grid="balmer"), files)
    out = tmp_path / "ex"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agnlens.cli", "explain", str(files), "--out", str(out),
                             "--max-figures", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and any(p.name.startswith(".saliency.tmp-") for p in out.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be stopped: {proc.communicate()}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
