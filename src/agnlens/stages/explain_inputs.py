""":func:`agnlens.stages.explain` of what a user hands in: files, folders, glob patterns and stores.

Each input is read once (:func:`agnlens.stages.load`); the spectra of each model's grid are
explained batch by batch into the results folder (into ``grid-<name>/`` when several grids are
used; :class:`agnlens.stages.explain_batches.BatchExplanation`: memory holds one batch). On
a Dask scheduler the workers read and explain batches of the files (:func:`explain_batch`), this
process writes what they send back in input order; a store is explained chunk by chunk where it
lies (:func:`agnlens.stages.explain_store`: maps and index, no figures).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from agnlens.results import ResultsFolder
from agnlens.stages.executor import Executor, as_executor
from agnlens.stages.explanations import Explanation


@dataclass
class Explained:
    """What :func:`agnlens.stages.explain` did with inputs.

    Attributes
    ----------
    folder : ResultsFolder
    explanations : list of Explanation
        One per model's grid that received spectra, in order of preference (in this process).
    stores : dict of str to dict
        On Dask: each store's outputs (``saliency``, ``index``) of :func:`agnlens.stages.explain_store`.
    rejected : list of Rejection
        Inputs that could not be used, with their reasons.
    """

    folder: ResultsFolder
    explanations: list[Explanation] = field(default_factory=list)
    stores: dict[str, dict] = field(default_factory=dict)
    rejected: list = field(default_factory=list)


def explain_inputs(models, inputs, folder, *, labels=None, target=None, executor=None, **options) -> Explained:
    """:func:`agnlens.stages.explain` of inputs (same parameters); ``target`` a class label or index,
    or its text (checked against each model's classes)."""
    from agnlens.explain.attribution import DEFAULT_METHOD
    from agnlens.stages.explanations import check_figures, explain_store
    from agnlens.stages.loading import load_groups, remember_store

    check_figures(options.get("max_figures"), options.get("figure_format", "png"), options.get("dpi"))
    executor = as_executor(executor)
    base = folder.root if isinstance(folder, ResultsFolder) else Path(folder)
    folder = folder if isinstance(folder, ResultsFolder) else ResultsFolder(folder)
    done = Explained(folder)
    if not executor.local:
        from agnlens.io.store import is_store

        paths = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(p) for p in inputs]
        stores = [p for p in paths if is_store(p)]
        seen: dict[str, str] = {}  # a spec_id of a store read again from a file is a repeat
        names: set[str] = set()
        for group in load_groups(stores, models, executor=executor)[0] if stores else []:
            store = str(group.store)
            remember_store(group, seen)
            name, k = Path(store).name, 1  # two stores of one name (in two folders) each get their own
            while name in names:
                k += 1
                name = f"{Path(store).name}-{k}"
            names.add(name)
            done.stores[store] = explain_store(
                group.model, store, base / name, method=options.get("method", DEFAULT_METHOD),
                target=resolve_target(target, group.model),
                executor=Executor(executor.scheduler, progress=executor.progress),
            )
        files = [p for p in paths if not is_store(p)]
        if files:
            _explain_files_on(done, executor, models, files, labels, target, options, seen)
        return done
    _explain_batches(done, models, inputs, labels, target, executor.progress, options)
    return done


def _explain_batches(done: Explained, models, inputs, labels, target, progress: bool, options: dict) -> None:
    """Explain the inputs in this process batch by batch, a :class:`BatchExplanation` per model:
    memory holds one batch (a store's spectra :data:`~agnlens.stages.executor.CHUNK` at a time)."""
    import sys

    from agnlens.stages.executor import CHUNK
    from agnlens.stages.loading import load

    explainers = _Explainers(done, target, progress, options)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="explain", unit="spectrum", file=sys.stderr, leave=False)

    def add(group) -> None:
        if not len(group.spectra):  # a store of rows that were all rejected
            return
        explainer = explainers.of(id(group.model), group.model, group.metadata)
        for start in range(0, len(group.spectra), CHUNK):
            explainer.add(group.spectra[start:start + CHUNK])
            if bar is not None:
                bar.update(min(CHUNK, len(group.spectra) - start))

    try:
        for batch in load(inputs, models, labels=labels):
            done.rejected.extend(batch.rejected)
            while batch.groups:
                add(batch.groups.pop(0))
            del batch  # this batch's spectra go before the next batch is read
        explainers.finish()
    finally:
        if bar is not None:
            bar.close()
        explainers.close()


class _Explainers(dict):
    """A :class:`~agnlens.stages.explain_batches.BatchExplanation` per model, made when the model's
    first spectra come; :meth:`finish` writes each into the results folder (``grid-<name>/`` when
    several grids received spectra)."""

    def __init__(self, done: Explained, target, progress: bool, options: dict) -> None:
        super().__init__()
        self.done, self.target, self.progress, self.options = done, target, progress, options

    def of(self, key, model, metadata):
        from agnlens.explain.attribution import DEFAULT_METHOD
        from agnlens.stages.explain_batches import BatchExplanation

        if key not in self:
            self[key] = BatchExplanation(
                model, metadata, self.done.folder.root, method=self.options.get("method", DEFAULT_METHOD),
                target=resolve_target(self.target, model), progress=self.progress,
                **{k: v for k, v in self.options.items() if k != "method"})
        return self[key]

    def finish(self) -> None:
        folder = self.done.folder
        for explainer in self.values():  # in the order the models received their first spectra
            where = folder if len(self) == 1 else folder.grid(getattr(explainer.grid, "name", ""))
            self.done.explanations.append(explainer.finish(where))

    def close(self) -> None:
        for explainer in self.values():
            explainer.close()


def explain_batch(paths: list[str], models, labels, target, options: dict) -> tuple[list, list]:
    """Read and explain a batch of files in this process (the task a Dask worker runs): the
    :class:`~agnlens.stages.explain_batches.Part` of each model the spectra went to, with its
    rank among the models, and the inputs rejected."""
    from agnlens.stages.explain_batches import explain_part
    from agnlens.stages.loading import load

    parts, rejected = [], []
    with warnings.catch_warnings():  # scikit-learn's note that a Dask worker runs one job at a time
        warnings.filterwarnings("ignore", message="Inside a Dask worker", category=UserWarning)
        for batch in load(paths, models, labels=labels):
            rejected += batch.rejected
            parts += [(g.rank, explain_part(g.model, g.metadata, g.spectra, target=resolve_target(target, g.model),
                                            **options)) for g in batch.groups if len(g.spectra)]
    return parts, rejected


def _explain_files_on(done: Explained, executor: Executor, models, files: list[str], labels, target,
                      options: dict, seen: dict[str, str]) -> None:
    """Files on a Dask scheduler: each worker reads and explains batches of them
    (:func:`explain_batch`); this process takes their parts in input order as they come, writes the
    maps and reduces the tables (a :class:`~agnlens.stages.explain_batches.BatchExplanation` per
    model, as in this process), leaving a repeated spec_id out after its first. A batch that fails
    on every try is reported by its files."""
    from agnlens.engine import execute, one_line
    from agnlens.engine.resume import progress_bar
    from agnlens.explain.attribution import DEFAULT_METHOD
    from agnlens.io import expand_inputs
    from agnlens.io.inputs import display_name, work_batches
    from agnlens.preprocess import Rejection
    from agnlens.stages.classify_inputs import FILE_BATCH
    from agnlens.stages.explain_batches import kept_spectra, map_embedding
    from agnlens.stages.explanations import MAX_FIGURES
    from agnlens.stages.reading import first_of_each_spec_id, read_labels

    batches = work_batches([str(p) for p in expand_inputs(files)], executor.chunk_size or FILE_BATCH)
    explainers = _Explainers(done, target, executor.progress, options)

    def take(parts: list, rejected: list) -> None:
        done.rejected.extend(rejected)
        for rank, part in parts:
            first, repeats = first_of_each_spec_id(part.saliency.spec_id, part.judged["source"].astype(str), seen)
            done.rejected.extend(repeats)
            if first.any():
                explainer = explainers.of(rank, *models[rank])
                explainer.take(part if first.all() else part.rows(first))

    def lost(i: int, error) -> None:
        why = one_line(error)
        done.rejected.extend(Rejection(display_name(p), f"its batch failed on the Dask workers ({why})")
                             for p in batches[i])

    resolve_target(target, models[0][0])  # a class no model has: one line here, not a failure per batch
    map_embedding(models[0][1])  # the first model and its map are made (or read) here, not by every worker
    task = {"method": options.get("method", DEFAULT_METHOD),
            "keep": kept_spectra(options.get("max_figures", MAX_FIGURES))}
    bar = progress_bar(executor.progress, len(batches), 0)
    try:
        execute(executor.scheduler, explain_batch, list(enumerate((b,) for b in batches)),
                (models, read_labels(labels), target, task), executor.retries, bar, results=_InOrder(take, lost))
        explainers.finish()
    finally:
        bar.close()
        explainers.close()


class _InOrder(dict):
    """Answers of tasks (``execute``'s ``results``) handed on in task order as they arrive —
    ``take(*answer)``, or ``lost(index, error)`` for a task that failed: only those that came
    before their turn wait here."""

    def __init__(self, take, lost) -> None:
        super().__init__()
        self.take, self.lost, self.next = take, lost, 0

    def __setitem__(self, i: int, answer) -> None:
        super().__setitem__(i, (True, answer))
        self._hand_on()

    def fail(self, i: int, error) -> None:
        super().__setitem__(i, (False, error))
        self._hand_on()

    def _hand_on(self) -> None:
        while self.next in self:
            ok, value = self.pop(self.next)
            if ok:
                self.take(*value)
            else:
                self.lost(self.next, value)
            self.next += 1


def resolve_target(text, model):
    """The class to explain named by ``text`` (a class label, or an index among ``model.classes_``);
    None stays None, a label or index that is not text is taken as it is."""
    if text is None or not isinstance(text, str):
        return text
    classes = [str(c) for c in getattr(model, "classes_", [])]
    if text in classes:
        return list(model.classes_)[classes.index(text)]
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    from agnlens.errors import UsageError

    raise UsageError(
        f"the class to explain, {text!r}, is not a class of the model ({', '.join(classes)}) nor an index "
        f"0..{len(classes) - 1}"
    )
