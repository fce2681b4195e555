"""train / evaluate / classify commands, called through agnlens.cli.main on temporary data."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from agnlens.cli import main

from realdata import SPECTRA as SDSS  # the in-repo real spectra (tests/data)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A small simulated store and a model trained on it with the CLI."""
    from agnlens.io.store import write_store
    from agnlens.simulate import simulate_set

    d = tmp_path_factory.mktemp("cli")
    write_store(simulate_set(300, seed=2, grid="paper"), d / "sim.zarr")
    write_store(simulate_set(20, seed=3, grid="balmer"), d / "balmer.zarr")
    rc = main(["-q", "train", str(d / "sim.zarr"), "--task", "multiclass", "--out", str(d / "m.skops"),
               "--kernels", "linear", "rbf"])
    assert rc == 0
    return d


def test_train_writes_model_and_metrics(workdir, capsys):
    rc = main(["-q", "train", str(workdir / "sim.zarr"), "--task", "binary", "--out", str(workdir / "b.skops"),
               "--kernels", "linear", "--seed", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "validation_f1" in out and "validation: macro F1" in out and "test: macro F1" in out and "SIMULATED" in out
    metrics = json.loads((workdir / "b.metrics.json").read_text())
    assert metrics["task"] == "binary" and metrics["classes"] == ["type1", "type2"]
    assert metrics["split_seed"] == 1 and metrics["test"]["f1"] >= 0.9
    assert {"f1_ci95", "confusion_matrix", "roc_auc"} <= set(metrics["test"])
    m = json.loads((workdir / "m.metrics.json").read_text())
    assert m["classes"] == ["intermediate", "type1", "type2"] and m["grid"]["name"] == "paper"


def test_evaluate_prints_and_writes_json(workdir, capsys):
    rc = main(["-q", "evaluate", str(workdir / "m.skops"), str(workdir / "sim.zarr"), "--json", str(workdir / "ev.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "confusion matrix" in out and "trained and tuned on" in out
    ev = json.loads((workdir / "ev.json").read_text())
    assert ev["n"] == 300 and sum(map(sum, ev["confusion_matrix"])) == 300


def test_classify_fits_names_rejected_files(workdir, tmp_path, capsys):
    files = sorted(SDSS.glob("spec-*.fits"))[:6]
    bad = tmp_path / "broken.fits"
    bad.write_text("not a FITS file")
    out_csv = tmp_path / "res.csv"
    rc = main(["-q", "classify", "--model", str(workdir / "m.skops"), *map(str, files), str(bad), "--out", str(out_csv)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("broken.fits") == 1 and "rejected" in err
    table = pd.read_csv(out_csv)
    assert list(table.columns) == ["spec_id", "predicted_label", "p_intermediate", "p_type1", "p_type2"]
    assert len(table) == 6
    p = table[["p_intermediate", "p_type1", "p_type2"]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert (table["predicted_label"].to_numpy() == np.array(["intermediate", "type1", "type2"])[p.argmax(1)]).all()


def test_classify_store_and_refuse_other_grid(workdir, tmp_path, capsys):
    out_csv = tmp_path / "res.csv"
    assert main(["-q", "classify", "--model", str(workdir / "m.skops"), str(workdir / "sim.zarr"), "--out", str(out_csv)]) == 0
    assert len(pd.read_csv(out_csv)) == 300
    rc = main(["-q", "classify", "--model", str(workdir / "m.skops"), str(workdir / "balmer.zarr"), "--out",
               str(tmp_path / "no.csv")])
    err = capsys.readouterr().err
    assert rc == 1 and "--grid paper" in err and not (tmp_path / "no.csv").exists()


def test_classify_refuses_tampered_model(workdir, tmp_path, capsys):
    tampered = tmp_path / "t.skops"
    with zipfile.ZipFile(workdir / "m.skops") as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "schema.json":  # swap the kernel for another one
                assert b'\\"linear\\"' in data or b'\\"rbf\\"' in data
                data = data.replace(b'\\"rbf\\"', b'\\"poly\\"').replace(b'\\"linear\\"', b'\\"poly\\"')
            dst.writestr(info, data)
    rc = main(["-q", "classify", "--model", str(tampered), str(workdir / "sim.zarr"), "--out", str(tmp_path / "r.csv")])
    assert rc == 1 and "tampered" in capsys.readouterr().err


@pytest.mark.slow
def test_default_model_is_built_once_and_cached(tmp_path, monkeypatch, capsys):
    """Builds the real default model (simulated 3,346 spectra, full search): ~1 min on 2 cores."""
    from agnlens.models.default import default_model, default_model_path

    monkeypatch.setenv("AGNLENS_CACHE", str(tmp_path))
    files = sorted(SDSS.glob("spec-*.fits"))[:3]
    rc = main(["-q", "classify", *map(str, files), "--out", str(tmp_path / "res.csv")])
    assert rc == 0
    path = default_model_path("multiclass")
    assert path.parent == tmp_path and path.exists()
    model, meta = default_model("multiclass")  # loads from the cache
    assert meta["default_model"]["n"] == 3346 and meta["simulated"] is True
    # quality gate on the default simulated set (its untouched test split)
    assert meta["test"]["f1"] >= 0.8 and meta["validation"]["f1"] >= 0.8
    table = pd.read_csv(tmp_path / "res.csv")
    assert len(table) == 3 and set(table["predicted_label"]) <= set(model.classes_)


def test_default_model_cache_is_keyed_by_the_code_that_builds_it(monkeypatch, tmp_path):
    """A model cached by other code (e.g. an older simulator) must not be reused."""
    from agnlens.models import default

    monkeypatch.setenv("AGNLENS_CACHE", str(tmp_path))
    path = default.default_model_path("multiclass")
    assert path.parent == tmp_path and default.recipe_key() in path.name
    assert default.default_model_path("multiclass") == path  # stable
    monkeypatch.setitem(default.DEFAULT_RECIPE, "n", 1000)
    assert default.default_model_path("multiclass") != path
    monkeypatch.undo()
    monkeypatch.setattr(default, "RECIPE_MODULES", default.RECIPE_MODULES[:-1])
    assert default.default_model_path("multiclass").name != path.name
