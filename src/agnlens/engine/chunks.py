"""Applying a function to every chunk of rows of a store: the task a worker runs, the run that
skips finished chunks, and the assembly of the parts into the outputs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agnlens.atomic import atomic_path, check_output, csv_safe, write_text
from agnlens.engine.cluster import execute
from agnlens.engine.resume import atomic_save, check_retries, claim, marker, progress_bar, read_json
from agnlens.errors import ReadError
from agnlens.io.store import check_chunk_size, read_rows, store_chunks, store_info

log = logging.getLogger(__name__)


@dataclass
class MapResult:
    """What :func:`map_chunks` did.

    Attributes
    ----------
    out_path : Path
        The output directory.
    outputs : dict of str to Path
        Each output by name: ``OUT/<name>.csv`` for tables, ``OUT/<name>.zarr`` for arrays.
    n_rows : int
        Rows (spectra) covered.
    n_chunks : int
    n_skipped : int
        Chunks already done by an earlier run (not recomputed).
    n_computed : int
        Chunks computed in this run.
    seconds : float
        Wall time of this run.
    assemble_seconds : float
        Of which concatenating the parts into the outputs.
    """

    out_path: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    n_rows: int = 0
    n_chunks: int = 0
    n_skipped: int = 0
    n_computed: int = 0
    seconds: float = 0.0
    assemble_seconds: float = 0.0


def map_chunks(
    func: Callable[..., pd.DataFrame | dict],
    store_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    scheduler="local",
    chunk_size: int | None = None,
    progress: bool = False,
    retries: int = 2,
    args: Sequence = (),
    job: str | None = None,
    keep_parts: bool = False,
    columns: Sequence[str] | None = None,
) -> MapResult:
    """Apply ``func`` to every chunk of a store, write results as chunks finish, resume on rerun.

    Parameters
    ----------
    func : callable
        ``func(chunk: SpectrumSet, *args)`` returning a :class:`pandas.DataFrame` (saved as
        ``results``) or a dict mapping output names to DataFrames or to arrays whose first axis
        runs over the chunk's rows. It must be picklable (a module-level function) for the
        distributed schedulers, and deterministic for resume and retries to be exact.
    store_path : path-like
        An agnlens store.
    out_path : path-like
        Output directory (created); holds ``parts/`` while running and the outputs at the end.
    scheduler : {"local", "processes"}, address or distributed.Client
        See :func:`agnlens.engine.cluster.get_client`.
    chunk_size : int, optional
        Rows per task; default the store's chunk size (use a multiple of it so that no two tasks
        decompress the same Zarr chunk).
    progress : bool
        Show a tqdm bar over chunks on stderr.
    retries : int, default 2
        Extra attempts for a chunk whose function raises (or whose worker dies, see the module
        docstring).
    args : sequence
        Extra arguments of ``func`` (e.g. the model); on a cluster they are sent to every worker
        once, not with every task.
    job : str, optional
        A name for what ``func`` computes; a rerun into the same ``out_path`` must use the same
        one (default: ``func``'s qualified name).
    keep_parts : bool
        Keep ``OUT/parts/`` after assembling the outputs (default: delete it).
    columns : sequence of str, optional
        Metadata columns ``func`` needs (default all; fewer is faster to read).

    Returns
    -------
    MapResult

    Raises
    ------
    ValueError
        ``out_path`` holds the parts of a different run, or bad arguments.
    RuntimeError
        Some chunks still failed after the retries; the finished ones are kept, so a rerun
        resumes.
    """
    t0 = time.perf_counter()
    # absolute paths: workers may run with another working directory
    store_path = Path(store_path).resolve()
    out_path = Path(out_path).resolve()
    check_output(out_path, [store_path], option="out_path")
    retries = check_retries(retries)
    info = store_info(store_path)  # raises ReadError when it is not a store
    size = info["chunk_size"] if chunk_size is None else check_chunk_size(chunk_size)
    ranges = store_chunks(store_path, size)
    job = job or f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
    description = {
        "job": job,
        "store": str(store_path),
        "n_spectra": info["n_spectra"],
        "chunk_size": size,
        "n_chunks": len(ranges),
        "store_uid": info["uid"],
    }
    parts = out_path / "parts"
    result = MapResult(out_path=out_path, n_rows=info["n_spectra"], n_chunks=len(ranges))
    complete = read_json(out_path / "complete.json")
    if complete is not None and complete.get("job") == description:
        outputs = {k: out_path / v for k, v in complete["outputs"].items()}
        if all(p.exists() for p in outputs.values()):
            log.info("%s: already complete, nothing to do", out_path)
            result.outputs, result.n_skipped = outputs, len(ranges)
            result.seconds = time.perf_counter() - t0
            return result
    claim(out_path, description)
    parts.mkdir(parents=True, exist_ok=True)
    todo = [(i, a, b) for i, (a, b) in enumerate(ranges) if not marker(parts, i).exists()]
    result.n_skipped = len(ranges) - len(todo)
    if result.n_skipped:
        log.info("%s: resuming, %d of %d chunks already done", out_path, result.n_skipped, len(ranges))

    bar = progress_bar(progress, len(ranges), result.n_skipped)
    cols = None if columns is None else tuple(columns)
    tasks = [(i, (func, str(store_path), str(parts), i, a, b, cols)) for i, a, b in todo]
    try:
        failures = execute(scheduler, run_chunk, tasks, args, retries, bar)
    finally:
        bar.close()
    result.n_computed = len(todo) - len(failures)
    if failures:
        failures.sort(key=lambda f: f[0])
        i, first = failures[0]
        # a damaged store fails a rerun the same way: say so, never "rerun to resume"
        if isinstance(first, ReadError) and ("is damaged" in first.reason or "lost chunk" in first.reason):
            raise ReadError(first.path, f"{' '.join(first.reason.split())}; {len(failures)} of {len(ranges)} "
                            f"chunks of {out_path} failed (first: chunk {i}): the store is damaged, a rerun cannot "
                            f"succeed until it is restored (the finished chunks are kept in {parts})") from first
        raise RuntimeError(
            f"{out_path}: {len(failures)} of {len(ranges)} chunks failed after {retries} retries "
            f"(first: chunk {i}: {type(first).__name__}: {first}); the finished chunks are kept in "
            f"{parts}, fix the cause and rerun the same command to resume"
        ) from first
    t_assemble = time.perf_counter()
    result.outputs = assemble(parts, out_path, len(ranges), size, info["n_spectra"])
    result.assemble_seconds = time.perf_counter() - t_assemble
    write_text(
        out_path / "complete.json",
        json.dumps({"job": description, "outputs": {k: v.name for k, v in result.outputs.items()}}, indent=2),
    )
    if not keep_parts:
        shutil.rmtree(parts, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    log.info(
        "%s: %d chunks (%d computed, %d resumed) in %.1f s",
        out_path, len(ranges), result.n_computed, result.n_skipped, result.seconds,
    )
    return result


def run_chunk(
    func, store_path: str, parts_dir: str, index: int, start: int, stop: int, columns: tuple | None, *args
) -> dict:
    """Compute one chunk and write its parts (this is the task a worker runs).

    Reads rows ``start:stop`` of the store (metadata ``columns``, default all), calls
    ``func(chunk, *args)``, writes every output atomically into ``parts_dir`` and then the chunk's
    ``.done`` marker; returns the marker's content (a few numbers, never the data). A chunk whose
    marker exists is not recomputed.
    """
    parts = Path(parts_dir)
    done_file = marker(parts, index)
    done = read_json(done_file)
    if done is not None:
        return done
    t0 = time.perf_counter()
    chunk = read_rows(store_path, start, stop, columns=columns)
    out = func(chunk, *args)
    outputs = _normalise_output(out, stop - start, index)
    stem = f"chunk-{index:06d}"
    tables, arrays = {}, {}
    for name, value in outputs.items():
        if isinstance(value, pd.DataFrame):
            target = parts / f"{stem}.{name}.csv"
            atomic_save(target, lambda f, v=value: csv_safe(v).to_csv(f, index=False))
            tables[name] = target.name
        else:
            arrays[name] = value
    if arrays:
        atomic_save(parts / f"{stem}.npz", lambda f: np.savez(f, **arrays))
    content = {
        "index": index,
        "start": start,
        "stop": stop,
        "tables": tables,
        "arrays": {k: [v.dtype.str, list(v.shape[1:])] for k, v in arrays.items()},
        "npz": f"{stem}.npz" if arrays else None,
        "seconds": time.perf_counter() - t0,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "finished": time.time(),
    }
    atomic_save(done_file, lambda f: f.write(json.dumps(content).encode()))
    return content


def _normalise_output(out, n_rows: int, index: int) -> dict:
    if isinstance(out, pd.DataFrame):
        out = {"results": out}
    if not isinstance(out, dict) or not out:
        raise TypeError(
            f"chunk {index}: the function must return a DataFrame or a non-empty dict of DataFrames "
            f"and arrays, got {type(out).__name__}"
        )
    normal = {}
    for name, value in out.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"chunk {index}: output names must be plain words (letters, digits, _ -), got {name!r}")
        if not isinstance(value, pd.DataFrame):
            value = np.asarray(value)
            if value.dtype == object or value.ndim == 0 or value.shape[0] != n_rows:
                raise ValueError(
                    f"chunk {index}: output {name!r} must be a DataFrame or a numeric array with one row "
                    f"per spectrum ({n_rows}), got {value.dtype} of shape {value.shape}"
                )
        normal[name] = value
    return normal


def assemble(parts: Path, out_path: Path, n_chunks: int, chunk_size: int, n_rows: int) -> dict[str, Path]:
    """Concatenate the parts into the outputs, one part at a time (bounded memory), atomically."""
    import zarr

    markers = [read_json(marker(parts, i)) for i in range(n_chunks)]
    if any(m is None for m in markers):
        missing = [i for i, m in enumerate(markers) if m is None]
        raise RuntimeError(f"{parts}: chunks {missing[:10]} have no results; rerun to compute them")
    outputs: dict[str, Path] = {}
    table_names = sorted({k for m in markers for k in m["tables"]})
    array_specs: dict[str, tuple[str, tuple[int, ...]]] = {}
    for m in markers:
        for k, (dtype, trailing) in m["arrays"].items():
            array_specs.setdefault(k, (dtype, tuple(trailing)))
    for name in table_names:
        target = out_path / f"{name}.csv"
        header = None
        with atomic_path(target) as tmp, open(tmp, "wb") as fout:
            for m in markers:
                part = m["tables"].get(name)
                if part is None:
                    continue
                with open(parts / part, "rb") as fin:
                    first = fin.readline()
                    if header is None:
                        header = first
                        fout.write(first)
                    elif first != header:
                        raise ValueError(
                            f"{parts / part}: columns {first.decode().strip()!r} differ from the first "
                            f"chunk's {header.decode().strip()!r}; the function must return the same columns"
                        )
                    shutil.copyfileobj(fin, fout)
        outputs[name] = target
    if array_specs:
        tmp_dir = out_path / f".arrays.tmp-{uuid.uuid4().hex[:8]}"
        try:
            zarrs = {}
            for name, (dtype, trailing) in array_specs.items():
                zarrs[name] = zarr.create_array(
                    store=str(tmp_dir / f"{name}.zarr"), shape=(n_rows, *trailing), dtype=np.dtype(dtype),
                    chunks=(chunk_size, *trailing), zarr_format=3,
                )
            for m in markers:
                if not m["npz"]:
                    continue
                with np.load(parts / m["npz"]) as data:
                    for name in data.files:
                        zarrs[name][m["start"] : m["stop"]] = data[name]
            for name in array_specs:
                target = out_path / f"{name}.zarr"
                if target.exists():
                    shutil.rmtree(target)
                os.rename(tmp_dir / f"{name}.zarr", target)
                outputs[name] = target
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return outputs
