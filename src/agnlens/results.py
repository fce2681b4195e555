"""The results folder: every file name in it, and the rule that names a spectrum's figure.

A results folder is what ``agnlens demo`` (the study, :mod:`agnlens.pipeline`) and ``agnlens
explain`` write and what ``agnlens report`` (:mod:`agnlens.report`) reads; docs/results-layout.md
describes it. Writers and the reader name files only through :class:`ResultsFolder`, so a file
cannot be written under one name and looked for under another.

This module sits on the ground floor beside :mod:`agnlens.atomic`: it knows names, never contents,
imports nothing of the package, and both the report (below the stages) and the stages, the
pipeline and the command line (above it) use it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from agnlens.classes import TASKS  # noqa: F401  (a study's folder holds a model per task)

#: The longest file name :func:`safe_name` gives (characters, before the file's suffix).
MAX_SAFE_NAME = 80


def safe_name(name, fallback: str = "unnamed") -> str:
    """A short, file-name-safe and unique form of ``name`` (a spec_id).

    A name of ASCII letters, digits, ``-``, ``_`` and ``.`` only (not starting with ``.``), at
    most :data:`MAX_SAFE_NAME` long, is used as it is (``"0266-51602-0001"``). Any other name has
    its other characters replaced by ``_``, is cut to fit, and gets ``-`` plus 10 hex digits of its
    SHA-256: ``a/b``, ``a_b``, ``a b`` and ``a?b`` name four different files, a 300-character
    spec_id a legal one, and a leading dot never hides a file.

    Parameters
    ----------
    name : object
        Usually a spec_id such as ``"0266-51602-0001"`` (kept as it is).
    fallback : str
        Used when ``name`` is empty.
    """
    import hashlib

    text = str(name)
    if not text:
        return fallback
    plain = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in text)
    if plain == text and len(text) <= MAX_SAFE_NAME and not text.startswith("."):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{plain.lstrip('.')[: MAX_SAFE_NAME - 11]}-{digest}"


@dataclass(frozen=True)
class ResultsFolder:
    """The names of the files of a results folder ``root``.

    Every attribute is an absolute :class:`~pathlib.Path` under ``root``, which is made absolute
    once, here (against the working directory, without resolving links), so a relative ``root``
    can be joined onto a folder or handed to another process without being joined twice;
    :meth:`relative` gives the name as recorded inside the folder (``embedding.csv`` records
    figure names relative to the folder).

    Parameters
    ----------
    root : path-like
        The folder.
    """

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(os.path.abspath(os.fspath(root))))

    def __truediv__(self, rel: str) -> Path:
        return self.root / rel

    def relative(self, path: Path) -> str:
        """``path`` as a name inside the folder (forward slashes)."""
        return Path(path).relative_to(self.root).as_posix()

    # ------------------------------------------------------------------ tables and metadata
    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def provenance(self) -> Path:
        """Which models (and their SHA-256) made the folder's results (``agnlens explain``)."""
        return self.root / "provenance.json"

    @property
    def predictions(self) -> Path:
        """One row per spectrum: ``spec_id, label, predicted_label, p_<class>...`` (``agnlens
        explain`` writes the table of ``agnlens classify`` here)."""
        return self.root / "predictions.csv"

    @property
    def embedding(self) -> Path:
        return self.root / "embedding.csv"

    @property
    def line_table(self) -> Path:
        return self.root / "line_table.csv"

    @property
    def centre_wings(self) -> Path:
        return self.root / "centre_wings.csv"

    @property
    def centre_wings_test(self) -> Path:
        return self.root / "centre_wings_test.csv"

    @property
    def faithfulness(self) -> Path:
        return self.root / "faithfulness.csv"

    @property
    def measurements(self) -> Path:
        return self.root / "measurements.csv"

    @property
    def line_contributions(self) -> Path:
        """Per spectrum, the attribution summed over each line window and the continuum
        (``agnlens explain``): how much each part of the spectrum moved the decision."""
        return self.root / "line_contributions.csv"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def tuning(self, task: str) -> Path:
        return self.root / f"tuning_{task}.csv"

    def model(self, task: str) -> Path:
        return self.root / "models" / f"{task}.skops"

    # -------------------------------------------------------------------------------- saliency
    @property
    def saliency(self) -> Path:
        """The folder of :meth:`agnlens.explain.result.Saliency.save` (values, wavelength, index)."""
        return self.root / "saliency"

    @property
    def saliency_index(self) -> Path:
        return self.saliency / "index.csv"

    # --------------------------------------------------------------------------------- figures
    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def figure(self, name: str) -> Path:
        """``figures/<name>.png`` (``"tsne"``, ``"line_table"``, ``"confusion_binary"``...)."""
        return self.figures / f"{name}.png"

    @staticmethod
    def saliency_figure_name(spec_id, row: int | None = None) -> str:
        """``figures/saliency/<spec_id>.png``, the name recorded in ``embedding.csv``: the spec_id
        made safe by :func:`safe_name` (``row<row>`` when it is empty)."""
        return f"figures/saliency/{safe_name(spec_id, 'unnamed' if row is None else f'row{row}')}.png"

    @property
    def saliency_figures(self) -> Path:
        """``figures/saliency/``: one figure per explained spectrum."""
        return self.figures / "saliency"

    def saliency_figure(self, spec_id, row: int | None = None) -> Path:
        """The path of :meth:`saliency_figure_name`."""
        return self.root / self.saliency_figure_name(spec_id, row)

    # ----------------------------------------------------------------------------- sub-folders
    def grid(self, name: str) -> ResultsFolder:
        """``grid-<name>/``: one grid's results when a run used models on several grids."""
        return ResultsFolder(self.root / f"grid-{safe_name(name)}")

    @property
    def real(self) -> ResultsFolder:
        """``real/``: the real spectra classified and explained beside a simulated study."""
        return ResultsFolder(self.root / "real")

    def clear_explained(self) -> None:
        """Remove what ``explain`` writes here before a run replaces it — the provenance that marks
        a run finished first, then the tables, the maps, the figures and each ``grid-*/`` folder's
        — so that a run cut short never leaves the last run's outputs looking like its own. Files
        agnlens does not write stay (and the folders that hold them)."""
        maps = ("values.npy", "flux.npy", "wavelength.npy", "index.csv", "saliency.json")
        figures = [self.figures, self.saliency_figures]
        gone = [self.provenance, self.predictions, self.embedding, self.line_table, self.centre_wings,
                self.line_contributions, *(self.saliency / name for name in maps),
                *(f for folder in figures if folder.is_dir() for f in folder.iterdir()
                  if f.is_file() and f.suffix in (".png", ".pdf", ".svg"))]
        for path in gone:
            path.unlink(missing_ok=True)
        for folder in (self.saliency_figures, self.figures, self.saliency):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        for grid in sorted(self.root.glob("grid-*")):
            if grid.is_dir() and not grid.is_symlink():
                ResultsFolder(grid).clear_explained()
                if not any(grid.iterdir()):
                    grid.rmdir()
        for store in sorted(self.root.iterdir()):  # a store explained on Dask (explain_store), or its work
            if store.is_dir() and not store.is_symlink() and (store / "job.json").is_file():
                for name in ("saliency.zarr", "parts"):
                    shutil.rmtree(store / name, ignore_errors=True)
                for name in ("index.csv", "complete.json", "job.json"):
                    (store / name).unlink(missing_ok=True)
                if not any(store.iterdir()):
                    store.rmdir()

    def files(self) -> list[Path]:
        """The study's data files, in the order the report lists them."""
        return [
            self.metrics, *(self.model(t) for t in TASKS), *(self.tuning(t) for t in TASKS), self.predictions,
            self.embedding, self.line_table, self.centre_wings, self.faithfulness, self.measurements,
            self.centre_wings_test, self.real.predictions, self.saliency / "values.npy", self.saliency_index,
            self.saliency / "wavelength.npy",
        ]
