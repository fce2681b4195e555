"""The ``classify`` stage: predicted type, class probabilities and whether to trust them.

:func:`classify` takes spectra already on a model's grid; :func:`classify_files` reads spectrum
files, sends each to the first model whose grid it covers (the default models: ``balmer`` where the
spectrum reaches Hα, ``paper`` otherwise), optionally re-measures the redshift of spectra whose
narrow lines are offset (``refine_z``) and reprocesses them, and calls :func:`classify` per grid.
Every prediction is kept; the ones that should not be trusted say why in ``flags``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.spectra import SpectrumSet
from agnlens.stages.executor import Executor, as_executor

log = logging.getLogger(__name__)

#: Columns of the predictions table, before the per-class ``p_<class>`` columns are inserted
#: after ``predicted_label``.
COLUMNS = ("spec_id", "label", "predicted_label", "applicable", "flags", "z_offset_kms",
           "z_offset_err_kms", "grid")


def classify(model, spectra, *, check_redshift: bool = True, check_physics: bool = True,
             measurements: pd.DataFrame | None = None, grid: str | None = None, executor=None) -> pd.DataFrame:
    """Classify spectra and judge every prediction.

    Parameters
    ----------
    model : fitted SpectrumSVC
        On the grid of ``spectra``.
    spectra : SpectrumSet, or specutils.Spectrum / agnlens Spectrum (one or a list)
        A SpectrumSet preprocessed onto the model's grid (rest frame); single spectra (observed
        frame, with their redshift) are preprocessed onto it here
        (:func:`agnlens.io.as_spectrum_set`).
    check_redshift : bool
        Measure the narrow lines' velocity offset (:mod:`agnlens.redshift`) and flag
        ``redshift-offset`` beyond :data:`agnlens.redshift.MAX_OFFSET_KMS`.
    check_physics : bool
        On grids reaching Hα, fit the lines with the physics baseline
        (:func:`agnlens.models.baseline.measure`, ~10 ms of CPU per spectrum) and flag ``not-agn``
        (:func:`agnlens.models.applicability.not_agn`: star-forming on the BPT diagram, no broad line).
    measurements : DataFrame, optional
        :func:`agnlens.models.baseline.measure` of these spectra, already made (e.g. on the
        ``balmer`` grid for spectra classified on ``paper``); used instead of fitting again.
    grid : str, optional
        Name written in the ``grid`` column (default ``spectra.grid``).
    executor : Executor, optional
        Cuts the spectra into chunks (default :data:`agnlens.stages.executor.LOCAL`); a store's
        spectra on Dask go through :func:`classify_store`, chunk by chunk in the same way.

    Returns
    -------
    pandas.DataFrame
        One row per spectrum, in order: ``spec_id, label, predicted_label, p_<class>...,
        p_<class>_err...`` (the standard error of each probability from the spectrum's noise,
        :func:`agnlens.explain.uncertainty.proba_std`), ``applicable, flags, z_offset_kms,
        z_offset_err_kms, grid, z, source``, then the diagnostics of
        :func:`agnlens.models.applicability.applicability` (``max_kernel``, ``intercept_share``,
        ``pca_residual``, ``mahalanobis``, ``masked_share``, ``ood_check``, ``agn_check``).
    """
    from agnlens.io.coerce import as_spectrum_set, is_spectrum_like

    if not isinstance(spectra, SpectrumSet) and is_spectrum_like(spectra):
        spectra = as_spectrum_set(spectra, n_pixels=getattr(model, "n_features_in_", None))
    if len(spectra) == 0 or measurements is not None:  # measurements made for the whole set: one chunk
        return classify_chunk(spectra, model, check_redshift, grid, check_physics, measurements)
    tables = as_executor(executor).map(classify_chunk, spectra, model, check_redshift, grid, check_physics,
                                       desc="classify")
    return tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)


def classify_chunk(spectra: SpectrumSet, model, check_redshift: bool = True, grid: str | None = None,
                   check_physics: bool = True, measurements: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`classify` of one chunk (the task the executor runs); same arguments, same table."""
    from agnlens.explain.uncertainty import proba_std
    from agnlens.models.applicability import applicability
    from agnlens.models.baseline import measure
    from agnlens.models.linefit import HALPHA, HBETA, covers
    from agnlens.redshift import check_set

    X = np.asarray(spectra.flux, dtype=np.float64)
    n_features = getattr(model, "n_features_in_", X.shape[1])
    if X.shape[1] != n_features:
        raise ValueError(
            f"classify: the model expects {n_features} pixels, the spectra have {X.shape[1]} on grid "
            f"{spectra.grid.name!r}; preprocess them onto the model's grid"
        )
    classes = np.asarray(model.classes_).astype(str)
    noise = proba_std(model, spectra)
    proba = noise.proba
    checks = check_set(spectra) if check_redshift else []
    offsets = np.array([c.offset_kms for c in checks]) if checks else np.full(len(spectra), np.nan)
    errors = np.array([c.error_kms for c in checks]) if checks else np.full(len(spectra), np.nan)
    extra: list[tuple[str, ...]] = [("uncertain",) * bool(u) for u in noise.uncertain]
    for i, c in enumerate(checks):
        extra[i] += ("redshift-offset",) * bool(c.flagged)
    # a reader's own warnings: a DESI spectrum whose camera arms disagree at a join
    jumps = spectra.meta["camera_jump"].fillna("").astype(str) if "camera_jump" in spectra.meta else None
    if jumps is not None:
        extra = [tuple(e) + (("camera-jump",) if j else ()) for e, j in zip(extra, jumps)]
    if measurements is None and check_physics and len(spectra) and all(
            covers(np.asarray(spectra.wavelength, dtype=float), cx) for cx in (HBETA, HALPHA)):
        measurements = measure(spectra)
    judged = applicability(model, spectra, extra_flags=extra, measurements=measurements).table
    table = pd.DataFrame({
        "spec_id": spectra.spec_id,
        "label": spectra.labels,
        "predicted_label": classes[np.argmax(proba, axis=1)] if len(spectra) else np.array([], dtype=str),
    })
    for j, c in enumerate(classes):
        table[f"p_{c}"] = proba[:, j]
    for j, c in enumerate(classes):
        table[f"p_{c}_err"] = noise.std[:, j]
    table["applicable"] = judged["applicable"].to_numpy()
    table["flags"] = judged["flags"].to_numpy()
    table["z_offset_kms"] = offsets
    table["z_offset_err_kms"] = errors
    table["grid"] = grid or spectra.grid.name
    table["z"] = spectra.meta["z"].to_numpy(dtype=float)
    table["source"] = spectra.meta["source"].to_numpy()
    for col in judged.columns.drop(["applicable", "flags"]):  # diagnostics
        table[col] = judged[col].to_numpy()
    return table


def join_measurements(predictions: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` with the physics baseline's measurements beside each row, matched by ``spec_id``
    (``agnlens classify --measure``, ``agnlens explain``).

    Parameters
    ----------
    predictions : DataFrame
        ``spec_id`` and ``predicted_label``, one row per classified spectrum.
    measured : DataFrame
        :func:`agnlens.models.baseline.measure` of the same spectra (any order; a spectrum missing
        from it gets NaN / "").

    Returns
    -------
    DataFrame
        ``predictions`` with the measurement columns appended and ``agrees_with_baseline``
        (nullable boolean: missing where the baseline gives no label).
    """
    measured = measured.drop(columns=["agrees_with_baseline"], errors="ignore").drop_duplicates("spec_id")
    out = predictions.merge(measured, on="spec_id", how="left")
    pred = out["predicted_label"].astype(str).to_numpy()
    base = out["baseline_label"].fillna("").astype(str).to_numpy()
    agree = pd.array(pred == base, dtype="boolean")
    agree[base == ""] = pd.NA
    out["agrees_with_baseline"] = agree
    return out


def classify_store(model, store: str | Path, out: str | Path, *, executor: Executor | str | None = None,
                   check_redshift: bool = True) -> Path:
    """:func:`classify` of every spectrum of a store, chunk by chunk on ``executor``; resumable.

    Parameters
    ----------
    model : fitted SpectrumSVC
        On the store's grid.
    store : path-like
        An agnlens store.
    out : path-like
        Output folder: ``parts/`` while running (a rerun resumes), then ``predictions.csv``.
    executor : Executor or scheduler name, optional
        Where the chunks run (default in this process); its chunk size defaults to the store's.
    check_redshift : bool
        See :func:`classify`.

    Returns
    -------
    Path
        ``OUT/predictions.csv``: the columns of :func:`classify`, rows in store order.
    """
    from agnlens.engine import fingerprint

    _check_model(model)
    result = as_executor(executor).map_store(
        _predictions, store, out, args=(model, bool(check_redshift)),
        job=f"classify check_redshift={bool(check_redshift)} {fingerprint(model)}",
    )
    return result.outputs["predictions"]


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A predictions table written by :func:`classify_store`, with its numbers bit for bit."""
    table = pd.read_csv(path, dtype={"spec_id": str, "label": str, "flags": str, "source": str},
                        keep_default_na=False, na_values=[""])
    for col in ("label", "flags"):
        if col in table:
            table[col] = table[col].fillna("")
    return table


def _predictions(chunk: SpectrumSet, model, check_redshift: bool) -> dict:
    return {"predictions": classify_chunk(chunk, model, check_redshift)}


def _check_model(model) -> None:
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise TypeError(
            f"expected a fitted classifier with predict_proba and classes_ (a SpectrumSVC from "
            f"agnlens.models), got {type(model).__name__}"
        )


def classify_files(
    models: Sequence[tuple[Any, dict]],
    inputs: Iterable[str | Path],
    *,
    labels=None,
    refine_z: bool = False,
    check_redshift: bool = True,
    mc_draws: int = 0,
) -> tuple[pd.DataFrame, list]:
    """Read spectrum files and classify each with the first model whose grid it covers.

    Parameters
    ----------
    models : sequence of (model, metadata)
        In order of preference (e.g. :func:`agnlens.models.default.resolve_models`); each
        metadata records the model's grid.
    inputs : iterable of path-like
        Files, directories or glob patterns.
    labels : path or DataFrame, optional
        A label catalogue (fills the ``label`` column; its ``z`` overrides the file's redshift).
    refine_z : bool
        Re-measure the redshift of spectra flagged ``redshift-offset`` from their narrow lines,
        reprocess and classify them again; the corrected redshift goes into ``z_refined`` and
        ``z_offset_kms`` keeps the offset that was found.
    check_redshift : bool
        See :func:`classify`.
    mc_draws : int
        When > 0, also the Monte-Carlo standard error of every probability
        (:func:`agnlens.explain.uncertainty.monte_carlo_std`: each file read again, its pixels drawn
        ``mc_draws`` times from their ``ivar`` and sent through the whole preprocessing and the
        model), in columns ``p_<class>_mc_err`` beside the delta method's ``p_<class>_err``.

    Returns
    -------
    table : pandas.DataFrame
        As :func:`classify`, rows in input order within each grid, grids in order of preference.
    rejected : list of Rejection
        Files no model could use (the reason given by the last model's grid).
    """
    from agnlens.io import expand_inputs, read_catalog

    paths = [str(p) for p in expand_inputs(inputs)]
    catalog = read_catalog(labels) if isinstance(labels, (str, Path)) else labels
    groups, rejected = read_for_models(models, paths, labels=catalog)
    tables = [classify(model, spectra, check_redshift=check_redshift,
                       measurements=_halpha_measurements(spectra, catalog))
              for model, _, spectra in groups]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(COLUMNS))
    if refine_z and len(table):
        table = _refine(models, table, catalog)
    if mc_draws and len(table):
        table = _monte_carlo(models, table, catalog, int(mc_draws))
    return table, rejected


def _monte_carlo(models, table: pd.DataFrame, catalog, n_draws: int) -> pd.DataFrame:
    """``p_<class>_mc_err``: the Monte-Carlo standard errors of every row's probabilities, each file
    read again and redrawn at the redshift its prediction used."""
    from agnlens.explain.uncertainty import monte_carlo_std
    from agnlens.ingest import read_items, read_labels
    from agnlens.models.persistence import grid_from_metadata
    from agnlens.spectra import Spectrum

    labels = read_labels(catalog)
    table = table.copy()
    classes = [c[2:] for c in table.columns if c.startswith("p_") and not c.endswith("_err")]
    mc = np.full((len(table), len(classes)), np.nan)
    for row, (source, grid, z) in enumerate(zip(table["source"], table["grid"],
                                                table.get("z_refined", table["z"]).fillna(table["z"]))):
        model, meta = model_for_grid(models, grid)
        spectrum = next(s for s in read_items(source, labels=labels, allow_zwarning=True) if isinstance(s, Spectrum))
        spectrum.meta["z"] = float(z)
        _, std = monte_carlo_std(model, spectrum, grid_from_metadata(meta), n_draws=n_draws, seed=row)
        order = [list(np.asarray(model.classes_).astype(str)).index(c) for c in classes]
        mc[row] = std[order]
    for j, c in enumerate(classes):
        table[f"p_{c}_mc_err"] = mc[:, j]
    return table


def read_for_models(models: Sequence[tuple[Any, dict]], paths: Iterable[str | Path], *, labels=None):
    """Read spectrum files onto the grid of the first model that can use each.

    Parameters
    ----------
    models : sequence of (model, metadata)
        In order of preference.
    paths : iterable of path-like
        Files, directories or glob patterns.
    labels : path or DataFrame, optional
        A label catalogue.

    Returns
    -------
    groups : list of (model, metadata, SpectrumSet)
        One per model that received spectra, in order of preference.
    rejected : list of Rejection
        Files no model could use, with the reason given by the last model's grid.
    """
    from agnlens.ingest import ingest

    groups, todo, rejected = [], [str(p) for p in paths], []
    for k in range(len(models)):
        if not todo:
            break
        grid = _model_grid(models, k)
        spectra, summary = ingest(todo, labels=labels, grid=grid)
        if len(spectra):  # only now is the model needed (a default model is built on first use)
            model, meta = models[k]
            groups.append((model, meta, spectra))
        todo = [r.source for r in summary.rejected]
        if k == len(models) - 1:
            rejected = summary.rejected
        elif todo:
            log.debug("%d file(s) not usable on the %s grid, trying the next model", len(todo), grid.name)
    return groups, rejected


def model_for_grid(models: Sequence[tuple[Any, dict]], grid) -> tuple[Any, dict]:
    """The first (model, metadata) trained on the grid named ``grid`` (a name, or a Grid: its name);
    the first one when none is (the caller's grid check then says what is wrong)."""
    name = getattr(grid, "name", grid)
    from agnlens.models.default import ModelList

    for k in range(len(models)):
        named = models.grid(k).name if isinstance(models, ModelList) else (models[k][1].get("grid") or {}).get("name")
        if named == name:
            return models[k]
    return models[0]


def _model_grid(models: Sequence[tuple[Any, dict]], k: int):
    """The grid of ``models[k]``; a :class:`~agnlens.models.default.ModelList` says it without
    loading (or building) the model."""
    from agnlens.models.default import ModelList
    from agnlens.models.persistence import grid_from_metadata

    return models.grid(k) if isinstance(models, ModelList) else grid_from_metadata(models[k][1])


def merge_groups(groups: Sequence[tuple[Any, dict, SpectrumSet]]) -> list[tuple[Any, dict, SpectrumSet]]:
    """Join the (model, metadata, spectra) groups that share a model, keeping the first's order."""
    merged: dict[int, tuple[Any, dict, list]] = {}
    for model, meta, spectra in groups:
        merged.setdefault(id(model), (model, meta, []))[2].append(spectra)
    return [(m, md, sets[0] if len(sets) == 1 else SpectrumSet.concat(sets)) for m, md, sets in merged.values()]


def _halpha_measurements(spectra: SpectrumSet, catalog) -> pd.DataFrame | None:
    """For spectra on a grid without Hα (``paper``): the physics baseline's measurements of the same
    files on the ``balmer`` grid, so that the ``not-agn`` check sees [N II]/Hα wherever the spectrum
    reaches it (files that do not are left out: their check stays unavailable). None when the grid
    reaches Hα (:func:`classify` measures the spectra as they are)."""
    from agnlens.ingest import ingest
    from agnlens.models.baseline import measure
    from agnlens.models.linefit import HALPHA, covers

    if not len(spectra) or covers(np.asarray(spectra.wavelength, dtype=float), HALPHA):
        return None
    balmer, _ = ingest(list(spectra.meta["source"]), labels=catalog, grid="balmer")
    return measure(balmer) if len(balmer) else None


def _refine(models, table: pd.DataFrame, catalog) -> pd.DataFrame:
    """Reprocess the ``redshift-offset`` spectra at their measured redshift and classify them again."""
    from agnlens.redshift import corrected_z

    offset = table["flags"].str.contains("redshift-offset", regex=False)
    table = table.copy()
    table["z_refined"] = np.nan
    if not offset.any():
        return table
    rows = table[offset]
    z_new = [corrected_z(z, v) for z, v in zip(rows["z"], rows["z_offset_kms"])]
    over = pd.DataFrame({"spec_id": rows["spec_id"], "label": rows["label"], "z_override": z_new})
    if catalog is not None:
        over = over.merge(catalog.drop(columns=["label", "z_override"], errors="ignore"), on="spec_id", how="left")
    groups, _ = read_for_models(models, list(rows["source"]), labels=over)
    if not groups:
        return table
    redo = pd.concat([classify(m, s) for m, _, s in groups], ignore_index=True).set_index("spec_id")
    for i in rows.index:
        sid = table.at[i, "spec_id"]
        if sid not in redo.index:
            continue
        new = redo.loc[sid]
        for col in redo.columns.drop(["z", "z_offset_kms", "z_offset_err_kms"]):
            if col in table.columns:
                table.at[i, col] = new[col]
        table.at[i, "z_refined"] = float(new["z"])  # z_offset_kms keeps the offset that was found
    return table
