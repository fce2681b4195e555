"""``agnlens train``: split, tune on validation, score on test, write a model file and its metrics."""

from __future__ import annotations

import argparse

from agnlens.cli._common import add_jobs_argument, add_overwrite_argument, nonnegative_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train an SVM on a labelled store (tuned on a validation split, scored on a test split)",
        description="Split the labelled spectra of STORE (stratified 64/16/20 %, fixed by --seed), search "
        "kernel, C, gamma and class weights on the validation split, score the best model once on the "
        "test split, and write MODEL (skops) plus MODEL's metrics next to it (same stem + .metrics.json). "
        "It needs at least 20 usable spectra (labelled with a class of the task) and 5 of every class, and "
        "says which class convention the labels are in (the model answers in it).",
        epilog="example:\n  agnlens simulate --n 3346 --seed 0 --out sim.zarr\n"
        "  agnlens train sim.zarr --task multiclass --out multiclass.skops",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", metavar="STORE", help="an agnlens store with labelled spectra (agnlens ingest/simulate)")
    p.add_argument("--task", choices=["binary", "multiclass"], default="multiclass",
                   help="binary: type 1 vs type 2; multiclass: type 1 / type 2 / intermediate (default)")
    p.add_argument("--out", metavar="MODEL", required=True, help="model file to write (.skops)")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the split and the calibration folds (default 0)")
    p.add_argument("--kernels", nargs="+", choices=["linear", "rbf", "poly"], default=["linear", "rbf", "poly"],
                   help="kernels to search (default all three)")
    p.add_argument("--halving", action="store_true",
                   help="successive halving: every cell first fitted on a stratified third of the training "
                   "spectra, only the leading third of the cells on all of them (faster on large grids; "
                   "the chosen cell can differ from the full search's)")
    add_jobs_argument(p, "tuning fits", -1)
    add_overwrite_argument(p, "--out (the model file and its metrics)")
    p.set_defaults(run=run)


#: Tuning cells printed without -v.
N_SHOWN = 10


def leading_cells(table, n: int | None):
    """The tuning table ranked best first (the chosen cell, then by validation F1 and accuracy), cut to ``n`` rows.

    Parameters
    ----------
    table : pandas.DataFrame
        :attr:`agnlens.models.tuning.TuningResult.table`.
    n : int or None
        Rows to keep (None: all).
    """
    ranked = table.sort_values(["best", "validation_f1", "validation_accuracy"], ascending=False, kind="stable")
    return ranked if n is None else ranked.head(n)


def metrics_path(model_path):
    """``MODEL``'s metrics file: same folder and stem, suffix ``.metrics.json``."""
    from pathlib import Path

    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".metrics.json")


def format_scores(name: str, s: dict) -> str:
    line = (f"{name:>10}: macro F1 {s['f1']:.3f}  precision {s['precision']:.3f}  recall {s['recall']:.3f}  "
            f"accuracy {s['accuracy']:.3f}  balanced accuracy {s['balanced_accuracy']:.3f}")
    if s.get("roc_auc") is not None:
        line += f"  ROC AUC {s['roc_auc']:.3f}"
    if "f1_ci95" in s:
        lo, hi = s["f1_ci95"]
        line += f"  (F1 95% CI {lo:.3f}–{hi:.3f})"
    return line


def run(args) -> int:
    import json

    import pandas as pd

    from agnlens.atomic import write_text
    from agnlens.cli._common import claim_output, convention_line
    from agnlens.io.store import open_store
    from agnlens.models.persistence import save_model
    from agnlens.models.tuning import train

    claim_output(args, [args.store], companions=[metrics_path(args.out)])
    from agnlens.stages import convention_of

    spectra = open_store(args.store, lazy=False)
    print(convention_line(convention_of(spectra.provenance)))
    result = train(spectra, task=args.task, seed=args.seed, kernels=args.kernels, halving=args.halving,
                   n_jobs=args.jobs)
    table = result.tuning.table
    shown = leading_cells(table, None if args.verbose else N_SHOWN)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(shown[["kernel", "C", "gamma", "class_weight", "validation_f1", "validation_accuracy", "scored_by",
                     "fit_s", "best"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if len(shown) < len(table):
        print(f"(the best {len(shown)} of {len(table)} tuning cells; -v shows all, the model's metadata holds all)")
    for note in result.tuning.widened:
        print(f"note: {note}")
    kind = "SIMULATED " if spectra.simulated else ""
    print(f"best: {result.tuning.best_params} (search {result.tuning.tuning_s:.1f} s)")
    print(format_scores(f"{kind}validation", result.validation))
    print(format_scores(f"{kind}test", result.test))
    save_model(result.model, args.out, metadata=result.metadata)
    metrics = {k: result.metadata[k] for k in ("task", "grid", "simulated", "split_seed", "split_sizes", "data_hash",
                                               "best_params", "tuning_s", "validation", "test")}
    metrics["classes"] = [str(c) for c in result.model.classes_]
    out_json = metrics_path(args.out)
    write_text(out_json, json.dumps(metrics, indent=1, default=_default))
    print(f"wrote {args.out} and {out_json}")
    return 0


def _default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
