"""Saliency maps: which pixels of a spectrum drive the probability of a class.

One function, :func:`saliency`, computes a map for every spectrum with one of five methods and
returns a :class:`Saliency` result (values of the input's shape, the grid, the explained class,
the probabilities...) that can plot, save and load itself.

Methods (all explain ``p_target``, the probability of the target class):

``"gradient"``
    The exact gradient ∂p_target/∂flux from :func:`agnlens.explain.gradient.proba_gradient`;
    costs about one prediction.
``"finite-difference"``
    The reference study's method (Peruzzi et al. 2021): every pixel nudged by +1 % of its own
    value, the probabilities recomputed, the map is Δp/Δx (a forward difference, so its error is
    O(step)). The study called ``predict_proba`` once per pixel; here the nudged copies of a
    spectrum are stacked into batches of ``batch_size`` rows, which gives the same numbers faster.
``"smoothgrad"``
    The mean exact gradient over ``n_samples`` noisy copies, noise σ = ``sigma`` × the spectrum's
    standard deviation, seeded (Smilkov et al. 2017).
``"integrated-gradients"``
    (x − x′) × the mean gradient along the straight path from a baseline x′ to x (Sundararajan et
    al. 2017), by the trapezoid (default) or midpoint rule with ``n_steps`` intervals. Completeness
    — Σ attributions = p(x) − p(x′) — is checked and stored in ``Saliency.completeness``.
``"occlusion"``
    A window of ``window`` pixels slides with ``stride``; the pixels under it are replaced by the
    local continuum (or zeros / a baseline) and Δp = p(x) − p(occluded) is shared equally among
    the window's pixels, averaged over the windows that cover a pixel (Zeiler & Fergus 2014).
    Units are Δp per pixel, not ∂p/∂flux.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from agnlens.atomic import jsonable
from agnlens.lines import LINES, window
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

METHODS = ("gradient", "finite-difference", "smoothgrad", "integrated-gradients", "occlusion")

#: Default options per method (what ``Saliency.options`` records when the caller gives none).
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "gradient": {"chunk_size": 256},
    "finite-difference": {"step": 0.01, "batch_size": 1000},
    "smoothgrad": {"n_samples": 50, "sigma": 0.1, "seed": 0, "chunk_size": 256},
    "integrated-gradients": {
        "baseline": "continuum",
        "n_steps": 50,
        "rule": "trapezoid",
        "baseline_class": "type2",
        "chunk_size": 256,
    },
    "occlusion": {"window": 20, "stride": 10, "fill": "continuum", "batch_size": 2000},
}

#: Half widths (km/s) of the regions masked around lines when fitting a continuum. Broad lines get
#: wide masks because type 1 wings reach several thousand km/s.
CONTINUUM_MASK_KMS = {"broad": 5000.0, "narrow": 800.0, "absorption": 600.0}


# --------------------------------------------------------------------------------------------
# the result object


#: The per-spectrum fields of a :class:`Saliency` (first axis = spectra).
_ROWS = ("values", "flux", "target_index", "probabilities", "spec_id", "labels", "predicted", "reason", "completeness")


class Saliency:
    """Saliency maps of many spectra, with everything needed to read them.

    Attributes
    ----------
    values : ndarray of shape (n_spectra, n_pixels)
        The attribution of every pixel to ``p_target`` (∂p/∂flux for the gradient methods).
    wavelength : ndarray of shape (n_pixels,)
        Rest-frame grid in Å.
    flux : ndarray of shape (n_spectra, n_pixels)
        The explained (preprocessed) spectra.
    target : ndarray of str, shape (n_spectra,)
        The class whose probability is explained, per spectrum.
    target_index : ndarray of int, shape (n_spectra,)
        Its column in ``probabilities`` / index in ``classes``.
    probabilities : ndarray of shape (n_spectra, n_classes)
    classes : ndarray of shape (n_classes,)
    predicted : ndarray of str, shape (n_spectra,)
    labels : ndarray of str, shape (n_spectra,)
        True labels (``""`` when unknown).
    spec_id : ndarray of str, shape (n_spectra,)
    method : str
    options : dict
        The method's options as used (JSON-friendly).
    reason : ndarray of str, shape (n_spectra,)
        Why the spectrum was explained (e.g. ``"misclassified"``, ``"random"``; ``""`` if unset).
    completeness : ndarray of shape (n_spectra,) or None
        Integrated Gradients only: Σ values − (p(x) − p(baseline)).
    """

    def __init__(
        self,
        values: np.ndarray,
        wavelength: np.ndarray,
        flux: np.ndarray,
        target_index: np.ndarray,
        probabilities: np.ndarray,
        classes: ArrayLike,
        method: str,
        options: dict | None = None,
        spec_id: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        predicted: ArrayLike | None = None,
        reason: ArrayLike | None = None,
        completeness: np.ndarray | None = None,
    ) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.wavelength = np.asarray(wavelength, dtype=np.float64)
        self.flux = np.asarray(flux, dtype=np.float64)
        n, n_pix = self.values.shape
        if self.wavelength.shape != (n_pix,) or self.flux.shape != (n, n_pix):
            raise ValueError(
                f"Saliency: values {self.values.shape}, flux {self.flux.shape} and wavelength "
                f"{self.wavelength.shape} do not match; expected (n, n_pixels) and (n_pixels,)"
            )
        self.classes = np.asarray(classes)
        self.target_index = np.asarray(target_index, dtype=np.int64).reshape(n)
        self.probabilities = np.asarray(probabilities, dtype=np.float64).reshape(n, len(self.classes))
        self.method = str(method)
        self.options = dict(options or {})
        self.spec_id = _strings(spec_id, n, default=[str(i) for i in range(n)])
        self.labels = _strings(labels, n)
        if predicted is None:
            predicted = self.classes[np.argmax(self.probabilities, axis=1)]
        self.predicted = _strings(predicted, n)
        self.reason = _strings(reason, n)
        self.completeness = None if completeness is None else np.asarray(completeness, dtype=float)

    # ---- views
    @property
    def target(self) -> np.ndarray:
        """The explained class per spectrum (as strings)."""
        return self.classes[self.target_index].astype(str)

    @property
    def p_target(self) -> np.ndarray:
        """Probability of the explained class, shape (n_spectra,)."""
        return self.probabilities[np.arange(len(self)), self.target_index]

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, index) -> Saliency:
        """Subset by integer, integer array, boolean mask or slice."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self))[index]
        return self._with_rows({f: None if getattr(self, f) is None else getattr(self, f)[idx] for f in _ROWS})

    @classmethod
    def concat(cls, parts: Sequence[Saliency]) -> Saliency:
        """Stack results of one model and method (e.g. computed chunk by chunk)."""
        if not parts:
            raise ValueError("Saliency.concat needs at least one Saliency")
        first = parts[0]
        return first._with_rows({
            f: None if getattr(first, f) is None else np.concatenate([getattr(p, f) for p in parts])
            for f in _ROWS
        })

    def _with_rows(self, rows: dict) -> Saliency:
        return Saliency(
            wavelength=self.wavelength, classes=self.classes, method=self.method, options=self.options, **rows
        )

    def __repr__(self) -> str:
        return (
            f"Saliency(method={self.method!r}, {len(self)} spectra × {self.wavelength.size} px "
            f"{self.wavelength[0]:.0f}–{self.wavelength[-1]:.0f} Å, classes {[str(c) for c in self.classes]})"
        )

    @property
    def misclassified(self) -> np.ndarray:
        """Boolean (n_spectra,): labelled spectra whose predicted class differs from the label."""
        return (self.labels != "") & (self.labels != self.predicted)

    def study_sample(self, n_random: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The reference study's selection: every misclassified spectrum plus a seeded random
        sample of ``n_random`` of the others.

        Returns
        -------
        rows : ndarray of int
            Misclassified rows first, then the random ones (each group in row order).
        reason : ndarray of str
            ``"misclassified"`` or ``"random"`` per returned row.
        """
        wrong = np.flatnonzero(self.misclassified)
        rest = np.flatnonzero(~self.misclassified)
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(rest, size=min(int(n_random), rest.size), replace=False))
        rows = np.concatenate([wrong, pick]).astype(int)
        reason = np.array(["misclassified"] * wrong.size + ["random"] * pick.size, dtype=str)
        return rows, reason

    def index(self, spec_id: str) -> int:
        """Row of the spectrum ``spec_id``."""
        hits = np.flatnonzero(self.spec_id == str(spec_id))
        if hits.size == 0:
            raise KeyError(f"spec_id {spec_id!r} is not among the {len(self)} explained spectra")
        return int(hits[0])

    def to_frame(self) -> pd.DataFrame:
        """One row per spectrum: the index written by :meth:`save`.

        Columns ``row, spec_id, label, predicted, target_class, reason`` (as in
        ``docs/results-layout.md``), then ``p_<class>`` per class, ``p_target`` and, for
        Integrated Gradients, ``completeness``.
        """
        frame = pd.DataFrame(
            {
                "row": np.arange(len(self)),
                "spec_id": self.spec_id,
                "label": self.labels,
                "predicted": self.predicted,
                "target_class": self.target,
                "reason": self.reason,
            }
        )
        for k, cls in enumerate(self.classes):
            frame[f"p_{cls}"] = self.probabilities[:, k]
        frame["p_target"] = self.p_target
        if self.completeness is not None:
            frame["completeness"] = self.completeness
        return frame

    # ---- figures
    def plot(self, i: int | str = 0, ax=None, **kwargs):
        """Plot spectrum ``i`` (row or spec_id) coloured by its saliency.

        Keyword arguments go to :func:`agnlens.plot.saliency.plot_saliency`. Returns the Axes.
        """
        from agnlens.plot.saliency import plot_saliency

        row = self.index(i) if isinstance(i, str) else int(i)
        probs = ", ".join(f"p({c})={p:.2f}" for c, p in zip(self.classes, self.probabilities[row]))
        title = kwargs.pop(
            "title",
            f"{self.spec_id[row]}  true: {self.labels[row] or '?'}  predicted: {self.predicted[row]}\n"
            f"{probs}   saliency of p({self.target[row]}), {self.method}",
        )
        return plot_saliency(self.wavelength, self.flux[row], self.values[row], ax=ax, title=title, **kwargs)

    def to_specutils(self):
        """The maps as a specutils ``Spectrum`` on the model's grid, shape (n_spectra, n_pixels).

        See :func:`agnlens.io.specutils.saliency_to_specutils`; needs ``agnlens[specutils]``.
        """
        from agnlens.io.specutils import saliency_to_specutils

        return saliency_to_specutils(self)

    # ---- persistence
    def save(self, directory: str | os.PathLike, *, reason: Sequence[str] | None = None) -> Path:
        """Write ``values.npy`` (float32), ``wavelength.npy``, ``flux.npy``, ``index.csv`` and
        ``saliency.json`` (method, options, classes) into ``directory``, atomically.

        The files are written into a temporary sibling folder which then replaces ``directory``,
        so an interrupted save never leaves a half-written folder.

        Parameters
        ----------
        directory : path-like
        reason : sequence of str, shape (n_spectra,), optional
            Why each spectrum was explained (``"misclassified"``, ``"random"``...); sets
            :attr:`reason` before writing.
        """
        if reason is not None:
            self.reason = _strings(reason, len(self))
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it private; the results folder is meant to be shared
            np.save(tmp / "values.npy", self.values.astype(np.float32))
            np.save(tmp / "wavelength.npy", self.wavelength.astype(np.float64))
            np.save(tmp / "flux.npy", self.flux.astype(np.float32))
            self.to_frame().to_csv(tmp / "index.csv", index=False)
            info = {
                "method": self.method,
                "options": jsonable(self.options),
                "classes": [jsonable(c) for c in self.classes.tolist()],
                "n_spectra": len(self),
                "n_pixels": int(self.wavelength.size),
            }
            (tmp / "saliency.json").write_text(json.dumps(info, indent=2))
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
                os.replace(directory, old)
                os.replace(tmp, directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Saliency:
        """Read a folder written by :meth:`save`."""
        directory = Path(directory)
        needed = ["values.npy", "wavelength.npy", "index.csv"]
        missing = [name for name in needed if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{directory}: not a saliency folder, missing {', '.join(missing)} "
                f"(write one with Saliency.save or `agnlens explain`)"
            )
        values = np.load(directory / "values.npy", allow_pickle=False)
        wavelength = np.load(directory / "wavelength.npy", allow_pickle=False)
        index = pd.read_csv(directory / "index.csv", dtype={"spec_id": str}, keep_default_na=False)
        info_path = directory / "saliency.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        flux_path = directory / "flux.npy"
        flux = np.load(flux_path, allow_pickle=False) if flux_path.is_file() else np.full(values.shape, np.nan)
        pcols = [c for c in index.columns if c.startswith("p_") and c != "p_target"]
        classes = np.asarray(info.get("classes") or [c[2:] for c in pcols])
        probs = (
            index[[f"p_{c}" for c in classes]].to_numpy(float) if pcols
            else np.full((len(index), len(classes)), np.nan)
        )
        cls_str = classes.astype(str)
        target_index = np.array([int(np.flatnonzero(cls_str == str(t))[0]) for t in index["target_class"]], dtype=int)
        return cls(
            values=values,
            wavelength=wavelength,
            flux=flux,
            target_index=target_index,
            probabilities=probs,
            classes=classes,
            method=info.get("method", "unknown"),
            options=info.get("options", {}),
            spec_id=index["spec_id"].astype(str).to_numpy(),
            labels=index["label"].astype(str).to_numpy(),
            predicted=index["predicted"].astype(str).to_numpy(),
            reason=index["reason"].astype(str).to_numpy() if "reason" in index else None,
            completeness=index["completeness"].to_numpy(float) if "completeness" in index else None,
        )


# --------------------------------------------------------------------------------------------
# the public function


def saliency(
    model,
    X,
    *,
    wavelength: np.ndarray | None = None,
    method: str = "gradient",
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
    method : {"gradient", "finite-difference", "smoothgrad", "integrated-gradients", "occlusion"}
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
        "type2"), ``n_steps`` (50), ``rule`` ("trapezoid" or "midpoint").
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
        values = _finite_difference(model, flux, t_idx, step=options["step"], batch_size=options["batch_size"])
    elif method == "smoothgrad":
        values = _smoothgrad(model, flux, t_idx, **options)
    elif method == "integrated-gradients":
        spectra_for_baseline = options.pop("baseline_spectra", None)
        base = make_baseline(
            options["baseline"],
            flux,
            wavelength,
            baseline_spectra=spectra_for_baseline,
            baseline_class=options["baseline_class"],
        )
        values, completeness = _integrated_gradients(
            model, flux, t_idx, base, n_steps=options["n_steps"], rule=options["rule"],
            chunk_size=options["chunk_size"],
        )
        worst = float(np.max(np.abs(completeness))) if completeness.size else 0.0
        log.info("integrated gradients: max |Σ attributions − (p(x) − p(baseline))| = %.2e", worst)
    else:
        fill = make_baseline(options["fill"], flux, wavelength) if not _is_array(options["fill"]) else options["fill"]
        values = _occlusion(
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
        options={k: ("array" if _is_array(v) else v) for k, v in options.items() if k != "baseline_spectra"},
        spec_id=spec_id,
        labels=labels,
        predicted=predicted,
        completeness=completeness,
    )


# --------------------------------------------------------------------------------------------
# helpers shared with faithfulness and linestats


def resolve_target(target, classes: np.ndarray, n: int, *, predicted: np.ndarray | None = None) -> np.ndarray:
    """Turn a target specification into class indices, shape (n,).

    ``None`` → the predicted class (``predicted`` must then be given, as labels); a class label;
    an int that is not a label → a column index; an array of shape (n,) of labels or indices.
    """
    classes = np.asarray(classes)
    cls_str = classes.astype(str)
    known = ", ".join(cls_str)

    def one(t) -> int:
        if isinstance(t, (str, np.str_)) or not np.issubdtype(np.asarray(t).dtype, np.integer):
            hit = np.flatnonzero(cls_str == str(t))
            if hit.size == 0:
                raise ValueError(f"target class {t!r} is not one of the model's classes ({known})")
            return int(hit[0])
        if t in set(classes.tolist()) and not np.issubdtype(classes.dtype, np.str_):
            return int(np.flatnonzero(classes == t)[0])
        if not 0 <= int(t) < len(classes):
            raise ValueError(f"target index {t} is out of range for {len(classes)} classes ({known})")
        return int(t)

    if target is None:
        if predicted is None:
            raise ValueError("target=None needs the predicted classes")
        return np.array([one(p) for p in np.asarray(predicted).astype(str)], dtype=np.int64)
    arr = np.asarray(target)
    if arr.ndim == 0:
        return np.full(n, one(arr.item()), dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"target has shape {arr.shape}, expected a single class or one per spectrum ({n},)")
    lookup = {}
    out = np.empty(n, dtype=np.int64)
    for i, t in enumerate(arr.tolist()):
        if t not in lookup:
            lookup[t] = one(t)
        out[i] = lookup[t]
    return out


def proba_gradient_of(model, X: np.ndarray, target_index: np.ndarray, *, chunk_size: int = 256) -> np.ndarray:
    """Exact ∂p_target/∂x, shape (n, n_pixels), via :func:`agnlens.explain.gradient.proba_gradient`.

    ``target_index`` holds one class index per row of ``X``.
    """
    from agnlens.explain.gradient import proba_gradient

    target_index = np.asarray(target_index, dtype=np.int64)
    if X.shape[0] == 0:
        return np.zeros(X.shape)
    return proba_gradient(model, X, target=target_index, chunk_size=int(chunk_size))


def continuum(
    wavelength: np.ndarray,
    flux: np.ndarray,
    *,
    mask_kms: dict[str, float] | None = None,
    width_aa: float = 120.0,
) -> np.ndarray:
    """A smooth line-free continuum of each spectrum.

    Pixels within ``mask_kms[kind]`` of every line of :data:`agnlens.lines.LINES` are masked
    (:data:`CONTINUUM_MASK_KMS` by default: broad lines ±5000 km/s, forbidden ±800, absorption
    ±600); the running median (``width_aa`` Å wide) of the remaining pixels is interpolated
    across the masked gaps and smoothed with a boxcar of the same width. A running median follows
    the 4000 Å break and host curvature better than a low-order polynomial.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
    flux : ndarray of shape (n_pixels,) or (n_spectra, n_pixels)

    Returns
    -------
    ndarray of the shape of ``flux``
    """
    from scipy.ndimage import median_filter, uniform_filter1d

    wavelength = np.asarray(wavelength, dtype=float)
    flux = np.asarray(flux, dtype=float)
    single = flux.ndim == 1
    F = np.atleast_2d(flux)
    widths = dict(CONTINUUM_MASK_KMS)
    widths.update(mask_kms or {})
    masked = np.zeros(wavelength.size, dtype=bool)
    for item in LINES:
        masked |= window(wavelength, item.wavelength, widths.get(item.kind, 800.0))
    keep = np.flatnonzero(~masked)
    if keep.size < 10:
        # the grid is nearly all line: fall back to the running median of every pixel
        keep = np.arange(wavelength.size)
    step = float(np.median(np.diff(wavelength)))
    size = max(3, int(round(width_aa / step)) | 1)
    med = median_filter(F[:, keep], size=(1, min(size, keep.size)), mode="nearest")
    out = np.empty_like(F)
    for i in range(F.shape[0]):
        out[i] = np.interp(wavelength, wavelength[keep], med[i])
    out = uniform_filter1d(out, size=min(size, wavelength.size), axis=1, mode="nearest")
    return out[0] if single else out


def make_baseline(
    baseline,
    flux: np.ndarray,
    wavelength: np.ndarray | None,
    *,
    baseline_spectra=None,
    baseline_class: str = "type2",
) -> np.ndarray:
    """A baseline spectrum per row of ``flux``, shape (n, n_pixels).

    ``"zeros"``; ``"continuum"`` (:func:`continuum` of each spectrum, needs ``wavelength``);
    ``"type2-mean"`` (the mean of ``baseline_spectra``: an array (m, n_pixels), or a SpectrumSet
    whose rows labelled ``baseline_class`` are averaged); or an array of shape (n_pixels,) or
    (n, n_pixels).
    """
    flux = np.asarray(flux, dtype=float)
    if _is_array(baseline):
        arr = np.asarray(baseline, dtype=float)
        try:
            return np.broadcast_to(arr, flux.shape).copy()
        except ValueError:
            raise ValueError(
                f"baseline array has shape {arr.shape}, expected ({flux.shape[1]},) or {flux.shape}"
            ) from None
    if baseline == "zeros":
        return np.zeros_like(flux)
    if baseline == "continuum":
        if wavelength is None:
            raise ValueError("baseline='continuum' needs the wavelength grid: pass wavelength= or a SpectrumSet")
        return continuum(wavelength, flux)
    if baseline in ("type2-mean", "class-mean"):
        if baseline_spectra is None:
            raise ValueError(
                f"baseline={baseline!r} needs the spectra to average: pass baseline_spectra= "
                f"(an array (m, n_pixels) or a SpectrumSet with {baseline_class!r} labels)"
            )
        if isinstance(baseline_spectra, SpectrumSet):
            rows = baseline_spectra.labels == baseline_class
            if not np.any(rows):
                raise ValueError(
                    f"baseline_spectra has no spectrum labelled {baseline_class!r} "
                    f"(labels: {sorted(set(baseline_spectra.labels))}); pass baseline_class="
                )
            ref = np.asarray(baseline_spectra.flux[rows], dtype=float)
        else:
            ref = np.atleast_2d(np.asarray(baseline_spectra, dtype=float))
        if ref.shape[1] != flux.shape[1]:
            raise ValueError(
                f"baseline_spectra have {ref.shape[1]} pixels, the explained spectra {flux.shape[1]}; "
                f"put them on the same grid"
            )
        return np.broadcast_to(ref.mean(axis=0), flux.shape).copy()
    raise ValueError(
        f"unknown baseline {baseline!r}; choose 'continuum', 'zeros', 'type2-mean' or pass an array"
    )


def predict_target_proba(model, X: np.ndarray, target_index: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """``predict_proba(X)[i, target_index[i]]`` in batches, shape (n,)."""
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], batch_size):
        stop = start + batch_size
        p = np.asarray(model.predict_proba(X[start:stop]), dtype=float)
        out[start:stop] = p[np.arange(p.shape[0]), target_index[start:stop]]
    return out


# --------------------------------------------------------------------------------------------
# the methods


def _finite_difference(model, X, t_idx, *, step: float, batch_size: int) -> np.ndarray:
    """Forward differences with a relative step, as in the reference study.

    Pixel j of spectrum i is nudged by ``h = step·x_ij``; a pixel whose flux is 0 is nudged by
    ``step`` × the spectrum's median |flux| instead (a relative nudge of 0 would divide by 0).
    """
    if step <= 0:
        raise ValueError(f"finite-difference step must be positive, got {step}")
    n, n_pix = X.shape
    out = np.empty((n, n_pix))
    p0 = predict_target_proba(model, X, t_idx)
    batch_size = max(1, int(batch_size))
    for i in range(n):
        x = X[i]
        h = step * x
        fallback = step * (np.median(np.abs(x)) or 1.0)
        h = np.where(h == 0, fallback, h)
        for start in range(0, n_pix, batch_size):
            cols = np.arange(start, min(start + batch_size, n_pix))
            batch = np.repeat(x[None, :], cols.size, axis=0)
            batch[np.arange(cols.size), cols] += h[cols]
            dh = batch[np.arange(cols.size), cols] - x[cols]  # the step as represented in floats
            p = np.asarray(model.predict_proba(batch), dtype=float)[:, t_idx[i]]
            out[i, cols] = (p - p0[i]) / dh
    return out


def _smoothgrad(model, X, t_idx, *, n_samples: int, sigma: float, seed: int, chunk_size: int) -> np.ndarray:
    if n_samples < 1 or sigma < 0:
        raise ValueError(f"smoothgrad needs n_samples ≥ 1 and sigma ≥ 0, got {n_samples} and {sigma}")
    rng = np.random.default_rng(seed)
    n, n_pix = X.shape
    out = np.empty((n, n_pix))
    scale = sigma * X.std(axis=1)
    per_chunk = max(1, int(chunk_size) // n_samples) if chunk_size else 1
    for start in range(0, n, per_chunk):
        rows = np.arange(start, min(start + per_chunk, n))
        noisy = np.repeat(X[rows], n_samples, axis=0)
        noisy += rng.standard_normal(noisy.shape) * np.repeat(scale[rows], n_samples)[:, None]
        g = proba_gradient_of(model, noisy, np.repeat(t_idx[rows], n_samples), chunk_size=chunk_size)
        out[rows] = g.reshape(rows.size, n_samples, n_pix).mean(axis=1)
    return out


def _integrated_gradients(model, X, t_idx, base, *, n_steps: int, rule: str, chunk_size: int):
    if n_steps < 1:
        raise ValueError(f"integrated gradients needs n_steps ≥ 1, got {n_steps}")
    if rule == "trapezoid":
        alphas = np.linspace(0.0, 1.0, n_steps + 1)
        weights = np.full(n_steps + 1, 1.0 / n_steps)
        weights[[0, -1]] *= 0.5
    elif rule == "midpoint":
        alphas = (np.arange(n_steps) + 0.5) / n_steps
        weights = np.full(n_steps, 1.0 / n_steps)
    else:
        raise ValueError(f"unknown integration rule {rule!r}; choose 'trapezoid' or 'midpoint'")
    n, n_pix = X.shape
    m = alphas.size
    avg_grad = np.empty((n, n_pix))
    per_chunk = max(1, int(chunk_size) // m)
    for start in range(0, n, per_chunk):
        rows = np.arange(start, min(start + per_chunk, n))
        path = base[rows, None, :] + alphas[None, :, None] * (X[rows] - base[rows])[:, None, :]
        g = proba_gradient_of(model, path.reshape(-1, n_pix), np.repeat(t_idx[rows], m), chunk_size=chunk_size)
        avg_grad[rows] = np.tensordot(weights, g.reshape(rows.size, m, n_pix), axes=([0], [1]))
    values = (X - base) * avg_grad
    gap = predict_target_proba(model, X, t_idx) - predict_target_proba(model, base, t_idx)
    return values, values.sum(axis=1) - gap


def _occlusion(model, X, t_idx, fill, *, width: int, stride: int, batch_size: int) -> np.ndarray:
    n, n_pix = X.shape
    width, stride = int(width), int(stride)
    if not 1 <= width <= n_pix or stride < 1:
        raise ValueError(f"occlusion needs 1 ≤ window ≤ {n_pix} pixels and stride ≥ 1, got {width} and {stride}")
    positions = list(range(0, n_pix - width + 1, stride))
    if positions[-1] != n_pix - width:
        positions.append(n_pix - width)  # cover the last pixels too
    starts = np.asarray(positions)
    n_win = starts.size
    cover = np.zeros((n_win, n_pix), dtype=bool)
    for w, s in enumerate(starts):
        cover[w, s : s + width] = True
    n_cover = cover.sum(axis=0)
    p0 = predict_target_proba(model, X, t_idx)
    out = np.empty((n, n_pix))
    per_batch = max(1, int(batch_size) // n_win)
    for start in range(0, n, per_batch):
        rows = np.arange(start, min(start + per_batch, n))
        occluded = np.where(cover[None], fill[rows][:, None, :], X[rows][:, None, :])
        p = predict_target_proba(model, occluded.reshape(-1, n_pix), np.repeat(t_idx[rows], n_win))
        dp = p0[rows, None] - p.reshape(rows.size, n_win)
        out[rows] = (dp / width) @ cover / n_cover
    return out


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


def _strings(values, n: int, default=None) -> np.ndarray:
    if values is None:
        values = default if default is not None else [""] * n
    arr = np.asarray(values).astype(str)
    if arr.shape != (n,):
        raise ValueError(f"expected {n} entries (one per spectrum), got shape {arr.shape}")
    return arr


def _is_array(value) -> bool:
    return isinstance(value, (np.ndarray, list, tuple))
