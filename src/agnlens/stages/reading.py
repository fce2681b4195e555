"""Reading spectrum files: each spectrum of a file, labelled from a catalogue, judged and put on a grid.

A spectrum's walk from file to grid, each step handing on an object that carries its wavelengths::

    read_spectra(path)                -> Spectrum per spectrum of the file         agnlens.io
                                         (observed, its own pixels; a DESI file: one per target)
    read_items: label, z, ZWARNING    -> the same Spectrum, labelled              here
    preprocess(spectra, grid)         -> each a Spectrum on the Grid (rest frame,  agnlens.preprocess
                                         normalised), stacked: SpectrumSet on the Grid

:func:`read_files` reads files onto one grid in memory; :func:`agnlens.stages.load` reads each input
once onto the grids of several models; :func:`agnlens.stages.ingest` writes a store. A bad file never
stops the batch (a :class:`~agnlens.preprocess.Rejection` with its path and the reason, counted), a
bad target of a DESI file never stops the file (a rejection named ``FILE[TARGETID]``); fibres
without a target (sky, blank) are skipped and counted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agnlens.errors import AgnlensError, RejectedSpectrum
from agnlens.grid import Grid, get_grid
from agnlens.io.desi import SkippedFibres
from agnlens.io.inputs import display_name
from agnlens.preprocess import Rejection, preprocess, preprocess_one, preprocessing_provenance
from agnlens.spectra import Spectrum, SpectrumSet

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    """What a read of files did: counts, rejections with reasons, catalogue matching."""

    n_inputs: int = 0
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    unlabelled: int = 0
    catalog_rows: int = 0
    catalog_unmatched: int = 0
    out: str = ""
    skipped: int = 0  # fibres of DESI files without a target (sky, blank)

    @classmethod
    def start(cls, n_inputs: int, catalog: pd.DataFrame | None) -> IngestSummary:
        """The summary of an ingest of ``n_inputs`` files labelled from ``catalog`` (see :func:`read_labels`)."""
        return cls(n_inputs=n_inputs, catalog_rows=0 if catalog is None else len(catalog))

    def tally(self, meta: pd.DataFrame, catalog: pd.DataFrame | None = None) -> None:
        """Count the accepted spectra (their metadata ``meta``), the unlabelled among them and, given
        the ``catalog``, its rows that match none of them."""
        self.accepted = len(meta)
        labels = meta["label"].fillna("").astype(str) if "label" in meta else pd.Series("", index=meta.index)
        self.unlabelled = int((labels == "").sum())
        if catalog is not None:
            ids = set(meta["spec_id"].astype(str)) if "spec_id" in meta else set()
            self.catalog_unmatched = int((~catalog["spec_id"].isin(ids)).sum())

    @property
    def exit_status(self) -> int:
        """0 when every input was accepted, 1 when some were rejected."""
        return 1 if self.rejected else 0

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        out = [
            f"inputs: {self.n_inputs}  accepted: {self.accepted}  rejected: {len(self.rejected)}",
            f"stored without a label (no catalogue row): {self.unlabelled}",
        ]
        if self.skipped:
            out.append(f"fibres without a target skipped (sky, blank): {self.skipped}")
        if self.catalog_rows:
            out.append(
                f"catalogue rows: {self.catalog_rows}  matching no input: {self.catalog_unmatched}"
            )
        if self.out:
            out.append(f"store: {self.out}")
        return out


def read_items(
    path: str | Path,
    *,
    labels: pd.DataFrame | None = None,
    allow_zwarning: bool = False,
) -> Iterator[Spectrum | Rejection | SkippedFibres]:
    """Every spectrum of one file, labelled from the catalogue (observed frame, on its own pixels).

    Parameters
    ----------
    path : path-like
        Any input of :func:`agnlens.io.read_spectra` (a DESI file gives one spectrum per target).
    labels : DataFrame, optional
        From :func:`agnlens.io.read_catalog`, indexed by ``spec_id`` (:func:`read_labels`), with
        ``label`` and ``z_override`` (which replaces the file's redshift). A row matches a spectrum
        by its spec_id or, for a DESI spectrum and a catalogue keyed by TARGETID alone, by TARGETID.
    allow_zwarning : bool
        Keep spectra whose ZWARNING (SDSS) or ZWARN (DESI) has bits that make the redshift unreliable.

    Yields
    ------
    Spectrum
        Observed frame, ``meta["label"]`` set (``""`` when the catalogue has no row for it).
    Rejection
        A spectrum that cannot be used (a DESI target is named ``FILE[TARGETID]``).
    SkippedFibres
        A DESI file's fibres without a target.

    Raises
    ------
    ReadError, RejectedSpectrum
        When the file as a whole cannot be read.
    """
    from agnlens.io import read_spectra

    if display_name(path) != os.fspath(path):
        raise RejectedSpectrum(
            display_name(path), "the file name is not valid UTF-8 (shown with \\x escapes); rename the file"
        )
    for item in read_spectra(path):
        if isinstance(item, RejectedSpectrum):
            yield Rejection(item.source, item.reason)
        elif isinstance(item, SkippedFibres):
            yield item
        else:
            try:
                yield _label(item, labels, allow_zwarning, item.meta.get("source") or path)
            except RejectedSpectrum as exc:
                yield Rejection(exc.source, exc.reason, item.spec_id)


def _label(spectrum: Spectrum, labels: pd.DataFrame | None, allow_zwarning: bool, where) -> Spectrum:
    """Label ``spectrum`` from the catalogue (and take its redshift), then judge the redshift."""
    from agnlens.io import redshift_problem

    row = _catalog_row(labels, spectrum.spec_id, spectrum.meta.get("targetid"))
    if row is not None and str(row.get("z_problem", "") or ""):  # a redshift given but unusable: never another
        raise RejectedSpectrum(where, f"label catalogue row {int(row['catalog_row']) + 1}: {row['z_problem']}")
    if row is not None:
        spectrum.meta["label"] = str(row["label"])
        z_override = row.get("z_override", np.nan)
        if pd.notna(z_override):
            spectrum.meta["z"] = float(z_override)
            if "z_source" in spectrum.meta:
                spectrum.meta["z_source"] = "catalogue"
    else:
        spectrum.meta.setdefault("label", "")
    problem = redshift_problem(spectrum.meta)
    if problem and (not allow_zwarning or not np.isfinite(spectrum.meta.get("z", np.nan))):
        raise RejectedSpectrum(where, problem)
    return spectrum


def read_one(
    path: str | Path,
    *,
    grid: str | Grid = "paper",
    labels: pd.DataFrame | None = None,
    allow_zwarning: bool = False,
    max_bad_fraction: float = 0.1,
) -> Iterator[Spectrum | Rejection | SkippedFibres]:
    """Read, label, check and preprocess the spectra of one file (what a parallel worker does per file).

    Parameters
    ----------
    path, labels, allow_zwarning
        See :func:`read_items`.
    grid : str or Grid
    max_bad_fraction : float
        Reject when a larger share of the grid is bad or uncovered.

    Yields
    ------
    Spectrum, Rejection or SkippedFibres
        As :func:`read_items`, each spectrum on ``grid`` (:func:`agnlens.preprocess.preprocess_one`),
        one at a time (a DESI file's targets never all sit in memory).

    Raises
    ------
    ReadError, RejectedSpectrum
        When the file as a whole cannot be read, with the file and the reason.
    """
    grid = get_grid(grid)
    for item in read_items(path, labels=labels, allow_zwarning=allow_zwarning):
        if not isinstance(item, Spectrum):
            yield item
            continue
        try:
            yield preprocess_one(item, grid, max_bad_fraction)
        except RejectedSpectrum as exc:
            yield Rejection(exc.source, exc.reason, item.spec_id)


def read_files(
    inputs: Iterable[str | Path],
    *,
    labels: str | Path | pd.DataFrame | None = None,
    grid: str | Grid = "paper",
    allow_zwarning: bool = False,
    max_bad_fraction: float = 0.1,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> tuple[SpectrumSet, IngestSummary]:
    """Read spectrum files into a :class:`SpectrumSet` on ``grid``, in memory.

    Each file is read and labelled here (:func:`read_items`) and handed, as a
    :class:`~agnlens.spectra.Spectrum`, to :func:`agnlens.preprocess.preprocess`, which puts it on
    the grid and stacks the set. Of two spectra with one spec_id the first in input order is kept.

    Parameters
    ----------
    inputs : iterable of path-like
        Files, directories or glob patterns (see :func:`agnlens.io.expand_inputs`).
    labels : path or DataFrame, optional
        A label catalogue (see :func:`agnlens.io.read_catalog`).
    grid, allow_zwarning, max_bad_fraction
        See :func:`read_one`.
    progress : callable, optional
        Wraps the iterable of paths, e.g. ``tqdm.tqdm``.

    Returns
    -------
    spectra : SpectrumSet
    summary : IngestSummary
        Its rejections by kind (unreadable or unlabelable files, spectra the grid cannot take,
        duplicate spec_ids), in input order within each kind.
    """
    from agnlens.io import expand_inputs

    grid = get_grid(grid)
    paths = expand_inputs(inputs)
    catalog = read_labels(labels)
    summary = IngestSummary.start(len(paths), catalog)

    def labelled() -> Iterator[Spectrum]:
        for path in progress(paths) if progress else paths:
            try:
                for item in read_items(path, labels=catalog, allow_zwarning=allow_zwarning):
                    if isinstance(item, Rejection):
                        log.debug("rejected %s", item)
                        summary.rejected.append(item)
                    elif isinstance(item, SkippedFibres):
                        log.info("%s", item)
                        summary.skipped += item.total
                    else:
                        yield item
            except AgnlensError as exc:
                reason = getattr(exc, "reason", str(exc))
                source = getattr(exc, "source", None) or getattr(exc, "path", None) or display_name(path)
                log.debug("rejected %s: %s", source, reason)
                summary.rejected.append(Rejection(source, reason))

    spectra, rejected = preprocess(labelled(), grid, max_bad_fraction)
    keep, duplicates = first_of_each_spec_id(spectra.spec_id, spectra.meta["source"].astype(str).to_numpy())
    if duplicates:
        spectra = spectra[np.flatnonzero(keep)]
    summary.rejected += rejected + duplicates
    spectra.provenance = ingest_provenance(
        spectra.meta, grid=grid, max_bad_fraction=max_bad_fraction, allow_zwarning=allow_zwarning,
        n_sources=len(paths), labels=labels,
    )
    summary.tally(spectra.meta, catalog)
    return spectra, summary


def read_labels(labels: str | os.PathLike | pd.DataFrame | None) -> pd.DataFrame | None:
    """The label catalogue as ingest matches it: indexed by ``spec_id``, the first row of each.

    Parameters
    ----------
    labels : path or DataFrame, optional
        A catalogue file (see :func:`agnlens.io.read_catalog`) or one already read.

    Returns
    -------
    DataFrame or None
    """
    from agnlens.io import read_catalog

    catalog = read_catalog(labels) if isinstance(labels, (str, os.PathLike)) else labels
    if catalog is None:
        return None
    return catalog.drop_duplicates("spec_id").set_index("spec_id", drop=False)


def first_of_each_spec_id(
    spec_ids: Sequence[str] | np.ndarray, sources: Sequence[str] | np.ndarray, seen: dict[str, str] | None = None
) -> tuple[np.ndarray, list[Rejection]]:
    """Which spectra to keep so that each spec_id appears once (the first in input order), and a
    rejection for each repeat.

    Parameters
    ----------
    spec_ids, sources : sequence of str, shape (n,)
        In input order; ``sources`` name the files, for the messages.
    seen : dict of str to str, optional
        The spec_ids read before (spec_id → where), across calls: those of earlier batches and
        stores are repeats too; this call's first ones are added to it.

    Returns
    -------
    keep : ndarray of bool, shape (n,)
    rejected : list of Rejection
        One per repeat, naming the file the spec_id was first read from.
    """
    first: dict[str, str] = {} if seen is None else seen
    keep = np.ones(len(spec_ids), dtype=bool)
    rejected = []
    for i, (sid, source) in enumerate(zip(spec_ids, sources)):
        sid, source = str(sid), str(source)
        if sid in first:
            reason = f"duplicate spec_id {sid} (already read from {first[sid]})"
            log.debug("rejected %s: %s", source, reason)
            rejected.append(Rejection(source, reason, sid))
            keep[i] = False
        else:
            first[sid] = source
    return keep, rejected


def ingest_provenance(
    meta: pd.DataFrame,
    *,
    grid: Grid,
    max_bad_fraction: float,
    allow_zwarning: bool,
    n_sources: int,
    labels: str | os.PathLike | pd.DataFrame | None,
) -> dict:
    """The provenance of an ingested set: how it was preprocessed, read and labelled.

    Parameters
    ----------
    meta : DataFrame
        The accepted spectra's metadata; the set is simulated when every one of them is.
    grid, max_bad_fraction
        See :func:`agnlens.preprocess.preprocessing_provenance`.
    allow_zwarning : bool
    n_sources : int
        Input files.
    labels : path or DataFrame, optional
        The catalogue (recorded by path; a DataFrame as None).

    Returns
    -------
    dict
    """
    provenance = preprocessing_provenance(grid, max_bad_fraction)
    provenance.update(
        {
            "allow_zwarning": bool(allow_zwarning),
            "n_sources": int(n_sources),
            "labels": str(labels) if isinstance(labels, (str, os.PathLike)) else None,
            "simulated": "simulated" in meta
            and bool(len(meta))
            and bool(meta["simulated"].fillna(False).astype(bool).all()),
        }
    )
    return provenance


def finite_rows(spectra: SpectrumSet, where: str | Path) -> tuple[SpectrumSet, list[Rejection]]:
    """The spectra whose flux and ivar are all finite, and a rejection for each of the others.

    Stores written by agnlens never hold NaN or ±inf (ingest rejects a spectrum whose values would
    overflow float32), but a store written by other code or an older version may; one such row must
    not take the whole batch down.

    Parameters
    ----------
    spectra : SpectrumSet
    where : path-like
        The store, for the messages (``STORE[row]``).

    Returns
    -------
    spectra : SpectrumSet
    rejected : list of Rejection
    """
    flux, ivar = np.asarray(spectra.flux), np.asarray(spectra.ivar)
    bad = ~np.isfinite(flux) | ~np.isfinite(ivar)
    rows = np.flatnonzero(bad.any(axis=1)) if bad.size else np.array([], dtype=int)
    if not rows.size:
        return spectra, []
    rejected = [
        Rejection(f"{where}[{i}]", f"{int(bad[i].sum())} pixel(s) of flux or ivar are NaN or infinite",
                  spectra.spec_id[i])
        for i in rows
    ]
    return spectra[np.flatnonzero(~bad.any(axis=1))], rejected


def _catalog_row(catalog: pd.DataFrame | None, spec_id: str, targetid=None):
    keys = (spec_id,) if targetid is None or pd.isna(targetid) else (spec_id, str(int(targetid)))
    return next((catalog.loc[k] for k in keys if catalog is not None and k in catalog.index), None)
