"""Real SDSS noise: error spectra, sky and masks of real spectra, applied to simulated models.

``data/sdss_noise.npz`` holds, for 40 real SDSS DR17 spectra on the simulator's observed grid
(``scripts/make_noise_library.py``; source in ``data/README.md``): ``calib`` — the smooth variance
per unit flux c(λ) = var/(F + S) of the real file (the spectrograph's throughput and flux
calibration; photon noise gives var = c·(F + S)), ``sky`` — the sky spectrum the pipeline
subtracted, in units of the real object's median flux in observed 5400–5600 Å (a real
sky-to-object ratio), and ``mask`` — its bad pixels.

A simulated spectrum takes one library row (drawn per spectrum) and gets

    var(λ) = K · c(λ) · [F_model(λ)/F_ref + S(λ)],

with F_ref the model's median flux in observed 5400–5600 Å and K set so that the continuum S/N per
pixel at rest 5100 Å is the drawn ``snr_target``; Gaussian noise of that variance; ``ivar = 1/var``
(0 on the real mask); and sky-subtraction residuals that the ivar does not know about, as in real
SDSS spectra: at the sky lines (sky above its 51-pixel running median, ΔS) the flux gets
ΔS·F_ref·(a + b·N(0, 1)), a ~ N(0, 0.02), b = 0.02 — residuals of a few per cent of the sky
lines (Wild & Hewett 2005, MNRAS 358, 1083).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from scipy.ndimage import median_filter

__all__ = ["add_noise", "noise_library"]


@lru_cache(maxsize=1)
def noise_library() -> dict:
    """``calib``, ``sky``, ``sky_lines`` (sky minus its running median, ≥ 0), ``mask``, ``source``."""
    with resources.files("agnlens.data").joinpath("sdss_noise.npz").open("rb") as fh:
        d = np.load(fh)
        n_pix = int(d["n_pix"])
        calib = d["calib"].astype(np.float64)
        sky = d["sky"].astype(np.float64)
        mask = np.unpackbits(d["mask"], axis=1, count=n_pix).astype(bool)
        source = [str(s) for s in d["source"]]
    lines = np.clip(sky - median_filter(sky, size=(1, 51), mode="nearest"), 0.0, None)
    return {"calib": calib, "sky": sky, "sky_lines": lines, "mask": mask, "source": source}


def add_noise(rngs: list[np.random.Generator], model: np.ndarray, wave: np.ndarray, z: np.ndarray,
              snr: np.ndarray, noise: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noisy flux, ivar, mask and the library row of a block of observed-frame models.

    Parameters
    ----------
    rngs : list of numpy.random.Generator, one per spectrum
    model : ndarray of shape (n_block, n_pix)
        Noise-free flux on ``wave``.
    wave : ndarray of shape (n_pix,)
        Observed wavelengths (Å), the grid of the library.
    z, snr : ndarray of shape (n_block,)
        Redshift and target continuum S/N per pixel at rest 5100 Å.
    noise : bool
        False: return the model itself, the same ivar and no mask.
    """
    lib = noise_library()
    nb, n_pix = model.shape
    rows = np.array([int(rng.integers(len(lib["source"]))) for rng in rngs])
    ref_sel = (wave > 5400.0) & (wave < 5600.0)
    f_ref = np.median(model[:, ref_sel], axis=1)
    shape = lib["calib"][rows] * (np.clip(model, 0.0, None) / f_ref[:, None] + lib["sky"][rows])
    # continuum S/N at rest 5100 Å: model and variance medians over ±15 pixels of 5100·(1+z)
    i5100 = np.clip(np.searchsorted(wave, 5100.0 * (1.0 + z)), 15, n_pix - 16)
    window = i5100[:, None] + np.arange(-15, 16)[None, :]
    at = np.arange(nb)[:, None]
    cont = np.median(model[at, window], axis=1)
    scale = (cont / snr) ** 2 / np.median(shape[at, window], axis=1)
    var = shape * scale[:, None]
    ivar = 1.0 / var
    eps = np.empty((nb, n_pix))
    eps_sky = np.empty((nb, n_pix))
    resid = np.empty(nb)
    for b, rng in enumerate(rngs):
        eps[b] = rng.standard_normal(n_pix)
        eps_sky[b] = rng.standard_normal(n_pix)
        resid[b] = rng.normal(0.0, 0.02)
    if not noise:
        return model.copy(), ivar, np.zeros((nb, n_pix), dtype=bool), rows
    mask = lib["mask"][rows]
    sky_res = lib["sky_lines"][rows] * f_ref[:, None]
    flux = model + eps * np.sqrt(var) + sky_res * (resid[:, None] + 0.02 * eps_sky)
    ivar[mask] = 0.0
    return flux, ivar, mask, rows
