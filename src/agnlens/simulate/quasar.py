"""Type 1 quasars: luminosity, host fraction in the fibre and the [O III] Baldwin effect.

* Luminosity: λL_λ(5100 Å) of the total (host + AGN) light in the fibre from the drawn flux at
  rest 5100 Å and the luminosity distance of a flat ΛCDM cosmology (H0 = 70 km/s/Mpc, Ωm = 0.3).
* Host fraction: Shen et al. (2011, ApJS 194, 45) eq. 1, from the SDSS 3" fibre spectra of
  quasars (Vanden Berk et al. 2006, AJ 131, 84): L_host/L_AGN at 5100 Å =
  0.8052 − 1.5502x + 0.9121x² − 0.1577x³ with x = log10(λL_5100,total / erg s⁻¹) − 44, for
  x < 1.053, and ≈ 0 above; the relation holds on average, its scatter taken as 0.25 dex. Through
  the luminosity it follows the fibre's physical aperture (a faint low-z Seyfert 1 is mostly host
  light, a luminous z ≈ 0.5 quasar hardly any).
* [O III] 5008: the equivalent width against the AGN continuum falls with luminosity, the
  [O III] Baldwin effect, EW ∝ L^−0.2 (Zhang et al. 2013, ApJ 762, 51; Stern & Laor 2013, MNRAS
  431, 836), 0.4 dex of scatter (eigenvector 1: Boroson & Green 1992, ApJS 80, 109), median 16 Å at
  λL_5100 = 10^44.5 erg/s (SDSS quasars at z < 0.8, Shen et al. 2011).
"""

from __future__ import annotations

import numpy as np

__all__ = ["host_fraction", "log_l5100", "luminosity_distance_cm", "oiii_ew"]

_C_KMS = 299_792.458
_H0, _OMEGA_M = 70.0, 0.3
_MPC_CM = 3.0856775814913673e24


def luminosity_distance_cm(z: float) -> float:
    """Luminosity distance (cm) at redshift ``z`` in flat ΛCDM (H0 = 70, Ωm = 0.3)."""
    zz = np.linspace(0.0, float(z), 257)
    inv_e = 1.0 / np.sqrt(_OMEGA_M * (1.0 + zz) ** 3 + 1.0 - _OMEGA_M)
    comoving = _C_KMS / _H0 * np.trapezoid(inv_e, zz)
    return float((1.0 + z) * comoving * _MPC_CM)


def log_l5100(z: float, flux_5100: float) -> float:
    """log10 λL_λ(5100 Å) (erg/s) of a source whose flux density at rest 5100 Å, observed at
    5100·(1+z) Å, is ``flux_5100``/(1+z) in 1e-17 erg/s/cm²/Å (the simulator's ``flux_scale``)."""
    d = luminosity_distance_cm(max(float(z), 1e-4))
    return float(np.log10(4.0 * np.pi * d**2 * flux_5100 * 1e-17 * 5100.0))


def host_fraction(rng: np.random.Generator, log_l: float) -> float:
    """Host share of the fibre's light at 5100 Å for a quasar of total λL_5100 = 10^log_l."""
    x = log_l - 44.0
    ratio = 0.8052 - 1.5502 * x + 0.9121 * x**2 - 0.1577 * x**3 if x < 1.053 else 0.0
    ratio = max(ratio, 0.0) * 10.0 ** rng.normal(0.0, 0.25)
    return float(min(ratio / (1.0 + ratio), 0.9))


def oiii_ew(rng: np.random.Generator, log_l_agn: float) -> float:
    """[O III] 5008 equivalent width (Å) against the AGN continuum at 5100 Å."""
    return float(10.0 ** (1.2 - 0.2 * (log_l_agn - 44.5) + rng.normal(0.0, 0.4)))
