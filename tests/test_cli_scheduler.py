"""`agnlens classify --scheduler`: a store classified on a real LocalCluster equals the in-process run."""

import numpy as np
import pandas as pd

from agnlens.cli import main
from agnlens.io.store import write_store
from agnlens.models.persistence import save_model
from agnlens.models.svm import SpectrumSVC
from agnlens.simulate import simulate_set


def test_classify_store_on_a_cluster_matches_in_process(tmp_path, capsys):
    train = simulate_set(150, seed=11)
    model = SpectrumSVC(kernel="rbf", C=10.0, random_state=0).fit(np.asarray(train.flux, float), train.labels)
    metadata = {"task": "multiclass", "grid": train.provenance["grid"]}
    model_path = save_model(model, tmp_path / "m.skops", metadata=metadata)
    store = tmp_path / "s.zarr"
    write_store(simulate_set(300, seed=12), store, chunk_size=64)

    outs = {}
    for scheduler in ("local", "processes"):
        out = tmp_path / f"{scheduler}.csv"
        argv = ["classify", "--model", str(model_path), str(store), "--out", str(out), "--scheduler", scheduler]
        assert main(argv) == 0
        outs[scheduler] = pd.read_csv(out, dtype={"spec_id": str})
        assert not any(p.name.endswith(".work") for p in tmp_path.iterdir()), "work folder left behind"
    # the scheduler path writes the predictions; the applicability columns come from the in-process stage
    shared = ["spec_id", "predicted_label", "p_intermediate", "p_type1", "p_type2"]
    pd.testing.assert_frame_equal(outs["local"][shared], outs["processes"][shared])
    assert {"applicable", "flags", "z_offset_kms", "grid"} <= set(outs["local"].columns)
    # the same numbers as calling the model directly
    spectra = simulate_set(300, seed=12)
    proba = model.predict_proba(np.asarray(spectra.flux, float))
    local = outs["local"][["p_intermediate", "p_type1", "p_type2"]].to_numpy()
    np.testing.assert_allclose(local, proba, rtol=1e-5, atol=1e-6)


def test_explain_store_on_a_cluster_matches_exact_gradients(tmp_path):
    import zarr

    from agnlens.explain.gradient import proba_gradient

    train = simulate_set(150, seed=11)
    model = SpectrumSVC(kernel="linear", C=1.0, random_state=0).fit(np.asarray(train.flux, float), train.labels)
    metadata = {"task": "multiclass", "grid": train.provenance["grid"]}
    model_path = save_model(model, tmp_path / "m.skops", metadata=metadata)
    spectra = simulate_set(130, seed=13)
    write_store(spectra, tmp_path / "s.zarr", chunk_size=50)
    out = tmp_path / "expl"
    argv = ["explain", str(model_path), str(tmp_path / "s.zarr"), "--out", str(out), "--scheduler", "processes"]
    assert main(argv) == 0
    values = zarr.open_array(out / "s.zarr" / "saliency.zarr", mode="r")[:]
    expected = proba_gradient(model, np.asarray(spectra.flux, float))
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())
    argv = ["explain", str(model_path), str(tmp_path / "m.skops"), "--out", str(out), "--scheduler", "processes"]
    assert main(argv) == 2
