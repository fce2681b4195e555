"""Realism as a number: how well can a classifier tell real spectra from simulated ones?

:func:`realism` runs, for every class that has real spectra, a *classifier two-sample test*
(Lopez-Paz & Oquab 2017): discriminators are trained to tell the real spectra of that class from
simulated ones at matched redshift and S/N, with repeated stratified cross-validation; their
ROC AUC is the number. 0.5 means the simulator cannot be told apart from the data; 1.0 means every
real spectrum is recognised. The same test is repeated on wavelength windows
(:data:`WINDOWS`: the continuum between the lines, the lines alone, the blue end 3700–4400 Å), so
that the next gap is visible where it is. Beside it, a feature table compares real and simulated
distributions of S/N, continuum slope, Dn4000, broad-line widths and line ratios
(:mod:`agnlens.features`; on :data:`FEATURE_TWINS` twins of its own) with a two-sample distance
each, and the class median spectra can be plotted (:meth:`RealismResult.plot`).

Per-class checks (:data:`CHECKS`): for the intermediates, the features that tell a Seyfert 1.8/1.9
from a type 2 — broad/narrow Hα, broad Hα FWHM, narrow FWHM, [O III] EW — are measured on the
1.8/1.9s among :data:`CHECK_TWINS` simulated twins at the real spectra's redshifts, S/N and flux; a
check passes when the real spectra's median lies inside the simulated 16–84 % range.

Matching: each real spectrum gets ``per_real`` simulated twins of its class at its redshift, S/N
and flux (:func:`agnlens.twins.simulate_matched`, which says how), the two sharing one mask.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.classes import CLASSES
from agnlens.errors import AgnlensWarning
from agnlens.grid import Grid
from agnlens.simulate.instrument import DLOGLAM
from agnlens.spectra import SpectrumSet
from agnlens.twins import simulate_matched

log = logging.getLogger(__name__)

__all__ = ["CHECKS", "CHECK_TWINS", "DISCRIMINATORS", "FEATURE_TWINS", "MIN_REAL", "REALISM_GRID", "WINDOWS",
           "RealismResult", "realism", "window_pixels"]

#: The discriminators of the two-sample test (name → what it is).
DISCRIMINATORS: dict[str, str] = {
    "pca_logistic": "PCA (≤ 20 whitened components) + logistic regression",
    "pca_forest": "PCA (≤ 20 whitened components) + random forest (100 trees)",
    "pca_knn": "PCA (≤ 20 whitened components) + 5-nearest neighbours",
}

#: Rest-frame windows (Å) around the emission lines: broad Balmer lines ±4,000–6,000 km/s, the
#: narrow lines (with [O III] and He II on Hβ's window), Hα with [N II] and [S II].
LINE_WINDOWS = ((3715.0, 3740.0), (3860.0, 3880.0), (4030.0, 4170.0), (4260.0, 4420.0), (4650.0, 4720.0),
                (4760.0, 5030.0), (5860.0, 5895.0), (6290.0, 6310.0), (6420.0, 6750.0))
#: The windows of the per-window two-sample tests (name → what is kept).
WINDOWS: dict[str, str] = {
    "continuum": "pixels outside every line window (LINE_WINDOWS)",
    "lines": "pixels inside the line windows",
    "blue_end": "rest 3700–4400 Å (Balmer continuum, high-order Balmer lines, 4000 Å break)",
}


def window_pixels(wavelength: np.ndarray, name: str) -> np.ndarray:
    """The pixels of :data:`WINDOWS` ``name`` on ``wavelength`` (rest Å), a boolean array."""
    wavelength = np.asarray(wavelength, dtype=float)
    lines = np.zeros(wavelength.shape, dtype=bool)
    for lo, hi in LINE_WINDOWS:
        lines |= (wavelength >= lo) & (wavelength <= hi)
    if name == "continuum":
        return ~lines
    if name == "lines":
        return lines
    if name == "blue_end":
        return (wavelength >= 3700.0) & (wavelength <= 4400.0)
    raise ValueError(f"realism: unknown window {name!r}; choose from {list(WINDOWS)}")


#: Fewest real spectra of a class for the cross-validated test (one per fold at 5 folds).
MIN_REAL = 5

#: Per-class feature checks: class → (the simulated subtypes compared, the features checked).
CHECKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "intermediate": (("1.8", "1.9"), ("broad_narrow_halpha", "fwhm_broad_halpha", "fwhm_narrow", "ew_oiii")),
}
#: Simulated spectra drawn for a class's checks (spread over its real spectra's redshifts and S/N).
CHECK_TWINS = 800
#: Simulated spectra of the feature table, at least one per real spectrum (drawn apart from the
#: two-sample test's twins): with one twin each, the simulated median [O III] EW of 76 real type 1
#: moved between 23.7 and 26.1 Å with the seed; with five each, 20.3–20.9 Å (real 21.1 Å).
FEATURE_TWINS = 400

#: The grid ``agnlens realism`` puts files on: 3700–6800 Å rest, log-λ at the SDSS pixel size,
#: so that the 4000 Å break, Hβ + [O III] and Hα + [N II] are all on it.
REALISM_GRID = Grid(
    "realism", 10.0 ** np.arange(np.log10(3700.0), np.log10(6800.0), DLOGLAM), spacing="log"
)


@dataclass
class RealismResult:
    """What :func:`realism` measured.

    Attributes
    ----------
    classes : dict of str to dict
        Per class: ``n_real``, ``n_simulated``, ``tested`` (bool), ``reason`` (why not, or ""),
        ``auc`` (discriminator → ``mean``, ``std``, ``min``, ``max``, ``n_folds``), ``auc_windows``
        (window of :data:`WINDOWS` → the same per discriminator, on that window's pixels only) and
        ``features`` (a list of rows: ``feature``, ``n_real``, ``n_simulated``,
        ``median_real``, ``median_simulated``, ``ks``, ``ks_p``, ``wasserstein_rank``: W1
        between the samples mapped through their pooled empirical CDF, 0 to 1), and for the classes
        of :data:`CHECKS` ``checks`` (``subtypes``, ``n_simulated``, ``passed`` and ``rows``: per
        feature ``feature``, ``real`` (the real values), ``real_median``, ``simulated_p16``,
        ``simulated_p50``, ``simulated_p84``, ``n_real_inside``, ``passed``).
    wavelength : ndarray of shape (n_pixels,)
        The rest-frame grid of the spectra compared.
    medians : dict of str to (ndarray, ndarray)
        Per class, the median real and median simulated spectrum on ``wavelength``.
    settings : dict
        Grid, folds, repeats, seed, twins per real spectrum (of the test and of the feature table),
        the discriminators.
    """

    classes: dict[str, dict[str, Any]]
    wavelength: np.ndarray
    medians: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings and per-class results (medians are left to the figure)."""
        return {
            "simulated": True,
            "what": "classifier two-sample test: real vs simulated spectra of each class; ROC AUC "
            "0.5 = indistinguishable, 1.0 = every real spectrum recognised",
            "settings": self.settings,
            "classes": self.classes,
        }

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` to ``path`` atomically."""
        from agnlens.atomic import write_json

        return write_json(path, self.to_dict())

    def plot(self, ax=None):
        """Median real vs median simulated spectrum per class (see :func:`agnlens.plot.realism.plot_realism`)."""
        from agnlens.plot.realism import plot_realism

        return plot_realism(self, ax=ax)

    def lines(self) -> list[str]:
        """One line per class: AUC per discriminator (mean ± std), or why there is no test."""
        out = []
        for label, c in self.classes.items():
            head = f"{label}: {c['n_real']} real vs {c['n_simulated']} simulated"
            if not c["tested"]:
                out.append(f"{head}: no test ({c['reason']})")
                continue
            aucs = ", ".join(f"{k} {v['mean']:.3f} ± {v['std']:.3f}" for k, v in c["auc"].items())
            out.append(f"{head}: ROC AUC {aucs}")
            for window, auc in c.get("auc_windows", {}).items():
                aucs = ", ".join(f"{k} {v['mean']:.3f} ± {v['std']:.3f}" for k, v in auc.items())
                out.append(f"{label} [{window} only]: ROC AUC {aucs}")
        for label, c in self.classes.items():
            if c.get("checks"):
                ch = c["checks"]
                rows = "; ".join(
                    f"{r['feature']} real median {_fmt(r['real_median'])} in [{_fmt(r['simulated_p16'])}, "
                    f"{_fmt(r['simulated_p84'])}] {'yes' if r['passed'] else 'NO'}" for r in ch["rows"]
                )
                subtypes = "/".join(ch["subtypes"])
                out.append(f"{label} checks ({c['n_real']} real against the 16–84 % range of {ch['n_simulated']} "
                           f"simulated {subtypes}): {'passed' if ch['passed'] else 'FAILED'}: {rows}")
        return out


def realism(
    real: SpectrumSet,
    simulated: SpectrumSet | None = None,
    *,
    n_splits: int = 5,
    n_repeats: int = 5,
    per_real: int = 1,
    seed: int = 0,
    features: bool = True,
    discriminators: tuple[str, ...] = tuple(DISCRIMINATORS),
) -> RealismResult:
    """Measure how far simulated spectra are from real ones, class by class.

    Parameters
    ----------
    real : SpectrumSet
        Rest-frame normalised real spectra with ``label`` and ``z`` in ``meta``. Classes the
        simulator does not make (``non-agn``, ``ambiguous``, unlabelled) are left out.
    simulated : SpectrumSet, optional
        The set to compare with, on the same grid. Default: :func:`simulate_matched` twins.
    n_splits, n_repeats : int, default 5 and 5
        Repeated stratified K-fold cross-validation of each discriminator (folds are reduced to
        the smaller side's size when a class is small).
    per_real : int, default 1
        Simulated twins per real spectrum of the two-sample test (when ``simulated`` is None; the
        feature table draws :data:`FEATURE_TWINS` of its own, at least one per real spectrum).
    seed : int, default 0
        Simulator and cross-validation seed.
    features : bool, default True
        Measure and compare :data:`agnlens.features.FEATURES` (line fits: ~10 ms per spectrum),
        and, when ``simulated`` is None, run the per-class :data:`CHECKS`.
    discriminators : tuple of str
        Names from :data:`DISCRIMINATORS`.

    Returns
    -------
    RealismResult

    Raises
    ------
    ValueError
        If ``real`` has no spectrum of a simulated class, the sets are on different grids, or a
        setting is out of range.
    """
    from threadpoolctl import threadpool_limits

    # Many small matrices: threaded BLAS only oversubscribes the cores (20x slower on 2 busy cores).
    with threadpool_limits(limits=1):
        return _realism(real, simulated, n_splits, n_repeats, per_real, seed, features, tuple(discriminators))


def _realism(real, simulated, n_splits, n_repeats, per_real, seed, features, discriminators) -> RealismResult:
    unknown = sorted(set(discriminators) - set(DISCRIMINATORS))
    if unknown or not discriminators:
        raise ValueError(f"realism: unknown discriminators {unknown}; choose from {list(DISCRIMINATORS)}")
    if n_splits < 2 or n_repeats < 1 or per_real < 1:
        raise ValueError(
            f"realism: need n_splits >= 2, n_repeats >= 1 and per_real >= 1, got {n_splits}, "
            f"{n_repeats}, {per_real}"
        )
    labels = real.labels
    present = [c for c in CLASSES if np.any(labels == c)]
    if not present:
        found = sorted(set(labels) - {""}) or ["no labels"]
        raise ValueError(
            f"realism: the real set has no spectrum of the simulated classes {list(CLASSES)} (it has "
            f"{', '.join(found)}); give a labels catalogue (--labels) that names type1, type2 or intermediate"
        )
    real = real[np.isin(labels, present)]
    own_twins = simulated is None
    if simulated is None:
        z = pd.to_numeric(real.meta["z"], errors="coerce").to_numpy(float)
        unusable = ~(np.isfinite(z) & (z >= 0))
        if unusable.any():
            warnings.warn(
                f"realism: {int(unusable.sum())} real spectra have no usable redshift (e.g. "
                f"{real.spec_id[unusable][0]}); no twin can be simulated for them, they are left out",
                AgnlensWarning, stacklevel=3,
            )
            real = real[~unusable]
        real, simulated = simulate_matched(real, per_real=per_real, seed=seed)
    elif simulated.n_pixels != real.n_pixels or not np.allclose(simulated.wavelength, real.wavelength):
        raise ValueError(
            f"realism: the simulated set is on grid {simulated.grid!r} ({simulated.n_pixels} px), the real "
            f"one on {real.grid!r} ({real.n_pixels} px); preprocess both onto one grid"
        )
    feat_real = feat_sim = None
    feature_twins, feature_per_real = simulated, None
    if features:
        from agnlens.features import spectral_features

        if own_twins:  # the feature table's own twins: one per real spectrum moves a median by several %
            feature_per_real, feature_twins = _more_twins(real, FEATURE_TWINS, int(seed) + 2_000_003)
        feat_real, feat_sim = spectral_features(real), spectral_features(feature_twins)
    classes: dict[str, dict[str, Any]] = {}
    medians = {}
    for label in present:
        r_idx = np.flatnonzero(real.labels == label)
        s_idx = np.flatnonzero(simulated.labels == label)
        entry: dict[str, Any] = {"n_real": int(r_idx.size), "n_simulated": int(s_idx.size), "tested": False,
                                 "reason": "", "auc": {}, "auc_windows": {}, "features": []}
        if r_idx.size < MIN_REAL or s_idx.size < MIN_REAL:
            entry["reason"] = (
                f"{r_idx.size} real and {s_idx.size} simulated spectra; a cross-validated two-sample "
                f"test needs at least {MIN_REAL} of each"
            )
        else:
            X = np.vstack([real.flux[r_idx], simulated.flux[s_idx]]).astype(np.float64)
            y = np.r_[np.ones(r_idx.size, int), np.zeros(s_idx.size, int)]
            folds = int(min(n_splits, r_idx.size, s_idx.size))
            entry["auc"] = _cv_auc(discriminators, X, y, folds, n_repeats, seed)
            for window in WINDOWS:
                cols = window_pixels(real.wavelength, window)
                if cols.sum() >= 2:
                    entry["auc_windows"][window] = _cv_auc(discriminators, X[:, cols], y, folds, n_repeats, seed)
            entry["tested"] = True
        if feat_real is not None and feat_sim is not None:  # set exactly when ``features``
            f_idx = np.flatnonzero(feature_twins.labels == label)
            entry["features"] = _compare_features(feat_real.iloc[r_idx], feat_sim.iloc[f_idx])
            if label in CHECKS and own_twins:
                entry["checks"] = _class_checks(real[r_idx], feat_real.iloc[r_idx], label, seed)
        medians[label] = (np.median(real.flux[r_idx], axis=0), np.median(simulated.flux[s_idx], axis=0)
                          if s_idx.size else np.full(real.n_pixels, np.nan))
        classes[label] = entry
    settings = {
        "grid": real.grid.name, "grid_range": [float(real.wavelength[0]), float(real.wavelength[-1])],
        "n_pixels": int(real.n_pixels), "n_splits": int(n_splits), "n_repeats": int(n_repeats),
        "per_real": int(per_real), "feature_per_real": feature_per_real,
        "seed": int(seed),
        "discriminators": {k: DISCRIMINATORS[k] for k in discriminators}, "windows": dict(WINDOWS),
        "simulator": simulated.provenance.get("simulator", "given"),
        "matching": simulated.provenance.get("matching", "none (simulated set given)"),
    }
    return RealismResult(classes=classes, wavelength=real.wavelength, medians=medians, settings=settings)


def _more_twins(real: SpectrumSet, total: int, seed: int) -> tuple[int, SpectrumSet]:
    """At least ``total`` twins, the same number of each real spectrum: (that number, the twins)."""
    per_real = int(np.ceil(total / len(real)))
    return per_real, simulate_matched(real, per_real=per_real, seed=seed)[1]


def _heads(seed: int, n_train: int) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    return {
        "pca_logistic": LogisticRegression(max_iter=5000),
        "pca_forest": RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
        "pca_knn": KNeighborsClassifier(n_neighbors=int(min(5, max(1, n_train // 2)))),
    }


def _cv_auc(names, X: np.ndarray, y: np.ndarray, folds: int, repeats: int, seed: int) -> dict[str, dict[str, float]]:
    """ROC AUC of each discriminator over repeated stratified K-fold: mean, std, min, max.

    The PCA is fitted once per training fold (never on the test fold) and its whitened
    components are shared by the heads.
    """
    from sklearn.base import clone
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import RepeatedStratifiedKFold

    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    scores: dict[str, list[float]] = {name: [] for name in names}
    for train, test in cv.split(X, y):
        k = int(max(1, min(20, train.size - 1)))
        pca = PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(X[train])
        z_train, z_test = pca.transform(X[train]), pca.transform(X[test])
        scale = np.sqrt(np.maximum(pca.explained_variance_, 1e-300))
        heads = _heads(seed, train.size)
        for name in names:
            model = clone(heads[name]).fit(z_train / scale, y[train])
            scores[name].append(float(roc_auc_score(y[test], model.predict_proba(z_test / scale)[:, 1])))
    return {
        name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)),
               "max": float(np.max(v)), "n_folds": len(v)}
        for name, v in scores.items()
    }


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _class_checks(real: SpectrumSet, feat_real: pd.DataFrame, label: str, seed: int) -> dict[str, Any]:
    """The :data:`CHECKS` of ``label``: real values against simulated twins of the checked subtypes."""
    from agnlens.features import spectral_features

    subtypes, names = CHECKS[label]
    _, sim = _more_twins(real, CHECK_TWINS, int(seed) + 1_000_003)
    sim = sim[np.flatnonzero(np.isin(sim.meta["subtype"].astype(str), subtypes))]
    feat_sim = spectral_features(sim) if len(sim) else pd.DataFrame({n: [] for n in names})
    rows = []
    for name in names:
        a = feat_real[name].to_numpy(float)
        b = feat_sim[name].to_numpy(float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        med = float(np.median(a)) if a.size else np.nan
        p16, p50, p84 = np.percentile(b, [16, 50, 84]) if b.size >= MIN_REAL else (np.nan,) * 3
        row: dict[str, Any] = {"feature": name, "real": [float(v) for v in a], "n_simulated": int(b.size)}
        # JSON-ready: None where there is nothing to compare
        row.update({k: float(v) if np.isfinite(v) else None for k, v in
                    (("real_median", med), ("simulated_p16", p16), ("simulated_p50", p50), ("simulated_p84", p84))})
        row.update(n_real_inside=int(np.sum((a >= p16) & (a <= p84))), passed=bool(p16 <= med <= p84))
        rows.append(row)
    return {"subtypes": list(subtypes), "n_simulated": len(sim), "passed": all(r["passed"] for r in rows),
            "rows": rows}


def _compare_features(real: pd.DataFrame, sim: pd.DataFrame) -> list[dict[str, Any]]:
    """Per feature: medians, KS statistic and p, Wasserstein distance on pooled ranks."""
    from scipy.stats import ks_2samp, wasserstein_distance

    from agnlens.features import FEATURES

    rows = []
    for name in FEATURES:
        a = real[name].to_numpy(float)
        b = sim[name].to_numpy(float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        row: dict[str, Any] = {"feature": name, "n_real": int(a.size), "n_simulated": int(b.size),
                               "median_real": float(np.median(a)) if a.size else None,
                               "median_simulated": float(np.median(b)) if b.size else None,
                               "ks": None, "ks_p": None, "wasserstein_rank": None}
        if a.size >= 3 and b.size >= 3:
            with warnings.catch_warnings():  # exact p may fall back to the asymptotic one: fine
                warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
                ks = ks_2samp(a, b)
            row["ks"], row["ks_p"] = float(ks.statistic), float(ks.pvalue)
            # W1 between the two samples after mapping both through their pooled empirical CDF:
            # scale-free, in [0, 1], and a ratio with a near-zero denominator cannot dominate it.
            both = np.sort(np.concatenate([a, b]))
            rank_a, rank_b = (np.searchsorted(both, v, side="right") / both.size for v in (a, b))
            row["wasserstein_rank"] = float(wasserstein_distance(rank_a, rank_b))
        rows.append(row)
    return rows
