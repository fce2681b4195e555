"""Adversarial cases of issue 10 for stores, output paths, resume and the command line.

Each case is what a hostile or careless user did to v0.1 (two writers at once, ``--overwrite``
pointed at the inputs, a deleted chunk, a changed input under a resume, a spreadsheet formula as
a spec_id...). Everything here is real: Zarr stores on disk, FITS files written by
:mod:`agnlens.io.sdss_write`, separate processes for concurrency and kills. Nothing reads
``../shared``.

Cases that already held before issue 10 and stay covered elsewhere: a killed write or append
leaves the old store readable (``test_store.py::test_killed_*``); a killed ingest resumes to the
serial result (``test_parallel.py::test_killed_ingest_leaves_no_store_and_resumes``); a killed
worker gives identical results (``test_parallel.py``); a damaged store attribute or a missing
array is a ReadError (``test_store.py``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agnlens.cli import main
from agnlens.errors import ReadError
from agnlens.io.store import append_store, open_store, read_rows, store_info, write_store
from agnlens.spectra import SpectrumSet


@pytest.fixture(autouse=True)
def _fresh_cli_logging():
    """``main`` points the agnlens logger at this test's captured stderr; unhook it afterwards."""
    yield
    import logging

    logging.getLogger("agnlens").handlers.clear()


def make_set(n: int, *, start: int = 0, n_pix: int = 40, seed: int = 0) -> SpectrumSet:
    """Row i's flux is constant ``1000 + i`` (checkable after any shuffle); every 4th unlabelled."""
    ids = np.arange(start, start + n)
    meta = pd.DataFrame({
        "spec_id": [f"{1000 + i // 600:04d}-{52000 + i:05d}-{i % 600 + 1:04d}" for i in ids],
        "label": np.array(["type1", "type2", "intermediate", ""])[ids % 4],
        "source": [f"f{i}.fits" for i in ids],
        "z": np.full(n, 0.1),
    })
    flux = np.repeat((1000.0 + ids)[:, None], n_pix, axis=1).astype(np.float32)
    return SpectrumSet(
        wavelength=np.linspace(3729.0, 5266.0, n_pix), flux=flux, ivar=np.ones_like(flux),
        mask=np.zeros(flux.shape, bool), meta=meta, grid="custom", provenance={"simulated": True},
    )


def _run_py(code: str, *args: str, timeout: int = 120) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _one_error_line(err: str, command: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"agnlens {command}: error:"), err


# ------------------------------------------------------------------------------ concurrent writers
_APPENDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from test_adversarial_store import make_set
from agnlens.io.store import append_store
path, first, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
for k in range(4):                      # 4 appends of 15 rows, chunks of 7: many chances to race
    append_store(make_set(15, start=first + 15 * k), path)
"""


def test_two_processes_appending_at_once_keep_every_row(tmp_path):
    path = write_store(make_set(10), tmp_path / "s.zarr", chunk_size=7)
    go = tmp_path / "go"
    procs = [_run_py(_APPENDER, str(path), str(first), str(go), str(Path(__file__).parent)) for first in (100, 200)]
    time.sleep(1.0)  # both imported and waiting
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    got = open_store(path, lazy=False)
    assert len(got) == 10 + 2 * 60
    assert sorted(got.spec_id) == sorted(make_set(10).spec_id.tolist() + make_set(60, start=100).spec_id.tolist()
                                         + make_set(60, start=200).spec_id.tolist())
    # each row's flux is still the one written with its spec_id (never another run's flux)
    for sid, row in zip(got.spec_id, np.asarray(got.flux)):
        assert np.all(row == 1000 + int(sid.split("-")[1]) - 52000), sid


_HOLDER = """
import sys, time
from pathlib import Path
from agnlens.atomic import exclusive_lock
with exclusive_lock(sys.argv[1]):
    Path(sys.argv[2]).touch()
    time.sleep(30)
"""


def test_a_second_writer_is_refused_in_one_line_while_the_first_writes(tmp_path, monkeypatch, capsys):
    path = write_store(make_set(10), tmp_path / "s.zarr")
    ready = tmp_path / "ready"
    holder = _run_py(_HOLDER, str(path), str(ready))
    try:
        for _ in range(600):
            if ready.exists() or holder.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), holder.communicate()[1]
        monkeypatch.setenv("AGNLENS_LOCK_TIMEOUT", "0.3")
        with pytest.raises(BlockingIOError, match=f"pid {holder.pid}.*writing it"):
            append_store(make_set(5, start=50), path)
        with pytest.raises(BlockingIOError, match="another agnlens process"):
            write_store(make_set(5, start=50), path, overwrite=True)
    finally:
        holder.kill()
        holder.communicate()
    assert len(open_store(path)) == 10
    # the kernel released the killed holder's lock: the next writer goes ahead
    append_store(make_set(5, start=50), path)
    assert len(open_store(path)) == 15


def test_the_commit_checks_the_row_count_it_started_from(tmp_path):
    import json

    path = write_store(make_set(10), tmp_path / "s.zarr", chunk_size=4)

    def foreign_writer(done, total):  # a program that ignores the lock commits meanwhile
        meta = json.loads((path / "zarr.json").read_text())
        meta["attributes"]["agnlens"]["n_spectra"] = 12
        meta["attributes"]["agnlens"]["uid"] = "foreign"
        (path / "zarr.json").write_text(json.dumps(meta))

    with pytest.raises(RuntimeError, match="changed while spectra were being appended.*had 10 rows, now 12"):
        append_store(make_set(6, start=50), path, progress=foreign_writer)
    assert store_info(path)["uid"] == "foreign"  # the other writer's commit stands, ours is not on top


# ------------------------------------------------------------------------------------- --overwrite
@pytest.fixture(scope="module")
def fits_dir(tmp_path_factory):
    """Four simulated SDSS spec-*.fits files (written by agnlens.io.sdss_write)."""
    from agnlens.io.sdss_write import write_sdss_many
    from agnlens.simulate import simulate

    d = tmp_path_factory.mktemp("fits") / "victim"
    write_sdss_many(simulate(4, seed=5), d)
    return d


def test_ingest_overwrite_onto_its_own_input_folder_loses_nothing(fits_dir, capsys):
    before = {p.name: p.read_bytes() for p in fits_dir.iterdir()}
    assert main(["ingest", str(fits_dir), "--out", str(fits_dir), "--overwrite"]) == 2
    _one_error_line(capsys.readouterr().err, "ingest")
    assert {p.name: p.read_bytes() for p in fits_dir.iterdir()} == before
    # nor a folder that holds the inputs
    assert main(["ingest", str(next(fits_dir.iterdir())), "--out", str(fits_dir), "--overwrite"]) == 2
    assert "holds the input" in capsys.readouterr().err
    assert main(["ingest", str(fits_dir / "*.fits"), "--out", str(fits_dir.parent), "--overwrite"]) == 2
    assert {p.name: p.read_bytes() for p in fits_dir.iterdir()} == before


def test_overwrite_replaces_only_an_agnlens_store(fits_dir, tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\documentclass{book}")
    assert main(["ingest", str(fits_dir), "--out", str(thesis), "--overwrite"]) == 2
    err = capsys.readouterr().err
    _one_error_line(err, "ingest")
    assert "not an agnlens store" in err
    assert (thesis / "thesis.tex").read_text() == "\\documentclass{book}"
    with pytest.raises(FileExistsError, match="not an agnlens store"):
        write_store(make_set(3), thesis, overwrite=True)
    plain = tmp_path / "notes.txt"
    plain.write_text("keep")
    with pytest.raises(FileExistsError, match="not an agnlens store"):
        write_store(make_set(3), plain, overwrite=True)
    assert plain.read_text() == "keep"
    # a store is replaced
    store = write_store(make_set(3), tmp_path / "s.zarr")
    assert main(["simulate", "--n", "5", "--out", str(store), "--overwrite"]) == 0
    assert len(open_store(store)) == 5


# ------------------------------------------------------------------------------- damaged chunks
def _chunk(path: Path, array: str, i: int) -> Path:
    import zarr

    arr = zarr.open_group(str(path), mode="r")[array]
    return path / array / arr.metadata.encode_chunk_key((i,) + (0,) * (arr.ndim - 1))


def test_a_deleted_flux_chunk_is_an_error_naming_array_and_chunk(tmp_path):
    path = write_store(make_set(30), tmp_path / "s.zarr", chunk_size=8)
    _chunk(path, "flux", 2).unlink()
    for read in (lambda: open_store(path), lambda: read_rows(path, 0, 8), lambda: store_info(path)):
        with pytest.raises(ReadError, match=r"array 'flux' has lost chunk 2 \(rows 16-23"):
            read()


def test_a_deleted_labels_chunk_never_makes_everything_unlabelled(tmp_path, capsys):
    path = write_store(make_set(30), tmp_path / "s.zarr", chunk_size=8)
    _chunk(path, "meta/label", 0).unlink()
    with pytest.raises(ReadError, match="array 'meta/label' has lost chunk 0"):
        store_info(path)
    assert main(["info", str(path)]) == 2
    _one_error_line(capsys.readouterr().err, "info")


def test_an_all_zero_chunk_is_written_so_it_is_not_taken_for_a_lost_one(tmp_path):
    s = make_set(16)
    s = SpectrumSet(wavelength=s.wavelength, flux=np.zeros_like(s.flux), ivar=np.zeros_like(s.ivar), mask=s.mask,
                    meta=s.meta, grid=s.grid, provenance=s.provenance)
    path = write_store(s, tmp_path / "s.zarr", chunk_size=8)
    append_store(make_set(8, start=100), path)  # the mask of these rows is all False: still written
    assert len(open_store(path, lazy=False)) == 24


@pytest.mark.parametrize("array", ["flux", "mask", "meta/spec_id"])
def test_a_corrupted_chunk_fails_its_checksum_lazily_and_eagerly(tmp_path, array):
    path = write_store(make_set(30), tmp_path / "s.zarr", chunk_size=8)
    f = _chunk(path, array, 1)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    f.write_bytes(bytes(data))
    pattern = f"array '{array}', chunk 1 \\(rows 8-15\\) is damaged.*checksum"
    with pytest.raises(ReadError, match=pattern):
        read_rows(path, 0, 30)
    if array != "meta/spec_id":
        with pytest.raises(ReadError, match=pattern):
            np.asarray(open_store(path).flux if array == "flux" else open_store(path).mask)
    else:
        with pytest.raises(ReadError, match=pattern):
            open_store(path)


# ---------------------------------------------------------------------------------- output paths
def test_classify_never_writes_onto_its_input(fits_dir, tmp_path, capsys):
    spectrum = tmp_path / "s.fits"
    spectrum.write_bytes(next(fits_dir.iterdir()).read_bytes())
    before = spectrum.read_bytes()
    assert main(["classify", str(spectrum), "--out", str(spectrum)]) == 2
    _one_error_line(capsys.readouterr().err, "classify")
    assert spectrum.read_bytes() == before
    # another spelling of the same path
    assert main(["classify", str(spectrum), "--out", str(tmp_path / "." / "s.fits")]) == 2
    assert spectrum.read_bytes() == before


def test_every_command_refuses_to_write_onto_an_input(tmp_path, capsys):
    store = write_store(make_set(4), tmp_path / "s.zarr")
    cases = [
        ["baseline", str(store), "--out", str(store)],
        ["train", str(store), "--out", str(store)],
        ["evaluate", str(store), "--model", str(tmp_path / "m.skops"), "--out", str(store)],
        ["demo", "--store", str(store), "--out", str(store)],
        ["download", str(tmp_path / "c.csv"), "--out", str(tmp_path / "c.csv")],
        ["report", str(tmp_path), "--out", str(store / "zarr.json")],
    ]
    (tmp_path / "c.csv").write_text("spec_id\n0266-51602-0001\n")
    (tmp_path / "m.skops").write_bytes(b"not a model")
    before = (store / "zarr.json").read_bytes()
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        _one_error_line(err, argv[0])
        assert "input" in err, err
    assert (store / "zarr.json").read_bytes() == before
    assert (tmp_path / "c.csv").read_text() == "spec_id\n0266-51602-0001\n"


def test_an_existing_out_without_overwrite_is_one_line_and_exit_2(fits_dir, tmp_path, capsys):
    store = write_store(make_set(4), tmp_path / "s.zarr")
    for argv in (["ingest", str(fits_dir), "--out", str(store)], ["simulate", "--n", "3", "--out", str(store)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        _one_error_line(err, argv[0])
        assert "already exists; pass --overwrite" in err
    assert len(open_store(store)) == 4


def test_a_249_character_output_name_works(fits_dir, tmp_path, capsys):
    from agnlens.atomic import write_text

    name = "r" * 245 + ".csv"
    assert len(name) == 249
    write_text(tmp_path / name, "x")
    assert (tmp_path / name).read_text() == "x"
    store = write_store(make_set(4), tmp_path / ("s" * 244 + ".zarr"))
    append_store(make_set(2, start=10), store)
    assert len(open_store(store)) == 6
    assert main(["-q", "simulate", "--n", "3", "--out", str(store), "--overwrite"]) == 0
    assert main(["-q", "ingest", str(fits_dir), "--out", str(tmp_path / ("i" * 244 + ".zarr"))]) == 0


# --------------------------------------------------------------------------------------- resume
_KILLED_INGEST = """
import os, sys
import agnlens.stages.reading
from agnlens.stages import ingest_files
calls, real_one = [0], agnlens.stages.reading.read_one
def counted(*a, **k):
    calls[0] += 1
    if calls[0] == 3:
        os._exit(9)      # killed while reading the third file
    return real_one(*a, **k)
agnlens.stages.reading.read_one = counted
ingest_files([sys.argv[1]], sys.argv[2], batch_size=1)
"""


def test_a_changed_input_is_not_answered_with_the_killed_runs_results(tmp_path):
    from agnlens.io.sdss_write import write_sdss_many
    from agnlens.simulate import simulate
    from agnlens.stages import ingest_files

    d = tmp_path / "in"
    files = write_sdss_many(simulate(4, seed=8), d)
    out = tmp_path / "s.zarr"
    killed = subprocess.run([sys.executable, "-c", _KILLED_INGEST, str(d), str(out)], capture_output=True, timeout=300)
    assert killed.returncode == 9, killed.stderr
    # the first file now holds another spectrum under the same name (same size: a rewrite in place)
    other = write_sdss_many(simulate(4, seed=9), tmp_path / "other")
    by_id = {p.name: p for p in other}
    replacement = by_id.get(files[0].name) or other[0]
    files[0].write_bytes(replacement.read_bytes())
    work = tmp_path / ".s.zarr.ingest-work"
    for overwrite in (False, True):  # the killed run's work is never deleted, not even to overwrite
        refusal = f"holds the work of a different run.*files_sha256.*delete {re.escape(str(work))}"
        with pytest.raises(ValueError, match=refusal):
            ingest_files([d], out, batch_size=1, overwrite=overwrite)
        assert not out.exists() and work.is_dir()
    shutil.rmtree(work)  # as the message says
    ingest_files([d], out, batch_size=1)
    fresh, _ = ingest_files([d], tmp_path / "fresh.zarr", batch_size=1)
    np.testing.assert_array_equal(open_store(out, lazy=False).flux, open_store(fresh, lazy=False).flux)


def test_a_part_on_another_grid_is_refused_on_assembly(tmp_path):
    """A part's flux travels with its wavelengths: one written on another grid (the resume record
    edited, say) is named, never stacked into the store."""
    from agnlens.atomic import hidden_sibling
    from agnlens.grid import get_grid
    from agnlens.stages import ingest_files
    from agnlens.stages.storing import ingest_batch

    from realdata import BOSS, LEGACY

    out = tmp_path / "s.zarr"
    parts = hidden_sibling(out, "ingest-work") / "parts"
    parts.mkdir(parents=True)
    ingest_batch([str(LEGACY), str(BOSS)], str(parts), 0, get_grid("balmer"), None, False, 0.1)
    with np.load(parts / "batch-000000.npz") as part:
        np.testing.assert_array_equal(part["wavelength"], get_grid("balmer").wavelength)
    with pytest.raises(ValueError, match=r"batch-000000\.npz: this part's flux is on another grid"):
        ingest_files([str(LEGACY), str(BOSS)], out, grid="paper")
    assert not out.exists()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """60 simulated spectra in a store, a linear SpectrumSVC fitted on them and its model file."""
    from agnlens.models.persistence import save_model
    from agnlens.models.svm import SpectrumSVC
    from agnlens.simulate import simulate_set

    d = tmp_path_factory.mktemp("small")
    spectra = simulate_set(60, seed=4)
    model = SpectrumSVC(kernel="linear").fit(np.asarray(spectra.flux, float), spectra.labels)
    save_model(model, d / "m.skops", metadata={"grid": spectra.provenance["grid"]})
    return spectra, model, d / "m.skops"


def test_the_same_store_given_twice_is_classified_once(small, tmp_path, capsys):
    spectra, _, model_file = small
    store = write_store(spectra, tmp_path / "s.zarr")
    out = tmp_path / "r.csv"
    spelled = str(tmp_path / "." / "s.zarr")
    assert main(["-q", "classify", "--model", str(model_file), str(store), spelled, "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 60
    err = capsys.readouterr().err
    assert err.count("given more than once") == 1 and spelled in err


# ------------------------------------------------------------------------------- CLI exit codes
@pytest.mark.parametrize("argv, option", [
    (["ingest", "x.fits", "--out", "o.zarr", "--batch-size", "0"], "--batch-size"),
    (["ingest", "x.fits", "--out", "o.zarr", "--scheduler", "bogus"], "--scheduler"),
    (["ingest", "x.fits", "--out", "o.zarr", "--max-bad-fraction", "-1"], "--max-bad-fraction"),
    (["download", "c.csv", "--out", "d", "--timeout", "0"], "--timeout"),
    (["download", "c.csv", "--out", "d", "--retries", "-1"], "--retries"),
    (["classify", "x.fits", "--out", "r.csv", "--scheduler", "tcp:/"], "--scheduler"),
    (["demo", "--n-random", "-3"], "--n-random"),
    (["baseline", "x.fits", "--out", "b.csv", "--jobs", "0"], "--jobs"),
    (["baseline", "x.fits", "--out", "b.csv", "--jobs", "-5"], "--jobs"),
    (["baseline", "x.fits", "--out", "b.csv", "--min-fwhm", "-1"], "--min-fwhm"),
    (["baseline", "x.fits", "--out", "b.csv", "--min-fwhm", "nan"], "--min-fwhm"),
    (["baseline", "x.fits", "--out", "b.csv", "--min-delta-bic", "nan"], "--min-delta-bic"),
    (["classify", "x.fits", "--out", "r.csv", "--mc", "-2"], "--mc"),
    (["demo", "--n", "0"], "--n"),
    (["demo", "--seed", "-1"], "--seed"),
    (["simulate", "--n", "-4", "--out", "s.zarr"], "--n"),
    (["train", "s.zarr", "--out", "m.skops", "--seed", "-1"], "--seed"),
    (["evaluate", "s.zarr", "--model", "m.skops", "--seed", "-1"], "--seed"),
    (["explain", "x.fits", "--out", "e", "--max-figures", "-1"], "--max-figures"),
    (["realism", "x.fits", "--out", "r", "--folds", "1"], "--folds"),
    (["realism", "x.fits", "--out", "r", "--repeats", "0"], "--repeats"),
    (["report", "d", "--max-gallery", "-1"], "--max-gallery"),
])
def test_usage_errors_exit_2_in_one_line(argv, option, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    _one_error_line(err, argv[0])
    assert option in err
    assert not any(tmp_path.iterdir())  # nothing was started


def test_os_errors_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["simulate", "--n", "3", "--out", str(tmp_path / "file" / "s.zarr")]) == 2
    _one_error_line(capsys.readouterr().err, "simulate")
    assert main(["-v", "simulate", "--n", "3", "--out", str(tmp_path / "file" / "s.zarr")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("agnlens simulate: error:")


# ------------------------------------------------------------------------------ CSV injection
def test_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path):
    from agnlens.atomic import write_csv

    table = pd.DataFrame({
        "spec_id": ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "plain", "-1.5"],
        "score": [-1.0, 2.0, -3.5, 0.0, 1.0, -0.25, 4.0],
    })
    write_csv(tmp_path / "t.csv", table)
    back = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert back["spec_id"].tolist() == [
        "'=HYPERLINK(\"http://x\")", "'+1+1", "'-2+3", "'@SUM(A1)", "'\tx", "plain", "-1.5"
    ]
    np.testing.assert_array_equal(back["score"], table["score"])  # negative numbers stay numbers


def test_classify_store_escapes_formula_spec_ids(small, tmp_path):
    from agnlens.stages import classify_store

    spectra, model, _ = small
    meta = spectra.meta.copy()
    meta.loc[0, "spec_id"] = "=cmd|' /C calc'!A0"
    meta.loc[1, "spec_id"] = "@evil"
    spectra = SpectrumSet(wavelength=spectra.wavelength, flux=spectra.flux, ivar=spectra.ivar, mask=spectra.mask,
                          meta=meta, grid=spectra.grid, provenance=spectra.provenance)
    store = write_store(spectra, tmp_path / "s.zarr")
    out = classify_store(model, store, tmp_path / "out")
    ids = pd.read_csv(out, dtype={"spec_id": str})["spec_id"]
    assert ids[0] == "'=cmd|' /C calc'!A0" and ids[1] == "'@evil"
    assert not ids.str.match(r"^[=+\-@]").any()


# ------------------------------------------------------------------- a worker killed at start-up
_DIE_ONCE = """
import os
from pathlib import Path

def dask_setup(worker):
    flag = Path({flag!r})
    if not flag.exists():      # the first worker to start is killed; later ones live
        flag.touch()
        os._exit(9)
"""


@pytest.mark.slow
def test_a_worker_killed_during_cluster_start_up_is_retried(small, tmp_path):
    """A LocalCluster whose first worker dies while starting (~30 s on 2 busy cores)."""
    import dask

    from agnlens.stages import classify_store

    spectra, model, _ = small
    store = write_store(spectra, tmp_path / "s.zarr", chunk_size=20)
    flag = tmp_path / "died"
    preload = tmp_path / "die_once.py"
    preload.write_text(_DIE_ONCE.format(flag=str(flag)))
    with dask.config.set({"distributed.worker.preload": [str(preload)]}):
        got = classify_store(model, store, tmp_path / "cluster", executor="processes")
    assert flag.exists()  # a worker did die while the cluster started
    want = classify_store(model, store, tmp_path / "local", executor="local")
    pd.testing.assert_frame_equal(pd.read_csv(got), pd.read_csv(want))
