"""``agnlens report``: the HTML report of any results folder."""

from __future__ import annotations

import argparse

from agnlens.cli._common import nonnegative_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write DIR/report.html from any results folder (agnlens demo or agnlens explain)",
        description="Write a self-contained HTML report (figures embedded, no network) from the files of "
        "a results folder. A study (`agnlens demo --out DIR`, with its metrics.json) gets the study's "
        "sections, those whose files are missing marked 'not computed'. Explained or classified spectra "
        "(`agnlens explain SPECTRA --out DIR`, or a folder holding a predictions.csv as `agnlens classify` "
        "writes it) get one row per spectrum (prediction, probabilities, flags with reasons, physical "
        "measurements), the line contributions, the saliency figures, their place on a t-SNE map of the "
        "model's training sample and the disagreements with the physics baseline, as far as the folder "
        "has them.",
        epilog="examples:\n  agnlens report demo-out && xdg-open demo-out/report.html\n"
        "  agnlens explain spectra/ --out explained && agnlens report explained\n"
        "  agnlens report explained --out explained.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results_dir", metavar="DIR", help="results folder (of agnlens demo or agnlens explain)")
    p.add_argument("--out", metavar="HTML", default=None, help="write the page here instead of DIR/report.html")
    p.add_argument("--max-gallery", type=nonnegative_int, default=60, metavar="N",
                   help="embed at most N saliency figures per gallery group (default 60)")
    from agnlens.cli._common import add_overwrite_argument

    add_overwrite_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from agnlens.stages import report

    if args.max_gallery < 0:
        from agnlens.errors import UsageError

        raise UsageError(f"--max-gallery must be 0 or more, got {args.max_gallery}")
    if args.out is not None:
        from pathlib import Path

        from agnlens.cli._common import claim_output

        results = Path(args.results_dir)
        inputs = [p for p in results.rglob("*") if p.is_file()] if results.is_dir() else []
        claim_output(args, [results, *inputs])
    path = report(args.results_dir, args.out, max_gallery=args.max_gallery)
    size = path.stat().st_size / 1024**2
    print(f"report: {path} ({size:.1f} MB)")
    return 0
