"""One pass per spectrum: ``agnlens classify --measure`` reads each file once, fits its lines once
(the ``not-agn`` check and ``--measure`` share the fit) and measures at the redshift the prediction
used. Counted by wrapping the real reader and the real fitter, which still do the work."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

import realdata

SPECTRUM = realdata.LEGACY_FULL  # low redshift: reaches Hα, classified on the balmer grid


@pytest.fixture
def counted(monkeypatch):
    """Every call of the file reader (the path) and every spectrum the physics baseline fits (its spec_id)."""
    import agnlens.io
    from agnlens.models.baseline import PhysicsBaseline

    reads: list[str] = []
    fits: list[str] = []
    read, measure = agnlens.io.read_spectra, PhysicsBaseline.measure

    def counting_read(item, **kw):
        reads.append(os.fspath(item))
        return read(item, **kw)

    def counting_measure(self, X):
        table = measure(self, X)
        fits.extend(table["spec_id"].astype(str))
        return table

    monkeypatch.setattr(agnlens.io, "read_spectra", counting_read)
    monkeypatch.setattr(PhysicsBaseline, "measure", counting_measure)
    return reads, fits


def _reference(path, z: float | None = None, grid: str = "balmer") -> pd.DataFrame:
    """The physics measurements of ``path``'s spectrum put on ``grid`` at redshift ``z`` (default the
    file's), made here step by step from the reader, without the stages."""
    import dataclasses

    from agnlens.io import read_spectra
    from agnlens.models.baseline import measure
    from agnlens.preprocess import preprocess_one
    from agnlens.spectra import SpectrumSet

    spectrum = next(iter(read_spectra(path)))
    if z is not None:
        spectrum = dataclasses.replace(spectrum, meta={**spectrum.meta, "z": z})
    on_grid = preprocess_one(spectrum, grid)
    return measure(SpectrumSet.from_spectra([on_grid], on_grid.grid))


def test_classify_measure_reads_the_file_once_and_fits_its_lines_once(tmp_path, counted):
    from agnlens.cli import main

    reads, fits = counted
    path = tmp_path / SPECTRUM.name
    shutil.copy(SPECTRUM, path)
    assert main(["classify", str(path), "--measure", "--out", str(tmp_path / "r.csv")]) == 0
    table = pd.read_csv(tmp_path / "r.csv", dtype={"spec_id": str}, keep_default_na=False, na_values=[""])
    assert reads == [str(path)]  # read once
    assert fits == list(table["spec_id"]) and len(fits) == 1  # fitted once, shared by not-agn and --measure
    assert table["grid"].iloc[0] == "balmer" and table["agn_check"].iloc[0] != "unavailable"
    reads.clear()
    want = _reference(path)  # at the file's redshift, as the prediction
    assert np.isfinite(table["hb_fwhm_narrow"].iloc[0])
    np.testing.assert_allclose(table[["hb_fwhm_narrow", "oiii_hb_narrow", "nii_ha"]].to_numpy(dtype=float),
                               want[["hb_fwhm_narrow", "oiii_hb_narrow", "nii_ha"]].to_numpy(dtype=float), rtol=1e-5)


def test_measure_uses_the_catalogue_redshift_and_the_refined_one(tmp_path, counted):
    """A catalogue redshift off by 1500 km/s: the prediction uses it, --refine-z corrects it, and the
    measurements are those at the corrected redshift (not the file's, not the catalogue's)."""
    from agnlens.cli import main
    from agnlens.io import read_spectra

    reads, fits = counted
    path = tmp_path / SPECTRUM.name
    shutil.copy(SPECTRUM, path)
    spectrum = next(iter(read_spectra(path)))
    reads.clear()
    z_off = (1 + spectrum.z) * np.exp(1500 / 299792.458) - 1
    (tmp_path / "labels.csv").write_text(f"spec_id,label,z\n{spectrum.spec_id},type2,{z_off:.8f}\n")
    status = main(["classify", str(path), "--measure", "--refine-z", "--labels", str(tmp_path / "labels.csv"),
                   "--out", str(tmp_path / "r.csv")])
    assert status == 0
    table = pd.read_csv(tmp_path / "r.csv", dtype={"spec_id": str}, keep_default_na=False, na_values=[""])
    assert reads == [str(path)]  # the refined pass reprojects the spectrum in memory
    assert table["z"].iloc[0] == pytest.approx(z_off, rel=1e-6)  # the catalogue's redshift was used
    assert "redshift-offset" not in str(table["flags"].iloc[0]) and np.isfinite(table["z_refined"].iloc[0])
    z_refined = float(table["z_refined"].iloc[0])
    assert abs(z_refined - spectrum.z) < abs(z_off - spectrum.z) / 3  # the correction went the right way
    assert fits == [spectrum.spec_id] * 2  # once at the catalogue's redshift, once at the refined one
    cols = ["hb_fwhm_narrow", "oiii_hb_narrow", "nii_ha"]
    got = table[cols].to_numpy(dtype=float)
    np.testing.assert_allclose(got, _reference(path, z_refined)[cols].to_numpy(dtype=float), rtol=1e-3)
    assert not np.allclose(got, _reference(path, z_off)[cols].to_numpy(dtype=float), rtol=1e-2, equal_nan=True)


def test_load_reads_each_file_once_onto_the_first_grid_that_takes_it(tmp_path, counted):
    """Two grids in order of preference: a spectrum the first cannot take (a catalogue redshift of
    0.5 puts Hα beyond the spectrograph) goes to the second without its file being read again, and
    every set equals the files read onto that grid alone (:func:`agnlens.stages.read_files`)."""
    from agnlens.grid import get_grid
    from agnlens.io import read_spectra
    from agnlens.stages import load_groups, read_files

    reads, fits = counted
    files = sorted(realdata.SPECTRA.glob("spec-*.fits"))[:4]
    far = next(iter(read_spectra(files[0]))).spec_id
    (tmp_path / "labels.csv").write_text(f"spec_id,label,z\n{far},type1,0.5\n")
    reads.clear()
    models = [(name, {"grid": get_grid(name).to_dict()}) for name in ("balmer", "paper")]
    groups, rejected = load_groups(files, models, labels=tmp_path / "labels.csv")
    assert sorted(reads) == sorted(map(str, files)) and not rejected and not fits
    assert [(g.model, len(g.spectra)) for g in groups] == [("balmer", 3), ("paper", 1)]
    balmer, _ = read_files(files[1:], grid="balmer", labels=tmp_path / "labels.csv")
    paper, _ = read_files(files[:1], grid="paper", labels=tmp_path / "labels.csv")
    for group, alone in zip(groups, (balmer, paper)):
        assert list(group.spectra.spec_id) == list(alone.spec_id)
        np.testing.assert_array_equal(np.asarray(group.spectra.flux), np.asarray(alone.flux))
        np.testing.assert_array_equal(np.asarray(group.spectra.ivar), np.asarray(alone.ivar))
    assert groups[1].observed[0].z == 0.5  # the observed spectrum kept, with the redshift used


def test_a_spectrum_beyond_the_balmer_grid_is_measured_on_its_own_at_the_redshift_used(tmp_path, counted):
    """A catalogue redshift of 0.5 sends the spectrum to the paper grid: --measure fits its Hβ there,
    once, at that redshift (Hα quantities empty), from the one read of the file."""
    from agnlens.cli import main
    from agnlens.io import read_spectra

    reads, fits = counted
    path = tmp_path / SPECTRUM.name
    shutil.copy(SPECTRUM, path)
    sid = next(iter(read_spectra(path))).spec_id
    reads.clear()
    (tmp_path / "labels.csv").write_text(f"spec_id,label,z\n{sid},type2,0.5\n")
    labels, out = str(tmp_path / "labels.csv"), str(tmp_path / "r.csv")
    args = ["classify", str(path), "--measure", "--labels", labels, "--out", out]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "r.csv", dtype={"spec_id": str}, keep_default_na=False, na_values=[""])
    assert reads == [str(path)] and fits == [sid]
    assert table["grid"].iloc[0] == "paper" and table["z"].iloc[0] == 0.5
    want = _reference(path, 0.5, grid="paper")
    for col in ("hb_fwhm_narrow", "r_oiii_hb", "ha_fwhm_narrow"):
        np.testing.assert_allclose(table[col].iloc[0], want[col].iloc[0], rtol=1e-5, equal_nan=True)
    assert np.isnan(table["ha_fwhm_narrow"].iloc[0])
