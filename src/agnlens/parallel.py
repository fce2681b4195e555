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
  ``OUT/complete.json`` is written; a rerun then does nothing. One protocol (:func:`_claim`) serves
  every resumable run here: ``job.json`` records what the run is (the job, the store's identity,
  which changes with every write; for ingest every input's name, size and modification time), the
  same run resumes, and a different one is refused with a message saying what differs, never
  silently discarded.
* **failures** — a chunk whose function raises is retried ``retries`` times; a chunk whose worker
  process dies is rescheduled by the Dask scheduler (on the cluster this module starts, up to
  ``retries`` times; an external cluster uses its own ``distributed.scheduler.allowed-failures``).
  Since a chunk's result depends only on its rows, a retried run gives identical results.
* **where the files are** — workers open the store and write the parts themselves, so on a
  multi-machine cluster the store and the output directory must be on a file system every
  worker sees (as is usual on HPC); paths are made absolute before they are sent.
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

from agnlens.atomic import atomic_path, check_output, csv_safe, exclusive_lock, hidden_sibling
from agnlens.io.store import _check_chunk_size, _check_replaceable, read_rows, store_chunks, store_info
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
        cluster = _start_cluster(retries)
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


def _retried(action, what: str, advice: str, attempts: int = 2, between=None):
    """``action()``, tried ``attempts`` times (a Dask worker killed meanwhile raises several kinds),
    then one line: what failed, why, and ``advice``. ``between()`` runs before each new try."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts:
                raise RuntimeError(f"could not {what} ({type(exc).__name__}: {exc}); {advice}") from exc
            log.warning("could not %s (%s: %s); trying again", what, type(exc).__name__, exc)
            if between is not None:
                between()
    raise AssertionError("unreachable")  # pragma: no cover


def _start_cluster(retries: int, attempts: int = 2):
    """A LocalCluster; a start-up that fails (a worker killed while starting...) is tried again
    once, then reported in one line."""
    import dask
    import distributed

    def start():
        with dask.config.set({"distributed.scheduler.allowed-failures": int(retries)}):
            return distributed.LocalCluster(
                n_workers=N_WORKERS, threads_per_worker=THREADS_PER_WORKER, processes=True, dashboard_address=":0"
            )

    return _retried(start, "start the local Dask cluster", f"tried {attempts} times; rerun, or use --scheduler local",
                    attempts)


def _scatter(client, shared: list, attempts: int = 2) -> list:
    """Send the shared arguments to every worker; a worker lost meanwhile → one retry, then one line."""
    # hash=False: fresh keys, so nothing is shared with futures of an earlier client
    return _retried(lambda: client.scatter(shared, broadcast=True, hash=False),
                    "send the model and arguments to the Dask workers",
                    "a worker died or is unreachable; rerun to resume", attempts,
                    between=lambda: client.wait_for_workers(1, timeout=60))


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
        "store_uid": info["uid"],
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
    cols = None if columns is None else tuple(columns)
    tasks = [(i, (func, str(store_path), str(parts), i, a, b, cols)) for i, a, b in todo]
    try:
        failures = _execute(scheduler, run_chunk, tasks, args, retries, bar)
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
    t_assemble = time.perf_counter()
    result.outputs = _assemble(parts, out_path, len(ranges), size, info["n_spectra"])
    result.assemble_seconds = time.perf_counter() - t_assemble
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


def _execute(scheduler, fn: Callable, tasks: list[tuple[int, tuple]], shared: Sequence, retries: int, bar) -> list:
    """Run ``fn(*task_args, *shared)`` for every task; return the failures as (index, exception).

    A failing task never stops the others (their results stay on disk for a resume).
    """
    failures = []
    with get_client(scheduler, retries=retries) as client:
        if client is None:
            for i, task_args in tasks:
                for attempt in range(retries + 1):
                    try:
                        fn(*task_args, *shared)
                        break
                    except Exception as exc:
                        if attempt == retries:
                            log.error("task %d failed: %s", i, exc)
                            failures.append((i, exc))
                        else:
                            log.warning(
                                "task %d failed (attempt %d of %d): %s; retrying", i, attempt + 1, retries + 1, exc
                            )
                bar.update(1)
            return failures
        if not tasks:
            return failures
        import distributed

        # large shared arguments (a model, a catalogue) travel to each worker once, not per task
        shared_futures = _scatter(client, list(shared)) if shared else []
        futures = {}
        for i, task_args in tasks:
            fut = client.submit(
                fn, *task_args, *shared_futures, retries=retries, pure=False,
                key=f"agnlens-{getattr(fn, '__name__', 'task')}-{i:06d}-{uuid.uuid4().hex[:8]}",
            )
            futures[fut] = i
        # results come with the iterator (no blocking fut.result() from this thread, which could
        # meet an asyncio primitive bound to another event loop after a worker died)
        for fut, result in distributed.as_completed(futures, with_results=True, raise_errors=False):
            i = futures[fut]
            if fut.status in ("error", "cancelled"):  # incl. KilledWorker (a task that kills workers)
                error = result[1] if isinstance(result, tuple) else result
                log.error("task %d failed: %s", i, error)
                failures.append((i, error))
            bar.update(1)
            fut.release()
    return failures


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
    marker = _marker(parts, index)
    done = _read_json(marker)
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
            _atomic_save(target, lambda f, v=value: csv_safe(v).to_csv(f, index=False))
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


def _claim(out_path: Path, description: dict, *, discard: bool = False) -> None:
    """Record which run owns ``out_path`` (its ``job.json``); refuse to mix parts of different runs.

    The one resume protocol of this module (map_chunks' output folders and ingest's work folder):
    the same run resumes, a different one is refused with a message that says what differs.
    ``discard=True`` (the caller was told to replace its output) deletes the other run's work,
    with a log line, instead of refusing.
    """
    from agnlens.atomic import write_text

    job_file = out_path / "job.json"
    existing = _read_json(job_file)
    if existing is not None and existing != description:
        changed = sorted(k for k in description if existing.get(k) != description[k])
        if not discard:
            shown = {k: existing.get(k) for k in changed[:3]}
            raise ValueError(
                f"{out_path}: holds the work of a different run (differs in {', '.join(changed)}: "
                f"{_short(shown)} there vs {_short({k: description[k] for k in changed[:3]})} now); "
                f"rerun the original command to finish it, or delete {out_path} (ingest: --overwrite) "
                f"to start afresh"
            )
        log.warning(
            "%s: discarding the unfinished work of a different run (differs in %s)", out_path, ", ".join(changed)
        )
        shutil.rmtree(out_path)
        existing = None
    out_path.mkdir(parents=True, exist_ok=True)
    if existing is None:
        (out_path / "complete.json").unlink(missing_ok=True)
        write_text(job_file, json.dumps(description, indent=2))


def _short(obj, limit: int = 200) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _marker(parts: Path, index: int) -> Path:
    return parts / f"chunk-{index:06d}.done"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _atomic_save(path: Path, write: Callable) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


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
        columns=("spec_id", "label"),
    )
    return res.outputs["predictions"]


def _classify_output(chunk: SpectrumSet, model) -> dict:
    return {"predictions": classify_chunk(chunk, model)}


def explain_chunk(
    chunk: SpectrumSet, model, method: str = "gradient", target=None, options: dict | None = None
) -> dict:
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
        columns=("spec_id", "label"),
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


# ------------------------------------------------------------------------------------ ingest
def ingest_batch(
    paths: Sequence[str],
    parts_dir: str,
    index: int,
    grid,
    catalog: pd.DataFrame | None,
    allow_zwarning: bool,
    max_bad_fraction: float,
) -> dict:
    """Read, label, check and preprocess one batch of files (the task a worker runs).

    Writes ``batch-NNNNNN.npz`` (flux, ivar, mask of the accepted spectra), ``batch-NNNNNN.json``
    (their metadata and the rejections) and then the ``.done`` marker, each atomically. A bad file
    becomes a rejection with its reason; it never fails the batch.
    """
    from agnlens.errors import AgnlensError
    from agnlens.ingest import display_name, ingest_one

    parts = Path(parts_dir)
    marker = parts / f"batch-{index:06d}.done"
    done = _read_json(marker)
    if done is not None:
        return done
    n_pix = grid.wavelength.size
    fluxes, ivars, masks, metas, rejected = [], [], [], [], []
    for path in paths:
        try:
            spectrum = ingest_one(
                path, grid=grid, labels=catalog, allow_zwarning=allow_zwarning, max_bad_fraction=max_bad_fraction
            )
        except AgnlensError as exc:
            rejected.append([display_name(path), getattr(exc, "reason", str(exc))])
            continue
        fluxes.append(np.asarray(spectrum.flux, dtype=np.float32))
        ivars.append(np.asarray(spectrum.ivar, dtype=np.float32))
        masks.append(np.asarray(spectrum.mask, dtype=bool))
        metas.append(spectrum.meta)
    stem = f"batch-{index:06d}"
    flux_rows = np.array(fluxes, dtype=np.float32).reshape(-1, n_pix)
    ivar_rows = np.array(ivars, dtype=np.float32).reshape(-1, n_pix)
    mask_rows = np.array(masks, dtype=bool).reshape(-1, n_pix)
    _atomic_save(parts / f"{stem}.npz", lambda f: np.savez(f, flux=flux_rows, ivar=ivar_rows, mask=mask_rows))
    payload = json.dumps({"meta": metas, "rejected": rejected}, default=_json_default)
    _atomic_save(parts / f"{stem}.json", lambda f: f.write(payload.encode()))
    content = {"index": index, "accepted": len(metas), "rejected": len(rejected), "pid": os.getpid()}
    _atomic_save(marker, lambda f: f.write(json.dumps(content).encode()))
    return content


def ingest_files(
    paths,
    out_store: str | os.PathLike,
    *,
    grid="paper",
    labels=None,
    scheduler="local",
    batch_size: int = 256,
    allow_zwarning: bool = False,
    max_bad_fraction: float = 0.1,
    chunk_size: int = 1024,
    overwrite: bool = False,
    progress: bool = False,
    retries: int = 2,
):
    """Ingest spectrum files into a store, reading and preprocessing batches in parallel.

    Same result as :func:`agnlens.ingest.ingest` followed by
    :func:`~agnlens.io.store.write_store`, but batches of files run as tasks on ``scheduler``.
    Finished batches are kept in a hidden work directory beside ``out_store``
    (``.NAME.ingest-work/``), so a rerun of the same command skips them; the store itself is
    written in one atomic step at the end (a killed ingest leaves no half store) and the work
    directory is then removed. The whole ingest holds the store's writer lock.

    Parameters
    ----------
    paths : iterable of path-like
        Files, directories or glob patterns (see :func:`agnlens.io.expand_inputs`). They are
        sent to the workers as given (and recorded so in the ``source`` column): use absolute
        paths when the workers run in another directory or on other machines.
    out_store : path-like
        The store to write.
    grid : str or Grid
    labels : path or DataFrame, optional
        A label catalogue (see :func:`agnlens.io.read_catalog`).
    scheduler : {"local", "processes"}, address or distributed.Client
        See :func:`get_client`.
    batch_size : int, default 256
        Files per task.
    allow_zwarning, max_bad_fraction
        See :func:`agnlens.ingest.ingest_one`.
    chunk_size : int, default 1024
        Spectra per chunk of the store.
    overwrite : bool
        Replace an existing store.
    progress : bool
        Show a tqdm bar over batches.
    retries : int
        Extra attempts of a failing batch.

    Returns
    -------
    spectra_path : Path or None
        The store, or None when no spectrum was accepted (no store is written).
    summary : agnlens.ingest.IngestSummary
        Counts, rejections with reasons, catalogue matching.

    Raises
    ------
    FileExistsError
        ``out_store`` exists and ``overwrite`` is False, or it is not an agnlens store (only a
        store is ever replaced); checked before any work.
    UsageError
        ``out_store`` is one of the inputs or holds one.
    BlockingIOError
        Another process kept writing ``out_store`` longer than the lock timeout.
    ValueError
        The work folder holds the unfinished work of a different ingest (other files, sizes,
        modification times, options) and ``overwrite`` is False.
    RuntimeError
        A batch failed after the retries (the finished ones are kept for a resume).
    """
    out_store = Path(out_store).resolve()
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (files per task), got {batch_size!r}")
    retries = _check_retries(retries)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    check_output(out_store, paths)  # never onto an input or a folder that holds one
    _check_replaceable(out_store, overwrite)  # only an agnlens store, only with overwrite
    with exclusive_lock(out_store):
        return _ingest_locked(
            paths, out_store, grid=grid, labels=labels, scheduler=scheduler, batch_size=batch_size,
            allow_zwarning=allow_zwarning, max_bad_fraction=max_bad_fraction, chunk_size=chunk_size,
            overwrite=overwrite, progress=progress, retries=retries,
        )


def _ingest_locked(
    paths, out_store: Path, *, grid, labels, scheduler, batch_size, allow_zwarning, max_bad_fraction,
    chunk_size, overwrite, progress, retries,
):
    import hashlib

    import dask
    import dask.array as da

    from agnlens.ingest import IngestSummary
    from agnlens.io import expand_inputs, read_catalog
    from agnlens.io.store import write_store
    from agnlens.preprocess import Rejection, get_grid, preprocessing_provenance

    _check_replaceable(out_store, overwrite)  # again, under the lock
    grid = get_grid(grid)
    files = [str(p) for p in expand_inputs(paths)]
    catalog = read_catalog(labels) if isinstance(labels, (str, os.PathLike)) else labels
    if catalog is not None:
        catalog = catalog.drop_duplicates("spec_id").set_index("spec_id", drop=False)
    summary = IngestSummary(n_inputs=len(files), catalog_rows=0 if catalog is None else len(catalog))
    batches = [files[a : a + batch_size] for a in range(0, len(files), batch_size)]

    work = hidden_sibling(out_store, "ingest-work")
    parts = work / "parts"
    # each file by name, size and modification time: a file changed since a killed run is
    # not answered with that run's results
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))  # names need not be UTF-8
    if catalog is not None:
        h.update(pd.util.hash_pandas_object(catalog.astype(str), index=False).to_numpy().tobytes())
    description = {
        "job": "ingest", "out": str(out_store),
        "files_sha256": h.hexdigest(), "n_files": len(files), "batch_size": batch_size,
        "grid": grid.describe(), "allow_zwarning": bool(allow_zwarning), "max_bad_fraction": float(max_bad_fraction),
    }
    _claim(work, description, discard=overwrite)
    parts.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(len(batches)) if not (parts / f"batch-{i:06d}.done").exists()]
    if len(todo) < len(batches):
        log.info("%s: resuming, %d of %d batches already done", out_store, len(batches) - len(todo), len(batches))
    bar = _progress_bar(progress, len(batches), len(batches) - len(todo))
    tasks = [(i, (batches[i], str(parts), i)) for i in todo]
    try:
        failures = _execute(
            scheduler, ingest_batch, tasks, (grid, catalog, allow_zwarning, max_bad_fraction), retries, bar
        )
    finally:
        bar.close()
    if failures:
        i, first = sorted(failures, key=lambda f: f[0])[0]
        raise RuntimeError(
            f"{out_store}: {len(failures)} of {len(batches)} batches failed (first: batch {i}: "
            f"{type(first).__name__}: {first}); finished batches are kept in {work}, rerun to resume"
        ) from first

    # assemble in input order: drop duplicate spec_ids (first file wins), then one atomic write
    seen: dict[str, str] = {}
    records, keep_rows = [], []
    for i in range(len(batches)):
        info = json.loads((parts / f"batch-{i:06d}.json").read_text())
        for source, reason in info["rejected"]:
            log.debug("rejected %s: %s", source, reason)
            summary.rejected.append(Rejection(source, reason))
        flags = []
        for meta in info["meta"]:
            sid, src = str(meta.get("spec_id", "")), str(meta.get("source", ""))
            if sid and sid in seen:
                reason = f"duplicate spec_id {sid} (already read from {seen[sid]})"
                log.debug("rejected %s: %s", src, reason)
                summary.rejected.append(Rejection(src, reason, sid))
                flags.append(False)
                continue
            seen[sid] = src
            records.append(meta)
            flags.append(True)
        keep_rows.append(np.asarray(flags, dtype=bool))
    summary.accepted = len(records)
    if catalog is not None:
        summary.catalog_unmatched = int((~catalog["spec_id"].isin(seen)).sum())
    if not records:
        shutil.rmtree(work, ignore_errors=True)
        return None, summary
    meta = pd.DataFrame.from_records(records)
    if "label" not in meta:
        meta["label"] = ""
    meta["label"] = meta["label"].fillna("")
    summary.unlabelled = int((meta["label"].astype(str) == "").sum())
    n_pix = grid.wavelength.size
    stacks = {}
    for name, dtype in (("flux", np.float32), ("ivar", np.float32), ("mask", bool)):
        pieces = []
        for i, keep in enumerate(keep_rows):
            if keep.any():
                arr = da.from_delayed(
                    dask.delayed(_load_npz)(str(parts / f"batch-{i:06d}.npz"), name),
                    shape=(keep.size, n_pix), dtype=dtype,
                )
                pieces.append(arr if keep.all() else arr[np.flatnonzero(keep)])
        stacks[name] = da.concatenate(pieces)
    simulated = "simulated" in meta and bool(meta["simulated"].fillna(False).astype(bool).all())
    prov = preprocessing_provenance(grid, max_bad_fraction)
    prov.update(
        {
            "allow_zwarning": bool(allow_zwarning),
            "simulated": simulated,
            "n_sources": len(files),
            "labels": str(labels) if isinstance(labels, (str, os.PathLike)) else None,
        }
    )
    spectra = SpectrumSet(wavelength=grid.wavelength, meta=meta, grid=grid, provenance=prov, **stacks)
    with dask.config.set(scheduler="synchronous"):  # one part at a time: bounded memory
        write_store(spectra, out_store, chunk_size=chunk_size, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    summary.out = str(out_store)
    return out_store, summary


def _load_npz(path: str, name: str) -> np.ndarray:
    with np.load(path) as data:
        return data[name]


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
