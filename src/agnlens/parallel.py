"""Survey scale with Dask: ingest, classify and explain over a dataset store, chunk by chunk.

The names users import from here, kept where docs/survey-scale.md shows them. The work is done by
the stages (:mod:`agnlens.stages`), which the command line and the pipeline call too, run by the
engine (:mod:`agnlens.engine`: clusters, chunk mapping, resume, assembly). This module sits above
the stages, beside :mod:`agnlens.pipeline`.
"""

from __future__ import annotations

import os
from pathlib import Path

from agnlens.engine import N_WORKERS, THREADS_PER_WORKER, MapResult, get_client, map_chunks, run_chunk
from agnlens.stages import (
    Executor,
    classify_chunk,
    classify_store as _classify_store,
    explain_chunk,
    explain_store as _explain_store,
    ingest_files,
)

__all__ = [
    "N_WORKERS", "THREADS_PER_WORKER", "MapResult", "classify_chunk", "classify_store", "explain_chunk",
    "explain_store", "get_client", "ingest_files", "map_chunks", "run_chunk",
]


def classify_store(model, store_path: str | os.PathLike, out_path: str | os.PathLike, *, scheduler="local",
                   chunk_size: int | None = None, progress: bool = False, retries: int = 2) -> Path:
    """:func:`agnlens.stages.classify_store` on ``scheduler`` (see :func:`agnlens.engine.get_client`):
    ``OUT/predictions.csv`` with the columns of :func:`agnlens.stages.classify`, in store order."""
    executor = Executor(scheduler, chunk_size=chunk_size, retries=retries, progress=progress)
    return _classify_store(model, Path(store_path), Path(out_path), executor=executor)


def explain_store(model, store_path: str | os.PathLike, out_path: str | os.PathLike, *, method: str = "gradient",
                  target=None, scheduler="local", chunk_size: int | None = None, progress: bool = False,
                  retries: int = 2, **method_options) -> dict[str, Path]:
    """:func:`agnlens.stages.explain_store` on ``scheduler``: ``OUT/saliency.zarr`` and ``OUT/index.csv``."""
    executor = Executor(scheduler, chunk_size=chunk_size, retries=retries, progress=progress)
    return _explain_store(model, store_path, out_path, method=method, target=target, executor=executor,
                          **method_options)
