"""Faithfulness of saliency maps: deletion and insertion curves.

A map is faithful when the pixels it calls important really move the model. The deletion curve
(Samek et al. 2017 "MoRF"; Petsiuk et al. 2018) replaces the most salient pixels first by a
baseline and tracks the probability of the explained class: a faithful map makes it fall fast, so
a *low* area under the curve (AUC) is good. The insertion curve starts from the baseline and puts
the most salient pixels back first: a *high* AUC is good. A random pixel order is the yardstick.

Ranking: by default pixels are ranked by their *signed* attribution toward the target class
(``rank="signed"``, the usual definition): deleting a pixel with a large negative attribution
would *raise* p_target, so ranking by |attribution| mixes evidence for and against the class and
makes the curve non-monotone for no fault of the map. ``rank="abs"`` is available for maps
whose sign is not meaningful.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agnlens.explain.attribution import Saliency, make_baseline, predict_target_proba, resolve_target
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)


@dataclass
class Curve:
    """A deletion or insertion curve for many spectra.

    Attributes
    ----------
    kind : {"deletion", "insertion"}
    fraction : ndarray of shape (steps + 1,)
        Share of pixels deleted (or inserted), 0 to 1.
    probability : ndarray of shape (n_spectra, steps + 1)
        p_target after each step.
    auc : ndarray of shape (n_spectra,)
        Trapezoid area under each curve over ``fraction`` ∈ [0, 1].
    """

    kind: str
    fraction: np.ndarray
    probability: np.ndarray
    auc: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """The mean curve over spectra, shape (steps + 1,)."""
        return self.probability.mean(axis=0)


def deletion_curve(
    model,
    X,
    attributions,
    target=None,
    *,
    baseline="continuum",
    steps: int = 50,
    rank: str = "signed",
    wavelength: np.ndarray | None = None,
    batch_size: int = 4000,
) -> Curve:
    """Delete the most salient pixels first and track p_target.

    Parameters
    ----------
    model : fitted classifier with ``predict_proba`` and ``classes_``
    X : ndarray of shape (n_spectra, n_pixels) or SpectrumSet
    attributions : ndarray of shape (n_spectra, n_pixels) or Saliency
        A Saliency also supplies the target class (when ``target`` is None) and the wavelength.
    target : None, class label, int or array of shape (n_spectra,)
        None = the Saliency's target, or the predicted class for a plain array.
    baseline : "continuum", "zeros" or ndarray of shape (n_pixels,) or (n_spectra, n_pixels)
        What a deleted pixel becomes. "continuum" (the spectrum's own line-free continuum, see
        :func:`agnlens.explain.attribution.continuum`) removes lines without inventing a 4000 Å
        break or a flux jump, so the model stays near its training distribution.
    steps : int
        Pixels are removed in ``steps`` equal shares.
    rank : {"signed", "abs"}
        Order by attribution toward the target (default) or by its magnitude.
    wavelength : ndarray of shape (n_pixels,), optional
        Needed for the continuum baseline when neither X nor attributions carry it.

    Returns
    -------
    Curve
    """
    return _curve("deletion", model, X, attributions, target, baseline, steps, rank, wavelength, batch_size)


def insertion_curve(
    model,
    X,
    attributions,
    target=None,
    *,
    baseline="continuum",
    steps: int = 50,
    rank: str = "signed",
    wavelength: np.ndarray | None = None,
    batch_size: int = 4000,
) -> Curve:
    """Start from the baseline and insert the most salient pixels first (higher AUC = better).

    Parameters are those of :func:`deletion_curve`.
    """
    return _curve("insertion", model, X, attributions, target, baseline, steps, rank, wavelength, batch_size)


#: Methods compared by :func:`faithfulness` when the caller passes none.
DEFAULT_METHODS = ("gradient", "finite-difference", "smoothgrad", "integrated-gradients", "occlusion")


@dataclass
class Faithfulness:
    """Deletion / insertion scores of several attribution methods on the same spectra.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per method, best first (lowest deletion AUC): ``method, deletion_auc,
        insertion_auc, random_deletion_auc, n_spectra`` (as in ``docs/results-layout.md``), then
        ``random_insertion_auc``, ``deletion_gain`` (random − method deletion AUC: how much better
        than chance), ``deletion_auc_sem`` and ``rank``.
    curves : dict
        Mean curves for a figure: ``{"fraction": (steps+1,), "deletion": {method: (steps+1,)},
        "insertion": {...}}``, each with a ``"random"`` entry.
    baseline : str
    rank_by : str
    """

    table: pd.DataFrame
    curves: dict
    baseline: str = "continuum"
    rank_by: str = "signed"

    @property
    def ranking(self) -> list[str]:
        """Method names, most faithful first."""
        return self.table["method"].tolist()

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()


def faithfulness(
    model,
    X,
    methods: Mapping[str, np.ndarray | Saliency] | Sequence[str] | None = None,
    target=None,
    *,
    baseline="continuum",
    steps: int = 50,
    rank: str = "signed",
    random_repeats: int = 5,
    seed: int = 0,
    wavelength: np.ndarray | None = None,
    baseline_spectra=None,
) -> Faithfulness:
    """Compare attribution methods by their deletion and insertion AUCs.

    Parameters
    ----------
    model : fitted classifier
    X : ndarray of shape (n_spectra, n_pixels) or SpectrumSet
    methods : dict name → attributions, or sequence of method names, optional
        Attributions are ndarrays (n_spectra, n_pixels) or Saliency objects, all explaining ``X``
        and the same target. Names (default :data:`DEFAULT_METHODS`) are computed here with
        :func:`agnlens.explain.attribution.saliency` and their default options.
    target : None, class label, int or array of shape (n_spectra,)
        None: the target of the first Saliency given, else the predicted class.
    baseline, steps, rank, wavelength
        As in :func:`deletion_curve`.
    random_repeats : int
        Random pixel orders averaged for the yardstick ``random_deletion_auc``.
    seed : int
        Seeds the random orders (and SmoothGrad when methods are computed here).
    baseline_spectra : ndarray (m, n_pixels) or (n_pixels,), or SpectrumSet, optional
        Spectra whose mean is the Integrated Gradients "type2-mean" baseline when methods are
        computed here (with none given, Integrated Gradients uses the continuum baseline).

    Returns
    -------
    Faithfulness
        ``.table`` (DataFrame, best first), ``.ranking``, ``.curves``.
    """
    flux, wavelength = _flux_and_wavelength(X, wavelength, None)
    if methods is None or (not isinstance(methods, Mapping) and not isinstance(methods, np.ndarray)):
        methods = _compute_methods(
            model, X, list(methods or DEFAULT_METHODS), target, wavelength, seed, baseline_spectra
        )
    if not methods:
        raise ValueError("faithfulness needs at least one method: methods={'gradient': values, ...}")
    first = next(iter(methods.values()))
    if wavelength is None and isinstance(first, Saliency):
        wavelength = first.wavelength
    if target is None and isinstance(first, Saliency):
        target = first.target_index
    if target is None:
        target = np.argmax(np.asarray(model.predict_proba(flux)), axis=1)
    rng = np.random.default_rng(seed)
    rows = []
    curves: dict[str, Any] = {"deletion": {}, "insertion": {}}
    # every curve deletes towards the same baseline: fit the continuum once, not once per curve
    fill = make_baseline(baseline, flux, wavelength) if isinstance(baseline, str) else baseline
    opts: dict[str, Any] = dict(baseline=fill, steps=steps, wavelength=wavelength)
    rand_del, rand_ins = [], []
    for _ in range(max(1, int(random_repeats))):
        noise = rng.random(flux.shape)
        rand_del.append(deletion_curve(model, flux, noise, target, rank="signed", **opts))
        rand_ins.append(insertion_curve(model, flux, noise, target, rank="signed", **opts))
    random_del_auc = float(np.mean([c.auc.mean() for c in rand_del]))
    random_ins_auc = float(np.mean([c.auc.mean() for c in rand_ins]))
    curves["deletion"]["random"] = np.mean([c.mean for c in rand_del], axis=0)
    curves["insertion"]["random"] = np.mean([c.mean for c in rand_ins], axis=0)
    for name, attr in methods.items():
        d = deletion_curve(model, flux, attr, target, rank=rank, **opts)
        i = insertion_curve(model, flux, attr, target, rank=rank, **opts)
        curves["deletion"][name] = d.mean
        curves["insertion"][name] = i.mean
        rows.append(
            {
                "method": name,
                "deletion_auc": float(d.auc.mean()),
                "insertion_auc": float(i.auc.mean()),
                "random_deletion_auc": random_del_auc,
                "n_spectra": int(flux.shape[0]),
                "random_insertion_auc": random_ins_auc,
                "deletion_gain": random_del_auc - float(d.auc.mean()),
                "deletion_auc_sem": float(d.auc.std(ddof=1) / np.sqrt(d.auc.size)) if d.auc.size > 1 else np.nan,
            }
        )
    curves["fraction"] = rand_del[0].fraction
    table = pd.DataFrame(rows).sort_values("deletion_auc", kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    log.info("faithfulness ranking (lower deletion AUC is better): %s", ", ".join(table["method"]))
    return Faithfulness(
        table=table,
        curves=curves,
        baseline=baseline if isinstance(baseline, str) else "array",
        rank_by=rank,
    )


def _compute_methods(model, X, names, target, wavelength, seed, baseline_spectra) -> dict[str, Saliency]:
    from agnlens.explain.attribution import METHODS, saliency

    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    out = {}
    for name in names:
        opts = {}
        if name == "smoothgrad":
            opts["seed"] = seed
        if name == "integrated-gradients" and baseline_spectra is not None:
            opts["baseline"] = "type2-mean"
            opts["baseline_spectra"] = baseline_spectra
        out[name] = saliency(model, X, wavelength=wavelength, method=name, target=target, **opts)
    return out


# --------------------------------------------------------------------------------------------


def _flux_and_wavelength(X, wavelength, attributions):
    if isinstance(X, SpectrumSet):
        wavelength = X.wavelength if wavelength is None else wavelength
        flux = np.asarray(X.flux, dtype=float)
    else:
        flux = np.atleast_2d(np.asarray(X, dtype=float))
    if wavelength is None and isinstance(attributions, Saliency):
        wavelength = attributions.wavelength
    return flux, wavelength


def _curve(kind, model, X, attributions, target, baseline, steps, rank, wavelength, batch_size) -> Curve:
    flux, wavelength = _flux_and_wavelength(X, wavelength, attributions)
    if isinstance(attributions, Saliency):
        if target is None:
            target = attributions.target_index
        attributions = attributions.values
    attr = np.asarray(attributions, dtype=float)
    n, n_pix = flux.shape
    if attr.shape != flux.shape:
        raise ValueError(f"attributions have shape {attr.shape}, expected the spectra's shape {flux.shape}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if rank not in ("signed", "abs"):
        raise ValueError(f"rank must be 'signed' or 'abs', got {rank!r}")
    classes = np.asarray(model.classes_)
    if target is None:
        proba = np.asarray(model.predict_proba(flux))
        t_idx = np.argmax(proba, axis=1)
    else:
        t_idx = resolve_target(target, classes, n)
    base = make_baseline(baseline, flux, wavelength)
    score = attr if rank == "signed" else np.abs(attr)
    order = np.argsort(-score, axis=1, kind="stable")  # most salient first
    # position of every pixel in its spectrum's order
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(n_pix)[None, :].repeat(n, axis=0), axis=1)
    counts = np.round(np.linspace(0, n_pix, steps + 1)).astype(int)
    m = counts.size
    prob = np.empty((n, m))
    per_batch = max(1, batch_size // m)
    for start in range(0, n, per_batch):
        rows = np.arange(start, min(start + per_batch, n))
        changed = position[rows][:, None, :] < counts[None, :, None]  # (r, m, n_pix)
        if kind == "deletion":
            batch = np.where(changed, base[rows][:, None, :], flux[rows][:, None, :])
        else:
            batch = np.where(changed, flux[rows][:, None, :], base[rows][:, None, :])
        p = predict_target_proba(model, batch.reshape(-1, n_pix), np.repeat(t_idx[rows], m))
        prob[rows] = p.reshape(rows.size, m)
    fraction = counts / n_pix
    auc = np.trapezoid(prob, fraction, axis=1)
    return Curve(kind=kind, fraction=fraction, probability=prob, auc=auc)
