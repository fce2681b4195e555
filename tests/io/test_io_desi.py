"""The DESI reader on the real files of tests/data/desi, checked against astropy and specutils'
``DESI coadd`` / ``DESI spectra`` loaders (arm by arm), and what every command makes of them.

Bad inputs are the real files mutated in tmp_path (a redrock ZWARN set, an arm shifted off the
pixel grid, a truncated copy); each must give a telling rejection and leave the rest readable.
"""

from __future__ import annotations

import gzip
import shutil
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from agnlens.errors import ReadError, RejectedSpectrum
from agnlens.io import expand_inputs, read_spectra, read_spectrum
from agnlens.io.desi import SkippedFibres, merge_arms, read_desi, zwarn_problem
from agnlens.spectra import Spectrum

import realdata
from realdata import DESI, DESI_FAINT, DESI_HEALPIX, DESI_SF, DESI_SPECTRA, DESI_TILE

FILES = [DESI_HEALPIX, DESI_TILE, DESI_SPECTRA, DESI_SF, DESI_FAINT]


def spectra_of(path, **kw) -> list[Spectrum]:
    return [x for x in read_desi(path, **kw) if isinstance(x, Spectrum)]


def arms_of(path):
    """Per arm, from astropy: wavelength (n,), flux, ivar, mask (rows, n), and the FIBERMAP."""
    with fits.open(path) as h:
        out = {arm: tuple(np.asarray(h[f"{arm}_{part}"].data) for part in ("WAVELENGTH", "FLUX", "IVAR", "MASK"))
               for arm in "BRZ"}
        return out, h["FIBERMAP"].data.copy()


# ------------------------------------------------------------------------------ against specutils


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_merged_spectrum_agrees_with_specutils_arm_by_arm(path):
    specutils = pytest.importorskip("specutils")
    fmt = "DESI spectra" if path.name.startswith("spectra") else "DESI coadd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy unit chatter about the files' BUNIT spelling
        arms = specutils.SpectrumList.read(str(path), format=fmt)
    assert [a.meta["band"] for a in arms] == ["b", "r", "z"]
    tids = np.asarray(arms[0].meta["fibermap"]["TARGETID"])
    merged = spectra_of(path)
    assert merged
    for s in merged:
        row = int(np.flatnonzero(tids == s.meta["targetid"])[0])
        num, den = np.zeros(s.wavelength.size), np.zeros(s.wavelength.size)
        covered = np.zeros(s.wavelength.size, dtype=int)
        per_arm = []
        for a in arms:
            wl = a.spectral_axis.value
            idx = np.searchsorted(s.wavelength, wl - 1e-6)
            np.testing.assert_allclose(s.wavelength[idx], wl, rtol=0, atol=1e-6)
            f = np.asarray(a.flux.value[row], dtype=np.float64)
            iv = np.asarray(a.uncertainty.array[row], dtype=np.float64)
            good = ~a.mask[row] & (iv > 0)
            num[idx[good]] += iv[good] * f[good]
            den[idx[good]] += iv[good]
            covered[idx] += 1
            per_arm.append((idx, good, f, iv))
        for idx, good, f, iv in per_arm:  # away from the overlaps: the arm's own values
            only = good & (covered[idx] == 1)
            assert only.sum() > 1000
            np.testing.assert_array_equal(s.flux[idx[only]], f[only])  # float32 values, bit for bit
            np.testing.assert_array_equal(s.ivar[idx[only]], iv[only])
        both = (covered == 2) & (den > 0)
        assert both.sum() > 50  # B-R and R-Z overlaps
        np.testing.assert_allclose(s.flux[both], num[both] / den[both], rtol=1e-12)
        np.testing.assert_allclose(s.ivar[both], den[both], rtol=1e-12)
        np.testing.assert_array_equal(s.mask, den == 0)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_merge_conserves_flux_and_ivar(path):
    arms, fibermap = arms_of(path)
    for s in spectra_of(path):
        row = int(np.flatnonzero(fibermap["TARGETID"] == s.meta["targetid"])[0])
        sum_ivar = sum_flux = 0.0
        for _, flux, ivar, mask in arms.values():
            good = (mask[row] == 0) & (ivar[row] > 0)
            sum_ivar += ivar[row][good].astype(np.float64).sum()
            sum_flux += (ivar[row][good].astype(np.float64) * flux[row][good]).sum()
        np.testing.assert_allclose(s.ivar.sum(), sum_ivar, rtol=1e-12)
        np.testing.assert_allclose((s.ivar * s.flux).sum(), sum_flux, rtol=1e-9)


def test_compressed_masks_of_a_spectra_file_match_astropy():
    from agnlens.io.fits import FitsFile, image_rows, load_bytes

    f = FitsFile(*load_bytes(DESI_SPECTRA))
    arms, _ = arms_of(DESI_SPECTRA)
    assert f.find(("B_MASK",)).get("ZIMAGE") is True  # the case under test: a tile-compressed image
    for arm, (_, _, _, mask) in arms.items():
        np.testing.assert_array_equal(image_rows(f, f.find((f"{arm}_MASK",))), mask.astype(np.int64))
        np.testing.assert_array_equal(image_rows(f, f.find((f"{arm}_MASK",)), 2, 4), mask[2:4].astype(np.int64))


# ------------------------------------------------------------------------------ the joins


def sf_arms():
    arms, _ = arms_of(DESI_SF)
    names = list(arms)
    return (names, [arms[a][0] for a in names], [arms[a][1][0].astype(np.float64) for a in names],
            [arms[a][2][0].astype(np.float64) for a in names], [arms[a][3][0] != 0 for a in names])


def test_the_real_joins_are_not_flagged_and_a_camera_jump_is():
    names, wl, flux, ivar, bad = sf_arms()
    merged = merge_arms(names, wl, flux, ivar, bad)
    assert merged.flagged == []
    assert set(merged.jumps) == {"B-R", "R-Z"} and all(abs(v) < 0.1 for v in merged.jumps.values())
    jumped = merge_arms(names, wl, [flux[0], 1.5 * flux[1], flux[2]], ivar, bad)
    assert jumped.flagged == ["B-R", "R-Z"]
    assert jumped.jumps["B-R"] < 0 < jumped.jumps["R-Z"]  # R is high: B - R < 0, R - Z > 0


def test_arms_off_one_pixel_grid_are_a_read_error():
    names, wl, flux, ivar, bad = sf_arms()
    with pytest.raises(ReadError, match="R and Z arms overlap but are not on one pixel grid"):
        merge_arms(names, [wl[0], wl[1], wl[2] + 0.4], flux, ivar, bad)


def test_masked_pixels_are_left_out_of_the_combination():
    names, wl, flux, ivar, bad = sf_arms()
    bad_r = bad[1].copy()
    bad_r[:] = True  # the whole R arm masked: B and Z alone, R's range masked where they do not reach
    merged = merge_arms(names, wl, flux, ivar, [bad[0], bad_r, bad[2]])
    in_b = np.isin(np.rint(merged.wavelength * 1000), np.rint(wl[0] * 1000))
    assert not bad[0].any()  # this target's B arm is clean: over it the merge is the B arm alone
    np.testing.assert_array_equal(merged.flux[in_b], flux[0])
    np.testing.assert_array_equal(merged.ivar[in_b], ivar[0])
    only_r = (merged.wavelength > wl[0][-1] + 0.1) & (merged.wavelength < wl[2][0] - 0.1)
    assert merged.mask[only_r].all() and (merged.ivar[only_r] == 0).all()
    # a pixel no arm has good keeps the arms' finite values for the eye (here R's own)
    in_r = (wl[1] > wl[0][-1] + 0.1) & (wl[1] < wl[2][0] - 0.1)
    np.testing.assert_array_equal(merged.flux[only_r], flux[1][in_r])


# ------------------------------------------------------------------------------ fibres and targets


@pytest.mark.parametrize("path", [DESI_HEALPIX, DESI_TILE, DESI_SPECTRA], ids=lambda p: p.name)
def test_fibres_without_a_target_are_skipped_and_counted(path):
    _, fibermap = arms_of(path)
    no_target = (fibermap["TARGETID"] < 0) | np.isin(np.char.strip(fibermap["OBJTYPE"]), ["SKY", "NON", "BAD", ""])
    items = list(read_desi(path))
    skipped = [x for x in items if isinstance(x, SkippedFibres)]
    assert len(skipped) == 1 and skipped[0].total == int(no_target.sum()) > 0
    named = {x.meta["targetid"] for x in items if isinstance(x, Spectrum)}
    named |= {int(x.source.rsplit("[", 1)[1][:-1]) for x in items if isinstance(x, RejectedSpectrum)}
    assert named == set(fibermap["TARGETID"][~no_target].tolist())


def test_a_fatal_fibre_status_rejects_that_target_and_the_file_reads_on():
    items = list(read_desi(DESI_TILE))
    rejected = [x for x in items if isinstance(x, RejectedSpectrum)]
    assert [r.source for r in rejected] == [f"{DESI_TILE}[39633297352951412]"]
    assert "COADD_FIBERSTATUS = 512 (BADPOSITION)" in rejected[0].reason
    assert [s.meta["targetid"] for s in items if isinstance(s, Spectrum)] == [39633300968442591]


def test_redshifts_come_from_the_redrock_file_beside():
    (s,) = spectra_of(DESI_SF)
    with fits.open(DESI / "redrock-4-80613-thru20210324.fits.gz") as h:
        z = h["REDSHIFTS"].data
    assert s.meta["z"] == float(z["Z"][0]) and s.meta["zwarning"] == int(z["ZWARN"][0])
    assert s.meta["spectype"] == "GALAXY" and s.meta["z_source"] == "redrock-4-80613-thru20210324.fits.gz"
    assert s.spec_id == "sv1-tile80613-39633345008634465"  # survey from the SV1 target bits, program from the tile
    (faint,) = spectra_of(DESI_FAINT)
    assert faint.spec_id == "special-dark-39089837499744649"  # healpix: SURVEY-PROGRAM from the header
    assert all(np.isnan(s.meta["z"]) and s.meta["z_source"] == "" for s in spectra_of(DESI_HEALPIX))


def test_targets_by_id_and_by_rows_through_the_router():
    sid = f"{DESI_HEALPIX}[39627866878514741]"
    assert [str(p) for p in expand_inputs([sid])] == [sid]
    (s,) = read_spectra(sid)
    assert s.meta["targetid"] == 39627866878514741 and s.meta["source"] == sid
    # two selectors of one file are one input; the file itself swallows them
    both = expand_inputs([sid, f"{DESI_HEALPIX}[39627866878511337]"])
    assert len(both) == 1 and str(both[0]).endswith("[39627866878514741,39627866878511337]")
    assert expand_inputs([sid, DESI_HEALPIX]) == [DESI_HEALPIX]
    rows = [x for x in read_spectra(f"{DESI_HEALPIX}[rows=2:4]")]  # a target and the sky fibre
    assert [type(x).__name__ for x in rows] == ["Spectrum", "SkippedFibres"]
    assert [type(x).__name__ for x in read_spectra(f"{DESI_HEALPIX}[42]")] == ["RejectedSpectrum"]
    with pytest.raises(ReadError, match="read it with agnlens.io.read_spectra"):
        read_spectrum(DESI_HEALPIX)
    assert list(read_spectra(DESI / "redrock-4-80613-thru20210324.fits.gz")) == []  # read with its coadd


# ------------------------------------------------------------------------------ labels, ZWARN, bad files


def test_a_catalogue_of_targetid_and_z_gives_the_redshift(tmp_path):
    from agnlens.stages.reading import read_items, read_labels

    cat = tmp_path / "z.csv"
    pd.DataFrame({"TARGETID": [39627866878514741], "Z": [0.25]}).to_csv(cat, index=False)
    items = list(read_items(DESI_HEALPIX, labels=read_labels(cat)))
    (s,) = [x for x in items if isinstance(x, Spectrum)]
    assert s.meta["z"] == 0.25 and s.meta["z_source"] == "catalogue"
    reasons = [x.reason for x in items if type(x).__name__ == "Rejection"]
    assert len(reasons) == 1 and reasons[0].startswith("no redshift for TARGETID 39627866878511337")
    # keyed by SURVEY-PROGRAM-TARGETID when the catalogue has them (a zpix catalogue)
    pd.DataFrame({"TARGETID": [39627866878514741], "SURVEY": ["sv3"], "PROGRAM": ["dark"], "Z": [0.3],
                  "label": ["type2"]}).to_csv(cat, index=False)
    (s,) = [x for x in read_items(DESI_HEALPIX, labels=read_labels(cat)) if isinstance(x, Spectrum)]
    assert (s.spec_id, s.meta["z"], s.meta["label"]) == ("sv3-dark-39627866878514741", 0.3, "type2")


def test_zwarn_rejects_unless_allowed(tmp_path):
    from agnlens.stages.reading import read_items

    shutil.copy(DESI_SF, tmp_path / DESI_SF.name)
    with fits.open(DESI / "redrock-4-80613-thru20210324.fits.gz") as h:
        h["REDSHIFTS"].data["ZWARN"][0] = 4 | 16  # SMALL_DELTA_CHI2 (unreliable) and MANY_OUTLIERS (not)
        h.writeto(tmp_path / "redrock-4-80613-thru20210324.fits")
    (r,) = read_items(tmp_path / DESI_SF.name)
    assert "ZWARN = 20 (SMALL_DELTA_CHI2) makes the redshift unreliable" in r.reason
    (s,) = read_items(tmp_path / DESI_SF.name, allow_zwarning=True)
    assert s.meta["zwarning"] == 20
    assert zwarn_problem(16) is None and "BAD_MINFLUX" in zwarn_problem(1 << 10)


def test_a_bad_file_never_stops_the_batch(tmp_path):
    from agnlens.stages.reading import read_files as ingest

    for p in (DESI_SF, DESI / "redrock-4-80613-thru20210324.fits.gz", DESI_HEALPIX):
        shutil.copy(p, tmp_path / p.name)
    raw = gzip.decompress(DESI_FAINT.read_bytes())
    (tmp_path / "coadd-special-dark-27247.fits").write_bytes(raw[: len(raw) // 2])
    spectra, summary = ingest([tmp_path], grid="balmer")
    assert list(spectra.spec_id) == ["sv1-tile80613-39633345008634465"]
    reasons = {r.source.rsplit("/", 1)[-1]: r.reason for r in summary.rejected}
    assert "truncated" in reasons["coadd-special-dark-27247.fits"]
    assert sum("no redshift" in r for r in reasons.values()) == 2
    assert summary.skipped == 3 and "fibres without a target skipped (sky, blank): 3" in summary.lines()


# ------------------------------------------------------------------------------ every command


def test_classify_cli_on_the_real_desi_folder(tmp_path, capsys):
    from agnlens.cli import main

    out = tmp_path / "r.csv"
    assert main(["classify", str(DESI), "--out", str(out)]) == 1  # 1: some targets were rejected
    table = pd.read_csv(out, dtype={"spec_id": str}, keep_default_na=False)
    assert sorted(table["spec_id"]) == ["special-dark-39089837499744649", "sv1-tile80613-39633345008634465"]
    sf = table.set_index("spec_id").loc["sv1-tile80613-39633345008634465"]
    assert abs(sf["z"] - 0.36874355) < 1e-5 and "not-agn" in sf["flags"]  # the star-forming control (CSV: 6 digits)
    err = capsys.readouterr().err
    for tid in (39627866878511337, 39627866878514741, 39633300968442591):  # the specutils targets
        assert f"no redshift for TARGETID {tid}" in err
    assert "skipped 3 fibre(s) without a target (2 blank, 1 sky)" in err


def test_ingest_store_classify_gives_identical_results(tmp_path):
    from agnlens.cli import main

    direct, via = tmp_path / "direct.csv", tmp_path / "via.csv"
    store = tmp_path / "desi.zarr"
    main(["classify", str(DESI), "--out", str(direct)])
    assert main(["ingest", str(DESI), "--grid", "balmer", "--out", str(store)]) == 1  # rejections
    main(["classify", str(store), "--out", str(via)])
    a = pd.read_csv(direct, dtype={"spec_id": str}, keep_default_na=False).set_index("spec_id").sort_index()
    b = pd.read_csv(via, dtype={"spec_id": str}, keep_default_na=False).set_index("spec_id").sort_index()
    assert list(a.index) == list(b.index) and len(a) == 2
    cols = [c for c in a.columns if c.startswith("p_")] + ["predicted_label", "flags", "applicable", "z"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_a_camera_jump_is_flagged_by_classify(tmp_path):
    from agnlens.models.default import resolve_models
    from agnlens.stages import classify

    shutil.copy(DESI / "redrock-4-80613-thru20210324.fits.gz", tmp_path)
    with fits.open(DESI_SF) as h:
        h["R_FLUX"].data = h["R_FLUX"].data * np.float32(1.5)  # the R camera's calibration off by 50 %
        h.writeto(tmp_path / "coadd-4-80613-thru20210324.fits")
    table, rejected = classify(resolve_models("default", None), [tmp_path], return_rejected=True)
    assert not rejected and "camera-jump" in table["flags"].iloc[0].split(";")
    assert not table["applicable"].iloc[0]


def test_a_desi_file_sits_beside_sdss_files(tmp_path):
    """A folder of SDSS and DESI files: one batch, each file read by its own reader."""
    from agnlens.stages.reading import read_files as ingest

    for p in (DESI_SF, DESI / "redrock-4-80613-thru20210324.fits.gz", realdata.BOSS):
        shutil.copy(p, tmp_path / p.name)
    spectra, summary = ingest([tmp_path], grid="paper")
    assert set(spectra.meta["format"]) == {"spec", "desi-coadd"}, summary.rejected


# ------------------------------------------------------------------------------ scale


@pytest.fixture(scope="module")
def big_coadd(tmp_path_factory):
    from desi_synth import synthetic_coadd

    return synthetic_coadd(tmp_path_factory.mktemp("desi-big"), 5000)


@pytest.mark.slow
def test_a_5000_target_coadd_is_read_in_bounded_memory(big_coadd):
    import tracemalloc

    from desi_synth import SKY_EVERY

    size = big_coadd.stat().st_size
    assert size > 400e6  # the whole file would not fit the bound below
    tracemalloc.start()
    try:
        n, skipped = 0, None
        for x in read_desi(big_coadd):
            if isinstance(x, Spectrum):
                n += 1
            else:
                skipped = x
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 5000 - 5000 // SKY_EVERY and skipped.counts == {"sky": 5000 // SKY_EVERY}
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.1f} MiB reading a {size / 2**20:.0f} MiB coadd"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_a_5000_target_coadd_is_read_with_a_bounded_resident_size(big_coadd):
    """The memory-mapped pages count too: a fresh process reading every target stays far below the file."""
    import subprocess

    # VmHWM: this process's peak resident size (ru_maxrss would carry pytest's own over from the fork)
    code = ("import sys\nfrom agnlens.io.desi import read_desi\n"
            "n = sum(1 for _ in read_desi(sys.argv[1]))\n"
            "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "print(n, hwm)")
    out = subprocess.run([sys.executable, "-c", code, str(big_coadd)], capture_output=True, text=True,
                         check=True, timeout=600).stdout.split()
    rss, size = int(out[1]) * 1024, big_coadd.stat().st_size  # in kB
    assert int(out[0]) == 5000 // 50 * 49 + 1  # the targets, then one SkippedFibres
    assert rss < size / 2, f"resident {rss / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"


@pytest.mark.slow
def test_a_big_coadd_is_cut_into_target_ranges(big_coadd):
    from agnlens.io.inputs import count_spectra, target_ranges

    units = target_ranges([big_coadd, realdata.BOSS], 1000)
    assert [n for _, n in units] == [1000] * 5 + [1]
    assert units[2][0] == f"{big_coadd}[rows=2000:3000]" and count_spectra(units[2][0]) == 1000
    # the ranges read back to the whole file, each target once
    ids = [x.meta["targetid"] for item, _ in units[:5] for x in read_spectra(item) if isinstance(x, Spectrum)]
    assert len(ids) == len(set(ids)) == 4900
