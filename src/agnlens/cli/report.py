"""``agnlens report``: rebuild the HTML report of a results folder."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild DIR/report.html from the results folder of `agnlens demo`",
        description="Rebuild the self-contained HTML report (figures embedded, no network) from the "
        "files of a results folder written by `agnlens demo --out DIR`: metrics.json (required), the "
        "CSV tables and the figures. Sections whose files are missing are marked 'not computed'.",
        epilog="example:\n  agnlens report demo-out && xdg-open demo-out/report.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results_dir", metavar="DIR", help="results folder (contains metrics.json)")
    p.add_argument("-o", "--output", metavar="HTML", default=None,
                   help="write the page here instead of DIR/report.html")
    p.add_argument("--max-gallery", type=int, default=60, metavar="N",
                   help="embed at most N saliency figures per gallery group (default 60)")
    p.set_defaults(run=run)


def run(args) -> int:
    from agnlens.stages import report

    if args.max_gallery < 0:
        from agnlens.errors import UsageError

        raise UsageError(f"--max-gallery must be 0 or more, got {args.max_gallery}")
    if args.output is not None:
        from pathlib import Path

        from agnlens.cli._common import check_output

        results = Path(args.results_dir)
        inputs = [p for p in results.rglob("*") if p.is_file()] if results.is_dir() else []
        check_output(args.output, [results, *inputs], option="--output")
    path = report(args.results_dir, args.output, max_gallery=args.max_gallery)
    size = path.stat().st_size / 1024**2
    print(f"report: {path} ({size:.1f} MB)")
    return 0
