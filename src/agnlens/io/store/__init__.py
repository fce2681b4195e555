"""The dataset store: a chunked Zarr (v3) directory holding a :class:`~agnlens.spectra.SpectrumSet`.

Layout of ``STORE/`` (one Zarr v3 group)::

    zarr.json          group attributes: the format marker, the committed row count, the grid name,
                       the chunk size, the metadata column list and the provenance (JSON; its
                       ``grid`` is :meth:`agnlens.grid.Grid.to_dict`)
    flux/              float32 (n_rows, n_pixels), chunks (chunk_size, n_pixels)
    ivar/              float32 (n_rows, n_pixels), same chunks
    mask/              bool    (n_rows, n_pixels), same chunks
    wavelength/        float64 (n_pixels,)
    meta/<column>/     one 1-D array per metadata column, chunks (chunk_size,); numeric and bool
                       columns keep their numpy dtype, everything else is stored as UTF-8 strings

Safety against interruption
---------------------------
* :func:`write_store` writes into a hidden temporary sibling directory (``.NAME.tmp-<random>``) and
  renames it into place only when every chunk and the attributes are written, so a killed write
  leaves either no store or the previous one. (With ``overwrite=True`` the old store is first
  renamed aside, then the new one renamed in, then the old one deleted; a kill between the two
  renames leaves the old store under ``.NAME.old-<random>``.) A killed write may leave the hidden
  temporary directory behind; it is never mistaken for a store and can be deleted.
* :func:`append_store` relies on the committed row count ``attrs["agnlens"]["n_spectra"]``, which
  is updated *last*, in one atomic rewrite of ``zarr.json``. New rows are written after the
  committed ones (arrays are grown first); readers only ever see the first ``n_spectra`` rows, so
  an append killed half way leaves the store readable and unchanged, and the next append simply
  overwrites the uncommitted rows. Zarr's local store replaces each chunk file atomically, and the
  committed rows of a partly filled last chunk are rewritten with their own values, so no committed
  value is ever at risk.

Safety against other writers and damage
---------------------------------------
* Every writer (:func:`write_store`, :func:`append_store`) holds the store's exclusive lock
  (:func:`agnlens.atomic.exclusive_lock`, ``fcntl.flock`` on ``.NAME.lock`` beside the store) from
  reading the committed row count to committing the new one; a second writer waits, then is
  refused with one line. The commit also compares the row count and identity it started from
  with the ones on disk (compare-and-swap), so a writer that ignores the lock cannot be silently
  overwritten.
* ``overwrite=True`` replaces only an agnlens store (recognised by its format marker): never a
  plain file or a folder of other things.
* Every chunk carries a CRC32C checksum (the Zarr v3 ``crc32c`` codec) and every chunk is
  written, even an all-zero one, so a corrupted chunk and a missing chunk are both errors naming
  the array and the chunk (never silently zeros). Stores written before this (no ``integrity``
  entry in their attributes) are read as before.
"""

from agnlens.io.store._format import FORMAT_NAME, FORMAT_VERSION, INTEGRITY, check_chunk_size
from agnlens.io.store._read import is_store, open_store, read_rows, store_chunks, store_grid, store_info
from agnlens.io.store._write import append_store, check_replaceable, write_store

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INTEGRITY",
    "append_store",
    "check_chunk_size",
    "check_replaceable",
    "is_store",
    "open_store",
    "read_rows",
    "store_chunks",
    "store_grid",
    "store_info",
    "write_store",
]
