"""Helpers shared by the subcommands: progress bars, rejection reporting, argument checks,
the output-path check and de-duplication of inputs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any


def progress_bar(args, desc: str, total: int | None = None):
    """Return a wrapper for iterables that shows a tqdm bar when ``args.progress`` is set."""
    if not getattr(args, "progress", False):
        return None
    from tqdm.auto import tqdm

    def wrap(iterable: Iterable):
        return tqdm(iterable, desc=desc, total=total, unit="spectra", file=sys.stderr, leave=False)

    return wrap


def report_rejections(command: str, rejected) -> None:
    """One stderr line per rejected input: the file and the reason."""
    for item in rejected:
        print(f"agnlens {command}: rejected {item}", file=sys.stderr)


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
#: sizes), numbers in [0, 1], integers ≥ 0.
positive_int = _argument_type("positive_int", int, lambda v: v >= 1, "a positive integer", "at least 1")
positive_float = _argument_type("positive_float", float, lambda v: 0 < v < float("inf"), "a number",
                                "a finite number above 0")
fraction = _argument_type("fraction", float, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1", "from 0 to 1")
nonnegative_int = _argument_type("nonnegative_int", int, lambda v: v >= 0, "an integer of 0 or more", "0 or more")


def scheduler(text: str) -> str:
    """argparse type of ``--scheduler``: local, processes or a Dask scheduler address."""
    from agnlens.engine import ADDRESS_PREFIXES

    if text in ("local", "processes") or (text.startswith(ADDRESS_PREFIXES) and "://" in text and not text.endswith("://")):
        return text
    raise argparse.ArgumentTypeError(f"expected local, processes or an address like tcp://host:8786, got {text!r}")


def add_scheduler_argument(parser) -> None:
    """``--scheduler``: where the work runs (see :func:`agnlens.engine.get_client`)."""
    parser.add_argument(
        "--scheduler",
        default="local",
        type=scheduler,
        metavar="WHERE",
        help="local (in this process, default), processes (a Dask LocalCluster of 2 workers on this "
        "machine) or tcp://HOST:PORT (an existing Dask cluster; dask-jobqueue clusters work too)",
    )


# -------------------------------------------------------------------------- inputs and outputs
def check_output(
    out, inputs: Iterable = (), *, overwrite: bool = True, option: str = "--out", adds_to_folder: bool = False
):
    """The output-path check of every command (:func:`agnlens.atomic.check_output`): never onto
    an input (or over a folder holding one); an existing output only with ``overwrite``."""
    from agnlens.atomic import check_output as check

    return check(
        out, [i for i in inputs if i is not None], overwrite=overwrite, option=option, adds_to_folder=adds_to_folder
    )


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
        print(
            f"agnlens {command}: warning: inputs given more than once, used once: {', '.join(repeated)}",
            file=sys.stderr,
        )
    return list(seen.values())


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
