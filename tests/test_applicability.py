"""Applicability of predictions: the training-domain PCA against scikit-learn, the kernel values
against a brute-force loop, collapse and out-of-distribution flags, older models without a domain,
and the flag rate on simulated test spectra."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics.pairwise import rbf_kernel

from agnlens.models.applicability import (
    KERNEL_COLLAPSE,
    applicability,
    intercept_share,
    max_kernel,
    reason,
)
from agnlens.models.domain import TrainingDomain
from agnlens.models.svm import SpectrumSVC
from agnlens.models.tuning import split, train
from agnlens.simulate import simulate_set
from agnlens.stages import classify


@pytest.fixture(scope="module")
def trained():
    """A model trained the study's way (split, tuning, domain) on a small simulated set."""
    spectra = simulate_set(300, seed=4, grid="paper")
    result = train(spectra, kernels=("rbf",), n_boot=0, seed=4)
    return spectra, result


def test_domain_pca_matches_sklearn_and_mahalanobis_a_loop():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 40)) @ rng.normal(size=(40, 40))
    domain = TrainingDomain(n_components=5).fit(X)
    ref = PCA(n_components=5).fit(X)
    np.testing.assert_allclose(np.abs(domain.components_ @ ref.components_.T), np.eye(5), atol=1e-8)
    np.testing.assert_allclose(domain.variance_, ref.explained_variance_, rtol=1e-10)
    Y = rng.normal(size=(7, 40)) * 3
    residual, mahal = domain.score(Y)
    T = ref.transform(Y)
    for i in range(7):
        assert mahal[i] == pytest.approx(np.sqrt(sum(T[i, k] ** 2 / ref.explained_variance_[k] for k in range(5))))
        back = ref.inverse_transform(T[i : i + 1])[0]
        assert residual[i] == pytest.approx(np.sqrt(np.mean((Y[i] - back) ** 2)))
    r_thr, m_thr = domain.thresholds(0.5)
    assert r_thr == pytest.approx(np.median(domain.score(X)[0]))


def test_max_kernel_and_intercept_share_against_a_loop(trained):
    spectra, result = trained
    model = result.model
    X = np.asarray(spectra.flux[:5], dtype=np.float64)
    Z = model.scaler_.transform(X) if model.scaler_ is not None else X
    ref = rbf_kernel(Z, model.support_vectors_, gamma=model.gamma_).max(axis=1)
    np.testing.assert_allclose(max_kernel(model, X), ref, rtol=1e-9)
    f = model.pairwise_decision_function(X)
    b = np.abs(model.intercept_)
    loop = [min(b[q] / (b[q] + abs(f[i, q] - model.intercept_[q])) for q in range(b.size)) for i in range(5)]
    np.testing.assert_allclose(intercept_share(model, X), loop, rtol=1e-12)


def test_a_spectrum_far_from_everything_is_flagged_but_still_predicted(trained):
    spectra, result = trained
    model = result.model
    odd = spectra[np.arange(3)]
    odd.flux[0] = 1000.0  # a flat spectrum of constant flux 1000
    odd.flux[1] = odd.flux[1] + 20.0 * np.sin(np.arange(odd.n_pixels) / 7.0)
    table = classify(model, odd, check_redshift=False)
    assert len(table) == 3 and np.isfinite(table[[f"p_{c}" for c in model.classes_]].to_numpy()).all()
    assert not table["applicable"][0] and "kernel-collapse" in table["flags"][0]
    assert table["max_kernel"][0] < KERNEL_COLLAPSE
    assert "out-of-distribution" in table["flags"][1]
    assert table["applicable"][2] and table["flags"][2] == ""
    assert reason(table["flags"][0]).startswith("kernel collapse")


def test_models_without_a_domain_fall_back(trained):
    spectra, result = trained
    model = result.model
    domain = model.training_domain_
    try:
        del model.training_domain_
        judged = applicability(model, spectra[np.arange(4)]).table
        assert set(judged["ood_check"]) == {"support vectors"} and judged["pca_residual"].isna().all()
    finally:
        model.training_domain_ = domain
    linear = SpectrumSVC(kernel="linear").fit(np.asarray(spectra.flux, float), spectra.labels)
    judged = applicability(linear, spectra[np.arange(4)]).table
    assert set(judged["ood_check"]) == {"unavailable"} and judged["max_kernel"].isna().all()


def test_the_domain_is_saved_with_the_model(trained, tmp_path):
    from agnlens.models.persistence import load_model, save_model

    _, result = trained
    save_model(result.model, tmp_path / "m.skops", metadata=result.metadata)
    loaded, _ = load_model(tmp_path / "m.skops")
    np.testing.assert_array_equal(loaded.training_domain_.components_, result.model.training_domain_.components_)


def test_at_most_one_percent_of_simulated_test_spectra_are_flagged():
    """Simulated test spectra (never seen by the PCA nor by the thresholds) are like the training
    ones: the applicability check must leave ≥ 99 % of them applicable. The model is fitted as
    :func:`train` fits its best cell (train split; domain thresholds on the validation split)."""
    spectra = simulate_set(1500, seed=7, grid="paper")
    parts = split(spectra.labels, seed=7)
    X = np.asarray(spectra.flux, dtype=np.float64)
    model = SpectrumSVC(kernel="rbf", C=100.0, calibration_cv=None)
    model.fit(X[parts["train"]], spectra.labels[parts["train"]])
    model.training_domain_ = TrainingDomain().fit(X[parts["train"]], X[parts["validation"]])
    judged = applicability(model, spectra[parts["test"]]).table
    assert len(judged) >= 290
    assert (~judged["applicable"]).mean() <= 0.01, judged["flags"].value_counts()
    # and the per-spectrum redshift check on some of them: lines at the simulated redshift
    table = classify(model, spectra[parts["test"][:6]])
    assert not table["flags"].str.contains("redshift-offset").any()
