"""Plain-table reader: a real SDSS spectrum written as FITS table / CSV / ECSV reads back the same."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from agnlens.errors import ReadError
from agnlens.io import read_spec, read_spectrum, read_table

from realdata import LEGACY


@pytest.fixture(scope="module")
def real():
    return read_spec(LEGACY)


def _table(real, n=600, **names):
    sel = slice(0, n)
    ivar = real.ivar[sel]
    sigma = np.where(ivar > 0, 1.0 / np.sqrt(np.where(ivar > 0, ivar, 1.0)), 0.0)
    cols = {
        names.get("wavelength", "wavelength"): real.wavelength[sel],
        names.get("flux", "flux"): real.flux[sel],
        names.get("error", "error"): sigma,
    }
    return Table(cols), sel


@pytest.mark.parametrize("suffix", [".fits", ".csv", ".ecsv"])
def test_round_trip(tmp_path, real, suffix):
    t, sel = _table(real)
    t.meta["Z"] = real.z
    path = tmp_path / f"my-spectrum{suffix}"
    t.write(path, format={".fits": "fits", ".csv": "ascii.csv", ".ecsv": "ascii.ecsv"}[suffix])
    s = read_spectrum(path)
    rtol = 1e-12 if suffix != ".csv" else 1e-6  # CSV stores decimal text
    np.testing.assert_allclose(s.wavelength, real.wavelength[sel], rtol=rtol)
    np.testing.assert_allclose(s.flux, real.flux[sel], rtol=rtol)
    np.testing.assert_allclose(s.ivar, real.ivar[sel], rtol=1e-5)
    np.testing.assert_array_equal(s.mask, ~(real.ivar[sel] > 0))
    assert s.spec_id == "my-spectrum" and s.meta["format"] == "table"
    if suffix != ".csv":  # CSV carries no metadata
        assert s.z == pytest.approx(real.z)
    else:
        assert np.isnan(s.z)


def test_aliases_loglam_ivar_and_z_column(tmp_path, real):
    sel = slice(0, 300)
    t = Table({"LogLam": np.log10(real.wavelength[sel]), "FLUX": real.flux[sel], "Inverse_Variance": real.ivar[sel],
               "Redshift": np.full(300, 0.25)})
    t.write(tmp_path / "t.fits")
    s = read_table(tmp_path / "t.fits")
    np.testing.assert_allclose(s.wavelength, real.wavelength[sel], rtol=1e-12)
    np.testing.assert_array_equal(s.ivar, np.where(real.ivar[sel] > 0, real.ivar[sel], 0))
    assert s.z == 0.25


def test_explicit_names_and_arguments(tmp_path, real):
    t, sel = _table(real, wavelength="lam_obs", flux="f", error="df")
    t.write(tmp_path / "x.ecsv")
    s = read_table(tmp_path / "x.ecsv", wavelength="lam_obs", flux="f", error="df", z=0.1, spec_id="obj-7")
    assert s.spec_id == "obj-7" and s.z == 0.1
    np.testing.assert_allclose(s.flux, real.flux[sel])


def test_unsorted_rows_are_sorted(tmp_path, real):
    t, sel = _table(real, n=200)
    t = t[::-1]
    t.write(tmp_path / "rev.ecsv")
    s = read_table(tmp_path / "rev.ecsv")
    np.testing.assert_allclose(s.wavelength, real.wavelength[sel])


def test_missing_flux_column(tmp_path, real):
    t, _ = _table(real, flux="counts")
    t.write(tmp_path / "nf.csv")
    message = r"nf.csv: no flux column: expected one named flux .*the table has wavelength, counts, error"
    with pytest.raises(ReadError, match=message):
        read_table(tmp_path / "nf.csv")


def test_named_column_missing(tmp_path, real):
    t, _ = _table(real)
    t.write(tmp_path / "t.csv")
    with pytest.raises(ReadError, match=r"no column 'fnu'"):
        read_table(tmp_path / "t.csv", flux="fnu")


def test_non_numeric_column(tmp_path):
    (tmp_path / "s.csv").write_text("wavelength,flux,error\n4000,a,1\n4001,b,1\n")
    with pytest.raises(ReadError, match=r"column 'flux' is not numeric"):
        read_table(tmp_path / "s.csv")


def test_empty_table(tmp_path):
    (tmp_path / "e.csv").write_text("wavelength,flux,error\n")
    with pytest.raises(ReadError, match="no rows"):
        read_table(tmp_path / "e.csv")


def test_nan_wavelength(tmp_path):
    (tmp_path / "n.csv").write_text("wavelength,flux,error\n4000,1,1\nnan,1,1\n4002,1,1\n")
    with pytest.raises(ReadError, match="NaN or infinite wavelengths"):
        read_table(tmp_path / "n.csv")


def test_garbage_csv(tmp_path):
    (tmp_path / "g.csv").write_bytes(b"\x00\xff\x10garbage\n\x01,\x02\n")
    with pytest.raises(ReadError, match="g.csv: "):
        read_spectrum(tmp_path / "g.csv")


def test_fits_without_table(tmp_path):
    from astropy.io import fits

    fits.PrimaryHDU(np.zeros(5)).writeto(tmp_path / "img.fits")
    with pytest.raises(ReadError, match="img.fits: cannot read as a table"):
        read_table(tmp_path / "img.fits")
