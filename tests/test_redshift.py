"""The narrow-line redshift check: injected offsets on simulated spectra, a real mis-redshifted
SDSS spectrum, and the corrected redshift."""

from __future__ import annotations

import numpy as np
import pytest

from agnlens.io import read_spectrum
from agnlens.redshift import MAX_OFFSET_KMS, RedshiftCheck, check_redshift, check_spectrum, corrected_z
from agnlens.simulate import simulate

from realdata import SPECTRA as REAL  # the in-repo real spectra (tests/data)


@pytest.fixture(scope="module")
def narrow_line_spectra():
    """Simulated spectra whose narrow lines are detected at their true redshift."""
    found = [s for s in simulate(counts={"type2": 3, "type1": 2}, seed=1) if check_spectrum(s).lines]
    assert len(found) >= 3
    return found


@pytest.mark.parametrize("shift", [-2500.0, 800.0, 4900.0])
def test_an_injected_offset_is_recovered_and_flagged(narrow_line_spectra, shift):
    for spectrum in narrow_line_spectra[:2]:
        z_true = spectrum.z
        spectrum.meta["z"] = corrected_z(z_true, -shift)  # a catalogue z that puts the lines at +shift
        try:
            check = check_spectrum(spectrum)
        finally:
            spectrum.meta["z"] = z_true
        # the lines' own offset from the redshift comes on top (simulated quasars carry one)
        expected = shift + spectrum.meta["narrow_shift"]
        assert abs(check.offset_kms - expected) <= max(3 * check.error_kms, 30.0), (expected, check)
        assert check.flagged == (abs(expected) > MAX_OFFSET_KMS)


def test_at_the_true_redshift_nothing_is_flagged(narrow_line_spectra):
    for spectrum in narrow_line_spectra:
        check = check_spectrum(spectrum)
        own = spectrum.meta["narrow_shift"]  # simulated quasars' narrow lines sit off their redshift
        assert abs(check.offset_kms - own) < 100.0 and check.flagged == (abs(own) > MAX_OFFSET_KMS)


def test_corrected_z_puts_the_lines_back_at_rest(narrow_line_spectra):
    spectrum = narrow_line_spectra[0]
    z_true = spectrum.z
    spectrum.meta["z"] = corrected_z(z_true, -1500.0)
    try:
        found = check_spectrum(spectrum)
        assert corrected_z(spectrum.z, found.offset_kms) == pytest.approx(z_true, abs=3 * found.error_kms / 3e5 + 1e-4)
    finally:
        spectrum.meta["z"] = z_true


def test_no_lines_no_offset():
    rng = np.random.default_rng(0)
    wl = np.linspace(3800, 7000, 3000)
    check = check_redshift(wl, 1.0 + 0.01 * rng.normal(size=wl.size), np.full(wl.size, 1e4))
    assert isinstance(check, RedshiftCheck) and np.isnan(check.offset_kms) and not check.flagged
    with pytest.raises(ValueError, match="one shape"):
        check_redshift(wl, wl[:10], wl)


def test_real_spectrum_at_the_wrong_redshift():
    """2031-53848-0060: every narrow line sits at ~+4,900 km/s from the SDSS redshift (issue 12)."""
    check = check_spectrum(read_spectrum(REAL / "spec-2031-53848-0060.fits"))
    assert check.flagged and abs(check.offset_kms - 4900.0) < 500.0
    assert len(check.lines) >= 2 and check.error_kms < 100.0


def test_templates_are_cached_per_grid_and_change_nothing():
    from agnlens import redshift
    from agnlens.simulate import simulate_set

    sets = [simulate_set(6, seed=2, grid=g) for g in ("paper", "balmer")]

    def run_all():
        return [[(c.offset_kms, c.error_kms, tuple(c.lines)) for c in redshift.check_set(s)] for s in sets]

    redshift._templates.cache_clear()
    cached = run_all()  # the second set's grid must not reuse the first one's templates
    assert redshift._templates.cache_info().currsize == 2
    fresh = []
    for s in sets:
        redshift._templates.cache_clear()
        fresh.append([(c.offset_kms, c.error_kms, tuple(c.lines)) for c in redshift.check_set(s)])
    np.testing.assert_array_equal(np.array([[v[:2] for v in one] for one in cached]),
                                  np.array([[v[:2] for v in one] for one in fresh]))
    assert [[v[2] for v in one] for one in cached] == [[v[2] for v in one] for one in fresh]
