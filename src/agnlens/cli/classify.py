"""``agnlens classify``: predicted type, class probabilities and applicability for files or a store."""

from __future__ import annotations

import argparse
from pathlib import Path

from agnlens.cli._common import (
    add_model_argument,
    add_model_sha256_argument,
    add_overwrite_argument,
    add_scheduler_argument,
    claim_output,
    nonnegative_int,
    unique_inputs,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "classify",
        help="classify spectra (FITS files, directories, globs or a store) into AGN types",
        description="Classify spectra with MODEL (default: the built-in models trained on SIMULATED "
        "spectra, built and cached on first use: the 'balmer'-grid model, which sees Hα, for spectra "
        "that cover 4000–6700 Å rest, the 'paper'-grid model otherwise). FITS inputs are read and "
        "preprocessed onto the model's grid; a store must already be on it. Writes a CSV with spec_id, "
        "predicted_label, p_<class> per class, and whether to trust each prediction: applicable "
        "(true/false), flags (';'-separated: kernel-collapse — the spectrum is so far from every "
        "support vector that the output is the model's constant prior; out-of-distribution — unlike "
        "the training spectra; not-agn — no broad line and star-forming on the BPT diagram (Kauffmann "
        "et al. 2003, every line at S/N ≥ 3; needs Hα): the models only know AGN; redshift-offset — "
        "the narrow lines sit more than 500 km/s from the "
        "redshift; low-coverage — over 10% of the grid masked; key-line-masked — over 30% of the Hβ or Hα "
        "window filled in; uncertain — the two most probable classes are within 2 standard errors of each "
        "other), p_<class>_err (the standard error of each probability from the spectrum's own noise, by the "
        "delta method through the preprocessing), z_offset_kms (narrow-line velocity offset) and grid (every "
        "column and its unit: the documentation's Output columns page). Flagged predictions are written, never "
        "dropped. Rejected inputs are named on stderr (exit status 1), the rest are classified. The "
        "probabilities are calibrated on SIMULATED spectra; their errors say how far the noise moves them, "
        "not how well calibrated they are.",
        epilog="examples:\n  agnlens classify spectra/*.fits --out results.csv\n"
        "  agnlens classify spectra/ --refine-z --out results.csv\n"
        "  agnlens classify --model multiclass.skops my.zarr --out results.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUTS", help="FITS files, directories, glob patterns or stores")
    add_model_argument(p)
    p.add_argument("--out", metavar="CSV", required=True, help="results file to write")
    p.add_argument("--labels", metavar="CATALOG", help="label catalogue for FITS inputs (fills the label column)")
    p.add_argument("--refine-z", action="store_true",
                   help="FITS inputs: re-measure the redshift of spectra whose narrow lines are offset "
                   "(redshift-offset), reprocess and classify them again (z_refined column)")
    p.add_argument("--no-redshift-check", dest="check_redshift", action="store_false",
                   help="skip the narrow-line redshift check (about 6 ms per spectrum, most of classify's "
                   "time at survey scale): no z_offset_kms and no redshift-offset flag")
    p.add_argument("--measure", action="store_true", help="add the physics baseline's measurements beside each "
                   "prediction (broad FWHM of Hβ/Hα, line ratios, BPT class, subtype, baseline label, "
                   "agrees_with_baseline), at the redshift the prediction used; FITS inputs are measured on the "
                   "balmer grid (on the paper grid, Hβ only, where they do not reach Hα)")
    p.add_argument("--mc", type=nonnegative_int, default=0, metavar="N",
                   help="FITS inputs: also the Monte-Carlo standard error of every probability "
                   "(p_<class>_mc_err): each spectrum as read, its pixels drawn N times from their "
                   "inverse variance and sent through the whole preprocessing (N predictions per "
                   "spectrum; 100 is plenty; default 0: off)")
    add_model_sha256_argument(p)
    add_overwrite_argument(p)
    add_scheduler_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import pandas as pd

    from agnlens.cli._common import report_rejections
    from agnlens.errors import UsageError
    from agnlens.stages import Executor, classify, resolve_models, write_predictions, write_provenance

    if args.refine_z and not args.check_redshift:
        raise UsageError("--refine-z needs the redshift check; drop --no-redshift-check")
    if args.mc < 0 or args.mc == 1:
        raise UsageError(f"--mc takes 0 (off) or a number of draws ≥ 2, got {args.mc}")
    args.inputs = unique_inputs("classify", args.inputs)
    out = claim_output(args, [*args.inputs, args.labels, None if args.model == "default" else args.model],
                       companions=[Path(args.out).with_name(Path(args.out).stem + ".provenance.json")])
    models = resolve_models(args.model, args.model_sha256)
    table, rejected = classify(models, args.inputs, labels=args.labels, refine_z=args.refine_z,
                               check_redshift=args.check_redshift, measure=args.measure, mc_draws=args.mc,
                               executor=Executor(args.scheduler, progress=args.progress), work=out,
                               return_rejected=True)
    write_predictions(out, table)
    write_provenance(out.with_name(out.stem + ".provenance.json"), models.loaded(), n_classified=len(table),
                     n_rejected=len(rejected))
    report_rejections("classify", rejected)
    counts = table["predicted_label"].value_counts().to_dict()
    n_flagged = int((~table["applicable"].astype(bool)).sum()) if "applicable" in table else 0
    grids = table["grid"].value_counts().to_dict() if "grid" in table else {}
    flags = table["flags"].fillna("").astype(str).str.split(";").explode() if "flags" in table else pd.Series([])
    by_flag = flags[flags != ""].value_counts().to_dict()
    print(f"classified {len(table)} spectra ({counts}; grids {grids}); {n_flagged} not applicable "
          f"{by_flag or ''} (see the flags column); {len(rejected)} rejected; wrote {out}")
    print("probabilities are calibrated on SIMULATED spectra; p_<class>_err is the noise of each spectrum")
    return 1 if rejected else 0
