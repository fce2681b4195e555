"""Prediction stability: does a classification survive the spectrum's own noise and a small
redshift error?

:func:`prediction_stability` perturbs every raw (observed-frame) spectrum ``n_draws`` times —
Gaussian noise drawn at the spectrum's own inverse variance, and the redshift moved by ±0.1 % —
runs each draw through the same preprocessing onto ``grid`` and the same model, and reports per
spectrum the share of draws whose label differs from the unperturbed prediction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from agnlens.preprocess import Grid, get_grid, preprocess
from agnlens.spectra import Spectrum, SpectrumSet

log = logging.getLogger(__name__)

_INDEX = "_stability_index"
_DRAW = "_stability_draw"


def perturb(spectrum: Spectrum, rng: np.random.Generator, *, z_error: float = 0.001) -> Spectrum:
    """One perturbed copy of an observed-frame spectrum.

    Good pixels get Gaussian noise of standard deviation ``1 / sqrt(ivar)`` (bad pixels are left
    alone, the ivar and mask are kept), and the redshift becomes ``z · (1 + s · z_error)`` with a
    random sign ``s = ±1``. The generator is used in this order: the sign, then the noise.

    Parameters
    ----------
    spectrum : Spectrum
        Observed frame, with ``meta["z"]``.
    rng : numpy.random.Generator
    z_error : float, default 0.001
        Relative redshift error.

    Returns
    -------
    Spectrum
    """
    if spectrum.frame != "observed":
        raise ValueError(
            f"perturb: spectrum {spectrum.spec_id!r} is in the {spectrum.frame} frame; pass the raw "
            f"observed-frame spectrum (as read from its file) so the redshift error can act"
        )
    sign = 1.0 if rng.random() < 0.5 else -1.0
    good = spectrum.good
    sigma = np.where(good, 1.0 / np.sqrt(np.where(good, spectrum.ivar, 1.0)), 0.0)
    flux = spectrum.flux + rng.standard_normal(spectrum.flux.size) * sigma
    meta = dict(spectrum.meta)
    meta["z"] = spectrum.z * (1.0 + sign * z_error)
    return Spectrum(spectrum.wavelength, flux, spectrum.ivar, spectrum.mask, meta, frame="observed")


def prediction_stability(
    model,
    spectra_raw: Sequence[Spectrum],
    *,
    grid: str | Grid = "paper",
    n_draws: int = 10,
    z_error: float = 0.001,
    seed: int = 0,
    model_input: str = "auto",
) -> pd.DataFrame:
    """Share of perturbed draws whose predicted label flips, per spectrum.

    Parameters
    ----------
    model : fitted classifier
        Anything with ``predict`` (``SpectrumSVC``, an sklearn pipeline, ``PhysicsBaseline``),
        trained on spectra preprocessed onto ``grid``.
    spectra_raw : sequence of Spectrum
        Observed-frame spectra as read (not preprocessed), with ``meta["z"]``.
    grid : str or Grid
        The grid the model was trained on.
    n_draws : int, default 10
        Perturbed copies per spectrum (see :func:`perturb`).
    z_error : float, default 0.001
        Relative redshift error: each draw uses ``z · (1 ± z_error)``.
    seed : int
        Draw ``j`` of spectrum ``i`` uses ``numpy.random.default_rng([seed, i])`` advanced
        through draws ``0..j-1``, so a rerun is bitwise identical and independent of the batch.
    model_input : {"auto", "array", "set"}
        What ``predict`` receives: the flux array (n, n_pixels), or the SpectrumSet (which carries
        the grid and ivar; ``PhysicsBaseline`` prefers it). ``"auto"`` passes the SpectrumSet to
        a ``PhysicsBaseline`` and the array to anything else.

    Returns
    -------
    pandas.DataFrame
        One row per input spectrum: ``spec_id``, ``label`` (from ``meta``, ``""`` if none),
        ``prediction`` (unperturbed), ``n_draws`` (draws that survived preprocessing),
        ``n_flips``, ``flip_fraction`` (NaN when the spectrum itself was rejected or no draw
        survived), ``flipped_to`` (the most common other label, ``""`` if none) and
        ``rejected`` (the reason the unperturbed spectrum was rejected, ``""`` otherwise).
        ``attrs`` holds ``flip_fraction`` (all valid draws pooled), ``spectra_flipping`` (share
        of spectra with at least one flip) and the settings.
    """
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}")
    if not (0.0 <= float(z_error) < 0.1):
        raise ValueError(f"z_error is a relative redshift error, expected 0 ≤ z_error < 0.1, got {z_error}")
    if model_input not in ("auto", "array", "set"):
        raise ValueError(f"model_input must be 'auto', 'array' or 'set', got {model_input!r}")
    if not hasattr(model, "predict"):
        raise TypeError(f"model must have a predict method (a fitted classifier), got {type(model).__name__}")
    spectra_raw = list(spectra_raw)
    g = get_grid(grid)

    for i, spectrum in enumerate(spectra_raw):
        if not isinstance(spectrum, Spectrum):
            raise TypeError(f"spectra_raw[{i}] is a {type(spectrum).__name__}, expected a Spectrum")
    # The unperturbed spectra first: a spectrum rejected as it is (coverage, redshift) is
    # reported once and not perturbed.
    reference, rejected = preprocess([_tag(s, i, -1) for i, s in enumerate(spectra_raw)], g)
    reasons = {item.source: item.reason for item in rejected}
    draws = []
    for i in reference.meta[_INDEX].to_numpy(dtype=int):
        rng = np.random.default_rng([int(seed), int(i)])
        for j in range(int(n_draws)):
            draws.append(_tag(perturb(spectra_raw[i], rng, z_error=z_error), int(i), j))
    perturbed, _ = preprocess(draws, g)
    parts = [s for s in (reference, perturbed) if len(s)]
    processed = SpectrumSet.concat(parts) if parts else reference
    predictions = _predict(model, processed, model_input) if len(processed) else np.array([], dtype=str)
    index = processed.meta[_INDEX].to_numpy(dtype=int) if len(processed) else np.array([], int)
    draw = processed.meta[_DRAW].to_numpy(dtype=int) if len(processed) else np.array([], int)

    rows = []
    for i, spectrum in enumerate(spectra_raw):
        mine = index == i
        ref = predictions[mine & (draw < 0)]
        others = predictions[mine & (draw >= 0)]
        row = {
            "spec_id": spectrum.spec_id,
            "label": str(spectrum.meta.get("label", "") or ""),
            "prediction": str(ref[0]) if ref.size else "",
            "n_draws": int(others.size),
            "n_flips": 0,
            "flip_fraction": np.nan,
            "flipped_to": "",
            "rejected": "" if ref.size else reasons.get(_source(spectrum, i), "rejected by preprocessing"),
        }
        if ref.size and others.size:
            flips = others[others != ref[0]]
            row["n_flips"] = int(flips.size)
            row["flip_fraction"] = flips.size / others.size
            if flips.size:
                values, counts = np.unique(flips, return_counts=True)
                row["flipped_to"] = str(values[np.argmax(counts)])
        rows.append(row)
    table = pd.DataFrame(rows)
    valid = table["flip_fraction"].notna() if len(table) else pd.Series(dtype=bool)
    total_draws = int(table.loc[valid, "n_draws"].sum()) if len(table) else 0
    table.attrs.update(
        flip_fraction=float(table.loc[valid, "n_flips"].sum() / total_draws) if total_draws else float("nan"),
        spectra_flipping=float((table.loc[valid, "n_flips"] > 0).mean()) if valid.any() else float("nan"),
        n_draws=int(n_draws),
        z_error=float(z_error),
        seed=int(seed),
        grid=g.name,
    )
    log.info(
        "prediction stability: %d spectra, %d draws each: %.1f%% of draws flip, %.1f%% of spectra flip at least once",
        len(table), n_draws, 100 * table.attrs["flip_fraction"], 100 * table.attrs["spectra_flipping"],
    )
    return table


def _tag(spectrum: Spectrum, i: int, j: int) -> Spectrum:
    meta = dict(spectrum.meta)
    meta[_INDEX] = i
    meta[_DRAW] = j
    meta["source"] = _source(spectrum, i) if j < 0 else f"{_source(spectrum, i)} (draw {j})"
    return Spectrum(spectrum.wavelength, spectrum.flux, spectrum.ivar, spectrum.mask, meta, frame=spectrum.frame)


def _source(spectrum: Spectrum, i: int) -> str:
    return str(spectrum.meta.get("source") or spectrum.spec_id or f"spectrum {i}")


def _predict(model, spectra: SpectrumSet, model_input: str) -> np.ndarray:
    if model_input == "auto":
        from agnlens.models.baseline import PhysicsBaseline

        model_input = "set" if isinstance(model, PhysicsBaseline) else "array"
    X = spectra if model_input == "set" else np.asarray(spectra.flux, dtype=np.float64)
    return np.asarray(model.predict(X)).astype(str)
