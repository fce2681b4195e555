"""The ``agnlens`` command line: a thin shell over the library.

Each subcommand lives in its own module of this package, which provides ``add_parser(subparsers)``
and ``run(args) -> int``; heavy imports stay inside ``run`` so that ``agnlens --help`` is fast.

Exit status: 0 success, 1 some inputs were rejected or a check failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from agnlens import __version__
from agnlens.errors import AgnlensError, UsageError

#: Subcommands, in the order ``--help`` lists them (module names in this package).
COMMANDS = [
    "demo", "simulate", "ingest", "info", "train", "evaluate", "classify", "explain", "baseline",
    "report", "download", "realism",
]

EPILOG = """\
example, the whole study on the built-in simulated sample:
  agnlens demo --out demo-out

example, your own spectra:
  agnlens ingest spectra/*.fits --labels labels.csv --grid paper --out my.zarr
  agnlens info my.zarr
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agnlens",
        description="Classify AGN optical spectra (type 1 / type 2 / intermediate) with an SVM and "
        "explain every decision with exact saliency maps.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"agnlens {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"agnlens.cli.{name}")
        module.add_parser(sub)
    return parser


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    root = logging.getLogger("agnlens")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    _setup_logging(args.verbose, args.quiet)
    args.progress = not args.quiet and sys.stderr.isatty()
    try:
        return int(args.run(args))
    except AgnlensError as exc:
        print(f"agnlens {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except (ValueError, TypeError) as exc:  # the library's word on bad input; -v shows the traceback
        if args.verbose:
            raise
        print(f"agnlens {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"agnlens {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
