"""SDSS readers on real spec files (the in-repo subset; all 95 when ../shared is there) and the
real DR7 spSpec file, checked against astropy.

Bad inputs are real files mutated in tmp_path (truncated, a column or HDU removed with astropy,
garbage bytes, NaN wavelengths...); each must give a ReadError with a telling reason.
"""

from __future__ import annotations

import gzip
import io
import re

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from agnlens.errors import ReadError
from agnlens.io import (
    DEFAULT_BAD_BITS,
    SPPIXMASK_BITS,
    UNRELIABLE_Z_BITS,
    ZWARNING_BITS,
    read_sdss,
    read_spec,
    read_spectrum,
    read_spspec,
    zwarning_problem,
)
from agnlens.io.sdss import air_to_vacuum, sniff_fits
from agnlens.preprocess import preprocess

import realdata
from realdata import BOSS, DR7, FULL, LEGACY

#: Every real file at hand: the full 95 when ../shared/data is beside the project, else the subset.
SDSS = realdata.FULL_SDSS if realdata.HAVE_FULL_SET else realdata.SDSS
SPECTRA = sorted((SDSS / "spectra").glob("spec-*.fits"))
N = realdata.FULL_N_SPECTRA if realdata.HAVE_FULL_SET else realdata.N_SPECTRA


@pytest.fixture(scope="module")
def all_spectra():
    return [read_sdss(p) for p in SPECTRA]


@pytest.fixture(scope="module")
def labels():
    return pd.read_csv(SDSS / "labels.csv", dtype={"spec_id": str}).set_index("spec_id")


def test_every_real_file_reads(all_spectra, labels):
    assert len(all_spectra) == N
    for path, s in zip(SPECTRA, all_spectra):
        plate, mjd, fiber = (int(x) for x in re.match(r"spec-(\d+)-(\d+)-(\d+)", path.name).groups())
        assert s.spec_id == f"{plate:04d}-{mjd:05d}-{fiber:04d}"
        assert (s.meta["plate"], s.meta["mjd"], s.meta["fiber"]) == (plate, mjd, fiber)
        assert abs(s.z - labels.loc[s.spec_id, "z"]) < 1e-3, path.name
        assert s.meta["format"] == "spec" and s.meta["source"] == str(path) and s.frame == "observed"
        n = s.wavelength.size
        assert n > 3000 and s.flux.shape == s.ivar.shape == s.mask.shape == (n,)
        assert np.all(np.diff(s.wavelength) > 0)
        # Legacy ≈ 3800–9200 Å, BOSS ≈ 3600–10400 Å observed
        assert 3500 < s.wavelength[0] < 4000 and 9000 < s.wavelength[-1] < 10500, path.name
        assert np.all(s.ivar[s.mask] == 0) and np.all(s.ivar >= 0)
        assert s.good.mean() > 0.8, path.name
        assert s.meta["sdss_class"] == labels.loc[s.spec_id, "sdss_class"]
        assert isinstance(s.meta["zwarning"], int)


def test_both_layouts_are_present_and_read(all_spectra):
    kinds = {fits.getval(p, "EXTNAME", ext=2) for p in SPECTRA}
    assert kinds == {"SPECOBJ", "SPALL"}
    surveys = {s.meta["survey"] for s in all_spectra}
    assert {"sdss", "boss"} <= surveys


@pytest.mark.parametrize("path", [LEGACY, BOSS, FULL], ids=["legacy-specobj", "boss-spall", "boss-full"])
def test_matches_astropy(path):
    """Every array and header value equals what astropy.io.fits reads from the same file."""
    s = read_spec(path)
    with fits.open(path) as hdul:
        coadd = hdul["COADD"].data
        obj = hdul[2].data
        np.testing.assert_allclose(s.wavelength, 10.0 ** coadd["loglam"].astype(np.float64), rtol=1e-12)
        np.testing.assert_array_equal(s.flux, coadd["flux"].astype(np.float64))
        ivar = coadd["ivar"].astype(np.float64)
        bad = ~(ivar > 0) | ~np.isfinite(coadd["flux"]) | ((coadd["and_mask"] & DEFAULT_BAD_BITS) != 0)
        np.testing.assert_array_equal(s.mask, bad)
        np.testing.assert_array_equal(s.ivar, np.where(bad, 0.0, ivar))
        assert s.z == pytest.approx(float(obj["Z"][0]), rel=1e-7)
        assert s.meta["z_err"] == pytest.approx(float(obj["Z_ERR"][0]), rel=1e-6)
        assert s.meta["zwarning"] == int(obj["ZWARNING"][0])
        assert s.meta["sdss_class"] == obj["CLASS"][0].strip()
        assert s.meta["sdss_subclass"] == obj["SUBCLASS"][0].strip()


def test_informational_mask_bits_do_not_mask(all_spectra):
    """Only NOPLUG, FULLREJECT and NODATA mark pixels bad: with them all (95) fit both grids."""
    assert DEFAULT_BAD_BITS == (1 << 0) | (1 << 18) | (1 << 24)
    assert SPPIXMASK_BITS["BRIGHTSKY"] == 23 and SPPIXMASK_BITS["NEARBADPIXEL"] == 16
    for grid in ("paper", "balmer"):
        accepted, rejected = preprocess(all_spectra, grid)
        assert len(accepted) == N and not rejected, [str(r) for r in rejected]
    # The and_mask really carries informational bits on many pixels: masking all of it would bite.
    strict = read_spec(SPECTRA[0], bad_bits=0xFFFFFFFF)
    assert strict.mask.sum() >= read_spec(SPECTRA[0]).mask.sum()


def test_dr7_spspec_reads():
    s = read_spspec(DR7)
    assert s.meta["format"] == "spSpec"
    assert s.z == pytest.approx(2.2319, abs=1e-3)
    assert s.spec_id == "0542-51993-0631"
    assert s.wavelength.size == 3853
    assert 3790 < s.wavelength[0] < 3810 and 9150 < s.wavelength[-1] < 9250
    assert s.meta["sdss_class"] == "QSO" and s.meta["zwarning"] == 0
    with fits.open(DR7) as hdul:
        image = hdul[0].data.astype(np.float64)
        hdr = hdul[0].header
    loglam = hdr["COEFF0"] + hdr["COEFF1"] * np.arange(hdr["NAXIS1"])
    np.testing.assert_allclose(s.wavelength, 10**loglam, rtol=1e-12)
    np.testing.assert_array_equal(s.flux, image[0])
    sigma = image[2]
    expected_ivar = np.where(sigma > 0, 1.0 / np.where(sigma > 0, sigma, 1.0) ** 2, 0.0)
    bad = (sigma <= 0) | ((image[3].astype(np.int64) & DEFAULT_BAD_BITS) != 0)
    np.testing.assert_array_equal(s.mask, bad)
    np.testing.assert_allclose(s.ivar, np.where(bad, 0.0, expected_ivar), rtol=1e-12)
    assert read_sdss(DR7).spec_id == s.spec_id and read_spectrum(DR7).spec_id == s.spec_id


@pytest.mark.parametrize("grid", ["paper", "balmer"])
def test_dr7_quasar_is_rejected_for_coverage(grid):
    accepted, rejected = preprocess([read_spectrum(DR7)], grid)
    assert len(accepted) == 0 and len(rejected) == 1
    assert "covers only" in rejected[0].reason and str(DR7) in rejected[0].source


def test_spspec_air_wavelengths_are_converted(tmp_path):
    with fits.open(DR7) as hdul:
        hdul[0].header["VACUUM"] = False
        hdul.writeto(tmp_path / "air.fit")
    air = read_spspec(tmp_path / "air.fit")
    vac = read_spspec(DR7)
    np.testing.assert_allclose(air.wavelength, air_to_vacuum(vac.wavelength), rtol=1e-12)
    assert np.all(air.wavelength - vac.wavelength > 1.0)  # ~1.1 Å at 3800 Å, ~2.5 Å at 9200 Å


def test_air_to_vacuum_matches_line_lists():
    """Air wavelengths of strong lines (NIST) land on the vacuum values SDSS uses (DOMAIN.md)."""
    air = np.array([6562.80, 4861.33, 5006.84, 6583.45, 3933.66])
    vacuum = np.array([6564.61, 4862.68, 5008.24, 6585.27, 3934.78])
    np.testing.assert_allclose(air_to_vacuum(air), vacuum, atol=0.015)


def test_zwarning_problem():
    assert zwarning_problem(0) is None
    # bits bright AGN trip routinely: MANY_OUTLIERS (16) and NEGATIVE_EMISSION (64)
    assert zwarning_problem(16) is None and zwarning_problem(64) is None and zwarning_problem(80) is None
    msg = zwarning_problem(4)
    assert msg == "ZWARNING = 4 (SMALL_DELTA_CHI2) makes the redshift unreliable; use --allow-zwarning to keep it"
    assert "SKY" in zwarning_problem(1 | 16) and "NODATA" in zwarning_problem(512)
    expected = sum(1 << ZWARNING_BITS[b] for b in
                   ("SKY", "LITTLE_COVERAGE", "SMALL_DELTA_CHI2", "Z_FITLIMIT", "UNPLUGGED", "BAD_TARGET", "NODATA"))
    assert UNRELIABLE_Z_BITS == expected == 1 | 2 | 4 | 32 | 128 | 256 | 512


def test_real_zwarnings_are_not_fatal(all_spectra):
    flagged = [s for s in all_spectra if s.meta["zwarning"]]
    assert flagged, "the shared sample has spectra with ZWARNING 16/64"
    assert all(zwarning_problem(s.meta["zwarning"]) is None for s in flagged)


def test_gzip_and_memory_inputs_read_the_same(tmp_path):
    ref = read_spec(LEGACY)
    gz = tmp_path / "spec.fits.gz"
    gz.write_bytes(gzip.compress(LEGACY.read_bytes()))
    buf = io.BytesIO(LEGACY.read_bytes())
    buf.name = "in-memory.fits"
    for s in (read_spectrum(gz), read_sdss(buf)):
        np.testing.assert_array_equal(s.flux, ref.flux)
        np.testing.assert_array_equal(s.wavelength, ref.wavelength)
        assert s.spec_id == ref.spec_id
    assert sniff_fits(LEGACY) == "spec" and sniff_fits(DR7) == "spSpec"


def test_nan_flux_is_masked_not_fatal(tmp_path):
    with fits.open(LEGACY) as hdul:
        hdul[1].data["flux"][100:110] = np.nan
        hdul[1].data["flux"][200] = np.inf
        hdul.writeto(tmp_path / "nanflux.fits")
    s = read_spectrum(tmp_path / "nanflux.fits")
    assert s.mask[100:110].all() and s.mask[200] and np.all(s.ivar[100:110] == 0)


def test_all_bad_pixels_read_then_rejected(tmp_path):
    with fits.open(LEGACY) as hdul:
        hdul[1].data["ivar"][:] = 0
        hdul.writeto(tmp_path / "allbad.fits")
    s = read_spectrum(tmp_path / "allbad.fits")
    assert s.mask.all()
    _, rejected = preprocess([s], "paper")
    assert "all pixels are bad" in rejected[0].reason


# ---------------------------------------------------------------------------- bad inputs


def _write(hdul_list, path):
    fits.HDUList(hdul_list).writeto(path)
    return path


def test_garbage_bytes(tmp_path):
    p = tmp_path / "spec-0001-00001-0001.fits"
    p.write_bytes(b"this is not FITS\n" * 400)
    with pytest.raises(ReadError, match=r"spec-0001-00001-0001.fits: not a FITS file \(header could not be parsed"):
        read_spectrum(p)
    with pytest.raises(ReadError, match="not a FITS file"):
        read_sdss(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.fits"
    p.write_bytes(b"")
    with pytest.raises(ReadError, match="not a FITS file"):
        read_spectrum(p)


def test_missing_file(tmp_path):
    with pytest.raises(ReadError, match="no such file"):
        read_spectrum(tmp_path / "nope.fits")


@pytest.mark.parametrize("path", [LEGACY, DR7], ids=["spec", "spSpec"])
def test_truncated_data(tmp_path, path):
    p = tmp_path / "truncated.fits"
    data = path.read_bytes()
    p.write_bytes(data[: len(data) // 3 + 17])  # cuts into the spectrum's data
    with pytest.raises(ReadError, match=r"truncated: .*data is shorter than its header says"):
        read_spectrum(p)


def test_truncated_header(tmp_path):
    data = LEGACY.read_bytes()
    with fits.open(LEGACY) as hdul:
        start = hdul.fileinfo(2)["hdrLoc"]
    p = tmp_path / "cut-header.fits"
    p.write_bytes(data[: start + 2880 + 400])  # ends inside HDU 2's header
    with pytest.raises(ReadError, match="truncated: the header of HDU 2 ends before its END card"):
        read_spectrum(p)


def test_missing_column(tmp_path):
    with fits.open(LEGACY) as hdul:
        coadd = hdul[1]
        cols = [c for c in coadd.columns if c.name != "ivar"]
        new = fits.BinTableHDU.from_columns(cols, header=None, name="COADD")
        p = _write([fits.PrimaryHDU(header=hdul[0].header), new, hdul[2].copy()], tmp_path / "noivar.fits")
    with pytest.raises(ReadError, match=r"noivar.fits: HDU 1 'COADD' has no column 'ivar'"):
        read_spectrum(p)


def test_missing_redshift_column(tmp_path):
    with fits.open(BOSS) as hdul:
        obj = hdul[2]
        cols = [c for c in obj.columns if c.name != "Z"]
        new = fits.BinTableHDU.from_columns(cols, name="SPALL")
        p = _write([fits.PrimaryHDU(header=hdul[0].header), hdul[1].copy(), new], tmp_path / "noz.fits")
    with pytest.raises(ReadError, match=r"HDU 2 'SPALL' has no column 'Z'"):
        read_spectrum(p)


def test_missing_object_hdu(tmp_path):
    with fits.open(LEGACY) as hdul:
        p = _write([fits.PrimaryHDU(header=hdul[0].header), hdul[1].copy()], tmp_path / "nohdu2.fits")
    with pytest.raises(ReadError, match=r"missing HDU 2 \(SPECOBJ or SPALL"):
        read_spectrum(p)


def test_object_hdu_found_by_name(tmp_path):
    """SPECOBJ after an extra HDU is still found by EXTNAME; an unnamed HDU 2 is the fallback."""
    with fits.open(LEGACY) as hdul:
        extra = fits.ImageHDU(np.zeros(3, np.float32), name="EXTRA")
        p = _write([fits.PrimaryHDU(header=hdul[0].header), hdul[1].copy(), extra, hdul[2].copy()],
                   tmp_path / "moved.fits")
        unnamed = fits.BinTableHDU(hdul[2].data, name="OBJECT")
        q = _write([fits.PrimaryHDU(header=hdul[0].header), hdul[1].copy(), unnamed], tmp_path / "unnamed.fits")
    ref = read_spec(LEGACY)
    assert read_spectrum(p).z == ref.z and read_spectrum(q).z == ref.z


def test_only_primary_hdu(tmp_path):
    p = _write([fits.PrimaryHDU(np.zeros(10, np.float32))], tmp_path / "primary.fits")
    with pytest.raises(ReadError, match="not an SDSS spectrum"):
        read_sdss(p)
    with pytest.raises(ReadError, match="primary.fits: "):
        read_spectrum(p)


def test_empty_coadd(tmp_path):
    with fits.open(LEGACY) as hdul:
        empty = fits.BinTableHDU(hdul[1].data[:0], name="COADD")
        p = _write([fits.PrimaryHDU(header=hdul[0].header), empty, hdul[2].copy()], tmp_path / "empty.fits")
    with pytest.raises(ReadError, match=r"HDU 1 'COADD' has no rows"):
        read_spectrum(p)


def test_nan_wavelength(tmp_path):
    with fits.open(LEGACY) as hdul:
        hdul[1].data["loglam"][50] = np.nan
        hdul.writeto(tmp_path / "nanwave.fits")
    with pytest.raises(ReadError, match="wavelength solution has NaN or infinite values"):
        read_spectrum(tmp_path / "nanwave.fits")


def test_nan_wavelength_solution_dr7(tmp_path):
    data = bytearray(DR7.read_bytes())
    i = data.index(b"COEFF1  =")
    data[i + 10 : i + 30] = b"NaN".rjust(20)
    p = tmp_path / "spSpec-nan.fit"
    p.write_bytes(bytes(data))
    with pytest.raises(ReadError, match="COEFF1 is unreadable"):
        read_spectrum(p)


def test_unsorted_wavelength(tmp_path):
    with fits.open(LEGACY) as hdul:
        hdul[1].data["loglam"][10], hdul[1].data["loglam"][11] = hdul[1].data["loglam"][11], hdul[1].data["loglam"][10]
        hdul.writeto(tmp_path / "unsorted.fits")
    with pytest.raises(ReadError, match="not strictly increasing"):
        read_spectrum(tmp_path / "unsorted.fits")


def test_unreadable_header_keyword(tmp_path):
    data = bytearray(LEGACY.read_bytes())
    with fits.open(LEGACY) as hdul:
        start = hdul.fileinfo(1)["hdrLoc"]
    i = data.index(b"NAXIS2  =", start)
    data[i + 10 : i + 30] = b"'many rows'".ljust(20)
    p = tmp_path / "badcard.fits"
    p.write_bytes(bytes(data))
    with pytest.raises(ReadError, match=r"HDU 1 'COADD': header keyword NAXIS2 = 'many rows', expected an integer"):
        read_spectrum(p)


def test_columns_disagree_with_row_width(tmp_path):
    data = bytearray(LEGACY.read_bytes())
    with fits.open(LEGACY) as hdul:
        start = hdul.fileinfo(1)["hdrLoc"]
    i = data.index(b"TFORM1  =", start)
    data[i + 10 : i + 30] = b"'D       '".ljust(20)
    p = tmp_path / "badform.fits"
    p.write_bytes(bytes(data))
    with pytest.raises(ReadError, match="columns add up to 36 bytes per row, but NAXIS1 says 32"):
        read_spectrum(p)


def test_spspec_with_too_few_rows(tmp_path):
    with fits.open(DR7) as hdul:
        hdr = hdul[0].header.copy()
        p = _write([fits.PrimaryHDU(hdul[0].data[:2], header=hdr)], tmp_path / "spSpec-rows.fit")
    with pytest.raises(ReadError, match="primary image has 2 rows, expected at least 4"):
        read_spectrum(p)


def test_no_warnings_leak_on_damaged_files(tmp_path, recwarn):
    """pytest turns warnings into errors; damaged files must give ReadError and nothing else."""
    data = FULL.read_bytes()
    for k, cut in enumerate((100, 2880 * 3, len(data) // 2, len(data) - 1)):
        p = tmp_path / f"cut{k}.fits"
        p.write_bytes(data[:cut])
        try:
            read_spectrum(p)
        except ReadError:
            pass
    assert not recwarn.list


def test_simulated_flag(tmp_path, all_spectra):
    assert not any(s.meta["simulated"] for s in all_spectra)
    with fits.open(LEGACY) as hdul:
        hdul[0].header["SIMULATE"] = True
        hdul.writeto(tmp_path / "sim-primary.fits")
        cols = hdul[2].columns + fits.ColDefs([fits.Column("SIMULATED", "L", array=np.array([True]))])
        obj = fits.BinTableHDU.from_columns(cols, name="SPECOBJ")
        _write([fits.PrimaryHDU(header=fits.getheader(LEGACY)), hdul[1].copy(), obj], tmp_path / "sim-col.fits")
        cols = hdul[2].columns + fits.ColDefs([fits.Column("SIMULATED", "L", array=np.array([False]))])
        obj = fits.BinTableHDU.from_columns(cols, name="SPECOBJ")
        _write([fits.PrimaryHDU(header=fits.getheader(LEGACY)), hdul[1].copy(), obj], tmp_path / "real-col.fits")
    assert read_spectrum(tmp_path / "sim-primary.fits").meta["simulated"] is True
    assert read_spectrum(tmp_path / "sim-col.fits").meta["simulated"] is True
    assert read_spectrum(tmp_path / "real-col.fits").meta["simulated"] is False


@pytest.mark.parametrize("value, ok", [("2147483648", True), ("1E999", False), ("'text'", False)])
def test_column_offsets_tzero(tmp_path, value, ok):
    """TZERO on an integer column (unsigned convention) is applied; a non-finite one is an error."""
    data = bytearray(LEGACY.read_bytes())
    with fits.open(LEGACY) as hdul:
        start = hdul.fileinfo(1)["hdrLoc"]
    i = data.index(b"COMMENT Coadded spectrum", start)
    data[i : i + 80] = f"TZERO4  = {value:>20}".ljust(80).encode()
    p = tmp_path / "tzero.fits"
    p.write_bytes(bytes(data))
    if ok:
        with fits.open(p) as hdul:  # astropy applies the same offset
            expected = hdul[1].data["and_mask"].astype(np.int64)
        s = read_spectrum(p, bad_bits=1 << 31)
        assert expected.min() >= 2**31
        np.testing.assert_array_equal(s.mask, ((expected & (1 << 31)) != 0) | ~(read_spectrum(LEGACY).ivar > 0))
    else:
        with pytest.raises(ReadError, match="TZERO4"):
            read_spectrum(p)
