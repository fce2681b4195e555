"""``agnlens explain`` end to end: real SDSS files, simulated FITS files, a store; outputs, figures,
--verify, --class, rejections and exit status."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agnlens.cli import main
from agnlens.explain.attribution import Saliency
from agnlens.explain.gradient import proba_gradient
from agnlens.models.svm import SpectrumSVC
from agnlens.simulate import simulate, simulate_set

from realdata import DATA  # the in-repo real spectra (tests/data)

REAL = DATA / "sdss" / "spectra"
DR7 = DATA / "sdss-dr7" / "spSpec-51993-0542-631.fit"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from agnlens.models.persistence import save_model

    train = simulate_set(counts={"type1": 30, "type2": 40, "intermediate": 30}, seed=11)
    model = SpectrumSVC(kernel="linear", C=0.07, class_weight="balanced", random_state=0).fit(
        np.asarray(train.flux, float), train.labels
    )
    path = tmp_path_factory.mktemp("model") / "model.skops"
    save_model(model, path, metadata={"grid": train.provenance.get("grid"), "classes": list(model.classes_)})
    return path, model


@pytest.fixture(scope="module")
def fits_dir(tmp_path_factory):
    from agnlens.io.sdss_write import write_sdss_many

    out = tmp_path_factory.mktemp("fits")
    write_sdss_many(simulate(counts={"type1": 2, "type2": 2, "intermediate": 2}, seed=5), out)
    return out


def test_explain_writes_values_index_figures_and_line_table(model_file, fits_dir, tmp_path, capsys):
    path, model = model_file
    out = tmp_path / "out"
    status = main(["explain", "--model", str(path), str(fits_dir), "--out", str(out), "--max-figures", "4",
                   "--method", "gradient"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    sal = Saliency.load(out / "saliency")
    assert sal.values.shape == (6, 1000)
    index = pd.read_csv(out / "saliency" / "index.csv")
    assert list(index.columns[:6]) == ["row", "spec_id", "label", "predicted_label", "target_class", "reason"]
    np.testing.assert_array_equal(np.load(out / "saliency" / "wavelength.npy"), sal.wavelength)
    # the values are the exact gradient of the predicted class (stored as float32)
    exact = proba_gradient(model, sal.flux, target=sal.target_index)
    np.testing.assert_allclose(sal.values, exact, rtol=1e-4, atol=1e-7 * np.abs(exact).max())
    assert (out / "figures" / "gallery.png").is_file() and (out / "figures" / "line_table.png").is_file()
    figures = sorted(p.name for p in (out / "figures" / "saliency").iterdir())
    assert len(figures) == 4 and figures[0].endswith(".png") and figures[0][:-4] in set(sal.spec_id)
    table = pd.read_csv(out / "line_table.csv")
    columns = {"line", "kind", "lo", "hi", "class", "mean_saliency", "mean_abs_saliency", "share_abs"}
    assert columns <= set(table.columns)
    assert "Hbeta" in set(table["line"])
    cw = pd.read_csv(out / "centre_wings.csv")
    assert set(cw["line"]) == {"Hbeta"}
    assert "explained 6 spectra" in captured.out


def test_explain_by_default_decomposes_each_decision_over_lines(model_file, fits_dir, tmp_path, capsys):
    from agnlens.explain.attribution import continuum
    from agnlens.explain.contributions import CONTRIBUTION_COLUMNS

    path, model = model_file
    out = tmp_path / "default"
    assert main(["explain", "--model", str(path), str(fits_dir), "--out", str(out), "--max-figures", "0"]) == 0
    captured = capsys.readouterr().out
    sal = Saliency.load(out / "saliency")
    assert sal.method == "integrated-gradients"
    table = pd.read_csv(out / "line_contributions.csv", dtype={"spec_id": str})
    assert list(table.columns) == CONTRIBUTION_COLUMNS and "Hβ broad wings" in set(table["part"])
    # the parts of each spectrum add up to p(x) − p(its continuum), from predict_proba
    X = sal.flux.astype(float)
    rows = np.arange(len(sal)), sal.target_index
    gap = model.predict_proba(X)[rows] - model.predict_proba(continuum(sal.wavelength, X))[rows]
    total = table.groupby("spec_id", sort=False)["contribution"].sum().reindex(sal.spec_id).to_numpy()
    np.testing.assert_allclose(total, gap, atol=1e-4)  # float32 flux on disk; the CSV's 6 digits
    assert "line contributions:" in captured and ("towards" in captured or "against" in captured)
    n_type2 = int((sal.predicted == "type2").sum())
    assert n_type2 and f"({n_type2} predicted type 2" in captured


def test_explain_real_sdss_spectra_with_verify_and_class(model_file, tmp_path, capsys):
    path, model = model_file
    files = sorted(REAL.glob("spec-*.fits"))[:3]
    out = tmp_path / "real"
    status = main(["explain", "--model", str(path), *map(str, files), "--out", str(out), "--class", "type1",
                   "--verify", "--max-figures", "1", "--method", "integrated-gradients"])
    captured = capsys.readouterr()
    assert status == 0, captured.err + captured.out
    assert "verify: exact gradient vs finite differences on" in captured.out and ": ok" in captured.out
    sal = Saliency.load(out / "saliency")
    assert len(sal) == 3 and set(sal.target) == {"type1"} and sal.method == "integrated-gradients"
    assert sal.completeness is not None and np.abs(sal.completeness).max() < 0.02


def test_rejected_inputs_are_reported_one_line_each(model_file, tmp_path, capsys):
    path, _ = model_file
    good = sorted(REAL.glob("spec-*.fits"))[0]
    status = main(
        ["explain", "--model", str(path), str(good), str(DR7), "--out", str(tmp_path / "o"), "--max-figures", "0"]
    )
    captured = capsys.readouterr()
    assert status == 1
    rejected = [line for line in captured.err.splitlines() if line.startswith("agnlens explain: rejected")]
    assert len(rejected) == 1 and "spSpec-51993-0542-631.fit" in rejected[0]
    assert len(Saliency.load(tmp_path / "o" / "saliency")) == 1


def test_explain_a_store(model_file, tmp_path, capsys):
    from agnlens.io.store import write_store

    path, _ = model_file
    store = tmp_path / "s.zarr"
    write_store(simulate_set(counts={"type1": 3, "type2": 3, "intermediate": 2}, seed=2), store)
    status = main(["explain", "--model", str(path), str(store), "--out", str(tmp_path / "o"), "--method", "occlusion",
                   "--max-figures", "1", "--panels"])
    assert status == 0, capsys.readouterr().err
    sal = Saliency.load(tmp_path / "o" / "saliency")
    assert len(sal) == 8 and sal.method == "occlusion"
    assert set(sal.labels) == {"type1", "type2", "intermediate"}
    assert len(list((tmp_path / "o" / "figures" / "saliency").glob("*.png"))) == 1


def test_usage_errors(model_file, fits_dir, tmp_path, capsys):
    path, _ = model_file
    status = main(["explain", "--model", str(path), str(fits_dir), "--out", str(tmp_path / "o"), "--class", "type9"])
    assert status == 2
    assert "the class to explain, 'type9', is not a class of the model" in capsys.readouterr().err
    status = main(["explain", "--model", str(path), str(tmp_path / "nothing-here"), "--out", str(tmp_path / "o2")])
    assert status == 2
    assert "nothing-here" in capsys.readouterr().err


def test_a_model_file_given_as_an_input_is_read_as_a_spectrum_and_rejected(model_file, fits_dir, tmp_path, capsys):
    """The model is only ever --model: a model file among the inputs is an input like any other
    (rejected with its reason), and the spectra are explained with the --model given."""
    path, _ = model_file
    status = main(["explain", "--model", str(path), str(path), str(fits_dir), "--out", str(tmp_path / "o"),
                   "--max-figures", "0"])
    err = capsys.readouterr().err
    assert status == 1 and f"rejected {path}" in err
    assert len(Saliency.load(tmp_path / "o" / "saliency")) == 6


def test_collapsed_spectra_are_marked_and_reported_not_failed_by_verify(model_file, tmp_path, capsys):
    """A model trained with a tiny RBF width collapses on real spectra: every kernel value to its
    support vectors underflows, the output is the constant prior. explain must say so (figure,
    predictions.csv) and --verify must report such spectra, not fail on them."""
    from agnlens.models.persistence import save_model

    train = simulate_set(counts={"type1": 20, "type2": 20, "intermediate": 20}, seed=3)
    model = SpectrumSVC(kernel="rbf", gamma=50.0, random_state=0).fit(np.asarray(train.flux, float), train.labels)
    narrow = tmp_path / "narrow.skops"
    save_model(model, narrow, metadata={"grid": train.provenance.get("grid")})
    files = [REAL / "spec-1163-52669-0292.fits", REAL / "spec-0332-52367-0639.fits"]
    out = tmp_path / "c"
    status = main(["explain", "--model", str(narrow), *map(str, files), "--out", str(out), "--verify"])
    captured = capsys.readouterr()
    assert status == 0, captured.out + captured.err
    table = pd.read_csv(out / "predictions.csv", dtype={"spec_id": str, "flags": str}).fillna({"flags": ""})
    assert (~table["applicable"]).all() and table["flags"].str.contains("kernel-collapse").all()
    assert "collapsed spectra reported, not checked" in captured.out
    assert (out / "figures" / "saliency" / "1163-52669-0292.png").is_file()
