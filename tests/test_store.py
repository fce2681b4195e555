"""The Zarr dataset store: round trip, lazy open, append, atomicity, bad stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agnlens.errors import ReadError
from agnlens.io.store import append_store, open_store, read_rows, store_chunks, store_info, write_store
from agnlens.preprocess import get_grid, preprocess
from agnlens.spectra import Spectrum, SpectrumSet

from realdata import DATA  # the in-repo real spectra (tests/data)


def make_set(n: int, n_pix: int = 50, *, start: int = 0, seed: int = 0, grid: str = "custom") -> SpectrumSet:
    """A synthetic set with every metadata kind (float, int, bool, str, empty strings)."""
    rng = np.random.default_rng(seed)
    labels = np.array(["type1", "type2", "intermediate", ""])[rng.integers(0, 4, n)]
    meta = pd.DataFrame(
        {
            "spec_id": [f"{1000 + i // 7:04d}-{52000 + i:05d}-{i % 640 + 1:04d}" for i in range(start, start + n)],
            "z": rng.uniform(0.01, 0.3, n),
            "zwarning": rng.integers(0, 5, n).astype(np.int64),
            "label": labels,
            "snr": rng.uniform(2, 40, n).astype(np.float32),
            "sdss_class": ["GALAXY"] * n,
            "sdss_subclass": ["AGN BROADLINE"] * n,
            "source": [f"sim/spec-{i}.fits" for i in range(start, start + n)],
            "flagged": rng.random(n) < 0.3,
        }
    )
    mask = rng.random((n, n_pix)) < 0.05
    return SpectrumSet(
        wavelength=np.linspace(3729.0, 5266.0, n_pix),
        flux=rng.normal(1, 0.2, (n, n_pix)).astype(np.float32),
        ivar=np.where(mask, 0, rng.uniform(1, 100, (n, n_pix))).astype(np.float32),
        mask=mask,
        meta=meta,
        grid=grid,
        provenance={"normalisation": "none", "simulated": True, "seed": np.int64(seed)},
    )


def assert_sets_equal(a: SpectrumSet, b: SpectrumSet) -> None:
    np.testing.assert_array_equal(np.asarray(a.flux), np.asarray(b.flux))
    np.testing.assert_array_equal(np.asarray(a.ivar), np.asarray(b.ivar))
    np.testing.assert_array_equal(np.asarray(a.mask), np.asarray(b.mask))
    np.testing.assert_array_equal(a.wavelength, b.wavelength)
    pd.testing.assert_frame_equal(a.meta, b.meta)
    assert a.grid == b.grid


def test_round_trip_exact_with_dtypes(tmp_path):
    spectra = make_set(130)
    spectra.meta.loc[3, "sdss_subclass"] = "é ünïcode"
    path = write_store(spectra, tmp_path / "s.zarr", chunk_size=32)
    eager = open_store(path, lazy=False)
    assert_sets_equal(spectra, eager)
    assert isinstance(eager.flux, np.ndarray) and eager.flux.dtype == np.float32
    assert eager.mask.dtype == bool and eager.wavelength.dtype == np.float64
    dtypes = eager.meta.dtypes
    assert dtypes["zwarning"] == np.int64 and dtypes["snr"] == np.float32 and dtypes["flagged"] == np.bool_
    assert eager.meta.loc[3, "sdss_subclass"] == "é ünïcode"
    assert eager.provenance["seed"] == 0 and eager.simulated


def test_lazy_open_is_dask_backed_by_zarr_chunks(tmp_path):
    import dask.array as da

    spectra = make_set(100)
    path = write_store(spectra, tmp_path / "s.zarr", chunk_size=40)
    lazy = open_store(path)
    assert isinstance(lazy.flux, da.Array) and isinstance(lazy.mask, da.Array)
    assert lazy.flux.chunks[0] == (40, 40, 20)
    assert_sets_equal(spectra, lazy)
    # a SpectrumSet subset of a lazy set stays lazy and correct
    np.testing.assert_array_equal(np.asarray(lazy[10:50].flux), spectra.flux[10:50])


def test_read_rows_and_chunks(tmp_path):
    spectra = make_set(100)
    path = write_store(spectra, tmp_path / "s.zarr", chunk_size=30)
    assert store_chunks(path) == [(0, 30), (30, 60), (60, 90), (90, 100)]
    assert store_chunks(path, 60) == [(0, 60), (60, 100)]
    part = read_rows(path, 30, 60)
    assert_sets_equal(spectra[30:60], part)
    assert len(read_rows(path, 95, 200)) == 5


def test_real_spectra_round_trip(tmp_path):
    """Real SDSS spectra (read with astropy here, independently of agnlens.io readers)."""
    from astropy.io import fits

    files = sorted((DATA / "sdss" / "spectra").glob("spec-*.fits"))[:6]
    assert files, "the shared real data is missing"
    raw = []
    for f in files:
        with fits.open(f) as hdul:
            coadd, info = hdul[1].data, hdul[2].data
            raw.append(
                Spectrum(
                    wavelength=10.0 ** coadd["loglam"],
                    flux=coadd["flux"],
                    ivar=coadd["ivar"],
                    mask=(coadd["and_mask"] != 0) | (coadd["ivar"] <= 0),
                    meta={"spec_id": f.stem[5:], "z": float(info["Z"][0]), "zwarning": int(info["ZWARNING"][0]),
                          "source": str(f)},
                )
            )
    spectra, rejected = preprocess(raw, "paper")
    assert len(spectra) == len(files) and not rejected
    path = write_store(spectra, tmp_path / "real.zarr", chunk_size=4)
    back = open_store(path, lazy=False)
    assert_sets_equal(spectra, back)
    info = store_info(path)
    assert info["n_spectra"] == len(files) and info["grid"]["name"] == "paper"
    assert info["provenance"]["source_files"]["count"] == len(files)
    assert sorted(info["provenance"]["source_files"]["files"]) == sorted(str(f) for f in files)
    assert "agnlens" in info["provenance"]["software"] and "created" in info["provenance"]
    np.testing.assert_array_equal(back.wavelength, get_grid("paper").wavelength)


def test_store_info_counts(tmp_path):
    spectra = make_set(200)
    path = write_store(spectra, tmp_path / "s.zarr", chunk_size=64)
    info = store_info(path)
    expected = spectra.meta["label"].value_counts().to_dict()
    assert info["counts"] == expected
    assert info["n_spectra"] == 200 and info["chunk_size"] == 64 and info["simulated"] is True
    json.dumps(info)  # `agnlens info --json` must be able to print it


def test_existing_path_needs_overwrite(tmp_path):
    path = write_store(make_set(10), tmp_path / "s.zarr")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_store(make_set(5), path)
    write_store(make_set(5, seed=3), path, overwrite=True)
    assert len(open_store(path)) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]  # no temporary or old copies left


def test_duplicate_ids_rejected_on_write(tmp_path):
    spectra = make_set(10)
    spectra.meta.loc[4, "spec_id"] = spectra.meta.loc[2, "spec_id"]
    with pytest.raises(ValueError, match=spectra.meta.loc[2, "spec_id"]):
        write_store(spectra, tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_bad_chunk_size(tmp_path):
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        write_store(make_set(3), tmp_path / "s.zarr", chunk_size=0)


def test_failure_between_chunks_leaves_no_store(tmp_path):
    def boom(done, total):
        if done >= 40:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_store(make_set(100), tmp_path / "s.zarr", chunk_size=20, progress=boom)
    assert list(tmp_path.iterdir()) == []


def test_failure_during_overwrite_keeps_old_store(tmp_path):
    old = make_set(30, seed=1)
    path = write_store(old, tmp_path / "s.zarr")

    def boom(done, total):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_store(make_set(100), path, chunk_size=20, overwrite=True, progress=boom)
    assert_sets_equal(old, open_store(path, lazy=False))
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]


_KILLER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_store import make_set
    from agnlens.io.store import write_store, append_store
    mode, path = sys.argv[1], sys.argv[2]
    def die(done, total):
        if done >= 40:
            os._exit(9)   # a hard kill: no clean-up code runs
    if mode == "write":
        write_store(make_set(100, seed=5), path, chunk_size=20, overwrite=True, progress=die)
    else:
        append_store(make_set(100, start=1000, seed=5), path, progress=die)
    """
)


def _run_killer(mode: str, path: Path) -> int:
    code = _KILLER.format(tests=str(Path(__file__).parent))
    return subprocess.run([sys.executable, "-c", code, mode, str(path)], timeout=120).returncode


def test_killed_write_leaves_no_half_store(tmp_path):
    target = tmp_path / "new.zarr"
    assert _run_killer("write", target) == 9
    assert not target.exists()
    # a killed writer may leave its hidden temporary store and its (released) lock file
    leftovers = [p for p in tmp_path.iterdir() if p.name != ".new.zarr.lock"]
    assert all(p.name.startswith(".new.zarr.tmp-") for p in leftovers)
    if leftovers:  # the hidden temporary directory is not an agnlens store
        with pytest.raises(ReadError):
            open_store(leftovers[0])


def test_killed_overwrite_and_append_keep_old_store(tmp_path):
    old = make_set(50, seed=2)
    path = write_store(old, tmp_path / "s.zarr", chunk_size=20)
    assert _run_killer("write", path) == 9
    assert_sets_equal(old, open_store(path, lazy=False))
    assert _run_killer("append", path) == 9
    # arrays were grown and some new rows written, but the committed count still says 50
    import zarr

    assert zarr.open_group(str(path), mode="r")["flux"].shape[0] == 150
    assert_sets_equal(old, open_store(path, lazy=False))
    assert store_info(path)["n_spectra"] == 50
    # the next append overwrites the uncommitted rows cleanly
    new = make_set(25, start=500, seed=8)
    append_store(new, path)
    assert_sets_equal(SpectrumSet.concat([old, new]), open_store(path, lazy=False))


def test_append_matches_one_write(tmp_path):
    a, b, c = make_set(45, seed=1), make_set(30, start=100, seed=2), make_set(70, start=200, seed=3)
    path = write_store(a, tmp_path / "s.zarr", chunk_size=20)
    append_store(b, path)
    append_store(c, path)
    whole = SpectrumSet.concat([a, b, c])
    back = open_store(path, lazy=False)
    assert_sets_equal(whole, back)
    info = store_info(path)
    assert info["n_spectra"] == 145 and len(info["provenance"]["appends"]) == 2
    uid = info["uid"]
    append_store(make_set(1, start=999), path)
    assert store_info(path)["uid"] != uid
    assert info["provenance"]["source_files"]["count"] == 145
    assert store_chunks(path) == [(i, min(i + 20, 146)) for i in range(0, 146, 20)]


def test_append_interrupted_by_exception_is_rolled_back(tmp_path):
    old = make_set(50, seed=2)
    path = write_store(old, tmp_path / "s.zarr", chunk_size=20)

    def boom(done, total):
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        append_store(make_set(60, start=900), path, progress=boom)
    assert_sets_equal(old, open_store(path, lazy=False))
    import zarr

    assert zarr.open_group(str(path), mode="r")["flux"].shape[0] == 50


def test_append_rejects_duplicates_naming_them(tmp_path):
    a = make_set(20)
    path = write_store(a, tmp_path / "s.zarr")
    b = make_set(5, start=18)  # ids 18, 19 clash
    with pytest.raises(ValueError, match=r"2 spec_id\(s\) already in the store: .*" + a.meta.spec_id[18]):
        append_store(b, path)
    assert len(open_store(path)) == 20


def test_append_rejects_other_grid(tmp_path):
    path = write_store(make_set(10), tmp_path / "s.zarr")
    other = make_set(5, start=50, n_pix=51)
    with pytest.raises(ValueError, match="grid"):
        append_store(other, path)
    shifted = make_set(5, start=50)
    shifted.wavelength = shifted.wavelength + 1e-9
    with pytest.raises(ValueError, match="exactly the store's grid"):
        append_store(shifted, path)


def test_not_a_store_errors(tmp_path):
    import zarr

    with pytest.raises(ReadError, match="no such store"):
        open_store(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ReadError, match="not an agnlens store"):
        open_store(tmp_path / "plain")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w", zarr_format=3).attrs["x"] = 1
    with pytest.raises(ReadError, match="no 'agnlens' format marker"):
        store_info(tmp_path / "other.zarr")
    path = write_store(make_set(5), tmp_path / "s.zarr")
    g = zarr.open_group(str(path), mode="r+")
    attrs = dict(g.attrs["agnlens"])
    g.attrs["agnlens"] = {**attrs, "version": 99}
    with pytest.raises(ReadError, match="format version 99"):
        open_store(path)
    g.attrs["agnlens"] = attrs
    import shutil

    shutil.rmtree(path / "ivar")
    with pytest.raises(ReadError, match="missing ivar"):
        open_store(path)
    with pytest.raises(ReadError):
        append_store(make_set(2, start=10), path)


def test_write_lazy_set_copies_store(tmp_path):
    spectra = make_set(90)
    src = write_store(spectra, tmp_path / "a.zarr", chunk_size=25)
    dst = write_store(open_store(src), tmp_path / "b.zarr", chunk_size=40)
    assert_sets_equal(spectra, open_store(dst, lazy=False))
    assert os.path.isdir(dst)


def test_subset_provenance_describes_its_own_content(tmp_path):
    a, b = make_set(40, seed=1), make_set(20, start=100, seed=1)
    big = write_store(a, tmp_path / "big.zarr")
    append_store(b, big)
    prov = store_info(big)["provenance"]
    assert prov["source_files"]["count"] == 60 and prov["appends"][0]["differs"] == {}
    small = write_store(open_store(big)[:10], tmp_path / "small.zarr")
    prov = store_info(small)["provenance"]
    assert prov["source_files"]["files"] == sorted(a.meta["source"][:10]) and "appends" not in prov
    assert prov["seed"] == 1 and prov["normalisation"] == "none"  # the rest is carried over


def test_empty_store_then_append(tmp_path):
    empty = make_set(0)
    path = write_store(empty, tmp_path / "s.zarr", chunk_size=16)
    assert len(open_store(path)) == 0 and store_info(path)["counts"] == {}
    full = make_set(40, seed=4)
    full.meta["snr"] = full.meta["snr"].astype(np.float64)  # an empty table stores snr as float64
    append_store(full, path)
    assert_sets_equal(full, open_store(path, lazy=False))


def test_append_fills_missing_columns_and_checks_dtypes(tmp_path):
    a = make_set(10)
    path = write_store(a, tmp_path / "s.zarr")
    b = make_set(5, start=100).meta.drop(columns=["flagged", "snr"])
    b_set = make_set(5, start=100)
    b_set.meta = b
    append_store(b_set, path)
    back = open_store(path, lazy=False).meta
    assert not back["flagged"].iloc[10:].any() and back["snr"].iloc[10:].isna().all()
    c = make_set(3, start=200)
    c.meta["zwarning"] = ["a", "b", "c"]
    with pytest.raises(ValueError, match="column 'zwarning' must hold <i8 values"):
        append_store(c, path)
    d = make_set(3, start=300)
    d.meta["extra"] = 1.0
    with pytest.raises(ValueError, match=r"metadata columns \['extra'\] that the store does not hold"):
        append_store(d, path)
    assert len(open_store(path)) == 15


def test_read_rows_columns_and_cache_follow_changes(tmp_path):
    a = make_set(30, seed=1)
    path = write_store(a, tmp_path / "s.zarr", chunk_size=10)
    part = read_rows(path, 0, 10, columns=["spec_id", "z"])
    np.testing.assert_array_equal(part.spec_id, a.spec_id[:10])
    np.testing.assert_array_equal(part.meta["z"], a.meta["z"][:10])
    assert (part.labels == "").all() and "flagged" not in part.meta  # not read
    with pytest.raises(ValueError, match=r"no metadata column\(s\) \['nope'\]"):
        read_rows(path, 0, 10, columns=["nope"])
    # the per-process cache of opened arrays must follow appends and rewrites
    b = make_set(15, start=100, seed=2)
    append_store(b, path)
    assert_sets_equal(b, read_rows(path, 30, 45))
    c = make_set(30, seed=3)
    write_store(c, path, chunk_size=10, overwrite=True)
    assert_sets_equal(c[:10], read_rows(path, 0, 10))
