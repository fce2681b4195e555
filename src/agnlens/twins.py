"""Simulated twins of real spectra, for comparing the simulator with the data (:mod:`agnlens.realism`).

Each real spectrum gets ``per_real`` simulated twins of its class drawn at its redshift, its S/N at
5100 Å and its flux there (``norm_flux``: the luminosity; :func:`agnlens.simulate.simulate`),
preprocessed onto the real spectra's grid. A real spectrum and its twins then share one mask — a
pixel bad or uncovered in either is bad in both and filled the same way — so the wavelength coverage
of the instrument and masks cannot give the simulator away; what is left is the shape of the spectra
and their noise. A twin takes the noise of a real SDSS or BOSS spectrum that covers the whole grid
at its redshift where one does. The simulated set is labelled so (``simulated: True``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from agnlens.lines import NORM_WINDOW
from agnlens.preprocess import preprocess_one
from agnlens.simulate.instrument import DLOGLAM
from agnlens.spectra import SpectrumSet

__all__ = ["simulate_matched"]

# The rest-frame size (Å) of one SDSS pixel (DLOGLAM dex) at 5100 Å: the simulator's S/N is per
# observed pixel, the measured one per grid pixel.
_SDSS_PIXEL_5100 = 5100.0 * np.log(10.0) * DLOGLAM


def simulate_matched(real: SpectrumSet, *, per_real: int = 1, seed: int = 0) -> tuple[SpectrumSet, SpectrumSet]:
    """Simulated twins of every real spectrum: same class, redshift, S/N and flux at 5100 Å.

    Parameters
    ----------
    real : SpectrumSet
        Labelled (``type1``, ``type2`` or ``intermediate``) rest-frame normalised spectra.
    per_real : int
        Twins per real spectrum.
    seed : int
        The twins of real spectrum ``i`` are simulated with seed ``seed + i·per_real``.

    Returns
    -------
    real, simulated : SpectrumSet
        ``real`` with each spectrum's mask widened by its twins' masks; the twins (``provenance``
        ``simulated: True``), masked like their real spectrum, ``meta["real_spec_id"]`` naming it.
    """
    from agnlens.features import spectral_features

    # the twins are normalised as the study's spectra are, whatever window the real set records
    grid = replace(real.grid, norm_window=NORM_WINDOW)
    snr_grid = spectral_features(real, lines=False)["snr_5100"].to_numpy(float)
    fallback = pd.to_numeric(real.meta.get("snr", pd.Series(np.nan, index=real.meta.index)), errors="coerce")
    snr_grid = np.where(np.isfinite(snr_grid), snr_grid, fallback.to_numpy(float))
    pixel = float(np.interp(5100.0, real.wavelength[1:], np.diff(real.wavelength)))
    snr_obs = np.clip(np.nan_to_num(snr_grid, nan=20.0) * np.sqrt(_SDSS_PIXEL_5100 / pixel), 1.0, 300.0)
    # The simulator's S/N is per observed pixel of its own continuum model; calibrate it on the
    # grid: simulate once, measure the twins as the real spectra were measured, rescale, redo
    # (same seeds, so only the noise level changes).
    rows, owners = _twins(real, snr_obs, grid, per_real, seed)
    got = spectral_features(SpectrumSet.from_spectra(rows, grid), lines=False)["snr_5100"].to_numpy(float)
    want = np.repeat(snr_grid, per_real)
    factor = np.where(np.isfinite(got) & np.isfinite(want) & (got > 0), want / got, 1.0)
    snr_obs = np.clip(snr_obs * factor.reshape(-1, per_real).mean(axis=1), 1.0, 300.0)
    rows, owners = _twins(real, snr_obs, grid, per_real, seed)
    flux_r, ivar_r, mask_r = (np.array(a, dtype=np.float64) for a in (real.flux, real.ivar, real.mask))
    mask_r = mask_r.astype(bool)
    for row, i in zip(rows, owners):
        mask_r[i] |= row.mask
    for row, i in zip(rows, owners):
        row.mask = row.mask | mask_r[i]
        row.flux, row.ivar = _apply_mask(real.wavelength, row.flux, row.ivar, row.mask)
    for i in range(len(real)):
        flux_r[i], ivar_r[i] = _apply_mask(real.wavelength, flux_r[i], ivar_r[i], mask_r[i])
    matched = SpectrumSet(wavelength=real.wavelength, flux=flux_r.astype(np.float32), ivar=ivar_r.astype(np.float32),
                          mask=mask_r, meta=real.meta.copy(), grid=real.grid, provenance=dict(real.provenance))
    from agnlens._version import __version__

    sim = SpectrumSet.from_spectra(rows, grid, {
        "simulated": True, "seed": int(seed),
        "simulator": f"agnlens {__version__} simulate, {per_real} twin(s) per real spectrum",
        "matching": "class, redshift, S/N and flux at 5100 Å of each real spectrum; masks shared",
    })
    return matched, sim


def _twins(real, snr_obs, grid, per_real, seed):
    from agnlens.simulate import grid_z_range, simulate

    z_lo, z_hi = grid_z_range(grid)
    rows, owners = [], []
    fluxes = pd.to_numeric(real.meta.get("norm_flux", pd.Series(np.nan, index=real.meta.index)), errors="coerce")
    for i in range(len(real)):
        label, z, flux = real.labels[i], float(real.meta["z"].iloc[i]), float(fluxes.iloc[i])
        # where it can, a twin takes the noise of a real spectrum that covers the whole grid, and
        # the real spectrum's flux at 5100 Å (its luminosity)
        twins = simulate(
            counts={label: per_real}, seed=int(seed) + i * per_real, redshift=(z, z), snr=float(snr_obs[i]),
            flux=flux if np.isfinite(flux) and flux > 0 else None, grid=grid if z_lo <= z <= z_hi else None,
        )
        for k, twin in enumerate(twins):
            row = preprocess_one(twin, grid, max_bad_fraction=1.0)
            row.meta["spec_id"] = f"{row.meta['spec_id']}-sim{i}.{k}"
            row.meta["real_spec_id"] = real.spec_id[i]
            rows.append(row)
            owners.append(i)
    return rows, owners


def _apply_mask(wl, flux, ivar, bad):
    """Bad pixels filled by linear interpolation from the good ones (as preprocessing does), ivar 0."""
    good = ~bad
    if good.sum() < 2:
        return flux, np.zeros_like(ivar)
    return np.where(good, flux, np.interp(wl, wl[good], flux[good])), np.where(good, ivar, 0.0)
