"""Kernel matrices: threaded slabs give the values of the plain formula, whatever the thread count."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from agnlens.models.kernels import (
    SLAB_BYTES,
    blas_threads,
    gram,
    kernel_from_gram,
    over_row_slabs,
    pairwise_sq_distances,
    rbf_from_distances,
    sqnorms,
)


def _blocks(seed=0, n_a=700, n_b=300, d=40):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(n_a, d)), rng.normal(size=(n_b, d))
    return A, B, A @ B.T


@pytest.mark.parametrize("threads", [1, 2])
def test_slabs_equal_whole_matrix_formula_bitwise(threads):
    A, B, G = _blocks()
    a_sq, b_sq = sqnorms(A), sqnorms(B)
    gamma = 0.03
    # the formula on the whole matrix at once, one thread (what the module computed before slabs)
    D = np.maximum(-2.0 * G + a_sq[:, None] + b_sq[None, :], 0.0)
    rbf_ref = np.exp(-gamma * D)
    poly_ref = (gamma * G + 1.5) ** 3
    with threadpool_limits(threads, user_api="blas"):
        assert blas_threads() == threads
        rbf = kernel_from_gram(G.copy(), "rbf", gamma, 3, 1.5, a_sq, b_sq, overwrite=True)
        poly = kernel_from_gram(G, "poly", gamma, 3, 1.5)
        from_d = rbf_from_distances(D, gamma)
    np.testing.assert_array_equal(rbf, rbf_ref)
    np.testing.assert_array_equal(poly, poly_ref)
    np.testing.assert_array_equal(from_d, rbf_ref)
    # and against brute-force distances (an independent computation)
    brute = np.exp(-gamma * ((A[:, None, :] - B[None]) ** 2).sum(-1))
    np.testing.assert_allclose(rbf, brute, rtol=1e-12, atol=1e-14)


def test_pairwise_distances_are_the_rbf_kernels_own():
    A, B, _ = _blocks(n_a=50)  # below SMALL_BLOCK: one BLAS thread, as gram decides
    D = pairwise_sq_distances(A, B)
    np.testing.assert_allclose(D, ((A[:, None, :] - B[None]) ** 2).sum(-1), rtol=1e-12, atol=1e-12)  # brute force
    rbf = kernel_from_gram(gram(A, B), "rbf", 0.03, 3, 0.0, sqnorms(A), sqnorms(B))
    np.testing.assert_array_equal(np.exp(-0.03 * D), rbf)  # the same distances the kernel uses, bit for bit
    np.testing.assert_array_equal(pairwise_sq_distances(A, B, sqnorms(B)), D)


def test_every_row_visited_once_in_order_of_slabs():
    A = np.zeros((1000, 100))
    seen = np.zeros(1000, dtype=int)

    def mark(rows):
        seen[rows] += 1

    with threadpool_limits(2, user_api="blas"):
        over_row_slabs(mark, A)
    np.testing.assert_array_equal(seen, 1)
    assert SLAB_BYTES // A[:1].nbytes < 1000  # the matrix was really cut into several slabs



def test_small_blocks_use_one_blas_thread_and_restore_the_setting():
    import threading

    from agnlens.models.kernels import SMALL_BLOCK, blas_for

    with threadpool_limits(2, user_api="blas"):
        with blas_for(SMALL_BLOCK - 1):
            assert blas_threads() == 1
        assert blas_threads() == 2
        with blas_for(SMALL_BLOCK):
            assert blas_threads() == 2
        seen = []  # another thread never changes the process-wide setting

        def worker():
            with blas_for(1):
                seen.append(blas_threads())

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert seen == [2] and blas_threads() == 2
