"""Least squares for many small problems at once: Levenberg–Marquardt, and linear solves on a grid.

:func:`levenberg_marquardt` minimises ``Σ_n r_sn(p_s)²`` for every row ``s`` of a batch, each with
its own damping, from residuals and analytic Jacobians evaluated for the whole batch in one call —
the per-iteration cost is a few array operations over the batch instead of a Python loop per
problem. Box bounds are imposed by a change of variables (a bounded parameter is
``lo + (hi - lo) (1 + sin t) / 2``, a non-negative one ``t²``), as MINUIT and the per-spectrum
fitter before this one did, so that every step is unconstrained. The damping is Marquardt's: the
normal matrix's diagonal, floored so that a parameter the data do not constrain (a zero Jacobian
column) takes no step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["Bounds", "grid_solutions", "grid_terms", "levenberg_marquardt", "solve_normal"]


class Bounds:
    """Box bounds ``lo ≤ p ≤ hi`` of a parameter vector, as a change of variables ``p = phys(t)``.

    Parameters
    ----------
    lo, hi : ndarray of shape (n_params,)
        ``-inf``/``inf`` for no bound; ``lo = 0, hi = inf``: non-negative (``p = t²``); both finite:
        a box (``p = lo + (hi - lo)(1 + sin t) / 2``). Other one-sided bounds are not supported.
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lo, self.hi = np.asarray(lo, float), np.asarray(hi, float)
        self.pos = (self.lo == 0.0) & ~np.isfinite(self.hi)
        self.box = np.isfinite(self.lo) & np.isfinite(self.hi)
        one_sided = (np.isfinite(self.lo) ^ np.isfinite(self.hi)) & ~self.pos
        if one_sided.any():
            raise ValueError(f"Bounds: one-sided bounds other than p ≥ 0 are not supported (parameters "
                             f"{np.flatnonzero(one_sided).tolist()}); give both ends or none")
        self.half = np.where(self.box, 0.5 * (self.hi - self.lo), 1.0)
        self.base = np.where(self.box, self.lo, 0.0)

    def phys(self, t: np.ndarray) -> np.ndarray:
        """Physical parameters of shape (n, n_params) from the free ones."""
        p = t.copy()
        p[:, self.pos] = t[:, self.pos] ** 2
        p[:, self.box] = self.base[self.box] + self.half[self.box] * (1.0 + np.sin(t[:, self.box]))
        return p

    def dphys(self, t: np.ndarray) -> np.ndarray:
        """``dp/dt``, shape (n, n_params)."""
        d = np.ones_like(t)
        d[:, self.pos] = 2.0 * t[:, self.pos]
        d[:, self.box] = self.half[self.box] * np.cos(t[:, self.box])
        return d

    def free(self, p: np.ndarray) -> np.ndarray:
        """Free parameters for the physical start ``p`` (clipped into the box and kept 2 % off its
        ends, where the sine's derivative — hence the Jacobian column — vanishes)."""
        p = np.clip(p, self.lo, self.hi)
        t = p.copy()
        t[:, self.pos] = np.sqrt(p[:, self.pos])
        t[:, self.box] = np.arcsin(np.clip((p[:, self.box] - self.base[self.box]) / self.half[self.box] - 1.0,
                                           -0.98, 0.98))
        return t

    def at_bound(self, p: np.ndarray, tol: float) -> np.ndarray:
        """Whether each box-bounded parameter lies within ``tol`` of its range from an end, shape (n, n_params)."""
        width = np.where(self.box, self.hi - self.lo, np.inf)
        return self.box & ((p - self.lo <= tol * width) | (self.hi - p <= tol * width))


def levenberg_marquardt(
    evaluate: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    t0: np.ndarray,
    *,
    max_iter: int = 100,
    ftol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise the sum of squared residuals of every problem of a batch.

    Parameters
    ----------
    evaluate : callable ``(t, rows) -> (r, J)``
        Residuals of shape (len(rows), n_res) and their Jacobian, transposed to shape
        (len(rows), n_params, n_res) (each parameter's column contiguous), at the free parameters
        ``t`` (len(rows), n_params) of the problems ``rows``.
    t0 : ndarray of shape (n_problems, n_params)
        Starting point.
    max_iter : int
        Most damped Gauss–Newton trials per problem.
    ftol : float
        A problem has converged when an accepted step lowers its χ² by less than this fraction.

    Returns
    -------
    t : ndarray of shape (n_problems, n_params)
    chi2 : ndarray of shape (n_problems,)
    n_iter : ndarray of shape (n_problems,)
        Trials each problem took (``max_iter``: not converged).
    """
    t = np.array(t0, dtype=float)
    n, n_par = t.shape
    rows = np.arange(n)
    # the state of each problem: its normal matrix JᵀJ, gradient Jᵀr and χ² (not the Jacobian itself)
    a, g, chi2 = _normal(*evaluate(t, rows))
    damping = np.full(n, 1e-3)
    n_iter = np.full(n, max_iter)
    active = np.ones(n, dtype=bool)
    eye = np.eye(n_par)
    for it in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        diag = np.einsum("spp->sp", a[idx])
        diag = np.maximum(diag, 1e-12 * np.maximum(diag.max(axis=1, keepdims=True), 1e-300))
        lhs = a[idx] + damping[idx, None, None] * diag[:, :, None] * eye
        step = -np.linalg.solve(lhs, g[idx][:, :, None])[:, :, 0]
        trial = t[idx] + step
        a_new, g_new, chi2_new = _normal(*evaluate(trial, idx))
        better = chi2_new < chi2[idx]
        acc = idx[better]
        converged = np.zeros(idx.size, dtype=bool)
        converged[better] = chi2[acc] - chi2_new[better] <= ftol * chi2[acc]
        t[acc], a[acc], g[acc], chi2[acc] = trial[better], a_new[better], g_new[better], chi2_new[better]
        damping[acc] *= 0.3
        rej = idx[~better]
        damping[rej] *= 10.0
        # a step rejected at any damping: nothing left to gain (a minimum to machine precision)
        converged[~better] = damping[rej] > 1e10
        done = idx[converged]
        active[done] = False
        n_iter[done] = it + 1
    return t, chi2, n_iter


def _normal(r: np.ndarray, jac: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``JᵀJ`` (n, p, p), ``Jᵀr`` (n, p) and ``rᵀr`` (n,) from residuals and a transposed Jacobian."""
    return np.matmul(jac, jac.transpose(0, 2, 1)), np.einsum("spn,sn->sp", jac, r), np.einsum("sn,sn->s", r, r)


def solve_normal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve stacked normal equations ``a x = b`` (``a`` symmetric positive semi-definite), scaled
    to unit diagonal and with a tiny ridge, so that nearly degenerate columns (a very broad line and
    the continuum) stay accurate and a column the data do not constrain gets 0, not an error."""
    scale = np.sqrt(np.maximum(np.einsum("...ii->...i", a), 1e-300))
    unit = a / (scale[..., :, None] * scale[..., None, :]) + 1e-10 * np.eye(a.shape[-1])
    return np.linalg.solve(unit, (b / scale)[..., None])[..., 0] / scale


def _rowwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for ``a`` (..., n) and ``b`` (G, n), computed row by row of ``a`` (one
    matrix–vector product each): every row's result has the same bits whatever the other rows
    and the number of BLAS threads, which a matrix–matrix product does not promise."""
    shape = a.shape
    return np.matmul(a.reshape(-1, 1, shape[-1]), b.T).reshape(*shape[:-1], b.shape[0])


def grid_terms(cols: np.ndarray, W: np.ndarray, Wd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The parts of :func:`grid_solutions` that depend only on the extra columns ``cols`` (c, G,
    n_pix), the weights ``W`` (m, n_pix) and ``Wd`` (``W`` × the data): (cols, their normal
    matrices (m, G, c, c), their right sides (m, G, c)), to reuse for several fixed bases."""
    nc, ng, n_pix = cols.shape
    m = W.shape[0]
    acc = np.empty((m, ng, nc, nc))
    for i in range(nc):
        for j in range(i + 1):
            acc[:, :, i, j] = acc[:, :, j, i] = _rowwise(W, cols[i] * cols[j])
    rc = _rowwise(Wd, cols.reshape(nc * ng, n_pix)).reshape(m, nc, ng).transpose(0, 2, 1)
    return cols, acc, rc


def grid_solutions(terms, dwd, bw, a00, r0):
    """Weighted linear least squares of m problems at each of G points of a grid of extra columns.

    Each problem has fixed columns (``bw`` (m, k, n_pix): the columns times the weights; their
    normal matrix ``a00`` (m, k, k) and right side ``r0`` (m, k)) and, at every grid point, c ≤ 2
    extra columns, the same for all problems (e.g. a broad line of one velocity and width), given
    by ``terms`` (:func:`grid_terms`). Each point costs only its c × c Schur complement: no matrix
    is factorised per point. ``dwd`` is the weighted data's squared norm (m,). Every problem's
    answer is computed on its own (:func:`_rowwise`): the same bits in any batch.

    Returns
    -------
    solutions : ndarray of shape (m, G, k + c)
        Fixed columns' coefficients first.
    chi2 : ndarray of shape (m, G)
        Computed from the solutions themselves: exact whatever their accuracy where an extra
        column and the fixed ones are nearly degenerate.
    """
    cols, acc, rc = terms
    nc, ng, n_pix = cols.shape
    m, k = r0.shape
    a0c = _rowwise(bw, cols.reshape(nc * ng, n_pix)).reshape(m, k, nc, ng).transpose(0, 3, 1, 2)  # (m, G, k, c)
    scale = np.sqrt(np.maximum(np.einsum("sii->si", a00), 1e-300))
    inv00 = np.linalg.inv(a00 / (scale[:, :, None] * scale[:, None, :]) + 1e-10 * np.eye(k))
    inv00 /= scale[:, :, None] * scale[:, None, :]
    sol0 = np.einsum("skl,sl->sk", inv00, r0)
    b = np.einsum("skl,sglc->sgkc", inv00, a0c)
    schur = acc - np.einsum("sgkc,sgkd->sgcd", a0c, b)
    y = rc - np.einsum("sgkc,sk->sgc", a0c, sol0)
    if nc == 1:
        x = np.divide(y, schur[..., 0], out=np.zeros_like(y), where=schur[..., 0] > 0)
    else:
        det = schur[..., 0, 0] * schur[..., 1, 1] - schur[..., 0, 1] ** 2
        good = det > 1e-12 * schur[..., 0, 0] * schur[..., 1, 1]
        det = np.where(good, det, 1.0)
        x = np.stack([(schur[..., 1, 1] * y[..., 0] - schur[..., 0, 1] * y[..., 1]) / det,
                      (schur[..., 0, 0] * y[..., 1] - schur[..., 0, 1] * y[..., 0]) / det], axis=-1)
        x[~good] = 0.0
    lin = sol0[:, None, :] - np.einsum("sgkc,sgc->sgk", b, x)
    quad = (np.einsum("sgk,skl,sgl->sg", lin, a00, lin) + 2.0 * np.einsum("sgk,sgkc,sgc->sg", lin, a0c, x)
            + np.einsum("sgc,sgcd,sgd->sg", x, acc, x))
    chi2 = dwd[:, None] - 2.0 * (np.einsum("sgk,sk->sg", lin, r0) + np.einsum("sgc,sgc->sg", x, rc)) + quad
    return np.concatenate([lin, x], axis=2), chi2
