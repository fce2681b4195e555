"""Run the benchmarks and print one table of ratios against each peer.

Usage: python benchmarks/run.py [NAME ...] [--quick]

Full mode (no ``--quick``) produces every figure the README quotes, each ratio against its peer
measured in the same process (except scikit-learn's t-SNE at 10⁵ spectra, read from
``results/tsne_sklearn_100000.json``: run ``tsne_sklearn_large.py`` once first). ``--quick`` runs
the same code on 600 spectra, as a smoke test: its figures are not the README's.
Environment switches for smoke runs: ``AGNLENS_BENCH_NAIVE_FULL=0`` (skip the naive loop over the
full tuning grid), ``AGNLENS_BENCH_TSNE_LARGE=0`` (skip the 10⁵-spectra t-SNE).

Each module ``bench_<name>.py`` here has ``run(quick: bool) -> list[dict]`` whose rows hold
``benchmark``, ``ours``, ``peer``, ``peer_name``, ``unit`` and ``ratio`` (> 1: agnlens is better).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["e2e", "ingest", "fits", "desi", "fit", "tuning", "predict", "saliency", "tsne", "flops", "scaling", "demo"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def fmt(value: float, unit: str) -> str:
    """A measured value with its unit, or "not run" for NaN (a peer that was skipped)."""
    return f"{value:.4g} {unit}" if math.isfinite(value) else "not run"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(ORDER)})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    names = args.names or [n for n in ORDER if (HERE / f"bench_{n}.py").exists()]
    sys.path.insert(0, str(HERE))
    rows = []
    t_all = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        t0 = time.perf_counter()
        print(f"running {name}...", file=sys.stderr, flush=True)
        rows.extend(module.run(quick=args.quick))
        print(f"  {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    header = "| benchmark | agnlens | peer | ratio |\n|---|---|---|---|"
    lines = [header] + [
        f"| {r['benchmark']} | {r['ours']:.4g} {r['unit']} | {r['peer_name']}: {fmt(r['peer'], r['unit'])} | "
        f"{'**' + format(r['ratio'], '.3g') + '×**' if math.isfinite(r['ratio']) else 'n/a (peer not run)'} |"
        for r in rows
    ]
    notes = [f"- {r['benchmark']}: {r['note']}" for r in rows if r.get("note")]
    table = "\n".join(lines) + ("\n\nNotes:\n" + "\n".join(notes) if notes else "")
    mode = "quick (smoke run, 600 spectra)" if args.quick else "full"
    switches = [f"{k}={os.environ[k]}" for k in ("AGNLENS_BENCH_NAIVE_FULL", "AGNLENS_BENCH_TSNE_LARGE")
                if k in os.environ]
    table += (f"\n\nMode: {mode}{'; ' + ', '.join(switches) if switches else ''}; benchmarks: {', '.join(names)}; "
              f"run time {time.perf_counter() - t_all:.0f} s.")
    print(f"\nmachine: {machine()}\n")
    print(table)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    (out / "latest.md").write_text(f"machine: {machine()}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
