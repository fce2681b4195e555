"""Fit the simulator's type 1 quasar priors (``agnlens.simulate.quasar.PRIORS``) to real spectra,
judged on objects the fit never saw.

The real type 1 spectra are split in two halves by a hash of their spec_id (never by content).
On half A the means of the priors are moved, a few rounds (the same twins' seeds every round),
until the medians of the simulated twins' measurements (:func:`agnlens.twins.simulate_matched`:
same redshift, S/N and flux) match the real ones: the continuum slope (→ α_λ), the [O III] 5008
EW (→ its log-mean at 10^44.5 erg/s), the excesses over the continuum at Hβ, Hα, Hγ and He I 5877
(→ broad Hβ EW, Hα/Hβ, Hγ/Hβ, He I/Hβ), the measured broad Hβ FWHM (→ the broad core's), the
blue end 3700–3720 Å (→ the small blue bump), the narrow FWHM, [N II]/Hα and [O III]/Hβ (→ the
narrow-line width and BPT centre), the [O III] profile's wing share and core offset (→ the
outflow wing, the narrow lines' offset and its spread), and the narrow [Ne III] 3870, [O III]
4364, [N II] 5756 and [Fe VII] 6088 over [O III] 5008 (→ those ratios: lines of the dense inner
narrow-line region, stronger in type 1). Then, on half B, with the start, the installed and the
fitted priors, each averaged over twins of three seeds: the two-sample KS statistic of each
measurement, and the ROC AUC of the two-sample test of :func:`agnlens.realism.realism` on the whole
spectrum and each window — the figures to report. Prints the fitted priors to copy into
``src/agnlens/simulate/quasar.py``.

``--only NAME[,NAME…]`` fits the named priors alone, from their start values, with the others held
at their installed values (a prior added to a simulator whose other priors are already fitted).

Usage (from the project root; needs the real files)::

    python scripts/fit_quasar_priors.py ../shared/data/sdss [--only alpha,blue_bump]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp

from agnlens.features import spectral_features
from agnlens.realism import REALISM_GRID, realism
from agnlens.simulate import quasar
from agnlens.simulate.narrow import INNER_NLR, SEYFERT_BRANCH
from agnlens.stages import read_inputs
from agnlens.twins import simulate_matched

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 6
#: Where the fit starts: the literature's values (see the docstring of :data:`quasar.PRIORS`).
START = {"alpha": (-1.56, 0.3), "oiii_ew": (1.2, 0.4), "hbeta_ew": (1.75, 0.2), "halpha_hbeta": (0.486, 0.08),
         "fwhm_hbeta": (3.66, 0.20), "blue_bump": (0.0, 0.15),
         "fwhm_narrow": (2.357, 0.186),  # the catalogue [O III] width of every class
         **SEYFERT_BRANCH,  # the narrow lines' centre on the BPT diagram
         "narrow_wing": (-0.52, 0.2),  # Mullaney et al. 2013: wings of 20–50 % of the flux
         "narrow_shift": (0.0, 100.0),  # km/s
         **INNER_NLR,  # the inner narrow-line region's lines at their Seyfert values
         "hgamma_hbeta": (-0.37, 0.05),  # broad Hγ/Hβ 0.35–0.5 (Vanden Berk et al. 2001)
         "hei_hbeta": (-1.07, 0.15)}  # broad He I 5877 / Hβ 0.05–0.12 (Vanden Berk et al. 2001)
#: Priors whose log-mean moves by the log-ratio of the real to the simulated median of a
#: measurement: prior → (measurement, measured against broad Hβ: then less broad Hβ's own ratio).
LOG_STEPS = {
    "oiii_ew": ("ew_oiii", False), "hbeta_ew": ("hbeta_excess", False), "halpha_hbeta": ("halpha_excess", True),
    "hgamma_hbeta": ("hgamma_excess", True), "hei_hbeta": ("hei_excess", True),
    "fwhm_hbeta": ("fwhm_broad_hbeta", False), "fwhm_narrow": ("fwhm_narrow", False),
    "nii_halpha": ("nii_halpha", False), "oiii_hbeta_narrow": ("oiii_hbeta_narrow", False),
    "narrow_wing": ("oiii_wing", False), "neiii_oiii": ("neiii_oiii", False), "fevii_oiii": ("fevii_oiii", False),
    "oiii_4364": ("oiii_4364", False), "nii_5756": ("nii_5756", False),
}
#: Priors fitted by secant steps on a measurement: prior → (measurement, first step, +1 if the
#: measurement rises with the prior else −1): the Balmer continuum and the blend above H10 set the
#: blue end.
SECANT_STEPS = {"blue_bump": ("blue_end", 0.2, 1)}
#: Twins per real spectrum (the same seed every round: common random numbers, so a round's change
#: is the priors' effect and not new noise).
PER_REAL = 3
#: Twin seeds of the judgement on half B (31 real spectra: one set of twins moves an AUC by ±0.04).
JUDGE_SEEDS = (100, 101, 102)


def _window(wl, flux, lo, hi):
    sel = (wl >= lo) & (wl <= hi)
    return np.median(flux[:, sel], axis=1)


def measure(spectra) -> dict[str, np.ndarray]:
    """Continuum slope, [O III] EW, and the mean excess over a power-law continuum at Hβ and Hα."""
    f = spectral_features(spectra)
    wl, flux = spectra.wavelength, np.asarray(spectra.flux, float)
    out = {name: f[name].to_numpy(float) for name in ("continuum_slope", "ew_oiii", "fwhm_broad_hbeta", "dn4000",
                                                      "blue_end", "fwhm_narrow", "nii_halpha", "oiii_hbeta_narrow",
                                                      "oiii_shift", "oiii_wing")}
    # narrow [Ne III] 3870 / [O III] 5008: each above a straight continuum through two windows beside it
    neiii, oiii = (_line_flux(wl, flux, *w) for w in (((3850, 3858), (3881, 3886), 3860, 3880),
                                                     ((4975, 4985), (5035, 5045), 4985, 5035)))
    out["neiii_oiii"] = np.where((neiii > 0) & (oiii > 0), neiii / oiii, np.nan)
    o4363 = _line_flux(wl, flux, (4352, 4357), (4372, 4378), 4358, 4370)
    out["oiii_4364"] = np.where(oiii > 0, o4363 / oiii, np.nan)
    n5756 = _line_flux(wl, flux, (5730, 5742), (5770, 5782), 5746, 5766)
    out["nii_5756"] = np.where(oiii > 0, n5756 / oiii, np.nan)
    fevii = _line_flux(wl, flux, (6050, 6070), (6105, 6125), 6075, 6100)
    out["fevii_oiii"] = np.where(oiii > 0, fevii / oiii, np.nan)
    # the continuum slope redward of 5100 Å, between two windows free of strong lines (judged, not fitted)
    red = _window(wl, flux, 6150, 6250) / _window(wl, flux, 5075, 5125)
    out["red_slope"] = np.log10(red) / np.log10(6200.0 / 5100.0)
    for name, (c1, c2, lo, hi) in {"hbeta_excess": ((4180, 4240), (5075, 5125), 4800, 4930),
                                   "halpha_excess": ((6150, 6250), (6740, 6800), 6480, 6650),
                                   "hgamma_excess": ((4200, 4230), (4440, 4460), 4250, 4420),
                                   "hei_excess": ((5650, 5700), (6000, 6050), 5780, 5950)}.items():
        a, b = _window(wl, flux, *c1), _window(wl, flux, *c2)
        x1, x2 = np.mean(c1), np.mean(c2)
        slope = np.log(b / a) / np.log(x2 / x1)
        sel = (wl >= lo) & (wl <= hi)
        cont = a[:, None] * (wl[sel][None, :] / x1) ** slope[:, None]
        out[name] = np.mean(flux[:, sel] / cont - 1.0, axis=1)
    return out


def _log_step(med: dict, name: str) -> float:
    """log10 of the real over the simulated median of a measurement (floored at 1e-4)."""
    real, sim = med[name]
    return float(np.log10(max(real, 1e-4) / max(sim, 1e-4)))


def _spread_ratio(real: np.ndarray, sim: np.ndarray) -> float:
    """Interquartile range of the real values over the simulated ones, kept within 0.5–2 a round."""
    iqr = [np.subtract(*np.nanpercentile(x, [75, 25])) for x in (real, sim)]
    return float(np.clip(iqr[0] / iqr[1], 0.5, 2.0)) if iqr[1] > 0 else 1.0


def _line_flux(wl, flux, c1, c2, lo, hi):
    a, b = _window(wl, flux, *c1), _window(wl, flux, *c2)
    sel = (wl >= lo) & (wl <= hi)
    x1, x2 = np.mean(c1), np.mean(c2)
    cont = a[:, None] + (b - a)[:, None] * (wl[sel][None, :] - x1) / (x2 - x1)
    return np.sum((flux[:, sel] - cont) * np.gradient(wl)[sel], axis=1)


def compare(real, priors, seed) -> tuple[dict, dict]:
    quasar.PRIORS.update(priors)
    _, sim = simulate_matched(real, per_real=PER_REAL, seed=seed)
    return measure(real), measure(sim)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=str(ROOT / ".." / "shared" / "data" / "sdss"),
                        help="folder with spectra/ and labels.csv")
    parser.add_argument("--only", type=lambda v: v.split(","), default=list(START),
                        help="comma-separated priors to fit; the others stay at their installed values")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(START))
    if unknown:
        parser.error(f"unknown priors {unknown}; choose from {list(START)}")
    data = args.data
    spectra, _ = read_inputs([str(Path(data, "spectra"))], grid=REALISM_GRID, labels=str(Path(data, "labels.csv")))
    spectra = spectra[spectra.labels == "type1"]
    half = np.array([int(hashlib.sha256(s.encode()).hexdigest(), 16) % 2 for s in spectra.spec_id])
    fit_on, judge_on = spectra[half == 0], spectra[half == 1]
    installed = dict(quasar.PRIORS)
    start = {name: START[name] if name in args.only else installed[name] for name in START}
    priors = dict(start)
    previous = None  # per secant-fitted prior, (its mean, its gap) in the last round
    for k in range(ROUNDS):
        real, sim = compare(fit_on, priors, seed=0)
        med = {n: (float(np.nanmedian(real[n])), float(np.nanmedian(sim[n]))) for n in real}
        print(f"round {k}: " + ", ".join(f"{n} real {r:.3f} sim {s:.3f}" for n, (r, s) in med.items()))
        d_hb = _log_step(med, "hbeta_excess")
        fitted = {name: (priors[name][0] + _log_step(med, m) - (d_hb if per_hbeta else 0.0), priors[name][1])
                  for name, (m, per_hbeta) in LOG_STEPS.items()}
        # secant steps once two rounds are known
        last = previous or {}
        previous = {}
        for name, (m, first, sign) in SECANT_STEPS.items():
            now, gap = priors[name][0], med[m][1] - med[m][0]
            step = (-first * sign * np.sign(gap) if name not in last or gap == last[name][1]
                    else -gap * (now - last[name][0]) / (gap - last[name][1]))
            previous[name] = (now, gap)
            fitted[name] = (now + float(np.clip(step, -2.5 * first, 2.5 * first)), priors[name][1])
        # shifts by the difference of the medians; the narrow lines' offset's spread by the ratio of
        # the interquartile ranges
        fitted["alpha"] = (priors["alpha"][0] + med["continuum_slope"][0] - med["continuum_slope"][1],
                           priors["alpha"][1])
        shift = priors["narrow_shift"]
        fitted["narrow_shift"] = (shift[0] + med["oiii_shift"][0] - med["oiii_shift"][1],
                                  shift[1] * _spread_ratio(real["oiii_shift"], sim["oiii_shift"]))
        priors = {name: fitted[name] if name in args.only else priors[name] for name in START}
    print(f"fitted on half A ({len(fit_on)} objects):")
    for n, v in priors.items():
        print(f"    {n!r}: ({v[0]:.3f}, {v[1]:.3f}),  # start {start[n][0]:.3f}")
    print(f"judged on half B ({len(judge_on)} objects), each figure the mean over twins of seeds {JUDGE_SEEDS}: the "
          "two-sample KS of each measurement, real vs simulated, and the ROC AUC of the two-sample test "
          "(agnlens.realism) on the whole spectrum and each window, mean and highest of its discriminators:")
    for name, pr in (("start", start), ("installed", installed), ("fitted", priors)):
        ks, auc = [], []
        for seed in JUDGE_SEEDS:
            real, sim = compare(judge_on, pr, seed=seed)
            ks.append({n: (ks_2samp(real[n][np.isfinite(real[n])], sim[n][np.isfinite(sim[n])]).statistic,
                           np.nanmedian(real[n]), np.nanmedian(sim[n])) for n in real})
            c = realism(judge_on, seed=seed, features=False).classes["type1"]
            auc.append({w: [v["mean"] for v in a.values()] for w, a in {"whole": c["auc"], **c["auc_windows"]}.items()})
        print(f"  {name:>9s}: " + ", ".join(
            f"{n} {np.mean([k[n][0] for k in ks]):.2f} (median {np.mean([k[n][1] for k in ks]):.3f} vs "
            f"{np.mean([k[n][2] for k in ks]):.3f})" for n in ks[0]))
        print(f"  {name:>9s}: ROC AUC " + ", ".join(
            f"{w} {np.mean([a[w] for a in auc]):.3f} (≤ {np.max(np.mean([a[w] for a in auc], axis=0)):.3f})"
            for w in auc[0]))
    quasar.PRIORS.update(installed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
