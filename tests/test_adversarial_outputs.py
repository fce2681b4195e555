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
def test_an_output_among_the_inputs_is_refused_and_nothing_changes(spectra_dir, capsys, monkeypatch, command, how, name):
    monkeypatch.chdir(spectra_dir.parent)
    before = _digests(spectra_dir)
    source = "spectra" if how == "folder" else "spectra/*.fits"
    assert main([command, source, "--out", f"spectra/{name}"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and ("is also an input" in err or "would be read as an input" in err)
    assert _digests(spectra_dir) == before
