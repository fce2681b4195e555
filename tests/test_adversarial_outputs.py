"""An output never lands on an input, under any spelling (round 3 of the adversarial review):
folders and glob patterns are checked by what they expand to, and an output that the same inputs
would read again is refused before any work. Each case replaced a user's spectrum on 094067f."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from agnlens.cli import main

import realdata


@pytest.fixture
def spectra_dir(tmp_path):
    folder = tmp_path / "spectra"
    folder.mkdir()
    for name in ("spec-0332-52367-0639.fits", "spec-0565-52225-0263.fits"):
        shutil.copy(realdata.SPECTRA / name, folder / name)
    return folder


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", ["classify", "baseline"])
@pytest.mark.parametrize("how", ["folder", "glob"])
@pytest.mark.parametrize("name", ["spec-0332-52367-0639.fits", "new.fits"])
def test_an_output_among_the_inputs_is_refused_and_nothing_changes(spectra_dir, capsys, monkeypatch, command, how,
                                                                   name):
    monkeypatch.chdir(spectra_dir.parent)
    before = _digests(spectra_dir)
    source = "spectra" if how == "folder" else "spectra/*.fits"
    assert main([command, source, "--out", f"spectra/{name}"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and ("is also an input" in err or "would be read as an input" in err)
    assert _digests(spectra_dir) == before


def test_a_bad_redshift_in_one_catalogue_row_rejects_that_spectrum_alone(spectra_dir, tmp_path, capsys):
    """A redshift of 1e200 in one row was a traceback (OverflowError) for the whole run; nan, inf and
    −1 were ignored without a word (the file's redshift used instead). Now each is that spectrum's
    rejection, naming the row and the value; the rest is classified (exit 1)."""
    import pandas as pd

    shutil.copy(realdata.SPECTRA / "spec-0440-51885-0148.fits", spectra_dir)
    labels = tmp_path / "labels.csv"
    labels.write_text("spec_id,label,z\n0332-52367-0639,type1,1e200\n0565-52225-0263,type2,-1\n"
                      "0440-51885-0148,type1,\n")
    out = tmp_path / "r.csv"
    assert main(["classify", str(spectra_dir), "--labels", str(labels), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "row 1: the catalogue's redshift is above 10 ('1e200')" in err
    assert "row 2: the catalogue's redshift is negative ('-1')" in err
    table = pd.read_csv(out, dtype={"spec_id": str})
    assert list(table["spec_id"]) == ["0440-51885-0148"]


@pytest.mark.parametrize("value,why", [("inf", "infinite"), ("-inf", "infinite"), ("abc", "not a number"),
                                       ("-0.5", "negative"), ("11", "above 10")])
def test_read_catalog_names_every_unusable_redshift(tmp_path, value, why):
    """(An empty, ``NA`` or ``nan`` cell is a missing value, as pandas reads it: the file's redshift.)"""
    from agnlens.io import read_catalog

    path = tmp_path / "c.csv"
    path.write_text(f"spec_id,label,z\n0332-52367-0639,type1,{value}\n0565-52225-0263,type2,0.1\n")
    cat = read_catalog(path)
    assert why in cat.loc[0, "z_problem"] and cat.loc[1, "z_problem"] == ""
    assert cat.loc[1, "z_override"] == 0.1
