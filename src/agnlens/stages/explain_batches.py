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
from pathlib import Path

import numpy as np
import pandas as pd

from agnlens.atomic import temp_sibling
from agnlens.grid import Grid
from agnlens.results import ResultsFolder
from agnlens.spectra import SpectrumSet
from agnlens.stages.executor import CHUNK, Executor
from agnlens.stages.explanations import DESCRIBED, Explanation

#: Rows of the maps read at a time when their colour scale is taken from the saliency folder.
LIMIT_ROWS = 4 * CHUNK


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
                 max_figures: int = 50, panels: bool = False, figure_format: str = "png",
                 dpi: float | None = None, progress: bool = False) -> None:
        from agnlens.explain.result import SaliencyWriter
        from agnlens.stages.maps import reference_map

        self.model, self.metadata, self.method, self.target = model, metadata, method, target
        self.max_figures, self.panels, self.progress = int(max_figures), panels, progress
        self.figure_format, self.dpi = figure_format, dpi
        self._writer = SaliencyWriter(work)
        self._contributions = temp_sibling(Path(work) / "line_contributions.csv", "part")
        self._contributions.open("x").close()
        self._map = reference_map(metadata) if metadata is not None else None
        self._judged: list[pd.DataFrame] = []
        self._widths: list[pd.DataFrame] = []
        self._placed: list[np.ndarray] = []
        self._means: list[np.ndarray] = []
        self._profiles: dict[str, list] = {}
        self._windows: list | None = None
        self._kept: list = []  # (saliency, spectra, contributions) of the first spectra, for figures and words
        self.grid: Grid | None = None
        self.n_spectra = 0

    def add(self, spectra: SpectrumSet) -> None:
        """Explain one batch (on the model's grid) and write or reduce what it gives."""
        from agnlens.explain.contributions import line_contributions
        from agnlens.explain.linestats import covered_lines, line_profiles, line_windows, window_means
        from agnlens.stages.explanations import explain_saliency, judge

        if not len(spectra):
            return
        executor = Executor(progress=False)
        judged, widths = judge(self.model, spectra, executor)
        self._judged.append(judged)
        if widths is not None:
            self._widths.append(widths)
        if self._map is not None:
            self._placed.append(self._map[0].transform(np.asarray(spectra.flux, dtype=np.float64)))
        sal = explain_saliency(self.model, spectra, method=self.method, target=self.target, executor=executor)
        sal.reason = np.full(len(sal), "input")  # the user's spectra, not a sample
        self._writer.add(sal)
        if self._windows is None:
            self.grid, self._windows = spectra.grid, line_windows(sal.wavelength)
            self._profiles = {line: [] for line in covered_lines(sal)}
        self._means.append(window_means(sal.values, self._windows))
        for line, parts in self._profiles.items():
            parts.append(line_profiles(sal, line, widths=widths))
        contributions = line_contributions(sal) if sal.method == "integrated-gradients" else None
        if contributions is not None:
            from agnlens.atomic import csv_safe

            csv_safe(contributions).to_csv(self._contributions, mode="a", header=not self.n_spectra, index=False,
                                           float_format="%.6g")  # as write_csv writes it, a batch at a time
        keep = max(self.max_figures, DESCRIBED) - self.n_spectra
        if keep > 0:
            rows = np.arange(min(keep, len(sal)))
            shown = None if contributions is None else contributions[contributions["spec_id"].isin(sal.spec_id[rows])]
            self._kept.append((sal[rows], spectra[rows], shown))
        self.n_spectra += len(sal)

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
        if self._map is not None:
            from agnlens.stages.maps import write_map

            write_map(folder, self.metadata or {}, None, judged, placed=np.concatenate(self._placed))
        self._writer.close(folder.saliency)
        sal = Saliency.load(folder.saliency, mmap=True)
        table = line_table(sal, means=np.concatenate(self._means))
        write_csv(folder.line_table, table)
        kept_contributions = None
        if self._contributions.stat().st_size:
            os.replace(self._contributions, folder.line_contributions)
            kept_contributions = pd.concat([c for *_, c in self._kept], ignore_index=True)
        cws = [centre_wings(sal, line, widths=widths, profiles=LineProfiles.concat(parts))
               for line, parts in self._profiles.items()]
        if any(len(c.table) for c in cws):
            write_csv(folder.centre_wings, pd.concat([c.table for c in cws], ignore_index=True))
        result = Explanation(sal, table, cws, judged, folder, min(self.max_figures, len(sal)), kept_contributions,
                             self.model, None, grid=self.grid)
        if result.n_figures:
            result.colour_limit = _saved_limit(folder.saliency)
            shown = SpectrumSet.concat([s for _, s, _ in self._kept])[np.arange(result.n_figures)]
            per_class = ({str(c): explain_saliency(self.model, shown, method=self.method, target=k)
                          for k, c in enumerate(self.model.classes_)} if self.panels else None)
            explain_figures(result, progress=self.progress, panels=per_class, figure_format=self.figure_format,
                            dpi=self.dpi)
        return result

    def close(self) -> None:
        """Remove the working folder (after :meth:`finish`, or when the run failed)."""
        self._writer.__exit__(None, None, None)
        self._contributions.unlink(missing_ok=True)


def _saved_limit(directory: Path) -> float:
    """:func:`agnlens.plot.saliency.shared_limit` of the maps of a saliency folder, read
    :data:`LIMIT_ROWS` rows at a time."""
    from agnlens.explain.result import saved_rows
    from agnlens.plot.saliency import shared_limit

    return shared_limit(lambda: saved_rows(directory / "values.npy", LIMIT_ROWS))
