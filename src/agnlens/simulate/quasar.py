"""Type 1 quasars: luminosity, host fraction in the fibre, broad profiles, the [O III] Baldwin
effect, and the priors fitted to real quasar spectra (:data:`PRIORS`).

* Luminosity: λL_λ(5100 Å) of the total (host + AGN) light in the fibre from the drawn flux at
  rest 5100 Å and the luminosity distance of a flat ΛCDM cosmology (H0 = 70 km/s/Mpc, Ωm = 0.3).
* Host fraction: Shen et al. (2011, ApJS 194, 45) eq. 1, from the SDSS 3" fibre spectra of
  quasars (Vanden Berk et al. 2006, AJ 131, 84): L_host/L_AGN at 5100 Å =
  0.8052 − 1.5502x + 0.9121x² − 0.1577x³ with x = log10(λL_5100,total / erg s⁻¹) − 44, for
  x < 1.053, and ≈ 0 above; below x = −1 (the fainter end of the quasars it was measured on) it is
  held at its x = −1 value (host/AGN 3.4) rather than extrapolated; the relation holds on average,
  its scatter taken as 0.25 dex, and the host share stays ≤ 0.8. Through
  the luminosity it follows the fibre's physical aperture (a faint low-z Seyfert 1 is mostly host
  light, a luminous z ≈ 0.5 quasar hardly any).
* Broad profiles (Sulentic et al. 2000, ARA&A 38, 521; Sulentic et al. 2002, ApJ 566, L71):
  population A (FWHM Hβ < 4,000 km/s) Lorentzian-like — a core and symmetric wings 2–3× wider with
  20–40 % of the flux; population B — the broad component and a very broad one 1.5–2.5× wider,
  redshifted by ~+2,000 km/s (N(2000, 800)), with 20–50 % of the flux.
* [O III] 5008: the equivalent width against the AGN continuum falls with luminosity, the
  [O III] Baldwin effect, EW ∝ L^−0.2 (Zhang et al. 2013, ApJ 762, 51; Stern & Laor 2013, MNRAS
  431, 836), 0.4 dex of scatter (eigenvector 1: Boroson & Green 1992, ApJS 80, 109), log-mean
  ``PRIORS["oiii_ew"]`` at λL_5100 = 10^44.5 erg/s.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PRIORS", "broad_profile", "host_fraction", "log_l5100", "luminosity_distance_cm", "oiii_ew"]

#: Type 1 quasar priors, each (mean, sd), the means fitted to the real type 1 spectra beside the
#: project by ``scripts/fit_quasar_priors.py`` (on half of the objects, judged on the other half;
#: the widths are the literature's). The continuum: AGN slope α_λ (start −1.56: Vanden Berk et al.
#: 2001, AJ 122, 549; the optical continuum of quasars in SDSS fibres is redder than that UV
#: slope); log10 of the small blue bump, a factor on the Balmer continuum and the blended Balmer
#: lines above H10 (:data:`.agn.BALMER_BLEND`; start 0). The broad lines: log10 broad Hβ EW (Å;
#: start 1.75) and FWHM of its core (km/s; 3.66, Shen et al. 2011), log10 broad Hα/Hβ (0.486 =
#: log 3.06, Dong et al. 2008, MNRAS 383, 581), Hγ/Hβ (−0.37; Vanden Berk et al. 2001) and He I
#: 5877/Hβ (−1.07; the other He I lines follow it, :data:`.agn.HE_I_RATIOS`). The narrow lines:
#: log10 [O III] 5008 EW (Å, against the AGN continuum at λL_5100 = 10^44.5 erg/s; 1.2); log10
#: intrinsic FWHM (km/s; one narrow-line region for every class, fitted on the type 1, the class
#: with real spectra enough; start 2.357, the intermediate catalogue's [O III]); the BPT centre,
#: log10 [N II] 6585/Hα and [O III] 5008/Hβ (Seyfert branch 0.0, 0.8, Kewley et al. 2006;
#: :func:`.narrow.draw_narrow` kind "type1" keeps the branch's spreads and boundaries around it);
#: log10 share of the outflow wing on every narrow line (−0.52; Mullaney et al. 2013, MNRAS 433,
#: 622); their offset from the catalogue redshift (km/s, mean and spread both fitted; SDSS
#: measures quasar redshifts with broad-line templates, Hewett & Wild 2010, MNRAS 405, 2302); and
#: the lines of the dense inner narrow-line region, in view in type 1 (Nagao, Murayama & Taniguchi
#: 2001, ApJ 549, 155): log10 [Ne III] 3870/[O III] 5008 (start −1.0, Ho 2005), [Fe VII]
#: 6088/[O III] 5008 (−1.6, Gelbord et al. 2009), [O III] 4364/5008 (−1.7) and [N II] 5756/6585
#: (−1.8; Osterbrock & Ferland 2006). On the unseen half the KS distance of most fitted
#: measurements falls (means over three twin seeds: e.g. the blue end 0.51 → 0.17, broad Hβ
#: 0.45 → 0.16, narrow FWHM 0.40 → 0.11, He I 0.66 → 0.27); the narrow [N II]/Hα's stays near 0.5
#: (its real medians in the two halves differ by 0.22 dex), and [O III] 4364, [Fe VII] and the
#: narrow lines' offset do not improve there (0.20 → 0.21, 0.23 → 0.28, 0.29 → 0.31: the halves
#: differ; docs/simulator.md gives the table).
PRIORS: dict[str, tuple[float, float]] = {
    "alpha": (-1.32, 0.3),
    "oiii_ew": (1.475, 0.4),
    "hbeta_ew": (2.059, 0.2),
    "halpha_hbeta": (0.594, 0.08),
    "fwhm_hbeta": (3.752, 0.2),
    "blue_bump": (0.442, 0.15),
    "fwhm_narrow": (2.51, 0.186),
    "nii_halpha": (-0.476, 0.15),
    "oiii_hbeta_narrow": (0.868, 0.22),
    "narrow_wing": (-0.451, 0.2),
    "narrow_shift": (-9.961, 104.611),
    "neiii_oiii": (-0.802, 0.15),
    "fevii_oiii": (-1.83, 0.3),
    "hgamma_hbeta": (-0.426, 0.05),
    "oiii_4364": (-1.205, 0.2),
    "nii_5756": (-1.417, 0.2),
    "hei_hbeta": (-0.73, 0.15),
}
#: FWHM (km/s) that separates population A from B (Sulentic et al. 2000, ARA&A 38, 521).
POP_AB_FWHM = 4000.0

_C_KMS = 299_792.458
_H0, _OMEGA_M = 70.0, 0.3
_MPC_CM = 3.0856775814913673e24


def luminosity_distance_cm(z: float) -> float:
    """Luminosity distance (cm) at redshift ``z`` in flat ΛCDM (H0 = 70, Ωm = 0.3)."""
    zz = np.linspace(0.0, float(z), 257)
    inv_e = 1.0 / np.sqrt(_OMEGA_M * (1.0 + zz) ** 3 + 1.0 - _OMEGA_M)
    comoving = _C_KMS / _H0 * float(np.sum(0.5 * (inv_e[1:] + inv_e[:-1])) * (zz[1] - zz[0]))  # trapezoid rule
    return float((1.0 + z) * comoving * _MPC_CM)


def log_l5100(z: float, flux_5100: float) -> float:
    """log10 λL_λ(5100 Å) (erg/s) of a source whose flux density at rest 5100 Å, observed at
    5100·(1+z) Å, is ``flux_5100``/(1+z) in 1e-17 erg/s/cm²/Å (the simulator's ``flux_scale``)."""
    d = luminosity_distance_cm(max(float(z), 1e-4))
    return float(np.log10(4.0 * np.pi * d**2 * flux_5100 * 1e-17 * 5100.0))


def host_fraction(rng: np.random.Generator, log_l: float) -> float:
    """Host share of the fibre's light at 5100 Å for a quasar of total λL_5100 = 10^log_l."""
    x = max(log_l - 44.0, -1.0)
    ratio = 0.8052 - 1.5502 * x + 0.9121 * x**2 - 0.1577 * x**3 if x < 1.053 else 0.0
    ratio = max(ratio, 0.0) * 10.0 ** rng.normal(0.0, 0.25)
    return float(min(ratio / (1.0 + ratio), 0.8))


def oiii_ew(rng: np.random.Generator, log_l_agn: float) -> float:
    """[O III] 5008 equivalent width (Å) against the AGN continuum at 5100 Å."""
    mean, sd = PRIORS["oiii_ew"]
    return float(10.0 ** (mean - 0.2 * (log_l_agn - 44.5) + rng.normal(0.0, sd)))


def broad_profile(rng: np.random.Generator, fwhm_hbeta: float) -> tuple[float, float, float]:
    """(flux share, width / core width, velocity offset km/s) of the second broad component."""
    if fwhm_hbeta < POP_AB_FWHM:
        return float(rng.uniform(0.2, 0.4)), float(rng.uniform(2.0, 3.0)), float(rng.normal(0.0, 300.0))
    return float(rng.uniform(0.2, 0.5)), float(rng.uniform(1.5, 2.5)), float(rng.normal(2000.0, 800.0))
