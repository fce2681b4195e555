""":func:`agnlens.stages.explain` of what a user hands in: files, folders, glob patterns and stores.

Each input is read once (:func:`agnlens.stages.load`); the spectra of each model's grid are
explained batch by batch into the results folder (into ``grid-<name>/`` when several grids are
used; :class:`agnlens.stages.explain_batches.BatchExplanation`: memory holds one batch). On
a Dask scheduler every input must be a store, explained chunk by chunk where it lies
(:func:`agnlens.stages.explain_store`: maps and index, no figures).
"""

from __future__ import annotations

import os
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
    from agnlens.stages.explanations import explain_store
    from agnlens.stages.loading import load_groups

    executor = as_executor(executor)
    base = folder.root if isinstance(folder, ResultsFolder) else Path(folder)
    folder = folder if isinstance(folder, ResultsFolder) else ResultsFolder(folder)
    done = Explained(folder)
    if not executor.local:
        from agnlens.errors import UsageError
        from agnlens.io.store import is_store

        paths = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(p) for p in inputs]
        not_stores = [p for p in paths if not is_store(p)]
        if not_stores:
            raise UsageError(f"on a Dask scheduler explain takes stores only; {not_stores[0]} is not one (make "
                             "one with agnlens ingest)")
        for group in load_groups(paths, models, executor=executor)[0]:
            store = str(group.store)
            done.stores[store] = explain_store(
                group.model, store, base / Path(store).name, method=options.get("method", DEFAULT_METHOD),
                target=resolve_target(target, group.model),
                executor=Executor(executor.scheduler, progress=executor.progress),
            )
        return done
    _explain_batches(done, models, inputs, labels, target, executor.progress, options)
    return done


def _explain_batches(done: Explained, models, inputs, labels, target, progress: bool, options: dict) -> None:
    """Explain the inputs in this process batch by batch, a :class:`BatchExplanation` per model:
    memory holds one batch (a store's spectra :data:`~agnlens.stages.executor.CHUNK` at a time)."""
    import sys

    from agnlens.explain.attribution import DEFAULT_METHOD
    from agnlens.stages.executor import CHUNK
    from agnlens.stages.explain_batches import BatchExplanation
    from agnlens.stages.loading import load

    explainers: dict[int, BatchExplanation] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="explain", unit="spectrum", file=sys.stderr, leave=False)

    def add(group) -> None:
        explainer = explainers.get(id(group.model))
        if explainer is None:
            explainer = explainers[id(group.model)] = BatchExplanation(
                group.model, group.metadata, done.folder.root, method=options.get("method", DEFAULT_METHOD),
                target=resolve_target(target, group.model), progress=progress,
                **{k: v for k, v in options.items() if k != "method"})
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
        for explainer in explainers.values():
            where = done.folder if len(explainers) == 1 else done.folder.grid(getattr(explainer.grid, "name", ""))
            done.explanations.append(explainer.finish(where))
    finally:
        if bar is not None:
            bar.close()
        for explainer in explainers.values():
            explainer.close()


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
