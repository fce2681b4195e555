"""Real SDSS spectra against the simulator: statistics, classification, robustness.

Run from the project root::

    .venv/bin/python benchmarks/real_sdss.py [--grid paper|balmer] [--out DIR] [--stats FILE]

What it does (issue "Real spectra", items 2, 3 and 5):

1. ``--stats FILE`` compares the 95 real spectra in ``../shared/data/sdss`` with
   ``simulate(3346, seed=0)`` per class (continuum slope, 4000 Å break, Ca K and Mg b depth, S/N,
   broad Hβ width, [O III]/Hβ, narrow-line strengths) and writes a Markdown table to FILE.
2. Ingests the 95 real spectra with their labels on ``--grid`` and classifies them with the
   default model (built fresh from the current simulator, cached in a temporary directory, or
   ``--cache DIR``) and with :class:`agnlens.models.baseline.PhysicsBaseline`; prints per-label
   results, their agreement, and writes a saliency figure for every real spectrum (of a scored
   label) that the SVM gets wrong to ``--out``.
3. Robustness: the share of predictions that flip under noise at the spectrum's own ivar and a
   ±0.1 % redshift error (:func:`agnlens.robustness.prediction_stability`).
4. A model trained on simulated + real spectra, scored by a 5-fold split of the real
   type 1 / type 2 / intermediate objects (grouped by object), beside the simulated-only model
   scored on the same folds.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "sdss"
SCORED = ("type1", "type2", "intermediate")
REAL_WEIGHT = 5
ORDER = ("type1", "type2", "intermediate", "non-agn", "ambiguous")


# ------------------------------------------------------------------------------ statistics
def _band(wl, f, good, lo, hi) -> float:
    sel = good & (wl >= lo) & (wl <= hi)
    return float(np.median(f[sel])) if sel.sum() >= 3 else np.nan


def spectrum_stats(spectrum) -> dict:
    """Model-free statistics of one observed-frame spectrum (rest frame, flux at 5100 Å = 1).

    Returns a dict: ``snr`` (median flux·√ivar, rest 4800–6600 Å), ``slope`` (α_λ of F_λ ∝ λ^α
    between the 4180–4240 and 5580–5640 Å windows of :data:`agnlens.lines.BANDS`), ``d4000``
    (Dn4000: F_ν 4000–4100 / 3850–3950 Å), ``cak_depth`` (1 − F(3927–3942) over the mean of
    3903–3923 and 3945–3955 Å), ``mgb_depth`` (1 − F(5160–5192) over the mean of 5142–5161 and
    5191–5206 Å, the Lick Mg b windows).
    """
    z = float(spectrum.meta["z"])
    wl = np.asarray(spectrum.wavelength, float) / (1 + z)
    flux = np.asarray(spectrum.flux, float)
    ivar = np.asarray(spectrum.ivar, float)
    good = (ivar > 0) & np.isfinite(flux)
    if spectrum.mask is not None:
        good &= ~np.asarray(spectrum.mask, bool)
    norm = _band(wl, flux, good, 5075, 5125)
    f = flux / norm
    sel = good & (wl >= 4800) & (wl <= 6600)
    snr = float(np.median(flux[sel] * np.sqrt(ivar[sel]))) if sel.any() else np.nan
    c42, c56 = _band(wl, f, good, 4180, 4240), _band(wl, f, good, 5580, 5640)
    slope = float(np.log(c42 / c56) / np.log(4210 / 5610)) if c42 > 0 and c56 > 0 else np.nan
    fnu = f * wl**2
    blue, red = _band(wl, fnu, good, 3850, 3950), _band(wl, fnu, good, 4000, 4100)
    d4000 = red / blue if blue > 0 else np.nan
    if wl[good].min() > 3860:
        d4000 = np.nan
    k = _band(wl, f, good, 3927, 3942)
    kc = 0.5 * (_band(wl, f, good, 3903, 3923) + _band(wl, f, good, 3945, 3955))
    m = _band(wl, f, good, 5160, 5192)
    mc = 0.5 * (_band(wl, f, good, 5142, 5161) + _band(wl, f, good, 5191, 5206))
    return {"snr": snr, "slope": slope, "d4000": d4000, "cak_depth": 1 - k / kc, "mgb_depth": 1 - m / mc}


def _real_raw():
    from agnlens.io import read_spectrum

    labels = pd.read_csv(DATA / "labels.csv", dtype={"spec_id": str})
    spectra = []
    for row in labels.itertuples():
        sp = read_spectrum(DATA / row.file)
        sp.meta["label"] = row.label
        sp.meta["z"] = float(row.z) if not np.isfinite(sp.meta.get("z", np.nan)) else sp.meta["z"]
        spectra.append(sp)
    return labels, spectra


def _baseline_table(spectra_raw, grid):
    """PhysicsBaseline measurements on ``grid`` (rejections dropped), indexed like the input."""
    from agnlens.models.baseline import PhysicsBaseline
    from agnlens.preprocess import preprocess

    for i, s in enumerate(spectra_raw):
        s.meta["_row"] = i
    ss, _ = preprocess(spectra_raw, grid)
    table = PhysicsBaseline(n_jobs=-1).fit(ss).measure(ss)
    table.index = ss.meta["_row"].to_numpy()
    return table


def stats_table(n_sim: int = 3346, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """Per-class medians (16th–84th percentiles) of real and simulated spectra; Markdown text."""
    from agnlens.simulate import simulate

    labels, real = _real_raw()
    sim = simulate(n_sim, seed=seed)
    rows = []
    for kind, spectra in (("real", real), ("sim", sim)):
        base = _baseline_table(spectra, "balmer").reindex(range(len(spectra)))
        for i, s in enumerate(spectra):
            st = spectrum_stats(s)
            b = base.loc[i]
            broad = bool(b["hb_broad"]) if b.notna()["hb_broad"] else False
            st.update(
                kind=kind, label=s.meta["label"],
                hb_fwhm_broad=b["hb_fwhm_broad"] if broad else np.nan,
                ha_fwhm_broad=b["ha_fwhm_broad"] if b.notna()["ha_broad"] and bool(b["ha_broad"]) else np.nan,
                hb_broad_velocity=b["hb_velocity_broad"] if broad else np.nan,
                r_oiii_hb=b["r_oiii_hb"], oiii_ew=b["oiii_flux"], hb_narrow_ew=b["hb_flux_narrow"],
                hb_broad_ew=b["hb_flux_broad"] if broad else np.nan,
                baseline=b["predicted_label"],
            )
            if kind == "sim":
                st["true_fwhm_broad"] = s.meta["fwhm_broad"] or np.nan
            rows.append(st)
    df = pd.DataFrame(rows)
    # labels.csv's independent quick fits (0 or ~1,200 km/s where no broad line was found)
    for col, src in (("cat_fwhm_hbeta", "fwhm_broad_hbeta_kms"), ("cat_fwhm_halpha", "fwhm_broad_halpha_kms")):
        df.loc[df["kind"] == "real", col] = labels[src].where(labels[src] > 1300).to_numpy()
    cols = ["snr", "slope", "d4000", "cak_depth", "mgb_depth", "hb_fwhm_broad", "ha_fwhm_broad",
            "hb_broad_velocity", "hb_broad_ew", "hb_narrow_ew", "oiii_ew", "r_oiii_hb"]
    lines = ["| class | set | n | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3)]
    for label in SCORED:
        for kind in ("real", "sim"):
            sub = df[(df["label"] == label) & (df["kind"] == kind)]
            cells = []
            for c in cols:
                v = sub[c].replace([np.inf, -np.inf], np.nan).dropna()
                if len(v) == 0:
                    cells.append("–")
                elif len(v) < 5:
                    cells.append(", ".join(_fmt(x) for x in sorted(v)))
                else:
                    q = np.percentile(v, [16, 50, 84])
                    cells.append(f"{_fmt(q[1])} ({_fmt(q[0])}–{_fmt(q[2])})")
            lines.append(f"| {label} | {kind} | {len(sub)} | " + " | ".join(cells) + " |")
    return df, "\n".join(lines)


def _fmt(x: float) -> str:
    ax = abs(x)
    return f"{x:.0f}" if ax >= 100 else f"{x:.1f}" if ax >= 10 else f"{x:.2f}"


# --------------------------------------------------------------------------- classification
def _ingest(grid):
    from agnlens.stages.reading import read_files as ingest

    spectra, summary = ingest([DATA / "spectra"], labels=DATA / "labels.csv", grid=grid, allow_zwarning=True)
    return spectra, summary


def _per_label(labels, pred) -> pd.DataFrame:
    t = pd.crosstab(pd.Series(labels, name="label"), pd.Series(pred, name="predicted"))
    return t.reindex([x for x in ORDER if x in t.index])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", default="paper", choices=("paper", "balmer"))
    ap.add_argument("--out", default=None, help="folder for saliency figures of the SVM's errors")
    ap.add_argument("--stats", default=None, help="write the real-vs-simulated statistics (Markdown) here")
    ap.add_argument("--cache", default=None, help="AGNLENS_CACHE for the default model (default: a temp dir)")
    ap.add_argument("--no-mixed", action="store_true", help="skip the simulated + real training experiment")
    ap.add_argument("--no-robustness", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a fixed linear SVM instead of the tuned default model")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    if args.stats:
        t0 = time.perf_counter()
        df, md = stats_table()
        Path(args.stats).write_text(md + "\n")
        df.to_csv(Path(args.stats).with_suffix(".csv"), index=False)
        print(md)
        print(f"stats in {time.perf_counter() - t0:.0f} s -> {args.stats}")
        return 0

    return evaluate_real(args)


def _default_model(args):
    """The default multiclass model, built from the current simulator (fresh unless --cache)."""
    if args.quick:
        from agnlens.models.svm import SpectrumSVC
        from agnlens.simulate import simulate_set

        sim = simulate_set(3346, seed=0, grid=args.grid)
        model = SpectrumSVC(kernel="linear", C=0.1, class_weight="balanced", random_state=0)
        return model.fit(np.asarray(sim.flux, float), sim.labels), {"quick": True}
    cache = args.cache or tempfile.mkdtemp(prefix="agnlens-cache-")
    os.environ["AGNLENS_CACHE"] = cache
    from agnlens.models import default as default_mod

    if args.grid != "paper":
        default_mod.DEFAULT_RECIPE["grid"] = args.grid  # same recipe on the other grid
    return default_mod.default_model("multiclass")


def _print_table(title, labels, pred):
    print(f"\n{title}")
    print(_per_label(labels, pred).to_string())


def _recall_line(name, labels, pred) -> dict:
    t1 = labels == "type1"
    t2 = labels == "type2"
    out = {
        "type1_recall": float(np.mean(pred[t1] == "type1")),
        "type1_right": int(np.sum(pred[t1] == "type1")),
        "type1_n": int(t1.sum()),
        "type2_called_type1": int(np.sum(pred[t2] == "type1")),
    }
    print(f"{name}: type-1 recall {out['type1_right']}/{out['type1_n']} = {out['type1_recall']:.3f}; "
          f"real type 2 called type 1: {out['type2_called_type1']}")
    return out


def evaluate_real(args) -> int:
    from agnlens.models.baseline import PhysicsBaseline

    t0 = time.perf_counter()
    real, summary = _ingest(args.grid)
    labels = np.asarray(real.labels).astype(str)
    print(f"ingested {len(real)} real spectra on the {args.grid} grid "
          f"({len(summary.rejected) if hasattr(summary, 'rejected') else '?'} rejected)")
    model, meta = _default_model(args)
    X = np.asarray(real.flux, float)
    svm_pred = np.asarray(model.predict(X)).astype(str)
    test = meta.get("test", {})
    if test:
        print(f"default model: {meta.get('best_params')}; simulated test macro F1 {test.get('f1'):.3f}, "
              f"validation {meta.get('validation', {}).get('f1'):.3f}")
    base = PhysicsBaseline().fit(real)
    btab = base.measure(real)
    base_pred = btab["label"].to_numpy().astype(str)
    _print_table("SVM (default model, trained on simulated spectra only): rows true label, columns predicted",
                 labels, svm_pred)
    _print_table("Physics baseline: rows true label, columns predicted", labels, base_pred)
    print()
    res = {"svm": _recall_line("SVM     ", labels, svm_pred), "baseline": _recall_line("baseline", labels, base_pred)}
    scored = np.isin(labels, SCORED)
    agree = svm_pred == base_pred
    print(f"SVM and baseline agree on {agree.sum()}/{len(agree)} real spectra "
          f"({agree[scored].sum()}/{scored.sum()} of the labelled type 1/2/intermediate)")
    wrong = np.flatnonzero(scored & (svm_pred != labels))
    frame = pd.DataFrame({"spec_id": real.spec_id, "label": labels, "svm": svm_pred, "baseline": base_pred,
                          "z": real.meta["z"].to_numpy(), "snr": real.meta["snr"].to_numpy(),
                          "hb_fwhm_broad": btab["hb_fwhm_broad"].round(0), "r_oiii_hb": btab["r_oiii_hb"].round(2)})
    if len(wrong):
        print("\nSVM errors:")
        print(frame.iloc[wrong].to_string(index=False))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / f"real_predictions_{args.grid}.csv", index=False)
        if len(wrong):
            from matplotlib.figure import Figure

            from agnlens.explain.attribution import saliency

            sal = saliency(model, X[wrong], wavelength=real.wavelength, method="gradient",
                           spec_id=list(np.asarray(real.spec_id)[wrong]), labels=list(labels[wrong]))
            for k, i in enumerate(wrong):
                fig = Figure(figsize=(8, 3.2), layout="constrained")
                sal.plot(k, ax=fig.add_subplot())
                name = out / f"saliency_{args.grid}_{real.spec_id[i]}.png"
                fig.savefig(name, dpi=60)
            print(f"wrote {len(wrong)} saliency figures to {out}")

    if not args.no_robustness:
        from agnlens.io import read_spectrum
        from agnlens.robustness import prediction_stability

        raw = []
        table = pd.read_csv(DATA / "labels.csv", dtype={"spec_id": str}).set_index("spec_id")
        for sid in real.spec_id:
            sp = read_spectrum(DATA / table.loc[sid, "file"])
            sp.meta["label"] = table.loc[sid, "label"]
            raw.append(sp)
        for name, est in (("SVM", model), ("baseline", base)):
            st = prediction_stability(est, raw, grid=args.grid, n_draws=5, seed=0)
            print(f"robustness {name}: {st.attrs['flip_fraction']:.3f} of perturbed predictions flip; "
                  f"{st.attrs['spectra_flipping']:.3f} of spectra flip at least once "
                  f"(5 draws: own-ivar noise, z·(1±0.001))")
            res[f"robustness_{name}"] = {k: float(st.attrs[k]) for k in ("flip_fraction", "spectra_flipping")}

    if not args.no_mixed:
        res["mixed"] = mixed_training(real, labels, args, meta.get("best_params"))
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    return 0


def mixed_training(real, labels, args, best_params=None) -> dict:
    """Simulated-only vs simulated + real training, scored on 5 folds of the real objects.

    Both arms use the default model's tuned kernel, C, gamma and class weight (``best_params``;
    a linear SVM with C = 0.1 when there are none), without probability calibration.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    from agnlens.models.svm import SpectrumSVC
    from agnlens.simulate import simulate_set

    sim = simulate_set(3346, seed=0, grid=args.grid)
    Xs, ys = np.asarray(sim.flux, float), np.asarray(sim.labels).astype(str)
    keep = np.flatnonzero(np.isin(labels, SCORED))
    Xr, yr = np.asarray(real.flux, float)[keep], labels[keep]
    groups = np.asarray(real.spec_id)[keep]  # one spectrum per object in this set
    # 2 type 2 and 3 intermediates: stratify so that each fold sees at most one of them
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    params = {"kernel": "linear", "C": 0.1, "class_weight": "balanced"}
    if best_params:
        params = {k: best_params[k] for k in ("kernel", "C", "gamma", "degree", "class_weight")
                  if best_params.get(k) is not None}
    only = SpectrumSVC(**params, calibration_cv=None).fit(Xs, ys)
    pred_only = np.empty(len(yr), dtype=object)
    pred_mix = np.empty(len(yr), dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" of the 5 folds
        splits = list(folds.split(Xr, yr, groups))
    for tr, te in splits:
        # each real training spectrum repeated REAL_WEIGHT times: for an SVM the same optimum as
        # a sample weight (its C scaled), so ~65 real spectra are not drowned by 3,346 simulated
        rep = np.repeat(tr, REAL_WEIGHT)
        mix = SpectrumSVC(**params, calibration_cv=None)
        mix.fit(np.vstack([Xs, Xr[rep]]), np.concatenate([ys, yr[rep]]))
        pred_mix[te] = mix.predict(Xr[te])
        pred_only[te] = only.predict(Xr[te])
    print("\nsimulated + real training, 5 folds of the real type 1/2/intermediate objects "
          f"({params}; the same folds scored with the simulated-only SVM of the same settings):")
    _print_table("simulated only", yr, pred_only.astype(str))
    _print_table(f"simulated + real (training folds, each real spectrum x{REAL_WEIGHT})", yr, pred_mix.astype(str))
    return {"sim_only": _recall_line("sim only      ", yr, pred_only.astype(str)),
            "sim_plus_real": _recall_line("sim + real    ", yr, pred_mix.astype(str))}


if __name__ == "__main__":
    sys.exit(main())
