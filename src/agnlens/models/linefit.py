"""Wing-aware fits of the Hβ and Hα line complexes of many spectra at once.

:func:`fit_lines` fits a whole batch of rest-frame, normalised spectra in two steps, each for all
spectra together (the model is :mod:`agnlens.models.linemodel`'s):

1. **The narrow profile from [O III]**: a core + wing Gaussian profile of [O III] 4960/5008 over
   4900–5060 Å (quadratic continuum), by :func:`agnlens.models.lm.levenberg_marquardt` with an
   analytic Jacobian. Every narrow line takes this profile ("tied to [O III]": velocity, widths,
   wing/total ratio), so a narrow-line wing in Hβ or Hα cannot pass for a broad line.
2. **Each complex with and without its broad line**: Hβ + [O III] (4640–5080 Å, with Fe II
   4668/4925/5020) and, where the grid covers it, Hα + [N II] (6400–6690 Å), over a linear
   continuum. Without the broad line the model is linear in its parameters (continuum and narrow
   fluxes) and is solved exactly. With it, the broad line's velocity (±8,000 km/s) and width
   (FWHM 1,000–23,550 km/s) are first searched on a grid — the linear parameters solved exactly at
   every grid point, for every spectrum in a few matrix products — and the best point refined by
   Levenberg–Marquardt. The grid makes the fit global: no local minimum between the [N II] lines,
   no width stuck at a bound for want of a better start.

The evidence for a broad line is ΔBIC = (χ²_narrow − χ²_broad) / s² − k ln n, k its parameters
(4 for Hβ with Fe II, 3 for Hα), n the window's good pixels and s² = max(1, χ²_broad / dof)
rescaling the χ² when the model does not describe the data to the noise (an F-test then); without
ivar all pixels weigh the same and s² is the residual variance. The rules that turn the numbers into
a class live in :mod:`agnlens.models.baseline`. A non-linear parameter within 1 % of its range from
a bound is named in ``at_bound``.
"""

from __future__ import annotations

import numpy as np

from agnlens.models.linemodel import (
    AT_BOUND, BROAD_SIGMA, BROAD_VELOCITY, COMPLEXES, FEII_WIDTH_RATIO, FWHM_PER_SIGMA, HALPHA, HBETA,
    MIN_GOOD_FRACTION, NARROW_SIGMA, OIII_PROFILE, SHARED, WING_FRACTION, LineComplex, LineModel, covers, gaussians,
)
from agnlens.models.lm import Bounds, levenberg_marquardt

__all__ = [
    "BROAD_SIGMA", "COMPLEX_KEYS", "FWHM_PER_SIGMA", "HALPHA", "HBETA", "LineComplex", "MIN_GOOD_FRACTION",
    "SHARED_KEYS", "covers", "fit_lines", "narrow_basis",
]

#: Per-complex outputs of :func:`fit_lines` (besides ``flux_narrow_<j>``, ``flux_narrow_err_<j>``,
#: ``continuum_<j>``), and the shared narrow-profile ones.
COMPLEX_KEYS = ("fwhm_broad", "fwhm_broad_err", "velocity_broad", "flux_broad", "flux_broad_err", "broad_snr",
                "broad_fraction", "delta_bic", "fwhm_narrow", "feii_flux", "broad_at_bound", "narrow_at_bound",
                "good_pixels")
SHARED_KEYS = ("narrow_velocity", "wing_fraction", "wing_fwhm", "wing_velocity", "at_bound")

#: The broad-line search grid: σ (km/s, log-spaced) × velocity (km/s).
SIGMA_GRID = np.geomspace(450.0, 7000.0, 16)
VELOCITY_GRID = np.arange(-6000.0, 6001.0, 750.0)
#: The narrow profile where the [O III] window has too few good pixels: one Gaussian of σ 150 km/s.
DEFAULT_PROFILE = (0.0, 150.0, 0.0, 500.0, 0.0)
# Spectra fitted together (bounds the memory of the grid search and the Jacobians).
_CHUNK = 256


def fit_lines(wl: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None, instrumental_sigma: float,
              complexes=COMPLEXES) -> dict[str, dict[str, np.ndarray]]:
    """Fit the narrow profile and every line complex of every spectrum, with and without its broad line.

    Parameters
    ----------
    wl : ndarray of shape (n_pixels,)
        Rest-frame wavelengths (Å).
    flux : ndarray of shape (n_spectra, n_pixels)
        Normalised flux.
    ivar : ndarray of shape (n_spectra, n_pixels) or None
        Inverse variance (0: bad pixel); None weighs all pixels the same.
    instrumental_sigma : float
        Instrumental σ (km/s) removed in quadrature from the fitted widths.
    complexes : sequence of LineComplex, default :data:`agnlens.models.linemodel.COMPLEXES`
        The windows to fit where the grid covers them (each needs at least
        :data:`MIN_GOOD_FRACTION` good pixels in a spectrum, or its outputs are NaN there).

    Returns
    -------
    dict
        For each covered complex, by its name (``"hbeta"``, ``"halpha"``), a dict of arrays of
        shape (n_spectra,): ``fwhm_broad`` (intrinsic, km/s), ``fwhm_broad_err``,
        ``velocity_broad``, ``flux_broad`` (0 when ΔBIC ≤ 0; negative: an absorption trough),
        ``flux_broad_err``, ``broad_snr``, ``broad_fraction`` (broad / (narrow + positive broad)
        of the first narrow line), ``delta_bic``, ``fwhm_narrow`` (the narrow core's intrinsic
        FWHM), ``feii_flux`` (NaN without Fe II), ``broad_at_bound``, ``narrow_at_bound``,
        ``good_pixels``, ``flux_narrow_<j>`` and its 1 σ error ``flux_narrow_err_<j>`` (from
        the model the ΔBIC prefers) and ``continuum_<j>`` (the fitted continuum at the line, for
        its equivalent width). Under ``"shared"``: ``narrow_velocity``, ``wing_fraction`` (wing /
        total narrow flux), ``wing_fwhm`` (intrinsic), ``wing_velocity`` (relative to the core) —
        NaN where [O III] could not be fitted and :data:`DEFAULT_PROFILE` was used — and
        ``at_bound`` (``;``-separated names of fitted parameters within 1 % of a bound).
    """
    wl = np.asarray(wl, dtype=float)
    flux = np.atleast_2d(np.asarray(flux, dtype=float))
    n = flux.shape[0]
    weighted = ivar is not None
    weight = (np.sqrt(np.clip(np.atleast_2d(np.asarray(ivar, dtype=float)), 0.0, None)) if weighted
              else np.ones_like(flux))
    out: dict[str, dict[str, np.ndarray]] = {"shared": {k: np.full(n, np.nan) for k in SHARED_KEYS}}
    out["shared"]["at_bound"] = np.full(n, "", dtype=object)
    for start in range(0, n, _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, n))
        profile, hits = _fit_profile(wl, flux[rows], weight[rows], instrumental_sigma, rows, out["shared"])
        for cx in complexes:
            if covers(wl, cx):
                res = out.setdefault(cx.name, _empty(cx, n))
                hits = hits + _fit_complex(wl, flux[rows], weight[rows], cx, profile, instrumental_sigma,
                                           weighted, rows, res)
        out["shared"]["at_bound"][rows] = [";".join(sorted(h)) for h in hits]
    return out


def _empty(cx: LineComplex, n: int) -> dict[str, np.ndarray]:
    res = {k: np.full(n, np.nan) for k in COMPLEX_KEYS}
    res["broad_at_bound"] = np.zeros(n, dtype=bool)
    res["narrow_at_bound"] = np.zeros(n, dtype=bool)
    for j in range(cx.n_free_flux):
        for k in ("flux_narrow", "flux_narrow_err", "continuum"):
            res[f"{k}_{j}"] = np.full(n, np.nan)
    return res


def _usable(wl: np.ndarray, weight: np.ndarray, cx: LineComplex, n_params: int) -> tuple[np.ndarray, np.ndarray]:
    window = (wl >= cx.lo) & (wl <= cx.hi)
    n_good = (weight[:, window] > 0).sum(axis=1)
    return n_good >= max(MIN_GOOD_FRACTION * window.sum(), n_params + 10), n_good


def _fit_profile(wl, flux, weight, inst, rows, shared) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: the shared narrow profile (n, 5) in the order of :data:`SHARED` from [O III], and
    per spectrum the list of its parameters at a bound."""
    n = flux.shape[0]
    profile = np.tile(np.asarray(DEFAULT_PROFILE), (n, 1))
    hits = np.empty(n, dtype=object)
    hits[:] = [[] for _ in range(n)]
    if not covers(wl, OIII_PROFILE):
        return profile, hits
    model = LineModel(wl, (OIII_PROFILE,), (False,))
    ok, _ = _usable(wl, weight, OIII_PROFILE, len(model.names))
    if not ok.any():
        return profile, hits
    data, w = flux[ok][:, model.pixels], weight[ok][:, model.pixels]
    p, _ = model.fit(model.start(data, w), data, w)
    shape = p[:, [model.index[k] for k in SHARED]]
    profile[ok] = shape
    vc, sc, dv, sw, fw = shape.T
    at = rows[ok]
    shared["narrow_velocity"][at] = vc
    shared["wing_fraction"][at] = fw
    shared["wing_velocity"][at] = dv
    shared["wing_fwhm"][at] = FWHM_PER_SIGMA * np.sqrt(np.clip(sw**2 - inst**2, 0.0, None))
    hit = model.bounds.at_bound(p, AT_BOUND)
    has_wing = fw > 0.01
    for i, k in zip(np.flatnonzero(ok), range(ok.sum()), strict=True):
        for name in SHARED:
            on = hit[k, model.index[name]]
            if name == "wing_fraction":
                on &= fw[k] > 0.5 * WING_FRACTION[1]  # no wing (0) is an answer, not a bound
            elif name.startswith("wing"):
                on &= has_wing[k]
            if on:
                hits[i].append(name)
    return profile, hits


def narrow_basis(lam: np.ndarray, cx: LineComplex, profile: np.ndarray) -> np.ndarray:
    """The narrow lines of ``cx`` with the shared ``profile`` (n, 5), per free flux: (n, k, n_pix).

    Each row of a free flux is the sum of its lines' unit-flux profiles times their fixed factors.
    """
    vc, sc, dv, sw, fw = profile.T
    out = np.zeros((profile.shape[0], cx.n_free_flux, lam.size))
    for centre, j, factor in cx.narrow:
        core = gaussians(lam, centre, vc, sc)[0]
        wing = gaussians(lam, centre, vc + dv, sw)[0]
        out[:, j] += factor * ((1.0 - fw)[:, None] * core + fw[:, None] * wing)
    return out


class _BroadModel:
    """One complex with fixed narrow profiles: ``[c0, c1, F_0..F_{k-1}, F_b, (F_FeII), v_b, σ_b]``."""

    def __init__(self, lam: np.ndarray, cx: LineComplex) -> None:
        self.lam, self.cx = lam, cx
        self.n_lin = 2 + cx.n_free_flux
        fe = [0.0] if cx.feii else []
        inf = np.inf
        lo = [-inf] * (self.n_lin + 1) + fe + [-BROAD_VELOCITY, BROAD_SIGMA[0]]
        hi = [inf] * (self.n_lin + 1) + [inf] * len(fe) + [BROAD_VELOCITY, BROAD_SIGMA[1]]
        self.bounds = Bounds(np.array(lo), np.array(hi))
        self.n_par = len(lo)

    def components(self, v: np.ndarray, s: np.ndarray):
        """Unit-flux broad line and Fe II (or None) at velocities ``v`` and σ ``s`` (shape (m,)),
        with their derivatives: ((g, g_v, g_s), (fe, fe_v, fe_s) or None), each (m, n_pix)."""
        broad = gaussians(self.lam, self.cx.broad_centre, v, s)
        if not self.cx.feii:
            return broad, None
        fe = [np.zeros((v.size, self.lam.size)) for _ in range(3)]
        for centre, strength in self.cx.feii:
            g, g_v, g_s = gaussians(self.lam, centre, v, FEII_WIDTH_RATIO * s)
            fe[0] += strength * g
            fe[1] += strength * g_v
            fe[2] += strength * FEII_WIDTH_RATIO * g_s
        return broad, fe

    def evaluate(self, p: np.ndarray, basis: np.ndarray):
        """Model (n, n_pix) and transposed Jacobian (n, n_par, n_pix) at physical ``p`` given the
        linear basis (n, n_lin, n_pix) (continuum and narrow lines)."""
        k = self.n_lin
        model = np.einsum("sl,sln->sn", p[:, :k], basis)
        jac = np.empty((p.shape[0], self.n_par, self.lam.size))
        jac[:, :k] = basis
        (g, g_v, g_s), fe = self.components(p[:, -2], p[:, -1])
        fb = p[:, k, None]
        model += fb * g
        jac[:, k], jac[:, -2], jac[:, -1] = g, fb * g_v, fb * g_s
        if fe is not None:
            ffe = p[:, k + 1, None]
            model += ffe * fe[0]
            jac[:, k + 1] = fe[0]
            jac[:, -2] += ffe * fe[1]
            jac[:, -1] += ffe * fe[2]
        return model, jac


def _solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve stacked normal equations, with a tiny ridge so that a column the data do not constrain
    (a line outside the good pixels) gets 0 rather than an error."""
    ridge = 1e-12 * np.einsum("...ii->...", a)[..., None, None] * np.eye(a.shape[-1]) + 1e-300
    return np.linalg.solve(a + ridge, b[..., None])[..., 0]


def _fit_complex(wl, flux, weight, cx, profile, inst, weighted, rows, res) -> np.ndarray:
    """Step 2 for one complex: narrow-only (exact) and narrow + broad (grid, then LM); fills
    ``res`` at ``rows`` and returns per spectrum the list of parameters at a bound."""
    n = flux.shape[0]
    hits = np.empty(n, dtype=object)
    hits[:] = [[] for _ in range(n)]
    bm = _BroadModel(wl[(wl >= cx.lo) & (wl <= cx.hi)], cx)
    ok, n_good = _usable(wl, weight, cx, bm.n_par)
    res["good_pixels"][rows] = n_good
    if not ok.any():
        return hits
    sel = (wl >= cx.lo) & (wl <= cx.hi)
    d, w = flux[ok][:, sel], weight[ok][:, sel]
    n_good = n_good[ok]
    lam = bm.lam
    mid = 0.5 * (cx.lo + cx.hi)
    x = (lam - mid) / 100.0
    m = d.shape[0]
    basis = np.concatenate([np.broadcast_to(np.stack([np.ones_like(x), x]), (m, 2, lam.size)),
                            narrow_basis(lam, cx, profile[ok])], axis=1)
    W = w * w
    Wd = W * d
    dwd = np.einsum("sn,sn->s", Wd, d)
    bw = basis * W[:, None, :]
    a00 = np.matmul(bw, basis.transpose(0, 2, 1))
    r0 = np.einsum("sln,sn->sl", basis, Wd)
    # narrow only: linear, exact
    sol0 = _solve_spd(a00, r0)
    chi2_null = np.maximum(dwd - np.einsum("sl,sl->s", r0, sol0), 0.0)
    # narrow + broad: the linear parameters solved at every point of the (velocity, σ) grid
    vg, sg = (a.ravel() for a in np.meshgrid(VELOCITY_GRID, SIGMA_GRID))
    (g, _, _), fe = bm.components(vg, sg)
    cols = np.stack([g] + ([fe[0]] if fe is not None else []))  # (c, G, n_pix)
    nc, ng = cols.shape[:2]
    flat = cols.reshape(nc * ng, lam.size)
    a0c = (bw.reshape(-1, lam.size) @ flat.T).reshape(m, bm.n_lin, nc, ng).transpose(0, 3, 1, 2)
    acc = np.stack([np.stack([W @ (cols[i] * cols[j]).T for j in range(nc)], axis=-1) for i in range(nc)], axis=-2)
    rc = (Wd @ flat.T).reshape(m, nc, ng).transpose(0, 2, 1)
    size = bm.n_lin + nc
    a = np.empty((m, ng, size, size))
    a[:, :, : bm.n_lin, : bm.n_lin] = a00[:, None]
    a[:, :, : bm.n_lin, bm.n_lin :] = a0c
    a[:, :, bm.n_lin :, : bm.n_lin] = a0c.transpose(0, 1, 3, 2)
    a[:, :, bm.n_lin :, bm.n_lin :] = acc
    rhs = np.concatenate([np.broadcast_to(r0[:, None], (m, ng, bm.n_lin)), rc], axis=2)
    sol = _solve_spd(a, rhs)
    best = np.argmin(dwd[:, None] - np.einsum("sgl,sgl->sg", rhs, sol), axis=1)
    p0 = np.empty((m, bm.n_par))
    p0[:, :size] = sol[np.arange(m), best]
    if fe is not None:  # t = √F has a zero Jacobian column at 0: start a little above it
        p0[:, bm.n_lin + 1] = np.maximum(p0[:, bm.n_lin + 1], 1e-3 * np.abs(p0[:, 0]) + 1e-6)
    p0[:, -2], p0[:, -1] = vg[best], sg[best]

    def evaluate(t, idx):
        model, jac = bm.evaluate(bm.bounds.phys(t), basis[idx])
        jac *= w[idx][:, None, :]
        jac *= bm.bounds.dphys(t)[:, :, None]
        return w[idx] * (model - d[idx]), jac

    t, chi2_full, _ = levenberg_marquardt(evaluate, bm.bounds.free(p0), max_iter=100, ftol=1e-6)
    p = bm.bounds.phys(t)
    chi2_b = np.minimum(chi2_full, chi2_null)
    dof_full = n_good - bm.n_par - 5  # the 5 profile parameters, fitted on [O III]
    s2 = _scale(chi2_b, dof_full, weighted)
    delta_bic = (chi2_null - chi2_b) / s2 - (bm.n_par - bm.n_lin) * np.log(n_good)
    use = delta_bic > 0
    jac = bm.evaluate(p, basis)[1] * w[:, None, :]
    cov = np.linalg.pinv(np.matmul(jac, jac.transpose(0, 2, 1)), hermitian=True) * s2[:, None, None]
    err = np.sqrt(np.clip(np.einsum("spp->sp", cov), 0.0, None))
    s2_null = _scale(chi2_null, n_good - bm.n_lin - 5, weighted)
    err0 = np.sqrt(np.clip(np.einsum("spp->sp", np.linalg.pinv(a00, hermitian=True)), 0.0, None) * s2_null[:, None])

    at = rows[ok]
    k = bm.n_lin
    sb, fb, fb_err = p[:, -1], p[:, k], err[:, k]
    intrinsic = np.sqrt(np.clip(sb**2 - inst**2, 0.0, None))
    res["fwhm_broad"][at] = FWHM_PER_SIGMA * intrinsic
    res["fwhm_broad_err"][at] = FWHM_PER_SIGMA * sb * err[:, -1] / np.maximum(intrinsic, 1e-9)
    res["velocity_broad"][at] = p[:, -2]
    res["flux_broad"][at] = np.where(use, fb, 0.0)
    res["flux_broad_err"][at] = fb_err
    res["broad_snr"][at] = np.divide(fb, fb_err, out=np.zeros_like(fb), where=fb_err > 0)
    res["delta_bic"][at] = delta_bic
    core = profile[ok, 1]
    res["fwhm_narrow"][at] = FWHM_PER_SIGMA * np.sqrt(np.clip(core**2 - inst**2, 0.0, None))
    if cx.feii:
        res["feii_flux"][at] = np.where(use, p[:, k + 1], 0.0)
    lo, hi = BROAD_SIGMA
    res["broad_at_bound"][at] = (sb - lo <= AT_BOUND * (hi - lo)) | (hi - sb <= AT_BOUND * (hi - lo))
    lo, hi = NARROW_SIGMA
    res["narrow_at_bound"][at] = (core - lo <= AT_BOUND * (hi - lo)) | (hi - core <= AT_BOUND * (hi - lo))
    lin = np.where(use[:, None], p[:, :k], sol0)
    lin_err = np.where(use[:, None], err[:, :k], err0)
    for j in range(cx.n_free_flux):
        res[f"flux_narrow_{j}"][at] = lin[:, 2 + j]
        res[f"flux_narrow_err_{j}"][at] = lin_err[:, 2 + j]
        res[f"continuum_{j}"][at] = lin[:, 0] + lin[:, 1] * (cx.primary(j) - mid) / 100.0
    positive = np.where(use, np.clip(fb, 0.0, None), 0.0)
    total = lin[:, 2] + positive
    res["broad_fraction"][at] = np.divide(positive, total, out=np.zeros_like(total), where=total > 0)
    hit = bm.bounds.at_bound(p, AT_BOUND) & use[:, None]
    for i, row in zip(np.flatnonzero(ok), hit, strict=True):
        if row[-2]:
            hits[i].append(f"{cx.name}_broad_velocity")
        if row[-1]:
            hits[i].append(f"{cx.name}_broad_sigma")
    return hits


def _scale(chi2: np.ndarray, dof: np.ndarray, weighted: bool) -> np.ndarray:
    """χ² / dof, at least 1 when the pixels carry their inverse variance (``weighted``)."""
    s2 = chi2 / np.maximum(dof, 1)
    return np.maximum(s2, 1.0 if weighted else np.finfo(float).tiny)
