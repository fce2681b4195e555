"""Redshift check: do the narrow lines sit where the catalogue redshift puts them?

A spectrum placed at the wrong redshift is explained as if its lines were missing. This module
measures the velocity offset of the narrow emission lines ([O II], [Ne III], Hβ, [O III], Hα,
[N II]) from their expected rest wavelengths, in two steps:

1. the continuum (and most of any broad line) is removed with a running median ``MEDIAN_KMS`` wide;
   the residual is cross-correlated, weighted by the inverse variance, with a template of narrow
   Gaussians at the lines' rest wavelengths over ±``SEARCH_KMS``;
2. around the correlation peak every line is fitted with a Gaussian on a straight continuum
   (:func:`scipy.optimize.curve_fit`); the lines detected at ≥ ``MIN_LINE_SNR`` σ give one velocity
   each, and the offset is their inverse-variance mean with an error that also covers their scatter.

:func:`check_batch` does both steps for many spectra on one grid at once (the correlation as one
matrix product, every line of every spectrum fitted together by a vectorised Levenberg–Marquardt
with analytic derivatives); :func:`check_redshift`, one spectrum with :func:`scipy.optimize.curve_fit`,
is its reference. :func:`check_set` uses the batched one.

Velocities are ``c ln(λ_measured / λ_expected)``, positive when the lines are redder than the
redshift says; the corrected redshift is ``(1 + z) exp(Δv / c) - 1`` (:func:`corrected_z`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from agnlens.lines import C_KMS, line

#: Narrow lines used, with template weights (typical relative strengths in AGN).
NARROW_LINES = {
    "OII_3727": 0.25, "OII_3730": 0.25, "NeIII_3870": 0.15, "Hbeta": 0.3, "OIII_4960": 0.33,
    "OIII_5008": 1.0, "NII_6550": 0.2, "Halpha": 1.0, "NII_6585": 0.6,
}
#: Lines fitted one by one (Å); the [O II] 3727/3730 doublet is unresolved at SDSS resolution and is
#: fitted as one line at its mean wavelength.
FITTED_LINES = {
    "OII_3727+3730": 3728.48, **{n: line(n).wavelength for n in NARROW_LINES if not n.startswith("OII")},
}
#: Half-width (km/s) of the window fitted around each line, centred on the correlation peak.
FIT_HALF_WIDTH_KMS = 1200.0
#: A fitted line centre further than this from the correlation peak is not used (km/s).
MAX_SHIFT_FROM_PEAK_KMS = 600.0
#: Width of the running median that removes continuum and broad lines (km/s).
MEDIAN_KMS = 3000.0
#: Cross-correlation search range ± (km/s) and step.
SEARCH_KMS = 8000.0
STEP_KMS = 40.0
#: Template line width (Gaussian sigma, km/s): a typical narrow line at SDSS resolution.
TEMPLATE_SIGMA_KMS = 150.0
#: A line counts when its fitted amplitude is at least this many standard errors.
MIN_LINE_SNR = 5.0
#: |Δv| above this (and above 3 σ) is flagged ``redshift-offset``.
MAX_OFFSET_KMS = 500.0


@dataclass
class RedshiftCheck:
    """The narrow-line velocity offset of one spectrum.

    Attributes
    ----------
    offset_kms : float
        Δv of the narrow lines from the assumed redshift (NaN when no line was detected).
    error_kms : float
        Its 1 σ error.
    lines : list of str
        Names of the lines that gave a velocity.
    """

    offset_kms: float = np.nan
    error_kms: float = np.nan
    lines: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """|Δv| > :data:`MAX_OFFSET_KMS` and more than 3 σ from zero."""
        v, e = self.offset_kms, self.error_kms
        return bool(np.isfinite(v) and abs(v) > MAX_OFFSET_KMS and abs(v) > 3.0 * e)


def corrected_z(z: float, offset_kms: float) -> float:
    """The redshift that puts the lines at rest: ``(1 + z) exp(Δv / c) - 1``."""
    return float((1.0 + z) * np.exp(offset_kms / C_KMS) - 1.0)


def _running_median(loglam: np.ndarray, flux: np.ndarray, good: np.ndarray, width_kms: float) -> np.ndarray:
    """Running median ``width_kms`` wide (bad pixels interpolated over first); the pixel width is
    taken as the median velocity step, which is exact on log-λ grids and close on linear ones."""
    from scipy.ndimage import median_filter

    step_kms = float(np.median(np.diff(loglam))) * np.log(10.0) * C_KMS
    size = max(3, int(round(width_kms / step_kms)) | 1)
    filled = np.interp(loglam, loglam[good], flux[good])
    return median_filter(filled, size=size, mode="nearest")


@functools.lru_cache(maxsize=8)
def _templates(wl_bytes: bytes) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The cross-correlation shifts and, per narrow line the grid reaches, its pixels and its
    template at every shift — they depend on the wavelength grid only, so a set of spectra on one
    grid computes them once (they were half of the check's time)."""
    wl = np.frombuffer(wl_bytes, dtype=np.float64)
    reach = SEARCH_KMS + 5 * TEMPLATE_SIGMA_KMS
    names = [n for n in NARROW_LINES
             if wl[0] < line(n).wavelength * np.exp(-reach / C_KMS)
             and line(n).wavelength * np.exp(reach / C_KMS) < wl[-1]]
    vel = np.log(wl)[:, None]  # ln λ; the template of a line at v sits at ln λ_l + v / c
    shifts = np.arange(-SEARCH_KMS, SEARCH_KMS + STEP_KMS / 2, STEP_KMS)
    sig = TEMPLATE_SIGMA_KMS / C_KMS
    templates = []
    for n in names:
        centre = np.log(line(n).wavelength) + shifts / C_KMS
        near = np.flatnonzero(np.abs(vel[:, 0] - np.log(line(n).wavelength)) < (reach + 5 * TEMPLATE_SIGMA_KMS) / C_KMS)
        t = NARROW_LINES[n] * np.exp(-0.5 * ((vel[near] - centre[None, :]) / sig) ** 2)
        t.flags.writeable = False
        templates.append((near, t))
    return shifts, templates


def _gauss_line(x, amp, centre, sigma, c0, c1):
    return amp * np.exp(-0.5 * ((x - centre) / sigma) ** 2) + c0 + c1 * x


def check_redshift(wavelength, flux, ivar, mask=None) -> RedshiftCheck:
    """Velocity offset of the narrow lines of one rest-frame spectrum.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
        Rest-frame wavelength (Å) at the assumed redshift, increasing.
    flux, ivar : ndarray of shape (n_pixels,)
    mask : ndarray of bool, shape (n_pixels,), optional
        True where a pixel is bad (besides ``ivar == 0``).

    Returns
    -------
    RedshiftCheck
    """
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    wl = np.asarray(wavelength, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    if wl.ndim != 1 or flux.shape != wl.shape or ivar.shape != wl.shape:
        raise ValueError(
            f"check_redshift needs wavelength, flux and ivar of one shape (n_pixels,), got "
            f"{wl.shape}, {flux.shape} and {ivar.shape}"
        )
    good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar)
    if mask is not None:
        good &= ~np.asarray(mask, dtype=bool)
    shifts, templates = _templates(wl.tobytes())
    if good.sum() < 20 or not templates:
        return RedshiftCheck()
    loglam = np.log10(wl)
    resid = flux - _running_median(loglam, flux, good, MEDIAN_KMS)
    w = np.where(good & np.isfinite(resid), ivar, 0.0)
    resid = np.where(w > 0, resid, 0.0)
    num = np.zeros(shifts.size)
    den = np.zeros(shifts.size)
    for near, t in templates:
        num += (w[near, None] * resid[near, None] * t).sum(axis=0)
        den += (w[near, None] * t * t).sum(axis=0)
    ccf = np.where(den > 0, num / np.sqrt(np.maximum(den, 1e-300)), -np.inf)
    v0 = float(shifts[int(np.argmax(ccf))])

    velocities, errors, used = [], [], []
    for name, rest in FITTED_LINES.items():
        x = C_KMS * (np.log(wl) - np.log(rest))  # velocity of every pixel relative to this line
        sel = good & (np.abs(x - v0) < FIT_HALF_WIDTH_KMS)
        if sel.sum() < 8:
            continue
        xs, ys = x[sel], resid[sel]
        p0 = [max(float(ys.max()), 1e-3), v0, TEMPLATE_SIGMA_KMS, 0.0, 0.0]
        try:  # Levenberg-Marquardt (fast); the bounds are checked afterwards
            with warnings.catch_warnings():  # an undetermined covariance is caught below
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, pcov = curve_fit(_gauss_line, xs - v0, ys, p0=[p0[0], 0.0, *p0[2:]],
                                       sigma=1.0 / np.sqrt(ivar[sel]), absolute_sigma=True, maxfev=400)
        except (RuntimeError, ValueError):
            continue
        perr = np.sqrt(np.clip(np.diag(pcov), 0.0, np.inf))
        amp, centre, width = popt[0], popt[1] + v0, abs(popt[2])
        if not _line_passes(amp, centre, width, perr, v0):
            continue
        velocities.append(centre)
        errors.append(perr[1])
        used.append(name)
    return _combine(velocities, errors, used)


def _line_passes(amp: float, centre: float, width: float, perr: np.ndarray, v0: float) -> bool:
    """A fitted line gives a velocity: finite errors, ≥ :data:`MIN_LINE_SNR` σ, near the peak, narrow."""
    return bool(np.all(np.isfinite(perr)) and perr[0] > 0 and perr[1] > 0 and amp / perr[0] >= MIN_LINE_SNR
                and abs(centre - v0) < MAX_SHIFT_FROM_PEAK_KMS and 40.0 <= width <= 600.0)


def _combine(velocities, errors, used) -> RedshiftCheck:
    """The inverse-variance mean of the lines' velocities, its error covering their scatter."""
    if not velocities:
        return RedshiftCheck()
    v, e = np.asarray(velocities), np.asarray(errors)
    wgt = 1.0 / e**2
    mean = float(np.sum(wgt * v) / wgt.sum())
    formal = float(np.sqrt(1.0 / wgt.sum()))
    scatter = float(np.std(v, ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return RedshiftCheck(mean, max(formal, scatter), list(used))


def check_spectrum(spectrum) -> RedshiftCheck:
    """:func:`check_redshift` of an observed-frame :class:`~agnlens.spectra.Spectrum` at its ``z``."""
    z = spectrum.z
    if not np.isfinite(z) or z < 0:
        return RedshiftCheck()
    wl = spectrum.wavelength if spectrum.frame == "rest" else spectrum.wavelength / (1.0 + z)
    return check_redshift(wl, spectrum.flux, spectrum.ivar, spectrum.mask)


def check_set(spectra) -> list[RedshiftCheck]:
    """The check of every spectrum of a (rest-frame) :class:`~agnlens.spectra.SpectrumSet`
    (:func:`check_batch`)."""
    return check_batch(spectra.wavelength, spectra.flux, spectra.ivar, spectra.mask)


#: Spectra checked together by :func:`check_batch` (bounds its memory: a few arrays of this many
#: spectra × pixels).
BATCH = 256
#: Iteration cap of the batched Levenberg–Marquardt; a line not converged by then is not used
#: (as :func:`check_redshift` drops a fit that exhausts ``curve_fit``'s evaluations).
MAX_ITER = 100
#: Its convergence tolerance: a step lowering chi² by at most this fraction, or moving the scaled
#: parameters by at most this fraction of their norm (MINPACK's ``ftol`` and ``xtol``, as curve_fit).
FTOL = 1.49012e-08


@functools.lru_cache(maxsize=8)
def _template_matrices(wl_bytes: bytes):
    """The shifts and the templates of :func:`_templates` summed over lines, ``T`` and ``T²``, as
    sparse n_shifts × n_pixels matrices: the correlation's numerator is ``T (w r)``, its norm
    ``T² w``. Entries below 1e-15 of the largest (Gaussian tails past 8 σ) are left out: the
    correlation changes by under 1e-12 of its value, and the products cost a tenth of dense ones."""
    from scipy.sparse import csr_matrix

    shifts, templates = _templates(wl_bytes)
    n = len(wl_bytes) // 8
    t1, t2 = np.zeros((n, shifts.size)), np.zeros((n, shifts.size))
    for near, t in templates:
        t1[near] += t
        t2[near] += t * t
    keep = t1 > 1e-15 * t1.max(initial=0.0)
    return shifts, csr_matrix(np.where(keep, t1, 0.0).T), csr_matrix(np.where(keep, t2, 0.0).T)


def _fill_bad(loglam: np.ndarray, flux: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Every row's bad pixels linearly interpolated in ``loglam`` from its good neighbours (the end
    values beyond the first and last good pixel): ``np.interp`` of each row, vectorised."""
    n = loglam.size
    idx = np.broadcast_to(np.arange(n), flux.shape)
    prev = np.maximum.accumulate(np.where(good, idx, -1), axis=1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(good, idx, n), axis=1), axis=1), axis=1)
    prev = np.where(prev < 0, nxt, prev)
    nxt = np.where(nxt >= n, prev, nxt)
    prev, nxt = np.clip(prev, 0, n - 1), np.clip(nxt, 0, n - 1)
    f0, f1 = np.take_along_axis(flux, prev, 1), np.take_along_axis(flux, nxt, 1)
    x0, x1 = loglam[prev], loglam[nxt]
    with np.errstate(invalid="ignore", divide="ignore"):
        filled = np.where(nxt > prev, f0 + (f1 - f0) / (x1 - x0) * (loglam - x0), f0)
    return np.where(good, flux, filled)


def _running_median_rows(loglam: np.ndarray, flux: np.ndarray, good: np.ndarray, width_kms: float) -> np.ndarray:
    """:func:`_running_median` of every row, in one 1-D filter over the rows laid end to end, each
    padded with its own edge values (what ``mode="nearest"`` does to one row: the same medians)."""
    from scipy.ndimage import median_filter

    step_kms = float(np.median(np.diff(loglam))) * np.log(10.0) * C_KMS
    size = max(3, int(round(width_kms / step_kms)) | 1)
    half = size // 2
    padded = np.pad(_fill_bad(loglam, flux, good), ((0, 0), (half, half)), mode="edge")
    medians = median_filter(padded.ravel(), size=size, mode="nearest").reshape(padded.shape)
    return medians[:, half:padded.shape[1] - half]


def _model(p: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian on a straight line of :func:`_gauss_line` for K problems (p: K × 5, x: K × m),
    and its Jacobian (K × m × 5)."""
    amp, centre, sigma, c0, c1 = (p[:, i:i + 1] for i in range(5))
    u = (x - centre) / sigma
    g = np.exp(-0.5 * u * u)
    jac = np.stack([g, amp * g * u / sigma, amp * g * u * u / sigma, np.ones_like(x), x], axis=-1)
    return amp * g + c0 + c1 * x, jac


def _fit_lines(x: np.ndarray, y: np.ndarray, w: np.ndarray, amp0: np.ndarray):
    """Weighted least squares of :func:`_model` for K problems at once (padded pixels have
    ``w == 0``), by Levenberg–Marquardt with Marquardt's diagonal scaling, from the start
    :func:`check_redshift` gives ``curve_fit``. Returns the parameters (K × 5), their standard
    errors (K × 5, inf where the normal matrix is singular) and whether each converged (False
    too where the model overflowed)."""
    k = x.shape[0]
    p = np.zeros((k, 5))
    p[:, 0], p[:, 2] = amp0, TEMPLATE_SIGMA_KMS
    lam, nu = np.full(k, 1e-3), np.full(k, 2.0)
    done, converged = np.zeros(k, dtype=bool), np.zeros(k, dtype=bool)
    f, _ = _model(p, x)
    chi2 = np.sum(w * (y - f) ** 2, axis=1)
    for _ in range(MAX_ITER):
        act = np.flatnonzero(~done)
        if not act.size:
            break
        pa, xa, ya, wa = p[act], x[act], y[act], w[act]
        with np.errstate(all="ignore"):
            f, jac = _model(pa, xa)
            jw = np.swapaxes(jac * wa[..., None], 1, 2)
            a = jw @ jac
            grad = (jw @ (ya - f)[..., None])[..., 0]
        broken = ~(np.isfinite(a).all(axis=(1, 2)) & np.isfinite(grad).all(axis=1))
        if broken.any():  # a width run to zero: that line is dropped, as curve_fit's failures are
            done[act[broken]] = True
            act, pa, xa, ya, wa, f, a, grad = (v[~broken] for v in (act, pa, xa, ya, wa, f, a, grad))
            if not act.size:
                break
        diag = np.diagonal(a, axis1=1, axis2=2)
        damp = lam[act, None] * np.maximum(diag, 1e-30 * diag.max(axis=1, keepdims=True) + 1e-300)
        with np.errstate(all="ignore"):
            step = np.linalg.solve(a + damp[..., None] * np.eye(5), grad[..., None])[..., 0]
            trial = pa + step
            f_new, _ = _model(trial, xa)
            chi2_new = np.sum(wa * (ya - f_new) ** 2, axis=1)
            gain = chi2[act] - chi2_new
            predicted = np.sum(step * (grad + damp * step), axis=1)  # the linear model's reduction
            rho = gain / predicted
        better = np.isfinite(chi2_new) & (gain > 0)
        # Nielsen's damping update: shrink by up to 3x after a good step, grow geometrically after bad ones
        lam[act] = np.where(better, lam[act] * np.maximum(1 / 3, 1 - (2 * np.where(better, rho, 0) - 1) ** 3),
                            lam[act] * nu[act])
        nu[act] = np.where(better, 2.0, nu[act] * 2.0)
        p[act[better]] = trial[better]
        chi2[act[better]] = chi2_new[better]
        # MINPACK's tests: the relative chi² gain, actual and predicted, <= ftol, or the scaled step
        # |D step| <= xtol |D p|; or no lower chi² within reach at all
        small_gain = better & (gain <= FTOL * chi2[act]) & (predicted <= FTOL * chi2[act])
        scale = np.sqrt(diag)
        small_step = np.linalg.norm(scale * step, axis=1) <= FTOL * np.linalg.norm(scale * pa, axis=1)
        converged[act] = done[act] = small_gain | small_step | (lam[act] > 1e16)
    _, jac = _model(p, x)
    a = np.swapaxes(jac * w[..., None], 1, 2) @ jac
    err = np.full((k, 5), np.inf)
    scale = np.sqrt(np.diagonal(a, axis1=1, axis2=2))
    with np.errstate(all="ignore"):
        an = a / (scale[:, :, None] * scale[:, None, :])
        ev = np.linalg.eigvalsh(np.where(np.isfinite(an), an, 0.0))
        ok = np.all(scale > 0, axis=1) & np.all(np.isfinite(an), axis=(1, 2)) & (ev[:, 0] > 1e-12 * ev[:, -1])
        if ok.any():
            cov = np.linalg.inv(an[ok]) / (scale[ok][:, :, None] * scale[ok][:, None, :])
            err[ok] = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, np.inf))
    return p, err, converged


def check_batch(wavelength, flux, ivar, mask=None) -> list[RedshiftCheck]:
    """:func:`check_redshift` of many rest-frame spectra on one wavelength grid, batched.

    Parameters
    ----------
    wavelength : ndarray of shape (n_pixels,)
        Rest-frame wavelength (Å) at each spectrum's assumed redshift, increasing.
    flux, ivar : ndarray of shape (n_spectra, n_pixels)
    mask : ndarray of bool, shape (n_spectra, n_pixels), optional
        True where a pixel is bad (besides ``ivar == 0``).

    Returns
    -------
    list of RedshiftCheck
        One per spectrum, the same offsets as :func:`check_redshift` within their errors.
    """
    wl = np.asarray(wavelength, dtype=np.float64)
    flux, ivar = np.asarray(flux), np.asarray(ivar)  # float64 chunk by chunk: the memory stays bounded
    if wl.ndim != 1 or flux.ndim != 2 or flux.shape != ivar.shape or flux.shape[1] != wl.size:
        raise ValueError(
            f"check_batch needs wavelength of shape (n_pixels,) and flux and ivar of shape "
            f"(n_spectra, n_pixels), got {wl.shape}, {flux.shape} and {ivar.shape}"
        )
    mask = np.zeros(flux.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    out: list[RedshiftCheck] = []
    for start in range(0, flux.shape[0], BATCH):
        part = slice(start, start + BATCH)
        out.extend(_check_rows(wl, np.asarray(flux[part], dtype=np.float64), np.asarray(ivar[part], dtype=np.float64),
                               mask[part]))
    return out


def _check_rows(wl, flux, ivar, mask) -> list[RedshiftCheck]:
    n = flux.shape[0]
    good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar) & ~mask
    shifts, t1, t2 = _template_matrices(wl.tobytes())
    usable = good.sum(axis=1) >= 20
    if not usable.any() or not _templates(wl.tobytes())[1]:
        return [RedshiftCheck() for _ in range(n)]
    loglam = np.log10(wl)
    with np.errstate(invalid="ignore"):
        resid = flux - _running_median_rows(loglam, np.where(good, flux, 0.0), good, MEDIAN_KMS)
    w = np.where(good & np.isfinite(resid), ivar, 0.0)
    resid = np.where(w > 0, resid, 0.0)
    num, den = (t1 @ (w * resid).T).T, (t2 @ w.T).T
    with np.errstate(invalid="ignore", divide="ignore"):
        ccf = np.where(den > 0, num / np.sqrt(np.maximum(den, 1e-300)), -np.inf)
    v0 = shifts[np.argmax(ccf, axis=1)]

    rows, names, xs, ys, ws, amp0 = [], [], [], [], [], []
    for name, rest in FITTED_LINES.items():
        x = C_KMS * (np.log(wl) - np.log(rest))
        lo = np.clip(np.searchsorted(x, v0 - FIT_HALF_WIDTH_KMS) - 1, 0, None)
        hi = np.searchsorted(x, v0 + FIT_HALF_WIDTH_KMS, side="right") + 1
        width = int(np.max(hi - lo))
        if width <= 0:
            continue
        idx = np.minimum(lo[:, None] + np.arange(width), wl.size - 1)
        xi = x[idx]
        sel = (np.take_along_axis(good, idx, 1) & (np.abs(xi - v0[:, None]) < FIT_HALF_WIDTH_KMS)
               & (lo[:, None] + np.arange(width) < wl.size))
        fit = usable & (sel.sum(axis=1) >= 8)
        if not fit.any():
            continue
        r = np.flatnonzero(fit)
        yi = np.take_along_axis(resid, idx, 1)[r]
        wi = np.where(sel[r], np.take_along_axis(ivar, idx, 1)[r], 0.0)
        rows.append(r)
        names.extend([name] * r.size)
        xs.append(xi[r] - v0[r, None])
        ys.append(np.where(sel[r], yi, 0.0))
        ws.append(wi)
        amp0.append(np.maximum(np.max(np.where(sel[r], yi, -np.inf), axis=1), 1e-3))
    found: list[tuple[list, list, list]] = [([], [], []) for _ in range(n)]
    if rows:
        m = max(a.shape[1] for a in xs)  # every line's window padded to one width, with w = 0

        def stack(arrays, mode):
            return np.concatenate([np.pad(a, ((0, 0), (0, m - a.shape[1])), mode=mode) for a in arrays])

        p, err, converged = _fit_lines(stack(xs, "edge"), stack(ys, "constant"), stack(ws, "constant"),
                                       np.concatenate(amp0))
        for j, (i, name) in enumerate(zip(np.concatenate(rows), names)):  # lines in FITTED_LINES order
            centre = p[j, 1] + v0[i]
            if converged[j] and _line_passes(p[j, 0], centre, abs(p[j, 2]), err[j], v0[i]):
                found[i][0].append(centre)
                found[i][1].append(err[j, 1])
                found[i][2].append(name)
    return [_combine(*one) for one in found]
