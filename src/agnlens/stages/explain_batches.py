"""``explain`` of spectra that arrive batch by batch (files read by :func:`agnlens.stages.load`):
each batch is judged, measured, placed on the map and explained, and what it gives is written or
reduced at once — the maps to a saliency folder on disk, the line tables and centre-vs-wings
statistics to per-spectrum numbers — so that memory is bounded by the batch and a few numbers per
spectrum, not by the number of files.

:class:`BatchExplanation` writes what :func:`agnlens.stages.explanations.explain_set` writes for
the same spectra held in memory, from the same functions: the same tables (to rounding of sums
taken in another order), maps stored as float32 as always, one colour scale over all maps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.atomic import temp_sibling
from agnlens.grid import Grid
from agnlens.results import ResultsFolder
from agnlens.spectra import SpectrumSet
from agnlens.stages.executor import CHUNK, Executor
from agnlens.stages.explanations import DESCRIBED, MAX_FIGURES, Explanation

#: Rows of the maps read at a time when their colour scale is taken from the saliency folder.
LIMIT_ROWS = 4 * CHUNK


@dataclass
class Part:
    """What one batch gives :meth:`BatchExplanation.take` (:func:`explain_part`).

    Attributes
    ----------
    judged : DataFrame
        :func:`agnlens.stages.classify` of the batch, with the measurements beside each row.
    widths : DataFrame or None
        The physics baseline's measurements (None when the grid does not reach Hβ).
    placed : ndarray of shape (n, 2) or None
        The spectra's places on the model's t-SNE map (None: the model has none).
    saliency : Saliency
    means : ndarray
        :func:`agnlens.explain.linestats.window_means` of the maps.
    profiles : dict of str to LineProfiles
        :func:`agnlens.explain.linestats.line_profiles` of each line the grid covers.
    contributions : DataFrame or None
        :func:`agnlens.explain.contributions.line_contributions` (Integrated Gradients only).
    spectra : SpectrumSet
        The batch's first spectra (as many as were asked for: figures with panels).
    grid : Grid
    """

    judged: pd.DataFrame
    widths: pd.DataFrame | None
    placed: np.ndarray | None
    saliency: Any
    means: np.ndarray
    profiles: dict
    contributions: pd.DataFrame | None
    spectra: SpectrumSet
    grid: Any

    def rows(self, mask: np.ndarray) -> Part:
        """The part of the spectra in ``mask`` (bool, in batch order): a repeat left out."""
        from agnlens.explain.linestats import line_profiles

        ids = set(np.asarray(self.saliency.spec_id)[mask])
        sal = self.saliency[mask]
        widths = None if self.widths is None else self.widths[self.widths["spec_id"].astype(str).isin(ids)]
        return Part(
            self.judged[mask].reset_index(drop=True), widths,
            None if self.placed is None else self.placed[mask], sal, self.means[mask],
            {line: line_profiles(sal, line, widths=widths) for line in self.profiles},  # as explain_part made them
            None if self.contributions is None else self.contributions[self.contributions["spec_id"].isin(ids)],
            self.spectra[np.flatnonzero(np.isin(self.spectra.spec_id, list(ids)))], self.grid)


def explain_part(model, metadata: dict | None, spectra: SpectrumSet, *, method: str, target=None,
                 keep: int = DESCRIBED) -> Part:
    """Judge, measure, place on the map and explain one batch, and reduce its maps to what
    :class:`BatchExplanation` keeps (in this process, or the task of a Dask worker)."""
    from agnlens.explain.contributions import line_contributions
    from agnlens.explain.linestats import covered_lines, line_profiles, line_windows, window_means
    from agnlens.stages.explanations import explain_saliency, judge

    executor = Executor(progress=False)
    judged, widths = judge(model, spectra, executor)
    ref = map_embedding(metadata)
    placed = None if ref is None else ref.transform(np.asarray(spectra.flux, dtype=np.float64))
    sal = explain_saliency(model, spectra, method=method, target=target, executor=executor)
    sal.reason = np.full(len(sal), "input")  # the user's spectra, not a sample
    return Part(judged, widths, placed, sal, window_means(sal.values, line_windows(sal.wavelength)),
                {line: line_profiles(sal, line, widths=widths) for line in covered_lines(sal)},
                line_contributions(sal) if sal.method == "integrated-gradients" else None,
                spectra[np.arange(min(keep, len(spectra)))], spectra.grid)


def kept_spectra(max_figures: int) -> int:
    """The first spectra of a run whose spectra and line contributions stay in memory: those with a
    figure, and at least :data:`DESCRIBED`."""
    return max(int(max_figures), DESCRIBED)


#: The t-SNE maps read in this process (a Dask worker reads each once), by cache file.
_MAPS: dict = {}


def map_embedding(metadata: dict | None):
    """The embedding of the model's t-SNE map (:func:`agnlens.stages.maps.reference_map`, read once
    in a process), or None when the model has none."""
    from agnlens.stages.maps import reference_map, reference_map_path

    if not metadata or (path := reference_map_path(metadata)) is None:
        return None
    if path not in _MAPS:
        ref = reference_map(metadata)
        _MAPS[path] = None if ref is None else ref[0]
    return _MAPS[path]


class BatchExplanation:
    """One grid's ``explain``, batch by batch: :meth:`add` each batch, then :meth:`finish`.

    Parameters
    ----------
    model, metadata
        The model explained and its metadata (a built-in model's places the spectra on its map).
    work : path-like
        A folder on the file system of the results, for the maps while they come (a hidden
        working folder in it is removed by :meth:`close`).
    method, target, max_figures, panels, figure_format, dpi, progress
        As :func:`agnlens.stages.explain`.
    """

    def __init__(self, model, metadata: dict | None, work: str | os.PathLike, *, method: str, target=None,
                 max_figures: int = MAX_FIGURES, panels: bool = False, figure_format: str = "png",
                 dpi: float | None = None, progress: bool = False) -> None:
        from agnlens.explain.result import SaliencyWriter

        self.model, self.metadata, self.method, self.target = model, metadata, method, target
        self.max_figures, self.panels, self.progress = int(max_figures), panels, progress
        self.figure_format, self.dpi = figure_format, dpi
        self._writer = SaliencyWriter(work)
        self._contributions = temp_sibling(Path(work) / "line_contributions.csv", "part")
        self._contributions.open("x").close()
        self._judged: list[pd.DataFrame] = []
        self._widths: list[pd.DataFrame] = []
        self._placed: list[np.ndarray] = []
        self._means: list[np.ndarray] = []
        self._profiles: dict[str, list] = {}
        self._kept: list = []  # (spectra, line contributions) of the first spectra, for figures and words
        self.grid: Grid | None = None
        self.n_spectra = 0

    def add(self, spectra: SpectrumSet) -> None:
        """Explain one batch (on the model's grid) here and take what it gives."""
        if len(spectra):
            self.take(explain_part(self.model, self.metadata, spectra, method=self.method, target=self.target,
                                   keep=self.keep))

    @property
    def keep(self) -> int:
        """:func:`kept_spectra` of this run."""
        return kept_spectra(self.max_figures)

    def take(self, part: Part) -> None:
        """Write or reduce what one batch gave (:func:`explain_part`, here or on a Dask worker)."""
        if not len(part.saliency):
            return
        self._judged.append(part.judged)
        if part.widths is not None:
            self._widths.append(part.widths)
        if part.placed is not None:
            self._placed.append(part.placed)
        self._writer.add(part.saliency)
        if self.grid is None:
            self.grid = part.grid
            self._profiles = {line: [] for line in part.profiles}
        self._means.append(part.means)
        for line, parts in self._profiles.items():
            parts.append(part.profiles[line])
        if part.contributions is not None:
            from agnlens.atomic import csv_safe

            csv_safe(part.contributions).to_csv(self._contributions, mode="a", header=not self.n_spectra,
                                                index=False, float_format="%.6g")  # as write_csv, a batch at a time
        room = self.keep - self.n_spectra
        if room > 0:
            shown = part.spectra[np.arange(min(room, len(part.spectra)))]
            words = None if part.contributions is None else \
                part.contributions[part.contributions["spec_id"].isin(shown.spec_id)]
            self._kept.append((shown, words))
        self.n_spectra += len(part.saliency)

    def finish(self, folder: ResultsFolder) -> Explanation:
        """Write the tables, the maps and the figures into ``folder``; the :class:`Explanation` holds
        the maps as memory maps of the saliency folder (read when used) and no spectra; its
        ``contributions`` are those of the first spectra (see :data:`DESCRIBED`), the whole table is
        ``line_contributions.csv``."""
        from agnlens.atomic import write_csv
        from agnlens.explain.linestats import LineProfiles, centre_wings, line_table
        from agnlens.explain.result import Saliency
        from agnlens.stages.explanations import explain_figures, explain_saliency
        from agnlens.stages.predictions import write_predictions

        widths = pd.concat(self._widths, ignore_index=True) if self._widths else None
        judged = pd.concat(self._judged, ignore_index=True)
        write_predictions(folder.predictions, judged)
        if self._placed:
            from agnlens.stages.maps import write_map

            write_map(folder, self.metadata or {}, None, judged, placed=np.concatenate(self._placed))
        self._writer.close(folder.saliency)
        sal = Saliency.load(folder.saliency, mmap=True)
        table = line_table(sal, means=np.concatenate(self._means))
        write_csv(folder.line_table, table)
        kept_contributions = None
        if self._contributions.stat().st_size:
            os.replace(self._contributions, folder.line_contributions)
            kept_contributions = pd.concat([c for _, c in self._kept], ignore_index=True)
        cws = [centre_wings(sal, line, widths=widths, profiles=LineProfiles.concat(parts))
               for line, parts in self._profiles.items()]
        if any(len(c.table) for c in cws):
            write_csv(folder.centre_wings, pd.concat([c.table for c in cws], ignore_index=True))
        result = Explanation(sal, table, cws, judged, folder, min(self.max_figures, len(sal)), kept_contributions,
                             self.model, None, grid=self.grid)
        if result.n_figures:
            result.colour_limit = _saved_limit(folder.saliency)
            shown = SpectrumSet.concat([s for s, _ in self._kept])[np.arange(result.n_figures)]
            per_class = ({str(c): explain_saliency(self.model, shown, method=self.method, target=k)
                          for k, c in enumerate(self.model.classes_)} if self.panels else None)
            explain_figures(result, progress=self.progress, panels=per_class, figure_format=self.figure_format,
                            dpi=self.dpi)
        return result

    def close(self) -> None:
        """Remove the working folder (after :meth:`finish`, or when the run failed)."""
        self._writer.discard()
        self._contributions.unlink(missing_ok=True)


def _saved_limit(directory: Path) -> float:
    """:func:`agnlens.plot.saliency.shared_limit` of the maps of a saliency folder, read
    :data:`LIMIT_ROWS` rows at a time."""
    from agnlens.explain.result import saved_rows
    from agnlens.plot.saliency import shared_limit

    return shared_limit(lambda: saved_rows(directory / "values.npy", LIMIT_ROWS))
