"""``agnlens realism``: how well a classifier tells real spectra from simulated ones, per class."""

from __future__ import annotations

import argparse

from agnlens.cli._common import add_overwrite_argument, at_least_two, nonnegative_int, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "realism",
        help="measure the simulator's realism against real spectra (two-sample ROC AUC, feature table)",
        description="For each class with real spectra: simulate a twin of every real spectrum at its "
        "redshift and S/N, train discriminators (PCA + logistic regression, random forest, k-NN) to "
        "tell real from simulated with repeated stratified cross-validation, and report their ROC AUC "
        "(0.5: indistinguishable, 1.0: every real spectrum recognised); compare S/N, continuum slope, "
        "Dn4000, broad FWHMs and line ratios (KS, Wasserstein; on 400 twins of their own, at least one "
        "per real spectrum); for the intermediates, check that the real spectra's median broad/narrow "
        "Hα, broad Hα FWHM, narrow FWHM and [O III] EW lie inside the 16–84 % range of simulated Seyfert "
        "1.8/1.9s at their redshifts and S/N. Writes realism.json and realism.png into DIR. Rejected "
        "inputs are named on stderr (exit status 1).",
        epilog="example, the real spectra shipped with the tests (in a clone of the repository):\n"
        "  agnlens realism tests/data/sdss/spectra --labels tests/data/sdss/labels.csv --out realism/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="REAL", help="real spectra: FITS files, directories, globs or a store")
    p.add_argument("--labels", metavar="CSV", help="label catalogue for the files (spec_id/plate-mjd-fiber and label)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for realism.json and realism.png")
    p.add_argument("--folds", type=at_least_two, default=5, metavar="K", help="cross-validation folds (default 5)")
    p.add_argument("--repeats", type=positive_int, default=5, metavar="N", help="cross-validation repeats (default 5)")
    p.add_argument("--per-real", type=positive_int, default=1, metavar="N",
                   help="simulated twins per real spectrum in the two-sample test (default 1)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="simulator and cross-validation seed")
    add_overwrite_argument(p, "--out folder")
    p.set_defaults(run=run)


def run(args) -> int:
    import sys

    from agnlens.cli._common import claim_output, report_rejections
    from agnlens.plot.save import save_figure
    from agnlens.realism import REALISM_GRID, realism
    from agnlens.stages import read_inputs

    out = claim_output(args, [*args.inputs, args.labels], folder=True)
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
    save_figure(result.plot(), out / "realism.png", dpi=110)
    for line in result.lines():
        print(f"realism (simulated vs real) {line}")
    print(f"wrote {out / 'realism.json'} and {out / 'realism.png'}; {len(rejected)} rejected")
    return 1 if rejected else 0
