"""Predictions and their judgement on spectra in memory and in stores: the core of the ``classify``
stage (:func:`agnlens.stages.classify`, the door that takes inputs of every kind, is in
:mod:`agnlens.stages.verbs`).

:func:`classify_set` classifies a set on a model's grid and judges every prediction (applicability,
redshift offsets, the physics baseline's ``not-agn``); :func:`classify_store` does the same chunk by
chunk where a store lies, on a Dask scheduler. Every prediction is kept; the ones that should not be
trusted say why in ``flags``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from agnlens.spectra import SpectrumSet
from agnlens.stages.executor import Executor, as_executor

log = logging.getLogger(__name__)

#: Columns of the predictions table, before the per-class ``p_<class>`` columns are inserted
#: after ``predicted_label``.
COLUMNS = ("spec_id", "label", "predicted_label", "applicable", "flags", "z_offset_kms",
           "z_offset_err_kms", "grid")


def classify_set(model, spectra, check_redshift: bool = True, check_physics: bool = True, measurements=None,
                 grid: str | None = None, executor=None, measure: bool = False) -> pd.DataFrame:
    """:func:`agnlens.stages.classify` of spectra in memory on ``model``'s grid."""
    from agnlens.io.coerce import as_spectrum_set

    if not isinstance(spectra, SpectrumSet):
        spectra = as_spectrum_set(spectra, n_pixels=getattr(model, "n_features_in_", None))
    if len(spectra) == 0:
        return classify_chunk(spectra, model, check_redshift, grid, check_physics, measurements, measure)
    tables = as_executor(executor).map(classify_chunk, spectra, model, check_redshift, grid, check_physics,
                                       measurements, measure, desc="classify")
    return tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)


def is_models(model) -> bool:
    """Whether ``model`` names models (a file or ``"default"``) or lists them, rather than being one."""
    if isinstance(model, (str, Path)):
        return True
    return hasattr(model, "__getitem__") and hasattr(model, "__len__") and not hasattr(model, "predict_proba")


def pick_model(models, spectra):
    """The model of ``models`` for spectra in memory: the one on a set's grid, else the first."""
    from agnlens.stages.loading import model_for_grid

    return model_for_grid(models, spectra.grid)[0] if isinstance(spectra, SpectrumSet) else models[0][0]


def models_of(model):
    """``model`` as models in order of preference: a name or file resolved, one fitted model alone
    (on the preset grid of its pixel count)."""
    if isinstance(model, (str, Path)):
        from agnlens.models.default import resolve_models

        return resolve_models(str(model))
    if hasattr(model, "predict_proba"):
        from agnlens.grid import GRIDS

        n = getattr(model, "n_features_in_", None)
        named = [make() for make in GRIDS.values() if make().wavelength.size == n]
        if not named:
            raise ValueError(f"classify: a model of {n} pixels is on no preset grid ({sorted(GRIDS)}); pass it "
                             "with its metadata, [(model, metadata)], to classify files")
        return [(model, {"grid": named[0].to_dict()})]
    return model


def classify_chunk(spectra: SpectrumSet, model, check_redshift: bool = True, grid: str | None = None,
                   check_physics: bool = True, measurements: pd.DataFrame | None = None,
                   measure: bool = False) -> pd.DataFrame:
    """:func:`classify` of one chunk on the model's grid (the task the executor runs); same
    arguments, same table (with ``measure``, the measurements of the chunk on its own grid beside
    it, made once and shared with the ``not-agn`` check; ``measurements`` made for a whole set are
    matched to the chunk's spectra by ``spec_id``)."""
    from agnlens.explain.uncertainty import proba_std
    from agnlens.models.applicability import applicability
    from agnlens.models.baseline import measure as measure_lines
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
    wl = np.asarray(spectra.wavelength, dtype=float)
    reaches_halpha = all(covers(wl, cx) for cx in (HBETA, HALPHA))
    given = measurements is not None
    if measurements is not None and len(measurements) != len(spectra):
        measurements = measurements[measurements["spec_id"].isin(spectra.spec_id)]
    if not given and len(spectra) and ((check_physics and reaches_halpha) or (measure and covers(wl, HBETA))):
        measurements = measure_lines(spectra)
    use = measurements if (given or (check_physics and reaches_halpha)) else None
    judged = applicability(model, spectra, extra_flags=extra, measurements=use).table
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
    if measure:
        table = join_measurements(table, no_measurements() if measurements is None else measurements)
    return table


def no_measurements() -> pd.DataFrame:
    """An empty table of :func:`agnlens.models.baseline.measure`'s columns (nothing measured)."""
    from agnlens.models.baseline import MEASURE_COLUMNS

    return pd.DataFrame({c: pd.Series(dtype=str if c == "spec_id" else float) for c in MEASURE_COLUMNS})


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
                   check_redshift: bool = True, measure: bool = False) -> Path:
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
    check_redshift, measure : bool
        See :func:`classify` (the measurements made in each chunk, where it runs).

    Returns
    -------
    Path
        ``OUT/predictions.csv``: the columns of :func:`classify`, rows in store order.
    """
    from agnlens.engine import fingerprint

    check_model(model)
    result = as_executor(executor).map_store(
        _predictions, store, out, args=(model, bool(check_redshift), bool(measure)),
        job=f"classify check_redshift={bool(check_redshift)}{' measure=True' * bool(measure)} {fingerprint(model)}",
    )
    return result.outputs["predictions"]


def write_predictions(path: str | Path, table: pd.DataFrame) -> Path:
    """Write a predictions table as ``classify`` and ``explain`` write it: atomically, numbers to 6
    significant digits, string cells spreadsheet-safe (:func:`agnlens.atomic.write_csv`)."""
    from agnlens.atomic import write_csv

    return write_csv(path, table, float_format="%.6g")


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A predictions table written by :func:`classify_store`, with its numbers bit for bit."""
    text = ("label", "flags", "source", "bpt_class", "subtype", "baseline_label", "baseline_flags")
    table = pd.read_csv(path, dtype={"spec_id": str, **dict.fromkeys(text, str)},
                        keep_default_na=False, na_values=[""])
    for col in ("label", "flags", "bpt_class", "subtype", "baseline_label", "baseline_flags"):
        if col in table:
            table[col] = table[col].fillna("")
    return table


def _predictions(chunk: SpectrumSet, model, check_redshift: bool, measure: bool = False) -> dict:
    return {"predictions": classify_chunk(chunk, model, check_redshift, measure=measure)}


def check_model(model) -> None:
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise TypeError(
            f"expected a fitted classifier with predict_proba and classes_ (a SpectrumSVC from "
            f"agnlens.models), got {type(model).__name__}"
        )


