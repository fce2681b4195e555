"""Deletion / insertion curves: endpoints, a brute-force reference, and the quality gate that
exact-gradient order beats a random order on a trained SVM on simulated spectra."""

from __future__ import annotations

import numpy as np
import pytest

from agnlens.explain.attribution import continuum, saliency
from agnlens.explain.curves import Faithfulness, deletion_curve, faithfulness, insertion_curve
from agnlens.models.svm import SpectrumSVC
from agnlens.simulate import simulate_set


@pytest.fixture(scope="module")
def study():
    """A linear SVM (the study's best kernel, C = 0.07, balanced) trained on simulated spectra,
    and held-out spectra to explain."""
    spectra = simulate_set(counts={"type1": 40, "type2": 60, "intermediate": 40}, seed=3)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(spectra))
    train, test = order[:100], order[100:]
    X = np.asarray(spectra.flux, float)
    model = SpectrumSVC(kernel="linear", C=0.07, class_weight="balanced", random_state=0)
    model.fit(X[train], spectra.labels[train])
    return model, spectra[test]


def test_curve_endpoints_are_the_spectrum_and_the_baseline(study):
    model, spectra = study
    sub = spectra[:6]
    sal = saliency(model, sub, method="gradient")
    X = np.asarray(sub.flux, float)
    base = continuum(sub.wavelength, X)
    rows = np.arange(6)
    p_x = model.predict_proba(X)[rows, sal.target_index]
    p_b = model.predict_proba(base)[rows, sal.target_index]
    d = deletion_curve(model, sub, sal, steps=10)
    i = insertion_curve(model, sub, sal, steps=10)
    assert d.fraction[0] == 0 and d.fraction[-1] == 1 and d.probability.shape == (6, 11)
    np.testing.assert_allclose(d.probability[:, 0], p_x, atol=1e-12)
    np.testing.assert_allclose(d.probability[:, -1], p_b, atol=1e-12)
    np.testing.assert_allclose(i.probability[:, 0], p_b, atol=1e-12)
    np.testing.assert_allclose(i.probability[:, -1], p_x, atol=1e-12)
    np.testing.assert_allclose(d.auc, np.trapezoid(d.probability, d.fraction, axis=1))


def test_deletion_curve_equals_a_brute_force_loop(study):
    model, spectra = study
    sub = spectra[:3]
    sal = saliency(model, sub, method="gradient")
    X = np.asarray(sub.flux, float)
    base = np.zeros_like(X)
    d = deletion_curve(model, X, sal.values, sal.target_index, baseline="zeros", steps=4)
    n_pix = X.shape[1]
    for i in range(3):
        order = np.argsort(-sal.values[i], kind="stable")
        for k, frac in enumerate(np.linspace(0, 1, 5)):
            x = X[i].copy()
            x[order[: int(round(frac * n_pix))]] = base[i, 0]
            expected = model.predict_proba(x[None])[0, sal.target_index[i]]
            assert d.probability[i, k] == pytest.approx(expected, abs=1e-12)


def test_abs_ranking_orders_by_magnitude(study):
    model, spectra = study
    sub = spectra[:2]
    sal = saliency(model, sub, method="gradient")
    signed = deletion_curve(model, sub, sal, steps=20, rank="signed")
    magnitude = deletion_curve(
        model, sub, -sal.values, sal.target_index, steps=20, rank="abs", wavelength=sub.wavelength
    )
    same = deletion_curve(model, sub, sal.values, sal.target_index, steps=20, rank="abs")
    np.testing.assert_allclose(magnitude.probability, same.probability)  # the sign does not matter
    assert not np.allclose(signed.probability, same.probability)


def test_exact_gradient_order_beats_random_order(study):
    model, spectra = study
    maps = {"gradient": saliency(model, spectra, method="gradient")}
    result = faithfulness(model, spectra, maps, steps=20, random_repeats=3)
    row = result.table.iloc[0]
    # the quality gate: deleting the pixels the gradient ranks first removes p_target much faster
    assert row["deletion_auc"] < 0.8 * row["random_deletion_auc"], row.to_dict()
    assert row["insertion_auc"] > row["random_insertion_auc"], row.to_dict()


def test_faithfulness_table_ranks_methods(study):
    model, spectra = study
    sub = spectra[:8]
    sal = saliency(model, sub, method="gradient")
    anti = -sal.values  # the worst possible order: evidence against the class first
    result = faithfulness(model, sub, {"gradient": sal, "anti": anti}, steps=10, random_repeats=2, seed=1)
    assert isinstance(result, Faithfulness)
    t = result.table
    assert list(t.columns[:5]) == ["method", "deletion_auc", "insertion_auc", "random_deletion_auc", "n_spectra"]
    assert result.ranking == ["gradient", "anti"]
    assert list(t["rank"]) == [1, 2] and (t["n_spectra"] == 8).all()
    assert np.all(np.diff(t["deletion_auc"]) >= 0)
    curves = result.curves
    assert set(curves["deletion"]) == {"gradient", "anti", "random"}
    assert curves["fraction"].shape == curves["deletion"]["gradient"].shape == (11,)
    # seeded: a rerun is identical
    again = faithfulness(model, sub, {"gradient": sal, "anti": anti}, steps=10, random_repeats=2, seed=1)
    np.testing.assert_array_equal(again.table["random_deletion_auc"], t["random_deletion_auc"])


def test_faithfulness_computes_the_standard_methods_itself(study):
    model, spectra = study
    sub = spectra[:3]
    type2_mean = np.asarray(spectra.flux[spectra.labels == "type2"], float).mean(axis=0)
    result = faithfulness(model, sub, steps=5, random_repeats=1, baseline_spectra=type2_mean)
    assert sorted(result.ranking) == sorted(
        ["gradient", "finite-difference", "smoothgrad", "integrated-gradients", "occlusion"]
    )


def test_mismatched_attributions_are_refused(study):
    model, spectra = study
    with pytest.raises(ValueError, match=r"attributions have shape \(2, 5\), expected the spectra's shape"):
        deletion_curve(model, spectra[:2], np.zeros((2, 5)))
    with pytest.raises(ValueError, match="continuum.*needs the wavelength"):
        deletion_curve(model, np.asarray(spectra.flux[:2], float), np.zeros((2, spectra.n_pixels)))
