"""Scaling: classify + exact saliency of N simulated spectra through the stages (``agnlens.stages``).

Stores of N = 10³ and 10⁴ simulated spectra (and 10⁵ in full mode; 10³ and 4·10³ with ``--quick``)
are written once into a temporary directory (Zarr chunks of 1,024 spectra); every store is then
classified (``classify_store``) and explained (``explain_store``, exact gradient of the predicted
class) with the scheduler ``"local"`` (in-process) and ``"processes"`` (a LocalCluster of 2
workers, started once per scheduler and not timed). The model is that of ``bench_predict``.

Each row gives the wall time per spectrum at N, the peer being the same at N = 10³, so
ratio = t(10³) / t(N) (1 = flat per-spectrum cost; > 1 means larger runs are cheaper per spectrum
as fixed costs amortise), and the peak resident memory during the run: of this process for
"local", of this process (scheduler, output assembly) and of the busiest worker for "processes";
the resident size of this process just before the run is given too (the flat part of its peak).
Peak RSS is Linux's ``VmHWM``, reset before every run through ``/proc/<pid>/clear_refs``
(``psutil`` is not a dependency).
"""

from __future__ import annotations

import functools
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


@functools.lru_cache(maxsize=1)
def simulated(n: int):
    """``simulate_set(n, seed=1)`` on the paper grid (cached: ``bench_tsne`` reuses the 10⁵ set)."""
    from agnlens.simulate import simulate_set

    print(f"  simulating {n} spectra...", file=sys.stderr, flush=True)
    return simulate_set(n, seed=1)


def reset_peak(pid: int) -> None:
    """Reset the peak resident set size (``VmHWM``) of a process (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def status_mib(pid: int, field: str) -> float:
    """A memory field of ``/proc/<pid>/status`` in MiB (``VmHWM``: peak since :func:`reset_peak`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib(pid: int) -> float:
    """Peak resident set size of a process since the last :func:`reset_peak`, MiB."""
    return status_mib(pid, "VmHWM")


def classify_and_explain(model, store: Path, out: Path, scheduler) -> float:
    """Seconds to classify and explain every spectrum of ``store`` (outputs removed afterwards)."""
    from agnlens.stages import classify_store, explain_store

    t0 = time.perf_counter()
    classify_store(model, store, out / "classify", executor=scheduler)
    explain_store(model, store, out / "explain", method="gradient", executor=scheduler)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out)
    return seconds


def run(quick: bool = False) -> list[dict]:
    from bench_predict import fitted

    from agnlens.engine import get_client
    from agnlens.io.store import write_store

    sizes = [1000, 4000] if quick else [1000, 10_000, 100_000]
    model, _ = fitted(quick)
    rows = []
    with tempfile.TemporaryDirectory(prefix="agnlens-scaling-") as tmp:
        tmp = Path(tmp)
        stores = {}
        spectra = simulated(sizes[-1])
        for n in sizes:
            stores[n] = write_store(spectra[:n], tmp / f"n{n}.zarr", chunk_size=1024)
        # a separate warm-up store, so no timed run profits from store handles cached by the warm-up
        warm = write_store(spectra[-256:], tmp / "warm.zarr", chunk_size=1024)
        del spectra
        simulated.cache_clear()  # keep the in-memory set out of the peak RSS of the runs
        gc.collect()
        for scheduler in ("local", "processes"):
            with get_client(scheduler) as client:
                workers = list(client.run(os.getpid).values()) if client is not None else []
                target = client if client is not None else "local"
                classify_and_explain(model, warm, tmp / "warm-up", target)
                per = {}
                for n in sizes:
                    for pid in [os.getpid(), *workers]:
                        reset_peak(pid)
                    # what the process held before the run (model, imports, earlier benchmarks' data)
                    base = status_mib(os.getpid(), "VmRSS")
                    print(f"  {scheduler}: classify + saliency of {n} spectra...", file=sys.stderr, flush=True)
                    seconds = classify_and_explain(model, stores[n], tmp / f"out-{scheduler}-{n}", target)
                    per[n] = seconds / n
                    rss = f"peak RSS {peak_mib(os.getpid()):.0f} MiB (before: {base:.0f})"
                    if workers:
                        rss = f"{rss} (client), {max(peak_mib(p) for p in workers):.0f} MiB (worker)"
                    rows.append(dict(
                        benchmark=f"classify + exact saliency, N={n}, scheduler {scheduler}, "
                                  f"{model.support_vectors_.shape[0]} SV; {rss}",
                        ours=1e3 * per[n], peer=1e3 * per[sizes[0]], peer_name=f"agnlens at N={sizes[0]}",
                        unit="ms/spectrum", ratio=per[sizes[0]] / per[n],
                        note=f"{seconds:.1f} s in all",
                    ))
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
