#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine, then run it.
#   - a virtual environment in .venv with agnlens and its test extras
#   - headless Chromium (Debian packages chromium, chromium-driver) for the report's browser test
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -m "not browser"  or  -k store
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing headless Chromium from Debian packages for the browser test..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "note: chromium is not installed; the browser test will fail." >&2
    echo "      install the Debian packages chromium and chromium-driver, or run with -m 'not browser'" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
