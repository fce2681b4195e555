"""The study end to end (what `agnlens demo` runs): metrics schema, files, bitwise reproducibility."""

import json

import numpy as np
import pandas as pd
import pytest

from agnlens.cli import main
from agnlens.pipeline import run_study

from realdata import needs_full_set  # the one place real spectra come from (tests/realdata.py)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    a = tmp_path_factory.mktemp("study-a")
    b = tmp_path_factory.mktemp("study-b")
    # a small sample: every stage runs, the whole module stays well under a minute
    kw = dict(n=240, seed=3, n_random_saliency=5, perplexity=20.0)
    # the second run writes PDFs beside its PNGs: the numbers must not depend on the figure format
    return run_study(a, **kw), run_study(b, report=False, figure_format="pdf", dpi=40, **kw)


def test_metrics_schema(two_runs):
    m = json.loads((two_runs[0].out / "metrics.json").read_text())
    assert m["dataset"]["n_spectra"] == 240 and m["dataset"]["simulated"] is True
    assert sum(m["dataset"]["counts"].values()) == 240
    for task, classes in (("binary", ["type1", "type2"]), ("multiclass", ["intermediate", "type1", "type2"])):
        t = m[task]
        assert sorted(t["classes"]) == classes
        assert {"kernel", "C", "class_weight"} <= set(t["best_params"])
        for key in ("f1", "precision", "recall", "accuracy", "balanced_accuracy", "roc_auc"):
            assert 0.0 <= t["test"][key] <= 1.0, (task, key)
        lo, hi = t["test"]["f1_ci95"]
        assert lo <= t["test"]["f1"] <= hi
        cm = np.asarray(t["test"]["confusion_matrix"])
        assert cm.shape == (len(classes), len(classes)) and cm.sum() == t["n"]["test"]
        assert 0.0 <= t["validation"]["f1"] <= 1.0
    s = m["saliency"]
    assert s["n_maps"] == s["n_misclassified"] + s["n_random"] and s["n_random"] == 5
    assert s["max_rel_error_vs_finite_differences"] < 1e-4
    assert 0.0 <= m["embedding"]["knn_accuracy"] <= 1.0
    assert m["timings_s"]["total"] > 0 and {"tune_binary", "saliency", "embedding"} <= set(m["timings_s"])
    assert m["versions"]["agnlens"] and m["versions"]["numpy"]


def test_results_folder_is_complete(two_runs):
    out = two_runs[0].out
    for name in ("report.html", "models/binary.skops", "models/multiclass.skops", "tuning_binary.csv",
                 "tuning_multiclass.csv", "predictions.csv", "embedding.csv", "line_table.csv",
                 "centre_wings.csv", "faithfulness.csv", "saliency/values.npy", "saliency/index.csv",
                 "figures/tsne.png", "figures/confusion_multiclass.png", "figures/centre_wings.png"):
        assert (out / name).is_file(), name
    index = pd.read_csv(out / "saliency" / "index.csv")
    values = np.load(out / "saliency" / "values.npy")
    assert values.shape == (len(index), 1000)
    emb = pd.read_csv(out / "embedding.csv")
    assert emb["has_saliency"].sum() == len(index)
    # every misclassified test spectrum is explained
    assert set(emb.loc[emb["misclassified"], "spec_id"]) <= set(index["spec_id"])
    # the names the report looks for are the names the study wrote
    from agnlens.results import ResultsFolder

    folder = ResultsFolder(out)
    assert [folder.relative(p) for p in folder.files() if not p.is_file()] == ["real/predictions.csv"]  # no real set
    assert all(folder.saliency_figure(s).is_file() for s in index["spec_id"].astype(str))
    figures = emb.loc[emb["has_saliency"], "saliency_figure"]
    assert all((out / f).is_file() for f in figures)
    assert "SIMULATED" in (out / "report.html").read_text()
    assert not list(out.rglob("*.part")), "temporary files left behind"


def test_the_predictions_are_the_classify_stage_s_on_every_spectrum(two_runs):
    """One predictions schema: the study's predictions.csv is what ``agnlens classify``'s stage gives
    for the saved three-class model on the same spectra (every applicability check), plus ``split``."""
    from agnlens.models.persistence import load_model
    from agnlens.simulate import simulate_set
    from agnlens.stages import classify

    out = two_runs[0].out
    study = pd.read_csv(out / "predictions.csv", dtype={"spec_id": str, "flags": str}, keep_default_na=False,
                        na_values=[""])
    model, _ = load_model(out / "models" / "multiclass.skops")
    spectra = simulate_set(240, seed=3, grid="paper")  # the study's sample (same n, seed, grid)
    expected = classify(model, spectra)
    assert list(study.columns) == [*expected.columns, "split"]
    assert set(study["split"]) == {"train", "validation", "test"}
    m = json.loads((out / "metrics.json").read_text())
    assert sorted(study["split"].value_counts().to_dict().items()) == sorted(
        (k, v) for k, v in m["split"].items() if k != "seed")
    assert list(study["spec_id"]) == list(expected["spec_id"])
    assert list(study["predicted_label"]) == list(expected["predicted_label"])
    assert list(study["flags"].fillna("")) == list(expected["flags"])
    numbers = [c for c in expected.columns if c.startswith("p_") or c in ("z_offset_kms", "max_kernel")]
    np.testing.assert_allclose(study[numbers].to_numpy(float), expected[numbers].to_numpy(float), rtol=1e-9,
                               atol=1e-12)
    # the applicability verdict is counted in metrics.json
    a = m["multiclass"]["applicability"]
    assert a["n"] == len(study) and a["n_applicable"] == int(study["applicable"].sum())
    assert sum(a["flags"].values()) == sum(len(f.split(";")) for f in study["flags"].fillna("") if f)
    assert f"{a['n_applicable']} of {a['n']} predictions applicable" in "\n".join(two_runs[0].summary_lines())


def test_same_seed_gives_bitwise_identical_results(two_runs):
    a, b = (r.out for r in two_runs)
    ma, mb = (json.loads((x / "metrics.json").read_text()) for x in (a, b))
    for m in (ma, mb):
        m.pop("timings_s")
        for task in ("binary", "multiclass"):
            m[task].pop("tuning_s", None)
            m[task].pop("model_sha256", None)  # the model file records its tuning wall times too
    assert ma == mb
    assert np.array_equal(np.load(a / "saliency" / "values.npy"), np.load(b / "saliency" / "values.npy"))
    for name in ("embedding.csv", "predictions.csv", "line_table.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_a_vector_format_is_written_beside_every_png(two_runs):
    from PIL import Image

    a, b = (r.out for r in two_runs)
    assert not list(a.rglob("*.pdf"))  # the default: PNG only
    pngs = sorted(b.glob("figures/**/*.png"))
    assert len(pngs) >= 8
    for png in pngs:
        assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF"), png
    with Image.open(pngs[0]) as im:
        assert im.info["dpi"] == pytest.approx((40, 40), abs=0.05)


def test_report_command_rebuilds_the_report(two_runs, capsys):
    out = two_runs[1].out
    assert not (out / "report.html").exists()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").stat().st_size > 10_000


def test_demo_refuses_a_sample_too_small_to_split(tmp_path, capsys):
    assert main(["demo", "--n", "10", "--out", str(tmp_path / "x")]) == 2
    assert "--n must be at least 60" in capsys.readouterr().err


@needs_full_set
def test_demo_on_real_spectra_with_too_few_type2_says_so_in_one_line(tmp_path, capsys):
    from realdata import FULL_SDSS as shared  # 20+ labelled type 1 / type 2, 2 of them type 2
    store = tmp_path / "real.zarr"
    assert main(["ingest", str(shared / "spectra"), "--labels", str(shared / "labels.csv"), "--out", str(store)]) == 0
    capsys.readouterr()
    assert main(["demo", "--store", str(store), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "agnlens demo: error: train: the binary task needs at least 20 usable spectra" in err
    assert "at least 5 of every class" in err and "'type2': 2" in err and "add labelled spectra of type2" in err
    assert "Traceback" not in err
