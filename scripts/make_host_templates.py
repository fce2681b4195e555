"""Regenerate ``src/agnlens/data/emiles_ssp.npz``: the stellar-population subset of the simulator.

Source: the E-MILES single-stellar-population cube (Vazdekis et al. 2016, MNRAS 463, 3409;
Padova 2000 isochrones, unimodal IMF of slope 2.30 as stated in the sheap README (MILES web-tool
notation), base [α/Fe]) as shipped in the
``sheap`` 0.0.11 wheel (``sheap/SuportData/templates/miles_cube_log.npz``: 7 [M/H] × 50 ages,
1680–8950 Å, linear 0.9 Å pixels resampled by sheap, 2.51 Å FWHM in the MILES range). Only the
data are taken (the E-MILES models are distributed freely by the MILES team for scientific use,
http://miles.iac.es, citing Vazdekis et al. 2016); no sheap code is used, and sheap is not a
dependency of agnlens.

Usage (from the project root)::

    pip download --no-deps -d /tmp/ingredients sheap==0.0.11
    python scripts/make_host_templates.py /tmp/ingredients/sheap-0.0.11-py3-none-any.whl

What is kept: [M/H] = −0.71, −0.40, 0.00, +0.22 (the metallicities of massive AGN hosts) × 12
ages 0.063–12.6 Gyr, rest frame 2900–8950 Å resampled (linear interpolation of the 0.9 Å
sampling; the templates are smooth on that scale) onto log10 λ pixels of 1e-4 dex (the SDSS pixel,
69 km/s), each template divided by its median flux in 5075–5125 Å, float32.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "sheap/SuportData/templates/miles_cube_log.npz"
OUT = Path(__file__).resolve().parents[1] / "src" / "agnlens" / "data" / "emiles_ssp.npz"
METALLICITIES = (-0.71, -0.40, 0.0, 0.22)
AGES_GYR = (0.0631, 0.1, 0.1995, 0.3162, 0.5012, 0.7943, 1.2589, 1.9953, 3.1623, 5.0119, 7.9433, 12.5893)
LOGLAM = np.round(np.arange(np.log10(2900.0), np.log10(8950.0), 1e-4), 6)


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as zf:
        cube = np.load(io.BytesIO(zf.read(MEMBER)))
        flux, wave = cube["cube_log"].astype(np.float64), cube["wave_log"]
        ages, zs = cube["ages_sub"], cube["zs_sub"]
    iz = [int(np.argmin(np.abs(zs - m))) for m in METALLICITIES]
    ia = [int(np.argmin(np.abs(ages - a))) for a in AGES_GYR]
    lam = 10.0**LOGLAM
    out = np.empty((len(iz), len(ia), lam.size), dtype=np.float32)
    norm_sel = (wave >= 5075) & (wave <= 5125)
    for i, zi in enumerate(iz):
        for j, ai in enumerate(ia):
            f = flux[zi, ai]
            out[i, j] = np.interp(lam, wave, f / np.median(f[norm_sel]))
    np.savez_compressed(
        OUT, flux=out, loglam=LOGLAM.astype(np.float64), metallicity=zs[iz].astype(np.float32),
        age_gyr=ages[ia].astype(np.float32), fwhm_angstrom=np.float32(2.51),
    )
    print(f"wrote {OUT} {out.shape} ({OUT.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
