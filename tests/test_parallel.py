"""Dask execution over a store: a real 2-worker LocalCluster matches the in-process run within the
reproducibility contract (docs/reproducing.md: its workers run one BLAS thread each, so not bit for
bit), survives a killed worker, and a rerun resumes without redoing finished chunks."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agnlens.engine import map_chunks
from agnlens.io.store import open_store, write_store
from agnlens.spectra import SpectrumSet
from agnlens.stages import Executor, classify_store, explain_store

from contract import PROBA_ATOL, assert_same_predictions, assert_same_saliency

N_PIX = 120
CLASSES = np.array(["type1", "type2", "intermediate"])


def synthetic(n: int, seed: int, start: int = 0) -> SpectrumSet:
    """Hβ-like spectra: broad line (type 1), narrow (type 2), narrow on weak broad (intermediate)."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(4700.0, 5020.0, N_PIX)
    y = rng.integers(0, 3, n)
    broad = np.where(y == 0, 1.0, np.where(y == 2, 0.3, 0.0))[:, None] * rng.uniform(0.5, 1.5, (n, 1))
    narrow = np.where(y == 0, 0.2, 1.0)[:, None] * rng.uniform(0.5, 1.5, (n, 1))
    sig_b = rng.uniform(25, 45, (n, 1))
    flux = 1 + broad * np.exp(-0.5 * ((wl - 4862.7) / sig_b) ** 2) + narrow * np.exp(-0.5 * ((wl - 4862.7) / 3) ** 2)
    flux += 3 * narrow * np.exp(-0.5 * ((wl - 5008.2) / 3) ** 2)
    flux += rng.normal(0, 0.08, flux.shape)
    meta = pd.DataFrame(
        {
            "spec_id": [
                f"{9000 + i // 600:04d}-{55000 + i % 600:05d}-{i % 1000 + 1:04d}" for i in range(start, start + n)
            ],
            "label": CLASSES[y],
            "z": rng.uniform(0.02, 0.1, n),
            "source": [f"synthetic-{i}" for i in range(start, start + n)],
        }
    )
    return SpectrumSet(
        wavelength=wl, flux=flux.astype(np.float32), ivar=np.full(flux.shape, 100, np.float32),
        mask=np.zeros(flux.shape, bool), meta=meta, grid="custom", provenance={"simulated": True},
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_store(synthetic(300, seed=1), tmp_path_factory.mktemp("store") / "s.zarr", chunk_size=50)


@pytest.fixture(scope="module")
def model():
    from agnlens.models.svm import SpectrumSVC

    train = synthetic(240, seed=2, start=10_000)
    return SpectrumSVC(kernel="rbf", C=3.0, random_state=0).fit(np.asarray(train.flux, float), train.labels)


@pytest.fixture(scope="module")
def cluster():
    """One real LocalCluster, started by ``scheduler="processes"`` (2 worker processes, 1 thread
    each), shared by the module's tests, which reach it through its address."""
    from agnlens.engine import get_client

    with get_client("processes", retries=3) as client:
        yield client.scheduler.address


def read_csv(path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


# module-level functions so that workers can unpickle them -------------------------------------
def record_calls(chunk: SpectrumSet, calls_dir: str, fail_flag: str) -> pd.DataFrame:
    """Log every call as a file; fail for row 100 while ``fail_flag`` exists."""
    start = int(chunk.meta["source"].iloc[0].split("-")[1])
    Path(calls_dir, f"{start:06d}-{uuid.uuid4().hex}").touch()
    if start == 100 and os.path.exists(fail_flag):
        raise RuntimeError("planned failure")
    flux = np.asarray(chunk.flux, dtype=np.float64)
    return pd.DataFrame({"spec_id": chunk.spec_id, "n_in_chunk": len(chunk), "total": flux.sum(axis=1)})


def die_once(chunk: SpectrumSet, model, marker_dir: str) -> dict:
    """Kill the worker process (no clean-up) on the first attempt at rows 150–199."""
    if chunk.meta["source"].iloc[0] == "synthetic-150":
        marker = Path(marker_dir, "died")
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
    Path(marker_dir, f"ran-{chunk.meta['source'].iloc[0]}-{uuid.uuid4().hex}").touch()
    proba = model.predict_proba(np.asarray(chunk.flux, np.float64))
    return {"proba": proba, "ids": pd.DataFrame({"spec_id": chunk.spec_id})}


# ----------------------------------------------------------------------------------------------
def test_classify_local_matches_model(store, model, tmp_path):
    path = classify_store(model, store, tmp_path / "out")
    got = read_csv(path)
    spectra = open_store(store, lazy=False)
    X = np.asarray(spectra.flux, np.float64)
    # BLAS rounds the last bit differently for different batch shapes, so the exact reference
    # calls the model on the same chunks; the whole-array call agrees to rounding
    expected = np.concatenate([model.predict_proba(X[a : a + 50]) for a in range(0, 300, 50)])
    np.testing.assert_allclose(expected, model.predict_proba(X), rtol=1e-12, atol=1e-15)
    classes = np.asarray(model.classes_).astype(str)
    np.testing.assert_array_equal(got[[f"p_{c}" for c in classes]].to_numpy(), expected)
    np.testing.assert_array_equal(got["spec_id"], spectra.spec_id)
    np.testing.assert_array_equal(got["predicted_label"], model.predict(np.asarray(spectra.flux, np.float64)))
    assert (got["predicted_label"] == got["label"]).mean() > 0.9  # the synthetic classes are learnable
    assert {"applicable", "flags", "z_offset_kms", "grid"} <= set(got.columns)  # the classify stage's table
    assert not (tmp_path / "out" / "parts").exists()


def test_cluster_matches_local_within_the_contract(store, model, cluster, tmp_path):
    from agnlens.stages import read_predictions

    local = classify_store(model, store, tmp_path / "local")
    remote = classify_store(model, store, tmp_path / "remote", executor=cluster)
    assert_same_predictions(read_predictions(local), read_predictions(remote), model)

    ex_local = explain_store(model, store, tmp_path / "xl", method="gradient")
    ex_remote = explain_store(model, store, tmp_path / "xr", method="gradient", executor=cluster)
    import zarr

    a = zarr.open_array(str(ex_local["saliency"]), mode="r")[:]
    b = zarr.open_array(str(ex_remote["saliency"]), mode="r")[:]
    assert a.shape == (300, N_PIX) and a.dtype == np.float32
    assert_same_saliency(a, b)
    # the index: which spectra, which class explained (no near-tie among these predictions)
    pd.testing.assert_frame_equal(read_csv(ex_local["index"]), read_csv(ex_remote["index"]), check_exact=False,
                                  rtol=PROBA_ATOL, atol=PROBA_ATOL)

    # and the maps are the exact gradients of the explained probability
    from agnlens.explain.gradient import proba_gradient

    spectra = open_store(store, lazy=False)
    X = np.asarray(spectra.flux, np.float64)
    index = read_csv(ex_local["index"])
    np.testing.assert_array_equal(index["target_class"], index["predicted_label"])
    reference = proba_gradient(model, X)  # target None = the predicted class
    np.testing.assert_allclose(a, reference.astype(np.float32), rtol=1e-6, atol=1e-7 * np.abs(reference).max())
    np.testing.assert_array_equal(index["predicted_label"], model.predict(X))


def test_killed_worker_is_retried_with_the_same_results(store, model, cluster, tmp_path):
    (tmp_path / "m0").mkdir()
    (tmp_path / "m0" / "died").write_text("not on this run")  # the in-process reference must not die
    markers = tmp_path / "m1"
    markers.mkdir()
    reference = map_chunks(die_once, store, tmp_path / "ref", args=(model, str(tmp_path / "m0")), job="die")
    result = map_chunks(die_once, store, tmp_path / "run", args=(model, str(markers)), job="die", scheduler=cluster)
    assert (markers / "died").exists(), "the worker was never killed"
    import zarr

    a = zarr.open_array(str(reference.outputs["proba"]), mode="r")[:]
    b = zarr.open_array(str(result.outputs["proba"]), mode="r")[:]
    np.testing.assert_allclose(a, b, rtol=0, atol=PROBA_ATOL)  # this process vs a worker: the contract
    pd.testing.assert_frame_equal(read_csv(reference.outputs["ids"]), read_csv(result.outputs["ids"]))
    # the chunk that killed its worker ran again and completed exactly once
    assert len(list(markers.glob("ran-synthetic-150-*"))) == 1
    assert result.n_computed == 6


def test_resume_redoes_nothing_finished(store, cluster, tmp_path):
    calls, flag = tmp_path / "calls", tmp_path / "fail"
    calls.mkdir()
    flag.touch()
    out = tmp_path / "out"
    args = (str(calls), str(flag))
    with pytest.raises(RuntimeError, match="1 of 6 chunks failed.*rerun the same command to resume"):
        map_chunks(record_calls, store, out, args=args, retries=1)
    first = sorted(p.name[:6] for p in calls.iterdir())
    # every chunk ran once, the failing one twice (retries=1)
    assert first == ["000000", "000050", "000100", "000100", "000150", "000200", "000250"]
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.done")}
    assert len(done_before) == 5
    flag.unlink()
    res = map_chunks(record_calls, store, out, args=args, scheduler=cluster)
    assert (res.n_skipped, res.n_computed) == (5, 1)
    second = sorted(p.name[:6] for p in calls.iterdir())
    assert second == sorted(first + ["000100"])  # only the unfinished chunk ran again
    res = map_chunks(record_calls, store, out, args=args)
    assert (res.n_skipped, res.n_computed) == (6, 0)
    assert sorted(p.name[:6] for p in calls.iterdir()) == second  # a finished run does nothing
    # the resumed result equals a clean run
    fresh = map_chunks(record_calls, store, tmp_path / "fresh", args=(str(tmp_path / "calls"), str(flag)))
    pd.testing.assert_frame_equal(read_csv(res.outputs["results"]), read_csv(fresh.outputs["results"]))
    table = read_csv(res.outputs["results"])
    assert len(table) == 300 and set(table["n_in_chunk"]) == {50}  # workers saw only their chunk


def test_processes_scheduler_is_two_single_thread_processes(cluster):
    import distributed

    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)  # a worker killed by an earlier test may be restarting
        info = client.scheduler_info()
        assert sorted(client.nthreads().values()) == [1, 1]
        pids = client.run(os.getpid)
    assert len(info["workers"]) == 2 and len(set(pids.values())) == 2 and os.getpid() not in pids.values()


def test_errors(store, model, tmp_path):
    with pytest.raises(ValueError, match="scheduler must be 'local', 'processes' or an address"):
        classify_store(model, store, tmp_path / "a", executor="threads")
    classify_store(model, store, tmp_path / "b")
    with pytest.raises(ValueError, match="holds the work of a different run.*chunk_size"):
        classify_store(model, store, tmp_path / "b", executor=Executor(chunk_size=100))
    # a store rewritten with other spectra (same size) is not mistaken for the one classified
    other = write_store(synthetic(300, seed=7), tmp_path / "other.zarr", chunk_size=50)
    classify_store(model, other, tmp_path / "o")
    write_store(synthetic(300, seed=8), other, chunk_size=50, overwrite=True)
    with pytest.raises(ValueError, match="different run.*store_uid"):
        classify_store(model, other, tmp_path / "o")
    with pytest.raises(TypeError, match="predict_proba"):
        classify_store(object(), store, tmp_path / "c")
    with pytest.raises(ValueError, match="retries must be"):
        map_chunks(record_calls, store, tmp_path / "d", retries=-1)
    with pytest.raises(RuntimeError, match="chunks failed.*TypeError.*must return a DataFrame"):
        map_chunks(len, store, tmp_path / "e", retries=0)


# ------------------------------------------------------------------------------------ ingest
from realdata import FULL_DATA as REAL, needs_full_set  # noqa: E402  (counts below are of the 95-spectrum set)


def real_inputs(tmp_path: Path) -> list[str]:
    """The 95 real spectra, the real DR7 quasar (rejected for coverage), a non-FITS file and a
    copy of a real file under another name (a duplicate spec_id)."""
    import shutil

    bad = tmp_path / "inputs" / "spec-0000-00000-0000.fits"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("this is not a FITS file\n")
    dup = tmp_path / "inputs" / "copy-of-spec-0266-51602-0013.fits"
    shutil.copy(REAL / "sdss" / "spectra" / "spec-0266-51602-0013.fits", dup)
    return [str(REAL / "sdss" / "spectra"), str(REAL / "sdss-dr7"), str(bad), str(dup)]


@needs_full_set
def test_ingest_files_on_cluster_matches_serial_ingest(cluster, tmp_path):
    from agnlens.stages import ingest_files
    from agnlens.stages.reading import read_files as ingest

    inputs = real_inputs(tmp_path)
    labels = str(REAL / "sdss" / "labels.csv")
    serial, serial_summary = ingest(inputs, labels=labels, grid="balmer")
    path, summary = ingest_files(
        inputs, tmp_path / "out.zarr", labels=labels, grid="balmer", scheduler=cluster, batch_size=16
    )
    got = open_store(path, lazy=False)
    assert len(got) == 95 and got.grid.name == "balmer"
    for name in ("flux", "ivar", "mask"):
        np.testing.assert_array_equal(getattr(got, name), getattr(serial, name))
    pd.testing.assert_frame_equal(got.meta, serial.meta, check_dtype=False)
    assert (summary.n_inputs, summary.accepted, summary.unlabelled) == (98, 95, 0)
    assert sorted(map(str, summary.rejected)) == sorted(map(str, serial_summary.rejected))
    reasons = {Path(r.source).name: r.reason for r in summary.rejected}
    assert len(reasons) == 3 and "grid" in reasons["spSpec-51993-0542-631.fit"]
    assert "not a FITS file" in reasons["spec-0000-00000-0000.fits"]
    # the two files with spec_id 0266-51602-0013: the first in input order is kept, the other rejected
    assert sum("duplicate spec_id 0266-51602-0013" in r for r in reasons.values()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "out.zarr"]  # work directory removed


_INGEST_SCRIPT = """
import os, sys
import agnlens.stages.reading
from agnlens.stages import ingest_files
calls, die_at = [0], int(sys.argv[3])
real_one = agnlens.stages.reading.read_one
def counted(*a, **k):
    calls[0] += 1
    if calls[0] == die_at:
        os._exit(9)   # killed in the middle of a batch: no clean-up runs
    return real_one(*a, **k)
agnlens.stages.reading.read_one = counted   # ingest_batch looks it up at call time
if __name__ == "__main__":
    ingest_files(sys.argv[1].split(os.pathsep), sys.argv[2], batch_size=4)
    print(calls[0])
"""


@needs_full_set
def test_killed_ingest_leaves_no_store_and_resumes(tmp_path):
    import subprocess
    import sys

    from agnlens.stages.reading import read_files as ingest

    inputs = real_inputs(tmp_path)
    out = tmp_path / "s.zarr"
    script = tmp_path / "run_ingest.py"
    script.write_text(_INGEST_SCRIPT)

    def run(die_at: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), os.pathsep.join(inputs), str(out), str(die_at)],
            capture_output=True, text=True, timeout=300,
        )

    killed = run(die_at=30)  # files 1–28 are 7 finished batches of 4; file 30 is in batch 8
    assert killed.returncode == 9
    assert not out.exists()
    work = tmp_path / ".s.zarr.ingest-work"
    assert len(list((work / "parts").glob("*.done"))) == 7
    resumed = run(die_at=0)
    assert resumed.returncode == 0, resumed.stderr
    assert int(resumed.stdout.split()[-1]) == 98 - 28  # nothing finished was read again
    serial, _ = ingest(inputs)
    got = open_store(out, lazy=False)
    np.testing.assert_array_equal(got.flux, serial.flux)
    pd.testing.assert_frame_equal(got.meta, serial.meta, check_dtype=False)
    assert not work.exists()


def test_a_chunk_failing_on_the_cluster_is_reported_and_the_rest_kept(store, cluster, tmp_path):
    calls, flag = tmp_path / "calls", tmp_path / "fail"
    calls.mkdir()
    flag.touch()
    with pytest.raises(RuntimeError, match="1 of 6 chunks failed.*planned failure"):
        map_chunks(record_calls, store, tmp_path / "out", args=(str(calls), str(flag)), retries=1, scheduler=cluster)
    assert len(list((tmp_path / "out" / "parts").glob("*.done"))) == 5
    # the failing chunk ran twice (retries=1), every other chunk once
    assert sorted(p.name[:6] for p in calls.iterdir()).count("000100") == 2


def test_cluster_leaves_this_process_environment_as_it_was(monkeypatch):
    # Dask's nannies write OMP_NUM_THREADS=1 (and the BLAS twins) into the parent's os.environ for
    # their workers; a library loaded later in the parent would run on one thread
    from agnlens.engine import get_client

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with get_client("processes", retries=1) as client:
        worker_env = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert set(worker_env.values()) == {"1"}  # the workers still get one thread each
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["OPENBLAS_NUM_THREADS"] == "2"


@pytest.mark.timeout(120)
def test_tasks_are_waited_for_on_their_own_clients_loop(cluster):
    """Another client current in this thread (a caller's ``with Client(...)``, or a test fixture's)
    must not matter: the engine waits for its tasks on the loop of the client that submitted them.
    The current client here is closed, so its loop runs nothing: waited for there, the tasks would
    never be seen to finish. (With a live current client on another loop — the module fixture's
    — ``tests/test_cli_scheduler.py`` hung in one run of three before the fix.)"""
    import distributed

    from agnlens.engine.cluster import execute
    from agnlens.engine.resume import progress_bar

    results: dict = {}
    with distributed.Client(cluster) as other:  # the current client of this thread
        other.close()
        failures = execute(cluster, abs, [(i, (-i,)) for i in range(6)], (), 0, progress_bar(False, 6, 0),
                           results=results)
    assert failures == [] and results == {i: i for i in range(6)}
