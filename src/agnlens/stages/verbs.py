"""The stage verbs a user calls: :func:`classify` and :func:`explain` of anything — a set on a
model's grid, single spectra, or files, folders, glob patterns and stores.

Each door sends spectra in memory to the stage's core (:mod:`agnlens.stages.predictions`,
:mod:`agnlens.stages.explanations`) and inputs to the reader that reads each once and routes each
spectrum to its model (:mod:`agnlens.stages.classify_inputs`, :mod:`agnlens.stages.explain_inputs`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agnlens.explain.attribution import DEFAULT_METHOD
from agnlens.spectra import SpectrumSet
from agnlens.stages.explanations import MAX_FIGURES, explain_set

__all__ = ["classify", "explain"]


def classify(model, spectra, *, check_redshift: bool = True, check_physics: bool = True,
             measurements: pd.DataFrame | None = None, grid: str | None = None, executor=None,
             labels=None, refine_z: bool = False, measure: bool = False, mc_draws: int = 0,
             work: str | Path | None = None, return_rejected: bool = False):
    """Classify spectra and judge every prediction.

    Parameters
    ----------
    model : fitted SpectrumSVC, sequence of (model, metadata), or str
        A model; or models in order of preference (e.g.
        :func:`agnlens.models.default.resolve_models`, each metadata recording its grid); or a
        model file or ``"default"`` (resolved here).
    spectra : SpectrumSet, spectrum-like, path-like or iterable of path-like
        A SpectrumSet preprocessed onto the model's grid (rest frame); single spectra (observed
        frame, with their redshift) are preprocessed onto it here
        (:func:`agnlens.io.as_spectrum_set`); files, folders, glob patterns and stores are read
        once by :func:`agnlens.stages.load`.
    check_redshift : bool
        Measure the narrow lines' velocity offset (:mod:`agnlens.redshift`) and flag
        ``redshift-offset`` beyond :data:`agnlens.redshift.MAX_OFFSET_KMS`.
    check_physics : bool
        Fit the lines with the physics baseline (:func:`agnlens.models.baseline.measure`, ~10 ms
        of CPU per spectrum) where the spectrum reaches Hα (on the ``balmer`` grid for files
        classified on ``paper``) and flag ``not-agn``
        (:func:`agnlens.models.applicability.not_agn`: star-forming on the BPT diagram, no broad line).
    measurements : DataFrame, optional
        :func:`agnlens.models.baseline.measure` of these spectra, already made; used instead of
        fitting again.
    grid : str, optional
        Name written in the ``grid`` column (default ``spectra.grid``).
    executor : Executor or scheduler name, optional
        Cuts the spectra into chunks (default :data:`agnlens.stages.executor.LOCAL`); on Dask a
        store's spectra go through :func:`classify_store`, chunk by chunk in the same way, and
        files are read and classified by the workers, a batch of files each task.
    labels : path or DataFrame, optional
        A label catalogue for files (fills ``label``; its ``z`` overrides the file's redshift).
    refine_z : bool
        Files: re-measure the redshift of spectra flagged ``redshift-offset`` from their narrow
        lines, reprocess and classify them again; the corrected redshift goes into ``z_refined``
        and ``z_offset_kms`` keeps the offset that was found.
    measure : bool
        Append the physics baseline's measurements (:data:`agnlens.models.baseline.MEASURE_COLUMNS`,
        NaN / "" where a spectrum does not reach Hβ) and ``agrees_with_baseline``: files measured
        on the ``balmer`` grid, a store on its own, each at the redshift its prediction used.
    mc_draws : int
        Files: when > 0, also the Monte-Carlo standard error of every probability
        (:func:`agnlens.explain.uncertainty.monte_carlo_std`: the spectrum's pixels drawn
        ``mc_draws`` times from their ``ivar`` and sent through the whole preprocessing and the
        model, seeded by the spectrum's spec_id), in columns ``p_<class>_mc_err``.
    work : path-like, optional
        Folder for the resumable parts of stores classified on Dask (default: beside each store).
    return_rejected : bool
        Also return the inputs that could not be used.

    Returns
    -------
    table : pandas.DataFrame
        One row per spectrum, in order (for inputs: stores first, then files in input order
        within each grid, grids in order of preference): ``spec_id, label, predicted_label,
        p_<class>..., p_<class>_err...`` (the standard error of each probability from the
        spectrum's noise, :func:`agnlens.explain.uncertainty.proba_std`), ``applicable, flags,
        z_offset_kms, z_offset_err_kms, grid, z, source``, then the diagnostics of
        :func:`agnlens.models.applicability.applicability` (``max_kernel``, ``intercept_share``,
        ``pca_residual``, ``mahalanobis``, ``masked_share``, ``ood_check``, ``agn_check``).
    rejected : list of Rejection
        With ``return_rejected``: inputs no model could use, each with its reason.
    """
    from agnlens.io.coerce import is_spectrum_like
    from agnlens.stages.predictions import classify_set, is_models, models_of, pick_model

    if isinstance(spectra, SpectrumSet) or is_spectrum_like(spectra):
        if is_models(model):
            model = pick_model(models_of(model), spectra)
        table = classify_set(model, spectra, check_redshift, check_physics, measurements, grid, executor, measure)
        return (table, []) if return_rejected else table
    from agnlens.stages.classify_inputs import classify_inputs

    table, rejected = classify_inputs(
        models_of(model), spectra, labels=labels, refine_z=refine_z, check_redshift=check_redshift,
        check_physics=check_physics, measure=measure, mc_draws=mc_draws, executor=executor, work=work,
    )
    return (table, rejected) if return_rejected else table


def explain(
    model,
    spectra,
    folder,
    *,
    method: str = DEFAULT_METHOD,
    target=None,
    executor=None,
    max_figures: int = MAX_FIGURES,
    panels: bool = False,
    metadata: dict | None = None,
    figure_format: str = "png",
    dpi: float | None = None,
    labels=None,
):
    """Explain ``model``'s decisions on ``spectra`` and write the results into ``folder``.

    Writes ``predictions.csv`` (the table of :func:`agnlens.stages.classify`, as ``agnlens classify``
    writes it, with the physics baseline's measurements where the grid reaches Hα),
    ``saliency/`` (values, wavelength, flux, index), ``line_table.csv``, ``line_contributions.csv``
    (Integrated Gradients only), ``centre_wings.csv`` (spectra with a broad line only),
    ``embedding.csv`` (with ``metadata`` of a built-in model: :func:`agnlens.stages.maps.write_map`)
    and the figures: one per spectrum for the first
    ``max_figures`` (``figures/saliency/<spec_id>.png``, saying so when the prediction is not
    applicable), ``figures/gallery.png``, ``figures/line_table.png`` and
    ``figures/centre_wings.png``; with ``figure_format="pdf"`` or ``"svg"`` each figure also in
    that format beside its PNG (the report embeds the PNGs). Every saliency figure and the
    gallery share one colour scale (:func:`agnlens.plot.saliency.shared_limit` of all the maps).

    Parameters
    ----------
    model : fitted SpectrumSVC, or sequence of (model, metadata)
        On the grid of ``spectra``; or models in order of preference (e.g.
        :func:`agnlens.models.default.resolve_models`) for inputs.
    spectra : SpectrumSet, path-like or iterable of path-like
        Preprocessed onto the model's grid; or files, folders, glob patterns and stores, read once
        (:func:`agnlens.stages.load`) and explained grid by grid, batch by batch (into
        ``grid-<name>/`` when several grids are used; on a Dask ``executor`` the workers read and
        explain batches of the files, and a store is explained chunk by chunk where it lies, maps
        and index only: :func:`explain_store` into ``FOLDER/<store>/``).
    folder : ResultsFolder or path-like
    method : str
        Default ``"integrated-gradients"`` from each spectrum's continuum; see
        :func:`agnlens.explain.attribution.saliency`.
    target : None, class label or index
        None explains each spectrum's predicted class; for inputs also its text (a label, or an
        index), checked against each model's classes.
    executor : Executor, optional
        Chunks of the maps (default in this process, :data:`~agnlens.stages.executor.CHUNK` rows).
    max_figures : int
        Spectra with a figure (0: none).
    panels : bool
        Figures with one panel per class.
    metadata : dict, optional
        The model's metadata; a built-in default model's places the spectra on the t-SNE map of
        its training sample.
    figure_format : {"png", "pdf", "svg"}
        Format of the figures; a vector format is written beside the PNG.
    dpi : float, optional
        Resolution of the PNGs (default :data:`agnlens.plot.saliency.DPI`).
    labels : path or DataFrame, optional
        A label catalogue for files (true types in the titles).

    Returns
    -------
    Explanation, or Explained for inputs
        :class:`agnlens.stages.explain_inputs.Explained`: an Explanation per grid, the stores
        explained on Dask, the rejected inputs.
    """
    from agnlens.io.coerce import is_spectrum_like
    from agnlens.stages.predictions import is_models, models_of, pick_model

    in_memory = isinstance(spectra, SpectrumSet) or is_spectrum_like(spectra)
    if in_memory and is_models(model):
        model = pick_model(models_of(model), spectra)
    if not in_memory:
        from agnlens.stages.explain_inputs import explain_inputs

        return explain_inputs(models_of(model), spectra, folder, labels=labels, target=target, executor=executor,
                              method=method, max_figures=max_figures, panels=panels, figure_format=figure_format,
                              dpi=dpi)
    return explain_set(model, spectra, folder, method=method, target=target, executor=executor,
                       max_figures=max_figures, panels=panels, metadata=metadata, figure_format=figure_format,
                       dpi=dpi)
