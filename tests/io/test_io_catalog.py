"""Label catalogues: the four real examples, the three keyings, label spellings, bad catalogues."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from agnlens.errors import AgnlensWarning, ReadError
from agnlens.io import normalise_label, read_catalog

import realdata
from realdata import FULL_DATA, needs_full_set

LABELS = realdata.FULL_LABELS
#: The first 40 rows of each published catalogue (tests/data/catalogs); the whole lists are in
#: ../shared/data/catalogs.
CATALOGS = realdata.DATA / "catalogs"


def _raw(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@needs_full_set
def test_shared_labels():
    c = read_catalog(LABELS)
    assert list(c.columns) == ["spec_id", "label", "z_override", "z_problem", "catalog_row"]
    assert len(c) == 95
    # the counts of the file itself (two labels were corrected after a wing-aware line fit: see its
    # label_basis column), read independently of read_catalog
    assert c["label"].value_counts().to_dict() == _raw(LABELS)["label"].str.strip().str.lower().value_counts().to_dict()
    assert c["label"].value_counts().to_dict() == {
        "type1": 76, "non-agn": 6, "ambiguous": 7, "intermediate": 4, "type2": 2,
    }
    raw = _raw(LABELS)
    assert c["spec_id"].tolist() == raw["spec_id"].tolist()
    np.testing.assert_allclose(c["z_override"], raw["z"].astype(float))
    assert c["catalog_row"].tolist() == list(range(95))


@pytest.mark.parametrize(
    "name, n, label, has_z",
    [
        ("peruzzi_seyfert2_dr7.csv", 2153, "type2", False),
        ("peruzzi_intermediate_seyferts.csv", 521, "intermediate", True),
        ("selwood2023_type2_agn.csv", 880, "type2", True),
    ],
)
@needs_full_set
def test_published_catalogues(name, n, label, has_z):
    c = read_catalog(FULL_DATA / "catalogs" / name)
    assert len(c) == n
    assert set(c["label"]) == {label}
    assert c["spec_id"].str.fullmatch(r"\d{4,5}-\d{5}-\d{4}").all()
    assert c["z_override"].notna().all() if has_z else c["z_override"].isna().all()
    raw = _raw(FULL_DATA / "catalogs" / name)
    assert c["spec_id"].tolist() == raw["pmf"].tolist()


def test_keyed_by_plate_mjd_fiberid(tmp_path):
    raw = _raw(CATALOGS / "peruzzi_intermediate_seyferts.csv")
    raw[["plate", "mjd", "fiberid", "label", "z"]].to_csv(tmp_path / "split.csv", index=False)
    c = read_catalog(tmp_path / "split.csv")
    assert c["spec_id"].tolist() == raw["pmf"].tolist()  # unpadded 266 becomes 0266
    assert (c["label"] == "intermediate").all()


def test_keyed_by_filename(tmp_path):
    raw = _raw(CATALOGS / "selwood2023_type2_agn.csv")
    raw[["filename", "label", "redshift"]].to_csv(tmp_path / "files.csv", index=False)
    c = read_catalog(tmp_path / "files.csv")
    assert c["spec_id"].tolist() == raw["pmf"].tolist()
    np.testing.assert_allclose(c["z_override"], raw["redshift"].astype(float))


def test_keyed_by_spspec_filename_and_fits(tmp_path):
    t = Table({"FILE": ["data/spSpec-51993-0542-631.fit", "spec-0266-51602-0013.fits"], "CLASS": ["QSO", "Sy 1.9"]})
    t.write(tmp_path / "cat.fits")
    c = read_catalog(tmp_path / "cat.fits")
    assert c["spec_id"].tolist() == ["0542-51993-0631", "0266-51602-0013"]
    assert c["label"].tolist() == ["type1", "intermediate"]
    assert c["z_override"].isna().all()


def test_ecsv_with_explicit_columns(tmp_path):
    t = Table({"pmf": ["0266-51602-0013"], "agn_type": ["seyfert2"], "zspec": [0.12]})
    t.write(tmp_path / "cat.ecsv")
    c = read_catalog(tmp_path / "cat.ecsv", label_column="AGN_TYPE", z_column="zspec")
    assert c.iloc[0].to_dict() == {"spec_id": "0266-51602-0013", "label": "type2", "z_override": 0.12, "z_problem": "",
                                     "catalog_row": 0}


@pytest.mark.parametrize(
    "given, expected",
    [
        ("type1", "type1"), ("Sy1", "type1"), ("QSO", "type1"), ("1", "type1"), ("Seyfert 1", "type1"),
        ("seyfert2", "type2"), ("type2_agn", "type2"), ("Sy2", "type2"), ("2", "type2"), ("Type 2", "type2"),
        ("intermediate_seyfert", "intermediate"), ("1.5", "intermediate"), ("1.8", "intermediate"),
        ("1.9", "intermediate"), ("sy1.5", "intermediate"), ("Seyfert-1.2", "intermediate"),
        ("non-agn", "non-agn"), ("ambiguous", "ambiguous"), (" LINER ", "LINER"), (None, ""), (np.nan, ""),
    ],
)
def test_normalise_label(given, expected):
    assert normalise_label(given) == expected


def test_missing_key_columns(tmp_path):
    (tmp_path / "nokey.csv").write_text("ra,dec,label\n1,2,type1\n")
    with pytest.raises(
        ReadError,
        match=r"nokey.csv: no key columns: expected a spec_id / pmf / plate-mjd-fiber column, plate \+ mjd \+ "
        r"fiber\(id\) columns, or a file / filename column; the catalogue has ra, dec, label",
    ):
        read_catalog(tmp_path / "nokey.csv")


def test_missing_label_column(tmp_path):
    (tmp_path / "nolabel.csv").write_text("spec_id,ra\n0266-51602-0013,1\n")
    with pytest.raises(ReadError, match=r"no label column \(expected one of label, class, type\)"):
        read_catalog(tmp_path / "nolabel.csv")
    with pytest.raises(ReadError, match=r"no label column 'kind'"):
        read_catalog(tmp_path / "nolabel.csv", label_column="kind")


def test_duplicates_keep_first_and_warn(tmp_path):
    (tmp_path / "dup.csv").write_text(
        "spec_id,label\n0266-51602-0013,type1\n266-51602-13,type2\n0266-51602-0107,type2\n0266-51602-0107,type1\n"
    )
    with pytest.warns(AgnlensWarning, match=r"dup.csv: 2 duplicate spec_id row\(s\).*kept the first"):
        c = read_catalog(tmp_path / "dup.csv")
    assert c["spec_id"].tolist() == ["0266-51602-0013", "0266-51602-0107"]
    assert c["label"].tolist() == ["type1", "type2"]
    assert c["catalog_row"].tolist() == [0, 2]


def test_unreadable_keys_are_skipped_with_warning(tmp_path):
    (tmp_path / "bad.csv").write_text("spec_id,label,z\n0266-51602-0013,type1,0.1\nnot-an-id,type2,0.2\n,x,-999\n")
    with pytest.warns(AgnlensWarning, match=r"2 row\(s\) have no readable spec_id key"):
        c = read_catalog(tmp_path / "bad.csv")
    assert c["spec_id"].tolist() == ["0266-51602-0013"]


def test_sentinel_redshift_is_no_override(tmp_path):
    (tmp_path / "z.csv").write_text("spec_id,label,z\n0266-51602-0013,type1,-999\n0266-51602-0107,type2,\n")
    c = read_catalog(tmp_path / "z.csv")
    assert c["z_override"].isna().all()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv: label catalogue not found"):
        read_catalog(tmp_path / "nope.csv")


def test_garbage_fits_catalogue(tmp_path):
    (tmp_path / "cat.fits").write_bytes(b"garbage" * 100)
    with pytest.raises(ReadError, match="cat.fits: cannot read the catalogue as a table"):
        read_catalog(tmp_path / "cat.fits")
