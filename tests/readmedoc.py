"""The README as the test suite reads it: its sections, code blocks and commands.

The README's commands are run exactly as written, from a temporary working directory that looks
like the root of a plain clone (``tests/data/sdss`` copied in). Only the ``.venv/bin/agnlens``
prefix is replaced by this test environment's own ``agnlens`` (the tests do not build a second
virtual environment).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The command of this test environment, standing in for the README's ``.venv/bin/agnlens``.
AGNLENS = Path(sys.executable).with_name("agnlens")
VENV_AGNLENS = ".venv/bin/agnlens"


def section(title: str, text: str | None = None) -> str:
    """The body of the README's ``## title`` section (up to the next ``## `` heading)."""
    text = README.read_text("utf-8") if text is None else text
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    if match is None:
        raise LookupError(f"README.md has no section '## {title}'")
    return match.group(1)


def code_blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of one language in ``text``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def commands(block: str) -> list[str]:
    """The command lines of a bash block, comments and blank lines dropped."""
    lines = (line.split(" #", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def quick_start_demo() -> list[str]:
    """The quick start's first command, checked for its shape (make a venv, install, run the demo);
    returns the demo part as an argument list."""
    first = commands(code_blocks(section("Quick start"), "bash")[0])[0]
    steps = [s.strip() for s in first.split("&&")]
    assert steps[:2] == ["python3 -m venv .venv", ".venv/bin/pip install ."], first
    assert len(steps) == 3 and steps[2].startswith(f"{VENV_AGNLENS} demo "), first
    return shlex.split(steps[2])


def own_spectra_commands() -> list[list[str]]:
    """The commands of '## Your own spectra', each an argument list."""
    out = []
    for line in commands(code_blocks(section("Your own spectra"), "bash")[0]):
        argv = shlex.split(line)
        assert argv[0] == VENV_AGNLENS, f"README command not run through the venv's agnlens: {line}"
        out.append(argv)
    return out


def make_clone(where: Path) -> Path:
    """A working directory shaped like the root of a plain clone, as far as the README's commands
    read it: ``tests/data/sdss`` (the real spectra and their labels)."""
    shutil.copytree(ROOT / "tests" / "data" / "sdss", where / "tests" / "data" / "sdss")
    return where


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (f"`{shlex.join(self.argv)}` exited {self.returncode}\n"
                f"stdout:\n{self.stdout[-2000:]}\nstderr:\n{self.stderr[-4000:]}")


def run(argv: list[str], cwd: Path, timeout: float = 1200) -> Run:
    """Run a README command (``.venv/bin/agnlens`` → this environment's ``agnlens``) in ``cwd``."""
    real = [str(AGNLENS) if a == VENV_AGNLENS else a for a in argv]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(real, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return Run(argv, done.returncode, done.stdout, done.stderr)
