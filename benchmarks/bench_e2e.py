"""What users run: ``agnlens classify``, ``classify --measure`` and ``explain`` (maps, flags, line
table, no figures) on N spectrum files, end to end, beside the pipeline a user would assemble.

Usage: python benchmarks/bench_e2e.py [--n N ...] [--quick] [--only local|processes] [--no-peer]
                                     [--commands classify measure explain]

The files: the real SDSS spectra in ``tests/data`` plus simulated SDSS-format ``spec-*.fits`` files
written by agnlens's own writer, N in all (default 10,000; ``--quick``: 200). Every command runs
as its own process, as a user runs it: once in one process (``--scheduler local``, one BLAS thread:
one core) and once on a 2-worker Dask LocalCluster (``--scheduler processes``, two cores). Printed
per run: spectra per second per core (wall clock), spectra per CPU second (the process and every
child it started: what a busy shared machine cannot inflate), and the peak resident memory of the
command's process and of its largest child (a Dask worker), sampled every 50 ms. Each command first
runs once, untimed, on three of the files: the default models (built on first use) and their
t-SNE map come from the cache in every timed run, as they do for a user after the first.

The peer, timed in the same run on the same files in its own one-thread process: specutils
``Spectrum.read`` of every file, the redshift from the catalogue, rest frame, ``np.interp`` onto
agnlens's balmer grid and a 5100 Å normalisation, scikit-learn ``SVC(probability=True)
.predict_proba`` (a model fitted beforehand on agnlens's simulated spectra, as agnlens's default
models are built once and cached), and one ``scipy.optimize.curve_fit`` per line complex (Hβ +
[O III], Hα + [N II]: narrow lines of one velocity and width, a broad Balmer line, a straight
continuum) on the file's own pixels. It does what ``classify --measure`` does without any trust
check; every ratio is against it.

With two sizes (``--n 1000 10000``) the notes say whether the peak memory per worker grew with
the number of files.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "data" / "sdss"
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
#: Simulated spectra per simulate() call while writing the files (bounds the memory it takes).
WRITE_CHUNK = 1000
COMMANDS = {
    "classify": ["classify", "{files}", "--out", "{out}/r.csv"],
    "classify --measure": ["classify", "{files}", "--measure", "--out", "{out}/r.csv"],
    "explain --max-figures 0": ["explain", "{files}", "--max-figures", "0", "--out", "{out}/x"],
}


def make_files(directory: Path, n_total: int) -> tuple[list[Path], dict[str, float]]:
    """The real spectra of tests/data plus simulated ones written by agnlens, ``n_total`` in all,
    and the catalogue redshift of each file (by file name)."""
    import pandas as pd

    from agnlens.io.sdss_write import write_sdss_many
    from agnlens.simulate import simulate

    directory.mkdir(parents=True, exist_ok=True)
    real = sorted((REAL / "spectra").glob("spec-*.fits"))[:n_total]
    labels = pd.read_csv(REAL / "labels.csv")
    z = {Path(f).name: float(v) for f, v in zip(labels["file"], labels["z"])}
    paths = []
    for p in real:
        (directory / p.name).write_bytes(p.read_bytes())
        paths.append(directory / p.name)
    left, chunk = n_total - len(real), 0
    while left > 0:
        spectra = simulate(min(left, WRITE_CHUNK), seed=100 + chunk, convention="spectroscopic")
        for i, s in enumerate(spectra):  # plate 9100 + chunk, fibre i + 1: unique file names
            s.meta.update(plate=9100 + chunk, mjd=55001, fiber=i + 1, spec_id=f"{9100 + chunk}-55001-{i + 1:04d}")
        for p, s in zip(write_sdss_many(spectra, directory), spectra):
            z[p.name] = float(s.z)
            paths.append(p)
        left -= len(spectra)
        chunk += 1
    return paths, z


def monitored(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; its wall time, CPU time (with its children's) and peak RSS (its own and its
    largest child's), sampled every 50 ms."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    top = psutil.Process(proc.pid)
    peak_main, peak_child, cpu = 0, 0, {}
    while proc.poll() is None:
        try:
            for p in [top, *top.children(recursive=True)]:
                with p.oneshot():
                    rss, t = p.memory_info().rss, p.cpu_times()
                cpu[p.pid] = t.user + t.system
                if p.pid == top.pid:
                    peak_main = max(peak_main, rss)
                else:
                    peak_child = max(peak_child, rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    return dict(wall=wall, cpu=sum(cpu.values()), peak_main=peak_main / 2**20, peak_child=peak_child / 2**20,
                returncode=proc.returncode, stdout=out, stderr=err)


def run_agnlens(command: str, files: Path, out: Path, scheduler: str) -> dict:
    argv = [a.format(files=files, out=out) for a in COMMANDS[command]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    if scheduler == "local":
        env.update(ONE_THREAD)
    return monitored([sys.executable, "-m", "agnlens.cli", *argv, "-q", "--scheduler", scheduler], env)


# ---- the peer pipeline (runs in its own process: ``bench_e2e.py _peer FILES Z_JSON MODEL``) ----

def _gauss(x, a, mu, s):
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2)


def complex_model(narrow: tuple[float, ...], broad: float):
    """Narrow lines (Å) of one velocity and width, a broad line at ``broad`` Å, a straight continuum."""
    def f(x, c0, c1, v, s_n, a_b, s_b, *amps):
        y = c0 + c1 * (x - broad) + _gauss(x, a_b, broad * (1 + v / 3e5), broad * s_b / 3e5)
        for lam, a in zip(narrow, amps):
            y = y + _gauss(x, a, lam * (1 + v / 3e5), lam * s_n / 3e5)
        return y
    return f


LINE_COMPLEXES = {  # window (Å rest), narrow lines, broad line
    "Hbeta+[OIII]": ((4780.0, 5050.0), (4862.7, 4960.3, 5008.2), 4862.7),
    "Halpha+[NII]": ((6480.0, 6650.0), (6549.9, 6564.6, 6585.3), 6564.6),
}


def peer(paths: list[str], z: dict[str, float], model_file: str) -> dict:
    from scipy.optimize import curve_fit
    from specutils import Spectrum

    from agnlens.grid import get_grid
    from agnlens.lines import NORM_WINDOW

    with open(model_file, "rb") as fh:
        svc = pickle.load(fh)
    grid = get_grid("balmer").wavelength
    norm = (grid >= NORM_WINDOW[0]) & (grid <= NORM_WINDOW[1])
    t = dict(read=0.0, preprocess=0.0, predict=0.0, fits=0.0)
    fitted = failed = 0
    rows, natives = [], []

    def flush():
        nonlocal fitted, failed
        t0 = time.perf_counter()
        svc.predict_proba(np.array(rows))
        t["predict"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for wl, fl, iv in natives:
            for (lo, hi), narrow, broad in LINE_COMPLEXES.values():
                sel = (wl > lo) & (wl < hi) & (iv > 0)
                if sel.sum() < 20:
                    continue
                c = float(np.median(fl[sel]))
                p0 = [c, 0.0, 0.0, 150.0, 0.1 * abs(c) + 1e-3, 3000.0, *[abs(c) + 1e-3] * len(narrow)]
                try:
                    curve_fit(complex_model(narrow, broad), wl[sel], fl[sel], p0=p0, sigma=1 / np.sqrt(iv[sel]),
                              maxfev=2000)
                    fitted += 1
                except (RuntimeError, ValueError):
                    failed += 1
        t["fits"] += time.perf_counter() - t0
        rows.clear()
        natives.clear()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            t0 = time.perf_counter()
            s = Spectrum.read(path, format="SDSS-III/IV spec")
            wl, fl = s.spectral_axis.value, s.flux.value
            iv = s.uncertainty.array
            t["read"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            a = 1.0 + z[Path(path).name]
            wl, fl, iv = wl / a, fl * a, iv / a**2
            good = iv > 0
            f = np.interp(grid, wl[good], fl[good])
            rows.append(f / np.median(f[norm]))
            natives.append((wl, fl, iv))
            t["preprocess"] += time.perf_counter() - t0
            if len(rows) == 1000:
                flush()
        if rows:
            flush()
    return dict(times=t, fitted=fitted, failed=failed)


def train_peer(model_file: Path, quick: bool) -> float:
    from sklearn.svm import SVC

    from agnlens.simulate import simulate_set

    train = simulate_set(600 if quick else 2000, seed=7, grid="balmer", convention="spectroscopic")
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # scikit-learn 1.9 deprecates probability=True; it is what users have
        warnings.simplefilter("ignore", FutureWarning)
        svc = SVC(probability=True, random_state=0).fit(np.asarray(train.flux, dtype=np.float64), train.labels)
    with open(model_file, "wb") as fh:
        pickle.dump(svc, fh)
    return time.perf_counter() - t0


def run_peer(paths: list[Path], z: dict[str, float], model_file: Path, tmp: Path) -> dict:
    (tmp / "z.json").write_text(json.dumps(z))
    (tmp / "paths.json").write_text(json.dumps([str(p) for p in paths]))
    env = {**os.environ, **ONE_THREAD,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    res = monitored([sys.executable, __file__, "_peer", str(tmp / "paths.json"), str(tmp / "z.json"),
                     str(model_file)], env)
    if res["returncode"] != 0:
        raise RuntimeError(f"the peer pipeline failed: {res['stderr'][-2000:]}")
    res.update(json.loads(res["stdout"].strip().splitlines()[-1]))
    return res


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def run(quick: bool = False, sizes: list[int] | None = None, schedulers=("local", "processes"),
        with_peer: bool = True, commands=tuple(COMMANDS)) -> list[dict]:
    sizes = sizes or [200 if quick else 10_000]
    rows, peaks = [], {}  # (command, scheduler) -> [(n, peak of the process doing the work)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_file = tmp / "svc.pkl"
        fit_s = train_peer(model_file, quick) if with_peer else float("nan")
        for n in sizes:
            files = tmp / f"fits-{n}"
            paths, z = make_files(files, n)
            peer_rate, peer_note = float("nan"), "peer not run"
            if with_peer:
                p = run_peer(paths, z, model_file, tmp)
                progress(f"peer, {n} files: {n / p['wall']:.3g} spectra/s/core, {p['wall']:.1f} s")
                peer_rate = n / p["wall"]
                peer_note = (f"peer {p['wall']:.1f} s wall ({n / p['cpu']:.1f} spectra per CPU s, peak "
                             f"{p['peak_main']:.0f} MiB): read {p['times']['read']:.1f} s, preprocess "
                             f"{p['times']['preprocess']:.1f} s, predict_proba {p['times']['predict']:.1f} s, "
                             f"curve_fit {p['times']['fits']:.1f} s ({p['fitted']} fits, {p['failed']} failed); "
                             f"its SVC fitted beforehand in {fit_s:.1f} s")
            warm = tmp / "warm"  # the default models (and explain's map) are built once and cached: not timed
            if not warm.exists():
                warm.mkdir()
                for p in paths[:3]:
                    (warm / p.name).symlink_to(p)
                for command in commands:
                    run_agnlens(command, warm, warm, "local")
            for command in commands:
                for scheduler in schedulers:
                    out = tmp / "out"
                    subprocess.run(["rm", "-rf", str(out)], check=True)
                    out.mkdir()
                    r = run_agnlens(command, files, out, scheduler)
                    cores = 1 if scheduler == "local" else 2
                    where = "1 process, 1 core" if cores == 1 else "LocalCluster 2 workers (incl. start-up)"
                    name = f"agnlens {command}, {n} files, {where}"
                    if r["returncode"] not in (0, 1):  # 1: some inputs rejected, the rest done
                        rows.append(dict(benchmark=name, ours=float("nan"), peer=peer_rate, peer_name="peer",
                                         unit="spectra/s/core", ratio=float("nan"),
                                         note=f"failed (exit {r['returncode']}): {r['stderr'].strip()[-300:]}"))
                        continue
                    rate = n / r["wall"] / cores
                    memory = (f"peak {r['peak_main']:.0f} MiB" if cores == 1 else
                              f"peak {r['peak_main']:.0f} MiB client, {r['peak_child']:.0f} MiB per worker")
                    if cores == 2 and not r["peak_child"]:
                        memory += " (no worker process started: the command did its work in its own process)"
                    peaks.setdefault((command, scheduler), []).append(
                        (n, r["peak_child"] if cores == 2 and r["peak_child"] else r["peak_main"]))
                    progress(f"{name}: {rate:.3g} spectra/s/core, {r['wall']:.1f} s, {memory}")
                    rows.append(dict(
                        benchmark=name, ours=rate, peer=peer_rate, unit="spectra/s/core",
                        peer_name="specutils read + sklearn SVC.predict_proba + curve_fit per line complex (1 core)",
                        ratio=rate / peer_rate,
                        note=f"{r['wall']:.1f} s wall, {n / r['cpu']:.1f} spectra per CPU s, {memory}; {peer_note}"))
    for (command, scheduler), sizes_peaks in peaks.items():
        if len(sizes_peaks) > 1:
            (n0, m0), (n1, m1) = sizes_peaks[0], sizes_peaks[-1]
            who = "the process" if scheduler == "local" else "a worker (or the client when none started)"
            rows[-1]["note"] += (f"; peak memory of {who}, {command}, {scheduler}: {m0:.0f} MiB at {n0} files, "
                                 f"{m1:.0f} MiB at {n1} ({(m1 / m0 - 1) * 100:+.0f}%)")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", help="numbers of files (default 10000; --quick 200)")
    parser.add_argument("--quick", action="store_true", help="200 files: a smoke run")
    parser.add_argument("--only", choices=["local", "processes"], help="one scheduler only")
    parser.add_argument("--no-peer", action="store_true", help="skip the peer pipeline")
    parser.add_argument("--commands", nargs="+", choices=["classify", "measure", "explain"],
                        help="some of the commands only (default all three)")
    args = parser.parse_args(argv)
    names = {"classify": "classify", "measure": "classify --measure", "explain": "explain --max-figures 0"}
    commands = [names[c] for c in args.commands] if args.commands else list(COMMANDS)
    rows = run(args.quick, args.n, (args.only,) if args.only else ("local", "processes"), not args.no_peer, commands)
    for r in rows:
        ratio = f"{r['ratio']:.3g}x" if np.isfinite(r["ratio"]) else "n/a"
        print(f"| {r['benchmark']} | {r['ours']:.4g} {r['unit']} | {r['peer']:.4g} {r['unit']} | {ratio} |")
    for r in rows:
        print(f"- {r['benchmark']}: {r['note']}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_peer":
        paths = json.loads(Path(sys.argv[2]).read_text())
        print(json.dumps(peer(paths, json.loads(Path(sys.argv[3]).read_text()), sys.argv[4])))
        sys.exit(0)
    sys.exit(main())
