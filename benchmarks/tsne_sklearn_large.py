"""scikit-learn ``TSNE`` on 10⁵ spectra, once: the peer of ``bench_tsne``'s large row.

It takes far longer than the whole ``run.py`` budget on 2 cores, so it is run on its own and its
result (wall time, 10-NN accuracy, machine, date) is written to
``benchmarks/results/tsne_sklearn_100000.json``; ``bench_tsne`` reads that file for the ratio and
says the peer came from this separate run.

Usage: python benchmarks/tsne_sklearn_large.py [--cap MINUTES]
With ``--cap`` the t-SNE is stopped after that many minutes (of the t-SNE itself, not counting the
simulation) and the file records ``finished: false`` with the cap as a lower bound of its time.
The input is exactly ``bench_tsne``'s: ``simulate_set(100000, seed=1)`` reduced to 50 principal
components; scikit-learn Barnes-Hut, perplexity 50, PCA initialisation, seed 0, ``n_jobs=1`` (the
same as its default ``None``): its gradient and its brute-force neighbour search run on OpenMP
threads, all cores, whatever ``n_jobs`` — as a user gets it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "tsne_sklearn_100000.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cap", type=float, default=None, help="stop the t-SNE after this many minutes")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from bench_tsne import N_LARGE, PERPLEXITY, knn_accuracy, pca50
    from run import machine
    from sklearn.manifold import TSNE

    from agnlens.simulate import simulate_set

    big = simulate_set(N_LARGE, seed=1)
    Z = pca50(big.flux)
    labels = big.meta["label"].to_numpy()
    print(f"sklearn TSNE on {N_LARGE} spectra (started {time.strftime('%H:%M:%S')})...", file=sys.stderr, flush=True)
    def stop(signum, frame):
        raise TimeoutError

    signal.signal(signal.SIGALRM, stop)
    t0 = time.perf_counter()
    if args.cap:
        signal.setitimer(signal.ITIMER_REAL, 60.0 * args.cap)
    try:
        coords = TSNE(perplexity=PERPLEXITY, init="pca", method="barnes_hut", random_state=0,
                      n_jobs=1, verbose=2).fit_transform(Z)
    except TimeoutError:  # raised between two optimiser iterations: the time so far is a lower bound
        result = {"finished": False, "seconds_lower_bound": time.perf_counter() - t0}
    else:
        signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.perf_counter() - t0
        result = {"finished": True, "seconds": seconds, "knn_accuracy": knn_accuracy(coords, labels)}
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps({"n": N_LARGE, **result, "machine": machine(),
                                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))
    print(f"sklearn TSNE: {result} -> {RESULT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
