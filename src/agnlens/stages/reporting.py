"""The ``report`` stage: the HTML report of a results folder (:func:`agnlens.report.build_report`)."""

from __future__ import annotations

import os
from pathlib import Path

from agnlens.results import ResultsFolder


def report(folder: ResultsFolder | str | os.PathLike, output: str | os.PathLike | None = None, **options) -> Path:
    """Write the report of ``folder`` (default ``folder.report``) and return its path.

    ``options`` go to :func:`agnlens.report.build_report` (``max_gallery``).
    """
    from agnlens.report import build_report

    folder = folder if isinstance(folder, ResultsFolder) else ResultsFolder(folder)
    return build_report(folder.root, output=folder.report if output is None else Path(output), **options)
