"""The engine's one resume protocol and the small file helpers of its parts.

A run's output folder (``map_chunks``) or work folder (the parallel ingest) holds ``job.json``,
which says what the run is. :func:`claim` lets the same run resume and refuses a different one
with a message saying what differs and what to delete to start afresh; nothing is ever deleted
here. Finished tasks leave a ``.done`` marker written last and atomically, so a marker means
the task's files are complete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agnlens.atomic import atomic_path, write_text


def claim(out_path: Path, description: dict) -> None:
    """Record which run owns ``out_path`` (its ``job.json``); refuse to mix parts of different runs.

    The engine's one resume protocol (``map_chunks``' output folders and the parallel ingest's
    work folder): the same run resumes; a different one is refused with a message that says what
    differs and how to start afresh. Nothing is deleted here: the other run's work is the user's
    to keep (by rerunning its command) or to delete.

    Raises
    ------
    ValueError
        ``out_path`` holds the ``job.json`` of a different run.
    """
    job_file = out_path / "job.json"
    existing = read_json(job_file)
    if existing is not None and existing != description:
        changed = sorted(k for k in description if existing.get(k) != description[k])
        shown = {k: existing.get(k) for k in changed[:3]}
        raise ValueError(
            f"{out_path}: holds the work of a different run (differs in {', '.join(changed)}: "
            f"{short(shown)} there vs {short({k: description[k] for k in changed[:3]})} now); "
            f"rerun the original command to finish it, or delete {out_path} to start afresh"
        )
    out_path.mkdir(parents=True, exist_ok=True)
    if existing is None:
        (out_path / "complete.json").unlink(missing_ok=True)
        write_text(job_file, json.dumps(description, indent=2))


def short(obj, limit: int = 200) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def marker(parts: Path, index: int) -> Path:
    return parts / f"chunk-{index:06d}.done"


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def atomic_save(path: Path, write: Callable) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def check_retries(retries) -> int:
    if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    return int(retries)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(progress: bool, total: int, initial: int):
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="chunk", desc="chunks")


def fingerprint(model) -> str:
    """A short fingerprint of a fitted model (its parameters and fitted arrays), so that a rerun
    with another model never resumes the parts of this one."""
    h = hashlib.sha256(type(model).__name__.encode())
    _hash_into(h, model, depth=0)
    return f"{type(model).__name__}:{h.hexdigest()[:16]}"


def _hash_into(h, obj, depth: int) -> None:
    if isinstance(obj, np.ndarray):
        h.update(f"{obj.dtype.str}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes() if obj.dtype != object else repr(obj.tolist()).encode())
    elif isinstance(obj, (str, int, float, bool, type(None), np.generic)):
        h.update(repr(obj).encode())
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _hash_into(h, v, depth + 1)
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _hash_into(h, obj[k], depth + 1)
    elif depth < 4 and hasattr(obj, "__dict__"):
        _hash_into(h, {k: v for k, v in vars(obj).items() if not k.startswith("__")}, depth + 1)
    else:
        h.update(type(obj).__name__.encode())
