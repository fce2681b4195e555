"""The engine: a function over every chunk of rows of a dataset store, on Dask, resumably.

The stages (:mod:`agnlens.stages`) hand it the per-chunk function of ingest, classify or explain;
the engine knows nothing of spectra science. Everything here works in chunks of rows of a Zarr
store (:mod:`agnlens.io.store`) or, for the parallel ingest, batches of files:

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
  ``OUT/complete.json`` is written; a rerun then does nothing. One protocol
  (:func:`~agnlens.engine.resume.claim`) serves every resumable run here: ``job.json`` records
  what the run is (the job, the store's identity, which changes with every write; for ingest
  every input's name, size and modification time), the same run resumes, and a different one is
  refused with a message saying what differs, never
  deleted.
* **failures** — a chunk whose function raises is retried ``retries`` times; a chunk whose worker
  process dies is rescheduled by the Dask scheduler (on the cluster this module starts, up to
  ``retries`` times; an external cluster uses its own ``distributed.scheduler.allowed-failures``).
  Since a chunk's result depends only on its rows, a retried run gives identical results.
* **where the files are** — workers open the store and write the parts themselves, so on a
  multi-machine cluster the store and the output directory must be on a file system every
  worker sees (as is usual on HPC); paths are made absolute before they are sent.
"""

from agnlens.engine.chunks import MapResult, assemble, map_chunks, run_chunk
from agnlens.engine.cluster import ADDRESS_PREFIXES, N_WORKERS, THREADS_PER_WORKER, execute, get_client, one_line
from agnlens.engine.resume import claim, fingerprint

__all__ = [
    "ADDRESS_PREFIXES", "N_WORKERS", "THREADS_PER_WORKER", "MapResult", "assemble", "claim", "execute",
    "fingerprint", "get_client", "map_chunks", "one_line", "run_chunk",
]
