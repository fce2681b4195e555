#!/usr/bin/env bash
# Lint (ruff) and type checks (mypy), as CI runs them. Needs the dev extra:
#   .venv/bin/pip install -e '.[dev]'
# Uses .venv/bin/python when present, else python3; extra arguments go to ruff (e.g. --fix).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
status=0
"$PY" -m ruff check src tests benchmarks scripts "$@" || status=1
"$PY" -m mypy src || status=1
exit $status
