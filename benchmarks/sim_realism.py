"""How far is the simulator from real SDSS spectra? A quick classifier two-sample test and medians.

Run from the project root::

    .venv/bin/python benchmarks/sim_realism.py [--per-real 5] [--seed 0]

For every real spectrum of ``../shared/data/sdss`` (labels in its ``labels.csv``) the simulator
makes ``--per-real`` spectra of the same class at the same redshift and S/N (``snr`` = the real
``median_snr_4800_6600``). Both sets are put on the ``paper`` and ``balmer`` rest-frame grids
(``agnlens.preprocess``; masked pixels filled by interpolation) and a discriminator — PCA(20) +
logistic regression, standardised — is cross-validated (5-fold stratified, 3 repeats) to tell
real from simulated type 1. ROC AUC 0.5 means indistinguishable, 1.0 fully separable.

It also prints the medians the simulator's issue tracks (real vs simulated, per class): narrow
Hα/Hβ and [N II]/Hα (``PhysicsBaseline.measure``), Dn4000, the median normalised flux at
3720–3745 Å (the Balmer pseudo-continuum rise), the Ca H depth of the class median spectrum and
the [O III] 5008 peak over the continuum.

This is a quick check for the simulator's authors; ``agnlens realism`` is the full tool. The real
labels are only used to pick the class; nothing in the simulator is fitted to them.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "sdss"
CLASSES = ("type1", "type2", "intermediate")


def _filled(ss) -> np.ndarray:
    """Flux with bad pixels (ivar 0) replaced by linear interpolation along the row."""
    flux = np.array(ss.flux, dtype=float)
    good = (np.asarray(ss.ivar) > 0) & np.isfinite(flux)
    x = np.arange(flux.shape[1])
    for i in range(len(flux)):
        if good[i].sum() > 10 and not good[i].all():
            flux[i] = np.interp(x, x[good[i]], flux[i][good[i]])
    return np.nan_to_num(flux)


def two_sample_auc(real: np.ndarray, sim: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Mean and sd of the cross-validated ROC AUC of PCA(20) + logistic regression."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.vstack([real, sim])
    y = np.r_[np.ones(len(real)), np.zeros(len(sim))]
    clf = make_pipeline(StandardScaler(), PCA(20, random_state=seed),
                        LogisticRegression(max_iter=2000, class_weight="balanced"))
    cv = RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=seed)
    scores = cross_val_score(clf, X, y, cv=cv, scoring="roc_auc")
    return float(scores.mean()), float(scores.std())


def _band(wl, f, lo, hi):
    sel = (wl >= lo) & (wl <= hi)
    return np.nanmedian(f[:, sel], axis=1)


def medians(ss_paper, ss_balmer, base) -> dict:
    """The tracked statistics of one set (arrays per spectrum, medians taken by the caller)."""
    wl = ss_paper.wavelength
    f = _filled(ss_paper)
    fnu = f * wl**2
    d4000 = _band(wl, fnu, 4000, 4100) / _band(wl, fnu, 3850, 3950)
    rise = _band(wl, f, 3729, 3745)
    med = np.median(f, axis=0)
    cah = float(np.interp(3969.6, wl, med) / (0.5 * (np.interp(3955, wl, med) + np.interp(3990, wl, med))))
    wb = ss_balmer.wavelength
    fb = _filled(ss_balmer)
    oiii_peak = (fb[:, (wb > 5000) & (wb < 5016)].max(axis=1) / _band(wb, fb, 5050, 5150))
    ha_hb = np.array(base["ha_flux_narrow"] / base["hb_flux_narrow"], dtype=float)
    ha_hb[~np.isfinite(ha_hb) | (base["hb_flux_narrow"].to_numpy() <= 0)] = np.nan
    return {"narrow Ha/Hb": ha_hb, "[NII]/Ha": np.array(base["nii_ha"], dtype=float), "Dn4000": d4000,
            "flux 3729-3745": rise, "CaH depth (median spec)": np.array([cah]), "[OIII] peak/cont": oiii_peak}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-real", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from agnlens import AgnlensWarning
    from agnlens.io import read_spectrum
    from agnlens.models.baseline import PhysicsBaseline
    from agnlens.preprocess import preprocess
    from agnlens.simulate import simulate

    warnings.simplefilter("ignore", AgnlensWarning)
    labels = pd.read_csv(DATA / "labels.csv", dtype={"spec_id": str})
    labels = labels[labels["label"].isin(CLASSES)]
    t0 = time.perf_counter()
    out = {}
    for cls in CLASSES:
        rows = labels[labels["label"] == cls]
        real = [read_spectrum(DATA / f) for f in rows["file"]]
        for sp, z in zip(real, rows["z"]):
            sp.meta["z"] = float(z)
        sims = []
        for k, r in enumerate(rows.itertuples()):
            sims += simulate(counts={cls: args.per_real}, seed=args.seed * 100000 + 10 * k + CLASSES.index(cls),
                             redshift=(r.z, r.z), snr=float(r.median_snr_4800_6600))
        sets = {}
        for name, spectra in (("real", real), ("sim", sims)):
            paper, _ = preprocess(spectra, "paper")
            balmer, _ = preprocess(spectra, "balmer")
            base = PhysicsBaseline(n_jobs=1).fit(balmer).measure(balmer)
            sets[name] = (paper, balmer, base)
        out[cls] = {name: medians(*v) for name, v in sets.items()}
        if cls == "type1":
            for grid_i, gname in ((0, "paper"), (1, "balmer")):
                auc = two_sample_auc(_filled(sets["real"][grid_i]), _filled(sets["sim"][grid_i]), args.seed)
                print(f"type1 two-sample ROC AUC, {gname} grid (real {len(sets['real'][grid_i])} vs "
                      f"SIMULATED {len(sets['sim'][grid_i])}): {auc[0]:.3f} ± {auc[1]:.3f}")
    print("\nmedians, real vs SIMULATED (n real / n sim)")
    for cls, d in out.items():
        for key in d["real"]:
            r, s = d["real"][key], d["sim"][key]
            print(f"  {cls:12s} {key:26s} {np.nanmedian(r):7.3f} vs {np.nanmedian(s):7.3f}   "
                  f"({np.isfinite(r).sum()} / {np.isfinite(s).sum()})")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
