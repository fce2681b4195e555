"""Real SDSS noise: error spectra, sky, masks and telluric residuals of real spectra, applied to
simulated models.

``data/sdss_noise.npz`` holds, for 60 real SDSS DR17 spectra (20 BOSS, 40 Legacy) on the
simulator's observed grid (``scripts/make_noise_library.py``; source in ``data/README.md``):
``calib`` — the smooth variance per unit flux c(λ) = var/(F + S) of the real file (the
spectrograph's throughput and flux calibration; photon noise gives var = c·(F + S)), ``sky`` — the
sky spectrum the pipeline subtracted, in units of the real object's median flux in observed
5400–5600 Å (a real sky-to-object ratio), ``mask`` — its bad pixels and those it does not cover,
``first``/``last`` — the pixels it covers (Legacy 3800–9200 Å, BOSS 3600–10,400 Å); and, from all
95 real files, ``telluric`` — the systematic residual of the telluric correction per observed
pixel (O2 and H2O bands) and ``sky_residual`` — the rms of the sky-subtraction residuals at strong
sky lines, in units of the line.

A simulated spectrum takes one library row (drawn per spectrum among the rows that cover what the
spectrum needs, its grid at its redshift, and mask at most 5 % of it) and gets

    var(λ) = K · c(λ) · [F_model(λ)/F_ref + S(λ)],

with F_ref the model's median flux in observed 5400–5600 Å and K set so that the continuum S/N per
pixel at rest 5100 Å is the drawn ``snr_target``; Gaussian noise of that variance; ``ivar = 1/var``
(0 on the real mask); and the residuals that the ivar does not know about, as in real SDSS spectra:
at the sky lines (sky above its 51-pixel running median, ΔS) ΔS·F_ref·(a + b·N(0, 1)),
a ~ N(0, 0.02) per spectrum and b such that the rms is the measured ``sky_residual`` (~4 % of the
line; Wild & Hewett 2005, MNRAS 358, 1083), and the telluric residual F_model·t·T(λ), t ~ N(1, 0.5)
per spectrum (the airmass and the correction vary). The spectrum is then cut to its row's
coverage (:func:`coverage`).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from scipy.ndimage import median_filter

__all__ = ["add_noise", "coverage", "noise_library"]

#: A library row is used for a spectrum when it masks at most this share of the observed range the
#: spectrum needs (its grid), as the library's own selection asks of each whole file.
MAX_MASKED = 0.05
#: Per-spectrum sd of the mean sky-line residual (a share of the line).
_SKY_BIAS_SD = 0.02


@lru_cache(maxsize=1)
def noise_library() -> dict:
    """``calib``, ``sky``, ``sky_lines`` (sky minus its running median, ≥ 0), ``mask``, ``first``,
    ``last``, ``telluric``, ``sky_residual``, ``source``."""
    with resources.files("agnlens.data").joinpath("sdss_noise.npz").open("rb") as fh:
        d = np.load(fh)
        n_pix = int(d["n_pix"])
        out = {
            "calib": d["calib"].astype(np.float64), "sky": d["sky"].astype(np.float64),
            "mask": np.unpackbits(d["mask"], axis=1, count=n_pix).astype(bool),
            "first": d["first"].astype(np.int64), "last": d["last"].astype(np.int64),
            "telluric": d["telluric"].astype(np.float64), "sky_residual": float(d["sky_residual"]),
            "source": [str(s) for s in d["source"]],
        }
    # masked pixels before each pixel, per row: the masked share of any range in two look-ups
    out["masked_before"] = np.concatenate([np.zeros((out["mask"].shape[0], 1)), np.cumsum(out["mask"], axis=1)], axis=1)
    out["sky_lines"] = np.clip(out["sky"] - median_filter(out["sky"], size=(1, 51), mode="nearest"), 0.0, None)
    return out


def coverage() -> tuple[np.ndarray, np.ndarray]:
    """The first and last observed pixel each library row covers, shape (n_rows,) each."""
    lib = noise_library()
    return lib["first"], lib["last"]


def usable_z_range(wave: np.ndarray, rest_lo: float, rest_hi: float) -> tuple[float, float]:
    """The lowest and highest redshift (steps of 5e-4) at which some library row covers rest
    ``rest_lo``–``rest_hi`` Å and masks at most :data:`MAX_MASKED` of it.

    Parameters
    ----------
    wave : ndarray of shape (n_pix,)
        Observed wavelengths (Å), the grid of the library.
    """
    lib = noise_library()
    z = np.arange(-0.2, 2.0, 5e-4)
    lo, hi = wave[lib["first"]], wave[lib["last"]]
    i0 = np.searchsorted(wave, rest_lo * (1 + z))
    i1 = np.minimum(np.searchsorted(wave, rest_hi * (1 + z)) + 1, wave.size)
    covers = (lo[None, :] <= rest_lo * (1 + z)[:, None]) & (hi[None, :] >= rest_hi * (1 + z)[:, None])
    masked = (lib["masked_before"][:, i1] - lib["masked_before"][:, i0]).T / np.maximum(i1 - i0, 1)[:, None]
    ok = np.any(covers & (masked <= MAX_MASKED), axis=1)
    if not ok.any():
        raise ValueError(f"simulate: no real spectrum in the noise library covers rest {rest_lo:.0f}–{rest_hi:.0f} Å "
                         "at any redshift")
    return float(z[ok].min()), float(z[ok].max())


def add_noise(rngs: list[np.random.Generator], model: np.ndarray, wave: np.ndarray, z: np.ndarray,
              snr: np.ndarray, noise: bool, need: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    need : ndarray of shape (n_block, 2), optional
        Observed wavelengths (Å) each spectrum's row must cover; default ±15 pixels around rest 5100 Å.

    Raises
    ------
    ValueError
        If no library row covers what a spectrum needs.
    """
    lib = noise_library()
    nb, n_pix = model.shape
    if need is None:
        need = np.stack([5100.0 * (1.0 + z) * 10 ** (-15e-4), 5100.0 * (1.0 + z) * 10 ** 15e-4], axis=1)
    lo, hi = wave[lib["first"]], wave[lib["last"]]
    rows = np.empty(nb, dtype=np.int64)
    for b, rng in enumerate(rngs):
        ok = np.flatnonzero((lo <= need[b, 0] * (1 + 1e-9)) & (hi >= need[b, 1] * (1 - 1e-9)))
        if ok.size == 0:
            raise ValueError(f"simulate: no real spectrum in the noise library covers {need[b, 0]:.0f}–"
                             f"{need[b, 1]:.0f} Å (z = {z[b]:.3f}); use a lower redshift")
        # among them, those that mask at most MAX_MASKED of that range (else the least masked):
        # a real spectrum with its red end masked is not used where the grid needs that end
        i0, i1 = np.searchsorted(wave, need[b]) + np.array([0, 1])
        share = (lib["masked_before"][ok, min(i1, n_pix)] - lib["masked_before"][ok, i0]) / max(i1 - i0, 1)
        ok = ok[share <= max(MAX_MASKED, share.min())]
        rows[b] = ok[int(rng.integers(ok.size))]
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
    tell = np.empty(nb)
    for b, rng in enumerate(rngs):
        eps[b] = rng.standard_normal(n_pix)
        eps_sky[b] = rng.standard_normal(n_pix)
        resid[b] = rng.normal(0.0, _SKY_BIAS_SD)
        tell[b] = rng.normal(1.0, 0.5)
    if not noise:
        return model.copy(), ivar, np.zeros((nb, n_pix), dtype=bool), rows
    mask = lib["mask"][rows]
    sky_res = lib["sky_lines"][rows] * f_ref[:, None]
    b_sky = np.sqrt(max(lib["sky_residual"] ** 2 - _SKY_BIAS_SD**2, 0.0))
    flux = (model * (1.0 + tell[:, None] * lib["telluric"][None, :]) + eps * np.sqrt(var)
            + sky_res * (resid[:, None] + b_sky * eps_sky))
    ivar[mask] = 0.0
    return flux, ivar, mask, rows
