"""The built-in default model: three-class (or two-class) SVM trained on the simulator.

It is not shipped as a binary: the first call of :func:`default_model` builds it — simulate the
reference sample (``simulate_set(3346, seed=0, grid="paper")``), then :func:`agnlens.models.tuning.train`
with ``seed=0`` — and caches it as a skops model file under ``$AGNLENS_CACHE`` (default
``~/.cache/agnlens``), written atomically. Later calls load the cached file (checked like any model
file). Rebuilding it by hand gives the same model::

    agnlens simulate --n 3346 --seed 0 --grid paper --out sim.zarr
    agnlens train sim.zarr --task multiclass --seed 0 --out default-multiclass.skops
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from agnlens.errors import ModelFileError, ModelPinError

log = logging.getLogger(__name__)

#: The recipe of the default model.
DEFAULT_RECIPE = {"n": 3346, "seed": 0, "grid": "paper"}


def cache_dir() -> Path:
    """``$AGNLENS_CACHE`` if set, else ``~/.cache/agnlens``."""
    env = os.environ.get("AGNLENS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "agnlens"


#: The modules whose code decides what the default model is: a change to any of them (a new
#: simulator, say) must not reuse a model cached by the old code.
RECIPE_MODULES = (
    "agnlens.simulate", "agnlens.preprocess", "agnlens.lines", "agnlens.models.svm",
    "agnlens.models.coupling", "agnlens.models.tuning",
)


def recipe_key() -> str:
    """A short hash of the agnlens version, the recipe and the source of :data:`RECIPE_MODULES`."""
    import hashlib
    import importlib.util

    from agnlens import __version__

    h = hashlib.sha256(f"{__version__} {sorted(DEFAULT_RECIPE.items())}".encode())
    for name in RECIPE_MODULES:
        h.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    return h.hexdigest()[:12]


def default_model_path(task: str = "multiclass") -> Path:
    """Where the cached default model of ``task`` lives: keyed by :func:`recipe_key`, so that a
    model built by other code (an older simulator) is never reused."""
    from agnlens import __version__

    return cache_dir() / f"default-{task}-agnlens-{__version__}-{recipe_key()}.skops"


def resolve_model(name: str | None, sha256: str | None = None) -> tuple[Any, dict]:
    """The model a command was given: a model file, or the built-in default for None/"default".

    ``sha256`` (default ``$AGNLENS_MODEL_SHA256``) pins the exact file, the cached default too.
    """
    if name in (None, "default"):
        log.info("using the built-in default model (trained on SIMULATED spectra)")
        return default_model("multiclass", sha256=sha256)
    from agnlens.models.persistence import load_model

    return load_model(name, sha256=sha256)


def default_model(task: str = "multiclass", *, rebuild: bool = False, sha256: str | None = None) -> tuple[Any, dict]:
    """The built-in default model, built on first use and cached.

    Parameters
    ----------
    task : {"multiclass", "binary"}
    rebuild : bool
        Build it again even if a cached file exists.
    sha256 : str, optional
        Pin the cached file's SHA-256 (see :func:`agnlens.models.persistence.load_model`).

    Returns
    -------
    model : SpectrumSVC
    metadata : dict
        As in :func:`agnlens.models.persistence.load_model`; ``default_model`` holds the recipe.
    """
    from agnlens.models.persistence import load_model, save_model
    from agnlens.models.tuning import TASK_CLASSES, train

    if task not in TASK_CLASSES:
        raise ValueError(f"default_model: task must be one of {sorted(TASK_CLASSES)}, got {task!r}")
    path = default_model_path(task)
    if path.exists() and not rebuild:
        try:
            return load_model(path, sha256=sha256)
        except ModelPinError:
            raise
        except ModelFileError as exc:
            log.warning("cached default model unusable (%s); rebuilding it", exc)
    from agnlens.simulate import simulate_set

    log.info("building the default %s model (first use; cached in %s)", task, path)
    spectra = simulate_set(DEFAULT_RECIPE["n"], seed=DEFAULT_RECIPE["seed"], grid=DEFAULT_RECIPE["grid"])
    result = train(spectra, task=task, seed=DEFAULT_RECIPE["seed"])
    metadata = dict(result.metadata)
    metadata["default_model"] = {
        **DEFAULT_RECIPE,
        "rebuild": "agnlens simulate --n 3346 --seed 0 --grid paper --out sim.zarr && "
        f"agnlens train sim.zarr --task {task} --seed 0 --out MODEL",
    }
    save_model(result.model, path, metadata=metadata)
    return load_model(path, sha256=sha256)
