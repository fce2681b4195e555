"""Dask execution of ingest, classify and explain over a dataset store, at survey scale.

Everything here works in chunks of rows of a Zarr store (:mod:`agnlens.io.store`):

* **where it runs** — ``scheduler="local"`` runs the chunks one after the other in this process;
  ``"processes"`` starts a :class:`distributed.LocalCluster` on this machine (2 worker processes,
  1 thread each); an address such as ``"tcp://host:port"`` connects to a cluster that already
  runs (``dask-scheduler``/``dask-worker``, dask-jobqueue on HPC...). A
  :class:`distributed.Client` may also be passed directly.
* **bounded memory** — a task carries only the store path and its row range; the worker opens
  the store itself and reads only its chunk, and sends back only a few numbers: results go to
  disk. Peak memory per worker grows with the chunk size, not with the store.
* **resume** — every finished chunk is written atomically to ``OUT/parts/`` (a table as CSV,
  arrays as ``.npz``) followed by a ``.done`` marker. A rerun with the same store, chunk size and
  job skips every chunk that has its marker; when all are done the parts are assembled into
  ``OUT/<name>.csv`` (tables) and ``OUT/<name>.zarr`` (arrays), one part at a time, and
  ``OUT/complete.json`` is written; a rerun then does nothing.
* **failures** — a chunk whose function raises is retried ``retries`` times; a chunk whose worker
  process dies is rescheduled by the Dask scheduler (on the cluster this module starts, up to
  ``retries`` times; an external cluster uses its own ``distributed.scheduler.allowed-failures``).
  Since a chunk's result depends only on its rows, a retried run gives identical results.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.io.store import _check_chunk_size, read_rows, store_chunks, store_info
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

#: Worker processes and threads of the ``"processes"`` scheduler.
N_WORKERS = 2
THREADS_PER_WORKER = 1

_ADDRESS_PREFIXES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")


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
    """

    out_path: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    n_rows: int = 0
    n_chunks: int = 0
    n_skipped: int = 0
    n_computed: int = 0
    seconds: float = 0.0


# ---------------------------------------------------------------------------------- schedulers
@contextlib.contextmanager
def get_client(scheduler, *, retries: int = 2) -> Iterator[Any]:
    """Yield a :class:`distributed.Client` for ``scheduler`` (``None`` for ``"local"``).

    Parameters
    ----------
    scheduler : {"local", "processes"}, str address, or distributed.Client
        ``"processes"`` starts (and afterwards stops) a LocalCluster of :data:`N_WORKERS`
        processes with :data:`THREADS_PER_WORKER` thread each; an address connects to a running
        scheduler; a Client is used as it is (and not closed).
    retries : int
        For the cluster started here: how many worker deaths a task survives.
    """
    if scheduler is None or scheduler == "local":
        yield None
        return
    import distributed

    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler == "processes":
        import dask

        with dask.config.set({"distributed.scheduler.allowed-failures": int(retries)}):
            cluster = distributed.LocalCluster(
                n_workers=N_WORKERS,
                threads_per_worker=THREADS_PER_WORKER,
                processes=True,
                dashboard_address=":0",
            )
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    if isinstance(scheduler, str) and scheduler.startswith(_ADDRESS_PREFIXES):
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ValueError(
                f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one (dask scheduler) "
                f"or use --scheduler local|processes"
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    raise ValueError(
        f"scheduler must be 'local', 'processes' or an address like 'tcp://host:8786', got {scheduler!r}"
    )


# --------------------------------------------------------------------------------- map_chunks
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
        See :func:`get_client`.
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
    store_path = Path(store_path).resolve()
    out_path = Path(out_path)
    retries = _check_retries(retries)
    info = store_info(store_path)  # raises ReadError when it is not a store
    size = info["chunk_size"] if chunk_size is None else _check_chunk_size(chunk_size)
    ranges = store_chunks(store_path, size)
    job = job or f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
    description = {
        "job": job,
        "store": str(store_path),
        "n_spectra": info["n_spectra"],
        "chunk_size": size,
        "n_chunks": len(ranges),
        "store_created": info["provenance"].get("created", ""),
    }
    parts = out_path / "parts"
    result = MapResult(out_path=out_path, n_rows=info["n_spectra"], n_chunks=len(ranges))
    complete = _read_json(out_path / "complete.json")
    if complete is not None and complete.get("job") == description:
        outputs = {k: out_path / v for k, v in complete["outputs"].items()}
        if all(p.exists() for p in outputs.values()):
            log.info("%s: already complete, nothing to do", out_path)
            result.outputs, result.n_skipped = outputs, len(ranges)
            result.seconds = time.perf_counter() - t0
            return result
    _claim(out_path, description)
    parts.mkdir(parents=True, exist_ok=True)
    todo = [(i, a, b) for i, (a, b) in enumerate(ranges) if not _marker(parts, i).exists()]
    result.n_skipped = len(ranges) - len(todo)
    if result.n_skipped:
        log.info("%s: resuming, %d of %d chunks already done", out_path, result.n_skipped, len(ranges))

    bar = _progress_bar(progress, len(ranges), result.n_skipped)
    failures: list[tuple[int, BaseException]] = []
    try:
        with get_client(scheduler, retries=retries) as client:
            if client is None:
                for i, a, b in todo:
                    try:
                        _run_local(func, args, store_path, parts, i, a, b, retries)
                    except Exception as exc:  # keep going: finished chunks stay for a resume
                        log.error("chunk %d (rows %d–%d) failed: %s", i, a, b, exc)
                        failures.append((i, exc))
                    bar.update(1)
            elif todo:
                failures = _run_distributed(client, func, args, store_path, parts, todo, retries, bar)
    finally:
        bar.close()
    result.n_computed = len(todo) - len(failures)
    if failures:
        failures.sort(key=lambda f: f[0])
        i, first = failures[0]
        raise RuntimeError(
            f"{out_path}: {len(failures)} of {len(ranges)} chunks failed after {retries} retries "
            f"(first: chunk {i}: {type(first).__name__}: {first}); the finished chunks are kept in "
            f"{parts}, fix the cause and rerun the same command to resume"
        ) from first
    result.outputs = _assemble(parts, out_path, len(ranges), size, info["n_spectra"])
    from agnlens.atomic import write_text

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


def _run_local(func, args, store_path: Path, parts: Path, i: int, a: int, b: int, retries: int) -> dict:
    for attempt in range(retries + 1):
        try:
            return run_chunk(func, str(store_path), str(parts), i, a, b, *args)
        except Exception:
            if attempt == retries:
                raise
            log.warning("chunk %d failed (attempt %d of %d); retrying", i, attempt + 1, retries + 1, exc_info=True)
    raise RuntimeError("unreachable")  # pragma: no cover


def _run_distributed(client, func, args, store_path: Path, parts: Path, todo, retries: int, bar) -> list:
    import distributed

    # large arguments (a model) travel to each worker once, not inside every task
    shared = client.scatter(list(args), broadcast=True) if args else []
    futures = {}
    for i, a, b in todo:
        fut = client.submit(
            run_chunk, func, str(store_path), str(parts), i, a, b, *shared,
            retries=retries, pure=False, key=f"agnlens-chunk-{i:06d}-{uuid.uuid4().hex[:8]}",
        )
        futures[fut] = i
    failures = []
    for fut in distributed.as_completed(futures):
        i = futures[fut]
        try:
            fut.result()
        except Exception as exc:  # includes KilledWorker when a chunk kills workers repeatedly
            log.error("chunk %d failed: %s", i, exc)
            failures.append((i, exc))
        bar.update(1)
        fut.release()
    return failures


def run_chunk(func, store_path: str, parts_dir: str, index: int, start: int, stop: int, *args) -> dict:
    """Compute one chunk and write its parts (this is the task a worker runs).

    Reads rows ``start:stop`` of the store, calls ``func(chunk, *args)``, writes every output
    atomically into ``parts_dir`` and then the chunk's ``.done`` marker; returns the marker's
    content (a few numbers, never the data). A chunk whose marker exists is not recomputed.
    """
    parts = Path(parts_dir)
    marker = _marker(parts, index)
    done = _read_json(marker)
    if done is not None:
        return done
    t0 = time.perf_counter()
    chunk = read_rows(store_path, start, stop)
    out = func(chunk, *args)
    outputs = _normalise_output(out, stop - start, index)
    stem = f"chunk-{index:06d}"
    tables, arrays = {}, {}
    for name, value in outputs.items():
        if isinstance(value, pd.DataFrame):
            target = parts / f"{stem}.{name}.csv"
            _atomic_save(target, lambda f, v=value: v.to_csv(f, index=False))
            tables[name] = target.name
        else:
            arrays[name] = value
    if arrays:
        _atomic_save(parts / f"{stem}.npz", lambda f: np.savez(f, **arrays))
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
    _atomic_save(marker, lambda f: f.write(json.dumps(content).encode()))
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


def _assemble(parts: Path, out_path: Path, n_chunks: int, chunk_size: int, n_rows: int) -> dict[str, Path]:
    """Concatenate the parts into the outputs, one part at a time (bounded memory), atomically."""
    import zarr

    from agnlens.atomic import atomic_path

    markers = [_read_json(_marker(parts, i)) for i in range(n_chunks)]
    if any(m is None for m in markers):
        missing = [i for i, m in enumerate(markers) if m is None]
        raise RuntimeError(f"{parts}: chunks {missing[:10]} have no results; rerun to compute them")
    outputs: dict[str, Path] = {}
    table_names = sorted({k for m in markers for k in m["tables"]})
    array_specs = {}
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


def _claim(out_path: Path, description: dict) -> None:
    """Record which run owns ``out_path``; refuse to mix parts of different runs."""
    from agnlens.atomic import write_text

    job_file = out_path / "job.json"
    existing = _read_json(job_file)
    if existing is not None and existing != description:
        changed = sorted(k for k in description if existing.get(k) != description[k])
        raise ValueError(
            f"{out_path}: holds results of a different run (differs in {', '.join(changed)}: "
            f"{ {k: existing.get(k) for k in changed} } vs { {k: description[k] for k in changed} }); "
            f"use another output directory or delete this one"
        )
    out_path.mkdir(parents=True, exist_ok=True)
    if existing is None:
        (out_path / "complete.json").unlink(missing_ok=True)
        write_text(job_file, json.dumps(description, indent=2))


def _marker(parts: Path, index: int) -> Path:
    return parts / f"chunk-{index:06d}.done"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _atomic_save(path: Path, write: Callable) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_retries(retries) -> int:
    if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    return int(retries)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(progress: bool, total: int, initial: int):
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="chunk", desc="chunks")


# ----------------------------------------------------------------------------- entry points
def classify_chunk(chunk: SpectrumSet, model) -> pd.DataFrame:
    """Probabilities and predicted class of every spectrum of a chunk.

    Returns
    -------
    DataFrame
        ``spec_id, label, predicted, p_<class>...`` (one ``p_`` column per ``model.classes_``).
    """
    X = np.asarray(chunk.flux, dtype=np.float64)
    classes = np.asarray(model.classes_).astype(str)
    proba = np.asarray(model.predict_proba(X), dtype=np.float64) if len(chunk) else np.empty((0, len(classes)))
    table = pd.DataFrame({"spec_id": chunk.spec_id, "label": chunk.labels})
    table["predicted"] = classes[np.argmax(proba, axis=1)] if len(chunk) else np.array([], dtype=str)
    for j, c in enumerate(classes):
        table[f"p_{c}"] = proba[:, j]
    return table


def classify_store(
    model,
    store_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    scheduler="local",
    chunk_size: int | None = None,
    progress: bool = False,
    retries: int = 2,
) -> Path:
    """Classify every spectrum of a store, in chunks; resumable.

    Parameters
    ----------
    model : fitted classifier
        Needs ``predict_proba`` and ``classes_`` (e.g. :class:`agnlens.models.svm.SpectrumSVC`).
    store_path, out_path, scheduler, chunk_size, progress, retries
        See :func:`map_chunks`.

    Returns
    -------
    Path
        ``OUT/predictions.csv`` with columns ``spec_id, label, predicted, p_<class>...`` in store
        order.
    """
    _check_model(model)
    res = map_chunks(
        _classify_output, store_path, out_path, scheduler=scheduler, chunk_size=chunk_size,
        progress=progress, retries=retries, args=(model,), job=f"classify {_model_tag(model)}",
    )
    return res.outputs["predictions"]


def _classify_output(chunk: SpectrumSet, model) -> dict:
    return {"predictions": classify_chunk(chunk, model)}


def explain_chunk(chunk: SpectrumSet, model, method: str = "gradient", target=None, options: dict | None = None) -> dict:
    """Saliency maps of every spectrum of a chunk (:func:`agnlens.explain.saliency.saliency`).

    Returns
    -------
    dict
        ``saliency``: float32 array of shape (n_chunk, n_pixels); ``index``: DataFrame with
        ``spec_id, label, predicted, target_class, p_<class>...``.
    """
    from agnlens.explain.saliency import saliency

    sal = saliency(model, chunk, method=method, target=target, **(options or {}))
    index = pd.DataFrame(
        {
            "spec_id": chunk.spec_id,
            "label": chunk.labels,
            "predicted": np.asarray(sal.predicted).astype(str),
            "target_class": np.asarray(sal.target).astype(str),
        }
    )
    for j, c in enumerate(np.asarray(sal.classes).astype(str)):
        index[f"p_{c}"] = sal.probabilities[:, j]
    return {"saliency": sal.values.astype(np.float32), "index": index}


def explain_store(
    model,
    store_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    method: str = "gradient",
    target=None,
    scheduler="local",
    chunk_size: int | None = None,
    progress: bool = False,
    retries: int = 2,
    **method_options,
) -> dict[str, Path]:
    """Saliency maps of every spectrum of a store, in chunks; resumable.

    Parameters
    ----------
    model : fitted SpectrumSVC
        (Any model :func:`agnlens.explain.saliency.saliency` supports for ``method``.)
    method : str, default "gradient"
        The exact gradient of the explained class probability; see
        :func:`agnlens.explain.saliency.saliency` for the others.
    target : None or class label
        None explains each spectrum's predicted class.
    store_path, out_path, scheduler, chunk_size, progress, retries
        See :func:`map_chunks`.
    **method_options
        Passed to :func:`~agnlens.explain.saliency.saliency`.

    Returns
    -------
    dict
        ``"saliency"``: ``OUT/saliency.zarr``, a float32 Zarr array of shape (n_spectra, n_pixels)
        in store order; ``"index"``: ``OUT/index.csv`` (``spec_id, label, predicted,
        target_class, p_<class>...``).
    """
    _check_model(model)
    options = dict(method_options)
    res = map_chunks(
        explain_chunk, store_path, out_path, scheduler=scheduler, chunk_size=chunk_size,
        progress=progress, retries=retries, args=(model, method, target, options),
        job=f"explain {method} target={target!r} {sorted(options.items())!r} {_model_tag(model)}",
    )
    return {"saliency": res.outputs["saliency"], "index": res.outputs["index"]}


def _check_model(model) -> None:
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise TypeError(
            f"expected a fitted classifier with predict_proba and classes_ (a SpectrumSVC from "
            f"agnlens.models), got {type(model).__name__}"
        )


def _model_tag(model) -> str:
    """A short fingerprint of a fitted model (its parameters and fitted arrays), so that a rerun
    with another model never resumes the parts of this one."""
    import hashlib

    h = hashlib.sha256(type(model).__name__.encode())
    _fingerprint(h, model, depth=0)
    return f"{type(model).__name__}:{h.hexdigest()[:16]}"


def _fingerprint(h, obj, depth: int) -> None:
    if isinstance(obj, np.ndarray):
        h.update(f"{obj.dtype.str}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes() if obj.dtype != object else repr(obj.tolist()).encode())
    elif isinstance(obj, (str, int, float, bool, type(None), np.generic)):
        h.update(repr(obj).encode())
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _fingerprint(h, v, depth + 1)
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _fingerprint(h, obj[k], depth + 1)
    elif depth < 4 and hasattr(obj, "__dict__"):
        _fingerprint(h, {k: v for k, v in vars(obj).items() if not k.startswith("__")}, depth + 1)
    else:
        h.update(type(obj).__name__.encode())
