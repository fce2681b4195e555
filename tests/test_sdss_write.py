"""Tests of the SDSS spec-*.fits writer: layout, round trips (astropy and the package reader)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits

from agnlens.io.catalog import read_catalog
from agnlens.io.fits import header_card
from agnlens.io.sdss import SPPIXMASK_BITS, read_sdss
from agnlens.io.sdss_write import sdss_filename, write_labels, write_sdss, write_sdss_many

FULLREJECT = 1 << SPPIXMASK_BITS["FULLREJECT"]  # the reader's own bit table: one definition for both ways
from agnlens.preprocess import preprocess, to_rest_frame
from agnlens.simulate import simulate

from realdata import SPECTRA as REAL  # the in-repo real spectra (tests/data)


@pytest.fixture(scope="module")
def spectra():
    return simulate(12, seed=31)


def test_layout_and_round_trip_with_astropy(spectra, tmp_path):
    paths = write_sdss_many(spectra, tmp_path)
    assert [p.name for p in paths] == [f"spec-{s.spec_id}.fits" for s in spectra]
    assert sorted(tmp_path.iterdir()) == sorted(paths)  # no temporary files left
    for s, path in zip(spectra, paths):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path) as hdul:
                hdul.verify("exception")
                assert [h.name for h in hdul] == ["PRIMARY", "COADD", "SPECOBJ"]
                assert hdul[0].header["SIMULATE"] is True and hdul[2].header["SIMULATE"] is True
                c = hdul[1].data
                formats = {col.name: col.format for col in hdul[1].columns}
                assert formats == {"flux": "E", "loglam": "E", "ivar": "E", "and_mask": "J", "or_mask": "J",
                                   "wdisp": "E", "sky": "E", "model": "E"}
                np.testing.assert_array_equal(c["flux"], s.flux.astype(np.float32))
                np.testing.assert_array_equal(c["ivar"], s.ivar.astype(np.float32))
                np.testing.assert_allclose(10.0 ** c["loglam"].astype(float), s.wavelength, rtol=1e-6)
                np.testing.assert_array_equal(c["and_mask"] != 0, s.mask)
                assert set(np.unique(c["and_mask"])) <= {0, FULLREJECT}
                o = hdul[2].data[0]
                plate, mjd, fiber = (int(x) for x in s.spec_id.split("-"))
                assert (o["PLATE"], o["MJD"], o["FIBERID"]) == (plate, mjd, fiber)
                assert o["Z"] == np.float32(s.meta["z"])
                assert o["ZWARNING"] == 0 and bool(o["SIMULATED"]) is True
                assert o["CLASS"] == s.meta["sdss_class"] and o["SUBCLASS"] == s.meta["sdss_subclass"]
                assert o["SURVEY"] == "sdss"
                assert o["LABEL"] == s.meta["label"] and o["SUBTYPE"] == s.meta["subtype"]
                assert o["FWHM_BROAD"] == pytest.approx(s.meta["fwhm_broad"], rel=1e-6)
                assert o["OIII_HBETA"] == pytest.approx(s.meta["oiii_hbeta"], rel=1e-6)
                assert o["SOURCE"] == s.meta["source"]


def test_round_trip_with_package_reader_and_preprocessing(spectra, tmp_path):
    paths = write_sdss_many(spectra, tmp_path)
    back = [read_sdss(p) for p in paths]
    for s, r in zip(spectra, back):
        assert r.spec_id == s.spec_id
        assert r.meta["z"] == pytest.approx(s.meta["z"], rel=1e-6)
        np.testing.assert_array_equal(r.mask, s.mask)
        np.testing.assert_allclose(r.flux, s.flux, rtol=1e-6, atol=0)
        np.testing.assert_allclose(r.ivar, s.ivar, rtol=1e-6, atol=0)
        np.testing.assert_allclose(r.wavelength, s.wavelength, rtol=1e-6)
    # simulate -> write -> read -> preprocess recovers the directly preprocessed spectra
    direct, rej1 = preprocess(spectra, "paper")
    via_files, rej2 = preprocess(back, "paper")
    assert not rej1 and not rej2
    np.testing.assert_allclose(via_files.flux, direct.flux, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(via_files.mask, direct.mask)


def test_real_spectrum_rewritten_reads_the_same(tmp_path):
    real = read_sdss(REAL / "spec-0332-52367-0639.fits")
    path = write_sdss(real, tmp_path)
    assert path.name == "spec-0332-52367-0639.fits"
    again = read_sdss(path)
    np.testing.assert_array_equal(again.flux, real.flux.astype(np.float32))
    np.testing.assert_array_equal(again.mask, real.mask)
    assert again.meta["sdss_class"] == real.meta["sdss_class"]
    with fits.open(path) as hdul:
        assert hdul[0].header["SIMULATE"] is False and not hdul[2].data[0]["SIMULATED"]


def test_atomic_overwrite_and_errors(spectra, tmp_path):
    s = spectra[0]
    path = write_sdss(s, tmp_path / "one.fits")
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        write_sdss(s, path, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.fits"]
    with pytest.raises(ValueError, match="rest frame; SDSS files hold observed"):
        write_sdss(to_rest_frame(s), tmp_path / "rest.fits")
    with pytest.raises(ValueError, match="would both be written"):
        write_sdss_many([spectra[0], spectra[0]], tmp_path / "dup")
    bare = type(s)(wavelength=s.wavelength, flux=s.flux, ivar=s.ivar, mask=s.mask, meta={"z": 0.1})
    with pytest.raises(ValueError, match="has no plate/mjd/fiber"):
        sdss_filename(bare)
    with pytest.raises(ValueError, match="model has shape"):
        write_sdss(s, tmp_path / "m.fits", model=np.zeros(3))


def test_labels_catalogue_is_read_by_the_catalogue_reader(spectra, tmp_path):
    path = write_labels(spectra, tmp_path / "labels.csv")
    table = read_catalog(path)
    assert list(table["spec_id"]) == [s.spec_id for s in spectra]
    assert list(table["label"]) == [s.meta["label"] for s in spectra]
    np.testing.assert_allclose(table["z_override"], [s.meta["z"] for s in spectra], rtol=1e-12)


def test_a_header_card_that_does_not_fit_says_so():
    assert len(header_card("OBJECT", "x" * 60)) == 80
    with pytest.raises(ValueError, match="does not fit one card"):
        header_card("OBJECT", "x" * 80)
    with pytest.raises(ValueError, match="does not fit one card"):
        header_card("OBJECT", "é")
