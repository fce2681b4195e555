"""``agnlens classify``: predicted type and class probabilities for spectra files or a store."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.set_defaults(run=run)


def is_store(path) -> bool:
    """A directory that is a Zarr (v3) store."""
    path = Path(path)
    return path.is_dir() and (path / "zarr.json").is_file()


def run(args) -> int:
    import logging

    import numpy as np
    import pandas as pd

    from agnlens.atomic import atomic_path
    from agnlens.cli._common import progress_bar, report_rejections
    from agnlens.ingest import ingest
    from agnlens.io.store import open_store
    from agnlens.models.persistence import check_grid, grid_from_metadata, load_model
    from agnlens.spectra import SpectrumSet

    log = logging.getLogger("agnlens.cli.classify")
    if args.model:
        model, meta = load_model(args.model)
    else:
        from agnlens.models.default import default_model

        log.info("no --model: using the built-in default model (trained on SIMULATED spectra)")
        model, meta = default_model("multiclass")
    stores = [s for s in args.inputs if is_store(s)]
    files = [s for s in args.inputs if not is_store(s)]
    sets, rejected = [], []
    for s in stores:
        spectra = open_store(s, lazy=False)
        check_grid(meta, spectra)
        sets.append(spectra)
    if files:
        # ingest logs each rejection itself; we report them once, below, with the command's prefix
        ingest_log = logging.getLogger("agnlens.ingest")
        was_disabled, ingest_log.disabled = ingest_log.disabled, True
        try:
            spectra, summary = ingest(files, grid=grid_from_metadata(meta), allow_zwarning=False,
                                      progress=progress_bar(args, "reading"))
        finally:
            ingest_log.disabled = was_disabled
        rejected.extend(summary.rejected)
        sets.append(spectra)
    sets = [s for s in sets if len(s)]
    columns = ["spec_id", "predicted_label"] + [f"p_{c}" for c in model.classes_]
    if sets:
        spectra = SpectrumSet.concat(sets)
        proba = model.predict_proba(np.asarray(spectra.flux, dtype=np.float64))
        table = pd.DataFrame({"spec_id": spectra.spec_id, "predicted_label": model.classes_[np.argmax(proba, axis=1)]})
        for k, c in enumerate(model.classes_):
            table[f"p_{c}"] = proba[:, k]
    else:
        table = pd.DataFrame(columns=columns)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    report_rejections("classify", rejected)
    counts = table["predicted_label"].value_counts().to_dict() if len(table) else {}
    print(f"classified {len(table)} spectra ({counts}); {len(rejected)} rejected; wrote {args.out}")
    return 1 if rejected else 0
