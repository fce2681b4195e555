"""expand_inputs: files, directories, globs; sorted, de-duplicated, loud about no match."""

from __future__ import annotations

import os

import pytest

from agnlens.io import expand_inputs

import realdata


@pytest.fixture()
def tree(tmp_path):
    names = [
        "a/spec-0001-00001-0001.fits",
        "a/b/spec-0001-00001-0002.fits.gz",
        "a/b/spSpec-00001-0001-003.fit",
        "a/b/c/old.fit.gz",
        "a/table.csv",
        "a/table.ecsv",
        "a/notes.txt",
        "z/spec-0002-00002-0001.FITS",
    ]
    for n in names:
        p = tmp_path / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    return tmp_path


def test_directory_is_recursive_and_fits_only(tree):
    got = expand_inputs([tree / "a"])
    assert [p.relative_to(tree).as_posix() for p in got] == [
        "a/b/c/old.fit.gz",
        "a/b/spSpec-00001-0001-003.fit",
        "a/b/spec-0001-00001-0002.fits.gz",
        "a/spec-0001-00001-0001.fits",
    ]


def test_explicit_tables_and_any_file(tree):
    got = expand_inputs([tree / "a" / "table.csv", str(tree / "a" / "table.ecsv"), tree / "a" / "notes.txt"])
    assert [p.name for p in got] == ["notes.txt", "table.csv", "table.ecsv"]


def test_glob_patterns_and_deduplication(tree):
    got = expand_inputs([str(tree / "a" / "**" / "*.fit*"), tree / "a", str(tree / "a" / "*.csv"),
                         tree / "a" / "spec-0001-00001-0001.fits"])
    names = [p.name for p in got]
    assert len(names) == len(set(names)) == 5
    assert "table.csv" in names
    assert got == sorted(got, key=str)


def test_upper_case_suffix_in_directory(tree):
    assert [p.name for p in expand_inputs([tree / "z"])] == ["spec-0002-00002-0001.FITS"]


def test_same_file_by_two_spellings(tree, monkeypatch):
    monkeypatch.chdir(tree)
    got = expand_inputs(["a/spec-0001-00001-0001.fits", str(tree / "a" / "spec-0001-00001-0001.fits"),
                         "./a/../a/spec-0001-00001-0001.fits"])
    assert len(got) == 1


def test_no_match_raises_naming_the_input(tree):
    with pytest.raises(FileNotFoundError, match=r"nothing-\*\.fits: the pattern matches no file"):
        expand_inputs([tree / "a", str(tree / "nothing-*.fits")])
    with pytest.raises(FileNotFoundError, match=r"missing.fits: no such file or directory"):
        expand_inputs([tree / "missing.fits"])
    (tree / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: the directory holds no FITS file"):
        expand_inputs([tree / "empty"])


def test_single_string_is_a_type_error(tree):
    with pytest.raises(TypeError, match="wrap it in a list"):
        expand_inputs(str(tree / "a"))


def test_empty_list_gives_empty_list():
    assert expand_inputs([]) == []


def test_real_data_folder():
    data, n = realdata.DATA, realdata.N_SPECTRA
    assert len(expand_inputs([data / "sdss" / "spectra"])) == n
    # plus the DR7 spSpec and the DESI files; the CSV catalogues are not taken
    assert len(expand_inputs([data])) == n + 1 + realdata.N_DESI_FILES
    assert len(expand_inputs([os.fspath(data / "sdss" / "spectra" / "spec-0*.fits")])) > 0


@realdata.needs_full_set
def test_shared_data():
    data = realdata.FULL_DATA
    assert len(expand_inputs([data / "sdss" / "spectra"])) == 95
    assert len(expand_inputs([data])) == 96
