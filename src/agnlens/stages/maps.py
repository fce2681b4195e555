"""Where explained spectra sit on a t-SNE map of their model's training sample (the report's map).

A built-in default model is trained on a simulated sample that the simulator regenerates from the
seed in the model's metadata (:func:`agnlens.models.default.training_set`). Its t-SNE map
(:func:`agnlens.embed.tsne`, perplexity 50, the recipe's seed) is computed once and cached beside
the cached model (``<model>.tsne.npz``, keyed by the model's own cache key and the source of
:mod:`agnlens.embed`); new spectra are placed into it with :meth:`agnlens.embed.Embedding.transform`,
which moves none of the training points. A model file without such a recipe (``agnlens train``,
``agnlens demo``) has no training sample to map, and no map is written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agnlens.results import ResultsFolder
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

#: Perplexity of the reference maps (the study's).
PERPLEXITY = 50.0
#: ``split`` of the training spectra in ``embedding.csv`` (the explained ones have ``explained``).
REFERENCE_SPLIT = "simulated training"


def _embed_key() -> str:
    spec = importlib.util.find_spec("agnlens.embed")
    source = Path(spec.origin).read_bytes() if spec is not None and spec.origin else b""
    return hashlib.sha256(source + repr(PERPLEXITY).encode()).hexdigest()[:12]


def reference_map_path(meta: dict) -> Path | None:
    """Where the reference map of the model of ``meta`` is cached (None: the model has no
    regenerable training sample)."""
    recipe, file = meta.get("default_model"), meta.get("file")
    if not isinstance(recipe, dict) or not file:
        return None
    return Path(file).with_name(f"{Path(file).stem}.tsne-{_embed_key()}.npz")


def reference_map(meta: dict):
    """The t-SNE map of the simulated sample a built-in default model was trained on.

    Parameters
    ----------
    meta : dict
        The model's metadata (:func:`agnlens.models.default.resolve_models`).

    Returns
    -------
    (Embedding, labels, spec_ids) or None
        None for a model without a regenerable training sample. The first call for a model
        simulates its sample and fits the map (about half a minute), later calls read the cache.
    """
    from agnlens.embed import load_embedding, tsne
    from agnlens.models.default import training_set

    path = reference_map_path(meta)
    if path is None:
        return None
    if path.is_file():
        try:
            emb, extra = load_embedding(path)
            return emb, extra["labels"].astype(str), extra["spec_id"].astype(str)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cached t-SNE map %s unusable (%s); computing it again", path, exc)
    t0 = time.perf_counter()
    log.info("computing the t-SNE map of the %s model's training sample (first use; cached in %s)",
             meta["default_model"].get("grid"), path)
    spectra = training_set(meta["default_model"]["grid"])
    emb = tsne(np.asarray(spectra.flux, dtype=np.float64), perplexity=PERPLEXITY,
               seed=int(meta["default_model"]["seed"]))
    emb.save(path, labels=spectra.labels.astype(str), spec_id=np.asarray(spectra.spec_id, dtype=str))
    log.info("t-SNE reference map: %d spectra in %.1f s", emb.n, time.perf_counter() - t0)
    return emb, spectra.labels.astype(str), np.asarray(spectra.spec_id, dtype=str)


def write_map(folder: ResultsFolder, meta: dict, spectra: SpectrumSet | None, predictions: pd.DataFrame, *,
              placed: np.ndarray | None = None) -> Path | None:
    """Place ``spectra`` on their model's reference map and write ``embedding.csv``.

    Parameters
    ----------
    folder : ResultsFolder
    meta : dict
        The model's metadata.
    spectra : SpectrumSet
        On the model's grid, in the order of ``predictions``.
    predictions : DataFrame
        :func:`agnlens.stages.classify` of ``spectra`` (``spec_id, label, predicted_label, p_<class>``).
    placed : ndarray of shape (n_spectra, 2), optional
        The spectra's places on the map made beforehand (:meth:`agnlens.embed.Embedding.transform`
        of the map's embedding, e.g. batch by batch); then ``spectra`` is not read.

    Returns
    -------
    Path or None
        ``embedding.csv``: the training spectra (``split`` = :data:`REFERENCE_SPLIT`, their simulated
        ``label``) then these (``split`` = ``explained``, ``explained`` true), with ``x, y``; None when
        the model has no reference map.
    """
    from agnlens.atomic import write_csv

    ref = reference_map(meta)
    if ref is None:
        return None
    emb, labels, spec_ids = ref
    if placed is None:
        if spectra is None:
            raise ValueError("write_map: give the spectra or their places on the map")
        placed = emb.transform(np.asarray(spectra.flux, dtype=np.float64))
    xy = placed
    reference = pd.DataFrame({"spec_id": spec_ids, "label": labels, "predicted_label": "", "split": REFERENCE_SPLIT,
                              "explained": False, "x": emb.coords[:, 0], "y": emb.coords[:, 1]})
    pcols = [c for c in predictions.columns if c.startswith("p_") and not c.endswith("_err")]
    mine = predictions[["spec_id", "label", "predicted_label", *pcols]].assign(
        split="explained", explained=True, x=xy[:, 0], y=xy[:, 1])
    write_csv(folder.embedding, pd.concat([reference, mine], ignore_index=True), float_format="%.6g")
    return folder.embedding
