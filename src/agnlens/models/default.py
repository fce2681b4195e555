"""The built-in default models: three-class (or two-class) SVMs trained on the simulator.

There is one per grid: ``balmer`` (4000–6700 Å, sees Hα and [N II]) and ``paper`` (the reference
study's 3729–5266 Å). ``classify`` and ``explain`` without ``--model`` use the ``balmer`` model for
spectra that cover its grid and the ``paper`` model otherwise (Hα leaves the SDSS spectrograph above
z ≈ 0.37, BOSS above z ≈ 0.55): see :func:`resolve_models` and :data:`DEFAULT_GRIDS`.

They answer in the **spectroscopic** class convention (:data:`agnlens.classes.CONVENTIONS`), that of
SDSS-style catalogues: a spectrum with broad Hβ and [O III]/Hβ ≤ 4 (Winkler 1.0, 1.2, 1.5) is
``type1``, 1.8/1.9 are ``intermediate``. (``agnlens demo`` trains its own models in the reference
study's convention.) The convention is in each model's metadata (``convention``) and its cache name.

They are not shipped as binaries (each file is ~7 MB, and a build from the simulator's own code
can never disagree with it): the first call of :func:`default_model` builds one (~30 s; a command
that needs only one grid's model builds only that one, :class:`ModelList`) — simulate the
reference sample relabelled spectroscopically over the whole redshift range the grid allows in
SDSS and BOSS spectra (:func:`training_set`: ``simulate_set(3346, seed=0, grid=GRID,
convention="spectroscopic", redshift="full")``: ``balmer`` z 0.025–0.55, ``paper`` 0.025–0.97), then
:func:`agnlens.models.tuning.train` with ``seed=0`` — and caches it as a skops model file under
``$AGNLENS_CACHE`` (default ``~/.cache/agnlens``), written atomically. Later calls load the cached
file (checked like any model file). Rebuilding one by hand gives the same model::

    agnlens simulate --n 3346 --seed 0 --grid balmer --convention spectroscopic --redshift full --out sim.zarr
    agnlens train sim.zarr --task multiclass --seed 0 --out default-multiclass-balmer.skops
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from agnlens.errors import ModelFileError, ModelPinError

log = logging.getLogger(__name__)

#: The recipe of the default models (one per grid).
DEFAULT_RECIPE: dict[str, Any] = {"n": 3346, "seed": 0, "convention": "spectroscopic", "redshift": "full"}
#: The default models' grids, in order of preference: a spectrum goes to the first one it covers.
DEFAULT_GRIDS = ("balmer", "paper")
#: About how long building one default model takes on a laptop core (said before a build).
BUILD_SECONDS = 30


def cache_dir() -> Path:
    """``$AGNLENS_CACHE`` if set, else ``~/.cache/agnlens``."""
    env = os.environ.get("AGNLENS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "agnlens"


#: The modules whose code decides what the default model is: a change to any of them (a new
#: simulator, say) must not reuse a model cached by the old code.
RECIPE_MODULES = (
    "agnlens.simulate", "agnlens.preprocess", "agnlens.grid", "agnlens.lines", "agnlens.models.svm",
    "agnlens.models.coupling", "agnlens.models.kernels", "agnlens.models.search", "agnlens.models.tuning",
    "agnlens.models.domain", "agnlens.classes", "agnlens.data",
)


def recipe_key(grid: str = "paper") -> str:
    """A short hash of the agnlens version, the recipe, the grid and the source of
    :data:`RECIPE_MODULES`."""
    import hashlib
    import importlib.util

    from agnlens._version import __version__

    h = hashlib.sha256(f"{__version__} {sorted({**DEFAULT_RECIPE, 'grid': grid}.items())}".encode())
    for name in RECIPE_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:  # a module the recipe no longer has, or has no file
            continue
        origin = Path(spec.origin)
        # a package counts with every file in it (its submodules and data files), in a stable order
        files = sorted(f for f in origin.parent.rglob("*") if f.is_file() and "__pycache__" not in f.parts) \
            if origin.name == "__init__.py" else [origin]
        for f in files:
            h.update(f.relative_to(origin.parent).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def default_model_path(task: str = "multiclass", grid: str = "paper") -> Path:
    """Where the cached default model of ``task`` on ``grid`` lives: keyed by :func:`recipe_key`, so
    that a model built by other code (an older simulator) is never reused."""
    from agnlens._version import __version__

    convention = DEFAULT_RECIPE["convention"]
    return cache_dir() / f"default-{task}-{grid}-{convention}-agnlens-{__version__}-{recipe_key(grid)}.skops"


def training_set(grid: str = "paper"):
    """The simulated spectra the default model on ``grid`` is trained (and split) on.

    Returns
    -------
    SpectrumSet
        ``simulate_set(3346, seed=0, grid=grid, convention="spectroscopic", redshift="full")`` (SIMULATED).
    """
    from agnlens.simulate import simulate_set

    return simulate_set(DEFAULT_RECIPE["n"], seed=DEFAULT_RECIPE["seed"], grid=grid,
                        convention=DEFAULT_RECIPE["convention"], redshift=DEFAULT_RECIPE["redshift"])


def is_default(name: str | None) -> bool:
    """True for the names that mean the built-in default models (None, "default")."""
    return name in (None, "default")


def resolve_model(name: str | None, grid: str = "paper", sha256: str | None = None) -> tuple[Any, dict]:
    """One model: a model file, or the built-in default on ``grid`` for None/"default".

    ``sha256`` (default ``$AGNLENS_MODEL_SHA256``) pins the exact file, the cached default too.
    """
    if is_default(name):
        log.info("using the built-in default %s-grid model (trained on SIMULATED spectra)", grid)
        return default_model("multiclass", grid=grid, sha256=sha256)
    from agnlens.models.persistence import load_model

    return load_model(name, sha256=sha256)


class ModelList(Sequence):
    """The models a command was given, in order of preference, each loaded (or built) on first use.

    A sequence of ``(model, metadata)``: ``models[k]`` loads the k-th model the first time it is
    asked for. The built-in default models are built only when a spectrum needs them (a set of
    spectra that all cover the ``balmer`` grid never builds the ``paper`` model); :meth:`grid`
    names each model's grid without loading it, :meth:`loaded` lists the ones that were used.
    """

    def __init__(self, grids: Sequence[str | None], load: Sequence[Callable[[], tuple[Any, dict]]]):
        self._grids = list(grids)
        self._load = list(load)
        self._done: dict[int, tuple[Any, dict]] = {}

    def __len__(self) -> int:
        return len(self._load)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(len(self))[k]]
        k = range(len(self))[k]
        if k not in self._done:
            self._done[k] = self._load[k]()
        return self._done[k]

    def grid(self, k: int):
        """The :class:`~agnlens.grid.Grid` of model ``k``, without loading it when it is a default model."""
        from agnlens.grid import get_grid
        from agnlens.models.persistence import grid_from_metadata

        name = self._grids[k]
        return get_grid(name) if name is not None and k not in self._done else grid_from_metadata(self[k][1])

    def loaded(self) -> list[tuple[Any, dict]]:
        """The ``(model, metadata)`` pairs loaded so far, in order of preference."""
        return [self._done[k] for k in sorted(self._done)]


def resolve_models(name: str | None, sha256: str | None = None) -> ModelList:
    """The models a command was given, in order of preference.

    Parameters
    ----------
    name : str or None
        A model file, or None/"default" for the built-in models.
    sha256 : str, optional
        Pin the file's SHA-256 (default ``$AGNLENS_MODEL_SHA256``); with the built-in models it
        can only match one of them, so a pin goes with one model file.

    Returns
    -------
    ModelList
        A model file: that one, loaded now (so that a bad file is reported before any work). The
        default: one per :data:`DEFAULT_GRIDS` (``balmer`` first), each built or loaded when the
        first spectrum that needs it comes; a spectrum is classified by the first model whose grid
        it covers.
    """
    if is_default(name):
        return ModelList(DEFAULT_GRIDS, [partial(resolve_model, None, grid, sha256) for grid in DEFAULT_GRIDS])
    models = ModelList([None], [partial(resolve_model, name, sha256=sha256)])
    models[0]
    return models


def default_model(task: str = "multiclass", *, grid: str = "paper", rebuild: bool = False,
                  sha256: str | None = None) -> tuple[Any, dict]:
    """The built-in default model, built on first use and cached.

    Parameters
    ----------
    task : {"multiclass", "binary"}
    grid : {"paper", "balmer"}
    rebuild : bool
        Build it again even if a cached file exists.
    sha256 : str, optional
        Pin the cached file's SHA-256 (see :func:`agnlens.models.persistence.load_model`).

    Returns
    -------
    model : SpectrumSVC
    metadata : dict
        As in :func:`agnlens.models.persistence.load_model`; ``default_model`` holds the recipe,
        ``convention`` the class convention the model answers in (``"spectroscopic"``).
    """
    from agnlens.models.persistence import load_model, save_model
    from agnlens.models.tuning import TASK_CLASSES, train

    if task not in TASK_CLASSES:
        raise ValueError(f"default_model: task must be one of {sorted(TASK_CLASSES)}, got {task!r}")
    if grid not in DEFAULT_GRIDS:
        raise ValueError(f"default_model: grid must be one of {list(DEFAULT_GRIDS)}, got {grid!r}")
    path = default_model_path(task, grid)
    if path.exists() and not rebuild:
        try:
            return load_model(path, sha256=sha256)
        except ModelPinError:
            raise
        except ModelFileError as exc:
            log.warning("cached default model unusable (%s); rebuilding it", exc)
    log.info("building the default %s model for the %s grid (first use, ~%d s; cached in %s)", task, grid,
                BUILD_SECONDS, path)
    start = time.perf_counter()
    result = train(training_set(grid), task=task, seed=DEFAULT_RECIPE["seed"])
    metadata = dict(result.metadata)
    metadata["convention"] = DEFAULT_RECIPE["convention"]
    metadata["default_model"] = {
        **DEFAULT_RECIPE,
        "grid": grid,
        "rebuild": f"agnlens simulate --n 3346 --seed 0 --grid {grid} --convention {DEFAULT_RECIPE['convention']} "
        f"--redshift {DEFAULT_RECIPE['redshift']} "
        f"--out sim.zarr && agnlens train sim.zarr --task {task} --seed 0 --out MODEL",
    }
    save_model(result.model, path, metadata=metadata)
    log.info("built the default %s model for the %s grid in %.0f s", task, grid, time.perf_counter() - start)
    return load_model(path, sha256=sha256)
