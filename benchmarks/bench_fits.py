"""The hand-written SDSS FITS reader alone vs ``astropy.io.fits`` and ``fitsio`` on the 95 real spectra.

Every reader takes the same work from each ``spec-*.fits`` file of ``../shared/data/sdss/spectra``
(SDSS DR8+ "spec" layout): the primary header; from HDU 1 (COADD) the columns ``loglam``, ``flux``,
``ivar``, ``and_mask`` as arrays, with the wavelength ``10**loglam``; from HDU 2 (SPECOBJ) the
redshift, its error, ZWARNING, CLASS, SUBCLASS, RUN2D, PLATE, MJD, FIBERID. agnlens does a little
more (``read_sdss`` also builds the bad-pixel mask and a ``Spectrum``). Files are read once before
timing (warm page cache for all three); the best of :data:`REPEAT` passes over all files is kept.
``fitsio`` is optional (``pip install fitsio``); without it its row says "not run".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

SPECTRA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sdss" / "spectra"
REPEAT = 3
COLUMNS = ("loglam", "flux", "ivar", "and_mask")
SPECOBJ = ("Z", "Z_ERR", "ZWARNING", "CLASS", "SUBCLASS", "RUN2D", "PLATE", "MJD", "FIBERID")


def with_astropy(path: Path):
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        header = dict(hdul[0].header)
        coadd = hdul[1].data
        arrays = {c: np.array(coadd[c]) for c in COLUMNS}
        obj = hdul[2].data
        meta = {c: obj[c][0] for c in SPECOBJ}
    return header, 10.0 ** arrays["loglam"], arrays, meta


def with_fitsio(path: Path):
    import fitsio

    with fitsio.FITS(str(path)) as f:
        header = dict(f[0].read_header())
        coadd = f[1].read(columns=list(COLUMNS))
        arrays = {c: coadd[c] for c in COLUMNS}
        obj = f[2].read(columns=list(SPECOBJ), rows=[0])
        meta = {c: obj[c][0] for c in SPECOBJ}
    return header, 10.0 ** arrays["loglam"], arrays, meta


def best_pass(reader, files) -> float:
    """Smallest wall time of one pass reading every file (seconds)."""
    for path in files:  # warm-up: page cache, imports
        reader(path)
    best = float("inf")
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        for path in files:
            reader(path)
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool = False) -> list[dict]:
    from agnlens.io.sdss import read_sdss

    files = sorted(SPECTRA.glob("spec-*.fits"))
    if not files:
        raise FileNotFoundError(f"no spec-*.fits under {SPECTRA.resolve()}; the shared SDSS sample is needed")
    n = len(files)
    t_ours = best_pass(read_sdss, files)
    peers = [("astropy.io.fits", with_astropy)]
    try:
        import fitsio  # noqa: F401

        peers.append(("fitsio", with_fitsio))
    except ImportError:
        peers.append(("fitsio (not installed)", None))
    # the readers agree on the numbers (a benchmark of different work would be no comparison)
    ref = read_sdss(files[0])
    rows = []
    for name, reader in peers:
        if reader is None:
            rows.append(dict(benchmark=f"FITS reader alone, {n} real SDSS spec files", ours=n / t_ours,
                             peer=float("nan"), peer_name=name, unit="files/s", ratio=float("nan"),
                             note="pip install fitsio to run this peer"))
            continue
        _, wl, arrays, meta = reader(files[0])
        same = np.allclose(wl, ref.wavelength) and np.array_equal(arrays["flux"], ref.flux) and (
            np.isclose(float(meta["Z"]), ref.meta["z"]))
        t_peer = best_pass(reader, files)
        rows.append(dict(
            benchmark=f"FITS reader alone, {n} real SDSS spec files (agnlens read_sdss, incl. mask and Spectrum)",
            ours=n / t_ours, peer=n / t_peer, peer_name=name, unit="files/s", ratio=t_peer / t_ours,
            note=f"per file: agnlens {1e3 * t_ours / n:.3g} ms, {name} {1e3 * t_peer / n:.3g} ms; same wavelength, "
                 f"flux and redshift as agnlens: {same}",
        ))
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
