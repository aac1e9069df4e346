#!/usr/bin/env bash
# Set up and run the tests: the package with its dev tools in .venv, Meltano in its own
# .venv-meltano (for the one real `meltano run` test), then ruff, mypy and pytest.
# Needs only python3 (3.10+), pip and git. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

if [ ! -x .venv-meltano/bin/meltano ]; then
  python3 -m venv .venv-meltano
  .venv-meltano/bin/python -m pip install --quiet --upgrade pip
  .venv-meltano/bin/python -m pip install --quiet 'meltano>=3.5,<5'
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy target_segmetrics
REQUIRE_MELTANO=1 MELTANO_BIN="$PWD/.venv-meltano/bin/meltano" .venv/bin/python -m pytest "$@"
