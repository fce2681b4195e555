"""Fit the simulator's type 1 quasar priors (``agnlens.simulate.quasar.PRIORS``) to real spectra,
judged on objects the fit never saw.

The real type 1 spectra are split in two halves by a hash of their spec_id (never by content).
On half A the means of six priors are moved, a few rounds (the same twins' seeds every round),
until the medians of the simulated twins' measurements (:func:`agnlens.realism.simulate_matched`:
same redshift and S/N) match the real ones: the continuum slope (→ α_λ), the [O III] 5008 EW (→
its log-mean at 10^44.5 erg/s), the broad Hβ excess over the continuum (→ log broad Hβ EW), the
Hα excess (→ log broad Hα/Hβ), the measured broad Hβ FWHM (→ log FWHM of the broad core),
Dn4000 (→ the strength of the small blue bump), the narrow FWHM (→ its log-mean) and the narrow
[N II]/Hα and [O III]/Hβ (→ the centre of the type 1 narrow lines on the BPT diagram).
Then, on half B, the two-sample KS statistic of each measurement with the start priors and the
fitted ones — the figure to report. Prints the fitted priors to copy into
``src/agnlens/simulate/quasar.py``.

Usage (from the project root; needs the real files)::

    python scripts/fit_quasar_priors.py ../shared/data/sdss
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp

from agnlens.features import spectral_features
from agnlens.realism import REALISM_GRID, simulate_matched
from agnlens.simulate import quasar
from agnlens.simulate.narrow import SEYFERT_BRANCH
from agnlens.stages import read_inputs

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 5
#: Where the fit starts: the literature's values (see the docstring of :data:`quasar.PRIORS`).
START = {"alpha": (-1.56, 0.3), "oiii_ew": (1.2, 0.4), "hbeta_ew": (1.75, 0.2), "halpha_hbeta": (0.486, 0.08),
         "fwhm_hbeta": (3.66, 0.20), "blue_bump": (0.0, 0.15),
         "fwhm_narrow": (2.357, 0.186),  # the catalogue [O III] width of every class
         **SEYFERT_BRANCH}  # the narrow lines' centre on the BPT diagram
#: Twins per real spectrum (the same seed every round: common random numbers, so a round's change
#: is the priors' effect and not new noise).
PER_REAL = 3


def _window(wl, flux, lo, hi):
    sel = (wl >= lo) & (wl <= hi)
    return np.median(flux[:, sel], axis=1)


def measure(spectra) -> dict[str, np.ndarray]:
    """Continuum slope, [O III] EW, and the mean excess over a power-law continuum at Hβ and Hα."""
    f = spectral_features(spectra)
    wl, flux = spectra.wavelength, np.asarray(spectra.flux, float)
    out = {name: f[name].to_numpy(float) for name in ("continuum_slope", "ew_oiii", "fwhm_broad_hbeta", "dn4000",
                                                      "fwhm_narrow", "nii_halpha", "oiii_hbeta_narrow")}
    for name, (c1, c2, lo, hi) in {"hbeta_excess": ((4180, 4240), (5075, 5125), 4800, 4930),
                                   "halpha_excess": ((6150, 6250), (6740, 6800), 6480, 6650)}.items():
        a, b = _window(wl, flux, *c1), _window(wl, flux, *c2)
        x1, x2 = np.mean(c1), np.mean(c2)
        slope = np.log(b / a) / np.log(x2 / x1)
        sel = (wl >= lo) & (wl <= hi)
        cont = a[:, None] * (wl[sel][None, :] / x1) ** slope[:, None]
        out[name] = np.mean(flux[:, sel] / cont - 1.0, axis=1)
    return out


def compare(real, priors, seed) -> tuple[dict, dict]:
    quasar.PRIORS.update(priors)
    _, sim = simulate_matched(real, per_real=PER_REAL, seed=seed)
    return measure(real), measure(sim)


def main(data: str = str(ROOT / ".." / "shared" / "data" / "sdss")) -> int:
    spectra, _ = read_inputs([str(Path(data, "spectra"))], grid=REALISM_GRID, labels=str(Path(data, "labels.csv")))
    spectra = spectra[spectra.labels == "type1"]
    half = np.array([int(hashlib.sha256(s.encode()).hexdigest(), 16) % 2 for s in spectra.spec_id])
    fit_on, judge_on = spectra[half == 0], spectra[half == 1]
    installed = dict(quasar.PRIORS)
    start = dict(START)
    priors = dict(start)
    previous = None  # (blue bump, simulated − real Dn4000) of the last round: a secant step
    for k in range(ROUNDS):
        real, sim = compare(fit_on, priors, seed=0)
        med = {n: (float(np.nanmedian(real[n])), float(np.nanmedian(sim[n]))) for n in real}
        print(f"round {k}: " + ", ".join(f"{n} real {r:.3f} sim {s:.3f}" for n, (r, s) in med.items()))
        a, o, h, r, w, b, n, x, y = (priors[k] for k in ("alpha", "oiii_ew", "hbeta_ew", "halpha_hbeta", "fwhm_hbeta",
                                                         "blue_bump", "fwhm_narrow", "nii_halpha", "oiii_hbeta_narrow"))
        gap = med["dn4000"][1] - med["dn4000"][0]
        # a stronger bump lowers Dn4000; a secant step once two rounds are known, 0.2 dex first
        step = 0.2 if previous is None or gap == previous[1] else -gap * (b[0] - previous[0]) / (gap - previous[1])
        previous = (b[0], gap)
        d_hb = np.log10(med["hbeta_excess"][0] / med["hbeta_excess"][1])
        priors = {
            "alpha": (a[0] + med["continuum_slope"][0] - med["continuum_slope"][1], a[1]),
            "oiii_ew": (o[0] + np.log10(med["ew_oiii"][0] / med["ew_oiii"][1]), o[1]),
            "hbeta_ew": (h[0] + d_hb, h[1]),
            "halpha_hbeta": (r[0] + np.log10(med["halpha_excess"][0] / med["halpha_excess"][1]) - d_hb, r[1]),
            "fwhm_hbeta": (w[0] + np.log10(med["fwhm_broad_hbeta"][0] / med["fwhm_broad_hbeta"][1]), w[1]),
            "blue_bump": (b[0] + float(np.clip(step, -0.5, 0.5)), b[1]),
            "fwhm_narrow": (n[0] + np.log10(med["fwhm_narrow"][0] / med["fwhm_narrow"][1]), n[1]),
            "nii_halpha": (x[0] + np.log10(med["nii_halpha"][0] / med["nii_halpha"][1]), x[1]),
            "oiii_hbeta_narrow": (y[0] + np.log10(med["oiii_hbeta_narrow"][0] / med["oiii_hbeta_narrow"][1]), y[1]),
        }
    print(f"fitted on half A ({len(fit_on)} objects):")
    for n, v in priors.items():
        print(f"    {n!r}: ({v[0]:.3f}, {v[1]:.3f}),  # start {start[n][0]:.3f}")
    print(f"judged on half B ({len(judge_on)} objects), two-sample KS real vs simulated:")
    for name, pr in (("start", start), ("fitted", priors)):
        real, sim = compare(judge_on, pr, seed=100)
        print(f"  {name:>6s}: " + ", ".join(
            f"{n} {ks_2samp(real[n][np.isfinite(real[n])], sim[n][np.isfinite(sim[n])]).statistic:.2f} "
            f"(median {np.nanmedian(real[n]):.3f} vs {np.nanmedian(sim[n]):.3f})" for n in real))
    quasar.PRIORS.update(installed)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
