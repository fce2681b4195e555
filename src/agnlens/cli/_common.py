"""Helpers shared by the subcommands: progress bars and rejection reporting."""

from __future__ import annotations

import sys
from collections.abc import Iterable


def progress_bar(args, desc: str, total: int | None = None):
    """Return a wrapper for iterables that shows a tqdm bar when ``args.progress`` is set."""
    if not getattr(args, "progress", False):
        return None
    from tqdm.auto import tqdm

    def wrap(iterable: Iterable):
        return tqdm(iterable, desc=desc, total=total, unit="spectra", file=sys.stderr, leave=False)

    return wrap


def report_rejections(command: str, rejected) -> None:
    """One stderr line per rejected input: the file and the reason."""
    for item in rejected:
        print(f"agnlens {command}: rejected {item}", file=sys.stderr)


def add_scheduler_argument(parser) -> None:
    """``--scheduler``: where the work runs (see :func:`agnlens.parallel.get_client`)."""
    parser.add_argument(
        "--scheduler",
        default="local",
        metavar="WHERE",
        help="local (in this process, default), processes (a Dask LocalCluster of 2 workers on this "
        "machine) or tcp://HOST:PORT (an existing Dask cluster; dask-jobqueue clusters work too)",
    )


def add_model_sha256_argument(parser) -> None:
    """``--model-sha256 HEX``: load the model only if the file has exactly this SHA-256."""
    parser.add_argument(
        "--model-sha256",
        metavar="HEX",
        help="refuse the model file unless its SHA-256 (sha256sum MODEL) is HEX (default "
        "$AGNLENS_MODEL_SHA256); the file's own hash only detects corruption, a pin also an edit",
    )


def model_provenance(meta: dict) -> dict:
    """Which model made a results folder: path, SHA-256 of the file, classes, grid, training data."""
    return {
        "model_file": meta.get("file", "default"),
        "model_sha256": meta.get("file_sha256"),
        "model_classes": meta.get("classes"),
        "model_grid": meta.get("grid"),
        "model_data_hash": meta.get("data_hash"),
        "model_simulated_training_data": meta.get("simulated"),
    }
