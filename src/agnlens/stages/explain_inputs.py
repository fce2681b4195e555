""":func:`agnlens.stages.explain` of what a user hands in: files, folders, glob patterns and stores.

Each input is read once (:func:`agnlens.stages.load`); the spectra of each model's grid are
explained together into the results folder (into ``grid-<name>/`` when several grids are used). On
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
    from agnlens.stages.explanations import explain_set, explain_store
    from agnlens.stages.loading import load_groups, merge_groups

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
    groups, done.rejected = load_groups(inputs, models, labels=labels, observed=False)
    merged = merge_groups(groups)
    del groups
    for model, meta, spectra in merged:
        where = folder if len(merged) == 1 else folder.grid(spectra.grid.name)
        done.explanations.append(explain_set(model, spectra, where, target=resolve_target(target, model),
                                         executor=Executor(progress=executor.progress), metadata=meta, **options))
    return done


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
