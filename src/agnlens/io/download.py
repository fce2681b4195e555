"""Fetch the SDSS spectra a plate-mjd-fiber catalogue names from the Science Archive Server.

:func:`download` is parallel with a polite limit, resumable (a file already present and valid is
skipped; every file is written to ``NAME.part`` and renamed only once it is complete and opens),
retries connection errors and server errors with exponential backoff, verifies that each file
reads as an SDSS spectrum whose PLATE, MJD and FIBERID are the ones asked for, bounds every
transfer in size (``max_bytes``) and total time (``deadline``), and reports what it could not get
and why. Where a spectrum lives on the archive and the one bounded HTTP GET are in
:mod:`agnlens.io.archive`.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agnlens.errors import AgnlensError, ReadError
from agnlens.io.archive import (  # noqa: F401  (the archive's names, re-exported)
    DEFAULT_BASE_URL,
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BYTES,
    FIRST_BOSS_PLATE,
    RELEASES,
    USER_AGENT,
    Limits,
    NetworkError,
    check_reachable,
    fetch,
    file_name,
    spec_key,
    spectrum_urls,
    split_spec_id,
)
from agnlens.spectra import format_spec_id

log = logging.getLogger(__name__)


@dataclass
class DownloadReport:
    """What :func:`download` did.

    Attributes
    ----------
    out_dir : Path
    done : list of str
        spec_ids fetched in this run.
    skipped : list of str
        spec_ids whose valid file was already present.
    failed : dict of str to str
        spec_id → reason (last HTTP status or error, the URLs tried, or why verification failed).
    files : dict of str to Path
        spec_id → local file, for every spectrum done or skipped.
    left_out : list of str
        One line per catalogue row that names no valid spectrum (blank, non-numeric or
        out-of-range plate, mjd or fiber): the row and why; the other rows are downloaded.
    """

    out_dir: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every spectrum the catalogue names is now present."""
        return not self.failed and not self.left_out

    def counts(self) -> str:
        """One line of counts: downloaded, already present, failed, rows left out, where."""
        bad_rows = f", {len(self.left_out)} catalogue rows left out" if self.left_out else ""
        return (f"{len(self.done)} downloaded, {len(self.skipped)} already present, "
                f"{len(self.failed)} failed{bad_rows}, in {self.out_dir}")

    def summary(self) -> str:
        """One line: counts and the first failures."""
        text = self.counts()
        if self.failed:
            first = "; ".join(f"{k}: {v}" for k, v in list(self.failed.items())[:3])
            more = f" (and {len(self.failed) - 3} more)" if len(self.failed) > 3 else ""
            text += f" — {first}{more}"
        return text

    def __str__(self) -> str:
        return self.summary()


def download(
    catalog_path_or_frame: str | os.PathLike | pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    release: str = "dr17",
    base_url: str = DEFAULT_BASE_URL,
    max_workers: int = 4,
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool = False,
    delay: float = 0.2,
    backoff: float = 1.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline: float = DEFAULT_DEADLINE,
    on_item: Callable[[str, str], None] | None = None,
) -> DownloadReport:
    """Download the spectra a catalogue names into ``out_dir``.

    Parameters
    ----------
    catalog_path_or_frame : path-like or pandas.DataFrame
        A catalogue file (read with :func:`agnlens.io.catalog.read_catalog`, or, for a bare list
        without labels, any CSV with ``plate``, ``mjd`` and ``fiber``/``fiberid`` columns) or a
        DataFrame with a ``spec_id`` column or those three columns.
    out_dir : path-like
        Created if needed; files land as ``out_dir/spec-PLATE-MJD-FIBER.fits``.
    release : {"dr17", "dr16"}
    base_url : str
        Archive root; a local mirror with the SAS layout works too.
    max_workers : int, default 4
        Parallel downloads. The SAS asks for moderation: keep this small.
    retries : int, default 3
        Extra attempts after a connection error, a timeout, an incomplete transfer or an HTTP 5xx
        (waiting ``backoff · 2^attempt`` seconds, jittered). 404 moves to the next location; other
        4xx fail at once.
    timeout : float, default 30
        Seconds a single network read may wait.
    max_bytes : int, default 50 MB
        Largest response accepted for one spectrum (an SDSS lite file is about 0.2–0.5 MB, a full
        one a few MB): a larger one is cut off, deleted and reported, never retried.
    deadline : float, default 300
        Seconds one transfer may take in total, however slowly the server drips its bytes: past it
        the transfer is cut off, deleted and reported.
    progress : bool
        Show a tqdm progress bar.
    delay : float, default 0.2
        Pause (s) of each worker before each request, to stay polite.
    backoff : float, default 1
        Base of the retry wait (s).
    on_item : callable, optional
        Called as ``on_item(spec_id, status)`` with status ``"done"``, ``"skipped"`` or
        ``"failed"`` after each spectrum (for a CLI's progress).

    Returns
    -------
    DownloadReport

    Raises
    ------
    NetworkError
        If the archive host cannot be reached at all (checked once, before any download, with a
        short timeout): ``cannot reach https://data.sdss.org: <reason>; this machine has no
        network?``.
    ValueError
        On a bad release, worker count or catalogue without keys.
    """
    if int(max_workers) < 1:
        raise ValueError(f"max_workers must be at least 1, got {max_workers}")
    if int(retries) < 0:
        raise ValueError(f"retries must be 0 or more, got {retries}")
    for name, value in (("timeout", timeout), ("deadline", deadline), ("max_bytes", max_bytes)):
        if not (float(value) > 0):
            raise ValueError(f"{name} must be a positive number, got {value}")
    if release.lower() not in RELEASES:
        raise ValueError(f"unknown SDSS release {release!r}; choose one of {sorted(RELEASES)}")
    spec_ids, left_out = _catalog_ids(catalog_path_or_frame)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = DownloadReport(out_dir=out, left_out=left_out)  # named by the caller (the CLI prints them)

    todo = []
    for spec_id in spec_ids:
        path = out / file_name(spec_id)
        if path.exists():
            problem = verify_spectrum_file(path, spec_id=spec_id)
            if problem is None:
                report.skipped.append(spec_id)
                report.files[spec_id] = path
                if on_item:
                    on_item(spec_id, "skipped")
                continue
            log.warning("%s: present but invalid (%s); downloading it again", path, problem)
            path.unlink()
        todo.append(spec_id)
    log.info("%d spectra in the catalogue: %d present, %d to download", len(spec_ids), len(report.skipped), len(todo))
    if not todo:
        return report

    check_reachable(base_url, timeout=min(float(timeout), 5.0))
    lock = threading.Lock()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="download", unit="spec")

    def work(spec_id: str) -> None:
        limits = Limits(timeout=float(timeout), deadline=float(deadline), max_bytes=int(max_bytes))
        ok, detail = _fetch_one(spec_id, out, release, base_url, retries, limits, delay, backoff)
        with lock:
            if ok:
                report.done.append(spec_id)
                report.files[spec_id] = Path(detail)
            else:
                report.failed[spec_id] = detail
                log.warning("%s: %s", spec_id, detail)
            if bar is not None:
                bar.update(1)
        if on_item:
            on_item(spec_id, "done" if ok else "failed")

    try:
        with ThreadPoolExecutor(max_workers=int(max_workers), thread_name_prefix="agnlens-dl") as pool:
            for future in [pool.submit(work, s) for s in todo]:
                future.result()
    finally:
        if bar is not None:
            bar.close()
    # Report in catalogue order, whatever order the workers finished in.
    order = {s: i for i, s in enumerate(spec_ids)}
    report.done.sort(key=order.__getitem__)
    report.failed = dict(sorted(report.failed.items(), key=lambda kv: order[kv[0]]))
    log.info("%s", report.summary())
    return report


def verify_spectrum_file(path: str | os.PathLike, *, spec_id: str | None = None) -> str | None:
    """Return ``None`` if ``path`` is a readable SDSS spectrum (of ``spec_id``), else why not.

    Truncation is caught: the size must be a whole number of 2880-byte FITS blocks and astropy
    must not warn while reading every HDU header and the COADD data. With ``spec_id``, the file
    must also read as a spectrum (:func:`agnlens.io.read_sdss`) whose PLATE, MJD and FIBERID are
    those of ``spec_id`` — a server that answers with another spectrum's file is caught.
    """
    from astropy.io import fits

    path = Path(path)
    size = path.stat().st_size
    if size == 0 or size % 2880:
        return f"size {size} bytes is not a whole number of 2880-byte FITS blocks (truncated?)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                names = [hdu.name for hdu in hdul]
                if "COADD" not in names:
                    return f"no COADD table (HDUs: {', '.join(names)}); not an SDSS spec file"
                data = hdul["COADD"].data
                if data is None or "loglam" not in [c.lower() for c in data.columns.names]:
                    return "the COADD table has no loglam column"
                len(data)
    except Exception as exc:  # astropy raises OSError, ValueError, VerifyError, warnings...
        return f"does not open as FITS: {type(exc).__name__}: {exc}"
    if spec_id is None:
        return None
    from agnlens.io.sdss import read_sdss

    try:
        got = read_sdss(path)
    except AgnlensError as exc:
        return f"does not read as an SDSS spectrum: {exc.reason if isinstance(exc, ReadError) else exc}"
    want = format_spec_id(*split_spec_id(spec_id))
    if got.spec_id != want:
        return f"it is the spectrum {got.spec_id} (PLATE-MJD-FIBERID in the file), not {want}"
    return None


# ----------------------------------------------------------------------------------- internals
def _fetch_one(spec_id, out: Path, release, base_url, retries, limits: Limits, delay, backoff) -> tuple[bool, str]:
    """Fetch one spectrum; ``(True, path)`` or ``(False, reason)``."""
    target = out / file_name(spec_id)
    # a name of its own per transfer (two runs into one folder never share one), created with
    # O_EXCL | O_NOFOLLOW by the transfer
    part = target.with_name(f".{target.name[:200]}.{secrets.token_hex(6)}.part")
    tried = []
    try:
        for url in spectrum_urls(spec_id, release=release, base_url=base_url):
            status = fetch(url, part, retries=retries, limits=limits, delay=delay, backoff=backoff)
            if status == "ok":
                problem = verify_spectrum_file(part, spec_id=spec_id)
                if problem is not None:
                    return False, f"downloaded from {url} but {problem}; not kept"
                os.replace(part, target)
                log.debug("%s: %s", spec_id, url)
                return True, str(target)
            part.unlink(missing_ok=True)
            tried.append(f"{url} ({status})")
            if status != "HTTP 404":
                break  # only "not here" moves on to the next location
        return False, "not fetched: " + ", ".join(tried)
    finally:
        part.unlink(missing_ok=True)  # nothing half-written stays, whatever happened


def _catalog_ids(source) -> tuple[list[str], list[str]]:
    """Canonical spec_ids, in catalogue order, without duplicates; and one line per row that
    names no valid spectrum (left out, the others kept)."""
    if isinstance(source, pd.DataFrame):
        frame, name = source, "the catalogue DataFrame"
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: catalogue not found")
        from agnlens.io.catalog import read_catalog

        try:
            frame = read_catalog(path)
        except ReadError as exc:
            # A bare plate/mjd/fiber list has no label: read its key columns ourselves.
            try:
                frame = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
            except Exception:
                raise exc from None
            if not (_has_pmf(frame) or "spec_id" in {c.lower().strip() for c in frame.columns}):
                raise exc from None
        name = str(path)
    cols = {c.lower().strip(): c for c in frame.columns}
    if "spec_id" in cols:
        rows, left_out = keyed_rows(pd.DataFrame({"pmf": frame[cols["spec_id"]].astype(str)}), name)
    elif _has_pmf(frame):
        fiber = "fiber" if "fiber" in cols else "fiberid"
        rows, left_out = keyed_rows(frame[[cols["plate"], cols["mjd"], cols[fiber]]], name, fiber=fiber)
    else:
        raise ValueError(
            f"{name}: no spec_id column and no plate, mjd and fiber/fiberid columns (it has "
            f"{', '.join(map(str, frame.columns))}); add them to name the spectra to download"
        )
    return list(dict.fromkeys(rows["spec_id"])), left_out


def keyed_rows(frame: pd.DataFrame, what: str, *, fiber: str = "fiberid") -> tuple[pd.DataFrame, list[str]]:
    """The rows of ``frame`` whose plate, mjd and ``fiber`` columns make a valid spectrum key, with
    their ``spec_id``; and one line per row left out (``what``, row number, values, reason).

    ``frame`` may instead carry a ``pmf`` column (``PLATE-MJD-FIBER``).
    """
    cols = {c.lower().strip(): c for c in frame.columns}
    keep, ids, dropped = [], [], []
    for i, row in enumerate(frame.itertuples(index=False)):
        values = dict(zip(frame.columns, row, strict=True))
        try:
            if "pmf" in cols:
                key = split_spec_id(values[cols["pmf"]])
            else:
                key = spec_key(values[cols["plate"]], values[cols["mjd"]], values[cols[fiber]])
        except ValueError as exc:
            dropped.append(f"{what} row {i + 1}: {exc}")
            continue
        keep.append(i)
        ids.append(format_spec_id(*key))
    kept = frame.iloc[keep].drop(columns=["spec_id"], errors="ignore").reset_index(drop=True)
    kept.insert(0, "spec_id", ids)
    return kept, dropped


def _has_pmf(frame: pd.DataFrame) -> bool:
    cols = {c.lower().strip() for c in frame.columns}
    return {"plate", "mjd"} <= cols and bool({"fiber", "fiberid"} & cols)
