"""Regenerate ``src/agnlens/data/feii_bg92.npz``: the optical Fe II template of the simulator.

Source: the Boroson & Green (1992, ApJS 80, 109) optical Fe II template, made from the spectrum of
the narrow-line Seyfert 1 I Zw 1 (intrinsic line FWHM ≈ 900 km/s), in the form distributed with
quasar-fitting codes (PyQSOFit's ``fe_optical.txt``; here the copy shipped in the ``sheap``
0.0.11 wheel, ``sheap/SuportData/templates/fe_optical.txt``: log10 λ (vacuum Å) and F_λ,
3686–7484 Å). Only the template data, published by Boroson & Green, are taken; no sheap code is
used and sheap is not a dependency of agnlens. Cite Boroson & Green (1992) when using it.

Usage (from the project root)::

    pip download --no-deps -d /tmp/ingredients sheap==0.0.11
    python scripts/make_feii_template.py /tmp/ingredients/sheap-0.0.11-py3-none-any.whl

Kept: the template resampled (linear interpolation) onto log10 λ pixels of 1e-4 dex, negative
values set to 0, scaled so that its integral over 4434–4684 Å (the band of R_FeII, Boroson &
Green 1992) is 1 Å, float32.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "sheap/SuportData/templates/fe_optical.txt"
OUT = Path(__file__).resolve().parents[1] / "src" / "agnlens" / "data" / "feii_bg92.npz"


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as zf:
        table = np.loadtxt(zf.open(MEMBER))
    loglam_in, flux_in = table[:, 0], table[:, 1]
    loglam = np.round(np.arange(np.ceil(loglam_in[0] * 1e4) / 1e4, loglam_in[-1], 1e-4), 6)
    flux = np.clip(np.interp(loglam, loglam_in, flux_in), 0.0, None)
    lam = 10.0**loglam
    band = (lam >= 4434) & (lam <= 4684)
    flux /= np.sum(flux[band] * lam[band] * np.log(10.0) * 1e-4)
    np.savez_compressed(OUT, flux=flux.astype(np.float32), loglam=loglam, fwhm_kms=np.float32(900.0))
    print(f"wrote {OUT} ({lam[0]:.0f}–{lam[-1]:.0f} Å, {lam.size} px, {OUT.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
