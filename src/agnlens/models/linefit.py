"""Gaussian fits of one emission-line complex: narrow lines, an optional broad line and Fe II.

:func:`fit_complex` fits a window of a rest-frame, normalised spectrum twice — (a) a linear
continuum plus narrow lines sharing one velocity and one width, and (b) the same plus a broad
Gaussian (and, where the complex has one, an Fe II pseudo-continuum tied to the broad line's width
and velocity) — and returns the measurements and the evidence for the broad component (ΔBIC). The
rules that turn these numbers into a class live in :mod:`agnlens.models.baseline`.

The fit is MINPACK's Levenberg–Marquardt (``scipy.optimize.least_squares(method="lm")``) with an
analytic Jacobian; bounds are imposed by a change of variables (flux = t², bounded widths and
velocities through a sine, as MINUIT does). A width that ends within 1 % of its bound is reported
in ``broad_at_bound`` / ``narrow_at_bound``: the true width may lie beyond it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from agnlens.lines import C_KMS, line

__all__ = [
    "BROAD_SIGMA", "FWHM_PER_SIGMA", "HALPHA", "HBETA", "LineComplex", "NARROW_SIGMA", "covers", "fit_complex",
]

#: FWHM = this factor × Gaussian σ.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))

# Bounds on the fitted components, in km/s. The narrow and broad width ranges do not overlap, so
# the broad Gaussian can never take over a narrow line (and vice versa).
NARROW_SIGMA = (25.0, 400.0)  # FWHM 60–940 km/s
BROAD_SIGMA = (425.0, 6400.0)  # FWHM 1,000–15,070 km/s
_NARROW_VELOCITY = 500.0
_BROAD_VELOCITY = 3000.0
# Starting broad σ (km/s): the better of the fits from each start is kept (local minima).
BROAD_STARTS = (1000.0, 2500.0)
NARROW_BROAD_START = 550.0
# Least fraction of good pixels a fitting window needs.
MIN_GOOD_FRACTION = 0.5
#: A fitted width within this fraction of a bound is "at the bound".
AT_BOUND = 0.01


@dataclass(frozen=True)
class LineComplex:
    """One line complex fitted as a unit over ``lo``–``hi`` Å.

    ``narrow`` lists ``(wavelength, free_flux_index, flux_factor)``: lines with the same index share
    one flux parameter scaled by the factor (the fixed doublet ratios). ``broad_centre`` is the
    broad line's rest wavelength. ``feii`` lists ``(wavelength, relative strength)`` of Fe II lines
    fitted as one component with the broad line's velocity and :data:`FEII_WIDTH_RATIO` times its
    width (empty: no Fe II).
    """

    name: str
    lo: float
    hi: float
    narrow: tuple[tuple[float, int, float], ...]
    n_free_flux: int
    broad_centre: float
    feii: tuple[tuple[float, float], ...] = ()


# Fe II multiplets 42 and 37/38 inside the Hβ window (vacuum Å; relative strengths of the
# Boroson & Green 1992 template's lines, as in the simulator's template): the 4924 and 5018 lines
# sit in Hβ's red wing and under [O III], where an unmodelled Fe II would be taken for broad Hβ.
#: Fe II lines are narrower than broad Hβ: FWHM(Fe II) ≈ 3/4 FWHM(Hβ) (Hu et al. 2008, ApJ 687, 78).
FEII_WIDTH_RATIO = 0.75
_FEII_HBETA = ((4668.1, 0.2), (4925.3, 0.8), (5019.8, 1.0))

#: Hβ + [O III]: the 4960/5008 ratio is fixed at 1/2.98 (atomic physics); Fe II 4667/4924/5018.
HBETA = LineComplex(
    "hbeta", 4640.0, 5080.0,
    ((line("Hbeta").wavelength, 0, 1.0), (line("OIII_5008").wavelength, 1, 1.0),
     (line("OIII_4960").wavelength, 1, 1.0 / 2.98)),
    2, line("Hbeta").wavelength, _FEII_HBETA,
)
#: Hα + [N II]: the 6550/6585 ratio is fixed at 1/3.05; [S II] 6718 and [O I] 6302 stay outside.
HALPHA = LineComplex(
    "halpha", 6400.0, 6690.0,
    ((line("Halpha").wavelength, 0, 1.0), (line("NII_6585").wavelength, 1, 1.0),
     (line("NII_6550").wavelength, 1, 1.0 / 3.05)),
    2, line("Halpha").wavelength,
)


def covers(wl: np.ndarray, cx: LineComplex) -> bool:
    """Whether the grid ``wl`` (Å, rest frame) spans the complex's window."""
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


def _model(p: np.ndarray, lam: np.ndarray, x: np.ndarray, cx: LineComplex, broad: bool):
    """Model flux and Jacobian (n_pix, n_par) for parameters
    ``[c0, c1, F_0..F_{k-1}, v_n, sigma_n, (F_b, v_b, sigma_b, (F_FeII))]``."""
    k = cx.n_free_flux
    n_par = 4 + k + ((3 + bool(cx.feii)) if broad else 0)
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
        if cx.feii:
            f_fe = p[7 + k]
            for centre, strength in cx.feii:
                g, dv, ds = _profiles(lam, centre, v_b, FEII_WIDTH_RATIO * s_b)
                model = model + f_fe * strength * g
                jac[:, 7 + k] += strength * g
                jac[:, 5 + k] += f_fe * strength * dv
                jac[:, 6 + k] += f_fe * strength * FEII_WIDTH_RATIO * ds
    return model, jac


def _solve(lam, x, data, w, cx: LineComplex, p0, lo, hi, broad: bool):
    """Weighted least squares of one complex with box bounds.

    The bounds are imposed by a change of variables so that the fast MINPACK Levenberg–Marquardt
    can run unconstrained (the trust-region method with bounds costs about four times as much
    Python overhead per spectrum). Returns the physical parameters, the χ² and the weighted
    Jacobian (n_pix, n_par) in physical parameters at the optimum.
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

    # Tolerances: 1e-6 of χ² is far below what model selection can notice.
    res = least_squares(lambda t: evaluate(t)["r"], t0, jac=lambda t: evaluate(t)["j"] * dphys(t),
                        method="lm", x_scale="jac", ftol=1e-6, xtol=1e-6, max_nfev=150)
    p = to_phys(res.x)
    model, jac_p = _model(p, lam, x, cx, broad)
    r = w * (model - data)
    return p, float(r @ r), w[:, None] * jac_p


def _empty(n_good: int, k: int) -> dict:
    nan = np.nan
    out = {key: nan for key in ("fwhm_broad", "fwhm_broad_err", "velocity_broad", "flux_broad", "flux_broad_err",
                                "broad_snr", "broad_fraction", "delta_bic", "fwhm_narrow", "feii_flux")}
    out.update(broad_at_bound=False, narrow_at_bound=False, good_pixels=n_good)
    for j in range(k):
        out[f"flux_narrow_{j}"] = out[f"flux_narrow_err_{j}"] = out[f"continuum_{j}"] = nan
    return out


def fit_complex(wl: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None, cx: LineComplex,
                instrumental_sigma: float) -> dict:
    """Fit narrow-only and narrow + broad (+ Fe II) models to one complex of one spectrum.

    Parameters
    ----------
    wl : ndarray of shape (n_pixels,)
        Rest-frame wavelengths (Å).
    flux : ndarray of shape (n_pixels,)
        Normalised flux.
    ivar : ndarray of shape (n_pixels,) or None
        Inverse variance (0: bad pixel); None weighs all pixels the same.
    cx : LineComplex
    instrumental_sigma : float
        Instrumental σ (km/s) removed in quadrature from the fitted widths.

    Returns
    -------
    dict
        ``fwhm_broad`` (intrinsic, km/s), ``fwhm_broad_err``, ``velocity_broad``, ``flux_broad``
        (0 when ΔBIC ≤ 0; negative: an absorption trough), ``flux_broad_err``, ``broad_snr``,
        ``broad_fraction`` (broad / (narrow + positive broad) of the first narrow line),
        ``delta_bic`` (evidence for the broad model), ``fwhm_narrow``, ``feii_flux`` (NaN without
        Fe II), ``broad_at_bound``, ``narrow_at_bound``, ``good_pixels``, ``flux_narrow_<j>`` and
        its 1 σ error ``flux_narrow_err_<j>`` (from the model that is reported) and the fitted
        continuum at its centre ``continuum_<j>`` (for its equivalent width).
        All NaN when fewer than half of the window's pixels are good.
    """
    sel = (wl >= cx.lo) & (wl <= cx.hi)
    lam, data = wl[sel], flux[sel]
    good = np.ones(lam.size, dtype=bool) if ivar is None else ivar[sel] > 0
    k = cx.n_free_flux
    n_broad = 3 + bool(cx.feii)
    if good.sum() < max(MIN_GOOD_FRACTION * lam.size, 4 + k + n_broad + 5):
        return _empty(int(good.sum()), k)
    lam, data = lam[good], data[good]
    w = np.ones(lam.size) if ivar is None else np.sqrt(ivar[sel][good])
    x = (lam - 0.5 * (cx.lo + cx.hi)) / 100.0

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
    lo_n = np.array([-inf, -inf] + [0.0] * k + [-_NARROW_VELOCITY, NARROW_SIGMA[0]])
    hi_n = np.array([inf, inf] + [inf] * k + [_NARROW_VELOCITY, NARROW_SIGMA[1]])
    p_init = np.array(p_n, dtype=float)
    p_n, chi2_n, jac_n = _solve(lam, x, data, w, cx, p_init, lo_n, hi_n, broad=False)

    # Broad start: the flux and width of what the narrow fit leaves under the broad line. The
    # broad flux may take either sign, so that a broad absorption trough (the host's stellar
    # Balmer absorption) is modelled rather than forced into the narrow lines; only a positive
    # broad component can count as a broad line. The narrow fit may have widened the narrow lines
    # to swallow a broad one, so the start takes the narrow fit's continuum and velocity with the
    # first-guess narrow fluxes and width, and gives the broad line what is left in the window.
    start_n = p_n.copy()
    start_n[2 : 2 + k] = p_init[2 : 2 + k]
    start_n[3 + k] = min(p_n[3 + k], sig0)
    resid = data - _model(start_n, lam, x, cx, False)[0]
    v = (lam / cx.broad_centre - 1.0) * C_KMS
    near_b = np.abs(v) < 6000.0
    f_b0 = float(np.sum(resid[near_b] * np.gradient(lam)[near_b]))
    if abs(f_b0) < 0.02 * scale:
        f_b0 = 0.05 * scale
    positive = np.clip(resid[near_b], 0.0, None)
    s_est = np.sqrt(np.sum(positive * v[near_b] ** 2) / np.sum(positive)) if np.sum(positive) > 0 else BROAD_STARTS[0]
    extra_lo, extra_hi = [-inf, -_BROAD_VELOCITY, BROAD_SIGMA[0]], [inf, _BROAD_VELOCITY, BROAD_SIGMA[1]]
    extra_start = [f_b0, 0.0]
    if cx.feii:
        extra_lo.append(0.0)
        extra_hi.append(inf)
    lo_b, hi_b = np.concatenate([lo_n, extra_lo]), np.concatenate([hi_n, extra_hi])
    penalty = n_broad * np.log(lam.size)

    def broad_fit(sigma_start):
        # Fe II starts small but not at zero (where t = √F has a zero Jacobian column)
        start = np.concatenate([start_n, extra_start, [sigma_start], [0.02 * scale] if cx.feii else []])
        return _solve(lam, x, data, w, cx, start, lo_b, hi_b, broad=True)

    best = broad_fit(float(np.clip(s_est, 600.0, 4000.0)))
    s_b = best[0][6 + k]
    near_bound = s_b < 1.1 * BROAD_SIGMA[0] or s_b > 0.9 * BROAD_SIGMA[1]
    if best[1] > chi2_n or (near_bound and chi2_n - best[1] > penalty):
        # Worse than the nested narrow model, or a broad line stuck at a width bound (a local
        # minimum: a 1,000–2,000 km/s Hα between the [N II] lines, a very broad line trading
        # with the continuum): start from the other widths and keep the best.
        for sigma_start in BROAD_STARTS + (NARROW_BROAD_START,):
            fit = broad_fit(sigma_start)
            best = fit if fit[1] < best[1] else best
    p_b, chi2_b, jac_b = best
    chi2_b = min(chi2_b, chi2_n)

    n_pix = lam.size
    s2 = _scale(chi2_b, n_pix - p_b.size, ivar is not None)
    delta_bic = (chi2_n - chi2_b) / s2 - penalty

    # Parameter errors from the Jacobian at the optimum, scaled like the χ².
    err = _errors(jac_b, s2)
    f_b, s_b = p_b[4 + k], p_b[6 + k]
    inst2 = instrumental_sigma**2
    intrinsic = np.sqrt(max(s_b**2 - inst2, 0.0))
    # Report the narrow-line measurements of the model that the selection prefers.
    use_broad = delta_bic > 0
    p = p_b if use_broad else p_n
    f_pos = max(f_b, 0.0) if use_broad else 0.0
    s_n = p[3 + k]
    out = {
        "fwhm_broad": float(FWHM_PER_SIGMA * intrinsic),
        "fwhm_broad_err": float(FWHM_PER_SIGMA * s_b * err[6 + k] / max(intrinsic, 1e-9)),
        "velocity_broad": float(p_b[5 + k]),
        "flux_broad": float(f_b) if use_broad else 0.0,
        "flux_broad_err": float(err[4 + k]),
        "broad_snr": float(f_b / err[4 + k]) if err[4 + k] > 0 else 0.0,
        "delta_bic": float(delta_bic),
        "fwhm_narrow": float(FWHM_PER_SIGMA * np.sqrt(max(s_n**2 - inst2, 0.0))),
        "feii_flux": float(p_b[7 + k]) if (cx.feii and use_broad) else (0.0 if cx.feii else np.nan),
        "broad_at_bound": bool(_at_bound(s_b, BROAD_SIGMA)),
        "narrow_at_bound": bool(_at_bound(s_n, NARROW_SIGMA)),
        "good_pixels": int(n_pix),
    }
    # the narrow fluxes' errors from the model they are reported from (scaled like its χ²)
    err_p = err if use_broad else _errors(jac_n, _scale(chi2_n, n_pix - p_n.size, ivar is not None))
    for j in range(k):
        out[f"flux_narrow_{j}"] = float(p[2 + j])
        out[f"flux_narrow_err_{j}"] = float(err_p[2 + j])
        # the fitted continuum under the line (for its equivalent width)
        centre = next(c for c, idx, f in cx.narrow if idx == j and f == 1.0)
        out[f"continuum_{j}"] = float(p[0] + p[1] * (centre - 0.5 * (cx.lo + cx.hi)) / 100.0)
    total = out["flux_narrow_0"] + f_pos
    out["broad_fraction"] = f_pos / total if total > 0 else 0.0
    return out


def _scale(chi2: float, dof: int, weighted: bool) -> float:
    """χ² / dof, at least 1 when the pixels carry their inverse variance (``weighted``)."""
    s2 = chi2 / max(dof, 1)
    return max(s2, 1.0 if weighted else np.finfo(float).tiny)


def _errors(jac: np.ndarray, s2: float) -> np.ndarray:
    """1 σ parameter errors from the weighted Jacobian (n_pix, n_par) at the optimum, scaled by ``s2``."""
    return np.sqrt(np.clip(np.diag(np.linalg.pinv(jac.T @ jac) * s2), 0.0, None))


def _at_bound(value: float, bounds: tuple[float, float]) -> bool:
    lo, hi = bounds
    return value <= lo * (1.0 + AT_BOUND) or value >= hi * (1.0 - AT_BOUND)
