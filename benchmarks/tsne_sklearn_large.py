"""scikit-learn ``TSNE`` on 10⁵ spectra, once: the peer of ``bench_tsne``'s large row.

It takes far longer than the whole ``run.py`` budget on 2 cores, so it is run on its own and its
result (wall time, 10-NN accuracy, machine, date) is written to
``benchmarks/results/tsne_sklearn_100000.json``; ``bench_tsne`` reads that file for the ratio and
says the peer came from this separate run.

Usage: python benchmarks/tsne_sklearn_large.py
The input is exactly ``bench_tsne``'s: ``simulate_set(100000, seed=1)`` reduced to 50 principal
components; scikit-learn Barnes-Hut, perplexity 50, PCA initialisation, seed 0.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "tsne_sklearn_100000.json"


def main() -> int:
    sys.path.insert(0, str(HERE))
    from bench_tsne import N_LARGE, PERPLEXITY, knn_accuracy, pca50
    from run import machine
    from sklearn.manifold import TSNE

    from agnlens.simulate import simulate_set

    big = simulate_set(N_LARGE, seed=1)
    Z = pca50(big.flux)
    labels = big.meta["label"].to_numpy()
    print(f"sklearn TSNE on {N_LARGE} spectra (started {time.strftime('%H:%M:%S')})...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    coords = TSNE(perplexity=PERPLEXITY, init="pca", method="barnes_hut", random_state=0, n_jobs=1).fit_transform(Z)
    seconds = time.perf_counter() - t0
    acc = knn_accuracy(coords, labels)
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps({"n": N_LARGE, "seconds": seconds, "knn_accuracy": acc, "machine": machine(),
                                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))
    print(f"sklearn TSNE: {seconds:.0f} s, 10-NN accuracy {acc:.4f} -> {RESULT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
