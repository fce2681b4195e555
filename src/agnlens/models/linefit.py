"""Wing-aware fits of the Hβ and Hα line complexes of many spectra at once.

:func:`fit_lines` fits a whole batch of rest-frame, normalised spectra in two steps, each for all
spectra together (the model is :mod:`agnlens.models.linemodel`'s):

1. **The narrow profile from [O III]**: a core + wing Gaussian profile of [O III] 4960/5008 over
   4935–5060 Å (quadratic continuum, and Fe II 4925/5020 at a typical width, which the wing would
   otherwise take for an outflow), by :func:`agnlens.models.lm.levenberg_marquardt` with an
   analytic Jacobian; the wing is kept only where it lowers the BIC of the one-Gaussian profile by
   :data:`WING_MIN_DELTA_BIC`. Every narrow line takes this profile ("tied to [O III]": the wing's
   velocity, width and share exactly, the core within :data:`CORE_OFFSET` km/s and a factor
   :data:`CORE_RATIO`), so a narrow-line wing in Hβ or Hα cannot pass for a broad line.
2. **Each complex with and without its broad line**: Hβ + [O III] (4640–5080 Å, with Fe II
   4668/4925/5020 at rest with :data:`FEII_WIDTH_RATIO` of the broad width) and, where the grid
   covers it, Hα + [N II] + [O I] 6302/6365 (6200–6690 Å), over a linear continuum (quadratic for
   Hα, whose window is wide enough for a host continuum to bend in it). The broad line's velocity
   (±8,000 km/s) and width (FWHM 1,000–20,020 km/s) are first searched on a grid — the linear
   parameters (continuum, fluxes) solved exactly at every grid point, for every spectrum, through
   Schur complements of one normal matrix per spectrum — and the best emission line (and, where the
   grid prefers one, the best absorption trough at rest) refined by Levenberg–Marquardt. The grid makes the
   fit nearly global: no local minimum between the [N II] lines for want of a better start.

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
    AT_BOUND,
    BROAD_SIGMA,
    BROAD_VELOCITY,
    COMPLEXES,
    FEII_WIDTH_RATIO,
    FWHM_PER_SIGMA,
    HALPHA,
    HBETA,
    MIN_GOOD_FRACTION,
    NARROW_SIGMA,
    OIII_PROFILE,
    SHARED,
    WING_FRACTION,
    LineComplex,
    LineModel,
    covers,
    gaussians,
)
from agnlens.models.lm import Bounds, grid_solutions, grid_terms, levenberg_marquardt, solve_normal

__all__ = [
    "BROAD_SIGMA", "COMPLEX_KEYS", "FWHM_PER_SIGMA", "HALPHA", "HBETA", "LineComplex", "MIN_GOOD_FRACTION",
    "SHARED_KEYS", "covers", "fit_lines", "wing_basis",
]

#: Per-complex outputs of :func:`fit_lines` (besides ``flux_narrow_<j>``, ``flux_narrow_err_<j>``,
#: ``continuum_<j>``), and the shared narrow-profile ones.
COMPLEX_KEYS = ("fwhm_broad", "fwhm_broad_err", "velocity_broad", "flux_broad", "flux_broad_err", "broad_snr",
                "broad_fraction", "delta_bic", "fwhm_narrow", "feii_flux", "broad_at_bound", "narrow_at_bound",
                "good_pixels")
SHARED_KEYS = ("narrow_velocity", "narrow_fwhm", "wing_fraction", "wing_fwhm", "wing_velocity", "at_bound")

#: The broad-line search grid: σ (km/s, log-spaced) × velocity (km/s).
SIGMA_GRID = np.geomspace(430.0, 8000.0, 17)
VELOCITY_GRID = np.arange(-6000.0, 6001.0, 500.0)
#: A broad absorption trough (the host galaxy's Balmer absorption) lies within this velocity (km/s)
#: of the narrow lines; a negative broad component farther off is the shape of a broad emission
#: line the window cannot hold, not absorption.
TROUGH_VELOCITY = 1000.0
#: A complex's narrow core may lie this far (km/s) from [O III]'s velocity ...
CORE_OFFSET = 200.0
#: ... and be up to this factor narrower or broader.
CORE_RATIO = 1.5
#: Least ΔBIC for a wing on [O III] (else the narrow profile is one Gaussian).
WING_MIN_DELTA_BIC = 10.0
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
        its equivalent width). Under ``"shared"``: ``narrow_velocity``, ``narrow_fwhm`` ([O III]'s
        core, intrinsic), ``wing_fraction`` (wing / total narrow flux), ``wing_fwhm`` (intrinsic),
        ``wing_velocity`` (relative to the core) —
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
        profile, hits = _fit_profile(wl, flux[rows], weight[rows], instrumental_sigma, weighted, rows, out["shared"])
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


def _as_winged(q: np.ndarray, plain: LineModel, model: LineModel) -> np.ndarray:
    """A no-wing fit's parameters placed in the winged model (the wing parameters at mid-range)."""
    p = np.tile(0.5 * (np.nan_to_num(model.bounds.lo, neginf=0.0) + np.nan_to_num(model.bounds.hi, posinf=0.0)),
                (q.shape[0], 1))
    for name, i in plain.index.items():
        p[:, model.index[name]] = q[:, i]
    return p


def _fit_profile(wl, flux, weight, inst, weighted, rows, shared) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: the shared narrow profile (n, 5) in the order of :data:`SHARED` from [O III], and
    per spectrum the list of its parameters at a bound."""
    n = flux.shape[0]
    profile = np.tile(np.asarray(DEFAULT_PROFILE), (n, 1))
    hits = np.empty(n, dtype=object)
    hits[:] = [[] for _ in range(n)]
    if not covers(wl, OIII_PROFILE):
        return profile, hits
    model = LineModel(wl, (OIII_PROFILE,))
    ok, n_good = _usable(wl, weight, OIII_PROFILE, len(model.names))
    if not ok.any():
        return profile, hits
    data, w = flux[ok][:, model.pixels], weight[ok][:, model.pixels]
    p, chi2 = model.fit(model.start(data, w), data, w)
    # the wing only where [O III] asks for it (ΔBIC): a wing fitted to noise would make every
    # narrow flux uncertain by more than its error says
    plain = LineModel(wl, (OIII_PROFILE,), wing=False)
    q, chi2_plain = plain.fit(plain.start(data, w), data, w)
    n_good = n_good[ok]
    s2 = _scale(np.minimum(chi2, chi2_plain), n_good - len(model.names), weighted)
    extra = len(model.names) - len(plain.names)
    has_wing = (chi2_plain - np.minimum(chi2, chi2_plain)) / s2 - extra * np.log(n_good) >= WING_MIN_DELTA_BIC
    shape = np.where(has_wing[:, None], model.profile(p), plain.profile(q))
    profile[ok] = shape
    vc, sc, dv, sw, fw = shape.T
    at = rows[ok]
    shared["narrow_velocity"][at] = vc
    shared["narrow_fwhm"][at] = FWHM_PER_SIGMA * np.sqrt(np.clip(sc**2 - inst**2, 0.0, None))
    shared["wing_fraction"][at] = fw
    shared["wing_velocity"][at] = np.where(has_wing, dv, np.nan)
    shared["wing_fwhm"][at] = np.where(has_wing, FWHM_PER_SIGMA * np.sqrt(np.clip(sw**2 - inst**2, 0.0, None)), np.nan)
    hit = np.where(has_wing[:, None], model.bounds.at_bound(p, AT_BOUND),
                   model.bounds.at_bound(_as_winged(q, plain, model), AT_BOUND))
    for i, k in zip(np.flatnonzero(ok), range(ok.sum()), strict=True):
        for name in SHARED:
            on = hit[k, model.index[name]]
            if name == "wing_fraction":
                on &= fw[k] > 0.5 * WING_FRACTION[1]  # no wing (0) is an answer, not a bound
            elif name.startswith("wing"):
                on &= bool(has_wing[k])
            if on:
                hits[i].append(name)
    return profile, hits


def wing_basis(lam: np.ndarray, cx: LineComplex, profile: np.ndarray) -> np.ndarray:
    """The narrow lines' wings of ``cx`` with the shared ``profile`` (n, 5), per free flux:
    (n, k, n_pix) — each line's wing Gaussian times the wing fraction and the line's fixed factor."""
    vc, sc, dv, sw, fw = profile.T
    out = np.zeros((profile.shape[0], cx.n_free_flux, lam.size))
    for centre, j, factor in cx.narrow:
        out[:, j] += factor * fw[:, None] * gaussians(lam, centre, vc + dv, sw, False)
    return out


class _ComplexModel:
    """One complex: ``[c0..c_order, F_0..F_{k-1}, (F_b, (F_FeII)), v_n, σ_n, (v_b, σ_b)]``.

    The narrow lines' wings (velocity offset, width, share) are fixed from [O III] (``wing``, the
    wing part of each free flux's lines, and ``core_share``, 1 − the wing fraction); the core's
    velocity and width are tied to [O III]'s (``core``: (n, 2)) within :data:`CORE_OFFSET` km/s
    and a factor :data:`CORE_RATIO`, so that a Balmer core a little broader or shifted from
    [O III]'s is not taken for a broad line, nor can the core take a broad line's peak. ``v_n`` is
    the offset from [O III]'s core velocity, ``σ_n`` the ratio to its width.
    """

    def __init__(self, lam: np.ndarray, cx: LineComplex, broad: bool, wing: np.ndarray, core_share: np.ndarray,
                 core: np.ndarray):
        self.lam, self.cx, self.broad = lam, cx, broad
        self.core = core
        self.x = (lam - 0.5 * (cx.lo + cx.hi)) / 100.0
        self.wing, self.core_share = wing, core_share
        self.n_cont = cx.continuum_order + 1
        self.n_lin = self.n_cont + cx.n_free_flux
        self.n_bflux = (1 + bool(cx.feii)) if broad else 0
        self.i_narrow = self.n_lin + self.n_bflux
        inf = np.inf
        lo = [-inf] * (self.n_lin + bool(broad)) + ([0.0] if broad and cx.feii else [])
        hi = [inf] * len(lo)
        lo += [-CORE_OFFSET, 1.0 / CORE_RATIO]
        hi += [CORE_OFFSET, CORE_RATIO]
        if broad:
            lo += [-BROAD_VELOCITY, BROAD_SIGMA[0]]
            hi += [BROAD_VELOCITY, BROAD_SIGMA[1]]
        self.bounds = Bounds(np.array(lo), np.array(hi))
        self.n_par = len(lo)
        self.n_extra = self.n_par - self.n_lin - 2  # the broad line's parameters

    def narrow(self, offset: np.ndarray, ratio: np.ndarray, rows: np.ndarray, flux: np.ndarray | None = None):
        """The linear basis (n, n_lin, n_pix) — continuum and narrow lines (core at [O III]'s
        velocity + ``offset`` with ``ratio`` × its width, plus the fixed wing) — and, given the
        free fluxes ``flux`` (n, k), the narrow lines' derivatives with respect to ``offset`` and
        ``ratio`` (n, n_pix each; else None)."""
        v = self.core[rows, 0] + offset
        s0 = self.core[rows, 1]
        s = s0 * ratio
        n = v.size
        basis = np.empty((n, self.n_lin, self.lam.size))
        for order in range(self.n_cont):
            basis[:, order] = self.x**order
        basis[:, self.n_cont :] = self.wing[rows]
        d_v = d_s = None
        if flux is not None:
            d_v, d_s = np.zeros((n, self.lam.size)), np.zeros((n, self.lam.size))
        share = self.core_share[rows]
        for centre, j, factor in self.cx.narrow:
            if flux is None:
                basis[:, self.n_cont + j] += (factor * share)[:, None] * gaussians(self.lam, centre, v, s, False)
                continue
            g, g_v, g_s = gaussians(self.lam, centre, v, s)
            basis[:, self.n_cont + j] += (factor * share)[:, None] * g
            amp = factor * share * flux[:, j]
            g_v *= amp[:, None]
            d_v += g_v
            g_s *= (amp * s0)[:, None]
            d_s += g_s
        return basis, d_v, d_s

    def components(self, v: np.ndarray, s: np.ndarray):
        """Unit-flux broad line at velocities ``v`` and σ ``s`` (shape (m,)) and Fe II (or None) at
        rest with σ :data:`FEII_WIDTH_RATIO` × ``s``, with their derivatives with respect to ``v``
        and ``s``: ((g, g_v, g_s), (fe, fe_s) or None), each (m, n_pix) (Fe II, at rest, does not
        depend on ``v``)."""
        if self.cx.broad_centre is None:
            raise ValueError(f"line complex {self.cx.name!r} has no broad line to model")
        broad = gaussians(self.lam, self.cx.broad_centre, v, s)
        if not self.cx.feii:
            return broad, None
        # Fe II at the systemic velocity: tied to a broad line thousands of km/s off, its 4925 Å
        # line would be moved onto Hβ and take its place
        fe = np.zeros((v.size, self.lam.size))
        fe_s = np.zeros((v.size, self.lam.size))
        for centre, strength in self.cx.feii:
            g, _, g_s = gaussians(self.lam, centre, np.zeros_like(v), FEII_WIDTH_RATIO * s)
            g *= strength
            fe += g
            g_s *= strength * FEII_WIDTH_RATIO
            fe_s += g_s
        return broad, (fe, fe_s)

    def evaluate(self, p: np.ndarray, rows: np.ndarray):
        """Model (n, n_pix) and transposed Jacobian (n, n_par, n_pix) at physical ``p`` of spectra ``rows``."""
        k, i = self.n_lin, self.i_narrow
        basis, d_v, d_s = self.narrow(p[:, i], p[:, i + 1], rows, p[:, self.n_cont : k])
        model = np.einsum("sl,sln->sn", p[:, :k], basis)
        jac = np.empty((p.shape[0], self.n_par, self.lam.size))
        jac[:, :k] = basis
        jac[:, i], jac[:, i + 1] = d_v, d_s
        if self.broad:
            (g, g_v, g_s), fe = self.components(p[:, -2], p[:, -1])
            fb = p[:, k, None]
            model += fb * g
            jac[:, k], jac[:, -2], jac[:, -1] = g, fb * g_v, fb * g_s
            if fe is not None:
                ffe = p[:, k + 1, None]
                model += ffe * fe[0]
                jac[:, k + 1] = fe[0]
                jac[:, -1] += ffe * fe[1]
        return model, jac

    def fit(self, p0: np.ndarray, data: np.ndarray, w: np.ndarray, spectra: np.ndarray):
        """Weighted least squares from the physical start ``p0`` of the model's ``spectra`` (indices
        into its per-spectrum profiles; ``data`` and ``w`` are theirs): (p, χ², 1 σ errors unscaled)."""
        bounds = self.bounds

        def evaluate(t, rows):
            model, jac = self.evaluate(bounds.phys(t), spectra[rows])
            jac *= w[rows][:, None, :]
            jac *= bounds.dphys(t)[:, :, None]
            return w[rows] * (model - data[rows]), jac

        t, chi2, _ = levenberg_marquardt(evaluate, bounds.free(p0), max_iter=100, ftol=1e-6)
        p = bounds.phys(t)
        jac = self.evaluate(p, spectra)[1] * w[:, None, :]
        var = np.einsum("spp->sp", np.linalg.pinv(np.matmul(jac, jac.transpose(0, 2, 1)), hermitian=True))
        return p, chi2, np.sqrt(np.clip(var, 0.0, None))


def _fit_complex(wl, flux, weight, cx, profile, inst, weighted, rows, res) -> np.ndarray:
    """Step 2 for one complex: narrow-only and narrow + broad (started from the best point of a
    grid of broad velocities and widths); fills ``res`` at ``rows`` and returns per spectrum the
    list of parameters at a bound."""
    n = flux.shape[0]
    hits = np.empty(n, dtype=object)
    hits[:] = [[] for _ in range(n)]
    sel = (wl >= cx.lo) & (wl <= cx.hi)
    lam = wl[sel]
    ok, n_good = _usable(wl, weight, cx, cx.continuum_order + 1 + cx.n_free_flux + 6)
    res["good_pixels"][rows] = n_good
    if not ok.any():
        return hits
    d, w = flux[ok][:, sel], weight[ok][:, sel]
    n_good = n_good[ok]
    m = d.shape[0]
    prof = profile[ok]
    wing = wing_basis(lam, cx, prof)
    null = _ComplexModel(lam, cx, False, wing, 1.0 - prof[:, 4], prof[:, :2])
    full = _ComplexModel(lam, cx, True, wing, 1.0 - prof[:, 4], prof[:, :2])
    everyone = np.arange(m)
    W = w * w
    Wd = W * d
    dwd = np.einsum("sn,sn->s", Wd, d)
    k = null.n_lin

    def normal(basis):
        bw = basis * W[:, None, :]
        return bw, np.matmul(bw, basis.transpose(0, 2, 1)), np.einsum("sln,sn->sl", basis, Wd)

    # narrow only: the linear parameters for the narrow lines as [O III] has them, then all refined
    _, a00, r0 = normal(null.narrow(np.zeros(m), np.ones(m), everyone)[0])
    p_null = np.concatenate([solve_normal(a00, r0), np.zeros((m, 1)), np.ones((m, 1))], axis=1)
    p_null, chi2_null, err_null = null.fit(p_null, d, w, everyone)
    # the broad start: the linear parameters solved at every point of a (velocity, σ) grid of the
    # broad line, for the narrow cores as [O III] has them and as the narrow-only fit left them
    # (which may have widened to swallow a broad line) — the best point over both; so the start is
    # never worse than the narrow-only fit where the best broad line is an emission line
    vg, sg = (a.ravel() for a in np.meshgrid(VELOCITY_GRID, SIGMA_GRID))
    (g, _, _), fe = full.components(vg, sg)
    terms = grid_terms(np.stack([g] + ([fe[0]] if fe is not None else [])), W, Wd)
    # two starts: the best emission line, and the best broad component of either sign (a trough:
    # the host's Balmer absorption) where that fits better; the fit from each, the better kept
    starts = np.empty((2, m, full.n_par))
    best_chi2 = np.full((2, m), np.inf)
    for narrow0 in (np.stack([np.zeros(m), np.ones(m)], axis=1), p_null[:, k : k + 2]):
        basis = null.narrow(narrow0[:, 0], narrow0[:, 1], everyone)[0]
        sol, chi2_grid = grid_solutions(terms, dwd, *normal(basis))
        # Fe II ≥ 0 in the fit: grid points with negative Fe II are no start
        fe_ok = sol[:, :, k + 1] >= 0 if fe is not None else np.ones(sol.shape[:2], dtype=bool)
        fe_ok |= ~fe_ok.any(axis=1, keepdims=True)
        at_rest = np.abs(vg) <= TROUGH_VELOCITY
        for which, allowed in enumerate((fe_ok & (sol[:, :, k] > 0), fe_ok & ((sol[:, :, k] > 0) | at_rest))):
            allowed = allowed | ~allowed.any(axis=1, keepdims=True)
            chi2_allowed = np.where(allowed, chi2_grid, np.inf)
            best = np.argmin(chi2_allowed, axis=1)
            better = chi2_allowed[everyone, best] < best_chi2[which]
            best_chi2[which, better] = chi2_allowed[everyone, best][better]
            size = sol.shape[2]
            starts[which, better, :size] = sol[everyone, best][better]
            starts[which, better, size : size + 2] = narrow0[better]
            starts[which, better, -2], starts[which, better, -1] = vg[best][better], sg[best][better]
    if fe is not None:  # t = √F has a zero Jacobian column at 0: start a little above it
        starts[:, :, k + 1] = np.maximum(starts[:, :, k + 1], 1e-3 * np.abs(starts[:, :, 0]) + 1e-6)
    p, chi2_full, err = full.fit(starts[0], d, w, everyone)
    trough = np.flatnonzero(best_chi2[1] < best_chi2[0])
    if trough.size:
        p1, chi2_1, err1 = full.fit(starts[1, trough], d[trough], w[trough], trough)
        # a trough is the host's absorption, at rest: one the fit moved far off is no answer, nor
        # one pinned at the narrowest width (there it trades depth for the narrow line's flux)
        absorption = (np.abs(p1[:, -2]) <= TROUGH_VELOCITY) & ~_near(p1[:, -1], BROAD_SIGMA)
        better = (chi2_1 < chi2_full[trough]) & ((p1[:, k] >= 0) | absorption)
        idx = trough[better]
        p[idx], chi2_full[idx], err[idx] = p1[better], chi2_1[better], err1[better]

    chi2_b = np.minimum(chi2_full, chi2_null)
    n_profile = 3  # the wing's velocity, width and share, fitted on [O III]
    s2 = _scale(chi2_b, n_good - full.n_par - n_profile, weighted)
    delta_bic = (chi2_null - chi2_b) / s2 - full.n_extra * np.log(n_good)
    use = delta_bic > 0
    err = err * np.sqrt(s2)[:, None]
    err_null = err_null * np.sqrt(_scale(chi2_null, n_good - null.n_par - n_profile, weighted))[:, None]

    at = rows[ok]
    sb, fb, fb_err = p[:, -1], p[:, k], err[:, k]
    intrinsic = np.sqrt(np.clip(sb**2 - inst**2, 0.0, None))
    res["fwhm_broad"][at] = FWHM_PER_SIGMA * intrinsic
    res["fwhm_broad_err"][at] = FWHM_PER_SIGMA * sb * err[:, -1] / np.maximum(intrinsic, 1e-9)
    res["velocity_broad"][at] = p[:, -2]
    res["flux_broad"][at] = np.where(use, fb, 0.0)
    res["flux_broad_err"][at] = fb_err
    res["broad_snr"][at] = np.divide(fb, fb_err, out=np.zeros_like(fb), where=fb_err > 0)
    res["delta_bic"][at] = delta_bic
    if cx.feii:
        res["feii_flux"][at] = np.where(use, p[:, k + 1], 0.0)
    # the narrow lines from the model the evidence prefers
    narrow = np.where(use[:, None], p[:, full.i_narrow : full.i_narrow + 2], p_null[:, k : k + 2])
    lin = np.where(use[:, None], p[:, :k], p_null[:, :k])
    lin_err = np.where(use[:, None], err[:, :k], err_null[:, :k])
    core = narrow[:, 1] * prof[:, 1]
    res["fwhm_narrow"][at] = FWHM_PER_SIGMA * np.sqrt(np.clip(core**2 - inst**2, 0.0, None))
    res["broad_at_bound"][at] = _near(sb, BROAD_SIGMA)
    res["narrow_at_bound"][at] = _near(core, NARROW_SIGMA)
    mid = 0.5 * (cx.lo + cx.hi)
    nc = full.n_cont
    for j in range(cx.n_free_flux):
        # an emission line's flux: a fit below 0 (the host's absorption under it) is no line
        res[f"flux_narrow_{j}"][at] = np.maximum(lin[:, nc + j], 0.0)
        res[f"flux_narrow_err_{j}"][at] = lin_err[:, nc + j]
        xj = (cx.primary(j) - mid) / 100.0
        res[f"continuum_{j}"][at] = sum(lin[:, order] * xj**order for order in range(nc))
    positive = np.where(use, np.clip(fb, 0.0, None), 0.0)
    total = np.maximum(lin[:, nc], 0.0) + positive
    res["broad_fraction"][at] = np.divide(positive, total, out=np.zeros_like(total), where=total > 0)
    names = {f"{cx.name}_narrow_offset": _near(narrow[:, 0], (-CORE_OFFSET, CORE_OFFSET)),
             f"{cx.name}_narrow_ratio": _near(narrow[:, 1], (1.0 / CORE_RATIO, CORE_RATIO)),
             f"{cx.name}_broad_velocity": use & _near(p[:, -2], (-BROAD_VELOCITY, BROAD_VELOCITY)),
             f"{cx.name}_broad_sigma": use & _near(sb, BROAD_SIGMA)}
    for i, r in enumerate(np.flatnonzero(ok)):
        hits[r].extend(name for name, on in names.items() if on[i])
    return hits


def _near(value: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Within :data:`AT_BOUND` of the range from either end."""
    lo, hi = bounds
    return (value - lo <= AT_BOUND * (hi - lo)) | (hi - value <= AT_BOUND * (hi - lo))


def _scale(chi2: np.ndarray, dof: np.ndarray, weighted: bool) -> np.ndarray:
    """χ² / dof, at least 1 when the pixels carry their inverse variance (``weighted``)."""
    s2 = chi2 / np.maximum(dof, 1)
    return np.maximum(s2, 1.0 if weighted else np.finfo(float).tiny)
