"""``agnlens classify``: predicted type and class probabilities for spectra files or a store."""

from __future__ import annotations

import argparse

from agnlens.cli._common import add_model_sha256_argument, add_scheduler_argument


def add_parser(sub) -> None:
    p = sub.add_parser(
        "classify",
        help="classify spectra (FITS files, directories, globs or a store) into AGN types",
        description="Classify spectra with MODEL (default: the built-in model trained on simulated spectra, "
        "built and cached on first use). FITS inputs are read and preprocessed onto the model's grid; a "
        "store must already be on it. Writes a CSV with spec_id, predicted_label and p_<class> per class. "
        "Rejected inputs are named on stderr (exit status 1), the rest are classified.",
        epilog="examples:\n  agnlens classify spectra/*.fits --out results.csv\n"
        "  agnlens classify --model multiclass.skops my.zarr --out results.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUTS", help="FITS files, directories, glob patterns or stores")
    p.add_argument("--model", metavar="MODEL", help="model file (default: the built-in three-class model)")
    p.add_argument("--out", metavar="CSV", required=True, help="results file to write")
    add_model_sha256_argument(p)
    add_scheduler_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import shutil
    from pathlib import Path

    import pandas as pd

    from agnlens.atomic import atomic_path
    from agnlens.cli._common import report_rejections
    from agnlens.ingest import read_inputs
    from agnlens.io.store import is_store, open_store
    from agnlens.models.default import resolve_model
    from agnlens.models.persistence import check_grid, grid_from_metadata
    from agnlens.parallel import classify_chunk, classify_store

    model, meta = resolve_model(args.model, args.model_sha256)
    out = Path(args.out)
    tables, rejected = [], []
    # stores go chunk by chunk on the scheduler (resumable: the work folder keeps finished chunks)
    for store in [p for p in args.inputs if is_store(p)]:
        check_grid(meta, open_store(store))
        work = out.parent / f".{out.name}.{Path(store).name}.work"
        tables.append(pd.read_csv(classify_store(
            model, store, work, scheduler=args.scheduler, progress=args.progress
        ), dtype={"spec_id": str}))
        shutil.rmtree(work)
    files = [p for p in args.inputs if not is_store(p)]
    if files:
        spectra, rejected = read_inputs(files, grid=grid_from_metadata(meta))
        tables.append(classify_chunk(spectra, model))
    columns = ["spec_id", "predicted_label"] + [f"p_{c}" for c in model.classes_]
    table = pd.concat(tables, ignore_index=True).rename(columns={"predicted": "predicted_label"})[columns]
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    _write_provenance(out, meta, len(table), len(rejected))
    report_rejections("classify", rejected)
    counts = table["predicted_label"].value_counts().to_dict()
    print(f"classified {len(table)} spectra ({counts}); {len(rejected)} rejected; wrote {out}")
    return 1 if rejected else 0


def _write_provenance(out, meta: dict, n: int, n_rejected: int) -> None:
    """``OUT.provenance.json`` beside the CSV: which model file (SHA-256) made it, on what."""
    import json

    from agnlens import __version__
    from agnlens.atomic import write_text
    from agnlens.cli._common import model_provenance

    prov = {**model_provenance(meta), "n_classified": n, "n_rejected": n_rejected, "software": f"agnlens {__version__}"}
    write_text(out.with_name(out.stem + ".provenance.json"), json.dumps(prov, indent=1))
