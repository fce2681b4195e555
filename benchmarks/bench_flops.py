"""Achieved GFLOP/s of the kernel evaluation vs this machine's BLAS float64 matrix product.

Prediction with an RBF SVM is dominated by the Gram block ``X @ SV.T``: 2 · n · n_SV · d
floating-point operations for n spectra of d pixels and n_SV support vectors. The benchmark counts
exactly those flops and divides by the wall time of a whole ``predict_proba`` call (so everything
else in it — validation, the float64 copy, exponentials, coupling — counts as overhead), for
agnlens (one BLAS product per block) and for libsvm (``SVC(probability=True)``, a loop in C). The
peer is ``numpy`` ``A @ B`` of the same shapes in float64 — the physical limit of this machine;
ratio = achieved / BLAS. The model is that of ``bench_predict``.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np


def run(quick: bool = False) -> list[dict]:
    from bench_predict import best_time, fitted, problem

    X, _, _, _ = problem(quick)
    ours, peer = fitted(quick)
    n, d = X.shape
    sv = ours.support_vectors_
    flops = 2.0 * n * sv.shape[0] * d

    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, d))
    B = rng.standard_normal((d, sv.shape[0]))
    A @ B  # warm-up
    t_blas = best_time(lambda: A @ B, 5)
    blas = flops / t_blas / 1e9

    ours.predict_proba(X[:50])
    t_ours = best_time(lambda: ours.predict_proba(X), 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        peer.predict_proba(X[:50])
        t_peer = best_time(lambda: peer.predict_proba(X), 1 if not quick else 2)
    peer_flops = 2.0 * n * peer.support_vectors_.shape[0] * d
    size = f"{n} × {d} @ {d} × {sv.shape[0]}"
    return [
        dict(benchmark=f"kernel evaluation rate, agnlens predict_proba ({size})", ours=flops / t_ours / 1e9,
             peer=blas, peer_name="numpy float64 A @ B (BLAS)", unit="GFLOP/s", ratio=flops / t_ours / 1e9 / blas),
        dict(benchmark=f"kernel evaluation rate, libsvm predict_proba ({size})", ours=peer_flops / t_peer / 1e9,
             peer=blas, peer_name="numpy float64 A @ B (BLAS)", unit="GFLOP/s",
             ratio=peer_flops / t_peer / 1e9 / blas,
             note="this row measures scikit-learn/libsvm, not agnlens"),
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
