"""``agnlens realism``: how well a classifier tells real spectra from simulated ones, per class."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "realism",
        help="measure the simulator's realism against real spectra (two-sample ROC AUC, feature table)",
        description="For each class with real spectra: simulate a twin of every real spectrum at its "
        "redshift and S/N, train discriminators (PCA + logistic regression, random forest, k-NN) to "
        "tell real from simulated with repeated stratified cross-validation, and report their ROC AUC "
        "(0.5: indistinguishable, 1.0: every real spectrum recognised); compare S/N, continuum slope, "
        "Dn4000, broad FWHMs and line ratios (KS, Wasserstein). Writes realism.json and realism.png "
        "into DIR. Rejected inputs are named on stderr (exit status 1).",
        epilog="example, the real spectra shipped with the tests (in a clone of the repository):\n"
        "  agnlens realism tests/data/sdss/spectra --labels tests/data/sdss/labels.csv --out realism/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="REAL", help="real spectra: FITS files, directories, globs or a store")
    p.add_argument("--labels", metavar="CSV", help="label catalogue for the files (spec_id/plate-mjd-fiber and label)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for realism.json and realism.png")
    p.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (default 5)")
    p.add_argument("--repeats", type=int, default=5, metavar="N", help="cross-validation repeats (default 5)")
    p.add_argument("--per-real", type=int, default=1, metavar="N", help="simulated twins per real spectrum (default 1)")
    p.add_argument("--seed", type=int, default=0, help="simulator and cross-validation seed")
    p.set_defaults(run=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from agnlens.atomic import atomic_path
    from agnlens.cli._common import report_rejections
    from agnlens.errors import UsageError
    from agnlens.realism import REALISM_GRID, realism
    from agnlens.stages import read_inputs

    if args.folds < 2 or args.repeats < 1 or args.per_real < 1:
        raise UsageError(
            f"--folds must be at least 2, --repeats and --per-real at least 1 (got {args.folds}, "
            f"{args.repeats}, {args.per_real})"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; give a folder for realism.json and realism.png")
    spectra, rejected = read_inputs(args.inputs, grid=REALISM_GRID, labels=args.labels)
    report_rejections("realism", rejected)
    if not len(spectra):
        print(f"agnlens realism: error: none of the {len(rejected)} inputs could be read", file=sys.stderr)
        return 2
    from agnlens.cli._common import convention_line

    # each twin is drawn from the simulator's sample of its real spectrum's class, as the study defines it
    print(f"simulated twins: {convention_line('study')}")
    result = realism(spectra, n_splits=args.folds, n_repeats=args.repeats, per_real=args.per_real, seed=args.seed)
    result.to_json(out / "realism.json")
    with atomic_path(out / "realism.png") as tmp:
        result.plot().savefig(tmp, dpi=110, format="png")
    for line in result.lines():
        print(f"realism (simulated vs real) {line}")
    print(f"wrote {out / 'realism.json'} and {out / 'realism.png'}; {len(rejected)} rejected")
    return 1 if rejected else 0
