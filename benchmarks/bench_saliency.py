"""Exact saliency (closed-form gradient) per spectrum vs finite differences and vs prediction.

The model and spectra are those of ``bench_predict`` (RBF, ~1,000 support vectors, the default
simulated set). Peers, all on the same spectra:

- the reference study's finite differences: every pixel nudged by 1 % and one ``predict_proba``
  call per pixel (n_pixels calls per spectrum), timed on a few spectra only — once with the same
  agnlens model, once with scikit-learn ``SVC(probability=True)`` as the study used;
- agnlens's own batched finite difference (``saliency(method="finite-difference")``: the nudged
  copies of a spectrum go through ``predict_proba`` in blocks);
- plain prediction (``SpectrumSVC.predict_proba`` of the same spectra): ratio = prediction time /
  gradient time (the aim is >= 1/3, i.e. a map within 3x of a prediction); at 669 spectra also in
  CPU time with one BLAS thread (best of several calls), which a busy machine disturbs far less
  than wall time with two threads (a thread descheduled mid-product stalls the whole call).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

#: Spectra explained by the per-pixel loops (each costs n_pixels predict_proba calls).
N_LOOP = 2
#: The batch of the "gradient at <= 2 predictions" aim (the test split of the default set).
N_BATCH = 669
#: Calls timed (best of) for the gradient and the prediction of the whole set.
REPEAT = 7


def study_finite_difference(predict_proba, x: np.ndarray, target: int, step: float = 0.01) -> np.ndarray:
    """The reference study's saliency: nudge one pixel by ``step`` (relative), one call per pixel.

    Parameters
    ----------
    predict_proba : callable
        Maps an array of shape (1, n_pixels) to probabilities of shape (1, n_classes).
    x : ndarray of shape (n_pixels,)
    target : int
        Column of the explained class.

    Returns
    -------
    ndarray of shape (n_pixels,)
        ``(p(x + step * x_j e_j) - p(x)) / (step * x_j)`` (0 where ``x_j`` is 0).
    """
    p0 = predict_proba(x[None, :])[0, target]
    out = np.zeros(x.size)
    for j in range(x.size):
        h = step * x[j]
        if h == 0:
            continue
        xj = x.copy()
        xj[j] += h
        out[j] = (predict_proba(xj[None, :])[0, target] - p0) / h
    return out


def run(quick: bool = False) -> list[dict]:
    from bench_predict import best_time, cpu_time, fitted, problem

    from agnlens.explain.attribution import saliency
    from agnlens.explain.gradient import proba_and_gradient, proba_gradient

    X, _, _, wavelength = problem(quick)
    ours, peer = fitted(quick)
    n, d = X.shape
    proba_gradient(ours, X[:50])  # warm-up
    # best of several calls: two-thread BLAS on a busy machine varies by 10x from call to call
    t_grad = best_time(lambda: proba_gradient(ours, X), REPEAT) / n
    t_pred = best_time(lambda: ours.predict_proba(X), REPEAT) / n
    m = min(N_BATCH, n)
    Xm = np.ascontiguousarray(X[:m])
    t_grad_m = best_time(lambda: proba_gradient(ours, Xm), 3 * REPEAT) / m
    t_both_m = best_time(lambda: proba_and_gradient(ours, Xm), 3 * REPEAT) / m
    t_pred_m = best_time(lambda: ours.predict_proba(Xm), 3 * REPEAT) / m
    c_grad_m = cpu_time(lambda: proba_gradient(ours, Xm), 3 * REPEAT) / m
    c_pred_m = cpu_time(lambda: ours.predict_proba(Xm), 3 * REPEAT) / m

    print(f"  study-style finite differences on {N_LOOP} spectra ({d} predict_proba calls each)...",
          file=sys.stderr, flush=True)
    few = X[:N_LOOP]
    targets = ours.predict_proba(few).argmax(axis=1)
    t0 = time.perf_counter()
    loop_maps = [study_finite_difference(ours.predict_proba, x, int(k)) for x, k in zip(few, targets)]
    t_loop = (time.perf_counter() - t0) / N_LOOP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        peer_targets = peer.predict_proba(few).argmax(axis=1)
        t0 = time.perf_counter()
        for x, k in zip(few, peer_targets):
            study_finite_difference(peer.predict_proba, x, int(k))
        t_loop_sk = (time.perf_counter() - t0) / N_LOOP
    t0 = time.perf_counter()
    saliency(ours, few, wavelength=wavelength, method="finite-difference")
    t_batched = (time.perf_counter() - t0) / N_LOOP

    # the 1 % forward difference approximates the exact gradient: say how closely
    exact = proba_gradient(ours, few, targets)
    rel = float(np.max(np.abs(np.array(loop_maps) - exact)) / np.max(np.abs(exact)))

    label = f"saliency of one {d}-px spectrum, RBF {ours.support_vectors_.shape[0]} SV"
    ms = 1e3
    return [
        dict(benchmark=f"{label}: exact gradient vs study finite differences (same model)",
             ours=ms * t_grad, peer=ms * t_loop, peer_name=f"{d} predict_proba calls (agnlens model)",
             unit="ms/spectrum", ratio=t_loop / t_grad,
             note=f"loop timed on {N_LOOP} spectra; max |FD - exact| / max |exact| = {rel:.2g}"),
        dict(benchmark=f"{label}: exact gradient vs study finite differences (sklearn model)",
             ours=ms * t_grad, peer=ms * t_loop_sk, peer_name=f"{d} sklearn SVC.predict_proba calls",
             unit="ms/spectrum", ratio=t_loop_sk / t_grad, note=f"loop timed on {N_LOOP} spectra"),
        dict(benchmark=f"{label}: exact gradient vs batched finite differences",
             ours=ms * t_grad, peer=ms * t_batched, peer_name="agnlens saliency(method='finite-difference')",
             unit="ms/spectrum", ratio=t_batched / t_grad, note=f"timed on {N_LOOP} spectra"),
        dict(benchmark=f"{label}: exact gradient vs prediction ({n} spectra; aim ratio >= 1/3)",
             ours=ms * t_grad, peer=ms * t_pred, peer_name="agnlens predict_proba",
             unit="ms/spectrum", ratio=t_pred / t_grad,
             note=f"the gradient costs {t_grad / t_pred:.2f} predictions"),
        dict(benchmark=f"{label}: exact gradient vs prediction ({m} spectra; aim: gradient <= 2 predictions, "
                       "ratio >= 0.5)",
             ours=ms * t_grad_m, peer=ms * t_pred_m, peer_name="agnlens predict_proba",
             unit="ms/spectrum", ratio=t_pred_m / t_grad_m,
             note=f"the gradient costs {t_grad_m / t_pred_m:.2f} predictions"),
        dict(benchmark=f"{label}: exact gradient vs prediction ({m} spectra), CPU time, one BLAS thread (aim ratio "
                       ">= 0.5)",
             ours=ms * c_grad_m, peer=ms * c_pred_m, peer_name="agnlens predict_proba (CPU time, one thread)",
             unit="ms/spectrum", ratio=c_pred_m / c_grad_m,
             note=f"the gradient costs {c_grad_m / c_pred_m:.2f} predictions in CPU time"),
        dict(benchmark=f"{label}: probabilities AND exact gradient in one pass (proba_and_gradient) vs prediction "
                       f"({m} spectra)",
             ours=ms * t_both_m, peer=ms * t_pred_m, peer_name="agnlens predict_proba",
             unit="ms/spectrum", ratio=t_pred_m / t_both_m,
             note=f"probabilities + gradient cost {t_both_m / t_pred_m:.2f} predictions (separate calls: "
                  f"{1 + t_grad_m / t_pred_m:.2f})"),
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
