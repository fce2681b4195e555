"""The default explanation: Integrated Gradients from each spectrum's continuum, checked against
``predict_proba`` (completeness) and a binary linear model's closed form; its line contributions
(disjoint parts that add up to the map); and the gate on real spectra — maps of one predicted class
differ from spectrum to spectrum, where the gradient's do not."""

from __future__ import annotations

import numpy as np
import pytest
from test_saliency_methods import WL, toy_spectra

from agnlens.explain.attribution import DEFAULT_METHOD, continuum, saliency
from agnlens.explain.contributions import (
    CONTRIBUTION_COLUMNS,
    contribution_sentence,
    describe_contributions,
    line_contributions,
)
from agnlens.lines import PARTS, line, parts_on, velocity
from agnlens.models.svm import SpectrumSVC
from agnlens.plot.saliency import attribution_label

from realdata import LABELS, SPECTRA


@pytest.fixture(scope="module")
def data():
    return toy_spectra(n_per_class=20, seed=3)


@pytest.fixture(scope="module")
def linear(data):
    return SpectrumSVC(kernel="linear", C=0.1, class_weight="balanced", random_state=0).fit(
        np.asarray(data.flux, float), data.labels)


def median_correlation(values: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Median pairwise Pearson correlation of the maps within each group of ≥ 3 spectra."""
    out = {}
    for g in np.unique(groups):
        V = values[groups == g]
        if len(V) >= 3:
            out[str(g)] = float(np.median(np.corrcoef(V)[np.triu_indices(len(V), 1)]))
    return out


def test_the_default_is_integrated_gradients_from_the_continuum_and_complete(linear, data):
    sub = data[np.arange(0, 60, 4)]
    X = np.asarray(sub.flux, float)
    sal = saliency(linear, sub)
    assert sal.method == DEFAULT_METHOD == "integrated-gradients" and sal.options["baseline"] == "continuum"
    assert "by integrated-gradients" in sal.figure_title(0)
    assert "Δp" in attribution_label(sal.method, sal.target[0]) and "per pixel" in attribution_label(sal.method)
    assert "∂p" in attribution_label("gradient", sal.target[0])
    t = np.arange(len(sub)), sal.target_index
    gap = linear.predict_proba(X)[t] - linear.predict_proba(continuum(WL, X))[t]
    assert np.abs(gap).max() > 0.1  # the lines do move the decision
    # completeness against predict_proba itself, to the quadrature's error (Gauss-Legendre: tiny)
    np.testing.assert_allclose(sal.values.sum(axis=1), gap, rtol=0, atol=1e-6)
    np.testing.assert_allclose(sal.completeness, sal.values.sum(axis=1) - gap, atol=1e-12)


def test_gauss_legendre_converges_faster_than_the_trapezoid(linear, data):
    sub = data[[1, 25, 47]]
    X = np.asarray(sub.flux, float)
    t = np.arange(3), np.argmax(linear.predict_proba(X), axis=1)
    gap = linear.predict_proba(X)[t] - linear.predict_proba(continuum(WL, X))[t]
    err = {rule: np.abs(saliency(linear, sub, rule=rule, n_steps=32).values.sum(axis=1) - gap).max()
           for rule in ("gauss-legendre", "trapezoid")}
    assert err["gauss-legendre"] < err["trapezoid"] / 10


def test_binary_linear_model_matches_the_closed_form(data):
    """p = σ(−(A f + B)) with f linear in x: along the straight path every pixel's gradient is
    w_j times one scalar, so IG_j = Δx_j w_j / (w·Δx) × (p(x) − p(x′)) exactly. The reference takes
    w from unit steps of the decision function and p from predict_proba, nothing from the gradient
    code."""
    two = data[np.isin(data.labels, ["type1", "type2"])]
    model = SpectrumSVC(kernel="linear", C=0.1, standardize=True, random_state=0).fit(
        np.asarray(two.flux, float), two.labels)
    sub = two[[0, 7, 22, 35]]
    X = np.asarray(sub.flux, float)
    base = continuum(WL, X)
    sal = saliency(model, sub)
    f0 = model.pairwise_decision_function(base[:1])[0, 0]
    w = model.pairwise_decision_function(base[:1] + np.eye(WL.size))[:, 0] - f0  # exact for a linear f
    t = np.arange(4), sal.target_index
    gap = model.predict_proba(X)[t] - model.predict_proba(base)[t]
    dx = X - base
    closed = dx * w / (dx @ w)[:, None] * gap[:, None]
    np.testing.assert_allclose(sal.values, closed, rtol=1e-5, atol=1e-7 * np.abs(closed).max())


def test_a_linear_models_gradient_map_is_one_map_per_class(data):
    """What the docs say of the study's map: for a binary linear model every gradient map is the
    weight vector times a scalar (correlation ±1). (These toy spectra of one class share their line
    shapes, so the default maps differ little here: the real-spectra gate below measures that.)"""
    two = data[np.isin(data.labels, ["type1", "type2"])]
    model = SpectrumSVC(kernel="linear", C=0.1, random_state=0).fit(np.asarray(two.flux, float), two.labels)
    grad = saliency(model, two, method="gradient")
    assert min(median_correlation(grad.values, grad.predicted).values()) > 0.999999


def test_parts_are_disjoint_cover_every_pixel_and_respect_precedence():
    for wl in (WL, np.linspace(3700.0, 6800.0, 3000)):
        parts = parts_on(wl)
        masks = np.array([m for _, m in parts])
        np.testing.assert_array_equal(masks.sum(axis=0), 1)  # every pixel in exactly one part
        assert parts[-1][0].name == "continuum"
        for part, mask in parts:
            assert part.lo <= wl[mask].min() and wl[mask].max() <= part.hi
    wl = np.linspace(3700.0, 6800.0, 3000)
    owner = {}
    for part, mask in parts_on(wl):
        owner.update({int(j): part.name for j in np.flatnonzero(mask)})

    def at(name, kms):
        return owner[int(np.argmin(np.abs(velocity(wl, line(name).wavelength) - kms)))]

    assert at("Hbeta", 0) == "Hβ core" and at("Hbeta", 2000) == "Hβ broad wings" == at("Hbeta", -4500)
    assert at("Halpha", 0) == "Hα core" and at("Halpha", -3000) == "Hα broad wings"
    assert at("OIII_5008", 0) == "[O III] 5008" and at("Hbeta", 8000) == "continuum"
    assert at("NII_6585", 0) == "[N II] 6585"  # a narrow line inside a broad wing keeps its pixels
    assert len({p.name for p in PARTS}) == len(PARTS)


def test_line_contributions_add_up_to_the_decision(linear, data):
    sub = data[[0, 21, 45]]
    sal = saliency(linear, sub)
    table = line_contributions(sal)
    assert list(table.columns) == CONTRIBUTION_COLUMNS
    per_spectrum = table.groupby("spec_id", sort=False)
    np.testing.assert_allclose(per_spectrum["contribution"].sum().to_numpy(), sal.values.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(per_spectrum["share"].sum().to_numpy(), 1.0)
    # and so to p(x) − p(continuum) from predict_proba
    X = np.asarray(sub.flux, float)
    t = np.arange(3), sal.target_index
    gap = linear.predict_proba(X)[t] - linear.predict_proba(continuum(WL, X))[t]
    np.testing.assert_allclose(per_spectrum["contribution"].sum().to_numpy(), gap, atol=1e-6)
    # one part by brute force: the pixels of Hβ's wings the loop assigns
    row = table[(table.spec_id == sal.spec_id[0]) & (table.part == "Hβ broad wings")].iloc[0]
    v = velocity(WL, line("Hbeta").wavelength)
    wings = (np.abs(v) > 500) & (np.abs(v) <= 5000)
    assert row.contribution == pytest.approx(sal.values[0, wings].sum(), abs=1e-12)
    assert row.predicted_label == sal.predicted[0] and row.target_class == sal.target[0]


def test_contribution_sentences():
    assert contribution_sentence("Hα broad wings", 0.8, "type1") == "Hα broad wings: +0.80 towards type 1"
    assert contribution_sentence("[O III] 5008", -0.123, "type2") == "[O III] 5008: −0.12 against type 2"
    import pandas as pd

    table = pd.DataFrame({"spec_id": ["a"] * 3, "part": ["x", "y", "z"], "contribution": [0.1, -0.5, 0.2],
                          "target_class": "type1"})
    assert describe_contributions(table, "a", top=2) == "y: −0.50 against type 1; z: +0.20 towards type 1"
    with pytest.raises(KeyError, match="'b' is not in"):
        describe_contributions(table, "b")


def test_real_spectra_get_maps_that_differ_within_a_class():
    """Acceptance gate on the in-repository real spectra and the default model: the default maps
    of one predicted class correlate at a median < 0.9, and by at least 0.15 less than the study's
    gradient maps, which for a linear model vary only with the class probabilities (≥ 0.9; measured
    1.00 and 0.98 for type 1 and type 2, the default maps 0.81 and 0.41; with the model of the
    previous simulator 0.97 / 0.93 and 0.70 / 0.47)."""
    from agnlens.models.default import default_model
    from agnlens.stages import read_inputs

    model, _ = default_model("multiclass", grid="balmer")
    spectra, _ = read_inputs([SPECTRA], grid="balmer", labels=LABELS)
    grad = saliency(model, spectra, method="gradient")
    default = saliency(model, spectra)
    assert len(median_correlation(grad.values, grad.predicted)) >= 2  # type 1 and type 2, ≥ 3 spectra each
    same, differ = (median_correlation(s.values, s.predicted) for s in (grad, default))
    assert min(same.values()) >= 0.9
    assert max(differ.values()) < 0.9 and all(differ[c] <= same[c] - 0.15 for c in same)
    assert np.abs(default.completeness).max() < 1e-4
