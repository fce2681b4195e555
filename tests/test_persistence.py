"""Model files: round trip, provenance, refusal of foreign / tampered / untrusted files, grid check."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from agnlens.errors import ModelFileError
from agnlens.models import SpectrumSVC
from agnlens.models.persistence import FORMAT_VERSION, check_grid, load_model, save_model, training_data_hash


class NotAllowed:
    """A type a model file must not smuggle in."""


@pytest.fixture(scope="module")
def fitted():
    X, y = make_classification(150, 30, n_informative=8, n_classes=3, n_clusters_per_class=1, random_state=0)
    y = np.array(["type1", "type2", "intermediate"])[y]
    return SpectrumSVC(kernel="rbf", standardize=True, random_state=0).fit(X, y), X, y


def _meta(X, y):
    return {
        "grid": {"name": "paper", "n_pixels": 1000, "lo": 3729.0, "hi": 5266.0, "spacing": "linear"},
        "preprocessing": {"normalisation": "median"},
        "split_seed": 0,
        "split_sizes": {"train": np.int64(96), "validation": 24, "test": 30},
        "data_hash": training_data_hash(X, y),
        "tuning": pd.DataFrame({"C": [0.1, 1.0], "gamma": [np.nan, 0.01]}),
        "test": {"f1": np.float32(0.9)},
    }


def test_round_trip_keeps_predictions_and_metadata(fitted, tmp_path):
    model, X, y = fitted
    path = save_model(model, tmp_path / "m.skops", metadata=_meta(X, y))
    loaded, meta = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert meta["agnlens_model_format"] == FORMAT_VERSION == 2
    assert meta["task"] == "multiclass"
    assert meta["classes"] == list(model.classes_)
    assert meta["data_hash"] == training_data_hash(X, y) and meta["data_hash"].startswith("sha256:")
    assert meta["tuning"][0]["gamma"] is None and meta["split_sizes"]["train"] == 96
    assert {"numpy", "scikit-learn", "skops", "agnlens"} <= set(meta["versions"])
    assert [p.name for p in tmp_path.iterdir()] == ["m.skops"]  # no temporary file left behind


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "m.skops"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match="not a skops zip"):
        load_model(path)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "missing.skops")


def test_plain_skops_file_is_not_ours(fitted, tmp_path):
    import skops.io as sio

    model, _, _ = fitted
    sio.dump(model, tmp_path / "plain.skops")
    with pytest.raises(ModelFileError, match="not an agnlens model file"):
        load_model(tmp_path / "plain.skops")


def test_tampered_payload_is_refused(fitted, tmp_path):
    model, X, y = fitted
    path = save_model(model, tmp_path / "m.skops", metadata=_meta(X, y))
    tampered = tmp_path / "t.skops"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        sizes = {i.filename: i.file_size for i in src.infolist()}
        victim = max((n for n in sizes if n.endswith(".npy")), key=sizes.get)  # the support vectors
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == victim:
                data = data[:-8] + np.float64(1e6).tobytes()
            dst.writestr(info, data)
    with pytest.raises(ModelFileError, match="tampered"):
        load_model(tampered)


def test_wrong_format_marker_is_refused(fitted, tmp_path):
    model, X, y = fitted
    path = save_model(model, tmp_path / "m.skops", metadata=_meta(X, y))
    other = tmp_path / "o.skops"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(other, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "agnlens.json":
                meta = json.loads(data)
                meta["agnlens_model_format"] = 99
                data = json.dumps(meta).encode()
            dst.writestr(info, data)
    with pytest.raises(ModelFileError, match="agnlens_model_format is 99"):
        load_model(other)


def test_untrusted_type_is_refused_even_with_a_valid_hash(fitted, tmp_path):
    model, X, y = fitted
    import copy

    evil = copy.deepcopy(model)
    evil.payload_ = NotAllowed()
    path = save_model(evil, tmp_path / "evil.skops", metadata=_meta(X, y))
    with pytest.raises(ModelFileError, match="allow-list.*NotAllowed"):
        load_model(path)


def test_check_grid(fitted):
    from agnlens.preprocess import get_grid
    from agnlens.spectra import SpectrumSet

    model, X, y = fitted
    meta = _meta(X, y)

    def spectra_on(name):
        wl = get_grid(name).wavelength
        n = 2
        return SpectrumSet(wl, np.ones((n, wl.size), np.float32), np.ones((n, wl.size), np.float32),
                           np.zeros((n, wl.size), bool), pd.DataFrame({"spec_id": ["a", "b"]}), grid=name)

    check_grid(meta, spectra_on("paper"))
    with pytest.raises(ModelFileError, match=r"trained on grid 'paper'.*--grid paper"):
        check_grid(meta, spectra_on("balmer"))
    with pytest.raises(ModelFileError, match="records no wavelength grid"):
        check_grid({}, spectra_on("paper"))


def test_a_pinned_model_is_read_once_so_it_cannot_be_swapped_after_the_check(fitted, tmp_path, monkeypatch):
    """``--model-sha256``: the bytes that are hashed are the bytes that are loaded. The file is
    opened exactly once (a second open is the window in which a swapped file was loaded in 7 of 25
    runs); a genuine file loads under its pin, a forged one with the genuine name is refused."""
    import builtins
    import hashlib
    import io

    model, X, y = fitted
    path = save_model(model, tmp_path / "m.skops", metadata=_meta(X, y))
    pin = hashlib.sha256(path.read_bytes()).hexdigest()
    opened = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, bytes)) or hasattr(file, "__fspath__"):
            if str(file) == str(path):
                opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    loaded, meta = load_model(path, sha256=pin)
    monkeypatch.undo()
    assert len(opened) == 1, f"the model file was opened {len(opened)} times"
    assert meta["file_sha256"] == pin
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    other = SpectrumSVC(kernel="linear", random_state=0).fit(X, y)
    save_model(other, tmp_path / "forged.skops", metadata=_meta(X, y)).replace(path)
    from agnlens.errors import ModelPinError

    with pytest.raises(ModelPinError, match="is not the pinned"):
        load_model(path, sha256=pin)
