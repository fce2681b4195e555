"""``agnlens evaluate``: score a model file on the labelled spectra of a store."""

from __future__ import annotations

import argparse

from agnlens.cli._common import add_model_argument, add_model_sha256_argument, add_overwrite_argument, nonnegative_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a model on a labelled store (precision, recall, F1, confusion matrix, ROC AUC)",
        description="Classify the labelled spectra of STORE with --model (default: the built-in model of the "
        "store's grid) and print the scores with bootstrap 95 % intervals; --out writes them as JSON.",
        epilog="examples:\n  agnlens evaluate real.zarr --model multiclass.skops --out real-scores.json\n"
        "  agnlens evaluate real.zarr   # the built-in model of the store's grid",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", metavar="STORE", help="an agnlens store with labelled spectra on the model's grid")
    add_model_argument(p)
    p.add_argument("--out", metavar="JSON", help="write the scores as JSON")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="bootstrap seed (default 0)")
    add_model_sha256_argument(p)
    add_overwrite_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    import numpy as np

    from agnlens.atomic import write_text
    from agnlens.cli._common import claim_output, convention_line
    from agnlens.cli.train import format_scores
    from agnlens.errors import UsageError
    from agnlens.io.store import open_store
    from agnlens.models.default import resolve_models
    from agnlens.models.metrics import evaluate
    from agnlens.models.persistence import check_grid, training_data_hash
    from agnlens.stages import convention_of, model_for_grid

    claim_output(args, [None if args.model == "default" else args.model, args.store])
    models = resolve_models(args.model, args.model_sha256)
    spectra = open_store(args.store, lazy=False)
    model, meta = model_for_grid(models, spectra.grid)
    check_grid(meta, spectra)
    labels = spectra.labels
    keep = np.flatnonzero(np.isin(labels, model.classes_))
    if keep.size == 0:
        raise UsageError(
            f"{args.store}: no spectrum is labelled with one of the model's classes {list(model.classes_)}; "
            "ingest it with --labels"
        )
    X = np.asarray(spectra.flux[keep], dtype=np.float64)
    y = labels[keep]
    proba = model.predict_proba(X)
    pred = model.classes_[np.argmax(proba, axis=1)]
    scores = evaluate(y, pred, proba, list(model.classes_), seed=args.seed)
    kind = "SIMULATED " if spectra.simulated else ""
    name = meta.get("file", args.model)
    print(f"{name} on {args.store}: {keep.size} labelled spectra "
          f"({len(labels) - keep.size} left out: unlabelled or another class)")
    model_convention, store_convention = convention_of(meta), convention_of(spectra.provenance)
    print(f"model's {convention_line(model_convention)}")
    if store_convention not in (None, model_convention):
        print(f"warning: the store's labels are in the {store_convention} class convention, the model answers in "
              f"the {model_convention or 'unrecorded'} one: the scores compare different classes (relabel with "
              f"agnlens simulate --convention {model_convention or 'CONVENTION'})")
    if training_data_hash(spectra.flux[keep], y) == meta.get("data_hash"):
        print("note: these are the spectra the model was trained and tuned on; only its test split "
              f"(test F1 {meta.get('test', {}).get('f1', float('nan')):.3f}) is an unbiased score")
    print(format_scores(f"{kind}scores", scores))
    classes = [str(c) for c in model.classes_]
    print("confusion matrix (rows true, columns predicted): " + ", ".join(classes))
    for c, row in zip(classes, scores["confusion_matrix"]):
        print(f"  {c:>12}: " + " ".join(f"{v:6d}" for v in row))
    if args.out:
        write_text(args.out, json.dumps({"model": str(name), "model_sha256": meta["file_sha256"],
                                          "store": str(args.store), "classes": classes,
                                          "simulated": spectra.simulated, **scores}, indent=1))
        print(f"wrote {args.out}")
    return 0
