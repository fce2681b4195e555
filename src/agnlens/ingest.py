"""Ingest: read spectrum files, attach labels, preprocess onto a grid, write a dataset store.

A bad file never stops the batch: it becomes a :class:`~agnlens.preprocess.Rejection` with the
file's path and the reason, and the summary counts it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agnlens.errors import AgnlensError, AgnlensWarning, RejectedSpectrum
from agnlens.io.inputs import display_name
from agnlens.preprocess import Grid, Rejection, get_grid, preprocess_one, preprocessing_provenance, stack
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    """What an ingest did: counts, rejections with reasons, catalogue matching."""

    n_inputs: int = 0
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    unlabelled: int = 0
    catalog_rows: int = 0
    catalog_unmatched: int = 0
    out: str = ""

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
        if self.catalog_rows:
            out.append(
                f"catalogue rows: {self.catalog_rows}  matching no input: {self.catalog_unmatched}"
            )
        if self.out:
            out.append(f"store: {self.out}")
        return out


def ingest_one(
    path: str | Path,
    *,
    grid: str | Grid = "paper",
    labels: pd.DataFrame | None = None,
    allow_zwarning: bool = False,
    max_bad_fraction: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Read, label, check and preprocess one file.

    Parameters
    ----------
    path : path-like
        An SDSS spectrum (DR7 ``spSpec``, DR8+ ``spec``) or a plain table.
    grid : str or Grid
    labels : DataFrame, optional
        From :func:`agnlens.io.read_catalog`, indexed or keyed by ``spec_id`` with ``label``
        and ``z_override``.
    allow_zwarning : bool
        Keep spectra whose ZWARNING has bits that make the redshift unreliable.
    max_bad_fraction : float
        Reject when a larger share of the grid is bad or uncovered.

    Returns
    -------
    flux, ivar : ndarray of shape (n_pixels,)
    mask : ndarray of bool, shape (n_pixels,)
    meta : dict

    Raises
    ------
    ReadError, RejectedSpectrum
        With the file and the reason.
    """
    from agnlens.io import read_spectrum, zwarning_problem

    if display_name(path) != os.fspath(path):
        raise RejectedSpectrum(
            display_name(path), "the file name is not valid UTF-8 (shown with \\x escapes); rename the file"
        )
    spectrum = read_spectrum(path)
    row = _catalog_row(labels, spectrum.spec_id)
    if row is not None:
        spectrum.meta["label"] = str(row["label"])
        z_override = row.get("z_override", np.nan)
        if pd.notna(z_override):
            spectrum.meta["z"] = float(z_override)
    else:
        spectrum.meta.setdefault("label", "")
    if not allow_zwarning:
        problem = zwarning_problem(int(spectrum.meta.get("zwarning", 0) or 0))
        if problem:
            raise RejectedSpectrum(path, problem)
    return preprocess_one(spectrum, grid, max_bad_fraction)


def ingest(
    inputs: Iterable[str | Path],
    *,
    labels: str | Path | pd.DataFrame | None = None,
    grid: str | Grid = "paper",
    allow_zwarning: bool = False,
    max_bad_fraction: float = 0.1,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> tuple[SpectrumSet, IngestSummary]:
    """Ingest spectrum files into a :class:`SpectrumSet` on ``grid``.

    Parameters
    ----------
    inputs : iterable of path-like
        Files, directories or glob patterns (see :func:`agnlens.io.expand_inputs`).
    labels : path or DataFrame, optional
        A label catalogue (see :func:`agnlens.io.read_catalog`).
    grid, allow_zwarning, max_bad_fraction
        See :func:`ingest_one`.
    progress : callable, optional
        Wraps the iterable of paths, e.g. ``tqdm.tqdm``.

    Returns
    -------
    spectra : SpectrumSet
    summary : IngestSummary
    """
    from agnlens.io import expand_inputs, read_catalog

    grid = get_grid(grid)
    paths = expand_inputs(inputs)
    catalog = read_catalog(labels) if isinstance(labels, (str, Path)) else labels
    if catalog is not None:
        catalog = catalog.drop_duplicates("spec_id").set_index("spec_id", drop=False)
    summary = IngestSummary(n_inputs=len(paths), catalog_rows=0 if catalog is None else len(catalog))
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, dict]] = []
    seen: dict[str, str] = {}
    for path in progress(paths) if progress else paths:
        try:
            flux, ivar, mask, meta = ingest_one(
                path, grid=grid, labels=catalog, allow_zwarning=allow_zwarning,
                max_bad_fraction=max_bad_fraction,
            )
            if meta["spec_id"] in seen:
                raise RejectedSpectrum(
                    path, f"duplicate spec_id {meta['spec_id']} (already read from {seen[meta['spec_id']]})"
                )
        except AgnlensError as exc:
            reason = getattr(exc, "reason", str(exc))
            source = getattr(exc, "source", None) or getattr(exc, "path", None) or display_name(path)
            log.debug("rejected %s: %s", source, reason)
            summary.rejected.append(Rejection(source, reason))
            continue
        seen[meta["spec_id"]] = str(path)
        rows.append((flux, ivar, mask, meta))

    spectra = stack(rows, grid)
    simulated = "simulated" in spectra.meta and bool(len(spectra)) and bool(spectra.meta["simulated"].all())
    spectra.provenance.update(preprocessing_provenance(grid, max_bad_fraction))
    spectra.provenance.update(
        {
            "allow_zwarning": allow_zwarning,
            "simulated": simulated,
            "n_sources": len(paths),
            "labels": str(labels) if isinstance(labels, (str, Path)) else None,
        }
    )
    summary.accepted = len(spectra)
    summary.unlabelled = int((spectra.labels == "").sum())
    if catalog is not None:
        summary.catalog_unmatched = int((~catalog["spec_id"].isin(seen)).sum())
    return spectra, summary


def ingest_append(
    inputs: Iterable[str | Path],
    store: str | Path,
    *,
    progress: Callable[[Iterable], Iterable] | None = None,
    **options,
) -> IngestSummary:
    """Ingest files and append them to an existing store, item by item.

    A spectrum whose spec_id the store already holds is a rejection like any other (named, the
    rest are appended). Metadata columns the store does not have (a DR7 file's extra fields
    appended to a store built from DR8 files) are dropped with an :class:`AgnlensWarning`.

    Parameters
    ----------
    inputs : iterable of path-like
    store : path-like
        An existing store on ``options["grid"]``.
    progress : callable, optional
    **options
        ``labels``, ``grid``, ``allow_zwarning``, ``max_bad_fraction`` (see :func:`ingest`).

    Returns
    -------
    IngestSummary
        ``accepted`` counts the spectra appended; ``out`` is the store when any was.
    """
    from agnlens.io.store import append_store, open_store

    spectra, summary = ingest(inputs, progress=progress, **options)
    held = open_store(store)
    stored = set(held.spec_id.tolist())
    dup = np.isin(spectra.spec_id, list(stored))
    for i in np.flatnonzero(dup):
        source = str(spectra.meta["source"].iloc[i]) if "source" in spectra.meta else spectra.spec_id[i]
        summary.rejected.append(
            Rejection(source, f"spec_id {spectra.spec_id[i]} is already in {store}; not appended again",
                      spectra.spec_id[i])
        )
    spectra = spectra[np.flatnonzero(~dup)]
    extra = [c for c in spectra.meta.columns if c not in set(held.meta.columns)]
    if extra:
        warnings.warn(
            f"{store}: dropping metadata column(s) {extra} that the store does not hold "
            f"(its columns: {list(held.meta.columns)}); write a new store to keep them",
            AgnlensWarning,
            stacklevel=2,
        )
        spectra.meta = spectra.meta.drop(columns=extra)
    summary.accepted = len(spectra)
    summary.unlabelled = int((spectra.labels == "").sum())
    if len(spectra):
        append_store(spectra, store)
        summary.out = str(store)
    return summary


def read_inputs(
    inputs: Iterable[str | Path],
    *,
    grid: str | Grid,
    labels: str | Path | pd.DataFrame | None = None,
    check=None,
) -> tuple[SpectrumSet, list[Rejection]]:
    """Spectra from files and stores, on ``grid``, as ``classify`` and ``explain`` take them.

    Parameters
    ----------
    inputs : iterable of path-like
        Stores (directories holding a Zarr store) are opened as they are; everything else is read
        and preprocessed onto ``grid`` (see :func:`ingest`).
    grid : str or Grid
    labels : path or DataFrame, optional
        A label catalogue for the files.
    check : callable, optional
        Called with each store's SpectrumSet; raises when it does not fit (e.g. another grid).

    Returns
    -------
    spectra : SpectrumSet
    rejected : list of Rejection
    """
    from agnlens.io.store import is_store, open_store

    inputs = [str(p) for p in inputs]
    sets, rejected = [], []
    for path in (p for p in inputs if is_store(p)):
        spectra = open_store(path, lazy=False)
        if check is not None:
            check(spectra)
        spectra, bad = finite_rows(spectra, path)
        rejected.extend(bad)
        sets.append(spectra)
    files = [p for p in inputs if not is_store(p)]
    if files:
        spectra, summary = ingest(files, labels=labels, grid=grid)
        rejected.extend(summary.rejected)
        sets.append(spectra)
    full = [s for s in sets if len(s)]
    return (SpectrumSet.concat(full) if full else sets[0]), rejected


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


def _catalog_row(catalog: pd.DataFrame | None, spec_id: str):
    if catalog is None or spec_id not in catalog.index:
        return None
    return catalog.loc[spec_id]
