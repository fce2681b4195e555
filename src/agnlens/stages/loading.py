"""Loading: every input read once, each spectrum put on the grid of the first model that can use it.

:func:`load` is the one door from what a user hands in (files, folders, glob patterns, stores, a
:class:`~agnlens.spectra.SpectrumSet`, specutils or agnlens spectra, DESI files) to spectra on a
model's grid. A file is read once (:func:`agnlens.stages.reading.read_items`); its observed spectrum
is kept beside its projections so that a stage can put it on another grid (the ``balmer`` grid for
the physics measurements), at another redshift (``refine_z``) or redraw its pixels (Monte Carlo)
without reading the file again. Files are read in batches of at most ``chunk_size`` spectra, so
that memory is bounded by the batch, not by the number of files.

The stages (:func:`agnlens.stages.classify`, :func:`~agnlens.stages.explain`,
:func:`~agnlens.stages.baseline`) call it; a store on a Dask scheduler is handed on unread
(a lazy :attr:`Group.spectra` of :attr:`Group.store`), to be worked on chunk by chunk where it lies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agnlens.errors import AgnlensError, RejectedSpectrum
from agnlens.grid import Grid, get_grid
from agnlens.preprocess import Rejection, preprocess_one, preprocessing_provenance
from agnlens.spectra import Spectrum, SpectrumSet
from agnlens.stages.executor import CHUNK, Executor, as_executor

log = logging.getLogger(__name__)


@dataclass
class Group:
    """Spectra on one model's grid.

    Attributes
    ----------
    model : fitted model or None
        None when spectra were loaded onto a grid rather than for a model.
    metadata : dict
        The model's metadata (its ``grid``).
    spectra : SpectrumSet
        On the model's grid (rest frame, normalised); a lazy view when :attr:`store` is set.
    observed : list of Spectrum, optional
        The same spectra as read (observed frame, labelled), in the same order; None for a
        store's or a set's rows.
    rank : int
        The model's place in the order of preference.
    store : str, optional
        The store the spectra come from; on a Dask scheduler ``spectra`` is a lazy view, to be
        worked on chunk by chunk where the store lies.
    """

    model: Any
    metadata: dict
    spectra: SpectrumSet
    observed: list[Spectrum] | None = None
    rank: int = 0
    store: str | None = None

    def __iter__(self):  # unpacks as (model, metadata, spectra)
        return iter((self.model, self.metadata, self.spectra))

    def on_grid(self, grid: str | Grid, max_bad_fraction: float = 0.1) -> SpectrumSet | None:
        """The observed spectra put on ``grid`` in memory (those the grid cannot take left out); None
        without observed spectra or when none fits."""
        grid = get_grid(grid)
        if grid == self.spectra.grid:
            return self.spectra
        if not self.observed:
            return None
        spectra = project(self.observed, grid, max_bad_fraction)[0]
        return spectra if len(spectra) else None


@dataclass
class Batch:
    """What :func:`load` yields: groups of spectra (one per model that received some) and the inputs
    rejected on the way, with their reasons."""

    groups: list[Group] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def load(
    inputs,
    models,
    *,
    labels=None,
    executor: Executor | str | None = None,
    chunk_size: int = CHUNK,
    allow_zwarning: bool = False,
    max_bad_fraction: float = 0.1,
) -> Iterator[Batch]:
    """Read every input once and put each spectrum on the grid of the first model that can use it.

    Parameters
    ----------
    inputs : path-like, iterable of path-like, SpectrumSet, or spectrum-like
        Files, directories, glob patterns and stores (stores first, then the files, each in the
        order given); or spectra in memory (:func:`agnlens.io.coerce.as_spectrum_set`).
    models : sequence of (model, metadata), ModelList, or a grid (name or Grid)
        In order of preference (e.g. :func:`agnlens.models.default.resolve_models`); a model is
        loaded only once a spectrum goes to it. A grid loads spectra onto it with no model.
    labels : path or DataFrame, optional
        A label catalogue (:func:`agnlens.io.read_catalog`): fills ``label``, its ``z`` overrides
        the file's redshift.
    executor : Executor or scheduler name, optional
        On Dask (not ``"local"``) a store is not read into memory: its group's spectra are a lazy
        view, to be worked on chunk by chunk where the store lies (:attr:`Group.store`).
    chunk_size : int
        Spectra of files per batch.
    allow_zwarning, max_bad_fraction
        See :func:`agnlens.stages.reading.read_one`.

    Yields
    ------
    Batch
        One per store, then one per ``chunk_size`` spectra of the files. Of two spectra with one
        spec_id the first accepted is kept. A spectrum no model's grid can take is rejected with
        the reason of the last grid.
    """
    from agnlens.io.coerce import as_spectrum_set, is_spectrum_like

    models = as_models(models)
    if isinstance(inputs, SpectrumSet) or is_spectrum_like(inputs):
        spectra = inputs if isinstance(inputs, SpectrumSet) else as_spectrum_set(inputs, grid=model_grid(models, 0))
        model, meta = model_for_grid(models, spectra.grid)
        yield Batch([Group(model, meta, spectra)])
        return
    executor = as_executor(executor)
    paths = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(p) for p in inputs]
    from agnlens.io.store import is_store

    seen: dict[str, str] = {}  # spec_id → where it was first read: a repeat is rejected, a store's too
    for store in (p for p in paths if is_store(p)):
        batch = _load_store(store, models, executor)
        for g in batch.groups:
            remember_store(g, seen)
        yield batch
    files = [p for p in paths if not is_store(p)]
    if files:
        yield from _load_files(files, models, labels, chunk_size, allow_zwarning, max_bad_fraction, seen)


def load_groups(inputs, models, *, observed: bool = True, **options) -> tuple[list[Group], list[Rejection]]:
    """All of :func:`load` in memory: one group per model (batches joined), and every rejection;
    ``observed=False`` lets each batch's spectra as read go (:attr:`Group.observed` None): a
    stage that needs only the model's grid holds a fraction of the memory."""
    stores: list[Group] = []
    files: dict[int, list[Group]] = {}
    rejected: list[Rejection] = []
    for batch in load(inputs, models, **options):
        rejected.extend(batch.rejected)
        for g in batch.groups:
            if g.observed is None:  # a store or a set: a group of its own
                stores.append(g)
            else:
                kept = g if observed else Group(g.model, g.metadata, g.spectra, None, g.rank)
                files.setdefault(g.rank, []).append(kept)
            del g
        del batch
    return stores + [_join(files[k]) for k in sorted(files)], rejected


def remember_store(group: Group, seen: dict[str, str]) -> None:
    """Add the spec_ids of a store's group to ``seen`` (spec_id → where it was read): a file read
    after it that repeats one is a repeat (:func:`agnlens.stages.reading.first_of_each_spec_id`)."""
    from agnlens.stages.reading import first_of_each_spec_id

    ids = np.asarray(group.spectra.spec_id).astype(str)
    first_of_each_spec_id(ids, np.full(ids.size, str(group.store)), seen)


def read_inputs(inputs, *, grid: str | Grid, labels=None) -> tuple[SpectrumSet, list[Rejection]]:
    """Spectra from files and stores on ``grid`` (a store as it is), in memory.

    Returns
    -------
    spectra : SpectrumSet
    rejected : list of Rejection
    """
    groups, rejected = load_groups(inputs, get_grid(grid), labels=labels)
    full = [g.spectra for g in groups if len(g.spectra)]
    if not full:
        return SpectrumSet.from_spectra([], get_grid(grid)), rejected
    return (full[0] if len(full) == 1 else SpectrumSet.concat(full)), rejected


def project(observed: Sequence[Spectrum], grid: Grid, max_bad_fraction: float = 0.1):
    """``observed`` spectra on ``grid``: the set of those it takes, their positions, and the failures.

    Returns
    -------
    spectra : SpectrumSet
    kept : ndarray of int
    failed : dict of int to RejectedSpectrum
    """
    rows, kept, failed = [], [], {}
    for i, spectrum in enumerate(observed):
        try:
            rows.append(preprocess_one(spectrum, grid, max_bad_fraction))
            kept.append(i)
        except RejectedSpectrum as exc:
            failed[i] = exc
    spectra = SpectrumSet.from_spectra(rows, grid, preprocessing_provenance(grid, max_bad_fraction))
    return spectra, np.asarray(kept, dtype=int), failed


def as_models(models) -> Sequence[tuple[Any, dict]]:
    """``models`` as a sequence of (model, metadata); a grid (name or Grid) as one model-less entry."""
    if isinstance(models, (str, Grid)):
        return [(None, {"grid": get_grid(models).to_dict()})]
    return models


def model_for_grid(models: Sequence[tuple[Any, dict]], grid) -> tuple[Any, dict]:
    """The first (model, metadata) trained on the grid named ``grid`` (a name, or a Grid: its name);
    the first one when none is (the caller's grid check then says what is wrong)."""
    from agnlens.models.default import ModelList

    name = getattr(grid, "name", grid)
    for k in range(len(models)):
        named = models.grid(k).name if isinstance(models, ModelList) else (models[k][1].get("grid") or {}).get("name")
        if named == name:
            return models[k]
    return models[0]


def model_grid(models: Sequence[tuple[Any, dict]], k: int) -> Grid:
    """The grid of ``models[k]``; a :class:`~agnlens.models.default.ModelList` says it without
    loading (or building) the model."""
    from agnlens.models.default import ModelList
    from agnlens.models.persistence import grid_from_metadata

    return models.grid(k) if isinstance(models, ModelList) else grid_from_metadata(models[k][1])


def route(observed: Sequence[Spectrum], models, max_bad_fraction: float = 0.1):
    """Put each observed spectrum on the grid of the first model that takes it.

    Returns
    -------
    placed : dict of int to (list of int, list of Spectrum)
        Per model rank: the positions in ``observed`` and the spectra on that model's grid.
    failed : dict of int to RejectedSpectrum
        Positions no grid takes, with the last grid's reason.
    """
    placed: dict[int, tuple[list[int], list[Spectrum]]] = {}
    failed: dict[int, RejectedSpectrum] = {}
    grids = [model_grid(models, k) for k in range(len(models))]
    for i, spectrum in enumerate(observed):
        for k, grid in enumerate(grids):
            try:
                on_grid = preprocess_one(spectrum, grid, max_bad_fraction)
            except RejectedSpectrum as exc:
                failed[i] = exc
                continue
            failed.pop(i, None)
            placed.setdefault(k, ([], []))
            placed[k][0].append(i)
            placed[k][1].append(on_grid)
            break
    return placed, failed


def _load_store(store: str, models, executor: Executor) -> Batch:
    from agnlens.io.store import open_store
    from agnlens.models.persistence import check_grid
    from agnlens.stages.reading import finite_rows

    ex = Executor.for_store(store, executor.scheduler, progress=executor.progress)
    spectra = open_store(store, lazy=not ex.local)
    model, meta = model_for_grid(models, spectra.grid)
    if model is not None:
        check_grid(meta, spectra)
    if not ex.local:  # survey scale: the store stays where it is, worked on chunk by chunk
        return Batch([Group(model, meta, spectra, store=store)])
    spectra, bad = finite_rows(spectra, store)
    return Batch([Group(model, meta, spectra, store=store)], bad)


def _load_files(paths, models, labels, chunk_size: int, allow_zwarning: bool, max_bad_fraction: float,
                seen: dict[str, str]):
    """:func:`load` of files: read them once, in batches of ``chunk_size`` spectra; a spec_id in
    ``seen`` (spec_id → where it was read) is a repeat."""
    from agnlens.io import expand_inputs
    from agnlens.io.desi import SkippedFibres
    from agnlens.io.inputs import display_name
    from agnlens.stages.reading import read_items, read_labels

    catalog = read_labels(labels)
    expanded = expand_inputs(paths)
    record = {"allow_zwarning": allow_zwarning, "n_sources": len(expanded), "labels": labels,
              "max_bad_fraction": max_bad_fraction}
    observed: list[Spectrum] = []
    unread: list[Rejection] = []
    for path in expanded:
        try:
            for item in read_items(path, labels=catalog, allow_zwarning=allow_zwarning):
                if isinstance(item, Rejection):
                    unread.append(item)
                elif isinstance(item, SkippedFibres):
                    log.info("%s", item)
                else:
                    observed.append(item)
                    if len(observed) >= chunk_size:
                        yield _batch(observed, unread, models, seen, record)
                        observed, unread = [], []
        except AgnlensError as exc:
            reason = getattr(exc, "reason", str(exc))
            source = getattr(exc, "source", None) or getattr(exc, "path", None) or display_name(path)
            unread.append(Rejection(source, reason))
    if observed or unread:
        yield _batch(observed, unread, models, seen, record)


def _batch(observed: list[Spectrum], unread: list[Rejection], models, seen: dict[str, str], record: dict) -> Batch:
    """One batch: the observed spectra routed to their models, repeats of a spec_id rejected; each
    set's provenance says how it was read (``record``: :func:`agnlens.stages.reading.ingest_provenance`)."""
    from agnlens.stages.reading import first_of_each_spec_id, ingest_provenance

    placed, failed = route(observed, models, record["max_bad_fraction"])
    rejected = list(unread)
    rejected += [Rejection(exc.source, exc.reason, observed[i].spec_id) for i, exc in sorted(failed.items())]
    keep = np.zeros(len(observed), dtype=bool)
    used = sorted(j for rows, _ in placed.values() for j in rows)
    keep[used], duplicates = first_of_each_spec_id([observed[i].spec_id for i in used],
                                                   [observed[i].meta.get("source", "") for i in used], seen)
    groups = []
    for k, (rows, on_grid) in sorted(placed.items()):
        pick = [n for n, i in enumerate(rows) if keep[i]]
        if not pick:
            continue
        grid = model_grid(models, k)
        spectra = SpectrumSet.from_spectra([on_grid[n] for n in pick], grid)
        spectra.provenance = ingest_provenance(spectra.meta, grid=grid, **record)
        model, meta = models[k]  # only now is the model needed (a default model is built on first use)
        groups.append(Group(model, meta, spectra, [observed[rows[n]] for n in pick], rank=k))
    return Batch(groups, rejected + duplicates)


def _join(parts: list[Group]) -> Group:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    observed = None if any(p.observed is None for p in parts) else [s for p in parts for s in (p.observed or [])]
    return Group(first.model, first.metadata, SpectrumSet.concat([p.spectra for p in parts]), observed, first.rank)


def merge_groups(groups: Iterable) -> list[tuple[Any, dict, SpectrumSet]]:
    """Join the (model, metadata, spectra) groups that share a model, keeping the first's order."""
    merged: dict[int, tuple[Any, dict, list]] = {}
    for model, meta, spectra in groups:
        merged.setdefault(id(model), (model, meta, []))[2].append(spectra)
    return [(m, md, sets[0] if len(sets) == 1 else SpectrumSet.concat(sets)) for m, md, sets in merged.values()]


def resolve_models(name: str | None, sha256: str | None = None):
    """The models a command names (a model file, or ``"default"``: the built-in ones, each loaded on
    first use): :func:`agnlens.models.default.resolve_models`, imported only when called."""
    from agnlens.models.default import resolve_models as resolve

    return resolve(name, sha256)
