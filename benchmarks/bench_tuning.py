"""Hyper-parameter search: agnlens ``tune`` vs the naive scikit-learn grid with ``probability=True``.

The data: the default simulated set (3,346 spectra × 1,000 pixels on the paper grid, three-class;
600 with ``--quick``), split 64 / 16 / 20 % with seed 0; both searches fit on the training split
and score macro F1 on the validation split. The naive grid (what the reference study did) fits
``sklearn.svm.SVC(probability=True)`` once per cell and scores its ``predict``.

Rows, all run (nothing extrapolated):

1. like for like on a sub-grid of :data:`N_SUBGRID` cells, class weight None — linear kernel with
   every C of tune's default range (10^-3 .. 10^2), RBF with C in {1, 10} × gamma in
   {gamma0 / 10, gamma0} (gamma0 = scikit-learn's "scale"): ``tune`` with every cell calibrated
   (``refine=None``, as every naive cell is) and range widening off, once per kernel;
2. the same cells with successive halving (``tune(halving=True)``, within each call's sub-grid):
   every cell fitted on a stratified third of the training split (``search.HALVING_MIN_ROWS``), the
   leading third of the cells on all of it, and the :data:`HALVING_REFINE` leading one(s) of those
   calibrated (``refine=HALVING_REFINE``) — the note says
   whether the chosen cell is the one of row 1, and both best validation F1 are in the label;
3. tune's full default grid (3 kernels, 6 C, 5 gamma for RBF, 2 class weights, widening on) against
   the naive loop over exactly the cells ``tune`` evaluated;
4. the same full default grid with successive halving, against that same naive loop.

``tune`` returns a fitted, calibrated model (the search's own fit of the best cell, no refit); its
times include everything. The naive loop keeps its fitted models too.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

LINEAR_C = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
RBF_C = (1.0, 10.0)
RBF_GAMMA_FACTORS = (0.1, 1.0)
N_SUBGRID = len(LINEAR_C) + len(RBF_C) * len(RBF_GAMMA_FACTORS)


def naive_grid(X, y, parts, cells) -> tuple[float, float, tuple]:
    """Fit ``SVC(probability=True)`` per cell on train, score macro F1 of ``predict`` on validation.

    Returns
    -------
    seconds, best_f1, best_cell
    """
    from bench_predict import sklearn_svc
    from sklearn.metrics import f1_score

    tr, va = parts["train"], parts["validation"]
    best = (-1.0, None)
    t0 = time.perf_counter()
    for i, (kernel, C, gamma, cw) in enumerate(cells):
        params = dict(kernel=kernel, C=C, class_weight=cw) | ({"gamma": gamma} if gamma is not None else {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = sklearn_svc(**params).fit(X[tr], y[tr])
        f1 = f1_score(y[va], model.predict(X[va]), average="macro")
        print(f"  naive cell {i + 1}/{len(cells)} {kernel} C={C:g} gamma={gamma}: F1 {f1:.4f} "
              f"({time.perf_counter() - t0:.0f} s so far)", file=sys.stderr, flush=True)
        if f1 > best[0]:
            best = (f1, (kernel, C, gamma, cw))
    return time.perf_counter() - t0, best[0], best[1]


#: Cells calibrated per ``tune`` call of the successive-halving row (and the fewest its rungs keep).
HALVING_REFINE = 1


def agnlens_subgrid(X, y, parts, gammas, halving=False) -> tuple[float, float, int, dict, float]:
    """``tune`` on the sub-grid (one call per kernel, widening off).

    Returns
    -------
    seconds, best_f1, n_cells, best_params, search_seconds
        ``seconds`` is the wall time of both calls (``search_seconds``: their own ``tuning_s``).
    """
    from agnlens.models import tuning

    common = dict(train_idx=parts["train"], val_idx=parts["validation"], class_weight=(None,),
                  refine=HALVING_REFINE if halving else None, halving=halving, random_state=0)
    saved = tuning.WIDEN_DECADES
    tuning.WIDEN_DECADES = 0  # the comparison needs exactly the naive cells
    try:
        t0 = time.perf_counter()
        results = [
            tuning.tune(X, y, kernels=("linear",), C=LINEAR_C, **common),
            tuning.tune(X, y, kernels=("rbf",), C=RBF_C, gamma=gammas, **common),
        ]
        seconds = time.perf_counter() - t0
    finally:
        tuning.WIDEN_DECADES = saved
    bests = [r.table.loc[r.table["best"]].iloc[0] for r in results]
    top = max(range(2), key=lambda i: bests[i]["validation_f1"])
    n_cells = sum(len(r.table) for r in results)
    search_s = sum(r.tuning_s for r in results)
    return seconds, float(bests[top]["validation_f1"]), n_cells, results[top].best_params, search_s


def fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
                     if v is not None)


def run(quick: bool = False) -> list[dict]:
    from bench_predict import problem

    from agnlens.models.tuning import tune

    X, y, parts, _ = problem(quick)
    Xtr = X[parts["train"]]
    gamma0 = 1.0 / (Xtr.shape[1] * Xtr.var())
    gammas = tuple(gamma0 * f for f in RBF_GAMMA_FACTORS)
    cells = [("linear", C, None, None) for C in LINEAR_C] + [("rbf", C, g, None) for C in RBF_C for g in gammas]

    print(f"  agnlens tune on the {N_SUBGRID}-cell sub-grid...", file=sys.stderr, flush=True)
    t_ours, f1_ours, n_ours, best_ours, search_ours = agnlens_subgrid(X, y, parts, gammas)
    print(f"  agnlens tune on the {N_SUBGRID}-cell sub-grid, successive halving...", file=sys.stderr, flush=True)
    t_half, f1_half, _, best_half, search_half = agnlens_subgrid(X, y, parts, gammas, halving=True)
    print(f"  naive scikit-learn grid on the same {len(cells)} cells...", file=sys.stderr, flush=True)
    t_naive, f1_naive, best_naive = naive_grid(X, y, parts, cells)
    if n_ours != len(cells):
        raise RuntimeError(f"tune evaluated {n_ours} cells, the naive grid {len(cells)}: not comparable")

    print("  agnlens tune on its full default grid...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    full = tune(X, y, train_idx=parts["train"], val_idx=parts["validation"], random_state=0)
    t_full = time.perf_counter() - t0
    n_full = len(full.table)
    f1_full = float(full.table.loc[full.table["best"], "validation_f1"].iloc[0])
    print("  agnlens tune on its full default grid, successive halving...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    halved = tune(X, y, train_idx=parts["train"], val_idx=parts["validation"], halving=True, random_state=0)
    t_halved = time.perf_counter() - t0
    f1_halved = float(halved.table.loc[halved.table["best"], "validation_f1"].iloc[0])
    same_cells = sorted(map(str, full.table[["kernel", "C", "gamma", "class_weight"]].values.tolist())) == sorted(
        map(str, halved.table[["kernel", "C", "gamma", "class_weight"]].values.tolist()))
    full_cells = [(r.kernel, r.C, r.gamma if r.kernel != "linear" else None,  # the table holds NaN for None
                   r.class_weight if isinstance(r.class_weight, (str, dict)) else None)
                  for r in full.table.itertuples()]
    if os.environ.get("AGNLENS_BENCH_NAIVE_FULL", "1") == "1":
        print(f"  naive scikit-learn grid on the same {n_full} cells...", file=sys.stderr, flush=True)
        t_naive_full, f1_naive_full, best_naive_full = naive_grid(X, y, parts, full_cells)
    else:  # a smoke run on a busy machine: the naive full grid is the slowest part of run.py
        t_naive_full, f1_naive_full, best_naive_full = float("nan"), float("nan"), ("not run",) * 4

    n, d = X.shape
    naive = lambda b: f"kernel={b[0]}, C={b[1]}, gamma={b[2]}, class_weight={b[3]}"  # noqa: E731
    return [
        dict(benchmark=f"tuning, {len(cells)}-cell sub-grid, every cell calibrated, {n} × {d} px, three-class "
                       f"(best val. macro F1: agnlens {f1_ours:.3f}, naive {f1_naive:.3f})",
             ours=t_ours, peer=t_naive, peer_name="sklearn SVC(probability=True) loop", unit="s",
             ratio=t_naive / t_ours,
             note=f"best cell agnlens {fmt(best_ours)}; naive {naive(best_naive)}; two tune calls (linear, rbf), "
                  f"search {search_ours:.1f} s of it"),
        dict(benchmark=f"tuning, same {len(cells)} cells, successive halving over the training spectra (1/3, "
                       f"all; best val. macro F1: agnlens {f1_half:.3f}, naive {f1_naive:.3f})",
             ours=t_half, peer=t_naive, peer_name="sklearn SVC(probability=True) loop", unit="s",
             ratio=t_naive / t_half,
             note=f"chosen cell {fmt(best_half)} — {'the same as' if best_half == best_ours else 'NOT the same as'} "
                  f"with every cell calibrated; the {HALVING_REFINE} leading cells of each call's last rung "
                  f"calibrated; search {search_half:.1f} s"),
        dict(benchmark=f"tuning, agnlens full default grid ({n_full} cells, best val. macro F1 agnlens {f1_full:.3f}, "
                       f"naive {f1_naive_full:.3f})",
             ours=t_full, peer=t_naive_full,
             peer_name=f"sklearn SVC(probability=True) loop over the same {n_full} cells",
             unit="s", ratio=t_naive_full / t_full,
             note=f"agnlens best {fmt(full.best_params)} (refine: the 8 leading vote cells calibrated); naive best "
                  f"{naive(best_naive_full)}; widened: {full.widened or 'none'}; search {full.tuning_s:.1f} s"),
        dict(benchmark=f"tuning, agnlens full default grid with successive halving ({len(halved.table)} cells, best "
                       f"val. macro F1 agnlens {f1_halved:.3f}, naive {f1_naive_full:.3f})",
             ours=t_halved, peer=t_naive_full,
             peer_name=f"sklearn SVC(probability=True) loop over the {n_full} cells of the exhaustive search",
             unit="s", ratio=t_naive_full / t_halved,
             note=f"agnlens best {fmt(halved.best_params)} "
                  f"({'the same cell as' if halved.best_params == full.best_params else 'NOT the same cell as'} "
                  f"without halving); {'the same' if same_cells else 'NOT the same'} cells as the exhaustive search "
                  f"(widening is decided on the first rung's scores); widened: {halved.widened or 'none'}"),
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
