"""Stages: one library function per user verb, called by the command line, the study pipeline and
the Dask path alike, so that a workflow is assembled once.

=================  ==============================================================================
:func:`load`       files, folders, stores, sets → spectra on each model's grid, each input read once
:func:`ingest`     spectrum files → a dataset store (batches in parallel, resumable)
:func:`classify`   spectra, files or stores → predictions with their applicability
                   (:func:`classify_store` for a store on Dask, chunk by chunk)
:func:`explain`    spectra → saliency maps, line tables and figures in a results folder
                   (:func:`explain_store` for a store on Dask)
:func:`baseline`   spectra → the physics rule's measurements and labels
:func:`report`     a results folder → its HTML report
=================  ==============================================================================

Each takes its spectra (a :class:`~agnlens.spectra.SpectrumSet`, files, folders or stores: read
once by :func:`load`), writes through a :class:`~agnlens.results.ResultsFolder` where it writes a folder, and runs
on an :class:`Executor` (in this process, or chunk by chunk on Dask through :mod:`agnlens.engine`).
The layer sits above the report and below :mod:`agnlens.pipeline` and :mod:`agnlens.cli`.
"""

from agnlens.stages.executor import LOCAL, Executor
from agnlens.stages.explanations import Explanation, explain_chunk, explain_saliency, explain_store
from agnlens.stages.loading import (
    Batch,
    Group,
    load,
    load_groups,
    merge_groups,
    model_for_grid,
    read_inputs,
    resolve_models,
)
from agnlens.stages.measuring import baseline
from agnlens.stages.predictions import classify_chunk, classify_store, read_predictions, write_predictions
from agnlens.stages.provenance import convention_of, model_provenance, write_provenance
from agnlens.stages.reading import finite_rows, read_files
from agnlens.stages.reporting import report
from agnlens.stages.storing import ingest, ingest_files
from agnlens.stages.verbs import classify, explain

__all__ = [
    "LOCAL", "Batch", "Executor", "Explanation", "Group", "baseline", "classify", "classify_chunk", "classify_store",
    "convention_of", "explain", "explain_chunk", "explain_saliency", "explain_store", "finite_rows", "ingest",
    "ingest_files", "load", "load_groups", "merge_groups", "model_for_grid", "model_provenance", "read_files",
    "read_inputs", "read_predictions", "report", "resolve_models", "write_predictions", "write_provenance",
]
