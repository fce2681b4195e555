"""Helpers shared by the subcommands: progress bars, rejection reporting, argument checks,
the output contract (:func:`claim_output`) and de-duplication of inputs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

log = logging.getLogger(__name__)


def progress_bar(args, desc: str, total: int | None = None):
    """Return a wrapper for iterables that shows a tqdm bar when ``args.progress`` is set."""
    if not getattr(args, "progress", False):
        return None
    from tqdm.auto import tqdm

    def wrap(iterable: Iterable):
        return tqdm(iterable, desc=desc, total=total, unit="spectra", file=sys.stderr, leave=False)

    return wrap


def report_rejections(command: str, rejected) -> None:
    """One stderr line per rejected input: the file and the reason (control characters of a file
    name escaped: a newline in a name cannot print a line of its own)."""
    from agnlens.atomic import shown

    for item in rejected:
        print(f"agnlens {command}: rejected {shown(item)}", file=sys.stderr)


# ------------------------------------------------------------------ argument types (exit 2 on bad)
def _argument_type(name: str, cast: Callable[[str], Any], valid: Callable[[Any], bool], expected: str, rule: str):
    """An argparse ``type=`` that casts, checks and says in one line what it wanted."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    parse.__name__ = name
    return parse


#: argparse types (a bad value exits 2 with the rule): integers ≥ 1, finite numbers > 0 (seconds,
#: sizes), numbers in [0, 1], integers ≥ 0, finite numbers ≥ 0, integers ≥ 2 (folds).
positive_int = _argument_type("positive_int", int, lambda v: v >= 1, "a positive integer", "at least 1")
positive_float = _argument_type("positive_float", float, lambda v: 0 < v < float("inf"), "a number",
                                "a finite number above 0")
fraction = _argument_type("fraction", float, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1", "from 0 to 1")
nonnegative_int = _argument_type("nonnegative_int", int, lambda v: v >= 0, "an integer of 0 or more", "0 or more")
nonnegative_float = _argument_type("nonnegative_float", float, lambda v: 0 <= v < float("inf"), "a number",
                                   "a finite number of 0 or more")
at_least_two = _argument_type("at_least_two", int, lambda v: v >= 2, "an integer", "at least 2")


def scheduler(text: str) -> str:
    """argparse type of ``--scheduler``: local, processes or a Dask scheduler address."""
    from agnlens.engine import ADDRESS_PREFIXES

    if text in ("local", "processes") or (text.startswith(ADDRESS_PREFIXES) and "://" in text and not text.endswith("://")):
        return text
    raise argparse.ArgumentTypeError(f"expected local, processes or an address like tcp://host:8786, got {text!r}")


#: The help of ``--scheduler``, the same in every command that runs on Dask.
SCHEDULER_HELP = (
    "where the work runs: local (in this process, default), processes (a Dask LocalCluster of 2 workers "
    "on this machine) or tcp://HOST:PORT (an existing Dask cluster; dask-jobqueue clusters work too)"
)


def add_scheduler_argument(parser) -> None:
    """``--scheduler WHERE``: where a command that can run on Dask works (see
    :func:`agnlens.engine.get_client`). Commands whose parallel work stays on this machine take
    :func:`add_jobs_argument` instead; no command takes both."""
    parser.add_argument("--scheduler", default="local", type=scheduler, metavar="WHERE", help=SCHEDULER_HELP)


def jobs(text: str) -> int:
    """argparse type of ``--jobs``: a positive integer, or -1 for one per CPU (returned resolved)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or -1, got {text!r}") from None
    if value == -1:
        return max(1, os.cpu_count() or 1)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, or -1 for one per CPU, got {text}")
    return value


def add_jobs_argument(parser, what: str, default: int) -> None:
    """``--jobs N``: how many ``what`` run at once on this machine (-1: one per CPU), the same
    option in every command whose parallel work stays on this machine."""
    shown = "one per CPU" if default == -1 else str(default)
    parser.add_argument(
        "--jobs", type=jobs, default=jobs(str(default)), metavar="N",
        help=f"parallel {what} on this machine (-1: one per CPU; default {shown})",
    )


def add_model_argument(parser) -> None:
    """``--model MODEL``: the model of every command that uses one (default: the built-in models)."""
    parser.add_argument(
        "--model", metavar="MODEL", default="default",
        help="a model file (agnlens train), or default: the built-in models trained on SIMULATED spectra in "
        "the spectroscopic class convention, the balmer-grid one where a spectrum covers Hα, else the "
        "paper-grid one (each built on first use, ~30 s, and cached)",
    )


# -------------------------------------------------------------------------- inputs and outputs
def check_output(
    out, inputs: Iterable = (), *, overwrite: bool = True, option: str = "--out", adds_to_folder: bool = False
):
    """The output-path check of every command (:func:`agnlens.atomic.check_output`): never onto
    an input (or over a folder holding one); an existing output only with ``overwrite``.

    Folders and glob patterns are checked by what they expand to, and an output that the same
    inputs would read on the next run (a FITS name inside an input folder or matching an input
    pattern) is refused too."""
    import fnmatch

    from agnlens.atomic import check_output as check
    from agnlens.errors import UsageError
    from agnlens.io.inputs import FITS_SUFFIXES, expand_inputs

    given = [os.fspath(i) for i in inputs if i is not None]
    target = os.path.realpath(os.path.expanduser(out))
    expanded: list = []
    for item in given:
        try:
            expanded.extend(expand_inputs([item]))
        except (FileNotFoundError, OSError):  # the reader names what is missing
            continue
        folder = os.path.realpath(os.path.expanduser(item))
        inside = os.path.isdir(folder) and target.startswith(folder.rstrip(os.sep) + os.sep)
        pattern = any(c in item for c in "*?[") and fnmatch.fnmatch(target, os.path.realpath(item))
        if (inside and target.lower().endswith(FITS_SUFFIXES)) or pattern:
            raise UsageError(f"{option} {out} would be read as an input spectrum (it lies among the inputs of "
                             f"{item}); write the output somewhere else")
    return check(out, [*given, *expanded], overwrite=overwrite, option=option, adds_to_folder=adds_to_folder)


def add_overwrite_argument(parser, what: str = "--out") -> None:
    """``--overwrite``: the one switch that lets a command replace an existing output."""
    parser.add_argument(
        "--overwrite", action="store_true",
        help=f"replace an existing {what} (only what agnlens writes there: other files in a folder are kept); "
        "without it an existing output is refused",
    )


def claim_output(args, inputs: Iterable = (), *, folder: bool = False, companions: Iterable = (),
                 option: str = "--out"):
    """The output contract of every command, one call before any work.

    * the output (and each companion file written beside it, e.g. a provenance sidecar) has a name
      the file system can hold;
    * it never is, or resolves into, an input: folders and glob patterns are checked by what
      they expand to (:func:`check_output`), and a results folder never holds an input;
    * it is locked like a store (:func:`agnlens.atomic.exclusive_lock`) until the command returns:
      a second run writing the same output waits, then is refused in one line, so a results file
      and its provenance always come from one run;
    * under the lock, an existing output (a file, a companion, or a folder that is not empty) is
      refused without ``--overwrite`` (``args.overwrite``).

    Parameters
    ----------
    args : argparse.Namespace
        The command's arguments: ``args.out`` (None: nothing to claim), ``args.overwrite`` and
        ``args.resources`` (the :class:`contextlib.ExitStack` of :func:`agnlens.cli.main` that
        holds the lock until the command returns).
    inputs : iterable of path-like or None
        What the command reads.
    folder : bool
        ``args.out`` is a results folder (agnlens adds its files; other files are kept).
    companions : iterable of path-like
        Files written beside the output.
    option : str
        The option's name, for the messages.

    Returns
    -------
    pathlib.Path or None
    """
    import shutil
    from pathlib import Path

    from agnlens.atomic import check_name_length, exclusive_lock, leftovers
    from agnlens.errors import UsageError

    out = getattr(args, option.lstrip("-").replace("-", "_"))
    if out is None:
        return None
    out = Path(out)
    companions = [Path(c) for c in companions]
    for path in (out, *companions):
        check_name_length(path, option)
    check_output(out, inputs, option=option, adds_to_folder=False)
    stack = getattr(args, "resources", None)
    if stack is not None:
        stack.enter_context(exclusive_lock(out))
    overwrite = getattr(args, "overwrite", False)
    if folder:
        if out.exists() and not out.is_dir():
            raise UsageError(f"{option} {out} exists and is not a folder; give a folder for the results")
        for stale in leftovers(out):  # under the lock: what a killed run left
            log.warning("removing %s, left by a run that was killed", stale)
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        if not overwrite and out.is_dir() and any(out.iterdir()):
            raise UsageError(f"{option} {out} already exists and is not empty; pass --overwrite to replace "
                             "agnlens's files in it (other files are kept), or choose another name")
        return out
    if out.is_dir():
        raise UsageError(f"{option} {out} is a folder; give a file name")
    for path in (out, *companions):
        if os.path.lexists(path) and not overwrite:
            what = f"{option} {out}" if path == out else f"{option} {out}: the file written beside it, {path},"
            raise UsageError(f"{what} already exists; pass --overwrite to replace it, or choose another name")
    return out


def unique_inputs(command: str, inputs: Sequence[str]) -> list[str]:
    """``inputs`` with repeats removed (the same file or store under any spelling of its path),
    and one stderr line naming them."""
    seen: dict[str, str] = {}
    repeated = []
    for item in inputs:
        key = os.path.realpath(os.path.expanduser(item)) if os.path.exists(item) else item
        if key in seen:
            repeated.append(item if item == seen[key] else f"{item} (= {seen[key]})")
            continue
        seen[key] = item
    if repeated:
        from agnlens.atomic import shown

        print(
            f"agnlens {command}: warning: inputs given more than once, used once: {shown(', '.join(repeated))}",
            file=sys.stderr,
        )
    return list(seen.values())


def convention_line(convention: str | None) -> str:
    """One line naming the class convention a command trained, simulated or evaluated with, and
    how it relates to the built-in models' (spectroscopic; see :mod:`agnlens.classes`)."""
    if convention == "spectroscopic":
        return ("class convention: spectroscopic (broad Hβ with [O III]/Hβ ≤ 4 is type1, Seyfert 1.8/1.9 "
                "intermediate; the built-in models' convention)")
    if convention == "study":
        return ("class convention: study (the reference study's: intermediate = Seyfert 1.2-1.9; the built-in "
                "models answer in the spectroscopic one)")
    return "class convention: not recorded (the labels are the catalogue's own classes)"


def add_model_sha256_argument(parser) -> None:
    """``--model-sha256 HEX``: load the model only if the file has exactly this SHA-256."""
    parser.add_argument(
        "--model-sha256",
        metavar="HEX",
        help="refuse the model file unless its SHA-256 (sha256sum MODEL) is HEX (default "
        "$AGNLENS_MODEL_SHA256); the file's own hash only detects corruption, a pin also an edit",
    )


#: argparse type of ``--dpi``.
dpi_value = _argument_type("dpi", float, lambda v: 10 <= v <= 1200, "a number", "from 10 to 1200")


def add_figure_arguments(parser) -> None:
    """``--format png|pdf|svg`` and ``--dpi N``: how the figures are written."""
    from agnlens.plot.save import DPI, FORMATS

    parser.add_argument(
        "--format", dest="figure_format", choices=FORMATS, default="png",
        help="figure format (default png); pdf or svg writes each figure in that format too, beside "
        "a PNG of the same name (the HTML report embeds the PNGs)",
    )
    parser.add_argument("--dpi", type=dpi_value, default=DPI, metavar="N",
                        help=f"resolution of the PNG figures in dots per inch (default {DPI})")
