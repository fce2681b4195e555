"""specutils in and out: lossless round trips of real SDSS spectra, agreement with specutils' own
SDSS reader, and classify + explain on specutils input (skipped when specutils is absent)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

specutils = pytest.importorskip("specutils", reason="specutils is an optional extra: pip install 'agnlens[specutils]'")

import astropy.units as u  # noqa: E402  (after the skip: only needed with specutils)
from astropy.nddata import InverseVariance, StdDevUncertainty  # noqa: E402
from astropy.units import UnitsWarning  # noqa: E402

from agnlens.errors import AgnlensWarning  # noqa: E402
from agnlens.explain.attribution import saliency  # noqa: E402
from agnlens.io import as_spectrum_set, from_specutils, read_spectrum, to_specutils  # noqa: E402
from agnlens.io.specutils import SDSS_FLUX_UNIT, specutils_class  # noqa: E402
from agnlens.models.svm import SpectrumSVC  # noqa: E402
from agnlens.preprocess import get_grid, preprocess  # noqa: E402
from agnlens.simulate import simulate_set  # noqa: E402
from agnlens.spectra import Spectrum, SpectrumSet  # noqa: E402

from realdata import SDSS  # noqa: E402  (the in-repo real spectra, tests/data)

# two real spectra from different plates: a broad-line QSO (type 1) and a non-AGN galaxy
FILES = ["spec-0332-52367-0639.fits", "spec-0266-51602-0013.fits"]

needs_data = pytest.mark.skipif(not (SDSS / "spectra").is_dir(), reason="real spectra not found in ../shared/data/sdss")


def real(name: str = FILES[0]) -> Spectrum:
    return read_spectrum(SDSS / "spectra" / name)


def specutils_read(name: str):
    """specutils' own SDSS loader (it warns about the header's unit string, which is not ours)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        return specutils_class().read(SDSS / "spectra" / name, format="SDSS-III/IV spec")


@pytest.fixture(scope="module")
def model():
    train = simulate_set(300, seed=0, grid="paper")
    return SpectrumSVC(kernel="rbf", C=10.0, standardize=True, random_state=0).fit(train.flux, train.labels)


@needs_data
def test_real_spectrum_round_trip_is_lossless():
    s = real()
    su = to_specutils(s)
    assert isinstance(su, specutils_class())
    assert su.flux.unit == u.Unit(SDSS_FLUX_UNIT)
    assert su.spectral_axis.unit == u.AA
    assert isinstance(su.uncertainty, InverseVariance)
    assert su.uncertainty.unit == u.Unit(SDSS_FLUX_UNIT) ** -2
    assert su.redshift.value == pytest.approx(s.z, rel=1e-12)
    back = from_specutils(su)
    assert isinstance(back, Spectrum)
    for name in ("wavelength", "flux", "ivar", "mask"):
        assert np.array_equal(getattr(back, name), getattr(s, name)), name
    assert back.meta == s.meta
    assert back.frame == s.frame == "observed"


@needs_data
def test_spectrum_set_round_trip_is_lossless():
    spectra, rejected = preprocess([real(f) for f in FILES], "paper")
    assert not rejected and len(spectra) == 2
    su = to_specutils(spectra)
    assert su.flux.shape == (2, spectra.n_pixels) and su.flux.unit == u.dimensionless_unscaled
    back = from_specutils(su)
    assert isinstance(back, SpectrumSet)
    for name in ("wavelength", "flux", "ivar", "mask"):
        assert np.array_equal(getattr(back, name), getattr(spectra, name)), name
    pd.testing.assert_frame_equal(back.meta, spectra.meta)
    assert back.grid == spectra.grid and back.provenance == spectra.provenance
    assert as_spectrum_set(su).flux.shape == spectra.flux.shape  # a 2-D spectrum is already on a grid


@needs_data
@pytest.mark.parametrize("name", FILES)
def test_specutils_sdss_reader_agrees_with_ours(name):
    """An independent reader of the same file: specutils' SDSS loader, converted by us."""
    theirs = from_specutils(specutils_read(name))
    ours = real(name)
    assert theirs.spec_id == ours.spec_id  # from the header's PLATEID, MJD, FIBERID
    assert np.isnan(theirs.z)  # specutils keeps no redshift: the user gives it
    # specutils computes 10**loglam from float32 loglam: equal to ~1e-7 relative
    np.testing.assert_allclose(theirs.wavelength, ours.wavelength, rtol=2e-7)
    assert np.array_equal(theirs.flux, ours.flux)
    assert np.array_equal(theirs.ivar, ours.ivar)
    # specutils masks every and_mask bit; agnlens only NOPLUG, FULLREJECT, NODATA (a superset there)
    assert np.all(theirs.mask[ours.mask & (ours.ivar > 0)])


@needs_data
def test_classify_and_explain_specutils_input(model):
    labels = pd.read_csv(SDSS / "labels.csv", dtype={"spec_id": str}).set_index("spec_id")
    native = [specutils_read(f) for f in FILES]
    for spec in native:  # the user's redshift, set the specutils way
        spec.set_redshift_to(float(labels.loc[from_specutils(spec).spec_id, "z"]))
    converted = [to_specutils(real(f)) for f in FILES]

    grid = get_grid("paper")
    ours, _ = preprocess([real(f) for f in FILES], grid)
    via_specutils = as_spectrum_set(converted, grid)
    assert np.array_equal(via_specutils.flux, ours.flux)
    assert list(via_specutils.spec_id) == list(ours.spec_id)

    native_set = as_spectrum_set(native, grid)
    proba = model.predict_proba(native_set.flux)
    assert proba.shape == (2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(model.classes_[proba.argmax(axis=1)], model.predict(native_set.flux))

    # the classify stage takes them too, and judges them exactly as the preprocessed set
    from agnlens.stages import classify

    table = classify(model, converted)
    reference = classify(model, ours)
    pd.testing.assert_frame_equal(table, reference)

    # saliency takes specutils spectra (one or a list) and finds the model's grid by its pixel count
    sal = saliency(model, converted)
    ref = saliency(model, ours)
    assert np.array_equal(sal.values, ref.values)
    assert np.array_equal(sal.predicted, ref.predicted)
    one = saliency(model, native[0], method="gradient")
    assert one.values.shape == (1, grid.wavelength.size) and np.all(np.isfinite(one.values))

    # and comes back as a specutils spectrum on the model's grid
    out = sal.to_specutils()
    assert isinstance(out, specutils_class())
    assert out.flux.shape == sal.values.shape
    np.testing.assert_array_equal(out.spectral_axis.to_value(u.AA), grid.wavelength)
    np.testing.assert_array_equal(out.flux.value, sal.values)
    assert out.meta["spec_id"] == list(sal.spec_id) and out.meta["method"] == "integrated-gradients"


def test_foreign_units_and_uncertainties_are_converted():
    wl = np.linspace(4000.0, 6000.0, 50)
    flux = np.linspace(1.0, 2.0, 50) * u.Unit("W / (m2 nm)")
    sigma = np.full(50, 0.1)
    sigma[3] = 0.0
    spec = specutils_class()(
        flux=flux, spectral_axis=(wl * u.AA).to(u.nm), uncertainty=StdDevUncertainty(sigma), meta={"z": 0.05}
    )
    s = from_specutils(spec)
    factor = (1 * u.Unit("W / (m2 nm)")).to_value(u.Unit(SDSS_FLUX_UNIT))
    np.testing.assert_allclose(s.wavelength, wl, rtol=1e-12)
    np.testing.assert_allclose(s.flux, flux.value * factor, rtol=1e-12)
    expected = np.where(sigma > 0, 1.0 / np.where(sigma > 0, sigma * factor, 1.0) ** 2, 0.0)
    np.testing.assert_allclose(s.ivar, expected, rtol=1e-12)
    assert s.z == 0.05 and s.frame == "observed"


def test_bad_input_says_what_to_do():
    with pytest.raises(TypeError, match="specutils Spectrum"):
        from_specutils(np.ones(5))
    flux = np.ones(50) * u.Unit("erg / (s cm2 AA)")
    no_z = specutils_class()(flux=flux, spectral_axis=np.linspace(3000, 9000, 50) * u.AA)
    with pytest.raises(ValueError, match="need a grid"):
        as_spectrum_set([no_z])
    with pytest.warns(AgnlensWarning, match="no redshift"), pytest.raises(ValueError, match="none of the 1"):
        as_spectrum_set(no_z, "paper")
    with pytest.raises(ValueError, match="cannot be converted"):
        from_specutils(specutils_class()(flux=np.ones(50) * u.m, spectral_axis=np.linspace(3000, 9000, 50) * u.AA))
    with pytest.raises(TypeError, match="expected a SpectrumSet"):
        as_spectrum_set("spectra.fits")
