""":func:`agnlens.stages.classify` of what a user hands in: files, folders, glob patterns and stores.

One pass per spectrum: each input is read once (:func:`agnlens.stages.load`), put on its model's
grid in memory, classified, measured once by the physics baseline (the measurements the ``not-agn``
check uses are the ones ``measure`` writes), re-classified at its corrected redshift
(``refine_z``: reprojected from the observed spectrum already in memory) and redrawn for the
Monte-Carlo errors from the same observed spectrum. Files are worked on in batches of
:data:`agnlens.stages.executor.CHUNK` spectra, one batch in memory at a time: in this process, or
on a Dask scheduler by the workers, each reading its own batches; a store on Dask chunk by chunk
where it lies.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.stages.executor import LOCAL, Executor, as_executor
from agnlens.stages.loading import Group, load, model_for_grid, model_grid, route
from agnlens.stages.predictions import (
    COLUMNS,
    classify_set,
    classify_store,
    join_measurements,
    no_measurements,
    read_predictions,
)

#: Spectra per task of files on Dask (unless the executor says otherwise): what a worker holds at
#: a time, whatever the number of files, and small enough that two workers share a small run.
FILE_BATCH = 256


def classify_inputs(models, inputs, *, labels=None, refine_z: bool = False, check_redshift: bool = True,
                    check_physics: bool = True, measure: bool = False, mc_draws: int = 0, executor=None,
                    work=None) -> tuple[pd.DataFrame, list]:
    """:func:`agnlens.stages.classify` of inputs (same parameters); returns (table, rejected).

    In this process the files are read and classified batch by batch; on a Dask scheduler each
    worker reads and classifies its own batches of files (:func:`classify_batch`) and sends back
    their tables, and a store is classified chunk by chunk where it lies."""
    from agnlens.io.store import is_store

    executor = as_executor(executor)
    paths = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(p) for p in inputs]
    options: dict[str, Any] = dict(refine_z=refine_z, check_redshift=check_redshift, check_physics=check_physics,
                                   measure=measure, mc_draws=int(mc_draws))
    files = [p for p in paths if not is_store(p)]
    if executor.local or not files:
        table, rejected = _classify_here(models, paths, labels, executor, work, **options)
    else:
        stores = [p for p in paths if is_store(p)]
        done, rejected = _classify_here(models, stores, None, executor, work, **options) if stores else (None, [])
        table, more = _classify_files_on(executor, models, files, labels, options)
        table, rejected = (table if done is None else pd.concat([done, table], ignore_index=True)), rejected + more
    if measure:  # the measurements last, after z_refined and the Monte-Carlo errors
        from agnlens.models.baseline import MEASURE_COLUMNS

        last = [c for c in MEASURE_COLUMNS[1:] if c in table]
        table = table[[c for c in table.columns if c not in last] + last]
    return table, rejected


def classify_batch(paths: list[str], models, labels, options: dict) -> tuple[pd.DataFrame, list]:
    """Classify a batch of files in this process (the task a Dask worker runs): (table, rejected)."""
    return _classify_here(models, paths, labels, LOCAL, None, **options)


def _classify_files_on(executor: Executor, models, files: list[str], labels, options: dict):
    """Files on a Dask scheduler: each worker reads and classifies batches of them; the tables come
    back in input order, a repeated spec_id is kept once (the first), then grids in order of
    preference, as in this process. A batch that fails on every try is reported by its files."""
    from agnlens.engine import execute, one_line
    from agnlens.engine.resume import progress_bar
    from agnlens.io import expand_inputs
    from agnlens.io.inputs import display_name, work_batches
    from agnlens.preprocess import Rejection
    from agnlens.stages.reading import first_of_each_spec_id, read_labels

    expanded = [str(p) for p in expand_inputs(files)]
    size = executor.chunk_size or FILE_BATCH
    batches = work_batches(expanded, size)
    models[0]  # the first model is built (or loaded) once here, not by every worker
    answers: dict[int, tuple[pd.DataFrame, list]] = {}
    bar = progress_bar(executor.progress, len(batches), 0)
    try:
        failures = dict(execute(executor.scheduler, classify_batch, list(enumerate((b,) for b in batches)),
                                (models, read_labels(labels), options), executor.retries, bar, results=answers))
    finally:
        bar.close()
    parts, rejected = [], []
    for i, batch in enumerate(batches):
        if i in failures:
            why = one_line(failures[i])
            rejected += [Rejection(display_name(p), f"its batch failed on the Dask workers ({why})") for p in batch]
            continue
        table, lost = answers[i]
        parts.append(table)
        rejected += lost
    parts = [t for t in parts if len(t)] or parts[:1]
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS)), rejected
    columns = list(dict.fromkeys(c for t in parts for c in t.columns))
    table = pd.concat(parts, ignore_index=True)[columns]
    keep, repeats = first_of_each_spec_id(table["spec_id"].astype(str), table["source"].astype(str))
    rank = {model_grid(models, k).name: k for k in reversed(range(len(models)))}
    table = table[keep].reset_index(drop=True)
    table = table.iloc[np.argsort(table["grid"].map(rank).to_numpy(), kind="stable")].reset_index(drop=True)
    for name in table["grid"].unique():  # the models used, loaded here too: the provenance names them
        model_for_grid(models, name)
    return table, rejected + repeats


def _classify_here(models, paths: list[str], labels, executor: Executor, work, *, refine_z: bool,
                   check_redshift: bool, check_physics: bool, measure: bool, mc_draws: int):
    """Inputs read batch by batch in this process (a store on Dask chunk by chunk where it lies)."""
    from agnlens.io.store import is_store

    stores: list[pd.DataFrame] = []
    files: dict[int, list[pd.DataFrame]] = {}
    measured: list[pd.DataFrame] = []
    rejected: list = []
    for batch in load(paths, models, labels=labels, executor=executor):
        rejected.extend(batch.rejected)
        for g in batch.groups:
            if g.store is not None:
                stores.append(_classify_store(g, executor, check_redshift, check_physics, measure, work))
            else:
                table, found = _classify_group(g, check_redshift, check_physics, measure)
                if refine_z and len(table):
                    table, found = _refine(g, table, found, models, check_physics, measure)
                if mc_draws and len(table):
                    table = _monte_carlo(g, table, models, mc_draws)
                files.setdefault(g.rank, []).append(table)
                if found is not None:
                    measured.append(found)
            del g  # as each batch ends, its spectra go: one batch in memory at a time
        del batch
    tables = list(stores)
    if any(not is_store(p) for p in paths):
        parts = [t for k in sorted(files) for t in files[k]]
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COLUMNS))
        if measure:
            table = join_measurements(table, pd.concat(measured, ignore_index=True) if measured else no_measurements())
        tables.append(table)
    return (tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)), rejected


def _classify_store(g: Group, executor: Executor, check_redshift: bool, check_physics: bool, measure: bool,
                    work) -> pd.DataFrame:
    """A store's rows in the store's chunks, here or on the scheduler: the same numbers either way."""
    store = Path(str(g.store))
    ex = Executor.for_store(store, executor.scheduler, progress=executor.progress)
    if ex.local:
        return classify_set(g.model, g.spectra, check_redshift, check_physics, None, None, ex, measure)
    # survey scale: chunk by chunk on the scheduler, resumably, into a work folder beside WORK (or the store)
    named = Path(work) if work is not None else store
    folder = named.parent / f".{named.name[:100]}.{store.name[:100]}.work"
    table = read_predictions(classify_store(g.model, store, folder, executor=ex, check_redshift=check_redshift,
                                            measure=measure))
    shutil.rmtree(folder)
    return table


def _classify_group(g: Group, check_redshift: bool, check_physics: bool, measure: bool):
    """Classify a group of files' spectra; the physics measurements made once (on the group's grid
    where it reaches Hα, else on the ``balmer`` grid from the observed spectra) serve both the
    ``not-agn`` check and ``measure``; with ``measure``, a spectrum the ``balmer`` grid cannot take
    is measured on the group's grid where that reaches Hβ. Returns (table, measurements or None)."""
    from agnlens.models.baseline import measure as measure_lines
    from agnlens.models.linefit import HALPHA, HBETA, covers

    found = None
    wl = np.asarray(g.spectra.wavelength, dtype=float)
    if (check_physics or measure) and len(g.spectra):
        on = g.spectra if covers(wl, HBETA) and covers(wl, HALPHA) else g.on_grid("balmer")
        found = measure_lines(on) if on is not None else None
    table = classify_set(g.model, g.spectra, check_redshift, check_physics, found if check_physics else None,
                          None, None, False)
    if measure and len(g.spectra) and covers(wl, HBETA):
        rest = np.flatnonzero(~np.isin(g.spectra.spec_id, [] if found is None else found["spec_id"]))
        if rest.size:  # beyond the balmer grid: Hβ and [O III] on the group's own
            found = pd.concat([t for t in (found, measure_lines(g.spectra[rest])) if t is not None], ignore_index=True)
    return table, found


def _refine(g: Group, table: pd.DataFrame, found, models, check_physics: bool, measure: bool):
    """Reproject the ``redshift-offset`` spectra at their measured redshift and classify them again
    (each on the first grid that takes it); their measurements replace the ones at the old redshift."""
    from agnlens.preprocess import preprocessing_provenance
    from agnlens.redshift import corrected_z
    from agnlens.spectra import SpectrumSet

    observed = g.observed or []
    table = table.copy()
    table["z_refined"] = np.nan
    rows = np.flatnonzero(table["flags"].str.contains("redshift-offset", regex=False).to_numpy())
    if not rows.size:
        return table, found
    moved = [_at_z(observed[i], corrected_z(table.at[i, "z"], table.at[i, "z_offset_kms"])) for i in rows]
    placed, _ = route(moved, models)  # a spectrum no grid takes at the new redshift keeps its prediction
    redo, remeasured = [], []
    for k, (idx, on_grid) in sorted(placed.items()):
        grid = model_grid(models, k)
        model, meta = models[k]
        spectra = SpectrumSet.from_spectra(on_grid, grid, preprocessing_provenance(grid, 0.1))
        t, m = _classify_group(Group(model, meta, spectra, [moved[j] for j in idx], k), True, check_physics, measure)
        redo.append(t)
        if m is not None:
            remeasured.append(m)
    if not redo:
        return table, found
    new = pd.concat(redo, ignore_index=True).set_index("spec_id")
    for i in rows:
        sid = table.at[i, "spec_id"]
        if sid not in new.index:
            continue
        for col in new.columns.drop(["z", "z_offset_kms", "z_offset_err_kms"]):
            if col in table.columns:
                table.at[i, col] = new.at[sid, col]
        table.at[i, "z_refined"] = float(new.at[sid, "z"])  # z_offset_kms keeps the offset that was found
    if found is not None or remeasured:
        kept = [] if found is None else [found[~found["spec_id"].isin(new.index)]]
        found = pd.concat(remeasured + kept, ignore_index=True)
    return table, found


def _monte_carlo(g: Group, table: pd.DataFrame, models, n_draws: int) -> pd.DataFrame:
    """``p_<class>_mc_err``: the Monte-Carlo standard errors of every row's probabilities, each
    observed spectrum redrawn at the redshift its prediction used, seeded by its spec_id (the same
    draws whatever the batch, the order of the inputs or the scheduler)."""
    import zlib

    from agnlens.explain.uncertainty import monte_carlo_std
    from agnlens.models.persistence import grid_from_metadata

    observed = g.observed or []
    table = table.copy()
    classes = [c[2:] for c in table.columns if c.startswith("p_") and not c.endswith("_err")]
    mc = np.full((len(table), len(classes)), np.nan)
    used = table.get("z_refined", table["z"]).fillna(table["z"])
    for row, (grid, z) in enumerate(zip(table["grid"], used)):
        model, meta = model_for_grid(models, grid)
        spectrum = _at_z(observed[row], float(z))
        _, std = monte_carlo_std(model, spectrum, grid_from_metadata(meta), n_draws=n_draws,
                                seed=zlib.crc32(str(table.at[row, "spec_id"]).encode()))
        order = [list(np.asarray(model.classes_).astype(str)).index(c) for c in classes]
        mc[row] = std[order]
    for j, c in enumerate(classes):
        table[f"p_{c}_mc_err"] = mc[:, j]
    return table


def _at_z(spectrum, z: float):
    """``spectrum`` (observed) with the redshift ``z``."""
    return dataclasses.replace(spectrum, meta={**spectrum.meta, "z": float(z)})
