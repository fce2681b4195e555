"""The active nucleus: broad lines, Balmer continuum, high-order Balmer lines, the Fe II template.

* Broad lines (vacuum Å) with Case B intensities relative to Hβ for Hγ…H50 (Storey & Hummer 1995,
  MNRAS 272, 41, to H12; above, the n⁻³ fall-off of their table, I_n = I_12·(12/n)³); the upper
  levels up to n = 50 pile up into the high-order Balmer pseudo-continuum at 3650–3800 Å; above
  H10 (:data:`BALMER_BLEND`) neighbouring lines lie closer than 2,000 km/s and blend with the
  Balmer continuum into the small blue bump, whose strength varies from quasar to quasar.
* Balmer continuum (Grandi 1982, ApJ 255, 25; Dietrich et al. 2002, ApJ 581, 912): optically thin
  emission of gas at T_e = 15,000 K, F(λ) ∝ B_λ(T_e)·(1 − e^{−τ(λ)}), τ = τ_BE·(λ/3646 Å)³,
  τ_BE = 1, for λ ≤ 3646 Å, broadened like the broad lines.
* Fe II: the Boroson & Green (1992, ApJS 80, 109) template of I Zw 1 (``data/feii_bg92.npz``,
  see ``data/README.md``), intrinsic FWHM ≈ 900 km/s, normalised to unit flux in 4434–4684 Å.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = ["BALMER_BLEND", "BALMER_EDGE", "BROAD_LINES", "HE_I_RATIOS", "HIGH_BALMER", "balmer_continuum",
           "feii_template"]

_RYDBERG_H = 109_677.58  # cm^-1, hydrogen (vacuum wavenumbers)
BALMER_EDGE = 1e8 / (_RYDBERG_H / 4.0)  # 3646 Å


def _balmer_wavelength(n: int) -> float:
    return 1e8 / (_RYDBERG_H * (0.25 - 1.0 / n**2))


#: Balmer lines bluer than this (vacuum Å: between H10 3799 Å and H11 3772 Å) lie closer to their
#: neighbours than 2,000 km/s, less than a broad line's width: they blend with the Balmer continuum
#: into a pseudo-continuum, scaled with it (the small blue bump); Hε…H10 stay separate lines.
BALMER_BLEND = 3785.0

_CASE_B_LOW = {8: 0.105, 9: 0.0731, 10: 0.0530, 11: 0.0397, 12: 0.0305}
#: Broad high-order Balmer lines n = 7 (Hε) … 50: (vacuum Å, Case B intensity / Hβ).
HIGH_BALMER: tuple[tuple[float, float], ...] = tuple(
    (_balmer_wavelength(n), 0.159 if n == 7 else _CASE_B_LOW.get(n, 0.0305 * (12.0 / n) ** 3)) for n in range(7, 51)
)
#: Broad lines of the blue complex and of the red complex (width × ``halpha_width_ratio``).
BROAD_LINES: dict[str, float] = {
    "HeI_3890": 3889.75, "Hdelta": 4102.89, "Hgamma": 4341.68, "HeII_4687": 4687.02,
    "Hbeta": 4862.68, "HeI_5017": 5017.08, "HeI_5877": 5877.25, "Halpha": 6564.61, "HeI_6680": 6679.99,
}
BROAD_RED = ("HeI_5877", "Halpha", "HeI_6680")
#: The other broad He I lines relative to He I 5877: recombination at T = 10^4 K (Benjamin,
#: Skillman & Smits 1999, ApJ 514, 307).
HE_I_RATIOS = {"HeI_3890": 0.85, "HeI_5017": 0.21, "HeI_6680": 0.28}


def balmer_continuum(wave: np.ndarray, t_e: float = 15_000.0, tau_be: float = 1.0) -> np.ndarray:
    """Balmer continuum shape at ``wave`` (Å), 1 at the edge side just below 3646 Å, 0 above it."""
    wave = np.asarray(wave, dtype=np.float64)
    x = 1.438776877e8 / (wave * t_e)
    x_edge = 1.438776877e8 / (BALMER_EDGE * t_e)
    planck = (wave / BALMER_EDGE) ** -5 * np.expm1(x_edge) / np.expm1(np.minimum(x, 700.0))
    shape = planck * -np.expm1(-tau_be * (wave / BALMER_EDGE) ** 3) / -np.expm1(-tau_be)
    return np.where(wave <= BALMER_EDGE, shape, 0.0)


@lru_cache(maxsize=1)
def feii_template() -> tuple[np.ndarray, np.ndarray, float]:
    """(log10 λ, flux per Å with unit integral over 4434–4684 Å, intrinsic FWHM km/s)."""
    with resources.files("agnlens.data").joinpath("feii_bg92.npz").open("rb") as fh:
        d = np.load(fh)
        return d["loglam"].astype(np.float64), d["flux"].astype(np.float64), float(d["fwhm_kms"])
