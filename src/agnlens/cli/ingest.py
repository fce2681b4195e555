"""``agnlens ingest``: read spectrum files, attach labels, preprocess, write a store."""

from __future__ import annotations

import argparse

from agnlens.cli._common import (
    add_scheduler_argument,
    check_output,
    fraction,
    positive_int,
    progress_bar,
    report_rejections,
    unique_inputs,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ingest",
        help="read SDSS/table spectra, attach labels, preprocess onto a grid, write a Zarr store",
        description="Read spectrum files (SDSS DR8+ spec-*.fits, DR7 spSpec-*.fit, or plain "
        "FITS/CSV/ECSV tables), attach labels from a catalogue, shift to the rest frame, resample "
        "onto a common grid, normalise, and write a chunked Zarr store. A bad file is reported "
        "with its reason and the rest carry on; exit status 1 says some were rejected.",
        epilog="example:\n  agnlens ingest spectra/ --labels labels.csv --grid balmer --out my.zarr",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, directories or glob patterns")
    p.add_argument("--labels", metavar="CATALOG",
                   help="label catalogue (CSV/ECSV/FITS) keyed by spec_id, plate/mjd/fiber or file name")
    p.add_argument("--grid", default="paper", choices=["paper", "balmer"],
                   help="wavelength grid (default: paper, 3729–5266 Å as in Peruzzi et al. 2021)")
    p.add_argument("--out", required=True, metavar="STORE", help="output Zarr store (directory)")
    p.add_argument("--allow-zwarning", action="store_true",
                   help="keep spectra whose ZWARNING makes the redshift unreliable")
    p.add_argument("--max-bad-fraction", type=fraction, default=0.1, metavar="F",
                   help="reject spectra with a larger share of the grid bad or uncovered (default 0.1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace STORE if it exists (only an agnlens store is ever replaced, never an input)")
    p.add_argument("--append", action="store_true", help="add to an existing STORE on the same grid")
    add_scheduler_argument(p)
    p.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                   help="files per parallel task (default 256)")
    p.set_defaults(run=run)


def run(args) -> int:
    from agnlens.errors import UsageError
    from agnlens.stages import Executor, ingest

    if args.append and args.overwrite:
        raise UsageError("--append and --overwrite contradict each other; pass one of them")
    args.inputs = unique_inputs("ingest", args.inputs)
    check_output(args.out, args.inputs, overwrite=args.overwrite or args.append)
    progress = None
    if args.append:
        from agnlens.io import expand_inputs

        progress = progress_bar(args, "ingest", len(expand_inputs(args.inputs)))
    summary = ingest(
        args.inputs, args.out, labels=args.labels, grid=args.grid, allow_zwarning=args.allow_zwarning,
        max_bad_fraction=args.max_bad_fraction, append=args.append, overwrite=args.overwrite,
        executor=Executor(args.scheduler, progress=args.progress), batch_size=args.batch_size, progress=progress,
    )
    report_rejections("ingest", summary.rejected)
    for line in summary.lines():
        print(line)
    if not summary.accepted:
        print("nothing was accepted; no store written")
    return summary.exit_status
