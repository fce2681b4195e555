"""Host-galaxy starlight from real stellar-population spectra.

The templates are E-MILES single stellar populations (Vazdekis et al. 2016, MNRAS 463, 3409):
4 metallicities × 12 ages, rest frame 2900–8950 Å on 1e-4 dex pixels, 2.51 Å FWHM, each scaled
to 1 at 5075–5125 Å (``data/emiles_ssp.npz``; source, terms and the regenerating script in
``data/README.md``). A host is a mix of three populations — young (≤ 0.2 Gyr), intermediate
(0.3–2 Gyr) and old (≥ 3 Gyr) — of one metallicity, with light fractions at 5100 Å drawn per
spectrum (:mod:`agnlens.simulate.parameters`), reddened by the Calzetti et al. (2000) curve and
broadened by the stellar velocity dispersion. The 4000 Å break, Ca II H&K, the G band, Mg b and
Na D come from the populations themselves.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from agnlens.simulate.dust import calzetti
from agnlens.simulate.instrument import REST_LOGLAM

__all__ = ["AGE_BINS", "TEMPLATE_SIGMA_KMS", "host_templates", "mix_hosts"]

#: Age bins (Gyr, inclusive) of the three populations.
AGE_BINS = {"young": (0.0, 0.2), "intermediate": (0.3, 2.0), "old": (3.0, 20.0)}
#: The templates' own resolution, 2.51 Å FWHM, as a velocity dispersion at 5000 Å (km/s):
#: subtracted in quadrature from the broadening (64 km/s; 82 at 3900 Å, 49 at 6500 Å).
TEMPLATE_SIGMA_KMS = 2.51 / 2.3548 / 5000.0 * 299_792.458


@lru_cache(maxsize=1)
def host_templates() -> dict[str, Any]:
    """The shipped SSP subset on the rest-frame table grid (:data:`~.instrument.REST_LOGLAM`).

    ``flux`` (n_Z, n_age, n_rest) float64, held constant beyond the templates' 2900–8950 Å;
    ``metallicity``, ``age_gyr``; ``bins`` (age indices per population); ``calzetti`` k(λ) − k(5100).
    """
    with resources.files("agnlens.data").joinpath("emiles_ssp.npz").open("rb") as fh:
        d = np.load(fh)
        flux, loglam = np.asarray(d["flux"], dtype=np.float64), np.asarray(d["loglam"], dtype=np.float64)
        out: dict[str, Any] = {k: np.asarray(d[k], dtype=np.float64) for k in ("metallicity", "age_gyr")}
    out["flux"] = np.stack([[np.interp(REST_LOGLAM, loglam, f) for f in row] for row in flux])
    out["bins"] = {
        name: np.flatnonzero((out["age_gyr"] >= lo) & (out["age_gyr"] <= hi)) for name, (lo, hi) in AGE_BINS.items()
    }
    out["calzetti"] = calzetti(10.0**REST_LOGLAM) - calzetti(np.array(5100.0))
    return out


def mix_hosts(params: list[dict], index: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Reddened host spectra of a block, normalised to 1 at rest 5100 Å.

    Parameters
    ----------
    params : list of dict
        Per spectrum: ``host_z_index`` (metallicity index), ``host_ages`` (3 template age
        indices), ``host_weights`` (3 light fractions at 5100 Å), ``ebv_star``.
    index : ndarray of int, shape (n_block, n_pix)
        Index into the rest-frame table grid of every pixel (the pixel lies between ``index``
        and ``index + 1``).
    frac : ndarray of shape (n_block, 1)
        The fractional offset between the two.

    Returns
    -------
    ndarray of shape (n_block, n_pix)
        F_λ of the mix, reddened by E(B−V)_star (Calzetti law, normalised at 5100 Å).
    """
    t = host_templates()
    zi = np.array([p["host_z_index"] for p in params])[:, None]
    ages = np.array([p["host_ages"] for p in params])
    w = np.array([p["host_weights"] for p in params])
    ebv = np.array([p["ebv_star"] for p in params])[:, None]
    mixed = np.einsum("bk,bkn->bn", w, t["flux"][zi, ages]) * 10.0 ** (-0.4 * ebv * t["calzetti"][None, :])
    rows = np.arange(len(params))[:, None]
    return mixed[rows, index] * (1.0 - frac) + mixed[rows, index + 1] * frac
