"""Platt sigmoids and exact pairwise coupling (Wu, Lin & Weng 2004, method 2), with derivatives.

The multiclass probabilities of :class:`agnlens.models.svm.SpectrumSVC` are built in two closed-form
steps, both differentiable:

1. one sigmoid per one-vs-one pair ``p = (a, b)``: ``r_p = P(a | a or b) = 1 / (1 + exp(A_p f_p + B_p))``
   of the pair's decision value ``f_p`` (Platt 1999);
2. pairwise coupling: the class probabilities ``p`` minimise
   ``sum_i sum_{j != i} (r_ji p_i - r_ij p_j)^2`` subject to ``sum(p) = 1``. This is the linear
   system ``[[Q, e], [e^T, 0]] [p; b] = [0; 1]`` with ``Q_ii = sum_{j != i} r_ji^2`` and
   ``Q_ij = -r_ji r_ij`` (Wu, Lin & Weng 2004, JMLR 5, 975, eqs. 18 and 21). Their Theorem 2 shows
   that its solution is non-negative whenever every ``r_ij`` lies in (0, 1), so the constraint
   ``p >= 0`` of the original problem is never active: solving the (K+1) x (K+1) system *exactly*
   gives the coupled probabilities (libsvm instead iterates and clips, which is neither exact nor
   smooth). We clip rounding noise at 0 (``|error|`` ~ 1e-16).

The derivative of ``p`` with respect to ``r`` follows by implicit differentiation of the linear
system: ``M dp~ = -(dM) p~``, hence ``dp_t/dr_q = -lambda^T (dM/dr_q) p~`` with ``lambda = M^-1 e_t``
(``M`` is symmetric).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit


def sigmoid_proba(f: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Platt's sigmoid ``1 / (1 + exp(A f + B))``, computed without overflow.

    Parameters
    ----------
    f : ndarray of shape (n, n_pairs)
        Decision values.
    A, B : ndarray of shape (n_pairs,)

    Returns
    -------
    ndarray of shape (n, n_pairs)
    """
    return expit(-(f * A + B))


def fit_sigmoid(f: np.ndarray, positive: np.ndarray, sample_weight: np.ndarray | None = None) -> tuple[float, float]:
    """Fit Platt's sigmoid ``P(positive | f) = 1 / (1 + exp(A f + B))`` to held-out decision values.

    Minimises the cross-entropy against Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` for
    positives and ``1 / (N- + 2)`` for negatives (which regularises: the optimum is finite even
    for perfectly separated values). Convex in (A, B); solved by Newton's method (trust region)
    with the exact gradient and Hessian.

    Parameters
    ----------
    f : ndarray of shape (n,)
        Held-out decision values.
    positive : ndarray of bool, shape (n,)
        True where the sample belongs to the positive class.
    sample_weight : ndarray of shape (n,), optional
        Per-sample weights of the loss (the SVM's class weights, so that the calibrated
        probabilities keep the class weighting the SVM was trained with).

    Returns
    -------
    A, B : float
    """
    f = np.asarray(f, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    t = np.where(positive, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    # Work on standardised f for conditioning, map back at the end.
    scale = float(np.std(f)) or 1.0
    g = f / scale
    w0 = np.ones_like(f) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w0 = w0 / w0.mean()

    def loss(theta):
        z = theta[0] * g + theta[1]
        # -[t log q + (1-t) log(1-q)] with q = expit(-z)  ==  logaddexp(0, z) - (1 - t) z
        return float(np.sum(w0 * (np.logaddexp(0.0, z) - (1.0 - t) * z)))

    def grad(theta):
        z = theta[0] * g + theta[1]
        d = w0 * (expit(z) - (1.0 - t))
        return np.array([np.dot(d, g), d.sum()])

    def hess(theta):
        z = theta[0] * g + theta[1]
        s = expit(z)
        w = w0 * s * (1.0 - s)
        return np.array([[np.dot(w, g * g), np.dot(w, g)], [np.dot(w, g), w.sum()]])

    theta0 = np.array([0.0, np.log((n_neg + 1.0) / (n_pos + 1.0))])
    res = minimize(loss, theta0, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-10})
    A, B = res.x
    return float(A / scale), float(B)


def couple(r: np.ndarray, pairs: np.ndarray, n_classes: int, targets: np.ndarray | None = None):
    """Exact pairwise coupling of Wu, Lin & Weng (2004), method 2, and optionally its derivative.

    Parameters
    ----------
    r : ndarray of shape (n, n_pairs)
        ``r[:, q] = P(a | a or b)`` for pair ``pairs[q] = (a, b)``.
    pairs : ndarray of int, shape (n_pairs, 2)
        Class indices of each pair.
    n_classes : int
    targets : ndarray of int, shape (n,), optional
        When given, also return ``dp[target]/dr``.

    Returns
    -------
    p : ndarray of shape (n, n_classes)
        Coupled probabilities (rows sum to 1, non-negative).
    dp_dr : ndarray of shape (n, n_pairs)
        Only when ``targets`` is given: derivative of ``p[i, targets[i]]`` w.r.t. ``r[i, :]``.
    """
    r = np.asarray(r, dtype=np.float64)
    n, _ = r.shape
    K = n_classes
    a, b = pairs[:, 0], pairs[:, 1]
    r_ab, r_ba = r, 1.0 - r
    # Q_aa += r_ba^2, Q_bb += r_ab^2, Q_ab = Q_ba = -r_ab r_ba: every pair's terms scattered into the
    # flattened matrices by one product with a 0/1 matrix (exact: each entry sums at most K - 1 terms
    # times 1, and zeros), then the border of ones
    cross = -(r_ab * r_ba)
    M = (np.concatenate([r_ba**2, r_ab**2, cross, cross], axis=1) @ _scatter(pairs, K)).reshape(n, K + 1, K + 1)
    M[:, :K, K] = 1.0
    M[:, K, :K] = 1.0
    rhs = np.zeros((n, K + 1, 1 if targets is None else 2))
    rhs[:, K, 0] = 1.0
    if targets is not None:
        rhs[np.arange(n), np.asarray(targets), 1] = 1.0
    sol = np.linalg.solve(M, rhs)
    p = np.clip(sol[:, :K, 0], 0.0, 1.0)
    if targets is None:
        return p
    pt = sol[:, :K, 0]
    lam = sol[:, :K, 1]
    pa, pb = pt[:, a], pt[:, b]
    la, lb = lam[:, a], lam[:, b]
    # dM/dr for one pair: d Q_aa = -2 r_ba, d Q_bb = 2 r_ab, d Q_ab = d Q_ba = -(1 - 2 r_ab)
    quad = -2.0 * r_ba * la * pa + 2.0 * r_ab * lb * pb - (1.0 - 2.0 * r_ab) * (la * pb + lb * pa)
    return p, -quad


def _scatter(pairs: np.ndarray, n_classes: int) -> np.ndarray:
    """0/1 matrix of shape (4 n_pairs, (n_classes + 1)^2) putting the terms (r_ba^2, r_ab^2, -r_ab r_ba,
    -r_ab r_ba) of every pair at the flattened positions (aa, bb, ab, ba) of the coupling matrix
    (built once per pair structure: building it cost a third of a one-spectrum prediction)."""
    pairs = np.asarray(pairs, dtype=np.int64)
    return _scatter_of(pairs.tobytes(), pairs.shape[0], int(n_classes))


@functools.lru_cache(maxsize=16)
def _scatter_of(pair_bytes: bytes, n_pairs: int, n_classes: int) -> np.ndarray:
    pairs = np.frombuffer(pair_bytes, dtype=np.int64).reshape(n_pairs, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    size = n_classes + 1
    S = np.zeros((4 * pairs.shape[0], size * size))
    for k, pos in enumerate((a * size + a, b * size + b, a * size + b, b * size + a)):
        S[k * a.size + np.arange(a.size), pos] = 1.0
    S.flags.writeable = False
    return S
