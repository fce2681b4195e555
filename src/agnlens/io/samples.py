"""Rebuild a published real sample: its label lists, its quasar query, its spectra.

``peruzzi2021`` is the reference study's sample (Peruzzi et al. 2021, A&A 652, A19):

* type 2 — the 2,153 DR7 Seyfert 2 galaxies of ``data/catalogs/peruzzi_seyfert2_dr7.csv``;
* intermediate — the 521 DR7 intermediate Seyferts of
  ``data/catalogs/peruzzi_intermediate_seyferts.csv``;
* type 1 — SDSS quasars at 0.4 ≤ z ≤ 0.75, the brightest 680, selected as the study did through
  the SDSS SkyServer SQL search service (:data:`QUASAR_SQL`, CSV output).

:func:`download_sample` queries the search service, downloads every spectrum with
:func:`agnlens.io.download.download` (verified, resumable, bounded) and writes ``labels.csv``
(``spec_id``, ``file``, ``label``, ``z``, ``source``) for the spectra it has, ready for
``agnlens ingest DIR --labels DIR/labels.csv`` and ``agnlens demo --store``.
"""

from __future__ import annotations

import io
import logging
import os
import urllib.error
import urllib.parse
from dataclasses import dataclass
from http.client import HTTPException
from importlib import resources
from pathlib import Path

import pandas as pd

from agnlens.errors import AgnlensError
from agnlens.io.archive import DEFAULT_BASE_URL, Limits, NetworkError, get_bytes
from agnlens.io.download import DownloadReport, download, keyed_rows

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_SKYSERVER_URL", "QUASAR_SQL", "SAMPLES", "download_sample", "query_skyserver", "sample_catalog"]

#: The SDSS DR17 SkyServer SQL search service (GET ``?cmd=SQL&format=csv``).
DEFAULT_SKYSERVER_URL = "https://skyserver.sdss.org/dr17/SkyServerWS/SearchTools/SqlSearch"

#: The study's type 1 selection: SDSS-I/II (Legacy, as in DR7) quasars with a good redshift at
#: 0.4 ≤ z ≤ 0.75, brightest first in the PSF i magnitude (the quasar target selection band).
QUASAR_SQL = (
    "SELECT TOP {n} s.plate, s.mjd, s.fiberID, s.z, p.psfMag_i "
    "FROM SpecObj AS s JOIN PhotoObj AS p ON s.bestObjID = p.objID "
    "WHERE s.class = 'QSO' AND s.zWarning = 0 AND s.survey = 'sdss' "
    "AND s.z BETWEEN {zmin} AND {zmax} "
    "ORDER BY p.psfMag_i ASC"
)

#: Sample name → what it is.
SAMPLES = {"peruzzi2021": "Peruzzi et al. 2021 (A&A 652, A19): 680 type 1 quasars, 2,153 type 2, 521 intermediate"}

_CATALOGS = {"type2": "peruzzi_seyfert2_dr7.csv", "intermediate": "peruzzi_intermediate_seyferts.csv"}
_MAX_QUERY_BYTES = 20_000_000


@dataclass
class SampleReport:
    """What :func:`download_sample` did: the download report, the label file, counts per class."""

    download: DownloadReport
    labels: Path
    counts: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.download.ok


def query_skyserver(sql: str, *, url: str = DEFAULT_SKYSERVER_URL, timeout: float = 60.0,
                    deadline: float = 300.0) -> pd.DataFrame:
    """Run ``sql`` on the SkyServer SQL search service and return the CSV result.

    ``timeout`` bounds each network read, ``deadline`` the whole query (connect, headers, body):
    a service that drips its answer is cut off.

    Raises
    ------
    NetworkError
        When the service cannot be reached (one line: host and reason).
    AgnlensError
        When it answers with an HTTP error, past the deadline, more than 20 MB, or something that
        is not a CSV table.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"SkyServer URL {url!r} is not an http(s) URL such as {DEFAULT_SKYSERVER_URL}")
    full = f"{url}?{urllib.parse.urlencode({'cmd': sql, 'format': 'csv'})}"
    try:
        body = get_bytes(full, Limits(timeout=float(timeout), deadline=float(deadline), max_bytes=_MAX_QUERY_BYTES))
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip().splitlines()
        exc.close()
        raise AgnlensError(f"the SkyServer at {url} answered HTTP {exc.code}: {detail[0] if detail else ''}") from None
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(
            f"cannot reach {parsed.scheme}://{parsed.netloc}: {reason}; this machine has no network?"
        ) from None
    text = body.decode("utf-8", "replace")
    try:  # the service starts its CSV with a "#Table1" line
        table = pd.read_csv(io.StringIO(text), comment="#", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        table = pd.DataFrame()
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = {"plate", "mjd", "fiberid", "z"} - set(table.columns)
    if missing:
        first = text.strip().splitlines()[:2]
        raise AgnlensError(
            f"the SkyServer at {url} did not answer a table with plate, mjd, fiberID and z (missing "
            f"{sorted(missing)}); it said: {' | '.join(first)[:200]!r}"
        )
    return table


def sample_catalog(name: str = "peruzzi2021", *, skyserver_url: str = DEFAULT_SKYSERVER_URL,
                   n_quasars: int = 680, type2_catalog=None, intermediate_catalog=None,
                   timeout: float = 60.0, deadline: float = 300.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sample's spectra and labels: ``spec_id``, ``label``, ``z``, ``source``.

    Parameters
    ----------
    name : {"peruzzi2021"}
    skyserver_url : str
        The SQL search service for the type 1 quasars.
    n_quasars : int, default 680
        At most this many quasars are taken, whatever the service answers.
    type2_catalog, intermediate_catalog : path-like, optional
        Other lists in the shipped catalogues' format (``pmf`` or plate/mjd/fiberid columns);
        default the shipped Peruzzi catalogues.
    timeout, deadline : float
        Seconds per network read and for the whole query.

    Returns
    -------
    catalog : DataFrame
        One row per spectrum, in the order type 1, type 2, intermediate; duplicates dropped. A row
        of the service's answer or of a list whose plate, mjd or fiber is not a valid key is left
        out with a warning naming it.
    quasars : DataFrame
        The search service's answer, as it came.
    """
    catalog, quasars, left_out = _catalog(name, skyserver_url, n_quasars, type2_catalog, intermediate_catalog,
                                          timeout, deadline)
    for line in left_out:
        log.warning("%s", line)
    return catalog, quasars


def _catalog(name, skyserver_url, n_quasars, type2_catalog, intermediate_catalog, timeout, deadline):
    """:func:`sample_catalog`, and the lines naming the rows left out."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; choose one of {sorted(SAMPLES)}")
    if int(n_quasars) < 0:
        raise ValueError(f"n_quasars must be 0 or more, got {n_quasars}")
    parts, left_out = [], []
    quasars = pd.DataFrame(columns=["plate", "mjd", "fiberid", "z"])
    if n_quasars:
        sql = QUASAR_SQL.format(n=int(n_quasars), zmin=0.4, zmax=0.75)
        quasars = query_skyserver(sql, url=skyserver_url, timeout=timeout, deadline=deadline)
        rows, dropped = keyed_rows(quasars, "the SkyServer's answer")
        left_out += dropped
        if len(rows) > int(n_quasars):
            log.warning("the SkyServer answered %s quasars for TOP %d; the first %d are taken",
                        f"{len(rows):,}", int(n_quasars), int(n_quasars))
            rows = rows.head(int(n_quasars))
        parts.append(pd.DataFrame({
            "spec_id": rows["spec_id"], "label": "type1", "z": pd.to_numeric(rows["z"], errors="coerce"),
            "source": f"SDSS SkyServer query (QSO, 0.4 <= z <= 0.75, brightest {int(n_quasars)} in psfMag_i)",
        }))
    for label, given in (("type2", type2_catalog), ("intermediate", intermediate_catalog)):
        where = _CATALOGS[label] if given is None else str(given)
        frame = _read_list(given, label)
        cols = {c.lower(): c for c in frame.columns}
        fiber = "fiberid" if "fiberid" in cols else "fiber"
        if "pmf" not in cols and not {"plate", "mjd", fiber} <= set(cols):
            raise ValueError(f"{where}: no pmf column and no plate, mjd and fiber/fiberid columns (it has "
                             f"{', '.join(map(str, frame.columns))})")
        rows, dropped = keyed_rows(frame, where, fiber=fiber)
        left_out += dropped
        z = pd.to_numeric(rows[cols["z"]], errors="coerce") if "z" in cols else float("nan")
        source = f"Peruzzi et al. 2021 {label} list ({where})"
        parts.append(pd.DataFrame({"spec_id": rows["spec_id"], "label": label, "z": z, "source": source}))
    catalog = pd.concat(parts, ignore_index=True).drop_duplicates("spec_id", keep="first")
    return catalog.reset_index(drop=True), quasars, left_out


def download_sample(name: str, out_dir: str | os.PathLike, *, skyserver_url: str = DEFAULT_SKYSERVER_URL,
                    base_url: str = DEFAULT_BASE_URL, n_quasars: int = 680, type2_catalog=None,
                    intermediate_catalog=None, **download_kw) -> SampleReport:
    """Download a published sample's spectra into ``out_dir`` and write ``out_dir/labels.csv``.

    Parameters
    ----------
    name : {"peruzzi2021"}
    out_dir : path-like
    skyserver_url, base_url : str
        The SQL search service and the Science Archive Server (or local stand-ins).
    n_quasars, type2_catalog, intermediate_catalog
        See :func:`sample_catalog`.
    **download_kw
        Passed to :func:`agnlens.io.download.download` (workers, retries, timeout, deadline...).

    Returns
    -------
    SampleReport
        ``labels.csv`` names only the spectra that are present (downloaded or already there);
        ``skyserver_quasars.csv`` keeps the search service's answer.
    """
    from agnlens.atomic import write_csv

    timeout = float(download_kw.get("timeout", 30.0))
    catalog, quasars, left_out = _catalog(name, skyserver_url, n_quasars, type2_catalog, intermediate_catalog,
                                          max(timeout, 60.0), float(download_kw.get("deadline", 300.0)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "skyserver_quasars.csv", quasars)  # a service's answer: spreadsheet-safe
    report = download(catalog[["spec_id"]], out, base_url=base_url, **download_kw)
    report.left_out[:0] = left_out
    have = catalog[catalog["spec_id"].isin(list(report.files))].copy()
    have.insert(1, "file", [report.files[s].name for s in have["spec_id"]])
    labels = out / "labels.csv"
    write_csv(labels, have)
    counts = have["label"].value_counts().to_dict()
    log.info("%s: %s; labels for %d spectra in %s", name, report.summary(), len(have), labels)
    return SampleReport(download=report, labels=labels, counts={k: int(v) for k, v in counts.items()})


def _read_list(given, label: str) -> pd.DataFrame:
    if given is not None:
        return pd.read_csv(given, dtype=str, keep_default_na=False)
    ref = resources.files("agnlens") / "data" / "catalogs" / _CATALOGS[label]
    with resources.as_file(ref) as path:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
