"""Ingest throughput (spectra/s) vs a plain loop over specutils ``Spectrum.read`` on the same files.

The files: the 95 real SDSS spectra of ``../shared/data/sdss`` plus simulated SDSS lite files
written by agnlens (``agnlens simulate --fits-dir``), 1,000 in all (200 with ``--quick``).
agnlens does more per file than the peer (read, redshift check, rest frame, flux-conserving
resampling, normalisation, store write); specutils only reads.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "sdss" / "spectra"


def make_files(directory: Path, n_total: int) -> list[Path]:
    from agnlens.io.sdss_write import write_sdss_many
    from agnlens.simulate import simulate

    real = sorted(REAL.glob("spec-*.fits"))
    simulated = write_sdss_many(simulate(max(n_total - len(real), 0), seed=1), directory)
    return real + simulated


def specutils_loop(paths) -> float:
    from specutils import Spectrum

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in paths:
            Spectrum.read(p, format="SDSS-III/IV spec")
    return time.perf_counter() - t0


def run(quick: bool = False) -> list[dict]:
    from agnlens.io.store import write_store
    from agnlens.stages import ingest_files
    from agnlens.stages.reading import read_files as ingest

    n = 200 if quick else 1000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_files(tmp / "fits", n)
        ingest(paths[:20])  # warm caches and imports for both
        peer = specutils_loop(paths)
        peer_rate = len(paths) / peer

        t0 = time.perf_counter()
        spectra, summary = ingest(paths, grid="paper")
        write_store(spectra, tmp / "serial.zarr")
        serial = time.perf_counter() - t0
        rows.append(dict(benchmark=f"ingest {len(paths)} files, 1 process", ours=len(paths) / serial,
                         peer=peer_rate, peer_name="specutils Spectrum.read loop", unit="spectra/s",
                         ratio=(len(paths) / serial) / peer_rate))

        t0 = time.perf_counter()
        ingest_files(paths, tmp / "parallel.zarr", grid="paper", scheduler="processes", batch_size=100)
        parallel = time.perf_counter() - t0
        rows.append(dict(benchmark=f"ingest {len(paths)} files, LocalCluster 2 workers (incl. start-up)",
                         ours=len(paths) / parallel, peer=peer_rate, peer_name="specutils Spectrum.read loop",
                         unit="spectra/s", ratio=(len(paths) / parallel) / peer_rate))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
