"""Preprocessing: flux conservation, ivar propagation, rest frame, grids, rejection reasons."""

import numpy as np
import pandas as pd
import pytest

from agnlens.errors import RejectedSpectrum
from agnlens.lines import NORM_WINDOW, line, lines_in, velocity, window
from agnlens.preprocess import (
    Grid,
    get_grid,
    normalise,
    pixel_edges,
    preprocess,
    preprocess_one,
    resample,
    to_rest_frame,
)
from agnlens.spectra import Spectrum, SpectrumSet, format_spec_id


def smooth(wl):
    return 1.0 + 0.5 * np.sin(wl / 80.0) ** 2 + 1e-4 * (wl - 4000)


def integral_of_smooth(lo, hi):
    x = np.linspace(lo, hi, 400_001)
    return np.trapezoid(smooth(x), x)


def sdss_like(z=0.1, n=3800, seed=0, **meta):
    wl = 10 ** (np.log10(3800.0) + 1e-4 * np.arange(n))
    rng = np.random.default_rng(seed)
    zf = z if np.isfinite(z) and z >= 0 else 0.1
    flux = smooth(wl / (1 + zf)) + rng.normal(0, 0.05, n)
    ivar = np.full(n, 1 / 0.05**2)
    base = dict(spec_id=format_spec_id(1, 51000, seed), z=z, source=f"mem-{seed}")
    base.update(meta)
    return Spectrum(wl, flux, ivar, np.zeros(n, bool), base)


@pytest.mark.parametrize("out_n", [97, 500, 2999, 6000])
def test_resample_conserves_flux_on_a_smooth_spectrum(out_n):
    wl = np.linspace(4000, 6000, 3000)
    new = np.linspace(4100, 5900, out_n)
    flux, ivar, cov = resample(wl, smooth(wl), np.ones_like(wl), new)
    e = pixel_edges(new)
    ein = pixel_edges(wl)
    # exact reference: the input's own piecewise-constant integral over the same range
    cum = np.concatenate([[0], np.cumsum(smooth(wl) * np.diff(ein))])
    ref = np.interp(e[-1], ein, cum) - np.interp(e[0], ein, cum)
    assert np.sum(flux * np.diff(e)) == pytest.approx(ref, rel=1e-10)
    assert np.sum(flux * np.diff(e)) == pytest.approx(integral_of_smooth(e[0], e[-1]), rel=1e-6)
    assert np.all(cov == pytest.approx(1.0))


def test_resample_propagates_ivar_like_a_brute_force_loop():
    rng = np.random.default_rng(1)
    wl = np.cumsum(rng.uniform(0.8, 1.6, 400)) + 4000
    f = rng.normal(1, 0.1, wl.size)
    iv = rng.uniform(0.5, 4.0, wl.size)
    good = rng.random(wl.size) > 0.05
    new = np.linspace(wl[5], wl[-5], 170)
    flux, ivar, cov = resample(wl, f, iv, new, good)
    ein, eout = pixel_edges(wl), pixel_edges(new)
    for j in range(new.size):
        w = np.clip(np.minimum(eout[j + 1], ein[1:]) - np.maximum(eout[j], ein[:-1]), 0, None) * good
        assert flux[j] == pytest.approx(np.sum(w * f) / w.sum(), rel=1e-12)
        var = np.sum(w**2 / iv) / w.sum() ** 2
        assert ivar[j] == pytest.approx(1 / var, rel=1e-12)
        assert cov[j] == pytest.approx(w.sum() / (eout[j + 1] - eout[j]), rel=1e-12)


def test_resampled_noise_matches_propagated_ivar():
    """Monte Carlo: the scatter of resampled noise equals 1/sqrt(propagated ivar)."""
    rng = np.random.default_rng(2)
    wl = np.linspace(4000, 5000, 1500)
    sigma = rng.uniform(0.5, 2.0, wl.size)
    new = np.linspace(4010, 4990, 400)
    draws = np.array([resample(wl, rng.normal(0, sigma), 1 / sigma**2, new)[0] for _ in range(2000)])
    _, ivar, _ = resample(wl, np.zeros_like(wl), 1 / sigma**2, new)
    ratio = draws.std(axis=0) * np.sqrt(ivar)
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.02)


def test_uncovered_output_pixels_are_nan_with_zero_ivar():
    wl = np.linspace(4000, 5000, 500)
    flux, ivar, cov = resample(wl, smooth(wl), np.ones_like(wl), np.linspace(3500, 5500, 300))
    outside = (np.linspace(3500, 5500, 300) < 3990) | (np.linspace(3500, 5500, 300) > 5010)
    assert np.all(np.isnan(flux[outside])) and np.all(ivar[outside] == 0) and np.all(cov[outside] == 0)


def test_rest_frame_divides_wavelength_and_conserves_flux():
    s = sdss_like(z=0.25)
    r = to_rest_frame(s)
    np.testing.assert_allclose(r.wavelength, s.wavelength / 1.25)
    # ∫F_λ dλ is frame-independent
    assert np.trapezoid(r.flux, r.wavelength) == pytest.approx(np.trapezoid(s.flux, s.wavelength))
    assert r.frame == "rest" and to_rest_frame(r) is r


@pytest.mark.parametrize(
    ("z", "match"), [(np.nan, "no redshift"), (-0.01, "negative redshift")]
)
def test_bad_redshift_is_rejected_with_reason(z, match):
    with pytest.raises(RejectedSpectrum, match=match):
        preprocess_one(sdss_like(z=z))


def test_all_bad_pixels_rejected():
    s = sdss_like()
    s.ivar[:] = 0
    with pytest.raises(RejectedSpectrum, match="all pixels are bad"):
        preprocess_one(s)


def test_nan_flux_is_masked_not_fatal():
    s = sdss_like()
    s.flux[100:130] = np.nan
    s.flux[200] = np.inf
    out = preprocess_one(s)
    assert np.all(np.isfinite(out.flux)) and np.all(out.ivar[out.mask] == 0)


def test_coverage_rejection_names_grid_and_range():
    with pytest.raises(RejectedSpectrum, match=r"covers only \d+% of the paper grid"):
        preprocess_one(sdss_like(z=2.2))


def test_max_bad_fraction_is_configurable():
    s = sdss_like(z=0.04)  # rest 3654–... : paper grid fully covered
    s.ivar[(s.wavelength > 4400) & (s.wavelength < 4700)] = 0  # ~20 % of the paper grid
    with pytest.raises(RejectedSpectrum, match="more than 10%"):
        preprocess_one(s)
    out = preprocess_one(s, max_bad_fraction=0.3)
    assert 0.1 < out.meta["bad_fraction"] < 0.3 and out.mask.mean() == pytest.approx(out.meta["bad_fraction"])


def test_normalisation_gives_unit_median_at_5100():
    out = preprocess_one(sdss_like(z=0.1), "paper")
    flux, meta = out.flux, out.meta
    wl = get_grid("paper").wavelength
    sel = (wl >= NORM_WINDOW[0]) & (wl <= NORM_WINDOW[1])
    assert np.median(flux[sel]) == pytest.approx(1.0, abs=1e-6)
    assert meta["snr"] > 5


def test_normalise_refuses_nonpositive_flux():
    wl = np.linspace(5000, 5200, 100)
    with pytest.raises(ValueError, match="expected a positive value"):
        normalise(wl, -np.ones(100), np.ones(100), np.ones(100, bool))


def test_presets():
    paper = get_grid("paper")
    assert paper.wavelength.size == 1000 and paper.wavelength[0] == 3729 and paper.wavelength[-1] == 5266
    balmer = get_grid("balmer")
    assert balmer.wavelength[0] == pytest.approx(4000) and balmer.wavelength[-1] < 6700
    np.testing.assert_allclose(np.diff(np.log10(balmer.wavelength)), 1e-4)
    assert {"Hgamma", "Hbeta", "Halpha", "NII_6585"} <= {x.name for x in lines_in(balmer.wavelength)}
    with pytest.raises(ValueError, match="unknown grid 'nope'"):
        get_grid("nope")
    with pytest.raises(ValueError, match="strictly increasing"):
        Grid("bad", np.array([5000.0, 4000.0, 6000.0]))
    custom = get_grid(np.linspace(4500, 5500, 300))
    assert custom.name == "custom"


def test_preprocess_batch_keeps_going_and_reports():
    good = [sdss_like(seed=i) for i in range(3)]
    bad = sdss_like(z=np.nan, seed=9)
    spectra, rejected = preprocess(good[:2] + [bad] + good[2:], "paper")
    assert len(spectra) == 3 and len(rejected) == 1
    assert "no redshift" in rejected[0].reason and rejected[0].source == "mem-9"
    assert spectra.flux.dtype == np.float32 and spectra.provenance["grid"]["name"] == "paper"


def test_spectrum_set_subsets_and_concat():
    spectra, _ = preprocess([sdss_like(seed=i, label=lab) for i, lab in enumerate(["type1", "type2", ""])])
    sub = spectra[np.array([True, False, True])]
    assert list(sub.labels) == ["type1", ""] and sub.flux.shape == (2, 1000)
    both = SpectrumSet.concat([sub, spectra[1]])
    assert len(both) == 3 and list(both.spec_id) == list(spectra.spec_id[[0, 2, 1]])
    with pytest.raises(ValueError, match="different grids"):
        SpectrumSet.concat([spectra, preprocess([sdss_like()], "balmer")[0]])
    with pytest.raises(ValueError, match="expected \\(n_spectra, n_pixels\\)"):
        meta = pd.DataFrame({"spec_id": ["a", "b"]})
        SpectrumSet(np.arange(3.0), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((1, 3), bool), meta)


def test_line_helpers():
    hb = line("Hbeta")
    assert hb.wavelength == pytest.approx(4862.68)
    assert velocity(np.array([hb.wavelength]), hb.wavelength)[0] == 0
    assert window(np.array([4862.68, 4900.0]), hb.wavelength, 1000).tolist() == [True, False]
    with pytest.raises(KeyError, match="unknown line"):
        line("Hzeta")
    assert format_spec_id(266, 51602, 13) == "0266-51602-0013"


def test_preprocess_one_resamples_once_with_the_public_functions_results():
    """preprocess_one shares one set of overlap sums between the resampling and the pixel
    correlation: the same numbers as resample and neighbour_correlation called on their own."""
    from agnlens.preprocess import neighbour_correlation

    spectrum = sdss_like(z=0.08, seed=4)
    spectrum.ivar[[100, 101, 900, 2500]] = 0.0  # bad pixels inside the grid
    for name in ("paper", "balmer"):
        grid = get_grid(name)
        out = preprocess_one(spectrum, grid)
        rest = to_rest_frame(spectrum)
        flux, ivar, coverage = resample(rest.wavelength, rest.flux, rest.ivar, grid.wavelength, rest.good)
        good = coverage >= 0.5
        scale = out.meta["norm_flux"]
        np.testing.assert_array_equal(out.mask, ~good)
        np.testing.assert_allclose(out.flux[good], flux[good] / scale, rtol=1e-12)
        np.testing.assert_allclose(out.ivar[good], ivar[good] * scale**2, rtol=1e-12)
        assert out.meta["pixel_corr"] == neighbour_correlation(rest.wavelength, rest.ivar, grid.wavelength, rest.good)
