"""Regenerate ``src/agnlens/data/sdss_noise.npz``: real SDSS noise, sky and masks for the simulator.

Source: 40 of the 95 real SDSS DR17 spectra in ``../shared/data/sdss/spectra`` (SDSS-I/II Legacy
and BOSS/eBOSS ``spec`` files; SDSS data are public: cite Abdurro'uf et al. 2022, ApJS 259, 35,
"The Seventeenth Data Release of the Sloan Digital Sky Surveys"), taken evenly from the list
sorted by spec_id whatever their label, among those with at most 5 % of the grid masked (only the
instrument's part is kept, nothing of the object).

Usage (from the project root)::

    python scripts/make_noise_library.py [../shared/data/sdss]

Per spectrum, on the simulator's observed grid (log10 λ = 3.5802 + 1e-4·i, 3838 pixels):

* ``calib`` (float16): the smooth variance per unit flux, var / (flux⁺ + sky) — for photon noise
  var_F = c(λ)·(F + S) + read noise, so this is the flux-calibration vector c(λ) that carries the
  spectrograph's throughput (a 301-pixel running median of the good pixels), scaled to median 1;
* ``sky`` (float16): the sky spectrum the pipeline subtracted (COADD column ``sky``), in units of
  the object's median flux in observed 5400–5600 Å, so that the sky-to-object ratio is a real one;
* ``mask`` (bool, bit-packed): ``and_mask != 0`` or ``ivar == 0``, and pixels the file does not
  cover.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.ndimage import median_filter

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "agnlens" / "data" / "sdss_noise.npz"
LOGLAM0, N_PIX, N_KEEP = 3.5802, 3838, 40


def one(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    with fits.open(path) as hdul:
        t = hdul[1].data
        loglam, flux, ivar = (np.asarray(t[c], float) for c in ("loglam", "flux", "ivar"))
        sky, and_mask = np.asarray(t["sky"], float), np.asarray(t["and_mask"])
    idx = np.rint((loglam - LOGLAM0) / 1e-4).astype(int)
    inside = (idx >= 0) & (idx < N_PIX)
    calib = np.full(N_PIX, np.nan)
    skyv = np.zeros(N_PIX)
    mask = np.ones(N_PIX, bool)
    good = (ivar > 0) & (and_mask == 0)
    variance = 1.0 / np.where(ivar > 0, ivar, 1.0)
    ratio = np.where(good, variance / (np.clip(flux, 0, None) + np.clip(sky, 1e-3, None)), np.nan)
    calib[idx[inside]] = ratio[inside]
    skyv[idx[inside]] = sky[inside]
    mask[idx[inside]] = ~good[inside]
    # smooth over bad pixels: fill them by interpolation first, then a running median
    ok = np.isfinite(calib)
    if ok.mean() < 0.95:  # masked over whole arms, or short coverage: not used
        return None
    x = np.arange(N_PIX)
    calib = median_filter(np.interp(x, x[ok], calib[ok]), size=301, mode="nearest")
    calib /= np.median(calib)
    ref = np.median(flux[(10**loglam > 5400) & (10**loglam < 5600) & good])
    return calib.astype(np.float16), (np.clip(skyv, 0, None) / ref).astype(np.float16), mask


def main(data: str = str(ROOT / ".." / "shared" / "data" / "sdss")) -> int:
    files = sorted(Path(data, "spectra").glob("spec-*.fits"))
    # spectra with more than 5 % of the grid masked (and_mask bits over whole arms, short
    # coverage) would make simulated spectra that preprocessing rejects: left out
    usable = [(p, r) for p in files if (r := one(p)) is not None and r[2].mean() <= 0.05]
    picks = [usable[i] for i in np.unique(np.linspace(0, len(usable) - 1, N_KEEP).round().astype(int))]
    rows = [r for _, r in picks]
    picks = [p for p, _ in picks]
    np.savez_compressed(
        OUT, calib=np.stack([r[0] for r in rows]), sky=np.stack([r[1] for r in rows]),
        mask=np.packbits(np.stack([r[2] for r in rows]), axis=1), n_pix=np.int32(N_PIX),
        source=np.array([p.name for p in picks]),
    )
    print(f"wrote {OUT}: {len(rows)} spectra ({OUT.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
