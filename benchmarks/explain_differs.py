"""Do the explanations of one predicted class differ from spectrum to spectrum? And at what cost?

For real spectra and the built-in default models (as ``agnlens explain DIR`` reads them: each
spectrum on the first default model's grid it covers), per predicted class with at least three
spectra: the median pairwise Pearson correlation of the maps, for the study's gradient map
(``--method gradient``) and for the default Integrated Gradients from each spectrum's continuum.
Also the time per spectrum of each (best of ``--repeat`` calls on the whole set, the BLAS on one
thread, which a busy machine disturbs least; the peer is the gradient, measured in the same run)
and the worst completeness error of Integrated Gradients (|Σ attributions − (p(x) − p(continuum))|).

Usage (from the project root)::

    .venv/bin/python benchmarks/explain_differs.py [--spectra DIR] [--labels CSV] [--repeat 3]

Defaults: the 19 in-repository spectra (``tests/data/sdss``). docs/saliency.md quotes the run on
the full 95-spectrum reference sample.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def median_correlations(values: np.ndarray, predicted: np.ndarray) -> dict[str, tuple[int, float]]:
    """Per predicted class with ≥ 3 spectra: (count, median pairwise correlation of the maps)."""
    out = {}
    for cls in np.unique(predicted):
        V = values[predicted == cls]
        if len(V) >= 3:
            out[str(cls)] = (len(V), float(np.median(np.corrcoef(V)[np.triu_indices(len(V), 1)])))
    return out


def timed(fn, repeat: int):
    best, result = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return result, best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spectra", type=Path, default=ROOT / "tests" / "data" / "sdss" / "spectra")
    parser.add_argument("--labels", type=Path, default=ROOT / "tests" / "data" / "sdss" / "labels.csv")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)

    from agnlens.explain.attribution import DEFAULT_METHOD, saliency
    from agnlens.models.default import resolve_models
    from agnlens.stages import load_groups, merge_groups

    groups, rejected = load_groups([args.spectra], resolve_models(None), labels=args.labels)
    print(f"{sum(len(g.spectra) for g in groups)} spectra from {args.spectra} ({len(rejected)} rejected)\n")
    print("| grid | predicted class | n | gradient: median r | default: median r |")
    print("|---|---|---|---|---|")
    costs = []
    for model, _meta, spectra in merge_groups(groups):
        grad, t_grad = timed(lambda m=model, x=spectra: saliency(m, x, method="gradient"), args.repeat)
        default, t_default = timed(lambda m=model, x=spectra: saliency(m, x), args.repeat)
        r_grad = median_correlations(grad.values, grad.predicted)
        r_default = median_correlations(default.values, default.predicted)
        for cls, (n, r) in r_grad.items():
            print(f"| {spectra.grid.name} | {cls} | {n} | {r:.3f} | {r_default[cls][1]:.3f} |")
        costs.append((spectra.grid.name, len(spectra), t_grad, t_default, float(np.abs(default.completeness).max())))
    print(f"\n| grid | n | gradient ms/spectrum | {DEFAULT_METHOD} ms/spectrum | ratio | max completeness error |")
    print("|---|---|---|---|---|---|")
    for grid, n, t_grad, t_default, err in costs:
        print(f"| {grid} | {n} | {1e3 * t_grad / n:.2f} | {1e3 * t_default / n:.2f} | {t_default / t_grad:.0f} | "
              f"{err:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
