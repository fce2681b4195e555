"""Regenerate ``src/agnlens/data/sdss_noise.npz``: real SDSS noise, sky, masks and telluric residuals.

Source: the real SDSS DR17 spectra in ``../shared/data/sdss/spectra`` (SDSS-I/II Legacy and
BOSS/eBOSS ``spec`` files; SDSS data are public: cite Abdurro'uf et al. 2022, ApJS 259, 35,
"The Seventeenth Data Release of the Sloan Digital Sky Surveys"). Only the instrument's and the
sky's part is kept, nothing of the objects.

Usage (from the project root)::

    python scripts/make_noise_library.py [../shared/data/sdss]

Everything is on the simulator's observed grid (log10 λ = 3.5562 + 1e-4·i, 4609 pixels,
3600–10,400 Å: BOSS's range; a Legacy file covers 3800–9200 Å of it).

Per spectrum, for every BOSS file and evenly chosen Legacy files (sorted by spec_id, whatever
their label; at most 5 % of the pixels the file covers masked; :data:`N_KEEP` in all):

* ``calib`` (float16): the smooth variance per unit flux, var / (flux⁺ + sky) — for photon noise
  var_F = c(λ)·(F + S) + read noise, so this is the flux-calibration vector c(λ) that carries the
  spectrograph's throughput (a 301-pixel running median of the good pixels), scaled to median 1;
* ``sky`` (float16): the sky spectrum the pipeline subtracted (COADD column ``sky``), in units of
  the object's median flux in observed 5400–5600 Å, so that the sky-to-object ratio is a real one;
* ``mask`` (bool, bit-packed): ``and_mask != 0`` or ``ivar == 0``, and pixels the file does not
  cover; ``first``, ``last``: the first and last pixel the file covers.

From all files together (pixels each file covers and does not mask):

* ``telluric`` (float16): the systematic residual of the telluric correction, the median over the
  files of (flux − pipeline model) / (101-pixel running median of the model) at each observed
  pixel — what stays at a fixed observed wavelength while the objects' own features move with
  their redshifts — minus its 101-pixel running median (the template mismatch), kept inside the
  telluric bands (:data:`TELLURIC_BANDS`) and 0 outside;
* ``sky_residual`` (float): the rms of the sky-subtraction residuals at strong sky lines, in units
  of the sky line (the line above its 51-pixel running median), where the sky line exceeds half the
  object's continuum: the excess of the squared high-passed residual over the pipeline's variance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.ndimage import median_filter

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "agnlens" / "data" / "sdss_noise.npz"
LOGLAM0, N_PIX, N_KEEP = 3.5562, 4609, 60
#: Telluric absorption bands (observed Å): O2 B and A bands, H2O bands (Stevenson 1994, Hinkle et al. 2003).
TELLURIC_BANDS = ((6860.0, 6960.0), (7150.0, 7350.0), (7580.0, 7720.0), (8100.0, 8400.0), (8900.0, 9900.0))


def read(path: Path) -> dict:
    with fits.open(path) as hdul:
        t = hdul[1].data
        cols = {c: np.asarray(t[c], float) for c in ("loglam", "flux", "ivar", "sky", "model")}
        cols["and_mask"] = np.asarray(t["and_mask"])
    return cols


def on_grid(c: dict) -> dict:
    """One file's pixels placed on the observed grid (NaN where it has none or masks them)."""
    idx = np.rint((c["loglam"] - LOGLAM0) / 1e-4).astype(int)
    inside = (idx >= 0) & (idx < N_PIX)
    good = (c["ivar"] > 0) & (c["and_mask"] == 0)
    out = {k: np.full(N_PIX, np.nan) for k in ("flux", "var", "sky", "model")}
    covered = np.zeros(N_PIX, bool)
    covered[idx[inside]] = True
    for k, v in (("flux", c["flux"]), ("var", 1.0 / np.where(good, c["ivar"], 1.0)), ("sky", c["sky"]),
                 ("model", c["model"])):
        out[k][idx[inside & good]] = v[inside & good]
    out["covered"] = covered
    out["good"] = np.isfinite(out["flux"])
    return out


def instrument(g: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """calib, sky (object units), mask of one file; None if it masks over 5 % of what it covers."""
    good, covered = g["good"], g["covered"]
    if good[covered].mean() < 0.95:
        return None
    x = np.arange(N_PIX)
    ratio = g["var"] / (np.clip(g["flux"], 0, None) + np.clip(g["sky"], 1e-3, None))
    calib = median_filter(np.interp(x, x[good], ratio[good]), size=301, mode="nearest")
    calib /= np.median(calib[covered])
    wave = 10.0 ** (LOGLAM0 + 1e-4 * x)
    ref = np.median(g["flux"][(wave > 5400) & (wave < 5600) & good])
    sky = np.where(covered, np.nan_to_num(g["sky"]), 0.0)
    return calib.astype(np.float16), (np.clip(sky, 0, None) / ref).astype(np.float16), ~good


def residuals(grids: list[dict]) -> tuple[np.ndarray, float]:
    """The telluric residual pattern and the sky-line residual rms (see the module docstring)."""
    wave = 10.0 ** (LOGLAM0 + 1e-4 * np.arange(N_PIX))
    rel, excess, lines = [], [], []
    for g in grids:
        model = np.where(g["covered"], np.nan_to_num(g["model"]), 0.0)
        cont = median_filter(model, size=101, mode="nearest")
        ok = g["good"] & (cont > 0.05 * np.median(np.abs(cont[g["covered"]])))
        d = np.where(ok, (g["flux"] - g["model"]) / np.where(ok, cont, 1.0), np.nan)
        rel.append(d)
        # high-passed residual minus the pipeline's own variance: what the ivar does not know
        high = d - median_filter(np.nan_to_num(d), size=31, mode="nearest")
        excess.append(high**2 - g["var"] / np.where(ok, cont, 1.0) ** 2)
        sky = np.where(ok, g["sky"], 0.0) / np.where(ok, cont, 1.0)
        lines.append(np.clip(sky - median_filter(sky, size=51, mode="nearest"), 0.0, None))
    rel_a, excess_a, lines_a = np.array(rel), np.array(excess), np.array(lines)
    n_files = np.isfinite(rel_a).sum(axis=0)
    with np.errstate(all="ignore"):
        med = np.where(n_files >= 5, np.nanmedian(np.where(n_files >= 5, rel_a, 0.0), axis=0), 0.0)
    telluric = med - median_filter(med, size=101, mode="nearest")
    in_band = np.zeros(N_PIX, bool)
    for lo, hi in TELLURIC_BANDS:
        in_band |= (wave >= lo) & (wave <= hi)
    strong = np.isfinite(excess_a) & (lines_a > 0.5)
    rms = float(np.sqrt(max(np.mean(np.clip(excess_a[strong], -1.0, 1.0)), 0.0) / np.mean(lines_a[strong] ** 2)))
    return np.where(in_band, telluric, 0.0).astype(np.float16), rms


def main(data: str = str(ROOT / ".." / "shared" / "data" / "sdss")) -> int:
    files = sorted(Path(data, "spectra").glob("spec-*.fits"))
    grids = [on_grid(read(p)) for p in files]
    usable = [(p, g, r) for p, g in zip(files, grids) if (r := instrument(g)) is not None]
    boss = [u for u in usable if u[1]["covered"][-500:].any()]  # BOSS files reach 10,000–10,400 Å
    legacy = [u for u in usable if not u[1]["covered"][-500:].any()]
    n_legacy = max(N_KEEP - len(boss), 0)
    picks = boss + [legacy[i] for i in np.unique(np.linspace(0, len(legacy) - 1, n_legacy).round().astype(int))]
    picks.sort(key=lambda u: u[0].name)
    covered = np.array([u[1]["covered"] for u in picks])
    telluric, sky_rms = residuals(grids)
    np.savez_compressed(
        OUT, calib=np.stack([u[2][0] for u in picks]), sky=np.stack([u[2][1] for u in picks]),
        mask=np.packbits(np.stack([u[2][2] for u in picks]), axis=1), n_pix=np.int32(N_PIX),
        first=covered.argmax(axis=1).astype(np.int32),
        last=(N_PIX - 1 - covered[:, ::-1].argmax(axis=1)).astype(np.int32),
        telluric=telluric, sky_residual=np.float64(sky_rms), source=np.array([u[0].name for u in picks]),
    )
    print(f"wrote {OUT}: {len(picks)} spectra ({len(boss)} BOSS), sky-line residual rms {sky_rms:.3f}, "
          f"telluric residual rms {np.std(telluric[telluric != 0]):.4f} ({OUT.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
