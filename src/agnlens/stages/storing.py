"""The ``ingest`` stage: spectrum files → a dataset store, batches of files in parallel, resumably.

:func:`ingest` is what ``agnlens ingest`` runs: appending to a store (in this process,
:func:`ingest_append`) or writing one with :func:`ingest_files`, whose batches of
files run as tasks on the executor's scheduler (:func:`agnlens.engine.execute`) and resume after a
killed run under the engine's one protocol (:func:`agnlens.engine.claim`). Either way a file is
read, labelled, checked and preprocessed by :func:`agnlens.stages.reading.read_one`, the same function
the in-memory :func:`agnlens.stages.reading.read_files` calls.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from agnlens.atomic import check_output, exclusive_lock, hidden_sibling
from agnlens.engine import claim, execute
from agnlens.engine.resume import atomic_save, check_retries, progress_bar, read_json
from agnlens.io.store import check_replaceable
from agnlens.spectra import SpectrumSet
from agnlens.stages.executor import Executor, as_executor

if TYPE_CHECKING:
    from agnlens.stages.reading import IngestSummary

log = logging.getLogger(__name__)


def ingest(
    inputs,
    out: str | os.PathLike,
    *,
    grid="paper",
    labels=None,
    executor: Executor | str | None = None,
    append: bool = False,
    overwrite: bool = False,
    batch_size: int = 256,
    allow_zwarning: bool = False,
    max_bad_fraction: float = 0.1,
    progress=None,
):
    """Ingest spectrum files into the store ``out``: a new one, or appended to (``append``).

    Parameters
    ----------
    inputs : iterable of path-like
        Files, directories or glob patterns.
    out : path-like
        The store.
    grid, labels, allow_zwarning, max_bad_fraction
        See :func:`agnlens.stages.reading.read_one`.
    executor : Executor or scheduler name, optional
        Where the batches of a new store run (default in this process); appending runs here.
    append : bool
        Add to the existing store ``out`` (same grid).
    overwrite : bool
        Replace an existing store.
    batch_size : int
        Spectra (files, or a DESI file's targets) per task of a new store.
    progress : callable, optional
        For ``append``: wraps the iterable of files (a progress bar); a new store shows a bar over
        batches when the executor's ``progress`` is set.

    Returns
    -------
    summary : agnlens.stages.reading.IngestSummary
        Counts, rejections with reasons, catalogue matching; ``summary.out`` is the store written
        ("" when no spectrum was accepted and no store written).
    """
    options = dict(labels=labels, grid=grid, allow_zwarning=allow_zwarning, max_bad_fraction=max_bad_fraction)
    if append:
        return ingest_append(inputs, Path(out), progress=progress, **options)
    executor = as_executor(executor)
    written, summary = ingest_files(
        inputs, out, scheduler=executor.scheduler, batch_size=batch_size, overwrite=overwrite,
        progress=executor.progress, retries=executor.retries, **options,
    )
    summary.out = str(written) if written else ""
    return summary


def ingest_batch(
    paths: Sequence[str],
    parts_dir: str,
    index: int,
    grid,
    catalog: pd.DataFrame | None,
    allow_zwarning: bool,
    max_bad_fraction: float,
) -> dict:
    """Read, label, check and preprocess one batch of files (the task a worker runs).

    Writes ``batch-NNNNNN.npz`` (the grid's wavelengths; flux, ivar, mask of the accepted spectra),
    ``batch-NNNNNN.json`` (their metadata and the rejections) and then the ``.done`` marker, each
    atomically. A bad file becomes a rejection with its reason; it never fails the batch.
    """
    from agnlens.errors import AgnlensError
    from agnlens.io.desi import SkippedFibres
    from agnlens.io.inputs import display_name
    from agnlens.spectra import Spectrum
    from agnlens.stages.reading import read_one

    parts = Path(parts_dir)
    marker = parts / f"batch-{index:06d}.done"
    done = read_json(marker)
    if done is not None:
        return done
    n_pix = grid.wavelength.size
    fluxes, ivars, masks, metas, rejected, skipped = [], [], [], [], [], 0
    for path in paths:
        try:  # a file of many targets (DESI) yields them one by one; a bad one is a rejection
            for spectrum in read_one(
                path, grid=grid, labels=catalog, allow_zwarning=allow_zwarning, max_bad_fraction=max_bad_fraction
            ):
                if isinstance(spectrum, SkippedFibres):
                    log.info("%s", spectrum)
                    skipped += spectrum.total
                elif not isinstance(spectrum, Spectrum):
                    rejected.append([spectrum.source, spectrum.reason])
                else:
                    fluxes.append(np.asarray(spectrum.flux, dtype=np.float32))
                    ivars.append(np.asarray(spectrum.ivar, dtype=np.float32))
                    masks.append(np.asarray(spectrum.mask, dtype=bool))
                    metas.append(spectrum.meta)
        except AgnlensError as exc:
            rejected.append([display_name(path), getattr(exc, "reason", str(exc))])
    stem = f"batch-{index:06d}"
    flux_rows = np.array(fluxes, dtype=np.float32).reshape(-1, n_pix)
    ivar_rows = np.array(ivars, dtype=np.float32).reshape(-1, n_pix)
    mask_rows = np.array(masks, dtype=bool).reshape(-1, n_pix)
    atomic_save(
        parts / f"{stem}.npz",
        lambda f: np.savez(f, wavelength=grid.wavelength, flux=flux_rows, ivar=ivar_rows, mask=mask_rows),
    )
    payload = json.dumps({"meta": metas, "rejected": rejected}, default=_json_default)
    atomic_save(parts / f"{stem}.json", lambda f: f.write(payload.encode()))
    content = {"index": index, "accepted": len(metas), "rejected": len(rejected), "skipped": skipped,
               "pid": os.getpid()}
    atomic_save(marker, lambda f: f.write(json.dumps(content).encode()))
    return content


def ingest_files(
    paths,
    out_store: str | os.PathLike,
    *,
    grid="paper",
    labels=None,
    scheduler="local",
    batch_size: int = 256,
    allow_zwarning: bool = False,
    max_bad_fraction: float = 0.1,
    chunk_size: int = 1024,
    overwrite: bool = False,
    progress: bool = False,
    retries: int = 2,
):
    """Ingest spectrum files into a store, reading and preprocessing batches in parallel.

    Same result as :func:`agnlens.stages.reading.read_files` followed by
    :func:`~agnlens.io.store.write_store`, but batches of files run as tasks on ``scheduler``.
    Finished batches are kept in a hidden work directory beside ``out_store``
    (``.NAME.ingest-work/``), so a rerun of the same command skips them; the store itself is
    written in one atomic step at the end (a killed ingest leaves no half store) and the work
    directory is then removed. The whole ingest holds the store's writer lock.

    Parameters
    ----------
    paths : iterable of path-like
        Files, directories or glob patterns (see :func:`agnlens.io.expand_inputs`). They are
        sent to the workers as given (and recorded so in the ``source`` column): use absolute
        paths when the workers run in another directory or on other machines.
    out_store : path-like
        The store to write.
    grid : str or Grid
    labels : path or DataFrame, optional
        A label catalogue (see :func:`agnlens.io.read_catalog`).
    scheduler : {"local", "processes"}, address or distributed.Client
        See :func:`agnlens.engine.get_client`.
    batch_size : int, default 256
        Spectra per task: that many files, a DESI file of more targets cut into target ranges.
    allow_zwarning, max_bad_fraction
        See :func:`agnlens.stages.reading.read_one`.
    chunk_size : int, default 1024
        Spectra per chunk of the store.
    overwrite : bool
        Replace an existing store.
    progress : bool
        Show a tqdm bar over batches.
    retries : int
        Extra attempts of a failing batch.

    Returns
    -------
    spectra_path : Path or None
        The store, or None when no spectrum was accepted (no store is written).
    summary : agnlens.stages.reading.IngestSummary
        Counts, rejections with reasons, catalogue matching.

    Raises
    ------
    FileExistsError
        ``out_store`` exists and ``overwrite`` is False, or it is not an agnlens store (only a
        store is ever replaced); checked before any work.
    UsageError
        ``out_store`` is one of the inputs or holds one.
    BlockingIOError
        Another process kept writing ``out_store`` longer than the lock timeout.
    ValueError
        The work folder holds the unfinished work of a different ingest (other files, sizes,
        modification times, options); the message names it: rerun the original command, or
        delete it (``overwrite`` does not: only the store is ever replaced).
    RuntimeError
        A batch failed after the retries (the finished ones are kept for a resume).
    """
    out_store = Path(out_store).resolve()
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (files per task), got {batch_size!r}")
    retries = check_retries(retries)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    check_output(out_store, paths)  # never onto an input or a folder that holds one
    check_replaceable(out_store, overwrite)  # only an agnlens store, only with overwrite
    with exclusive_lock(out_store):
        return _ingest_locked(
            paths, out_store, grid=grid, labels=labels, scheduler=scheduler, batch_size=batch_size,
            allow_zwarning=allow_zwarning, max_bad_fraction=max_bad_fraction, chunk_size=chunk_size,
            overwrite=overwrite, progress=progress, retries=retries,
        )


def _ingest_locked(
    paths, out_store: Path, *, grid, labels, scheduler, batch_size, allow_zwarning, max_bad_fraction,
    chunk_size, overwrite, progress, retries,
):
    import hashlib

    import dask
    import dask.array as da

    from agnlens.io import expand_inputs
    from agnlens.io.inputs import split_item, work_batches
    from agnlens.io.store import write_store
    from agnlens.preprocess import Rejection, get_grid
    from agnlens.stages.reading import IngestSummary, first_of_each_spec_id, ingest_provenance, read_labels

    check_replaceable(out_store, overwrite)  # again, under the lock
    grid = get_grid(grid)
    files = [str(p) for p in expand_inputs(paths)]
    catalog = read_labels(labels)
    summary = IngestSummary.start(len(files), catalog)
    batches = work_batches(files, batch_size)

    work = hidden_sibling(out_store, "ingest-work")
    parts = work / "parts"
    # each file by name, size and modification time: a file changed since a killed run is
    # not answered with that run's results
    h = hashlib.sha256()
    for f in files:
        st = os.stat(split_item(f)[0])  # FILE[TARGETIDS] names some targets of FILE
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))  # names need not be UTF-8
    if catalog is not None:
        h.update(pd.util.hash_pandas_object(catalog.astype(str), index=False).to_numpy().tobytes())
    description = {
        "job": "ingest", "out": str(out_store),
        "files_sha256": h.hexdigest(), "n_files": len(files), "batch_size": batch_size,
        "grid": grid.to_dict(), "allow_zwarning": bool(allow_zwarning), "max_bad_fraction": float(max_bad_fraction),
    }
    claim(work, description)
    parts.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(len(batches)) if not (parts / f"batch-{i:06d}.done").exists()]
    if len(todo) < len(batches):
        log.info("%s: resuming, %d of %d batches already done", out_store, len(batches) - len(todo), len(batches))
    bar = progress_bar(progress, len(batches), len(batches) - len(todo))
    tasks = [(i, (batches[i], str(parts), i)) for i in todo]
    try:
        failures = execute(
            scheduler, ingest_batch, tasks, (grid, catalog, allow_zwarning, max_bad_fraction), retries, bar
        )
    finally:
        bar.close()
    if failures:
        i, first = sorted(failures, key=lambda f: f[0])[0]
        raise RuntimeError(
            f"{out_store}: {len(failures)} of {len(batches)} batches failed (first: batch {i}: "
            f"{type(first).__name__}: {first}); finished batches are kept in {work}, rerun to resume"
        ) from first

    # assemble in input order: drop duplicate spec_ids (first file wins), then one atomic write
    records, sizes = [], []
    for i in range(len(batches)):
        summary.skipped += int((read_json(parts / f"batch-{i:06d}.done") or {}).get("skipped", 0))
        info = json.loads((parts / f"batch-{i:06d}.json").read_text())
        for source, reason in info["rejected"]:
            log.debug("rejected %s: %s", source, reason)
            summary.rejected.append(Rejection(source, reason))
        records += info["meta"]
        sizes.append(len(info["meta"]))
    keep, duplicates = first_of_each_spec_id(
        [str(m.get("spec_id", "")) for m in records], [str(m.get("source", "")) for m in records]
    )
    summary.rejected += duplicates
    meta = pd.DataFrame.from_records([m for m, kept in zip(records, keep) if kept])
    if "label" not in meta:
        meta["label"] = ""
    meta["label"] = meta["label"].fillna("")
    summary.tally(meta, catalog)
    if not len(meta):
        shutil.rmtree(work, ignore_errors=True)
        return None, summary
    n_pix = grid.wavelength.size
    keep_rows = np.split(keep, np.cumsum(sizes)[:-1])
    for i, kept in enumerate(keep_rows):
        if kept.any():
            _check_part_grid(parts / f"batch-{i:06d}.npz", grid)
    stacks = {}
    for name, dtype in (("flux", np.float32), ("ivar", np.float32), ("mask", bool)):
        pieces = []
        for i, kept in enumerate(keep_rows):
            if kept.any():
                arr = da.from_delayed(
                    dask.delayed(_load_npz)(str(parts / f"batch-{i:06d}.npz"), name),
                    shape=(kept.size, n_pix), dtype=dtype,
                )
                pieces.append(arr if kept.all() else arr[np.flatnonzero(kept)])
        stacks[name] = da.concatenate(pieces)
    prov = ingest_provenance(
        meta, grid=grid, max_bad_fraction=max_bad_fraction, allow_zwarning=allow_zwarning,
        n_sources=len(files), labels=labels,
    )
    spectra = SpectrumSet(wavelength=grid.wavelength, meta=meta, grid=grid, provenance=prov, **stacks)
    with dask.config.set(scheduler="synchronous"):  # one part at a time: bounded memory
        write_store(spectra, out_store, chunk_size=chunk_size, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    summary.out = str(out_store)
    return out_store, summary


def _check_part_grid(path: Path, grid) -> None:
    """Raise when the part ``path`` was not written on ``grid`` (its wavelengths differ)."""
    with np.load(path) as data:
        wavelength = data["wavelength"] if "wavelength" in data.files else None
    if wavelength is None or not np.array_equal(wavelength, grid.wavelength):
        found = (
            "no wavelengths" if wavelength is None
            else f"{wavelength.size} px {wavelength[0]:.6g}–{wavelength[-1]:.6g} Å"
        )
        raise ValueError(
            f"{path}: this part's flux is on another grid ({found}) than the ingest's {grid.label()}; "
            f"delete {path.parent.parent} and rerun the ingest"
        )


def _load_npz(path: str, name: str) -> np.ndarray:
    with np.load(path) as data:
        return data[name]


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


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
        ``labels``, ``grid``, ``allow_zwarning``, ``max_bad_fraction`` (see :func:`agnlens.stages.reading.read_files`).

    Returns
    -------
    IngestSummary
        ``accepted`` counts the spectra appended; ``out`` is the store when any was.
    """
    from agnlens.errors import AgnlensWarning
    from agnlens.io.store import append_store, open_store
    from agnlens.preprocess import Rejection
    from agnlens.stages.reading import read_files

    spectra, summary = read_files(inputs, progress=progress, **options)
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
    summary.tally(spectra.meta)
    if len(spectra):
        append_store(spectra, store)
        summary.out = str(store)
    return summary
