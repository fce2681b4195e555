"""The batched redshift check against the per-spectrum reference (``check_redshift``, one
``scipy.optimize.curve_fit`` per line) on the real spectra in tests/data and on simulated spectra
with injected offsets; its vectorised pieces against plain per-row loops."""

from __future__ import annotations

import numpy as np
import pytest

from agnlens import redshift
from agnlens.io import read_spectrum
from agnlens.preprocess import preprocess
from agnlens.redshift import check_batch, check_redshift, check_set, corrected_z
from agnlens.simulate import simulate

from realdata import SPECTRA as REAL


def reference(spectra):
    return [check_redshift(spectra.wavelength, spectra.flux[i], spectra.ivar[i], spectra.mask[i])
            for i in range(len(spectra))]


def assert_agree(batched, per_spectrum, min_same_lines=0.9):
    """The same offsets within their errors, the same flags, mostly the same lines.

    The lines can differ where a line's Gaussian fit has two minima (a weak line beside a strong
    one, e.g. [N II] 6550 next to Hα): the two minimisers start alike but need not take the same
    path; the offset then moves by a fraction of its error."""
    assert len(batched) == len(per_spectrum)
    same_lines = 0
    for b, r in zip(batched, per_spectrum):
        assert np.isfinite(b.offset_kms) == np.isfinite(r.offset_kms), (b, r)
        assert b.flagged == r.flagged, (b, r)
        same_lines += b.lines == r.lines
        if np.isfinite(r.offset_kms):
            assert abs(b.offset_kms - r.offset_kms) <= np.hypot(b.error_kms, r.error_kms), (b, r)
            if b.lines == r.lines:
                assert b.offset_kms == pytest.approx(r.offset_kms, abs=0.05 * r.error_kms)
                assert b.error_kms == pytest.approx(r.error_kms, rel=0.05)
    assert same_lines >= min_same_lines * len(batched)


@pytest.fixture(scope="module")
def real():
    return [read_spectrum(p) for p in sorted(REAL.glob("spec-*.fits"))]


@pytest.mark.parametrize("grid", ["paper", "balmer"])
def test_batched_check_agrees_with_the_per_spectrum_one_on_real_spectra(real, grid):
    spectra, _ = preprocess(real, grid)
    assert len(spectra) >= 10
    batched = check_set(spectra)
    per_spectrum = reference(spectra)
    assert sum(bool(c.lines) for c in per_spectrum) >= 5  # lines were found: the comparison means something
    assert_agree(batched, per_spectrum)


def test_the_mis_redshifted_real_spectrum_is_flagged_in_a_batch(real):
    """2031-53848-0060: every narrow line at ~+4,900 km/s from the SDSS redshift (issue 12)."""
    spectra, _ = preprocess(real, "paper")
    i = list(spectra.spec_id).index(read_spectrum(REAL / "spec-2031-53848-0060.fits").spec_id)
    check = check_set(spectra)[i]
    assert check.flagged and abs(check.offset_kms - 4900.0) < 500.0 and len(check.lines) >= 2


@pytest.mark.parametrize("grid", ["paper", "balmer"])
def test_injected_offsets_batched_and_per_spectrum(grid):
    observed = simulate(counts={"type2": 8, "type1": 4, "intermediate": 4}, seed=5)
    shifts = np.tile([0.0, -2500.0, 900.0, 4800.0], 4)
    for spectrum, shift in zip(observed, shifts):
        spectrum.meta["z"] = corrected_z(spectrum.z, -shift)  # lines at +shift from this z
    spectra, rejected = preprocess(observed, grid)
    assert not rejected
    batched = check_set(spectra)
    assert_agree(batched, reference(spectra), min_same_lines=0.8)
    found = [(c, s, o) for c, s, o in zip(batched, shifts, observed) if c.lines]
    assert len(found) >= 10
    for c, s, o in found:
        s = s + o.meta["narrow_shift"]  # simulated quasars' narrow lines sit off their redshift too
        assert c.flagged == (abs(s) > 500.0)
        if c.lines in (["Hbeta"], ["Halpha"]) and o.meta["label"] == "type1":
            # a quasar with weak [O III]: a narrow Balmer line alone, on top of a broad one whose
            # peak pulls a line shifted by thousands of km/s (the flag is right, the offset only roughly)
            assert abs(c.offset_kms - s) <= 0.3 * abs(s) + 50.0
            continue
        # 50 km/s: the simulated lines' own asymmetries (outflow wings) move a fit
        assert abs(c.offset_kms - s) <= 3 * c.error_kms + 50.0


def test_chunks_change_nothing(monkeypatch):
    from agnlens.simulate import simulate_set

    spectra = simulate_set(9, seed=4, grid="paper")
    whole = check_set(spectra)
    monkeypatch.setattr(redshift, "BATCH", 4)
    assert [(c.offset_kms, c.error_kms, c.lines) for c in check_set(spectra)] == \
        [(c.offset_kms, c.error_kms, c.lines) for c in whole]
    assert check_batch(spectra.wavelength, spectra.flux[:0], spectra.ivar[:0]) == []
    with pytest.raises(ValueError, match="n_spectra, n_pixels"):
        check_batch(spectra.wavelength, spectra.flux[0], spectra.ivar[0])


def test_vectorised_median_and_fill_match_the_per_row_ones():
    rng = np.random.default_rng(3)
    wl = np.geomspace(3800.0, 9000.0, 700)
    loglam = np.log10(wl)
    flux = rng.normal(size=(6, wl.size)).cumsum(axis=1)
    good = rng.random(flux.shape) > 0.2
    good[1, :40] = good[2, -55:] = False  # bad runs at either end
    good[3, 100:300] = False
    for i in range(len(flux)):
        np.testing.assert_allclose(redshift._fill_bad(loglam, flux, good)[i],
                                   np.interp(loglam, loglam[good[i]], flux[i, good[i]]), rtol=1e-12, atol=1e-12)
    rows = redshift._running_median_rows(loglam, flux, good, redshift.MEDIAN_KMS)
    for i in range(len(flux)):
        np.testing.assert_allclose(rows[i], redshift._running_median(loglam, flux[i], good[i], redshift.MEDIAN_KMS),
                                   rtol=1e-12, atol=1e-12)


def test_line_fits_match_curve_fit_on_clean_lines():
    """One Gaussian on a sloped line with noise: the batched Levenberg-Marquardt lands where
    curve_fit does, with the same standard errors."""
    from scipy.optimize import curve_fit

    rng = np.random.default_rng(8)
    x = np.tile(np.linspace(-1200.0, 1200.0, 35), (5, 1))
    truth = np.column_stack([rng.uniform(1, 5, 5), rng.uniform(-200, 200, 5), rng.uniform(80, 300, 5),
                             rng.uniform(-1, 1, 5), rng.uniform(-1e-4, 1e-4, 5)])
    sigma = 0.2
    y = redshift._model(truth, x)[0] + rng.normal(0, sigma, x.shape)
    w = np.full(x.shape, 1 / sigma**2)
    p, err, converged = redshift._fit_lines(x, y, w, np.maximum(y.max(axis=1), 1e-3))
    assert converged.all()
    for i in range(5):
        popt, pcov = curve_fit(redshift._gauss_line, x[i], y[i], p0=[max(y[i].max(), 1e-3), 0, 150, 0, 0],
                               sigma=np.full(35, sigma), absolute_sigma=True, maxfev=400)
        perr = np.sqrt(np.diag(pcov))
        p[i, 2], popt[2] = abs(p[i, 2]), abs(popt[2])  # the width's sign is free
        assert np.all(np.abs(p[i] - popt) <= 0.01 * perr), (p[i], popt, perr)
        np.testing.assert_allclose(err[i], perr, rtol=1e-3)
