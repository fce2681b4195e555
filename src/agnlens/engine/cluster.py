"""Where the engine's tasks run: the in-process loop, a :class:`distributed.LocalCluster` this
module starts, or a running Dask cluster; sending shared arguments once; collecting failures.

See :mod:`agnlens.engine` for the guarantees (bounded memory, retries, killed workers).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: Worker processes and threads of the ``"processes"`` scheduler.
N_WORKERS = 2
THREADS_PER_WORKER = 1
#: How long connecting to a running scheduler may take before it counts as unreachable.
CONNECT_TIMEOUT = "20s"

#: Scheme prefixes of a Dask scheduler address (``--scheduler tcp://host:8786``).
ADDRESS_PREFIXES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")


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
        with _environ_kept():
            cluster = _start_cluster(retries)
            try:
                with distributed.Client(cluster) as client:
                    yield client
            finally:
                cluster.close()
        return
    if isinstance(scheduler, str) and scheduler.startswith(ADDRESS_PREFIXES):
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
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


@contextlib.contextmanager
def _environ_kept() -> Iterator[None]:
    """Give this process its environment back after a LocalCluster.

    Dask's nannies set ``distributed.nanny.pre-spawn-environ`` (``OMP_NUM_THREADS=1``, ...) in the
    *parent's* ``os.environ`` before each worker starts, and leave it there: any OpenMP or BLAS
    library loaded afterwards in the parent (scikit-learn's neighbour search, t-SNE) would run on
    one thread for the rest of the session.
    """
    import dask

    keys = [*dask.config.get("distributed.nanny.pre-spawn-environ", {}), "PYTHONHASHSEED"]
    before = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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

    # Dask sets glibc's trim threshold in its workers to give memory back sooner; setting it also turns
    # off glibc's adaptive mmap threshold, so that every large array is mapped afresh: agnlens's
    # batches ran 1.6x slower in the workers than in this process, for no smaller peak
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
               if not k.startswith("MALLOC_")}

    def start():
        with dask.config.set({"distributed.scheduler.allowed-failures": int(retries),
                              "distributed.nanny.pre-spawn-environ": environ}):
            # the workers' own logs (a failed task's traceback, once per worker and retry) stay quiet:
            # agnlens reports every failed chunk itself, in one line naming it
            return distributed.LocalCluster(
                n_workers=N_WORKERS, threads_per_worker=THREADS_PER_WORKER, processes=True, dashboard_address=":0",
                silence_logs=logging.CRITICAL,
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


def execute(scheduler, fn: Callable, tasks: list[tuple[int, tuple]], shared: Sequence, retries: int, bar,
            results: dict | None = None) -> list:
    """Run ``fn(*task_args, *shared)`` for every task; return the failures as (index, exception).

    A failing task never stops the others (their results stay on disk for a resume). With
    ``results``, what each task returns is kept there by its index (tasks that send back a small
    answer, not data); a ``results`` with a ``fail(index, error)`` method is told of each failure
    as it happens. The shared arguments go to every worker once; when every worker holding them
    died (their data is then lost, and the tasks waiting on it cancelled), they are sent again and
    the cancelled tasks submitted again, up to ``retries`` times.
    """
    failures = []
    with get_client(scheduler, retries=retries) as client:
        if client is None:
            for i, task_args in tasks:
                for attempt in range(retries + 1):
                    try:
                        answer = fn(*task_args, *shared)
                        if results is not None:
                            results[i] = answer
                        break
                    except Exception as exc:
                        if attempt == retries:
                            log.error("chunk %d failed: %s", i, one_line(exc))
                            failures.append((i, exc))
                            _tell_failure(results, i, exc)
                        else:
                            log.warning(
                                "chunk %d failed (attempt %d of %d): %s; retrying", i, attempt + 1, retries + 1,
                                one_line(exc),
                            )
                bar.update(1)
            return failures
        todo = list(tasks)
        for round_ in range(retries + 1):
            if not todo:
                break
            cancelled = _run_on(client, fn, todo, shared, retries, bar, results, failures,
                                last=round_ == retries)
            if cancelled:
                log.warning("%d chunk(s) lost their shared arguments with the workers that held them; "
                            "sending them again", len(cancelled))
                client.wait_for_workers(1, timeout=60)
            todo = [t for t in todo if t[0] in cancelled]
    return failures


def _run_on(client, fn: Callable, tasks: list[tuple[int, tuple]], shared: Sequence, retries: int, bar, results,
            failures: list, last: bool) -> set[int]:
    """One round of :func:`execute` on a Dask client; returns the tasks cancelled because their shared
    arguments were lost (to be submitted again, unless this is the ``last`` round)."""
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
    cancelled: set[int] = set()
    # results come with the iterator (no blocking fut.result() from this thread, which could
    # meet an asyncio primitive bound to another event loop after a worker died), and the futures
    # are tracked on their own client's loop: as_completed's default is the *current* client's,
    # another one whenever a caller (or a test fixture) is inside `with Client(...)` — there the
    # wait for a finished task could hang forever
    for fut, result in distributed.as_completed(futures, loop=client.loop, with_results=True, raise_errors=False):
        i = futures[fut]
        if fut.status == "cancelled" and shared_futures and not last:
            cancelled.add(i)  # its inputs were forgotten with their workers: submitted again
        elif fut.status in ("error", "cancelled"):  # incl. KilledWorker (a task that kills workers)
            error = result[1] if isinstance(result, tuple) else result
            log.error("chunk %d failed: %s", i, one_line(error))
            failures.append((i, error))
            _tell_failure(results, i, error)
            bar.update(1)
        else:
            if results is not None:
                results[i] = result
            bar.update(1)
        fut.release()
    return cancelled


def _tell_failure(results, i: int, error) -> None:
    if results is not None and hasattr(results, "fail"):
        results.fail(i, error)


def one_line(error) -> str:
    """A task's error in one line: its type and message, whitespace collapsed (never a traceback)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"
