"""Label catalogues: which spectrum is which type, and optional redshift overrides.

A catalogue is a CSV, ECSV or FITS table keyed by ``PLATE-MJD-FIBER`` in one of three ways (a
``spec_id``/``pmf`` string column, separate plate/mjd/fiber columns, or a file-name column), with
a label column and optionally a redshift column.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from agnlens.classes import CLASSES
from agnlens.errors import AgnlensWarning, ReadError
from agnlens.io.desi import desi_spec_id
from agnlens.spectra import format_spec_id

log = logging.getLogger(__name__)

__all__ = ["CANONICAL_LABELS", "LABEL_ALIASES", "normalise_label", "read_catalog"]

#: The three classes that are scored; any other label is kept but not scored.
CANONICAL_LABELS = CLASSES


def _aliases() -> dict[str, str]:
    """Spellings of the canonical labels (keys are lower case, spaces and hyphens as ``_``)."""
    out: dict[str, str] = {}
    prefixes = ("", "type", "type_", "sy", "sy_", "s", "seyfert", "seyfert_")
    for prefix in prefixes:
        for suffix in ("", "_agn"):
            out[f"{prefix}1{suffix}"] = "type1"
            out[f"{prefix}2{suffix}"] = "type2"
            for sub in ("1.2", "1.5", "1.8", "1.9"):
                out[f"{prefix}{sub}{suffix}"] = "intermediate"
    out.update(
        {
            "1.0": "type1",
            "2.0": "type2",
            "qso": "type1",
            "quasar": "type1",
            "blagn": "type1",
            "bl_agn": "type1",
            "broad_line_agn": "type1",
            "nlagn": "type2",
            "nl_agn": "type2",
            "narrow_line_agn": "type2",
            "intermediate": "intermediate",
            "intermediate_seyfert": "intermediate",
            "intermediate_type": "intermediate",
            "intermediate_agn": "intermediate",
        }
    )
    return out


#: Map of label spellings to the canonical set (see :func:`normalise_label`). Keys are written
#: lower case with spaces/hyphens as ``_``: ``type1``, ``sy1``, ``seyfert1``, ``1``, ``qso``,
#: ``quasar``, ``type1_agn`` → type1; ``type2``, ``sy2``, ``seyfert2``, ``2``, ``type2_agn`` →
#: type2; ``intermediate_seyfert``, ``1.2``, ``1.5``, ``1.8``, ``1.9``, ``sy1.5``,
#: ``seyfert_1.9`` → intermediate.
LABEL_ALIASES: dict[str, str] = _aliases()

KEY_COLUMNS = ("spec_id", "pmf", "plate-mjd-fiber", "plate_mjd_fiber", "specid")
FILE_COLUMNS = ("file", "filename", "file_name", "path")
LABEL_COLUMNS = ("label", "class", "type")
Z_COLUMNS = ("z", "redshift")

_PMF_RE = re.compile(r"^\s*(\d{1,6})-(\d{1,6})-(\d{1,5})\s*$")
_SPEC_FILE_RE = re.compile(r"spec-(\d{1,6})-(\d{1,6})-(\d{1,5})")
_SPSPEC_FILE_RE = re.compile(r"spSpec-(\d{1,6})-(\d{1,6})-(\d{1,5})")
_INT_RE = re.compile(r"^\s*(\d+)(?:\.0*)?\s*$")
_TARGETID_RE = re.compile(r"^\s*(-?\d+)\s*$")
#: Rows with an unreadable key named one by one in the warning (the rest are counted).
MAX_ROWS_NAMED = 20


def normalise_label(label) -> str:
    """Map a label to ``type1``/``type2``/``intermediate`` when it is a known spelling of one.

    Other strings (``non-agn``, ``ambiguous``...) are returned stripped but otherwise as given;
    missing values become ``""`` (unlabelled).
    """
    if label is None or (isinstance(label, float) and np.isnan(label)):
        return ""
    text = str(label).strip()
    key = re.sub(r"[\s\-]+", "_", text.lower())
    return LABEL_ALIASES.get(key, text)


#: A catalogue redshift outside 0 ≤ z ≤ this is refused for its row (no optical spectrum of an AGN
#: shows its Balmer lines beyond it, and larger values overflow the rest-frame shift).
MAX_CATALOG_Z = 10.0


def _redshifts(column: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """A catalogue's redshift column: the values, NaN where blank or unusable, and per row why a
    given value cannot be used ("" when it can, or when the cell is blank)."""
    text = column.astype(str).str.strip()
    blank = column.isna().to_numpy() | text.isin(["", "nan", "NaN", "None"]).to_numpy()
    z = pd.to_numeric(column.where(~blank), errors="coerce").astype(float)
    values = z.to_numpy()
    problem = np.full(len(values), "", dtype=object)
    with np.errstate(invalid="ignore"):
        problem[~blank & np.isnan(values)] = "the catalogue's redshift is not a number"
        problem[~blank & np.isinf(values)] = "the catalogue's redshift is infinite"
        problem[(values < 0) & np.isfinite(values)] = "the catalogue's redshift is negative"
        problem[(values > MAX_CATALOG_Z) & np.isfinite(values)] = f"the catalogue's redshift is above {MAX_CATALOG_Z:g}"
    for i in np.flatnonzero(problem != ""):
        problem[i] = f"{problem[i]} ({text.iloc[i][:40]!r})"
    return z.where(problem == ""), problem


def read_catalog(
    path: str | os.PathLike,
    *,
    label_column: str | None = None,
    z_column: str | None = None,
) -> pd.DataFrame:
    """Read a label catalogue.

    Parameters
    ----------
    path : path-like
        CSV, ECSV or FITS table. Keyed (first match wins) by a ``spec_id`` / ``pmf`` /
        ``plate-mjd-fiber`` column of ``PLATE-MJD-FIBER`` strings, by a DESI ``targetid`` column
        (with ``survey`` and ``program`` when it has them: a zpix/ztile catalogue; its ``z`` gives
        the redshift), by ``plate`` + ``mjd`` +
        ``fiber``/``fiberid`` columns, or by a ``file``/``filename`` column whose values contain
        ``spec-PLATE-MJD-FIBER`` or ``spSpec-MJD-PLATE-FIBER``. Column names are
        case-insensitive.
    label_column : str, optional
        Default: the first of ``label``, ``class``, ``type``.
    z_column : str, optional
        Redshift overrides; default ``z`` or ``redshift`` if present. Values ≤ -1 (sentinels such
        as -999) and blanks mean "no override".

    Returns
    -------
    pandas.DataFrame
        One row per spectrum (RangeIndex), columns ``spec_id`` (canonical 4-5-4 digits),
        ``label`` (normalised with :func:`normalise_label`; ``""`` if blank), ``z_override``
        (float, NaN when none or unusable), ``z_problem`` (why a given redshift cannot be used:
        not a number, infinite, negative or above :data:`MAX_CATALOG_Z`; ``""`` otherwise — the
        spectrum of such a row is rejected with that reason, never read at another redshift) and
        ``catalog_row`` (0-based data row in the file).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ReadError
        If the file cannot be read as a table, or has no key column, or a named column is
        missing.

    Warns
    -----
    AgnlensWarning
        When rows have an unreadable key (a blank or non-integer plate/mjd/fiber cell...: each
        such row is named by its number and skipped, the others are read) or a key occurs more
        than once (the first row is kept).
    """
    source = str(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"{source}: label catalogue not found")
    frame = _read_frame(path, source)
    cols = {c.lower().strip(): c for c in frame.columns}
    spec_ids, basis = _keys(frame, cols, source)

    if label_column is not None:
        if label_column.lower() not in cols:
            raise ReadError(source, f"no label column {label_column!r} (the catalogue has {_names(frame)})")
        lab_name = cols[label_column.lower()]
    else:
        lab_name = next((cols[c] for c in LABEL_COLUMNS if c in cols), None)
    if z_column is not None:
        if z_column.lower() not in cols:
            raise ReadError(source, f"no redshift column {z_column!r} (the catalogue has {_names(frame)})")
        z_name = cols[z_column.lower()]
    else:
        z_name = next((cols[c] for c in Z_COLUMNS if c in cols), None)
    if lab_name is None and z_name is None:
        raise ReadError(
            source,
            f"no label column (expected one of {', '.join(LABEL_COLUMNS)}) and no redshift column "
            f"(z, redshift); the catalogue has {_names(frame)}; pass label_column=NAME",
        )

    labels = frame[lab_name].map(normalise_label) if lab_name is not None else pd.Series("", index=frame.index)
    if z_name is not None:
        z, z_problem = _redshifts(frame[z_name])
    else:
        z, z_problem = pd.Series(np.nan, index=frame.index), np.full(len(frame), "", dtype=object)
    out = pd.DataFrame(
        {
            "spec_id": spec_ids,
            "label": labels.astype(str).to_numpy(),
            "z_override": z.to_numpy(dtype=float),
            "z_problem": z_problem,
            "catalog_row": np.arange(len(frame), dtype=np.int64),
        }
    )
    bad = out["spec_id"].isna()
    if bad.any():
        rows = out.loc[bad, "catalog_row"].to_numpy()
        named = "; ".join(f"row {int(r) + 1}: {_key_text(frame, r, basis)}" for r in rows[:MAX_ROWS_NAMED])
        more = f"; and {len(rows) - MAX_ROWS_NAMED} more" if len(rows) > MAX_ROWS_NAMED else ""
        warnings.warn(
            f"{source}: {int(bad.sum())} row(s) have no readable {basis} key and were skipped, the "
            f"other {len(out) - int(bad.sum())} were read (data rows counted from 1 after the header): "
            f"{named}{more}",
            AgnlensWarning,
            stacklevel=2,
        )
        out = out[~bad]
    dup = out["spec_id"].duplicated(keep="first")
    if dup.any():
        warnings.warn(
            f"{source}: {int(dup.sum())} duplicate spec_id row(s) (e.g. {out.loc[dup, 'spec_id'].iloc[0]}); "
            f"kept the first of each",
            AgnlensWarning,
            stacklevel=2,
        )
        out = out[~dup]
    out = out.reset_index(drop=True)
    log.debug("%s: %d catalogue rows keyed by %s", source, len(out), basis)
    return out


def _read_frame(path, source: str) -> pd.DataFrame:
    """The catalogue as a DataFrame of strings (blank where missing)."""
    name = source.lower()
    try:
        if name.endswith((".csv", ".txt")):
            return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        from astropy.table import Table

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unit/format chatter from astropy; errors still raise
            if name.endswith(".ecsv"):
                table = Table.read(path, format="ascii.ecsv")
            elif name.endswith((".fits", ".fit", ".fits.gz", ".fit.gz")):
                table = Table.read(path, format="fits")
            else:
                table = Table.read(path)
    except Exception as exc:  # pandas and astropy raise many types (ParserError, IORegistryError, OSError...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReadError(source, f"cannot read the catalogue as a table ({reason[:200]})") from None
    data = {}
    for col in table.colnames:
        c = table[col]
        if getattr(c, "ndim", 1) != 1:
            continue
        values = c.astype(str) if c.dtype.kind != "S" else np.char.decode(c, "ascii", "replace")
        values = np.asarray(values, dtype=str)
        if hasattr(c, "mask") and np.any(c.mask):
            values = np.where(np.asarray(c.mask), "", values)
        data[col] = np.char.strip(values)
    return pd.DataFrame(data)


def _names(frame: pd.DataFrame) -> str:
    names = [str(c) for c in frame.columns]
    return ", ".join(names[:15]) + (", ..." if len(names) > 15 else "") if names else "no columns"


def _keys(frame: pd.DataFrame, cols: dict[str, str], source: str) -> tuple[pd.Series, str]:
    """Canonical spec_id per row (None where unreadable) and which columns gave it."""
    for key in KEY_COLUMNS:
        if key in cols:
            name = cols[key]
            return frame[name].map(_from_pmf), name
    if "targetid" in cols:  # DESI: SURVEY-PROGRAM-TARGETID when the catalogue says both, else TARGETID
        tids = [int(m.group(1)) if (m := _TARGETID_RE.match(str(v))) else None for v in frame[cols["targetid"]]]
        basis = cols["targetid"]
        keys: list[str | None]
        if "survey" in cols and "program" in cols:
            keys = [None if t is None or not sv or not pg else desi_spec_id(sv.lower(), pg.lower(), t)
                    for t, sv, pg in zip(tids, frame[cols["survey"]], frame[cols["program"]])]
            basis = f"{basis}/{cols['survey']}/{cols['program']}"
        else:
            keys = [None if t is None else str(t) for t in tids]
        return pd.Series(keys, index=frame.index, dtype=object), basis
    fiber = cols.get("fiberid", cols.get("fiber"))
    if "plate" in cols and "mjd" in cols and fiber is not None:
        # lists, not Series.map: pandas turns a column of ints and None into floats and NaN
        parts = [[_as_int(v) for v in frame[name]] for name in (cols["plate"], cols["mjd"], fiber)]
        ids = [
            format_spec_id(p, m, f) if None not in (p, m, f) else None
            for p, m, f in zip(*parts)
        ]
        return pd.Series(ids, index=frame.index, dtype=object), f"{cols['plate']}/{cols['mjd']}/{fiber}"
    for key in FILE_COLUMNS:
        if key in cols:
            name = cols[key]
            return frame[name].map(_from_file), name
    raise ReadError(
        source,
        f"no key columns: expected a spec_id / pmf / plate-mjd-fiber column, plate + mjd + fiber(id) "
        f"columns, or a file / filename column; the catalogue has {_names(frame)}",
    )


def _key_text(frame: pd.DataFrame, row: int, basis: str) -> str:
    """The key cells of one row, as the file has them (blank shown as '')."""
    names = [n for n in basis.split("/") if n in frame.columns] or [basis]
    return ", ".join(f"{n}={str(frame[n].iloc[row])[:40]!r}" for n in names if n in frame.columns)


def _from_pmf(value) -> str | None:
    m = _PMF_RE.match(str(value))
    return format_spec_id(*(int(g) for g in m.groups())) if m else None


def _from_file(value) -> str | None:
    text = str(value)
    m = _SPEC_FILE_RE.search(text)
    if m:
        return format_spec_id(*(int(g) for g in m.groups()))
    m = _SPSPEC_FILE_RE.search(text)
    if m:
        mjd, plate, fiber = (int(g) for g in m.groups())
        return format_spec_id(plate, mjd, fiber)
    return None


def _as_int(value) -> int | None:
    m = _INT_RE.match(str(value))
    return int(m.group(1)) if m else None
