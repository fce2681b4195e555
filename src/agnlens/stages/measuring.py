"""The ``baseline`` stage: the physics rule's measurements and labels for spectra (the reference
study's line-fitting classification, :class:`agnlens.models.baseline.PhysicsBaseline`)."""

from __future__ import annotations

import os

import numpy as np

from agnlens.spectra import SpectrumSet


def baseline(
    spectra,
    *,
    min_broad_fwhm: float = 1200.0,
    min_delta_bic: float = 10.0,
    quasar: bool = True,
    n_jobs: int = 1,
    grid: str = "balmer",
    labels=None,
    return_rejected: bool = False,
):
    """Measure every spectrum and label it by the physics rule.

    Parameters
    ----------
    spectra : SpectrumSet, path-like or iterable of path-like
        Preprocessed (rest frame; the ``balmer`` grid reaches Hα); or files, folders, glob patterns
        and stores, read once onto ``grid`` (a store as it is) by :func:`agnlens.stages.load`.
    min_broad_fwhm : float
        Least FWHM of a broad line (km/s).
    min_delta_bic : float
        Least ΔBIC for a broad component to count.
    quasar : bool
        Subtypes 1.2 and 1.5 are type 1 (quasars); False maps them to intermediate (Seyferts).
    n_jobs : int
        Parallel jobs of the line fits (-1: all CPUs).
    grid : str
        The grid files are put on.
    labels : path or DataFrame, optional
        A label catalogue for files.
    return_rejected : bool
        Also return the inputs that could not be used.

    Returns
    -------
    table : pandas.DataFrame
        One row per spectrum: the measurements and ``predicted_label`` (the rule's class) of
        :meth:`~agnlens.models.baseline.PhysicsBaseline.measure`, ``bpt_class`` after ``flags``,
        and the catalogue's ``label`` second when the spectra carry labels.
    rejected : list of Rejection
        With ``return_rejected``: the inputs that could not be used, with their reasons.

    Raises
    ------
    ValueError
        No spectrum to measure.
    """
    from agnlens.models.baseline import PhysicsBaseline, bpt_snr
    from agnlens.models.bpt import bpt_class

    rejected: list = []
    if not isinstance(spectra, SpectrumSet):
        from agnlens.stages.loading import read_inputs

        given = spectra
        spectra, rejected = read_inputs(spectra, grid=grid, labels=labels)
        if len(spectra) == 0:
            shown = " ".join(map(str, [given] if isinstance(given, (str, os.PathLike)) else given))
            raise ValueError(f"baseline: no spectra to measure in {shown} ({len(rejected)} rejected)")

    model = PhysicsBaseline(min_broad_fwhm=min_broad_fwhm, min_delta_bic=min_delta_bic, quasar=quasar,
                            n_jobs=n_jobs)
    table = model.fit(spectra).measure(spectra)
    bpt = bpt_class(table["nii_ha"], table["oiii_hb_narrow"], snr=bpt_snr(table))  # only well-measured lines
    table.insert(table.columns.get_loc("flags") + 1, "bpt_class", bpt)
    truth = spectra.labels
    if np.any(truth != ""):
        table.insert(1, "label", truth)
    return (table, rejected) if return_rejected else table
