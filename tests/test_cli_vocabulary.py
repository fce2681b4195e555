"""One command-line vocabulary: every subcommand's ``--help``, parsed, names the shared options the
same way (``--out``, ``--model``, one parallelism option with one wording, ``--verbose/--quiet``)."""

from __future__ import annotations

import re

import pytest

from agnlens.cli import COMMANDS, build_parser, main
from agnlens.cli._common import SCHEDULER_HELP

#: Spellings the vocabulary replaced: an output is --out, parallel work --scheduler or --jobs.
RETIRED = {"-o", "--output", "--output-dir", "--outdir", "--workers", "--n-jobs", "-j", "--threads", "--processes"}
#: The one option of each command that parallelises (the rest run in one process).
PARALLEL = {"ingest": "--scheduler", "classify": "--scheduler", "explain": "--scheduler",
            "baseline": "--jobs", "download": "--jobs", "train": "--jobs"}
#: Commands that use a model (--model) and the one that only prints (no --out).
USES_MODEL = {"classify", "explain", "evaluate"}
PRINTS_ONLY = {"info"}


def _help(command: str, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "2000")  # one line per option: the help text unwrapped
    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


def _options(text: str) -> dict[str, str]:
    """``{option: its help}`` from the options section ("  -v, --verbose   help", the help on the
    same line or, after a long option, on the lines below)."""
    found: dict[str, str] = {}
    current: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^  (-\S.*?)(?:\s{2,}(.*))?$", line)
        if m:
            current = [invocation.split()[0] for invocation in m.group(1).split(", ")]
            for option in current:
                found[option] = (m.group(2) or "").strip()
        elif current and re.match(r"^\s{3,}\S", line):  # the help continued below the option
            for option in current:
                found[option] = f"{found[option]} {line.strip()}".strip()
        else:
            current = []
    return found


def _positionals(text: str) -> list[str]:
    section = text.split("positional arguments:", 1)[1].split("\n\n", 1)[0] if "positional arguments:" in text else ""
    return [line.split()[0] for line in section.splitlines() if re.match(r"^  \S", line)]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_speaks_the_shared_vocabulary(command, capsys, monkeypatch):
    text = _help(command, capsys, monkeypatch)
    options = _options(text)
    assert options, text
    assert not RETIRED & set(options), f"{command}: retired spellings {RETIRED & set(options)}"
    assert {"-v", "--verbose", "-q", "--quiet"} <= set(options), command
    if command not in PRINTS_ONLY:
        assert "--out" in options, f"{command} writes output but has no --out"
    if command in USES_MODEL:
        assert "--model" in options and "MODEL" not in _positionals(text), command
        assert "default: the built-in models" in options["--model"]
    parallel = {"--scheduler", "--jobs"} & set(options)
    assert parallel == ({PARALLEL[command]} if command in PARALLEL else set()), command
    if "--scheduler" in options:
        assert options["--scheduler"] == SCHEDULER_HELP
    if "--jobs" in options:
        assert re.fullmatch(r"parallel [\w -]+ on this machine \(-1: one per CPU; default (\d+|one per CPU)\)",
                            options["--jobs"]), options["--jobs"]


def test_the_top_level_help_lists_every_command_and_the_shared_flags(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert {"--verbose", "--quiet", "--version"} <= set(_options(text))
    assert all(re.search(rf"^\s+{c}\s", text, re.M) for c in COMMANDS)


@pytest.mark.parametrize(("argv", "verbose", "quiet"), [
    (["info", "x"], False, False),
    (["-v", "info", "x"], True, False),
    (["info", "x", "-v"], True, False),
    (["info", "x", "--quiet"], False, True),
    (["-q", "info", "x"], False, True),
])
def test_verbose_and_quiet_work_before_or_after_the_command(argv, verbose, quiet):
    args = build_parser().parse_args(argv)
    assert (args.verbose, args.quiet) == (verbose, quiet)


def test_jobs_takes_a_count_or_minus_one_and_refuses_the_rest(capsys):
    import os

    parser = build_parser()
    assert parser.parse_args(["baseline", "x", "--out", "o.csv", "--jobs", "3"]).jobs == 3
    assert parser.parse_args(["baseline", "x", "--out", "o.csv", "--jobs", "-1"]).jobs == max(1, os.cpu_count() or 1)
    for bad in ("0", "-2", "two"):
        assert main(["baseline", "x", "--out", "o.csv", "--jobs", bad]) == 2
        assert "--jobs" in capsys.readouterr().err
