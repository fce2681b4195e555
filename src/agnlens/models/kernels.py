"""Kernel matrices and distances from one BLAS product, and SVMs fitted on blocks of a precomputed kernel.

One formula serves fitting, tuning and prediction, so that a model refitted on the same spectra
sees bitwise the same kernel values as the search that chose it:

* Gram block ``G = A @ B.T`` (one BLAS product, :func:`gram`, its thread count set by
  :func:`blas_for`);
* linear ``K = G``; poly ``K = (gamma G + coef0)^degree``;
* rbf ``K = exp(-gamma D)`` with the squared distances ``D = max(|a|^2 + |b|^2 - 2 G, 0)``
  (computed in place; :func:`pairwise_sq_distances`, also for the applicability checks).

The element-wise passes run on slabs of rows small enough to stay in a core's cache, spread over
as many threads as the BLAS uses (numpy releases the GIL in them): ``exp`` alone costs a quarter
of the product's time on a core without numpy's SIMD ``exp`` (AVX-512). Every element is computed
by the same operations whatever the split, so the values do not depend on the thread count.

:func:`fit_with_folds` fits libsvm (``sklearn.svm.SVC(kernel="precomputed")``) on the whole
training kernel and on the sub-blocks of the calibration folds — the kernel is computed once,
not once per fit, and libsvm reads it instead of evaluating 1,000-pixel dot products.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.svm import SVC

#: Largest training set whose kernel matrix is precomputed (8 * 6000^2 bytes = 288 MB); larger sets
#: are fitted by libsvm evaluating the kernel itself (same solution up to libsvm's tolerance).
MAX_PRECOMPUTED = 6000


def sqnorms(A: np.ndarray) -> np.ndarray:
    """Squared row norms, shape (n,)."""
    return np.einsum("ij,ij->i", A, A)


def gram(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Gram block ``A @ B.T``, shape (n_a, n_b): one BLAS product under :func:`blas_for` ``(n_a)``.

    Every matrix product of the package's kernels and distances goes through here (or runs inside
    the same :func:`blas_for`), so one rule decides how many BLAS threads compute it.
    """
    with blas_for(A.shape[0]):
        return A @ B.T


def pairwise_sq_distances(A: np.ndarray, B: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``A`` and ``B``, shape (n_a, n_b).

    The formula the rbf kernel uses (:func:`gram`, then :func:`sq_distances`), so that
    ``exp(-gamma * pairwise_sq_distances(A, B))`` is bitwise :func:`kernel_from_gram`'s rbf kernel.

    Parameters
    ----------
    A, B : ndarray of shape (n_a, d), (n_b, d)
    b_sq : ndarray of shape (n_b,), optional
        :func:`sqnorms` of ``B``, when already known.
    """
    return sq_distances(gram(A, B), sqnorms(A), sqnorms(B) if b_sq is None else b_sq)


def sq_distances(G: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared distances ``max(|a|^2 + |b|^2 - 2 G, 0)`` from a Gram block, in place of ``G``.

    Parameters
    ----------
    G : ndarray of shape (n_a, n_b)
        ``A @ B.T``; overwritten.
    a_sq, b_sq : ndarray of shape (n_a,), (n_b,)
        Squared row norms of ``A`` and ``B``.
    """
    over_row_slabs(lambda rows: _distances(G[rows], a_sq[rows], b_sq), G)
    return G


def kernel_from_gram(G: np.ndarray, kernel: str, gamma: float, degree: int, coef0: float,
                     a_sq: np.ndarray | None = None, b_sq: np.ndarray | None = None,
                     overwrite: bool = False) -> np.ndarray:
    """Kernel matrix from the Gram block ``G = A @ B.T``, shape (n_a, n_b).

    ``a_sq`` and ``b_sq`` (squared row norms) are needed by ``rbf`` only. With ``overwrite`` the
    result is computed in ``G``'s memory (``linear`` returns ``G`` itself either way).
    """
    if kernel == "linear":
        return G
    K = G if overwrite else G.copy()
    if kernel == "poly":
        over_row_slabs(lambda rows: _poly(K[rows], gamma, coef0, degree), K)
        return K
    if a_sq is None or b_sq is None:
        raise ValueError("kernel_from_gram: the rbf kernel needs a_sq and b_sq (the squared row norms of A and B)")
    a, b = a_sq, b_sq
    over_row_slabs(lambda rows: _exp_scaled(_distances(K[rows], a[rows], b), -gamma), K)
    return K


def rbf_from_distances(D: np.ndarray, gamma: float, overwrite: bool = False) -> np.ndarray:
    """``exp(-gamma D)`` (in place of ``D`` with ``overwrite``)."""
    K = D if overwrite else D.copy()
    over_row_slabs(lambda rows: _exp_scaled(K[rows], -gamma), K)
    return K


def _distances(g: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    g *= -2.0
    g += a_sq[:, None]
    g += b_sq[None, :]
    return np.maximum(g, 0.0, out=g)


def _exp_scaled(k: np.ndarray, factor: float) -> None:
    k *= factor
    np.exp(k, out=k)


def _poly(k: np.ndarray, gamma: float, coef0: float, degree: int) -> None:
    k *= gamma
    k += coef0
    k **= degree


#: Bytes of one slab of rows worked on element-wise by one thread (fits a core's L2 cache).
SLAB_BYTES = 256 * 1024


def over_row_slabs(fn: Callable[[slice], object], A: np.ndarray) -> None:
    """Call ``fn(rows)`` on consecutive slabs of rows of ``A`` (each about ``SLAB_BYTES``), the
    slabs split into one contiguous run per thread, as many threads as the BLAS uses now.

    ``fn`` works in place, element by element; the split changes no value.
    """
    n = A.shape[0]
    step = max(1, SLAB_BYTES // max(1, A[:1].nbytes))
    slabs = [slice(i, min(i + step, n)) for i in range(0, n, step)]
    threads = min(blas_threads(), len(slabs))

    def run(part: list[slice]) -> None:
        for rows in part:
            fn(rows)

    if threads <= 1:
        run(slabs)
        return
    per = -(-len(slabs) // threads)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, [slabs[i : i + per] for i in range(0, len(slabs), per)]))


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


#: Row blocks smaller than this run their matrix products on one BLAS thread: waking the other
#: threads costs more than they save, and far more when another process keeps a core busy.
SMALL_BLOCK = 64


def blas_for(rows: int) -> contextlib.AbstractContextManager:
    """Context for the matrix products of a block of ``rows`` rows: one BLAS thread below
    ``SMALL_BLOCK`` rows, the BLAS's own setting otherwise.

    The BLAS thread count is process-wide, so only the main thread changes it (two threads setting
    and restoring it in turn could leave it at one); other threads keep the setting they find.
    """
    if rows < SMALL_BLOCK and threading.current_thread() is threading.main_thread() and blas_threads() > 1:
        return _blas().limit(limits=1)
    return contextlib.nullcontext()


def blas_threads() -> int:
    """Threads the BLAS uses now (after ``threadpoolctl`` limits and ``OPENBLAS_NUM_THREADS``; 1 in
    a Dask worker, whose nanny sets them to 1)."""
    return max([lib.num_threads for lib in _blas().lib_controllers] or [1])


def precomputed_svc(C: float, class_weight) -> SVC:
    """libsvm on a precomputed kernel, one-vs-one decision values (class weights by class index)."""
    return SVC(kernel="precomputed", C=float(C), class_weight=class_weight, decision_function_shape="ovo",
               cache_size=500)


def fit_with_folds(K: np.ndarray, y_enc: np.ndarray, C: float, class_weight, folds, *, n_jobs: int = 1,
                   full: SVC | None = None) -> tuple[SVC, np.ndarray | None]:
    """Fit libsvm on the training kernel and collect out-of-fold decision values.

    Parameters
    ----------
    K : ndarray of shape (n, n)
        Kernel matrix of the training spectra.
    y_enc : ndarray of int, shape (n,)
    C : float
    class_weight : None, "balanced" or dict {class index: weight}
    folds : list of (train_rows, held_rows) or None
        Calibration folds; None: no out-of-fold values.
    n_jobs : int
        Threads (libsvm releases the GIL); the result does not depend on it.
    full : SVC, optional
        An SVC already fitted on ``K`` with these parameters (not refitted).

    Returns
    -------
    svc : SVC
        Fitted on all of ``K``.
    f_oof : ndarray of shape (n, n_pairs) or None
        Decision value of every spectrum from the fold SVM that did not see it.
    """
    def fit_full(_):
        return full if full is not None else precomputed_svc(C, class_weight).fit(K, y_enc)

    def fit_fold(fold):
        tr, held = fold
        svc = precomputed_svc(C, class_weight).fit(K[np.ix_(tr, tr)], y_enc[tr])
        return svc.decision_function(K[np.ix_(held, tr)]).reshape(held.size, -1)

    jobs = [(fit_full, None)] + [(fit_fold, fold) for fold in (folds or [])]
    if n_jobs > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(min(n_jobs, len(jobs))) as pool:
            results = list(pool.map(lambda job: job[0](job[1]), jobs))
    else:
        results = [fn(arg) for fn, arg in jobs]
    svc = results[0]
    if not folds:
        return svc, None
    f = np.empty((K.shape[0], results[1].shape[1]))
    for (_, held), values in zip(folds, results[1:]):
        f[held] = values
    return svc, f


def default_threads() -> int:
    """Threads for independent libsvm fits: the cores of the machine."""
    return max(1, os.cpu_count() or 1)
