"""The real-spectra section of a study (agnlens.study_real): the real spectra go through the classify
stage once, and its table is the one predictions schema (as ``agnlens classify --measure`` writes it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realdata import LABELS, SPECTRA


@pytest.fixture(scope="module")
def model_and_real():
    """A small linear SpectrumSVC trained on simulated spectra, and the in-repo real SDSS spectra on its grid."""
    from agnlens.models.svm import SpectrumSVC
    from agnlens.simulate import simulate_set
    from agnlens.stages import read_inputs

    train = simulate_set(150, seed=0, grid="paper")
    model = SpectrumSVC(C=0.1, class_weight="balanced", calibration_cv=3, random_state=0)
    model.fit(np.asarray(train.flux, dtype=np.float64), train.labels)
    real, _ = read_inputs([str(SPECTRA)], grid="paper", labels=LABELS)
    return model, real


def _read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"spec_id": str, "label": str, "flags": str, "subtype": str},
                       keep_default_na=False, na_values=[""])


def test_the_real_table_is_classify_s_with_the_measurements(model_and_real, tmp_path):
    from agnlens.models.baseline import MEASURE_COLUMNS, measure
    from agnlens.stages import classify
    from agnlens.study_real import real_section

    model, real = model_and_real
    summary = real_section(tmp_path / "a", real, model, max_figures=3)
    table = _read(tmp_path / "a" / "real" / "predictions.csv")
    # the reference: the classify stage itself, its not-agn check reading the same measurements
    measured = measure(real)
    expected = classify(model, real, measurements=measured)
    assert list(table.columns) == [*expected.columns, *MEASURE_COLUMNS[1:], "saliency_figure"]
    assert list(table["spec_id"]) == list(real.spec_id)
    assert list(table["predicted_label"]) == list(expected["predicted_label"])
    assert list(table["flags"].fillna("")) == list(expected["flags"])
    pcols = [c for c in expected.columns if c.startswith("p_")]
    np.testing.assert_allclose(table[pcols].to_numpy(float), expected[pcols].to_numpy(float), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table["hb_fwhm_broad"].to_numpy(float),
                               measured["hb_fwhm_broad"].to_numpy(float), rtol=1e-5, equal_nan=True)
    # the figures: the disagreements first, at most max_figures, each written where the table says
    shown = table["saliency_figure"].fillna("")
    assert (shown != "").sum() == summary["n_figures"] == min(3, summary["n_explainable"])
    assert all((tmp_path / "a" / rel).is_file() for rel in shown if rel)
    assert all(rel.startswith("real/figures/saliency/") for rel in shown if rel)
    assert (tmp_path / "a" / "real" / "figures" / "thumbnails.png").is_file()
    assert summary["trust_columns"] == ["applicable", "flags", "z_offset_kms"]

