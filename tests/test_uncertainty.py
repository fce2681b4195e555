"""The standard error of every probability (``agnlens.explain.uncertainty``), against references
that share none of its shortcuts: Monte-Carlo redraws of real SDSS files through the whole
preprocessing, brute-force noise draws through ``resample``, and brute-force derivatives of the
fill-in interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from agnlens.explain.uncertainty import (
    UNCERTAIN_SIGMAS,
    _to_good_pixels,
    monte_carlo_std,
    proba_std,
)
from agnlens.preprocess import neighbour_correlation, resample

import realdata


@pytest.fixture(scope="module")
def real_on_default():
    """The in-repo real spectra on the default model of their grid, as classify reads them."""
    from agnlens.models.default import resolve_models
    from agnlens.stages import load_groups

    models = resolve_models(None)
    groups, _ = load_groups(sorted(realdata.SPECTRA.glob("spec-*.fits")), models)
    return groups


@pytest.mark.slow
def test_delta_method_matches_monte_carlo_on_real_spectra(real_on_default):
    """The issue's gate: within a factor 1.5 of the Monte-Carlo σ (each file's raw pixels redrawn
    from their ivar, 400 draws, through rest frame, resampling, normalisation and the model) on
    ≥ 90 % of the real spectra whose Monte-Carlo σ exceeds 1e-3 and that the model does not flag
    `out-of-distribution`; and no systematic bias beyond ±25 % in the median ratio. Outside the
    training distribution the linearisation may fail, which the flag says: `1163-52669-0292`
    (p intermediate 0.95, its PCA residual beyond every validation spectrum) has 0.06 against a
    Monte-Carlo σ of 0.10, at 400 and at 2,000 draws alike. The Monte-Carlo σ itself is uncertain
    by ~3.5 % at 400 draws, more where p is near 0 or 1 and its draws are skewed (at 100 draws
    `0565-52225-0263`, p 0.997, came out at 0.65 of it, at 400 draws 0.73–0.76: the delta method's
    linearisation is weakest there)."""
    from agnlens.models.applicability import applicability
    from agnlens.models.persistence import grid_from_metadata
    from agnlens.spectra import Spectrum
    from agnlens.stages.reading import read_items

    ratios = []
    for model, meta, spectra in real_on_default:
        delta = proba_std(model, spectra)
        outside = applicability(model, spectra).table["flags"].str.contains("out-of-distribution").to_numpy()
        for i, source in enumerate(spectra.meta["source"]):
            if outside[i]:
                continue
            raw = next(s for s in read_items(source) if isinstance(s, Spectrum))
            _, mc = monte_carlo_std(model, raw, grid_from_metadata(meta), n_draws=400, seed=i)
            top = int(np.argmax(delta.proba[i]))
            if mc[top] > 1e-3:
                ratios.append(delta.std[i, top] / mc[top])
    ratios = np.asarray(ratios)
    assert ratios.size >= 8, f"too few real spectra with a Monte-Carlo σ above 1e-3: {ratios.size}"
    within = np.mean((ratios < 1.5) & (ratios > 1 / 1.5))
    assert within >= 0.9, f"delta/MC ratios {np.round(ratios, 2)}: only {within:.0%} within a factor 1.5"
    assert 0.75 < np.median(ratios) < 1.25, f"median delta/MC ratio {np.median(ratios):.2f}"


def test_neighbour_correlation_matches_brute_force_draws():
    """The noise correlation of neighbouring output pixels, against 4,000 noise draws resampled
    (an SDSS-like log grid onto a shifted log grid of the same step, and onto a coarser linear one)."""
    rng = np.random.default_rng(3)
    wl = 10 ** (3.6 + 1e-4 * np.arange(2000))
    sigma = rng.uniform(0.5, 2.0, wl.size)
    for new in (10 ** (3.6 + 1e-4 * (np.arange(1500) + 10.3)), np.linspace(4000, 8000, 1200)):
        draws = np.array([resample(wl, rng.normal(0, sigma), 1 / sigma**2, new)[0] for _ in range(4000)])
        ok = np.all(np.isfinite(draws), axis=0)
        a, b = draws[:, :-1][:, ok[:-1] & ok[1:]], draws[:, 1:][:, ok[:-1] & ok[1:]]
        a, b = a - a.mean(0), b - b.mean(0)
        empirical = np.median((a * b).mean(0) / np.sqrt((a * a).mean(0) * (b * b).mean(0)))
        computed = neighbour_correlation(wl, 1 / sigma**2, new, np.ones(wl.size, bool))
        assert computed == pytest.approx(empirical, abs=0.03)


def test_neighbour_correlation_is_zero_when_no_input_pixel_is_shared():
    wl = np.arange(100.0)
    assert neighbour_correlation(wl, np.ones(100), wl, np.ones(100, bool)) == 0.0


def test_filled_pixels_hand_their_gradient_to_the_pixels_they_were_made_from():
    """Against brute force: the derivative of every filled-in pixel (np.interp over the good ones,
    as preprocessing fills them) with respect to every good pixel, one good pixel nudged at a time."""
    rng = np.random.default_rng(0)
    wavelength = np.sort(rng.uniform(4000, 5000, 60))
    good = rng.random(60) > 0.3
    good[:3] = False  # filled at the edge: np.interp holds the first good value
    good[-2:] = False
    x = rng.normal(1, 0.1, 60)
    g = rng.normal(0, 1, 60)

    def filled(values):
        return np.where(good, values, np.interp(wavelength, wavelength[good], values[good]))

    brute = np.zeros(60)
    for k in np.flatnonzero(good):
        step = np.zeros(60)
        step[k] = 1e-6
        brute[k] = g @ (filled(x + step) - filled(x)) / 1e-6
    np.testing.assert_allclose(_to_good_pixels(g, good, wavelength), brute, rtol=1e-6, atol=1e-8)


def test_classify_writes_errors_and_flags_uncertain_where_the_top_two_are_within_two_sigma(real_on_default):
    from agnlens.stages import classify

    model, _, spectra = real_on_default[0]
    table = classify(model, spectra, check_redshift=False, check_physics=False)
    classes = [str(c) for c in model.classes_]
    p = table[[f"p_{c}" for c in classes]].to_numpy()
    err = table[[f"p_{c}_err" for c in classes]].to_numpy()
    assert np.all(np.isfinite(err)) and np.all(err >= 0)
    np.testing.assert_array_equal(p, model.predict_proba(np.asarray(spectra.flux, dtype=np.float64)))
    u = proba_std(model, spectra)
    expected = u.margin < UNCERTAIN_SIGMAS * u.margin_std
    flagged = table["flags"].fillna("").str.contains("uncertain").to_numpy()
    np.testing.assert_array_equal(flagged, expected)
    assert not table.loc[flagged, "applicable"].any()
