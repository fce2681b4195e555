"""A physics baseline: classify AGN spectra by fitting their Balmer lines, not by learning.

:class:`PhysicsBaseline` fits, for every spectrum, the Hβ + [O III] 4960/5008 complex (and the
Hα + [N II] 6550/6585 complex where the wavelength grid covers it) with narrow and optional broad
Gaussian components, measures the broad-line width, flux share and significance and the
[O III]/Hβ ratio, and classifies by fixed rules in the spirit of Osterbrock & Winkler (1992). It has
the scikit-learn estimator interface so that it can stand beside the SVM in every evaluation, but
nothing in it is learned: ``fit`` only records the classes and the wavelength grid.

Why a baseline: it tells a user whether the machine learning adds anything over the astronomer's
rule of thumb, and where the two disagree is where to look.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from agnlens.errors import AgnlensWarning
from agnlens.lines import C_KMS, line
from agnlens.spectra import SpectrumSet

log = logging.getLogger(__name__)

#: FWHM = this factor × Gaussian σ.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))

#: The labels the baseline can give, sorted as ``classes_`` (and ``predict_proba`` columns).
CLASSES = np.array(["intermediate", "type1", "type2"])

# Bounds on the fitted components, in km/s. The narrow and broad width ranges do not overlap, so
# the broad Gaussian can never take over a narrow line (and vice versa).
_NARROW_SIGMA = (25.0, 400.0)  # FWHM 60–940 km/s
_BROAD_SIGMA = (425.0, 6400.0)  # FWHM 1,000–15,000 km/s
_NARROW_VELOCITY = 500.0
_BROAD_VELOCITY = 3000.0
# Starting broad σ (km/s): the better of the fits from each start is kept (local minima).
BROAD_STARTS = (1000.0, 2500.0)
NARROW_BROAD_START = 550.0
# Least fraction of good pixels a fitting window needs.
_MIN_GOOD_FRACTION = 0.5


@dataclass(frozen=True)
class _Complex:
    """One line complex fitted as a unit: a linear continuum over ``lo``–``hi`` Å, narrow lines
    sharing one velocity and width, and an optional broad Gaussian at ``broad_centre``.

    ``narrow`` lists ``(wavelength, free_flux_index, flux_factor)``: lines with the same index
    share one flux parameter scaled by the factor (the fixed doublet ratios).
    """

    name: str
    lo: float
    hi: float
    narrow: tuple[tuple[float, int, float], ...]
    n_free_flux: int
    broad_centre: float


_HB = line("Hbeta").wavelength
_HA = line("Halpha").wavelength
_O3 = line("OIII_5008").wavelength
_N2 = line("NII_6585").wavelength

HB_LO = 4640.0
#: Hβ + [O III]: the 4960/5008 ratio is fixed at 1/2.98 (atomic physics).
HBETA = _Complex(
    "hbeta",
    HB_LO,
    5080.0,
    ((_HB, 0, 1.0), (_O3, 1, 1.0), (line("OIII_4960").wavelength, 1, 1.0 / 2.98)),
    2,
    _HB,
)
#: Hα + [N II]: the 6550/6585 ratio is fixed at 1/3.05; [S II] 6718 and [O I] 6302 stay outside.
HALPHA = _Complex(
    "halpha",
    6400.0,
    6690.0,
    ((_HA, 0, 1.0), (_N2, 1, 1.0), (line("NII_6550").wavelength, 1, 1.0 / 3.05)),
    2,
    _HA,
)


class PhysicsBaseline(ClassifierMixin, BaseEstimator):
    """Rule-based AGN classifier from Gaussian fits to Hβ (and Hα where the grid covers it).

    For each rest-frame, normalised spectrum (as :func:`agnlens.preprocess.preprocess` makes them)
    :func:`scipy.optimize.least_squares` fits two models to the 4640–5080 Å window: (a) a linear
    continuum, narrow Hβ and the [O III] 4960/5008 doublet (one velocity and width for all narrow
    lines, 4960 = 5008 / 2.98, narrow FWHM up to 940 km/s), and (b) the same plus a broad Hβ
    Gaussian (FWHM 1,000–15,000 km/s, velocity within ±3,000 km/s). Where the grid reaches 6690 Å
    (the ``balmer`` grid) the 6400–6690 Å window is fitted the same way with narrow Hα, [N II]
    6550/6585 (ratio 1/3.05, width and velocity tied to narrow Hα) and an optional broad Hα.
    Pixels are weighted by their inverse variance. The broad flux may take either sign: a
    negative one models a broad absorption trough (the host's stellar Balmer absorption under a
    type 2's narrow lines) and never counts as a broad line. The fit is MINPACK's
    Levenberg–Marquardt (``least_squares(method="lm")``) with analytic Jacobian, bounds imposed by
    a change of variables; the broad model starts from the width and flux of what the narrow fit
    leaves, and restarts from fixed widths when it ends on a width bound or above the narrow χ².
    About 5 ms of CPU per spectrum on the ``paper`` grid, 10 ms on ``balmer``; ``n_jobs`` spreads
    the spectra over processes.

    **Model selection** by ΔBIC = (χ²_narrow − χ²_broad) / s² − 3 ln n, where n is the number of
    good pixels in the window and s² = max(1, χ²_broad / dof) rescales the χ² when the model does not
    describe the data to the noise level (real spectra: Fe II, asymmetric lines), which makes the
    criterion an F-test in that case. When only a bare flux array is given, without ivar, all
    pixels weigh the same and s² is the residual variance of the broad model.

    **Rules** (after Osterbrock & Winkler 1992; R = [O III] 5008 / Hβ(narrow + positive broad),
    ``inf`` when Hβ vanishes):

    * a broad Hβ component counts when ΔBIC ≥ ``min_delta_bic``, its intrinsic FWHM ≥
      ``min_broad_fwhm`` (km/s, after removing the instrumental σ in quadrature) and its flux is at
      least ``min_broad_snr`` times its error; it is *weak* when it carries less than
      ``weak_broad_fraction`` of the total Hβ flux, *strong* otherwise;
    * strong broad Hβ and R ≤ 0.3 → subtype ``"1.0"``, 0.3 < R ≤ ``max_r_type1`` (1) → ``"1.2"``:
      label ``type1``;
    * strong broad Hβ and ``max_r_type1`` < R ≤ ``max_r_type15`` (4) → ``"1.5"``; R above that →
      ``"1.8"``; a weak broad Hβ → ``"1.8"`` whatever R:
      label ``intermediate``;
    * no broad Hβ, but broad Hα by the same tests → ``"1.9"``: label ``intermediate``;
    * no broad component at all → ``"2"``: label ``type2``. On a grid without Hα (the ``paper``
      grid) a type 1.9 cannot be told from a type 2; ``measure`` says so in ``halpha_covered``.
    * a spectrum whose Hβ window has too few good pixels to fit gets subtype ``"?"``, a uniform
      probability and a warning.

    **Probabilities** are a fixed, documented mapping of the rule's confidence, not a learned
    calibration: the deciding significance is ΔBIC of the broad component that decided (Hβ, or Hα
    for 1.9 and type 2 on a grid with Hα); its distance from the threshold gives the confidence
    ``c = 1 / (1 + exp(-|ΔBIC − min_delta_bic| / bic_scale))`` (0.5 at the threshold, → 1 far from
    it); the predicted class gets ``c`` and the two others ``(1 − c) / 2`` each, so the argmax of
    ``predict_proba`` is always ``predict``.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,), optional
        The rest-frame grid (Å) of bare arrays passed as ``X``. Not needed when ``X`` is a
        :class:`~agnlens.spectra.SpectrumSet`, which carries its grid (and its ivar, which bare
        arrays lack: prefer passing the SpectrumSet).
    min_broad_fwhm : float, default 1200
        Least intrinsic FWHM (km/s) of a broad component.
    min_delta_bic : float, default 10
        Least ΔBIC for the broad component ("very strong evidence" on the Kass & Raftery scale).
    min_broad_snr : float, default 2
        Least broad flux / its error. Kept low on purpose: very broad lines (FWHM > 10,000 km/s)
        trade flux with the continuum slope, which inflates the flux error though ΔBIC is large.
    weak_broad_fraction : float, default 0.5
        A broad Hβ carrying less than this share of the total Hβ flux is *weak* (type 1.8).
    max_r_type1, max_r_type15 : float, default 1 and 4
        [O III]/Hβ boundaries between types 1.2 / 1.5 and 1.5 / 1.8.
    instrumental_sigma : float, default 69
        Instrumental Gaussian σ (km/s) removed in quadrature from the fitted widths (SDSS).
    bic_scale : float, default 10
        Width of the probability mapping (see above).
    n_jobs : int, optional
        Worker processes for ``measure`` (``None`` or 1: in this process; -1: one per CPU). The
        fits are independent, so the work splits evenly; worth it above a few hundred spectra.

    Attributes
    ----------
    classes_ : ndarray of str, shape (3,)
        ``["intermediate", "type1", "type2"]``.
    wavelength_ : ndarray of shape (n_pixels,)
        The grid recorded by ``fit``.
    n_features_in_ : int
        ``n_pixels``.
    halpha_covered_ : bool
        Whether the grid covers the Hα window (6400–6690 Å), i.e. whether type 1.9 can be found.

    Examples
    --------
    >>> base = PhysicsBaseline().fit(spectra)            # doctest: +SKIP
    >>> table = base.measure(spectra)                    # one row of measurements per spectrum
    >>> table[["subtype", "label", "hb_fwhm_broad", "r_oiii_hb"]]  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        wavelength: np.ndarray | None = None,
        min_broad_fwhm: float = 1200.0,
        min_delta_bic: float = 10.0,
        min_broad_snr: float = 2.0,
        weak_broad_fraction: float = 0.5,
        max_r_type1: float = 1.0,
        max_r_type15: float = 4.0,
        instrumental_sigma: float = 69.0,
        bic_scale: float = 10.0,
        n_jobs: int | None = None,
    ) -> None:
        self.wavelength = wavelength
        self.min_broad_fwhm = min_broad_fwhm
        self.min_delta_bic = min_delta_bic
        self.min_broad_snr = min_broad_snr
        self.weak_broad_fraction = weak_broad_fraction
        self.max_r_type1 = max_r_type1
        self.max_r_type15 = max_r_type15
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
        if not _covers(wl, HBETA):
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
        self.halpha_covered_ = _covers(self.wavelength_, HALPHA)
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
            (``"1.0"``, ``"1.2"``, ``"1.5"``, ``"1.8"``, ``"1.9"``, ``"2"`` or ``"?"``), ``label``,
            ``confidence``; for Hβ (prefix ``hb_``) and Hα (prefix ``ha_``, NaN when not covered):
            ``fwhm_broad`` (intrinsic, km/s), ``fwhm_broad_err``, ``velocity_broad`` (km/s),
            ``flux_broad`` (negative: an absorption trough; 0 when ΔBIC ≤ 0) and ``flux_narrow``
            (normalised flux × Å, i.e. equivalent width in units of the 5100 Å continuum),
            ``flux_broad_err``,
            ``broad_snr`` (flux / error), ``broad_fraction`` (broad / total), ``delta_bic``,
            ``broad`` (counts by the rules), ``strong`` (strong by the rules), ``fwhm_narrow``,
            ``good_pixels``; ``oiii_flux``, ``oiii_fwhm`` (5008, intrinsic km/s), ``r_oiii_hb``
            ([O III] 5008 / Hβ total), ``nii_ha`` ([N II] 6585 / narrow Hα) and
            ``halpha_covered``.
        """
        wl, flux, ivar = self._unpack(X, fitted=True)
        n = flux.shape[0]
        n_workers = _n_workers(self.n_jobs, n)
        if n_workers == 1:
            rows = _measure_rows(self, wl, flux, ivar)
        else:
            import multiprocessing
            import threading
            from concurrent.futures import ProcessPoolExecutor

            chunks = np.array_split(np.arange(n), n_workers * 4)
            # Fork is fast and safe from a single-threaded caller; with other threads alive (dask,
            # tqdm...) a forked child could inherit a held lock, so use a clean forkserver.
            single = threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if single else "forkserver")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
                futures = [
                    pool.submit(_measure_rows, self, wl, flux[c], None if ivar is None else ivar[c])
                    for c in chunks
                ]
                rows = [row for future in futures for row in future.result()]
        table = pd.DataFrame(rows)
        if isinstance(X, SpectrumSet):
            table.insert(0, "spec_id", X.spec_id)
        n_bad = int((table["subtype"] == "?").sum()) if n else 0
        if n_bad:
            warnings.warn(
                f"PhysicsBaseline: {n_bad} of {n} spectra have fewer than "
                f"{100 * _MIN_GOOD_FRACTION:.0f}% good pixels in the Hβ window "
                f"{HBETA.lo:.0f}–{HBETA.hi:.0f} Å; they are unclassified (subtype '?', uniform "
                f"probabilities)",
                AgnlensWarning,
                stacklevel=2,
            )
        return table

    def predict(self, X: SpectrumSet | np.ndarray) -> np.ndarray:
        """Labels ``type1`` / ``type2`` / ``intermediate``, ndarray of str, shape (n_spectra,)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict_proba(self, X: SpectrumSet | np.ndarray) -> np.ndarray:
        """Rule confidence as probabilities, ndarray of shape (n_spectra, 3), columns ``classes_``.

        See the class docstring for the mapping; it is not a calibrated probability.
        """
        table = self.measure(X)
        return self.proba_from_table(table)

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
        for i, (label, conf) in enumerate(zip(table["label"], table["confidence"], strict=True)):
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

    def _measure_one(self, wl: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None) -> dict:
        hb = _fit_complex(wl, flux, ivar, HBETA, self.instrumental_sigma)
        out: dict = {}
        for key, value in hb.items():
            out[f"hb_{key}"] = value
        oiii_flux = out.pop("hb_flux_narrow_1")
        out["hb_flux_narrow"] = out.pop("hb_flux_narrow_0")
        out["oiii_flux"] = oiii_flux
        out["oiii_fwhm"] = out["hb_fwhm_narrow"]
        hb_total = out["hb_flux_narrow"] + max(out["hb_flux_broad"], 0.0)
        out["r_oiii_hb"] = _ratio(oiii_flux, hb_total)
        covered = _covers(wl, HALPHA)
        out["halpha_covered"] = covered
        if covered:
            ha = _fit_complex(wl, flux, ivar, HALPHA, self.instrumental_sigma)
            for key, value in ha.items():
                out[f"ha_{key}"] = value
            out["ha_flux_narrow"] = out.pop("ha_flux_narrow_0")
            nii = out.pop("ha_flux_narrow_1")
            out["nii_ha"] = _ratio(nii, out["ha_flux_narrow"])
        else:
            for key in hb:
                if key not in ("flux_narrow_0", "flux_narrow_1"):
                    out[f"ha_{key}"] = np.nan
            out["ha_flux_narrow"] = np.nan
            out["nii_ha"] = np.nan
        for prefix in ("hb", "ha"):
            b, s = self._broad_flags(out, prefix)
            out[f"{prefix}_broad"] = b
            out[f"{prefix}_strong"] = s
        subtype, label, decider = self._rule(out)
        out["subtype"] = subtype
        out["label"] = label
        if label:
            dbic = out[f"{decider}_delta_bic"]
            out["confidence"] = float(1.0 / (1.0 + np.exp(-abs(dbic - self.min_delta_bic) / self.bic_scale)))
        else:
            out["confidence"] = 1.0 / 3.0
        first = ["subtype", "label", "confidence"]
        return {k: out[k] for k in first + sorted(k for k in out if k not in first)}

    def _broad_flags(self, m: dict, prefix: str) -> tuple[bool, bool]:
        dbic = m[f"{prefix}_delta_bic"]
        fwhm = m[f"{prefix}_fwhm_broad"]
        snr = m[f"{prefix}_broad_snr"]
        if not (np.isfinite(dbic) and np.isfinite(fwhm) and np.isfinite(snr)):
            return False, False
        counts = dbic >= self.min_delta_bic and fwhm >= self.min_broad_fwhm and snr >= self.min_broad_snr
        strong = counts and m[f"{prefix}_broad_fraction"] >= self.weak_broad_fraction
        return bool(counts), bool(strong)

    def _rule(self, m: dict) -> tuple[str, str, str]:
        """(subtype, label, which complex decided); label '' when Hβ could not be fitted."""
        if not np.isfinite(m["hb_delta_bic"]):
            return "?", "", "hb"
        r = m["r_oiii_hb"]
        if m["hb_broad"]:
            if not m["hb_strong"]:
                return "1.8", "intermediate", "hb"
            if r <= 0.3:
                return "1.0", "type1", "hb"
            if r <= self.max_r_type1:
                return "1.2", "type1", "hb"
            if r <= self.max_r_type15:
                return "1.5", "intermediate", "hb"
            return "1.8", "intermediate", "hb"
        if m["halpha_covered"] and m["ha_broad"]:
            return "1.9", "intermediate", "ha"
        decider = "ha" if m["halpha_covered"] and np.isfinite(m["ha_delta_bic"]) else "hb"
        # The confidence of "no broad line" is the larger of the two margins below threshold.
        if decider == "ha" and m["hb_delta_bic"] < m["ha_delta_bic"]:
            decider = "hb"
        return "2", "type2", decider


# ---------------------------------------------------------------------------------- fitting
#: Below this many spectra per worker, extra processes cost more than they save.
_MIN_PER_WORKER = 50


def _n_workers(n_jobs: int | None, n: int) -> int:
    import os

    if n_jobs is None or n_jobs == 0:
        return 1
    cpus = os.cpu_count() or 1
    wanted = cpus + 1 + n_jobs if n_jobs < 0 else n_jobs
    return int(max(1, min(wanted, cpus, n // _MIN_PER_WORKER)))


def _measure_rows(est: PhysicsBaseline, wl, flux, ivar) -> list[dict]:
    """Measure a block of spectra (module level so that worker processes can run it)."""
    return [est._measure_one(wl, flux[i], None if ivar is None else ivar[i]) for i in range(flux.shape[0])]


#: Line fluxes (normalised flux × Å, i.e. equivalent widths in units of the 5100 Å continuum)
#: below this are "no line" when they divide: a ratio over a vanishing line is reported as inf.
_MIN_RATIO_FLUX = 1e-3


def _ratio(num: float, den: float) -> float:
    if not (np.isfinite(num) and np.isfinite(den)):
        return np.nan
    if den < _MIN_RATIO_FLUX:
        return np.inf if num >= _MIN_RATIO_FLUX else np.nan
    return num / den


def _covers(wl: np.ndarray, cx: _Complex) -> bool:
    step = np.median(np.diff(wl))
    return bool(wl[0] <= cx.lo + step and wl[-1] >= cx.hi - step)


def _profiles(lam: np.ndarray, centre: float, v: float, sigma_kms: float):
    """Unit-flux Gaussian at ``centre`` shifted by ``v`` (km/s) with width ``sigma_kms``, and its
    derivatives with respect to ``v`` and ``sigma_kms``."""
    mu = centre * (1.0 + v / C_KMS)
    s = centre * sigma_kms / C_KMS
    u = (lam - mu) / s
    g = np.exp(-0.5 * u * u) / (np.sqrt(2.0 * np.pi) * s)
    dmu = centre / C_KMS
    return g, g * u / s * dmu, g * (u * u - 1.0) / s * dmu


def _model(p: np.ndarray, lam: np.ndarray, x: np.ndarray, cx: _Complex, broad: bool):
    """Model flux and Jacobian (n_pix, n_par) for parameters
    ``[c0, c1, F_0..F_{k-1}, v_n, sigma_n, (F_b, v_b, sigma_b)]``."""
    k = cx.n_free_flux
    n_par = 4 + k + (3 if broad else 0)
    jac = np.zeros((lam.size, n_par))
    model = p[0] + p[1] * x
    jac[:, 0] = 1.0
    jac[:, 1] = x
    v_n, s_n = p[2 + k], p[3 + k]
    for centre, idx, factor in cx.narrow:
        g, dv, ds = _profiles(lam, centre, v_n, s_n)
        flux = p[2 + idx] * factor
        model = model + flux * g
        jac[:, 2 + idx] += factor * g
        jac[:, 2 + k] += flux * dv
        jac[:, 3 + k] += flux * ds
    if broad:
        f_b, v_b, s_b = p[4 + k], p[5 + k], p[6 + k]
        g, dv, ds = _profiles(lam, cx.broad_centre, v_b, s_b)
        model = model + f_b * g
        jac[:, 4 + k] = g
        jac[:, 5 + k] = f_b * dv
        jac[:, 6 + k] = f_b * ds
    return model, jac


def _solve(lam, x, data, w, cx: _Complex, p0, lo, hi, broad: bool):
    """Weighted least squares of one complex with box bounds.

    The bounds are imposed by a change of variables (flux = t², bounded widths and velocities
    through a sine, as MINUIT does) so that the fast MINPACK Levenberg–Marquardt of
    ``least_squares(method="lm")`` can run unconstrained; the trust-region method with bounds
    costs about four times as much Python overhead per spectrum. Returns the physical parameters,
    the χ² and the weighted Jacobian (n_pix, n_par) in physical parameters at the optimum.
    """
    pos = (lo == 0.0) & ~np.isfinite(hi)
    box = np.isfinite(lo) & np.isfinite(hi)
    half = np.where(box, 0.5 * (hi - lo), 1.0)
    base = np.where(box, lo, 0.0)

    def to_phys(t):
        p = t.copy()
        p[pos] = t[pos] ** 2
        p[box] = base[box] + half[box] * (1.0 + np.sin(t[box]))
        return p

    def dphys(t):
        d = np.ones_like(t)
        d[pos] = 2.0 * t[pos]
        d[box] = half[box] * np.cos(t[box])
        return d

    p0 = np.clip(p0, lo, hi)
    t0 = p0.copy()
    t0[pos] = np.sqrt(p0[pos])
    # Keep the start off the bounds, where the sine's derivative (hence the Jacobian column) is 0.
    t0[box] = np.arcsin(np.clip((p0[box] - base[box]) / half[box] - 1.0, -0.98, 0.98))
    cache: dict = {}

    def evaluate(t):
        key = t.tobytes()
        if cache.get("key") != key:
            model, jac = _model(to_phys(t), lam, x, cx, broad)
            cache.update(key=key, r=w * (model - data), j=w[:, None] * jac)
        return cache

    def fun(t):
        return evaluate(t)["r"]

    def jac(t):
        return evaluate(t)["j"] * dphys(t)

    # Tolerances: 1e-6 of χ² is far below what model selection can notice.
    res = least_squares(fun, t0, jac=jac, method="lm", x_scale="jac", ftol=1e-6, xtol=1e-6, max_nfev=150)
    p = to_phys(res.x)
    model, jac_p = _model(p, lam, x, cx, broad)
    r = w * (model - data)
    return p, float(r @ r), w[:, None] * jac_p


def _fit_complex(wl, flux, ivar, cx: _Complex, instrumental_sigma: float) -> dict:
    """Fit narrow-only and narrow+broad models to one complex; return the measurements."""
    sel = (wl >= cx.lo) & (wl <= cx.hi)
    lam = wl[sel]
    data = flux[sel]
    if ivar is None:
        good = np.ones(lam.size, dtype=bool)
    else:
        good = ivar[sel] > 0
    k = cx.n_free_flux
    nan = np.nan
    empty = {
        "fwhm_broad": nan, "fwhm_broad_err": nan, "velocity_broad": nan, "flux_broad": nan,
        "flux_broad_err": nan, "broad_snr": nan, "broad_fraction": nan, "delta_bic": nan,
        "fwhm_narrow": nan, "good_pixels": int(good.sum()),
    }
    for j in range(k):
        empty[f"flux_narrow_{j}"] = nan
    if good.sum() < max(_MIN_GOOD_FRACTION * lam.size, 4 + k + 3 + 5):
        return empty
    lam, data = lam[good], data[good]
    w = np.ones(lam.size) if ivar is None else np.sqrt(ivar[sel][good])
    mid = 0.5 * (cx.lo + cx.hi)
    x = (lam - mid) / 100.0

    # Starting point: a straight continuum through the window's edges (line-free at 3 sigma of
    # any broad line of moderate width), narrow fluxes from the peak heights.
    edge = (lam < cx.lo + 40.0) | (lam > cx.hi - 30.0)
    xe, de = (x[edge], data[edge]) if edge.sum() >= 4 else (x, data)
    c1, c0 = np.polyfit(xe, de, 1)
    cont = c0 + c1 * x
    sig0 = 150.0
    p_n = [c0, c1]
    for j in range(k):
        centre = next(c for c, idx, f in cx.narrow if idx == j and f == 1.0)
        near = np.abs(lam - centre) < centre * 300.0 / C_KMS
        peak = float(np.max(data[near] - cont[near])) if near.any() else 0.0
        p_n.append(max(peak, 0.0) * np.sqrt(2.0 * np.pi) * centre * sig0 / C_KMS)
    p_n += [0.0, sig0]
    scale = max(float(np.max(np.abs(data))), 1e-3)
    inf = np.inf
    lo_n = np.array([-inf, -inf] + [0.0] * k + [-_NARROW_VELOCITY, _NARROW_SIGMA[0]])
    hi_n = np.array([inf, inf] + [inf] * k + [_NARROW_VELOCITY, _NARROW_SIGMA[1]])
    p_init = np.array(p_n, dtype=float)
    p_n, chi2_n, _ = _solve(lam, x, data, w, cx, p_init, lo_n, hi_n, broad=False)

    # Broad start: the flux and width of what the narrow fit leaves under the broad line. The
    # broad flux may take either sign, so that a broad absorption trough (the host's stellar
    # Balmer absorption) is modelled rather than forced into the narrow lines; only a positive
    # broad component can count as a broad line. A free linear amplitude also converges much
    # faster than one held at a bound when there is no broad line at all.
    # The narrow fit may have widened the narrow lines to swallow a broad one, so the start
    # takes the narrow fit's continuum and velocity with the first-guess narrow fluxes and width,
    # and gives the broad line what is left in the window.
    start_n = p_n.copy()
    start_n[2 : 2 + k] = p_init[2 : 2 + k]
    start_n[3 + k] = min(p_n[3 + k], sig0)
    resid = data - _model(start_n, lam, x, cx, False)[0]
    v = (lam / cx.broad_centre - 1.0) * C_KMS
    near_b = np.abs(v) < 6000.0
    f_b0 = float(np.sum(resid[near_b] * np.gradient(lam)[near_b]))
    if abs(f_b0) < 0.02 * scale:
        f_b0 = 0.05 * scale
    pos = np.clip(resid[near_b], 0.0, None)
    s_est = np.sqrt(np.sum(pos * v[near_b] ** 2) / np.sum(pos)) if np.sum(pos) > 0 else BROAD_STARTS[0]
    lo_b = np.concatenate([lo_n, [-inf, -_BROAD_VELOCITY, _BROAD_SIGMA[0]]])
    hi_b = np.concatenate([hi_n, [inf, _BROAD_VELOCITY, _BROAD_SIGMA[1]]])
    penalty = 3.0 * np.log(lam.size)

    def broad_fit(sigma_start):
        start = np.concatenate([start_n, [f_b0, 0.0, sigma_start]])
        return _solve(lam, x, data, w, cx, start, lo_b, hi_b, broad=True)

    best = broad_fit(float(np.clip(s_est, 600.0, 4000.0)))
    s_b = best[0][6 + k]
    at_bound = s_b < 1.1 * _BROAD_SIGMA[0] or s_b > 0.9 * _BROAD_SIGMA[1]
    if best[1] > chi2_n or (at_bound and chi2_n - best[1] > penalty):
        # Worse than the nested narrow model, or a broad line stuck at a width bound (a local
        # minimum: a 1,000–2,000 km/s Hα between the [N II] lines, a very broad line trading
        # with the continuum): start from the other widths and keep the best.
        for sigma_start in BROAD_STARTS + (NARROW_BROAD_START,):
            fit = broad_fit(sigma_start)
            best = fit if fit[1] < best[1] else best
    p_b, chi2_b, jac_b = best
    chi2_b = min(chi2_b, chi2_n)

    n_pix = lam.size
    dof = max(n_pix - p_b.size, 1)
    s2 = chi2_b / dof
    if ivar is not None:
        s2 = max(s2, 1.0)
    s2 = max(s2, np.finfo(float).tiny)
    delta_bic = (chi2_n - chi2_b) / s2 - 3.0 * np.log(n_pix)

    # Parameter errors from the Jacobian at the optimum, scaled like the χ².
    jtj = jac_b.T @ jac_b
    cov = np.linalg.pinv(jtj) * s2
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    f_b, s_b = p_b[4 + k], p_b[6 + k]
    f_b_err, s_b_err = err[4 + k], err[6 + k]
    inst2 = instrumental_sigma**2
    fwhm_b = FWHM_PER_SIGMA * np.sqrt(max(s_b**2 - inst2, 0.0))
    fwhm_b_err = FWHM_PER_SIGMA * s_b * s_b_err / max(np.sqrt(max(s_b**2 - inst2, 0.0)), 1e-9)
    # Report the narrow-line measurements of the model that the selection prefers.
    use_broad = delta_bic > 0
    p = p_b if use_broad else p_n
    f_pos = max(f_b, 0.0) if use_broad else 0.0
    s_n = p[3 + k]
    out = {
        "fwhm_broad": float(fwhm_b),
        "fwhm_broad_err": float(fwhm_b_err),
        "velocity_broad": float(p_b[5 + k]),
        "flux_broad": float(f_b) if use_broad else 0.0,  # < 0: a broad absorption trough
        "flux_broad_err": float(f_b_err),
        "broad_snr": float(f_b / f_b_err) if f_b_err > 0 else 0.0,
        "delta_bic": float(delta_bic),
        "fwhm_narrow": float(FWHM_PER_SIGMA * np.sqrt(max(s_n**2 - inst2, 0.0))),
        "good_pixels": int(n_pix),
    }
    for j in range(k):
        out[f"flux_narrow_{j}"] = float(p[2 + j])
    total = out["flux_narrow_0"] + f_pos
    out["broad_fraction"] = f_pos / total if total > 0 else 0.0
    return out
