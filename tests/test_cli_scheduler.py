"""Every corridor keeps the reproducibility contract (docs/reproducing.md, :mod:`contract`): the same
spectra classified and explained through the library stage (in this process), the command line (in
this process and with ``--scheduler`` on a real Dask LocalCluster) and the Dask path of the stages.

Within this process, with the same chunks and BLAS threads, the numbers are bitwise the model's own
(independent references). Across executors — Dask workers run one BLAS thread, and another machine
kind rounds the last bits differently — they agree within the contract's tolerances, with the same
labels and flags (away from a threshold), not bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from agnlens.cli import main
from agnlens.io.store import open_store, write_store
from agnlens.models.persistence import save_model
from agnlens.models.svm import SpectrumSVC
from agnlens.simulate import simulate_set
from agnlens.stages import (
    Executor,
    classify,
    classify_store,
    explain,
    explain_saliency,
    explain_store,
    read_predictions,
)

from contract import assert_same_predictions, assert_same_saliency

CHUNK = 40  # 100 spectra: chunks of 40, 40 and 20 rows


@pytest.fixture(scope="module")
def cluster():
    """A real LocalCluster (2 worker processes), reached by its address like an external one."""
    from agnlens.engine import get_client

    with get_client("processes") as client:
        yield client.scheduler.address


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An RBF model (saved as a model file) and a store of 100 other simulated spectra."""
    d = tmp_path_factory.mktemp("corridors")
    train = simulate_set(150, seed=11)
    model = SpectrumSVC(kernel="rbf", C=10.0, random_state=0).fit(np.asarray(train.flux, float), train.labels)
    model_path = save_model(model, d / "m.skops", metadata={"task": "multiclass", "grid": train.provenance["grid"]})
    store = write_store(simulate_set(100, seed=12), d / "s.zarr", chunk_size=CHUNK)
    return model, model_path, store


def test_classify_keeps_the_contract_through_every_corridor(setup, cluster, tmp_path):
    model, model_path, store = setup
    spectra = open_store(store, lazy=False)
    library = classify(model, spectra, executor=Executor.for_store(store))
    on_cluster = Executor.for_store(store, cluster)
    dask = read_predictions(classify_store(model, store, tmp_path / "work", executor=on_cluster))
    # the Dask path gives the in-process stage's table: every column, applicability included
    assert {"applicable", "flags", "z_offset_kms", "grid", "max_kernel"} <= set(dask.columns)
    assert_same_predictions(dask, library, model)

    # the command line, in this process and on the cluster, writes the same table
    outs = {}
    for scheduler in ("local", cluster):
        out = tmp_path / f"{len(outs)}.csv"
        args = ["classify", "--model", str(model_path), str(store), "--out", str(out), "--scheduler", scheduler]
        assert main(args) == 0
        outs[scheduler] = read_predictions(out)
        assert not any(p.name.endswith(".work") for p in tmp_path.iterdir()), "work folder left behind"
    assert_same_predictions(outs["local"], outs[cluster], model)
    np.testing.assert_array_equal(outs["local"]["spec_id"], spectra.spec_id)

    # independent reference: the model's own predict_proba on the same chunks, in this process: bitwise
    X = np.asarray(spectra.flux, np.float64)
    proba = np.concatenate([model.predict_proba(X[a : a + CHUNK]) for a in range(0, len(X), CHUNK)])
    classes = np.asarray(model.classes_).astype(str)
    np.testing.assert_array_equal(library[[f"p_{c}" for c in classes]].to_numpy(), proba)
    np.testing.assert_array_equal(library["predicted_label"], model.predict(X))


def test_classify_measure_on_the_cluster_measures_in_the_chunks(setup, cluster, tmp_path, monkeypatch):
    """``classify --measure --scheduler``: the physics measurements are made in each chunk where it
    runs (the client never reads the store's spectra into memory) and equal those made in this
    process, which equal the baseline's own measure of the store's spectra."""
    import agnlens.io.store
    from agnlens.models.baseline import MEASURE_COLUMNS, measure

    model, model_path, store = setup
    opened, real_open = [], agnlens.io.store.open_store

    def watched(path, *, lazy=True):
        opened.append(lazy)
        return real_open(path, lazy=lazy)

    monkeypatch.setattr(agnlens.io.store, "open_store", watched)
    outs = {}
    for scheduler in (cluster, "local"):
        opened.clear()
        out = tmp_path / f"{len(outs)}.csv"
        args = ["classify", "--model", str(model_path), str(store), "--out", str(out), "--measure",
                "--scheduler", scheduler]
        assert main(args) == 0
        outs[scheduler] = read_predictions(out)
        if scheduler == cluster:
            assert opened and all(opened), "the client read the store's spectra"
    measured = measure(real_open(store, lazy=False))  # full precision; the CSVs hold 6 significant digits
    cols = [c for c in MEASURE_COLUMNS if c not in ("spec_id", "agrees_with_baseline")]
    numbers = [c for c in cols if measured[c].dtype.kind == "f"]
    assert numbers and list(outs[cluster].columns[-len(MEASURE_COLUMNS) + 1:]) == list(MEASURE_COLUMNS[1:])
    for table in outs.values():
        np.testing.assert_allclose(table[numbers].to_numpy(float), measured[numbers].to_numpy(float), rtol=1e-5,
                                   equal_nan=True)
        text = [c for c in cols if c not in numbers]
        np.testing.assert_array_equal(table[text].fillna("").astype(str), measured[text].fillna("").astype(str))


@pytest.fixture
def mixed_folder(tmp_path):
    """The real spectra of tests/data, one of them again under another name and a broken file."""
    import shutil

    from realdata import SPECTRA

    folder = tmp_path / "in"
    folder.mkdir()
    real = sorted(SPECTRA.glob("spec-*.fits"))
    for p in real:
        shutil.copy(p, folder / p.name)
    shutil.copy(real[0], folder / "spec-again.fits")  # the same spectrum under another name: kept once
    (folder / "spec-broken.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    return folder, real


def test_files_on_the_cluster_are_read_and_classified_by_the_workers(setup, cluster, mixed_folder, tmp_path,
                                                                      monkeypatch):
    """Files (and a store) with a Dask scheduler: every worker reads and classifies its own batches
    of files (the client reads none), and the table is the one made in this process within the
    contract — the store's rows first, then the files' in input order, a spec_id read twice kept
    once, an unreadable file rejected by its name, the physics measurements and the Monte-Carlo
    errors (the same draws: seeded by spec_id) alike."""

    import agnlens.stages.reading
    from agnlens.io.inputs import display_name
    from agnlens.models.persistence import load_model

    from realdata import LABELS

    _, model_path, store = setup
    folder, real = mixed_folder
    files = [str(store), *sorted(str(p) for p in folder.iterdir())]  # a store first, as users mix them
    options = dict(labels=LABELS, measure=True, mc_draws=5, return_rejected=True)
    here, lost_here = classify(str(model_path), files, executor=Executor(), **options)

    reads = []
    real_read = agnlens.stages.reading.read_items
    monkeypatch.setattr(agnlens.stages.reading, "read_items", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    there, lost_there = classify(str(model_path), files, executor=Executor(cluster, chunk_size=4), **options)
    assert reads == [], "the client read files that the workers were to read"
    model = load_model(model_path)[0]
    assert_same_predictions(there, here, model)
    mc = [c for c in here.columns if c.endswith("_mc_err")]
    read = here["source"].astype(str).str.endswith(".fits").to_numpy()  # a store's rows have no file to redraw
    assert mc and read.sum() == len(real) and np.isfinite(here.loc[read, mc].to_numpy(float)).all()
    np.testing.assert_allclose(there[mc].to_numpy(float), here[mc].to_numpy(float), rtol=1e-6, equal_nan=True)
    assert len(here) == 100 + len(real) and here["spec_id"].is_unique
    assert sorted(map(str, lost_there)) == sorted(map(str, lost_here))
    reasons = {r.source: r.reason for r in lost_there}
    assert "duplicate spec_id" in reasons[display_name(folder / "spec-again.fits")]
    assert display_name(folder / "spec-broken.fits") in reasons

    # the command line on the cluster: the same rows, the rejection named, exit status 1
    out = tmp_path / "r.csv"
    assert main(["classify", "--model", str(model_path), str(folder), "--out", str(out), "--scheduler", cluster]) == 1
    table = read_predictions(out)
    np.testing.assert_array_equal(table["spec_id"], here.loc[read, "spec_id"])


def test_explain_keeps_the_contract_through_every_corridor(setup, cluster, tmp_path):
    import zarr

    from agnlens.explain.gradient import proba_gradient

    model, model_path, store = setup
    spectra = open_store(store, lazy=False)
    library = explain_saliency(model, spectra, method="gradient",
                               executor=Executor.for_store(store)).values.astype(np.float32)
    dask = explain_store(model, store, tmp_path / "work", method="gradient",
                         executor=Executor.for_store(store, cluster))
    on_cluster = zarr.open_array(str(dask["saliency"]), mode="r")[:]
    assert on_cluster.dtype == np.float32 and on_cluster.shape == library.shape
    assert_same_saliency(on_cluster, library)

    out = tmp_path / "expl"
    assert main(["explain", "--model", str(model_path), str(store), "--out", str(out), "--max-figures", "0",
                 "--method", "gradient"]) == 0
    np.testing.assert_array_equal(np.load(out / "saliency" / "values.npy"), library)  # this process: bitwise
    assert main(["explain", "--model", str(model_path), str(store), "--out", str(out), "--scheduler", cluster,
                 "--method", "gradient", "--overwrite"]) == 0
    assert_same_saliency(zarr.open_array(str(out / "s.zarr" / "saliency.zarr"), mode="r")[:], library)

    # independent reference: the exact gradient of the predicted class's probability
    expected = proba_gradient(model, np.asarray(spectra.flux, float))
    np.testing.assert_allclose(library, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())
    # a model file is not a spectrum: the workers reject it by name, nothing to explain (exit 1)
    args = ["explain", "--model", str(model_path), str(model_path), "--out", str(tmp_path / "none"), "--scheduler",
            cluster]
    assert main(args) == 1


def test_files_on_the_cluster_are_read_and_explained_by_the_workers(setup, cluster, mixed_folder, tmp_path,
                                                                     monkeypatch):
    """``explain`` of files with a Dask scheduler: the workers read and explain batches of them (the
    client reads none) and this process writes what they send back; the same results folder as in
    this process within the contract — a spec_id read twice kept once, an unreadable file rejected
    by its name."""

    import pandas as pd

    import agnlens.stages.reading
    from agnlens.explain import Saliency
    from agnlens.io.inputs import display_name

    from realdata import LABELS

    model, model_path, _ = setup
    folder, real = mixed_folder
    here = explain(str(model_path), [str(folder)], tmp_path / "here", labels=LABELS, max_figures=3,
                   executor=Executor())
    reads = []
    real_read = agnlens.stages.reading.read_items
    monkeypatch.setattr(agnlens.stages.reading, "read_items", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    there = explain(str(model_path), [str(folder)], tmp_path / "there", labels=LABELS, max_figures=3,
                    executor=Executor(cluster, chunk_size=4))
    assert reads == [], "the client read files that the workers were to read"
    assert len(there.explanations) == len(here.explanations) == 1
    assert sorted(map(str, there.rejected)) == sorted(map(str, here.rejected))
    reasons = {r.source: r.reason for r in there.rejected}
    assert "duplicate spec_id" in reasons[display_name(folder / "spec-again.fits")]
    assert display_name(folder / "spec-broken.fits") in reasons

    a, b = tmp_path / "here", tmp_path / "there"
    assert_same_predictions(read_predictions(b / "predictions.csv"), read_predictions(a / "predictions.csv"), model)
    maps_here, maps_there = Saliency.load(a / "saliency"), Saliency.load(b / "saliency")
    assert len(maps_here) == len(real) and list(maps_there.spec_id) == list(maps_here.spec_id)
    assert_same_saliency(maps_there.values, maps_here.values)
    for name in ("line_table.csv", "line_contributions.csv"):
        x, y = pd.read_csv(a / name), pd.read_csv(b / name)
        assert list(x.columns) == list(y.columns) and len(x) == len(y)
        num = x.select_dtypes("number").columns
        np.testing.assert_allclose(y[num].to_numpy(float), x[num].to_numpy(float), rtol=1e-4, atol=1e-9,
                                   equal_nan=True)
    assert sorted(p.name for p in (b / "figures" / "saliency").iterdir()) == \
        sorted(p.name for p in (a / "figures" / "saliency").iterdir())


def test_in_memory_spectra_on_a_dask_executor_are_refused_not_run_here():
    spectra = simulate_set(3, seed=1)
    assert Executor().map(len, spectra) == [3]  # a local executor works on them here
    with pytest.raises(ValueError, match=r"in-memory spectra run in this process.*'processes'.*_store"):
        Executor("processes").map(len, spectra)
    with pytest.raises(ValueError, match="classify: in-memory spectra"):  # a stage given a scheduler name
        classify(None, spectra, executor="processes")


def test_explain_on_the_cluster_with_stores_and_files(setup, cluster, tmp_path, capsys):
    """Stores and files together on Dask: a file repeating a store's spec_id is a repeat; two stores
    of one name each get their own folder; ``--overwrite`` replaces a store's maps made by another
    method; a class no model has is one line before any work."""
    import shutil

    import pandas as pd

    from agnlens.models.persistence import load_model

    from realdata import SPECTRA

    _, model_path, _ = setup
    real = sorted(SPECTRA.glob("spec-*.fits"))[:3]
    store = tmp_path / "a" / "st.zarr"
    assert main(["ingest", *map(str, real), "--out", str(store), "--grid", "paper"]) == 0
    (tmp_path / "b").mkdir()
    shutil.copytree(store, tmp_path / "b" / "st.zarr")
    out = tmp_path / "out"
    argv = ["explain", "--model", str(model_path), str(store), str(tmp_path / "b" / "st.zarr"), *map(str, real),
            "--out", str(out), "--scheduler", cluster, "--method", "gradient"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("duplicate spec_id") == len(real), err
    assert (out / "st.zarr" / "index.csv").is_file() and (out / "st.zarr-2" / "index.csv").is_file()
    assert main([*argv[:-2], "--method", "integrated-gradients", "--overwrite"]) == 1
    assert len(pd.read_csv(out / "st.zarr" / "index.csv")) == len(real)
    assert (out / "provenance.json").is_file()
    classes = list(load_model(model_path)[0].classes_)
    assert main([*argv, "--class", "bogus", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and all(str(c) in err for c in classes) and "batch failed" not in err


def test_tasks_whose_shared_arguments_were_lost_are_submitted_again(cluster, monkeypatch):
    """When every worker holding the scattered model dies, the tasks waiting on it are cancelled;
    ``execute`` sends the shared arguments again and submits those tasks again (here the loss is
    made by cancelling the first scatter's futures)."""
    import agnlens.engine.cluster as engine
    from agnlens.engine.resume import progress_bar

    real_scatter = engine._scatter
    calls = []

    def losing_scatter(client, shared, attempts=2):
        futures = real_scatter(client, shared, attempts)
        calls.append(len(shared))
        if len(calls) == 1:
            client.cancel(futures)  # as if every worker holding them had died
        return futures

    monkeypatch.setattr(engine, "_scatter", losing_scatter)
    answers = {}
    failures = engine.execute(cluster, _add, [(i, (i,)) for i in range(6)], (10,), 2, progress_bar(False, 6, 0),
                              results=answers)
    assert failures == [] and answers == {i: i + 10 for i in range(6)} and len(calls) == 2


def _add(i, shared):
    return i + shared


def test_answers_after_a_failed_task_are_handed_on_not_held(cluster):
    """``explain`` on Dask takes the batches in input order as they come: a batch that fails is
    handed on as lost at once (its files rejected), so the later ones do not wait in memory."""
    from agnlens.engine import execute
    from agnlens.engine.resume import progress_bar
    from agnlens.stages.explain_inputs import _InOrder

    seen = []
    answers = _InOrder(lambda value: seen.append(("took", value)), lambda i, error: seen.append(("lost", i)))
    failures = execute(cluster, _fail_first, [(i, (i,)) for i in range(5)], (), 0, progress_bar(False, 5, 0),
                       results=answers)
    assert [i for i, _ in failures] == [0]
    assert seen == [("lost", 0), *(("took", i) for i in range(1, 5))] and not answers


def _fail_first(i):
    if i == 0:
        raise ValueError("the first batch fails")
    return (i,)
