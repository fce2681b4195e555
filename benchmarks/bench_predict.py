"""``SpectrumSVC.predict_proba`` throughput vs scikit-learn ``SVC(probability=True).predict_proba``.

Both models are fitted on the training split of the default simulated set (3,346 spectra on the
paper grid, three-class; 600 with ``--quick``) with the same RBF kernel, ``C`` and ``gamma``, so
they share the optimisation problem and (up to libsvm's internal calibration folds) the support
vectors; both then predict the probabilities of every spectrum of the set. agnlens evaluates the
kernel with one BLAS product per block; libsvm loops over support vectors in C.

:func:`problem` and :func:`fitted` are shared with ``bench_saliency`` and ``bench_flops`` (cached,
so the runner fits once).
"""

from __future__ import annotations

import functools
import sys
import time
import warnings

import numpy as np

#: RBF penalty of the benchmark model: ~1,000 support vectors on the default simulated set.
C_RBF = 0.3


@functools.lru_cache(maxsize=2)
def problem(quick: bool):
    """The simulated set as float64 features, labels, split and wavelength (cached).

    Returns
    -------
    X : ndarray of shape (n, n_pixels)
    y : ndarray of shape (n,)
    parts : dict of str to ndarray
        Train / validation / test row indices (:func:`agnlens.models.tuning.split`, seed 0).
    wavelength : ndarray of shape (n_pixels,)
    """
    from agnlens.models.tuning import split
    from agnlens.simulate import simulate_set

    spectra = simulate_set(600 if quick else 3346, seed=0)
    y = spectra.meta["label"].to_numpy()
    return spectra.flux.astype(np.float64), y, split(y, seed=0), spectra.wavelength


def sklearn_svc(**params):
    """``sklearn.svm.SVC(probability=True, **params)``, its deprecation warning silenced."""
    from sklearn.svm import SVC

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return SVC(probability=True, random_state=0, **params)


@functools.lru_cache(maxsize=2)
def fitted(quick: bool):
    """(SpectrumSVC, sklearn SVC(probability=True)) fitted on the same training split (cached)."""
    from agnlens.models.svm import SpectrumSVC

    X, y, parts, _ = problem(quick)
    tr = parts["train"]
    ours = SpectrumSVC(kernel="rbf", C=C_RBF, gamma="scale", calibration_cv=5, random_state=0).fit(X[tr], y[tr])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        peer = sklearn_svc(kernel="rbf", C=C_RBF, gamma=ours.gamma_).fit(X[tr], y[tr])
    return ours, peer


def best_time(fn, repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls of ``fn()`` (seconds)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cpu_time(fn, repeat: int) -> float:
    """Smallest process CPU time of ``repeat`` calls of ``fn()`` with one BLAS thread (seconds): a busy
    machine disturbs it far less than wall time with several threads (a thread descheduled in the
    middle of a matrix product stalls the whole call)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        fn()
        times = []
        for _ in range(repeat):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
    return min(times)


#: Batch sizes timed (669 is the test split of the default set, 3,346 the whole set).
BATCHES = (1, 10, 100, 669, 3346)


def per_call(fn, min_time: float = 0.2, repeat: int = 5) -> float:
    """Wall time of one call of ``fn()`` (seconds): calls are looped until a loop lasts ``min_time``,
    and the best of ``repeat`` loops is kept (a busy machine only ever adds time)."""
    one = float("inf")
    for _ in range(3):  # the loop length comes from the fastest of three single calls
        t0 = time.perf_counter()
        fn()
        one = min(one, time.perf_counter() - t0)
    k = max(1, int(min_time / max(one, 1e-6)))
    best = one
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        best = min(best, (time.perf_counter() - t0) / k)
    return best


def run(quick: bool = False) -> list[dict]:
    X, _, _, _ = problem(quick)
    print("  fitting the benchmark model (agnlens and scikit-learn)...", file=sys.stderr, flush=True)
    ours, peer = fitted(quick)
    ours.predict_proba(X[:50])  # warm-up (imports, BLAS threads)
    n, d = X.shape
    sv_t, n_sv = ours.support_vectors_.T, ours.support_vectors_.shape[0]
    rows = []
    for m in [b for b in BATCHES if b < n] + [n]:
        batch = np.ascontiguousarray(X[:m])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            t_peer = per_call(lambda batch=batch: peer.predict_proba(batch), repeat=3)
        t_ours = per_call(lambda batch=batch: ours.predict_proba(batch))
        note = f"per call: agnlens {1e3 * t_ours:.3g} ms, sklearn {1e3 * t_peer:.3g} ms"
        if m >= 100:  # the floor of any float64 kernel method: the one matrix product it cannot avoid
            t_gemm = per_call(lambda batch=batch: batch @ sv_t)
            note += (f"; the float64 product {m} × {d} @ {d} × {n_sv} alone takes {1e3 * t_gemm:.3g} ms "
                     f"({2e-9 * m * d * n_sv / t_gemm:.0f} GFLOP/s): a ceiling of "
                     f"{t_peer / t_gemm:.1f}x on this machine")
        rows.append(dict(
            benchmark=f"predict_proba, batch of {m} spectra × {d} px, RBF, {n_sv} SV "
                      f"(sklearn: {peer.support_vectors_.shape[0]} SV)",
            ours=m / t_ours, peer=m / t_peer, peer_name="sklearn SVC(probability=True).predict_proba",
            unit="spectra/s", ratio=t_peer / t_ours,
            note=note,
        ))
    for m in (669, n) if n > 669 else (n,):  # one core each: libsvm is single-threaded
        batch = np.ascontiguousarray(X[:m])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            c_peer = cpu_time(lambda batch=batch: peer.predict_proba(batch), 2 if m > 1000 and not quick else 3)
        c_ours = cpu_time(lambda batch=batch: ours.predict_proba(batch), 7)
        rows.append(dict(
            benchmark=f"predict_proba, batch of {m} spectra, one core each (CPU time, one BLAS thread)",
            ours=m / c_ours, peer=m / c_peer, peer_name="sklearn SVC(probability=True).predict_proba (CPU time)",
            unit="spectra/s", ratio=c_peer / c_ours,
            note=f"per call: agnlens {1e3 * c_ours:.3g} ms, sklearn {1e3 * c_peer:.3g} ms of CPU",
        ))
    rows[-1]["note"] += "; " + float32_check(ours, X)
    return rows


def float32_check(model, X) -> str:
    """The RBF kernel product in float32 instead of float64: how far the probabilities move, and its time."""
    from agnlens.models.kernels import rbf_from_distances, sq_distances, sqnorms

    sv32 = model.support_vectors_.astype(np.float32)

    def proba32():
        G = (X.astype(np.float32) @ sv32.T).astype(np.float64)
        K = rbf_from_distances(sq_distances(G, sqnorms(X), model._sv_sqnorm), model.gamma_, overwrite=True)
        return model._proba_from_pairwise(K @ model.pair_coef_.T + model.intercept_)

    dp = float(np.abs(proba32() - model.predict_proba(X)).max())
    t32, t64 = per_call(proba32, repeat=2), per_call(lambda: model.predict_proba(X), repeat=2)
    return (f"float32 kernel product: max |p32 - p64| = {dp:.2g} (the bar is 1e-6), {t64 / t32:.2f}x the float64 "
            f"speed; float64 kept" if dp > 1e-6 else f"float32 kernel product within 1e-6 ({dp:.2g})")


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
