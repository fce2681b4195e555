"""``agnlens demo``: the reference study end to end on the built-in simulated sample."""

from __future__ import annotations

import argparse
import sys

from agnlens.cli._common import (
    add_figure_arguments,
    add_overwrite_argument,
    claim_output,
    nonnegative_int,
    positive_int,
)

STAGES = [
    "simulate", "tune_binary", "tune_multiclass", "classify", "saliency", "measure",
    "lines", "embedding", "real", "report",
]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole study on the built-in simulated sample and write an HTML report",
        description="Reproduce Peruzzi et al. 2021 end to end: simulate 3,346 spectra (680 type 1, "
        "2,145 type 2, 521 intermediate), preprocess, split 64/16/20, tune SVMs for the two-class "
        "and three-class tasks on the validation split, score once on the test split, compute exact "
        "saliency maps for every misclassified and a random sample of test spectra, line-level "
        "explanations, a t-SNE map, and one self-contained report. Every score is labelled "
        "SIMULATED. The simulated sample is labelled in the reference study's class convention "
        "(intermediate = Seyfert 1.2-1.9), not the spectroscopic one of the built-in models.",
        epilog="example:\n  agnlens demo --out demo-out && xdg-open demo-out/report.html\n"
        "  agnlens demo --out small --n 600 --seed 3 --grid balmer\n"
        "  agnlens demo --out demo-out --real tests/data/sdss/spectra --labels tests/data/sdss/labels.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="demo-out", metavar="DIR", help="results folder (default demo-out)")
    p.add_argument("--n", type=positive_int, default=3346, help="number of simulated spectra (default 3346)")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the sample, split, tuning, saliency sample and t-SNE")
    p.add_argument("--grid", default="paper", choices=["paper", "balmer"], help="wavelength grid (default paper)")
    p.add_argument("--store", metavar="STORE", help="study a labelled store instead of the simulated sample")
    p.add_argument("--real", metavar="DIR", help="real spectra (FITS files, folders, globs) to classify, measure and "
                   "explain beside the study: the report's real-data section")
    p.add_argument("--labels", metavar="CSV", help="label catalogue of the --real spectra (spec_id, label)")
    p.add_argument("--n-random", type=nonnegative_int, default=30, metavar="N",
                   help="random test spectra to explain besides the misclassified (default 30)")
    add_figure_arguments(p)
    add_overwrite_argument(p, "--out folder")
    p.set_defaults(run=run)


def run(args) -> int:
    from agnlens.errors import UsageError
    from agnlens.pipeline import run_study

    if args.n < 60:
        raise UsageError(f"--n must be at least 60 to split three classes, got {args.n}")
    claim_output(args, [args.store, args.real, args.labels], folder=True)
    spectra = None
    real = real_measure = None
    if args.labels and not args.real:
        raise UsageError("--labels goes with --real DIR (the labels of the real spectra)")
    if args.real:
        from agnlens.cli._common import report_rejections
        from agnlens.stages import read_inputs

        real, rejected = read_inputs([args.real], grid=args.grid, labels=args.labels)
        report_rejections("demo", rejected)
        if len(real) == 0:
            raise UsageError(f"--real {args.real}: no spectrum could be read onto the {args.grid} grid")
        if args.grid != "balmer":  # the Hα measurements need the balmer grid
            real_measure, _ = read_inputs([args.real], grid="balmer", labels=args.labels)
    if args.store:
        from agnlens.io.store import open_store

        spectra = open_store(args.store, lazy=False)
    from agnlens.cli._common import convention_line
    from agnlens.stages import convention_of

    print(convention_line("study" if spectra is None else convention_of(spectra.provenance)))
    bar = None
    if args.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(STAGES), desc="demo", unit="stage", file=sys.stderr, leave=False)

    def on_stage(name: str) -> None:
        if bar is not None:
            bar.set_postfix_str(name)
            bar.n = STAGES.index(name) if name in STAGES else bar.n
            bar.refresh()

    try:
        result = run_study(
            args.out, spectra=spectra, n=args.n, seed=args.seed, grid=args.grid,
            n_random_saliency=args.n_random, on_stage=on_stage, real=real, real_measure=real_measure,
            real_source=args.real or "", figure_format=args.figure_format, dpi=args.dpi,
        )
    finally:
        if bar is not None:
            bar.close()
    print("\n".join(result.summary_lines()))
    return 0
