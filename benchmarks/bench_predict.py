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


def run(quick: bool = False) -> list[dict]:
    X, _, _, _ = problem(quick)
    print("  fitting the benchmark model (agnlens and scikit-learn)...", file=sys.stderr, flush=True)
    ours, peer = fitted(quick)
    ours.predict_proba(X[:50])  # warm-up (imports, BLAS threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        peer.predict_proba(X[:50])
        t_peer = best_time(lambda: peer.predict_proba(X), 1 if not quick else 2)
    t_ours = best_time(lambda: ours.predict_proba(X), 3)
    n, d = X.shape
    return [dict(
        benchmark=f"predict_proba, {n} spectra × {d} px, RBF, {ours.support_vectors_.shape[0]} SV "
                  f"(sklearn: {peer.support_vectors_.shape[0]} SV)",
        ours=n / t_ours, peer=n / t_peer, peer_name="sklearn SVC(probability=True).predict_proba",
        unit="spectra/s", ratio=t_peer / t_ours,
        note=f"agnlens {1e3 * t_ours / n:.3g} ms/spectrum, sklearn {1e3 * t_peer / n:.3g} ms/spectrum",
    )]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
