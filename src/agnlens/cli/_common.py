"""Helpers shared by the subcommands: progress bars and rejection reporting."""

from __future__ import annotations

import sys
from collections.abc import Iterable


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
