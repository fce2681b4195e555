"""Input/output: SDSS readers, catalogues and the dataset store.

The readers engineer adds the reader exports here; the store exports are below.
"""

from agnlens.io.store import append_store, open_store, read_rows, store_chunks, store_info, write_store

__all__ = ["append_store", "open_store", "read_rows", "store_chunks", "store_info", "write_store"]
