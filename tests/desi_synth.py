"""Large DESI files for tests and benchmarks, built from a real one.

:func:`synthetic_coadd` writes a coadd of ``n`` targets in the real file's layout (its primary
header, FIBERMAP columns, B/R/Z wavelength, flux, ivar and mask images) and a ``redrock`` file
beside it: each target is the real target's spectrum scaled and given fresh noise from its own
ivar, every 50th fibre a sky fibre. The images are appended one at a time, so building a coadd of
thousands of targets holds one image in memory, not the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from realdata import DESI, DESI_SF

REDROCK = DESI / "redrock-4-80613-thru20210324.fits.gz"
SKY_EVERY = 50


def synthetic_coadd(folder: Path, n: int, *, seed: int = 0, source: Path = DESI_SF) -> Path:
    """Write ``coadd-synthetic-N.fits`` (and its ``redrock-synthetic-N.fits``) into ``folder``.

    Returns
    -------
    Path
        The coadd. Targets: TARGETID ``10**15 + i``; every :data:`SKY_EVERY`-th row is a sky
        fibre (OBJTYPE SKY, negative TARGETID); redshifts are the real target's.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"coadd-synthetic-{n}.fits"
    with fits.open(source) as real:
        fibermap = Table(real["FIBERMAP"].data)
        rows = fibermap[np.zeros(n, dtype=int)]
        rows["TARGETID"] = 10**15 + np.arange(n)
        sky = np.arange(n) % SKY_EVERY == SKY_EVERY - 1
        rows["OBJTYPE"][sky] = "SKY"
        rows["TARGETID"][sky] = -np.arange(n)[sky] - 1
        fits.HDUList([fits.PrimaryHDU(header=real[0].header),
                      fits.BinTableHDU(rows, header=real["FIBERMAP"].header, name="FIBERMAP")]).writeto(path)
        scale = rng.uniform(0.5, 2.0, size=(n, 1)).astype(np.float32)
        for arm in "BRZ":
            fits.append(path, real[f"{arm}_WAVELENGTH"].data, real[f"{arm}_WAVELENGTH"].header)
            flux, ivar = real[f"{arm}_FLUX"].data[0], real[f"{arm}_IVAR"].data[0]
            sigma = np.where(ivar > 0, 1 / np.sqrt(np.where(ivar > 0, ivar, 1)), 0).astype(np.float32)
            noisy = flux * scale + sigma * rng.standard_normal((n, flux.size), dtype=np.float32)
            fits.append(path, noisy.astype(">f4"), real[f"{arm}_FLUX"].header)
            del noisy
            fits.append(path, np.broadcast_to(ivar, (n, ivar.size)).astype(">f4"), real[f"{arm}_IVAR"].header)
            fits.append(path, np.zeros((n, flux.size), dtype=">i4"), real[f"{arm}_MASK"].header)
    with fits.open(REDROCK) as rr:
        z = Table(rr["REDSHIFTS"].data)[np.zeros(n, dtype=int)]
    z["TARGETID"] = 10**15 + np.arange(n)
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(z, name="REDSHIFTS")]).writeto(
        folder / f"redrock-synthetic-{n}.fits")
    return path
