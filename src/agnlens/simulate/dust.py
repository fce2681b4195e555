"""Dust attenuation curves k(λ) = A_λ / E(B−V) for the simulator.

* :func:`cardelli` — the Milky Way extinction law of Cardelli, Clayton & Mathis (1989, ApJ 345,
  245), R_V = 3.1: used for the narrow-line region (a screen in front of the gas, as in the Balmer
  decrement method).
* :func:`calzetti` — the starburst attenuation curve of Calzetti et al. (2000, ApJ 533, 682),
  R_V = 4.05: used for the host's starlight.
"""

from __future__ import annotations

import numpy as np

__all__ = ["calzetti", "cardelli"]


def cardelli(wave: np.ndarray, r_v: float = 3.1) -> np.ndarray:
    """k(λ) of Cardelli et al. (1989) at ``wave`` (Å), valid 1000–33,000 Å (infrared to UV)."""
    x = 1e4 / np.asarray(wave, dtype=np.float64)  # inverse microns
    a = np.empty_like(x)
    b = np.empty_like(x)
    ir = x < 1.1
    a[ir], b[ir] = 0.574 * x[ir] ** 1.61, -0.527 * x[ir] ** 1.61
    opt = (x >= 1.1) & (x < 3.3)
    y = x[opt] - 1.82
    a[opt] = np.polyval([0.32999, -0.77530, 0.01979, 0.72085, -0.02427, -0.50447, 0.17699, 1.0], y)
    b[opt] = np.polyval([-2.09002, 5.30260, -0.62251, -5.38434, 1.07233, 2.28305, 1.41338, 0.0], y)
    uv = x >= 3.3
    xu = x[uv]
    extra = np.where(xu >= 5.9, 1.0, 0.0)
    a[uv] = (1.752 - 0.316 * xu - 0.104 / ((xu - 4.67) ** 2 + 0.341)
             + extra * (-0.04473 * (xu - 5.9) ** 2 - 0.009779 * (xu - 5.9) ** 3))
    b[uv] = (-3.090 + 1.825 * xu + 1.206 / ((xu - 4.62) ** 2 + 0.263)
             + extra * (0.2130 * (xu - 5.9) ** 2 + 0.1207 * (xu - 5.9) ** 3))
    return r_v * a + b


def calzetti(wave: np.ndarray, r_v: float = 4.05) -> np.ndarray:
    """k(λ) of Calzetti et al. (2000) at ``wave`` (Å), 1200–22,000 Å (extrapolated outside)."""
    lam = np.asarray(wave, dtype=np.float64) / 1e4  # microns
    blue = 2.659 * (-2.156 + 1.509 / lam - 0.198 / lam**2 + 0.011 / lam**3) + r_v
    red = 2.659 * (-1.857 + 1.040 / lam) + r_v
    return np.where(lam < 0.63, blue, red)
