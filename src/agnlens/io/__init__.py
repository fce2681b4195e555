"""Input/output: SDSS and DESI readers, plain tables, label catalogues, input expansion and the dataset store.

Readers (this package's ``sdss``, ``table``, ``inputs`` and ``catalog`` modules):

* :func:`read_spectra` — every spectrum of any supported file (one per target of a DESI file),
  format detected from the content; :func:`read_spectrum` — a file of one spectrum;
* :func:`read_sdss` / :func:`read_spec` / :func:`read_spspec` — SDSS DR8+ and DR7 files;
* :func:`read_desi` — DESI ``coadd-*`` / ``spectra-*`` files, arms merged, redshifts from ``redrock-*``;
* :func:`redshift_problem` — whether a spectrum's redshift is missing or flagged by its pipeline;
* :func:`read_table` — a FITS/CSV/ECSV table with wavelength, flux and error columns;
* :func:`read_catalog` — a label catalogue;
* :func:`expand_inputs` — files, directories and glob patterns to a list of files;
* :func:`zwarning_problem` — whether a ZWARNING makes the redshift unreliable.

specutils in and out (optional extra ``agnlens[specutils]``):

* :func:`from_specutils` / :func:`to_specutils` — specutils ``Spectrum`` ⇄ agnlens ``Spectrum`` /
  ``SpectrumSet``;
* :func:`as_spectrum_set` — what every stage calls on its input: a SpectrumSet, agnlens or
  specutils spectra, or lists of them, preprocessed onto the model's grid.
"""

from agnlens.io.catalog import CANONICAL_LABELS, LABEL_ALIASES, normalise_label, read_catalog
from agnlens.io.coerce import as_spectrum_set, is_spectrum_like
from agnlens.io.desi import read_desi
from agnlens.io.inputs import expand_inputs, read_spectra, read_spectrum, redshift_problem
from agnlens.io.sdss import (
    DEFAULT_BAD_BITS,
    SPPIXMASK_BITS,
    UNRELIABLE_Z_BITS,
    ZWARNING_BITS,
    read_sdss,
    read_spec,
    read_spspec,
    zwarning_problem,
)
from agnlens.io.specutils import from_specutils, is_specutils, to_specutils

# The dataset store's names are exported by the store's own package (io/store/):
from agnlens.io.store import append_store, open_store, read_rows, store_chunks, store_info, write_store
from agnlens.io.table import read_table

__all__ = [
    "CANONICAL_LABELS",
    "DEFAULT_BAD_BITS",
    "LABEL_ALIASES",
    "SPPIXMASK_BITS",
    "UNRELIABLE_Z_BITS",
    "ZWARNING_BITS",
    "as_spectrum_set",
    "expand_inputs",
    "from_specutils",
    "is_specutils",
    "is_spectrum_like",
    "normalise_label",
    "redshift_problem",
    "read_catalog",
    "read_desi",
    "read_sdss",
    "read_spec",
    "read_spectra",
    "read_spectrum",
    "read_spspec",
    "read_table",
    "to_specutils",
    "zwarning_problem",
    # store (exported by its owner)
    "append_store",
    "open_store",
    "read_rows",
    "store_chunks",
    "store_info",
    "write_store",
]
