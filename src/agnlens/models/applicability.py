"""Applicability of a prediction: can the model be trusted on this spectrum?

Three checks, each from what the model and its training set leave behind:

* **kernel collapse** — for an RBF model the largest kernel value ``max_j K(x, s_j)`` between the
  spectrum and any support vector; when it is tiny every decision value is its intercept and the
  output is the model's constant prior, whatever the spectrum. For every kernel, the share of the
  decision values that is intercept, ``max_q |b_q| / (|f_q - b_q| + |b_q|)`` is also reported.
* **out of distribution** — a :class:`~agnlens.models.domain.TrainingDomain` (PCA of the training spectra) stored on the
  model by :func:`agnlens.models.tuning.train`: the reconstruction error outside the leading
  components and the Mahalanobis distance inside them, each against a threshold calibrated on the
  held-out validation spectra (so that ≲ 1 % of spectra like the training ones are flagged).
  Models saved without it (older files) fall back to the distance to the nearest support vector,
  or report the check as unavailable.
* **coverage** — the share of the grid that was masked (uncovered or bad pixels, filled in by
  interpolation before the model saw them), over the whole grid (``low-coverage``) and over the
  window of each key line the grid covers, Hβ and Hα (``key-line-masked``, more than 30 %).
* **redshift** — ``z-out-of-range``: the spectrum's redshift lies outside the range of the
  model's training spectra (``training_range_``, recorded by :func:`agnlens.models.tuning.train`
  and saved with the model); what the model learnt of the sky and telluric residuals, the
  observed-frame coverage and the classes' redshift mix does not reach it. Model files that
  predate the record load without it: the check is then unavailable (``z_check``).
* **noise** — ``uncertain``: the two most probable classes are within two standard errors of each
  other (:mod:`agnlens.explain.uncertainty`, passed in by the classify stage).
* **not an AGN** — every default model assumes its input is an AGN (type 1, type 2 or
  intermediate). Where the physics baseline (:func:`agnlens.models.baseline.measure`) finds no broad
  Balmer line (Winkler subtype 2) and narrow lines that lie on the star-forming side of the
  Kauffmann et al. 2003 curve of the BPT diagram, each of the four lines measured at S/N ≥ 3
  (:func:`agnlens.models.bpt.bpt_class`), the spectrum is a star-forming galaxy: outside the
  model's domain whatever class it is given. With no broad line and [O III] 5008 weaker than
  3 Å of equivalent width or below S/N 3, it shows no AGN line at all (a passive or retired
  galaxy): ``not-agn`` too, with the reason in ``agn_check`` (:func:`agn_evidence`). Needs Hα
  ([N II]/Hα), so only on grids that reach it;
  composites (between the Kauffmann and Kewley curves) are not flagged, they may host an AGN.
* **physics disagrees** — the class contradicts a significant verdict of the same line fits: type 2
  called but a broad Hα at ΔBIC ≥ 20, or type 1 called but no broad Hβ or Hα that the baseline's
  rules count within 3,000 km/s of the narrow lines (:func:`physics_disagrees`).

The redshift check, which needs the spectrum's own lines, lives in :mod:`agnlens.redshift`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agnlens.models.baseline import RARE_BROAD_OFFSET
from agnlens.models.domain import TrainingDomain
from agnlens.models.kernels import pairwise_sq_distances

#: RBF models: ``max_j K(x, s_j)`` below this is a kernel collapse. Measured with the default
#: paper-grid model on the 78 real type 1 of the shared sample: 0.55–0.99 (median 0.93); the
#: collapsed spectra of issue 12 (1163-52669-0292, 1176-52791-0591, 2345-53757-0410): 3e-32,
#: 3e-4 and 1e-2. Calibrated on simulated test spectra so that ≤ 1 % are flagged: at 0.05 (with an
#: intercept share of 0.95) the rare strong-[O III] Seyferts of the simulator (EW 700–1,100 Å, peaks
#: ~100–150× the continuum; max kernel 0.04–0.07) were 1 % of the flags on their own.
KERNEL_COLLAPSE = 0.02
#: Any kernel: a spectrum whose decision values are at least this share intercept is collapsed.
INTERCEPT_SHARE_COLLAPSE = 0.999
#: More than this share of masked (filled-in) pixels on the grid makes a prediction not applicable.
MAX_MASKED_SHARE = 0.1
#: More than this share of a key line's window (:data:`agnlens.lines.KEY_LINE_WINDOWS`) masked or
#: filled in flags ``key-line-masked``: what decides the type was interpolated, not observed.
MAX_KEY_LINE_MASKED = 0.3
#: Quantile of the held-out validation scores used as each out-of-distribution threshold.
OOD_QUANTILE = 0.998
#: Thresholds are this factor above that quantile (margin for the finite validation sample).
OOD_MARGIN = 1.25

#: Flag codes, in the order they are listed in ``flags``.
FLAG_CODES = ("kernel-collapse", "out-of-distribution", "not-agn", "physics-disagrees", "redshift-offset",
              "z-out-of-range", "low-coverage", "key-line-masked", "camera-jump", "uncertain")
#: What each flag code means, in a sentence (the report shows it beside the flagged prediction).
FLAG_MEANINGS = {
    "kernel-collapse": "so far from every support vector that the output is the model's constant prior",
    "out-of-distribution": "unlike the training spectra",
    "not-agn": "no broad line, and star-forming on the BPT diagram or no AGN line at all ([O III] EW < 3 Å "
               "or S/N < 3): the models only know AGN",
    "physics-disagrees": "the line fits contradict the class: type 2 called but a broad Hα at ΔBIC ≥ 20, or type 1 "
                         "called but no broad Hβ or Hα that the baseline's rules count within 3,000 km/s of the "
                         "narrow lines",
    "redshift-offset": "the narrow lines sit more than 500 km/s from the catalogue redshift",
    "z-out-of-range": "the redshift lies outside the range of the model's training spectra",
    "low-coverage": "over 10 % of the grid masked",
    "key-line-masked": "over 30 % of the Hβ or Hα window filled in: the line that decides the type was not observed",
    "camera-jump": "a DESI spectrum whose camera arms disagree where they join: the merged continuum has a step",
    "uncertain": "the two most probable classes are within 2 standard errors (p_<class>_err) of each other",
}


@dataclass
class Applicability:
    """Per-spectrum applicability of a model's predictions.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per spectrum: ``applicable``, ``flags`` (``;``-separated codes of
        :data:`FLAG_CODES`), ``max_kernel`` (NaN for non-RBF models), ``intercept_share``,
        ``pca_residual``, ``mahalanobis`` (NaN when the model has no training domain),
        ``masked_share``, ``ood_check`` (how the distance was judged), ``z_check`` (``inside``,
        ``outside LO–HI`` or ``unavailable`` when the model records no training range or the
        spectrum no redshift) and ``agn_check`` (what the
        physics says: ``"star-forming, no broad line"`` when flagged ``not-agn``, ``"agn or
        unclear"`` otherwise, ``"unavailable"`` without measurements or without an Hα fit).
    """

    table: pd.DataFrame

    @property
    def applicable(self) -> np.ndarray:
        return self.table["applicable"].to_numpy(dtype=bool)


def max_kernel(model, X) -> np.ndarray:
    """Largest RBF kernel value between each spectrum and any support vector.

    Parameters
    ----------
    model : fitted SpectrumSVC with ``kernel="rbf"``
    X : array-like of shape (n_spectra, n_pixels)

    Returns
    -------
    ndarray of shape (n_spectra,)
        ``max_j exp(-gamma_ |z - s_j|^2)`` (``z`` the scaled spectrum); NaN for other kernels.
    """
    X = np.asarray(X, dtype=np.float64)
    if getattr(model, "kernel", None) != "rbf":
        return np.full(X.shape[0], np.nan)
    return np.exp(-model.gamma_ * nearest_sq_distance(model, X))


def nearest_sq_distance(model, X) -> np.ndarray:
    """Squared distance (scaled space) from each spectrum to its nearest support vector, shape (n,).

    Computed as the rbf kernel computes it (:func:`agnlens.models.kernels.pairwise_sq_distances`),
    under the same BLAS thread rule, so ``max_kernel`` is the largest value of the model's own kernel.
    """
    Z = model.scale(np.asarray(X, dtype=np.float64))
    return pairwise_sq_distances(Z, model.support_vectors_).min(axis=1)


def intercept_share(model, X) -> np.ndarray:
    """Share of the pairwise decision values that is intercept, worst pair, shape (n_spectra,).

    ``max_q |b_q| / (|f_q(x) - b_q| + |b_q|)``: 1 when the support vectors contribute nothing.
    """
    f = model.pairwise_decision_function(np.asarray(X, dtype=np.float64))
    b = np.abs(np.asarray(model.intercept_, dtype=np.float64))[None, :]
    data = np.abs(f - model.intercept_[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(b + data > 0, b / (b + data), 0.0)
    # the least intercept-dominated pair: collapse means *every* pair has lost its data term
    return share.min(axis=1)


#: With no broad line, [O III] 5008 weaker than this equivalent width (Å) ...
MIN_OIII_EW = 3.0
#: ... or measured below this S/N is no evidence of an AGN (``not-agn``, ``no AGN line``).
MIN_OIII_SNR = 3.0
#: ``agn_check`` reasons that flag ``not-agn``.
NOT_AGN_REASONS = ("star-forming, no broad line", "no broad line, weak [O III]")


def agn_evidence(measurements: pd.DataFrame) -> np.ndarray:
    """Why the physics says a spectrum is no AGN, or ``"agn or unclear"``.

    Parameters
    ----------
    measurements : DataFrame
        From :func:`agnlens.models.baseline.measure`: ``bpt_class`` (given only when all four lines
        have S/N ≥ :data:`agnlens.models.bpt.MIN_BPT_SNR`), ``subtype``, ``oiii_ew``, ``oiii_snr``.

    Returns
    -------
    ndarray of str, shape (n_spectra,)
        ``"star-forming, no broad line"`` (BPT star-forming and Winkler subtype 2),
        ``"no broad line, weak [O III]"`` (subtype 2 and [O III] 5008 with EW < :data:`MIN_OIII_EW` Å
        or S/N < :data:`MIN_OIII_SNR`: a passive or retired galaxy, or one whose AGN, if any,
        shows no line the models read), else ``"agn or unclear"``.
    """
    from agnlens.classes import SUBTYPES

    bpt = measurements["bpt_class"].fillna("").astype(str).to_numpy()
    no_broad = measurements["subtype"].fillna("").astype(str).to_numpy() == SUBTYPES[-1]
    ew = pd.to_numeric(measurements.get("oiii_ew", np.nan), errors="coerce")
    snr = pd.to_numeric(measurements.get("oiii_snr", np.nan), errors="coerce")
    weak = np.asarray((ew < MIN_OIII_EW) | (snr < MIN_OIII_SNR), dtype=bool).reshape(-1)
    weak = np.broadcast_to(weak, no_broad.shape)
    out = np.full(no_broad.shape, "agn or unclear", dtype=object)
    out[no_broad & weak] = NOT_AGN_REASONS[1]
    out[no_broad & (bpt == "star-forming")] = NOT_AGN_REASONS[0]
    return out


def not_agn(measurements: pd.DataFrame) -> np.ndarray:
    """Spectra that the physics says are no AGN (:func:`agn_evidence` gives a reason).

    Returns
    -------
    ndarray of bool, shape (n_spectra,)
    """
    return np.isin(agn_evidence(measurements), NOT_AGN_REASONS)


#: ``physics-disagrees``: a type 2 whose broad Hα has at least this ΔBIC (and counts by the rules).
DISAGREE_DELTA_BIC = 20.0
#: ``physics-disagrees``: a type 1 needs a broad line the rules count within this velocity (km/s) of
#: the narrow lines. The broad-line region sits at the systemic velocity to a few hundred km/s (the
#: simulator, after Shen et al. 2016, draws broad Hβ shifts from N(+100, 500) km/s), so the models
#: never saw a broad line farther off; the baseline asks more evidence of one too (the same number).
DISAGREE_BROAD_OFFSET = RARE_BROAD_OFFSET


def physics_disagrees(measurements: pd.DataFrame, predicted) -> np.ndarray:
    """Predictions the line fits contradict: ``type2`` with a broad Hα the baseline's rules count at
    ΔBIC ≥ :data:`DISAGREE_DELTA_BIC`, or ``type1`` with no broad line the rules count within
    :data:`DISAGREE_BROAD_OFFSET` km/s of the narrow lines, in Hβ nor (where fitted) Hα — none at
    all (the baseline's subtype 2: what the SVM reads as broad, the fits find too weak, too narrow
    or not there), or only a broad line offset farther, of a kind no training spectrum has.

    Parameters
    ----------
    measurements : DataFrame
        From :func:`agnlens.models.baseline.measure` (``hb_delta_bic``, ``ha_delta_bic``, and
        ``hb_fwhm_broad``, ``ha_fwhm_broad``, ``hb_velocity_broad``, ``ha_velocity_broad`` — set
        only where the rules count the broad line), one row per prediction. Without the velocity
        columns (tables written before 0.6) every counted broad line is taken as near.
    predicted : array-like of str, shape (n_spectra,)

    Returns
    -------
    ndarray of bool, shape (n_spectra,)
        False where Hβ could not be fitted (no verdict to disagree with).
    """
    predicted = np.asarray(predicted).astype(str)

    def column(name: str) -> np.ndarray:
        if name not in measurements:
            return np.full(len(measurements), np.nan)
        return pd.to_numeric(measurements[name], errors="coerce").to_numpy(float)

    hb, ha = column("hb_delta_bic"), column("ha_delta_bic")
    broad_ha = np.isfinite(column("ha_fwhm_broad")) & (np.nan_to_num(ha, nan=-np.inf) >= DISAGREE_DELTA_BIC)
    near = np.zeros(len(predicted), dtype=bool)
    for prefix in ("hb", "ha"):
        counts = np.isfinite(column(f"{prefix}_fwhm_broad"))
        velocity = column(f"{prefix}_velocity_broad")
        near |= counts & ~(np.abs(velocity) > DISAGREE_BROAD_OFFSET)  # NaN velocity: an older table, near
    return ((predicted == "type2") & broad_ha) | ((predicted == "type1") & np.isfinite(hb) & ~near)


def support_vector_domain(model) -> float:
    """Fallback distance threshold for models without a :class:`TrainingDomain`: the 99.8 %
    quantile of the support vectors' own nearest-other-support-vector distance, times the margin."""
    d2 = pairwise_sq_distances(model.support_vectors_, model.support_vectors_)
    np.fill_diagonal(d2, np.inf)
    return float(OOD_MARGIN**2 * np.quantile(d2.min(axis=1), OOD_QUANTILE))


def applicability(model, spectra, *, extra_flags=None, measurements: pd.DataFrame | None = None,
                  predicted=None) -> Applicability:
    """Judge every prediction of ``model`` on ``spectra``.

    Parameters
    ----------
    model : fitted SpectrumSVC
        With ``training_domain_`` (set by :func:`agnlens.models.tuning.train`) when available.
    spectra : SpectrumSet
        On the model's grid.
    extra_flags : sequence of sequence of str, optional
        Further flag codes per spectrum (e.g. ``redshift-offset`` from :mod:`agnlens.redshift`);
        any flag makes the prediction not applicable.
    measurements : DataFrame, optional
        :func:`agnlens.models.baseline.measure` of ``spectra`` (on a grid reaching Hα, matched by
        ``spec_id``): flags ``not-agn`` (:func:`not_agn`) and ``physics-disagrees``
        (:func:`physics_disagrees`). Without it both checks are unavailable.
    predicted : array-like of str, shape (n_spectra,), optional
        The model's labels for ``spectra`` (for ``physics-disagrees``); ``model.predict`` when omitted.

    Returns
    -------
    Applicability
    """
    X = np.asarray(spectra.flux, dtype=np.float64)
    n = X.shape[0]
    kmax = max_kernel(model, X) if n else np.empty(0)
    share = intercept_share(model, X) if n else np.empty(0)
    collapse = (np.nan_to_num(kmax, nan=1.0) < KERNEL_COLLAPSE) | (share >= INTERCEPT_SHARE_COLLAPSE)
    domain = getattr(model, "training_domain_", None)
    residual = mahal = np.full(n, np.nan)
    if isinstance(domain, TrainingDomain) and domain.mean_.size == X.shape[1]:
        residual, mahal = domain.score(X) if n else (np.empty(0), np.empty(0))
        r_max, m_max = domain.thresholds(OOD_QUANTILE, OOD_MARGIN)
        ood = (residual > r_max) | (mahal > m_max)
        how = "training PCA"
    elif getattr(model, "kernel", None) == "rbf" and n:
        ood = nearest_sq_distance(model, X) > support_vector_domain(model)
        how = "support vectors"
    else:
        ood = np.zeros(n, dtype=bool)
        how = "unavailable"
    masked = np.asarray(spectra.mask, dtype=bool).mean(axis=1) if n else np.empty(0)
    low_cov = masked > MAX_MASKED_SHARE
    key_masked = key_line_masked(spectra)
    agn_check = np.full(n, "unavailable", dtype=object)
    disagrees = np.zeros(n, dtype=bool)
    if measurements is not None and n:
        measured = measurements.drop_duplicates("spec_id").set_index("spec_id").reindex(spectra.spec_id)
        # NaN: Hα not covered or not fitted (not [N II]/Hα, which is also NaN where a passive
        # galaxy shows neither line: that galaxy's Hα was fitted and found empty)
        fitted = "ha_delta_bic" if "ha_delta_bic" in measured.columns else "nii_ha"
        known = measured[fitted].notna().to_numpy()
        agn_check[known] = agn_evidence(measured.reset_index())[known]
        if {"hb_delta_bic", "ha_delta_bic"} <= set(measured.columns):
            labels = model.predict(X) if predicted is None else predicted
            disagrees = physics_disagrees(measured.reset_index(), labels)
    no_agn = np.isin(agn_check, NOT_AGN_REASONS)
    z_check = redshift_check(model, spectra)
    extra = list(extra_flags) if extra_flags is not None else [()] * n
    flags = []
    for i in range(n):
        checks = (("kernel-collapse", collapse[i]), ("out-of-distribution", ood[i]), ("not-agn", no_agn[i]),
                  ("physics-disagrees", disagrees[i]),
                  ("z-out-of-range", z_check[i].startswith("outside")), ("low-coverage", low_cov[i]),
                  ("key-line-masked", key_masked[i] > MAX_KEY_LINE_MASKED))
        codes = set(extra[i]) | {code for code, on in checks if on}
        # known codes in the order of FLAG_CODES, any others after them
        flags.append(";".join([c for c in FLAG_CODES if c in codes] + sorted(codes - set(FLAG_CODES))))
    table = pd.DataFrame({
        "applicable": [not f for f in flags],
        "flags": flags,
        "max_kernel": kmax,
        "intercept_share": share,
        "pca_residual": residual,
        "mahalanobis": mahal,
        "masked_share": masked,
        "key_line_masked": key_masked,
        "ood_check": how,
        "z_check": z_check,
        "agn_check": agn_check,
    })
    return Applicability(table)


def redshift_check(model, spectra) -> np.ndarray:
    """Whether each spectrum's redshift lies inside the model's training range.

    Returns
    -------
    ndarray of str, shape (n_spectra,)
        ``"inside"``, ``"outside LO–HI"`` (flags ``z-out-of-range``) or ``"unavailable"`` (a model
        saved without ``training_range_``, or no redshift).
    """
    n = len(spectra)
    out = np.full(n, "unavailable", dtype=object)
    zrange = (getattr(model, "training_range_", None) or {}).get("z")
    if zrange is None or "z" not in spectra.meta.columns:
        return out
    lo, hi = zrange
    z = pd.to_numeric(spectra.meta["z"], errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(z)
    out[known] = "inside"
    out[known & ((z < lo) | (z > hi))] = f"outside {lo:.3f}–{hi:.3f}"
    return out


def key_line_masked(spectra) -> np.ndarray:
    """The largest masked (filled-in) share of any key line window the grid covers, per spectrum
    (:data:`agnlens.lines.KEY_LINE_WINDOWS`; 0 when the grid covers none).

    Parameters
    ----------
    spectra : SpectrumSet

    Returns
    -------
    ndarray of shape (n_spectra,)
    """
    from agnlens.lines import KEY_LINE_WINDOWS

    wavelength = np.asarray(spectra.wavelength, dtype=float)
    mask = np.asarray(spectra.mask, dtype=bool)
    out = np.zeros(mask.shape[0])
    for lo, hi in KEY_LINE_WINDOWS.values():
        if wavelength[0] <= lo and hi <= wavelength[-1]:
            sel = (wavelength >= lo) & (wavelength <= hi)
            out = np.maximum(out, mask[:, sel].mean(axis=1))
    return out


def reason(flags: str) -> str:
    """A human phrase for a ``flags`` string: ``"kernel-collapse;redshift-offset"`` →
    ``"kernel collapse, redshift offset"`` ("" when there is none)."""
    return ", ".join(code.replace("-", " ") for code in str(flags or "").split(";") if code)
