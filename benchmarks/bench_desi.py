"""DESI coadds: targets/s read (arms merged) and read + classified, on one core, beside specutils.

A synthetic coadd of :data:`N_TARGETS` targets is built from the real single-target coadd of
``tests/data/desi`` (``tests/desi_synth.py``: the real spectrum scaled, fresh noise from its ivar,
every 50th fibre a sky fibre, its redrock file beside). Rows:

* reading: ``agnlens.io.read_desi`` (every target's B/R/Z arms merged by inverse variance, masks,
  fibre status, redshift matched by TARGETID; one target at a time from a memory-mapped file)
  against specutils' ``DESI coadd`` loader (``SpectrumList.read``: the three arms as three 2-D
  spectra, not merged, the whole file in memory). Both read every target once; best of
  :data:`REPEAT` passes.
* reading and classifying: ``agnlens.stages.classify_files`` with the default models (read, rest
  frame, resample, normalise, SVM, applicability checks incl. the physics baseline on the balmer
  grid), one pass; no peer does this (the row gives specutils' read alone as the scale).

BLAS and OpenMP are held to one thread (threadpoolctl), so the figures are per core.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_TARGETS = 2000
REPEAT = 3


def _specutils_read(path: Path) -> int:
    from specutils import SpectrumList

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arms = SpectrumList.read(str(path), format="DESI coadd")
    return int(arms[0].flux.shape[0])


def _agnlens_read(path: Path) -> int:
    from agnlens.io.desi import read_desi
    from agnlens.spectra import Spectrum

    return sum(isinstance(x, Spectrum) for x in read_desi(path))


def best(fn, *args) -> tuple[float, int]:
    fn(*args)  # warm-up: page cache, imports
    times, n = [], 0
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        n = fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times), n


def run(quick: bool = False) -> list[dict]:
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(ROOT / "tests"))
    from desi_synth import synthetic_coadd

    from agnlens.models.default import resolve_models
    from agnlens.stages import classify_files

    n = 200 if quick else N_TARGETS
    rows = []
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        path = synthetic_coadd(Path(tmp), n)
        mb = path.stat().st_size / 2**20
        t_ours, n_ours = best(_agnlens_read, path)
        try:
            t_peer, n_peer = best(_specutils_read, path)
            peer = n_peer / t_peer
        except ImportError:
            t_peer, peer = float("nan"), float("nan")
        rows.append(dict(
            benchmark=f"DESI coadd read, {n} targets ({mb:.0f} MiB), one core",
            ours=n_ours / t_ours, peer=peer, peer_name="specutils DESI coadd loader", unit="targets/s",
            ratio=t_peer / t_ours * n_ours / n if peer == peer else float("nan"),
            note=f"agnlens merges the arms, applies masks and fibre status, matches redshifts ({n_ours} targets, "
                 f"sky fibres skipped); specutils reads the three arms unmerged, {n} rows each",
        ))
        models = resolve_models("default", None)
        classify_files(models, [path])  # warm-up: models loaded, caches built
        t0 = time.perf_counter()
        table, rejected = classify_files(models, [path])
        t_cls = time.perf_counter() - t0
        rows.append(dict(
            benchmark=f"DESI coadd read + classify, {n} targets, one core",
            ours=len(table) / t_cls, peer=peer, peer_name="specutils read alone (no classification)",
            unit="targets/s", ratio=float("nan"),
            note=f"{len(table)} classified on grids {table['grid'].value_counts().to_dict()}, "
                 f"{len(rejected)} rejected",
        ))
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
