"""t-SNE: agnlens (openTSNE) vs scikit-learn ``TSNE`` at the same perplexity (50).

The spectra: the default simulated set (3,346 × 1,000 paper grid; 600 with ``--quick``), reduced
once to 50 principal components; both methods embed exactly that matrix (agnlens with
``pca_components=None``), with PCA initialisation, seed 0 and Barnes-Hut gradients, each with its
default threads: agnlens's openTSNE on all cores; sklearn (``n_jobs=None``) runs its Barnes-Hut
gradient on OpenMP threads, all cores (2 here) unless the process has been limited.
Both find the neighbours exactly, scikit-learn's brute force on all cores.
The quality of each map is its leave-one-out 10-nearest-neighbour label accuracy (the same
function for both).

At 10⁵ spectra (full mode only; openTSNE's FFT gradients, agnlens's default there) scikit-learn
takes far longer than the whole ``run.py`` budget, so it is run once on its own
(``tsne_sklearn_large.py``, same input); its time is read from
``results/tsne_sklearn_100000.json`` when that file exists — the note says so, with its date — and
otherwise the row reports agnlens alone (peer and ratio NaN). ``AGNLENS_BENCH_TSNE_LARGE=0`` skips
the 10⁵ row (a smoke run).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

PERPLEXITY = 50
N_LARGE = 100_000


def knn_accuracy(coords: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Leave-one-out k-NN label accuracy of a map (majority of the k nearest other points)."""
    from sklearn.neighbors import NearestNeighbors

    classes, codes = np.unique(labels.astype(str), return_inverse=True)
    idx = NearestNeighbors(n_neighbors=k).fit(coords).kneighbors(return_distance=False)
    votes = np.zeros((coords.shape[0], classes.size), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(coords.shape[0]), k), codes[idx].ravel()), 1)
    return float(np.mean(votes.argmax(axis=1) == codes))


def pca50(X: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=50, random_state=0).fit_transform(X)


def threads(emb) -> int:
    """The openTSNE threads a map was made with (-1: all cores)."""
    return (os.cpu_count() or 1) if emb.n_jobs == -1 else emb.n_jobs


def run(quick: bool = False) -> list[dict]:
    from bench_predict import problem
    from sklearn.manifold import TSNE
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    from agnlens.embed import BH_THETA, tsne

    X, y, _, _ = problem(quick)
    omp = _openmp_effective_n_threads()  # sklearn's Barnes-Hut gradient threads, whatever n_jobs
    Z = pca50(X)
    n = Z.shape[0]
    print(f"  openTSNE (agnlens) on {n} spectra...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    emb = tsne(Z, perplexity=PERPLEXITY, pca_components=None, method="bh", seed=0)
    t_ours = time.perf_counter() - t0
    print(f"  sklearn TSNE on {n} spectra...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    peer = TSNE(perplexity=PERPLEXITY, init="pca", method="barnes_hut", random_state=0).fit_transform(Z)
    t_peer = time.perf_counter() - t0
    acc_ours, acc_peer = knn_accuracy(emb.coords, y), knn_accuracy(peer, y)
    rows = [dict(
        benchmark=f"t-SNE of {n} spectra (PCA-50 input, perplexity {PERPLEXITY}, agnlens {threads(emb)} thread(s), "
                  f"sklearn gradient {omp} OpenMP thread(s), openTSNE BH theta {BH_THETA} vs sklearn angle 0.5; "
                  f"10-NN accuracy agnlens {acc_ours:.3f}, sklearn {acc_peer:.3f})",
        ours=t_ours, peer=t_peer, peer_name="sklearn.manifold.TSNE (Barnes-Hut)", unit="s", ratio=t_peer / t_ours,
        note=f"10-NN leave-one-out label accuracy of the map: agnlens {acc_ours:.4f}, sklearn {acc_peer:.4f}",
    )]
    if not quick and os.environ.get("AGNLENS_BENCH_TSNE_LARGE", "1") == "1":
        from bench_scaling import simulated

        print(f"  openTSNE (agnlens, FFT) on {N_LARGE} spectra...", file=sys.stderr, flush=True)
        big = simulated(N_LARGE)
        Zb = pca50(big.flux)
        labels = big.meta["label"].to_numpy()
        t0 = time.perf_counter()
        emb = tsne(Zb, perplexity=PERPLEXITY, pca_components=None, method="fft", seed=0)
        t_big = time.perf_counter() - t0
        acc = knn_accuracy(emb.coords, labels)
        from tsne_sklearn_large import RESULT

        peer = json.loads(RESULT.read_text()) if RESULT.exists() else None
        if peer is not None and peer.get("finished", True):
            rows.append(dict(
                benchmark=f"t-SNE of {N_LARGE} spectra (PCA-50 input, openTSNE FFT, {threads(emb)} thread(s); sklearn "
                          f"gradient {omp} OpenMP thread(s); 10-NN accuracy agnlens {acc:.3f}, "
                          f"sklearn {peer['knn_accuracy']:.3f})",
                ours=t_big, peer=peer["seconds"], peer_name="sklearn.manifold.TSNE (Barnes-Hut), separate run",
                unit="s", ratio=peer["seconds"] / t_big,
                note=f"scikit-learn timed by tsne_sklearn_large.py on {peer['date']} ({peer['machine']}), not in "
                     "this process",
            ))
        elif peer is not None:  # stopped at its cap: a lower bound of its time, hence of the ratio
            rows.append(dict(
                benchmark=f"t-SNE of {N_LARGE} spectra (PCA-50 input, openTSNE FFT; 10-NN accuracy agnlens {acc:.3f}; "
                          f"sklearn stopped at its cap, ratio is a LOWER BOUND)",
                ours=t_big, peer=peer["seconds_lower_bound"],
                peer_name="sklearn.manifold.TSNE (Barnes-Hut), separate run, unfinished (>=)",
                unit="s", ratio=peer["seconds_lower_bound"] / t_big,
                note=f"scikit-learn did not finish within {peer['seconds_lower_bound']:.0f} s (tsne_sklearn_large.py "
                     f"--cap, {peer['date']}, {peer['machine']}): the ratio is at least the one shown",
            ))
        else:
            rows.append(dict(
                benchmark=f"t-SNE of {N_LARGE} spectra (PCA-50 input, openTSNE FFT; 10-NN accuracy {acc:.3f}); "
                          "sklearn not run (far too slow)",
                ours=t_big, peer=float("nan"), peer_name="sklearn.manifold.TSNE: skipped", unit="s",
                ratio=float("nan"),
                note="scikit-learn's TSNE was not run at this size (run benchmarks/tsne_sklearn_large.py once); "
                     "no ratio is claimed",
            ))
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
