"""Stages: one library function per user verb, called by the CLI (and, later, the pipeline).

So far: :func:`classify` (spectra on a model's grid → predictions with their applicability) and
:func:`classify_files` (spectrum files → the first model whose grid they cover → :func:`classify`).
"""

from agnlens.stages.classify import classify, classify_files, merge_groups, model_for_grid, read_for_models

__all__ = ["classify", "classify_files", "merge_groups", "model_for_grid", "read_for_models"]
