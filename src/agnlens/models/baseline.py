"""A physics baseline: classify AGN spectra by fitting their Balmer lines, not by learning.

:class:`PhysicsBaseline` fits every spectrum's Hβ + [O III] complex (and Hα + [N II] where the grid
covers it) with :func:`agnlens.models.linefit.fit_complex` and classifies by Winkler's subtypes
(:func:`agnlens.classes.winkler_subtype`) mapped to classes by
:func:`agnlens.classes.class_of_subtype` — the definitions the simulator and the docs use. It has
the scikit-learn estimator interface so that it can stand beside the SVM in every evaluation, but
nothing in it is learned: ``fit`` only records the classes and the wavelength grid.

:func:`measure` is the short table of physical measurements that ``classify --measure``, the demo
and the report put beside every prediction (broad FWHMs with errors, line ratios, BPT class,
subtype, the baseline's label and whether it agrees with the SVM).

Why a baseline: it tells a user whether the machine learning adds anything over the astronomer's
rule of thumb, and where the two disagree is where to look.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from agnlens.classes import R_THRESHOLDS, class_of_subtype, winkler_subtype
from agnlens.errors import AgnlensWarning
from agnlens.models.bpt import BPT_LINES, bpt_class, bpt_snr
from agnlens.models.linefit import FWHM_PER_SIGMA, HALPHA, HBETA, MIN_GOOD_FRACTION, covers, fit_lines
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

__all__ = [
    "BPT_LINES", "CLASSES", "FWHM_PER_SIGMA", "MEASURE_COLUMNS", "PhysicsBaseline", "bpt_snr", "measure", "rules",
]

#: The labels the baseline can give, sorted as ``classes_`` (and ``predict_proba`` columns).
CLASSES = np.array(sorted(["type1", "type2", "intermediate"]))
#: Spectra fitted together by :meth:`PhysicsBaseline.measure` (a fit is the same in any block).
MEASURE_BLOCK = 1024
#: A broad line centred further than this (km/s) from the narrow lines ...
RARE_BROAD_OFFSET = 3000.0
#: ... counts only at this many times ``min_delta_bic``: on the shared real spectra the broad lines
#: offset beyond 3,000 km/s have ΔBIC 100-2,800, the host and [S II]-wing features the simulator's
#: type 2 show at 4,000-8,000 km/s ΔBIC 8-40.
OFFSET_DELTA_BIC_FACTOR = 5.0
#: A broad Hβ whose velocity differs by more than this (km/s) from the (uncounted) broad Hα is not
#: a broad line: the broad-line region gives both lines one velocity.
MAX_BROAD_VELOCITY_DIFFERENCE = 3000.0


def rules(estimator: PhysicsBaseline | None = None) -> list[str]:
    """The baseline's rules as sentences, with the estimator's thresholds (for ``--help`` and the report)."""
    e = estimator if estimator is not None else PhysicsBaseline()
    low, mid, high = R_THRESHOLDS
    mapping = ("1.0, 1.2 and 1.5 → type 1 (quasar mapping: a luminous quasar keeps class type 1 whatever "
               "its [O III]/Hβ); 1.8, 1.9 → intermediate" if e.quasar else
               "1.0 → type 1; 1.2, 1.5, 1.8, 1.9 → intermediate (the Seyfert mapping of "
               "agnlens.classes, as the simulator and the study's intermediate catalogue count them)")
    return [
        "Fit every narrow line with one shared core + wing (outflow) profile set by [O III] 4960/5008 (the wing "
        "only where [O III]'s ΔBIC asks for it; each complex's core within 200 km/s and a factor 1.5 of [O III]'s), "
        "Hβ + [O III] + Fe II 4668/4925/5020 over 4640–5080 Å and, where the grid covers it, Hα + [N II] 6550/6585 "
        "+ [O I] 6302/6365 over 6200–6690 Å, each with and without a broad Gaussian (velocity within ±8,000 km/s, "
        "FWHM 1,000–20,020 km/s).",
        f"A broad line counts when ΔBIC ≥ {e.min_delta_bic:g}, its intrinsic FWHM ≥ {e.min_broad_fwhm:,.0f} km/s "
        f"and its flux ≥ {e.min_broad_snr:g} × its error; a broad Hβ does not count where Hα is fitted and shows no "
        "broad line at all (ΔBIC < 0: the broad-line region's Hα is always the stronger), nor beside an "
        f"uncounted broad Hα more than {MAX_BROAD_VELOCITY_DIFFERENCE:,.0f} km/s away in velocity whose flux is "
        f"measured (≥ {e.min_broad_snr:g} × its error: one wider than its window has no velocity). A broad line "
        f"offset by more than {RARE_BROAD_OFFSET:,.0f} km/s (the fit allows ±8,000) needs ΔBIC ≥ "
        f"{OFFSET_DELTA_BIC_FACTOR * e.min_delta_bic:g}.",
        f"Subtype (Winkler 1992, agnlens.classes.winkler_subtype), R = [O III] 5008 / Hβ(narrow + broad): broad Hβ "
        f"and R ≤ {low:g} → 1.0, ≤ {mid:g} → 1.2, ≤ {high:g} → 1.5, above → 1.8; broad Hα only → 1.9; "
        "no broad line → 2.",
        f"Class: {mapping}; 2 → type 2.",
        "A broad width within 1 % of its bound (1,000 or 20,020 km/s) with ΔBIC above the threshold is flagged "
        "(flags hb-broad-width-at-bound, ha-broad-width-at-bound): the true width may lie beyond, and the flux and "
        "verdict with it; every fitted parameter at a bound is named in the column at_bound.",
        "On a grid without Hα (paper) a 1.9 cannot be told from a type 2.",
    ]


class PhysicsBaseline(ClassifierMixin, BaseEstimator):
    """Rule-based AGN classifier from Gaussian fits to Hβ (and Hα where the grid covers it).

    All spectra are fitted together by :func:`agnlens.models.linefit.fit_lines` (see there): the
    narrow lines' shared core + wing profile from [O III] 4960/5008, then the Hβ + [O III] window
    (4640–5080 Å, linear continuum, Fe II 4668/4925/5020 at rest with 3/4 of the broad width) and,
    where the grid reaches 6690 Å (the ``balmer`` grid), the Hα + [N II] + [O I] window (6200–6690 Å,
    quadratic continuum), each with and without a broad Gaussian (velocity within ±8,000 km/s, FWHM
    1,000–20,020 km/s), the
    broad line started from the best point of a grid of velocities and widths. Pixels are weighted
    by their inverse variance.

    **Model selection** by ΔBIC = (χ²_narrow − χ²_broad) / s² − k ln n, where k is the number of
    extra parameters of the broad model (4 for Hβ with Fe II, 3 for Hα), n the number of good
    pixels in the window and s² = max(1, χ²_broad / dof) rescales the χ² when the model does not
    describe the data to the noise level (real spectra: asymmetric lines), which makes the
    criterion an F-test in that case. Without ivar all pixels weigh the same and s² is the
    residual variance of the broad model.

    **Rules**: see :func:`rules` (also printed by ``agnlens baseline --help`` and in the report):
    Winkler's subtype (:func:`agnlens.classes.winkler_subtype`) of R = [O III] 5008 / Hβ(narrow +
    positive broad) and the broad-line detections, mapped to a class by
    :func:`agnlens.classes.class_of_subtype` (``quasar``). A spectrum whose Hβ window has too few good
    pixels gets subtype ``"?"``, a uniform probability and a warning.

    **Probabilities** are a fixed, documented mapping of the rule's confidence, not a learned
    calibration: the deciding significance is ΔBIC of the broad component that decided (Hβ, or Hα
    for 1.9 and type 2 on a grid with Hα); its distance from the threshold gives the confidence
    ``c = 1 / (1 + exp(-|ΔBIC − min_delta_bic| / bic_scale))``; the predicted class gets ``c`` and
    the two others ``(1 − c) / 2`` each, so the argmax of ``predict_proba`` is always ``predict``.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,), optional
        The rest-frame grid (Å) of bare arrays passed as ``X``. Not needed when ``X`` is a
        :class:`~agnlens.spectra.SpectrumSet`, which carries its grid (and its ivar).
    min_broad_fwhm : float, default 1200
        Least intrinsic FWHM (km/s) of a broad component.
    min_delta_bic : float, default 10
        Least ΔBIC for the broad component ("very strong evidence" on the Kass & Raftery scale).
    min_broad_snr : float, default 2
        Least broad flux / its error. Kept low on purpose: very broad lines (FWHM > 10,000 km/s)
        trade flux with the continuum slope, which inflates the flux error though ΔBIC is large.
    quasar : bool, default True
        Map subtypes 1.2 and 1.5 to ``type1``, as for the study's luminous quasars
        (:data:`agnlens.classes.QUASAR_SUBTYPES`); False: to ``intermediate``, as for Seyferts.
        Measured on the simulated reference sample (3,346 spectra, ``paper`` grid): the quasar
        mapping is right for 83.8 % of the spectra, the Seyfert mapping for 77.8 % (the simulated
        type 1 have R spread over 0.3–4: 394 of 680 are 1.2–1.5 by R); on the 78 real type 1 of
        the reference sample (``balmer`` grid; docs/results.md) 73 against 36 keep the label type 1. The subtype
        column always says which it is.
    instrumental_sigma : float, default 69
        Instrumental Gaussian σ (km/s) removed in quadrature from the fitted widths (SDSS).
    bic_scale : float, default 10
        Width of the probability mapping (see above).
    n_jobs : int, optional
        Parallel jobs for ``measure`` through :class:`joblib.Parallel` (``None`` or 1: in this
        process; -1: all CPUs). Worth it above a few hundred spectra.

    Attributes
    ----------
    classes_ : ndarray of str, shape (3,)
        ``["intermediate", "type1", "type2"]``.
    wavelength_ : ndarray of shape (n_pixels,)
        The grid recorded by ``fit``.
    n_features_in_ : int
        ``n_pixels``.
    halpha_covered_ : bool
        Whether the grid covers the Hα window (6200–6690 Å), i.e. whether type 1.9 can be found.

    Examples
    --------
    >>> base = PhysicsBaseline().fit(spectra)            # doctest: +SKIP
    >>> table = base.measure(spectra)                    # one row of measurements per spectrum
    >>> table[["subtype", "predicted_label", "hb_fwhm_broad", "r_oiii_hb"]]  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        wavelength: np.ndarray | None = None,
        min_broad_fwhm: float = 1200.0,
        min_delta_bic: float = 10.0,
        min_broad_snr: float = 2.0,
        quasar: bool = True,
        instrumental_sigma: float = 69.0,
        bic_scale: float = 10.0,
        n_jobs: int | None = None,
    ) -> None:
        self.wavelength = wavelength
        self.min_broad_fwhm = min_broad_fwhm
        self.min_delta_bic = min_delta_bic
        self.min_broad_snr = min_broad_snr
        self.quasar = quasar
        self.instrumental_sigma = instrumental_sigma
        self.bic_scale = bic_scale
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ scikit-learn interface
    def fit(self, X: SpectrumSet | np.ndarray, y=None) -> PhysicsBaseline:
        """Record the classes and the wavelength grid; nothing is learned.

        Parameters
        ----------
        X : SpectrumSet or ndarray of shape (n_spectra, n_pixels)
            Spectra on the grid the baseline will see; a bare array needs ``wavelength``.
        y : array-like of str, shape (n_spectra,), optional
            Labels; only checked to be among ``classes_``.

        Returns
        -------
        self
        """
        wl, flux, _ = self._unpack(X, fitted=False)
        if not covers(wl, HBETA):
            raise ValueError(
                f"PhysicsBaseline: the grid {wl[0]:.0f}–{wl[-1]:.0f} Å does not cover the Hβ + "
                f"[O III] window {HBETA.lo:.0f}–{HBETA.hi:.0f} Å (rest frame); use the 'paper' or "
                f"'balmer' grid"
            )
        if y is not None:
            y = np.asarray(y).astype(str)
            if y.shape[0] != flux.shape[0]:
                raise ValueError(
                    f"PhysicsBaseline.fit: X has {flux.shape[0]} spectra but y has {y.shape[0]} labels"
                )
            unknown = sorted(set(y) - set(CLASSES))
            if unknown:
                raise ValueError(
                    f"PhysicsBaseline.fit: labels {unknown} are not classes the baseline gives "
                    f"({list(CLASSES)}); drop those spectra (e.g. non-agn, ambiguous) or pass y=None"
                )
        self.wavelength_ = wl
        self.n_features_in_ = int(wl.size)
        self.classes_ = CLASSES.copy()
        self.halpha_covered_ = covers(self.wavelength_, HALPHA)
        return self

    def measure(self, X: SpectrumSet | np.ndarray) -> pd.DataFrame:
        """Fit every spectrum and return its measurements and classification.

        Parameters
        ----------
        X : SpectrumSet or ndarray of shape (n_spectra, n_pixels)
            Rest-frame normalised spectra on the fitted grid.

        Returns
        -------
        pandas.DataFrame
            One row per spectrum (``spec_id`` first when ``X`` is a SpectrumSet): ``subtype``
            (one of :data:`agnlens.classes.SUBTYPES` or ``"?"``), ``predicted_label`` (the rule's
            class), ``confidence``, ``flags`` (``;``-separated: ``hb-broad-width-at-bound``,
            ``ha-broad-width-at-bound``, ``hb-not-fitted``); for Hβ (prefix ``hb_``) and Hα (prefix
            ``ha_``, NaN when not covered) the outputs of :func:`~agnlens.models.linefit.fit_lines`
            (``flux_narrow``: narrow Hβ / Hα) and ``broad`` (counts by the rules), and its shared
            ones (``narrow_velocity``, ``narrow_fwhm``, ``wing_*``, ``at_bound``); ``oiii_flux``,
            ``nii_flux``, ``oi_flux``, their errors, ``oiii_fwhm``, ``oiii_ew`` ([O III] 5008 equivalent width, Å),
            ``oiii_snr``, ``r_oiii_hb`` ([O III] 5008 / Hβ total), ``oiii_hb_narrow``, ``nii_ha``,
            ``balmer_decrement_narrow`` (narrow Hα / Hβ) and ``halpha_covered`` (docs/columns.md).
        """
        wl, flux, ivar = self._unpack(X, fitted=True)
        n = flux.shape[0]
        from joblib import Parallel, delayed

        parallel = self.n_jobs not in (None, 0, 1) and n >= 100
        # blocks of at most MEASURE_BLOCK spectra: memory bounded by a block, not by the set
        blocks = np.array_split(np.arange(n), max(16 if parallel else 1, -(-n // MEASURE_BLOCK)))
        parts = Parallel(n_jobs=self.n_jobs if parallel else 1)(
            delayed(_measure_rows)(self, wl, flux[c], None if ivar is None else ivar[c]) for c in blocks)
        rows = [row for part in parts for row in part]
        table = pd.DataFrame(rows)
        if isinstance(X, SpectrumSet):
            table.insert(0, "spec_id", X.spec_id)
        n_bad = int((table["subtype"] == "?").sum()) if n else 0
        if n_bad:
            warnings.warn(f"PhysicsBaseline: {n_bad} of {n} spectra have fewer than {100 * MIN_GOOD_FRACTION:.0f}% "
                          f"good pixels in the Hβ window {HBETA.lo:.0f}–{HBETA.hi:.0f} Å; they are unclassified "
                          "(subtype '?', uniform probabilities)", AgnlensWarning, stacklevel=2)
        return table

    def predict(self, X: SpectrumSet | np.ndarray) -> np.ndarray:
        """Labels ``type1`` / ``type2`` / ``intermediate``, ndarray of str, shape (n_spectra,)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict_proba(self, X: SpectrumSet | np.ndarray) -> np.ndarray:
        """Rule confidence as probabilities, ndarray of shape (n_spectra, 3), columns ``classes_``.

        See the class docstring for the mapping; it is not a calibrated probability.
        """
        return self.proba_from_table(self.measure(X))

    def proba_from_table(self, table: pd.DataFrame) -> np.ndarray:
        """The ``predict_proba`` mapping applied to a ``measure`` table (saves refitting).

        Returns
        -------
        ndarray of shape (n_spectra, 3)
        """
        check_is_fitted(self, "classes_")
        n = len(table)
        if n == 0:
            return np.zeros((0, len(self.classes_)))
        proba = np.full((n, len(self.classes_)), 1.0 / len(self.classes_))
        for i, (label, conf) in enumerate(zip(table["predicted_label"], table["confidence"], strict=True)):
            if label in self.classes_:
                proba[i] = (1.0 - conf) / 2.0
                proba[i, np.flatnonzero(self.classes_ == label)[0]] = conf
        return proba

    # ------------------------------------------------------------------------------ internals
    def _unpack(self, X, *, fitted: bool):
        """Return (wavelength, flux, ivar or None), checked against the fitted grid if ``fitted``."""
        if isinstance(X, SpectrumSet):
            wl = np.asarray(X.wavelength, dtype=float)
            flux = np.asarray(X.flux, dtype=float)
            ivar = np.where(X.mask, 0.0, np.asarray(X.ivar, dtype=float))
        else:
            if isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
                raise TypeError(
                    f"PhysicsBaseline: X must be a SpectrumSet or an array of shape "
                    f"(n_spectra, n_pixels), got {type(X).__name__}"
                )
            flux = np.asarray(X, dtype=float)
            if flux.ndim != 2:
                raise ValueError(
                    f"PhysicsBaseline: X must have shape (n_spectra, n_pixels), got shape {flux.shape}"
                )
            ivar = None
            if fitted:
                check_is_fitted(self, "wavelength_")
                wl = self.wavelength_
            elif self.wavelength is None:
                raise ValueError(
                    "PhysicsBaseline: a bare flux array has no wavelength grid; pass a SpectrumSet "
                    "or construct PhysicsBaseline(wavelength=grid_wavelength)"
                )
            else:
                wl = np.asarray(self.wavelength, dtype=float)
        if not np.all(np.isfinite(flux)):
            raise ValueError("PhysicsBaseline: X contains NaN or infinite flux; preprocess the spectra first")
        if wl.ndim != 1 or wl.size != flux.shape[1]:
            raise ValueError(
                f"PhysicsBaseline: X has {flux.shape[1]} pixels but the wavelength grid has "
                f"{wl.size}; pass spectra on the grid the baseline was fitted on"
            )
        if fitted:
            check_is_fitted(self, "wavelength_")
            if wl.size != self.wavelength_.size or not np.allclose(wl, self.wavelength_):
                raise ValueError(
                    f"PhysicsBaseline: X is on a different grid ({wl[0]:.0f}–{wl[-1]:.0f} Å, "
                    f"{wl.size} px) than at fit ({self.wavelength_[0]:.0f}–"
                    f"{self.wavelength_[-1]:.0f} Å, {self.wavelength_.size} px); refit on this grid"
                )
        return wl, flux, ivar

    def _measure_row(self, hb: dict, ha_fit: dict | None, shared: dict) -> dict:
        """One spectrum's measurements and verdict from its :func:`fit_lines` outputs (``ha`` None:
        the grid does not cover Hα)."""
        out = {f"hb_{key}": value for key, value in hb.items()}
        out.update(shared)
        out["hb_flux_narrow"], out["hb_flux_narrow_err"] = out.pop("hb_flux_narrow_0"), out.pop("hb_flux_narrow_err_0")
        out["oiii_flux"], out["oiii_flux_err"] = out.pop("hb_flux_narrow_1"), out.pop("hb_flux_narrow_err_1")
        out["oiii_fwhm"] = out["hb_fwhm_narrow"]
        hb_total = out["hb_flux_narrow"] + max(out["hb_flux_broad"], 0.0)
        out["r_oiii_hb"] = _ratio(out["oiii_flux"], hb_total)
        out["oiii_hb_narrow"] = _ratio(out["oiii_flux"], out["hb_flux_narrow"])
        out["oiii_ew"] = _ratio(out["oiii_flux"], out.pop("hb_continuum_1"))
        out.pop("hb_continuum_0")  # the continuum under the lines serves the equivalent width only
        out["oiii_snr"] = _ratio(out["oiii_flux"], out["oiii_flux_err"])
        covered = ha_fit is not None
        out["halpha_covered"] = covered
        ha = ha_fit if ha_fit is not None else dict.fromkeys(hb, np.nan)
        out.update({f"ha_{key}": value for key, value in ha.items()
                    if key != "feii_flux" and not key.startswith("continuum_")})
        out["ha_flux_narrow"], out["ha_flux_narrow_err"] = out.pop("ha_flux_narrow_0"), out.pop("ha_flux_narrow_err_0")
        out["nii_flux"], out["nii_flux_err"] = out.get("ha_flux_narrow_1", np.nan), out.pop("ha_flux_narrow_err_1")
        out["nii_ha"] = _ratio(out.pop("ha_flux_narrow_1"), out["ha_flux_narrow"])
        out["oi_flux"], out["oi_flux_err"] = (out.pop(f"ha_flux_narrow{e}_2", np.nan) for e in ("", "_err"))
        out["balmer_decrement_narrow"] = _ratio(out["ha_flux_narrow"], out["hb_flux_narrow"])
        for prefix in ("hb", "ha"):
            out[f"{prefix}_broad"] = self._counts(out, prefix)
        if out["ha_delta_bic"] < 0 or (out["ha_delta_bic"] > 0 and not out["ha_broad"]
                                       and out["ha_broad_snr"] >= self.min_broad_snr and abs(
                out["hb_velocity_broad"] - out["ha_velocity_broad"]) > MAX_BROAD_VELOCITY_DIFFERENCE):
            # a broad Hβ where Hα shows no broad line at all, or only one at another velocity: Fe II
            # or the host, not a broad-line region (NaN: Hα not fitted, compares False); an Hα whose
            # flux is not measured (wider than the window) has no velocity to compare
            out["hb_broad"] = False
        flags = []
        if not np.isfinite(out["hb_delta_bic"]):
            flags.append("hb-not-fitted")
            subtype, label, decider = "?", "", "hb"
        else:
            subtype = winkler_subtype(out["r_oiii_hb"], out["hb_broad"], covered and out["ha_broad"])
            label = class_of_subtype(subtype, quasar=self.quasar)
            decider = "hb" if out["hb_broad"] or not covered else "ha"
            if subtype == "2" and covered and out["hb_delta_bic"] < out["ha_delta_bic"]:
                decider = "hb"  # "no broad line": the larger of the two margins below threshold
        for prefix in ("hb", "ha"):
            # the evidence wants a broad line but its width sits at a bound: width, flux and maybe the
            # verdict are suspect
            if out[f"{prefix}_broad_at_bound"] is True and out[f"{prefix}_delta_bic"] >= self.min_delta_bic:
                flags.append(f"{prefix}-broad-width-at-bound")
        out["subtype"], out["predicted_label"], out["flags"] = subtype, label, ";".join(flags)
        if label:
            dbic = out[f"{decider}_delta_bic"]
            out["confidence"] = float(1.0 / (1.0 + np.exp(-abs(dbic - self.min_delta_bic) / self.bic_scale)))
        else:
            out["confidence"] = 1.0 / 3.0
        first = ["subtype", "predicted_label", "confidence", "flags"]
        return {k: out[k] for k in first + sorted(k for k in out if k not in first)}

    def _counts(self, m: dict, prefix: str) -> bool:
        dbic, fwhm, snr = m[f"{prefix}_delta_bic"], m[f"{prefix}_fwhm_broad"], m[f"{prefix}_broad_snr"]
        if not (np.isfinite(dbic) and np.isfinite(fwhm) and np.isfinite(snr)):
            return False
        # large offsets are rare (the old fit's ±3,000 km/s bound): they need stronger evidence
        offset = abs(m[f"{prefix}_velocity_broad"]) > RARE_BROAD_OFFSET
        least = OFFSET_DELTA_BIC_FACTOR * self.min_delta_bic if offset else self.min_delta_bic
        return bool(dbic >= least and fwhm >= self.min_broad_fwhm and snr >= self.min_broad_snr)


def _measure_rows(est: PhysicsBaseline, wl, flux, ivar) -> list[dict]:
    """Measure a block of spectra, all fitted at once (module level so that joblib's workers can run it)."""
    fits = fit_lines(wl, flux, ivar, est.instrumental_sigma)
    hb, ha, shared = fits[HBETA.name], fits.get(HALPHA.name), fits["shared"]

    def row(values: dict, i: int) -> dict:
        return {k: (bool(v[i]) if v.dtype == bool else v[i] if v.dtype == object else float(v[i]))
                for k, v in values.items()}

    return [est._measure_row(row(hb, i), None if ha is None else row(ha, i), row(shared, i))
            for i in range(flux.shape[0])]


#: Line fluxes (normalised flux × Å, i.e. equivalent widths in units of the 5100 Å continuum)
#: below this are "no line" when they divide: a ratio over a vanishing line is reported as inf.
_MIN_RATIO_FLUX = 1e-3


def _ratio(num: float, den: float) -> float:
    if not (np.isfinite(num) and np.isfinite(den)):
        return np.nan
    if den < _MIN_RATIO_FLUX:
        return np.inf if num >= _MIN_RATIO_FLUX else np.nan
    return num / den


#: The columns of :func:`measure`, in order (``agrees_with_baseline`` only when predictions are given).
MEASURE_COLUMNS = (
    "spec_id", "hb_fwhm_broad", "hb_fwhm_broad_err", "hb_velocity_broad", "ha_fwhm_broad", "ha_fwhm_broad_err",
    "ha_velocity_broad", "hb_delta_bic", "ha_delta_bic", "hb_fwhm_narrow",
    "ha_fwhm_narrow", "r_oiii_hb", "oiii_hb_narrow", "balmer_decrement_narrow", "nii_ha", "oiii_ew", "oiii_snr",
    "bpt_class", "subtype", "baseline_label", "baseline_confidence", "baseline_flags", "agrees_with_baseline",
)


def measure(spectra: SpectrumSet, predicted=None, *, baseline: PhysicsBaseline | None = None) -> pd.DataFrame:
    """Physical measurements beside each prediction: the baseline's widths, ratios and verdict.

    Parameters
    ----------
    spectra : SpectrumSet
        Rest-frame normalised spectra on any grid covering Hβ + [O III] (4640–5080 Å); Hα
        quantities need the ``balmer`` grid (NaN otherwise).
    predicted : array-like of str, shape (n_spectra,), optional
        The SVM's predicted labels, in the order of ``spectra``; adds ``agrees_with_baseline``.
    baseline : PhysicsBaseline, optional
        The rules' thresholds (default ``PhysicsBaseline()``); refitted on ``spectra``'s grid.

    Returns
    -------
    pandas.DataFrame
        One row per spectrum, columns :data:`MEASURE_COLUMNS`: broad FWHM of Hβ and Hα (intrinsic,
        km/s; NaN where the rules find no broad line) with errors and velocities, ``hb_delta_bic`` and
        ``ha_delta_bic`` (the evidence for each broad line), the narrow FWHM of Hβ and Hα,
        ``r_oiii_hb`` ([O III] 5008 / Hβ total: Winkler's R), ``oiii_hb_narrow`` and ``nii_ha`` (the BPT ratios),
        ``oiii_ew`` ([O III] 5008 equivalent width, Å) and ``oiii_snr`` (its flux / error),
        ``balmer_decrement_narrow`` (narrow Hα / Hβ), ``bpt_class`` (:func:`agnlens.models.bpt.bpt_class`;
        "" without Hα or when a line's S/N is below :data:`agnlens.models.bpt.MIN_BPT_SNR`), ``subtype``,
        ``baseline_label`` ("" when Hβ could not be fitted),
        ``baseline_confidence``, ``baseline_flags`` and, with ``predicted``, ``agrees_with_baseline``
        (nullable boolean: missing when the baseline gives no label).
    """
    if not isinstance(spectra, SpectrumSet):
        raise TypeError(f"measure: expected a SpectrumSet, got {type(spectra).__name__}; read files with "
                        "agnlens.stages.read_inputs or a store with agnlens.io.store.open_store")
    base = PhysicsBaseline() if baseline is None else baseline
    full = base.fit(spectra).measure(spectra)
    out = pd.DataFrame({"spec_id": spectra.spec_id})
    for prefix in ("hb", "ha"):
        has = full[f"{prefix}_broad"].to_numpy(dtype=bool)
        out[f"{prefix}_fwhm_broad"] = np.where(has, full[f"{prefix}_fwhm_broad"], np.nan)
        out[f"{prefix}_fwhm_broad_err"] = np.where(has, full[f"{prefix}_fwhm_broad_err"], np.nan)
        out[f"{prefix}_velocity_broad"] = np.where(has, full[f"{prefix}_velocity_broad"], np.nan)
    for col in ("hb_delta_bic", "ha_delta_bic", "hb_fwhm_narrow", "ha_fwhm_narrow", "r_oiii_hb", "oiii_hb_narrow",
                "balmer_decrement_narrow", "nii_ha",
                "oiii_ew", "oiii_snr"):
        out[col] = full[col].to_numpy(dtype=float)
    out["bpt_class"] = bpt_class(out["nii_ha"], out["oiii_hb_narrow"], snr=bpt_snr(full))
    out["subtype"] = full["subtype"].to_numpy()
    out["baseline_label"] = full["predicted_label"].to_numpy()
    out["baseline_confidence"] = full["confidence"].to_numpy()
    out["baseline_flags"] = full["flags"].to_numpy()
    if predicted is not None:
        predicted = np.asarray(predicted).astype(str)
        if predicted.shape != (len(spectra),):
            raise ValueError(f"measure: {len(spectra)} spectra but predicted has shape {predicted.shape}")
        agree = pd.array(predicted == out["baseline_label"].to_numpy(), dtype="boolean")
        agree[out["baseline_label"].to_numpy() == ""] = pd.NA
        out["agrees_with_baseline"] = agree
    return out
