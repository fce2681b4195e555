"""Where a stage runs: in this process, or chunk by chunk on Dask through :mod:`agnlens.engine`.

Every stage works chunk by chunk, in either place, with the same chunks. :meth:`Executor.for_store`
takes the store's own chunk size, which is also what the Dask path uses by default.

Reproducibility contract (docs: "How exactly results reproduce"). The last bits of a chunk's
numbers depend on the BLAS: on its thread count (Dask workers run one thread), on the chunk's
shape and on the CPU kind's kernels. So a stage gives

* bitwise the same results on the same machine with the same BLAS thread count and chunk size
  (the narrow-line fits behind ``z_offset_kms`` excepted: within 1e-6 relative);
* across executors, thread counts, chunk sizes and CPU kinds, with the same model file:
  probabilities within 1e-12 (absolute), the applicability diagnostics (``max_kernel``,
  ``intercept_share``, ``pca_residual``, ``mahalanobis``) within 1e-10 relative, ``z_offset_kms``
  within 1e-6 relative, saliency within 1e-6 of each spectrum's largest absolute value; the
  predicted label and the flags identical except where a value lies within its tolerance of a
  threshold (where either side is the same result).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agnlens.spectra import SpectrumSet

#: Rows per chunk of an in-memory spectrum set (the default chunk size of a store, so that a set
#: read from a store written with the defaults is cut the same way on either path).
CHUNK = 1024


@dataclass(frozen=True)
class Executor:
    """Where and in what pieces a stage runs.

    Parameters
    ----------
    scheduler : {"local", "processes"}, address or distributed.Client
        ``"local"`` (default) runs in this process; the others run store chunks on Dask (see
        :func:`agnlens.engine.get_client`).
    chunk_size : int, optional
        Rows per chunk; default :data:`CHUNK` in memory, the store's chunk size on Dask.
    retries : int
        Extra attempts of a failing chunk (Dask path).
    progress : bool
        Show a progress bar over chunks on stderr.
    """

    scheduler: Any = "local"
    chunk_size: int | None = None
    retries: int = 2
    progress: bool = False

    @classmethod
    def for_store(cls, store: str | os.PathLike, scheduler: Any = "local", **options) -> Executor:
        """An executor cutting ``store``'s rows in the store's own chunks."""
        from agnlens.io.store import store_info

        return cls(scheduler, chunk_size=int(store_info(store)["chunk_size"]), **options)

    @property
    def local(self) -> bool:
        """True when the work runs in this process."""
        return self.scheduler is None or self.scheduler == "local"

    def starts(self, n: int) -> range:
        """The first row of every chunk of ``n`` rows."""
        return range(0, n, self.chunk_size or CHUNK)

    def map(self, func: Callable, spectra: SpectrumSet, *args, desc: str = "chunks") -> list:
        """``func(chunk, *args)`` for every chunk of the in-memory ``spectra``, in order, here.

        In-memory spectra are always worked on in this process; Dask works on stores, through
        :meth:`map_store` (the stages' ``*_store`` functions).

        Raises
        ------
        ValueError
            This executor runs on Dask (its ``scheduler`` is not ``"local"``): rather than run here
            silently, it asks for a store or a local executor.
        """
        import numpy as np

        if not self.local:
            raise ValueError(
                f"{desc}: in-memory spectra run in this process, but this executor's scheduler is "
                f"{self.scheduler!r}; write them to a store (agnlens ingest, agnlens.io.write_store) and "
                f"use the stage's *_store function (classify_store, explain_store) to run on Dask, or pass "
                f"a local executor (Executor() or Executor.for_store(store))"
            )

        starts = self.starts(len(spectra))
        if self.progress and len(starts) > 1:
            import sys

            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=desc, unit="chunk", file=sys.stderr, leave=False)
        size = self.chunk_size or CHUNK
        return [func(spectra[np.arange(a, min(a + size, len(spectra)))], *args) for a in starts]

    def map_store(
        self, func: Callable, store: str | os.PathLike, out: str | os.PathLike, *, args: Sequence = (),
        job: str, columns: Sequence[str] | None = None,
    ):
        """``func(chunk, *args)`` over every chunk of ``store``, resumably into ``out``
        (:func:`agnlens.engine.map_chunks`); returns its :class:`~agnlens.engine.MapResult`."""
        from agnlens.engine import map_chunks

        return map_chunks(
            func, store, Path(out), scheduler=self.scheduler, chunk_size=self.chunk_size, progress=self.progress,
            retries=self.retries, args=args, job=job, columns=columns,
        )


#: Run in this process, in chunks of :data:`CHUNK` rows.
LOCAL = Executor()


def as_executor(executor: Executor | str | None) -> Executor:
    """``executor`` itself, or one for a scheduler name (None: :data:`LOCAL`)."""
    if executor is None:
        return LOCAL
    if isinstance(executor, Executor):
        return executor
    return Executor(executor)
