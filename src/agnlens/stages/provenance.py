"""Which models made a result: the provenance record written beside every stage's output."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def convention_of(provenance: dict) -> str | None:
    """The class convention (:data:`agnlens.classes.CONVENTIONS`) recorded in a model's metadata
    or a spectrum set's provenance: ``convention``, or the simulator's (``simulator.convention``,
    under ``preprocessing`` in a model trained on simulated spectra); None when unrecorded (real
    spectra labelled by a catalogue)."""
    pre = provenance.get("preprocessing") or {}
    simulator = provenance.get("simulator") or pre.get("simulator") or {}
    return provenance.get("convention") or simulator.get("convention")


def model_provenance(meta: dict) -> dict:
    """Which model made a result: path, SHA-256 of the file, classes, grid, training data,
    class convention."""
    return {
        "model_file": meta.get("file", "default"),
        "model_sha256": meta.get("file_sha256"),
        "model_classes": meta.get("classes"),
        # the summary (name, pixels, range, spacing, window); the exact wavelengths stay in the pinned file
        "model_grid": {k: v for k, v in (meta.get("grid") or {}).items() if k != "wavelength"} or None,
        "model_data_hash": meta.get("data_hash"),
        "model_simulated_training_data": meta.get("simulated"),
        # the class convention it answers in (agnlens.classes.CONVENTIONS); None when unrecorded
        "model_convention": convention_of(meta),
    }


def write_provenance(path: str | os.PathLike, models: Sequence[tuple[Any, dict]], **counts) -> Path:
    """Write ``path`` (JSON): the model files (and their SHA-256) of ``models``, ``counts``
    (``n_classified=...``) and the software version; atomically."""
    from agnlens._version import __version__
    from agnlens.atomic import write_text

    prov = {"models": [model_provenance(meta) for _, meta in models], **counts, "software": f"agnlens {__version__}"}
    write_text(Path(path), json.dumps(prov, indent=1))
    return Path(path)
