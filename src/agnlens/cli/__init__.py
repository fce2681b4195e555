"""The ``agnlens`` command line: a thin shell over the library.

Each subcommand lives in its own module of this package, which provides ``add_parser(subparsers)``
and ``run(args) -> int``; heavy imports stay inside ``run`` so that ``agnlens --help`` is fast.

Exit status: 0 all inputs accepted, 1 some were rejected (or some chunks of a parallel run failed
and were kept for a resume), 2 a usage error or an unusable input (a bad option, a missing or
damaged store or model, an output that would overwrite an input...). Every error is one line on
stderr; ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys

from agnlens._version import __version__
from agnlens.errors import AgnlensError

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


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors in one line (``agnlens ingest: error: ...``; ``--help`` for more)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="agnlens",
        description="Classify AGN optical spectra (type 1 / type 2 / intermediate) with an SVM and "
        "explain every decision with exact saliency maps.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"agnlens {__version__}")
    _add_verbosity(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"agnlens.cli.{name}")
        module.add_parser(sub)
        # before or after the command: agnlens -v classify ... and agnlens classify ... -v
        _add_verbosity(sub.choices[name], default=argparse.SUPPRESS)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, default) -> None:
    """``-v/--verbose`` and ``-q/--quiet``; a subcommand's use ``SUPPRESS`` so that they only
    ever set, never reset, what was given before the command."""
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", default=default, help="log debugging detail")
    verbosity.add_argument("-q", "--quiet", action="store_true", default=default, help="only errors; no progress bars")


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    root = logging.getLogger("agnlens")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


class _OneLineFormatter(logging.Formatter):
    """Each log message on one line: control characters of file names in it escaped, so that a
    newline in a name cannot print a line that reads like agnlens's own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        from agnlens.atomic import shown

        return shown(super().formatMessage(record))


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
        # what a command holds until it returns (its output's lock: cli._common.claim_output)
        with contextlib.ExitStack() as args.resources:
            args.resources.enter_context(_terminate_as_interrupt())
            return int(args.run(args))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (timeout, Slurm, docker stop): work files removed
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
        print(f"agnlens {args.command}: stopped by {signal.Signals(signum).name}; finished outputs are kept, "
              "work files removed", file=sys.stderr)
        return 128 + int(signum)
    except (AgnlensError, ValueError, TypeError, OSError, RuntimeError) as exc:
        # the library's word on bad input or a failed run: one line; -v adds the traceback
        if args.verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        print(f"agnlens {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        # a run whose parts failed after the retries kept the rest for a resume: "some rejected"
        return 1 if isinstance(exc, RuntimeError) and not isinstance(exc, AgnlensError) else 2


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM raised as KeyboardInterrupt while a command runs (in the main thread), so that its
    clean-ups run as on Ctrl-C."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt(signum)

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:  # "[Errno 2] No such file..." -> "x: No such file..."
        text = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
