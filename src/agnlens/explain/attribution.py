"""Saliency maps: which pixels of a spectrum drive the probability of a class.

One function, :func:`saliency`, computes a map for every spectrum with one of five methods and
returns a :class:`Saliency` result (values of the input's shape, the grid, the explained class,
the probabilities...) that can plot, save and load itself.

Methods (all explain ``p_target``, the probability of the target class):

``"integrated-gradients"`` (the default, :data:`DEFAULT_METHOD`)
    (x − x′) × the mean gradient along the straight path from a baseline x′ to x (Sundararajan et
    al. 2017); by default x′ is the spectrum's own line-free :func:`continuum` and the path
    integral is a 32-node Gauss–Legendre quadrature, done again with 64 and 128 nodes for the
    spectra whose error exceeds 1e-6. The map decomposes the decision: Σ
    attributions = p(x) − p(x′) (completeness, checked and stored in ``Saliency.completeness``;
    on real spectra an error below 1e-6), so summing it over a line's pixels says how much that line
    moved the probability (:func:`agnlens.explain.contributions.line_contributions`). Other
    baselines: ``"zeros"``, ``"type2-mean"`` or an array; rules ``"trapezoid"`` and
    ``"midpoint"`` with ``n_steps`` intervals. Costs the continuum and ``n_steps`` gradients
    (for the linear default models ~25–50 times the plain gradient, about half a ms per spectrum).
``"gradient"``
    The exact gradient ∂p_target/∂flux from :func:`agnlens.explain.gradient.proba_gradient`;
    costs about one prediction. It describes the model at x, not the spectrum: for a linear
    kernel it is the class's weight vector times a scalar, so every spectrum of a predicted class
    gets the same map up to scale (the maps of one class correlate at 0.94–1.00).
``"finite-difference"``
    The reference study's method (Peruzzi et al. 2021): every pixel nudged by +1 % of its own
    value, the probabilities recomputed, the map is Δp/Δx (a forward difference, so its error is
    O(step)). The study called ``predict_proba`` once per pixel; here the nudged copies of a
    spectrum are stacked into batches of ``batch_size`` rows, which gives the same numbers faster.
``"smoothgrad"``
    The mean exact gradient over ``n_samples`` noisy copies, noise σ = ``sigma`` × the spectrum's
    standard deviation, seeded (Smilkov et al. 2017).
``"occlusion"``
    A window of ``window`` pixels slides with ``stride``; the pixels under it are replaced by the
    local continuum (or zeros / a baseline) and Δp = p(x) − p(occluded) is shared equally among
    the window's pixels, averaged over the windows that cover a pixel (Zeiler & Fergus 2014).
    Units are Δp per pixel, not ∂p/∂flux.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from agnlens.explain.methods import (  # noqa: F401  (re-exported: the public helpers of explain)
    CONTINUUM_MASK_KMS,
    continuum,
    finite_difference,
    integrated_gradients,
    make_baseline,
    occlusion,
    predict_target_proba,
    proba_gradient_of,
    resolve_target,
    smoothgrad,
)
from agnlens.explain.result import Saliency, is_array
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

METHODS = ("gradient", "finite-difference", "smoothgrad", "integrated-gradients", "occlusion")
#: The method of :func:`saliency`, ``agnlens explain`` and the report unless one is chosen: it
#: differs per spectrum and adds up to the decision (the study's ``"gradient"`` does neither).
DEFAULT_METHOD = "integrated-gradients"

#: Default options per method (what ``Saliency.options`` records when the caller gives none).
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "gradient": {"chunk_size": 256},
    "finite-difference": {"step": 0.01, "batch_size": 1000},
    "smoothgrad": {"n_samples": 50, "sigma": 0.1, "seed": 0, "chunk_size": 256},
    "integrated-gradients": {
        "baseline": "continuum",
        "n_steps": 32,
        "rule": "gauss-legendre",
        "baseline_class": "type2",
        "chunk_size": 256,
    },
    "occlusion": {"window": 20, "stride": 10, "fill": "continuum", "batch_size": 2000},
}



# --------------------------------------------------------------------------------------------
# the public function


def saliency(
    model,
    X,
    *,
    wavelength: np.ndarray | None = None,
    method: str = DEFAULT_METHOD,
    target=None,
    spec_id: Sequence | None = None,
    labels: Sequence | None = None,
    **method_options,
) -> Saliency:
    """Saliency maps of ``p_target`` for every spectrum of ``X``.

    Parameters
    ----------
    model : fitted classifier
        Needs ``predict_proba`` and ``classes_``; the gradient methods (``"gradient"``,
        ``"smoothgrad"``, ``"integrated-gradients"``) also need a model that
        :func:`agnlens.explain.gradient.proba_gradient` supports (``SpectrumSVC``).
    X : ndarray of shape (n_spectra, n_pixels), SpectrumSet, or spectra
        Preprocessed flux on ``wavelength``. A SpectrumSet brings its own wavelength, spec_id and
        labels. An agnlens ``Spectrum``, a specutils ``Spectrum`` or a list of them is first
        preprocessed onto the model's grid by :func:`agnlens.io.as_spectrum_set`.
    wavelength : ndarray of shape (n_pixels,), optional
        Rest-frame grid in Å; required when ``X`` is an array. For spectra objects, the grid to
        preprocess onto (default: the preset grid with the model's pixel count).
    method : {"integrated-gradients", "gradient", "finite-difference", "smoothgrad", "occlusion"}
        Default ``"integrated-gradients"`` from each spectrum's continuum (see the module notes).
    target : None, int, class label, or array of shape (n_spectra,)
        The class to explain: None = the predicted class of each spectrum; an int is a column of
        ``predict_proba`` (unless it is itself a class label); per-row arrays hold labels or
        indices.
    spec_id, labels : sequence of str, optional
        Identifiers and true labels, for titles and the index.
    **method_options
        ``"gradient"``: ``chunk_size``.
        ``"finite-difference"``: ``step`` (relative nudge, default 0.01), ``batch_size`` (rows per
        ``predict_proba`` call).
        ``"smoothgrad"``: ``n_samples`` (50), ``sigma`` (0.1, fraction of each spectrum's standard
        deviation), ``seed`` (0).
        ``"integrated-gradients"``: ``baseline`` ("continuum", "zeros", "type2-mean" or an array
        of shape (n_pixels,) or (n_spectra, n_pixels)), ``baseline_spectra`` (array
        (m, n_pixels) or SpectrumSet whose mean is the "type2-mean" baseline),
        ``baseline_class`` (rows of a SpectrumSet ``baseline_spectra`` to average, default
        "type2"), ``n_steps`` (32: nodes or intervals), ``rule`` ("gauss-legendre",
        "trapezoid" or "midpoint").
        ``"occlusion"``: ``window`` (pixels, 20), ``stride`` (10), ``fill`` ("continuum", "zeros"
        or an array), ``batch_size``.

    Returns
    -------
    Saliency
        ``values`` has the shape of ``X``.

    Examples
    --------
    >>> sal = saliency(model, spectra, method="gradient")          # doctest: +SKIP
    >>> sal.plot(0); sal.save("out/saliency")                       # doctest: +SKIP
    """
    from agnlens.io import as_spectrum_set, is_spectrum_like

    if is_spectrum_like(X):  # agnlens or specutils spectra: onto the model's grid first
        X, wavelength = as_spectrum_set(X, wavelength, n_pixels=getattr(model, "n_features_in_", None)), None
    flux, wavelength, spec_id, labels = _inputs(X, wavelength, spec_id, labels)
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; choose one of {', '.join(METHODS)}")
    options = dict(DEFAULT_OPTIONS[method])
    unknown = set(method_options) - set(options) - ({"baseline_spectra"} if method == "integrated-gradients" else set())
    if unknown:
        raise TypeError(
            f"saliency(method={method!r}) got unexpected option(s) {sorted(unknown)}; "
            f"it takes {sorted(options) + (['baseline_spectra'] if method == 'integrated-gradients' else [])}"
        )
    options.update(method_options)
    classes = np.asarray(model.classes_)
    proba = np.asarray(model.predict_proba(flux), dtype=np.float64)
    predicted = _predicted(model, flux, proba, classes)
    t_idx = resolve_target(target, classes, len(flux), predicted=predicted)
    completeness = None

    if method == "gradient":
        values = proba_gradient_of(model, flux, t_idx, chunk_size=options["chunk_size"])
    elif method == "finite-difference":
        values = finite_difference(model, flux, t_idx, step=options["step"], batch_size=options["batch_size"])
    elif method == "smoothgrad":
        values = smoothgrad(model, flux, t_idx, **options)
    elif method == "integrated-gradients":
        spectra_for_baseline = options.pop("baseline_spectra", None)
        base = make_baseline(
            options["baseline"],
            flux,
            wavelength,
            baseline_spectra=spectra_for_baseline,
            baseline_class=options["baseline_class"],
        )
        values, completeness = integrated_gradients(
            model, flux, t_idx, base, n_steps=options["n_steps"], rule=options["rule"],
            chunk_size=options["chunk_size"],
        )
        worst = float(np.max(np.abs(completeness))) if completeness.size else 0.0
        log.info("integrated gradients: max |Σ attributions − (p(x) − p(baseline))| = %.2e", worst)
    else:
        fill = make_baseline(options["fill"], flux, wavelength) if not is_array(options["fill"]) else options["fill"]
        values = occlusion(
            model, flux, t_idx, np.broadcast_to(np.asarray(fill, float), flux.shape),
            width=options["window"], stride=options["stride"], batch_size=options["batch_size"],
        )
    return Saliency(
        values=values,
        wavelength=wavelength,
        flux=flux,
        target_index=t_idx,
        probabilities=proba,
        classes=classes,
        method=method,
        options={k: ("array" if is_array(v) else v) for k, v in options.items() if k != "baseline_spectra"},
        spec_id=spec_id,
        labels=labels,
        predicted=predicted,
        completeness=completeness,
    )


# --------------------------------------------------------------------------------------------
# small utilities


def _inputs(X, wavelength, spec_id, labels):
    if isinstance(X, SpectrumSet):
        flux = np.asarray(X.flux, dtype=np.float64)
        wavelength = X.wavelength if wavelength is None else wavelength
        spec_id = X.spec_id if spec_id is None else spec_id
        labels = X.labels if labels is None else labels
    else:
        flux = np.asarray(X, dtype=np.float64)
        if flux.ndim == 1:
            flux = flux[None, :]
    if flux.ndim != 2:
        raise ValueError(f"X has shape {flux.shape}, expected (n_spectra, n_pixels) or a SpectrumSet")
    if wavelength is None:
        raise ValueError("saliency needs the wavelength grid: pass wavelength= (n_pixels,) or a SpectrumSet")
    wavelength = np.asarray(wavelength, dtype=np.float64)
    if wavelength.shape != (flux.shape[1],):
        raise ValueError(
            f"wavelength has shape {wavelength.shape}, expected ({flux.shape[1]},) to match X {flux.shape}"
        )
    if not np.all(np.isfinite(flux)):
        raise ValueError("X contains NaN or infinite flux; preprocess the spectra (bad pixels are interpolated)")
    return flux, wavelength, spec_id, labels


def _predicted(model, X, proba, classes) -> np.ndarray:
    """The model's predicted labels (``predict`` when it has one, argmax of probabilities else)."""
    from agnlens.models.svm import SpectrumSVC

    # SpectrumSVC.predict is defined as the argmax of predict_proba: skip the second prediction
    if hasattr(model, "predict") and not isinstance(model, SpectrumSVC):
        return np.asarray(model.predict(X)).astype(str)
    return classes[np.argmax(proba, axis=1)].astype(str)

