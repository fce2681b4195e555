"""Ingest and the simulate / ingest / info commands, end to end on real files."""

import shutil

import numpy as np
import pandas as pd
import pytest

from agnlens.cli import main
from agnlens.io import open_store
from agnlens.io.sdss_write import write_sdss_many
from agnlens.preprocess import preprocess
from agnlens.simulate import simulate
from agnlens.stages.reading import read_files as ingest

import realdata
from realdata import DR7

#: All 95 real spectra when ../shared/data is beside the project, else the in-repo subset.
SHARED = realdata.FULL_DATA if realdata.HAVE_FULL_SET else realdata.DATA
REAL = SHARED / "sdss" / "spectra"


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory):
    spectra = simulate(24, seed=5)
    out = tmp_path_factory.mktemp("simfits")
    paths = write_sdss_many(spectra, out)
    return spectra, paths


def test_simulate_write_ingest_recovers_the_inputs(sim_files):
    spectra, paths = sim_files
    got, summary = ingest(paths, grid="paper")
    ref, rejected = preprocess(spectra, "paper")
    assert not rejected and summary.accepted == len(spectra) == len(got) and summary.exit_status == 0
    order = np.argsort(got.spec_id)
    ref_order = np.argsort(ref.spec_id)
    np.testing.assert_array_equal(got.spec_id[order], ref.spec_id[ref_order])
    # the FITS path stores float32 flux and loglam (wavelength to ~1e-6 relative): agreement to
    # float32 precision, with a little more on the steep sides of lines
    np.testing.assert_allclose(got.flux[order], ref.flux[ref_order], rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(got.mask[order], ref.mask[ref_order])
    np.testing.assert_allclose(got.meta["z"].to_numpy()[order], ref.meta["z"].to_numpy()[ref_order], rtol=1e-6)


def test_ingest_all_real_spectra_with_labels_on_both_grids():
    labels = pd.read_csv(SHARED / "sdss" / "labels.csv", dtype={"spec_id": str})
    for grid in ("paper", "balmer"):
        spectra, summary = ingest([REAL], labels=SHARED / "sdss" / "labels.csv", grid=grid)
        assert summary.accepted == len(labels), [str(r) for r in summary.rejected]
        assert summary.unlabelled == 0 and summary.catalog_unmatched == 0
        got = dict(zip(spectra.spec_id, spectra.labels))
        assert got == dict(zip(labels.spec_id, labels.label))


def test_bad_inputs_are_named_and_the_rest_stored(sim_files, tmp_path, capsys):
    _, paths = sim_files
    d = tmp_path / "in"
    d.mkdir()
    for p in paths[:5]:
        shutil.copy(p, d)
    (d / "garbage.fits").write_bytes(b"this is not FITS at all" * 200)
    raw = paths[5].read_bytes()
    (d / "spec-truncated.fits").write_bytes(raw[: len(raw) // 2])
    shutil.copy(paths[0], d / "copy-of-first.fits")  # a duplicate spec_id
    shutil.copy(DR7, d)  # z = 2.23 quasar: no coverage of the paper grid
    catalog = tmp_path / "labels.csv"
    ids = [s.name[5:20] for s in paths[:3]] + ["0001-50000-0001"]
    pd.DataFrame({"spec_id": ids, "label": "type2"}).to_csv(catalog, index=False)

    store = tmp_path / "out.zarr"
    status = main(["ingest", str(d), "--labels", str(catalog), "--out", str(store)])
    err = capsys.readouterr()
    assert status == 1
    lines = [ln for ln in err.err.splitlines() if "rejected" in ln]
    assert len(lines) == 4, err.err
    assert any("garbage.fits" in ln and "not a FITS file" in ln for ln in lines)
    assert any("spec-truncated.fits" in ln and "truncated" in ln for ln in lines)
    assert any("copy-of-first.fits" in ln and "duplicate spec_id" in ln for ln in lines)
    assert any("spSpec-51993-0542-631.fit" in ln and "covers only" in ln for ln in lines)
    assert "inputs: 9  accepted: 5  rejected: 4" in err.out
    assert "stored without a label (no catalogue row): 2" in err.out
    assert "catalogue rows: 4  matching no input: 1" in err.out
    stored = open_store(store, lazy=False)
    assert len(stored) == 5 and sorted(stored.labels) == ["", "", "type2", "type2", "type2"]


def test_zwarning_rejected_unless_allowed(sim_files, tmp_path, capsys):
    spectra, _ = sim_files
    bad = spectra[0]
    bad.meta = dict(bad.meta, zwarning=4)  # SMALL_DELTA_CHI2
    routine = spectra[1]
    routine.meta = dict(routine.meta, zwarning=16 | 64)  # routine for bright AGN: kept
    paths = write_sdss_many([bad, routine], tmp_path / "zw")
    got, summary = ingest(paths)
    assert summary.accepted == 1 and "SMALL_DELTA_CHI2" in summary.rejected[0].reason
    got, summary = ingest(paths, allow_zwarning=True)
    assert summary.accepted == 2


def test_catalogue_redshift_override(sim_files, tmp_path):
    spectra, paths = sim_files
    sid = spectra[2].spec_id
    catalog = tmp_path / "cat.csv"
    pd.DataFrame({"spec_id": [sid], "label": ["type1"], "z": [spectra[2].z + 0.01]}).to_csv(catalog, index=False)
    got, _ = ingest([paths[2]], labels=catalog)
    assert got.meta.loc[0, "z"] == pytest.approx(spectra[2].z + 0.01) and got.labels[0] == "type1"


def test_catalogue_missing_key_columns_is_refused_naming_the_file(sim_files, tmp_path, capsys):
    catalog = tmp_path / "nokey.csv"
    pd.DataFrame({"name": ["x"], "label": ["type1"]}).to_csv(catalog, index=False)
    status = main(["ingest", str(sim_files[1][0]), "--labels", str(catalog), "--out", str(tmp_path / "s.zarr")])
    assert status == 2  # an unusable input (README: exit 2)
    assert "nokey.csv" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists()


def test_simulate_and_info_commands(tmp_path, capsys):
    store = tmp_path / "sim.zarr"
    fits_dir = tmp_path / "fits"
    assert main(["simulate", "--n", "40", "--seed", "2", "--out", str(store), "--fits-dir", str(fits_dir)]) == 0
    assert len(list(fits_dir.glob("spec-*.fits"))) == 40
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "40 SIMULATED spectra" in out and "type2" in out and "paper" in out
    # the FITS files ingest to the same spectra as the store holds
    labels = fits_dir / "labels.csv"
    assert main(["ingest", str(fits_dir), "--labels", str(labels), "--out", str(tmp_path / "again.zarr")]) == 0
    a, b = open_store(store, lazy=False), open_store(tmp_path / "again.zarr", lazy=False)
    ia, ib = np.argsort(a.spec_id), np.argsort(b.spec_id)
    np.testing.assert_allclose(a.flux[ia], b.flux[ib], rtol=1e-3, atol=1e-4)
    assert b.simulated, "spectra read back from simulated FITS files stay labelled simulated"
    assert sorted(a.labels) == sorted(b.labels) and "" not in set(b.labels)


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["simulate", "--n", "10"]) == 2
    assert "--out STORE and/or --fits-dir" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path / "nothing-here-*.fits"), "--out", str(tmp_path / "x.zarr")]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--version"]) == 0


def test_ingest_command_on_a_local_cluster_matches_in_process(tmp_path):
    labels = str(SHARED / "sdss" / "labels.csv")
    a, b = tmp_path / "local.zarr", tmp_path / "cluster.zarr"
    assert main(["ingest", str(REAL), "--labels", labels, "--out", str(a)]) == 0
    argv = ["ingest", str(REAL), "--labels", labels, "--out", str(b), "--scheduler", "processes", "--batch-size", "20"]
    assert main(argv) == 0
    sa, sb = open_store(a, lazy=False), open_store(b, lazy=False)
    np.testing.assert_array_equal(sa.spec_id, sb.spec_id)
    np.testing.assert_array_equal(sa.flux, sb.flux)
    np.testing.assert_array_equal(sa.labels, sb.labels)
