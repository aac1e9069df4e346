#!/usr/bin/env bash
# Set up and run the tests: the package with its dev tools in .venv, Meltano 4 in its own
# .venv-meltano (for the real `meltano run` tests: this repository's project, and the README's
# Meltano steps), tap-spreadsheets in .venv-tap-spreadsheets (a real CSV tap), then ruff, mypy, pytest,
# and the package build (scripts/check_package.sh: the sdist and the wheel built, their metadata checked,
# the wheel installed in a fresh virtualenv).
# Needs python3 (3.10+), pip and git, and installs the rest itself from the package index. The
# store's PostgreSQL tests start their own server (initdb + pg_ctl on 127.0.0.1): when PostgreSQL's
# server programs are missing, this script installs them with `apt-get install postgresql` (as root,
# or with sudo; elsewhere install PostgreSQL yourself). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

# The README's Meltano steps are Meltano 4 syntax: (re)install when missing or another major version.
if ! .venv-meltano/bin/meltano --version 2>/dev/null | grep 'version 4\.' >/dev/null; then
  if [ ! -x .venv-meltano/bin/python ]; then python3 -m venv .venv-meltano; fi
  .venv-meltano/bin/python -m pip install --quiet --upgrade pip
  .venv-meltano/bin/python -m pip install --quiet 'meltano>=4,<5'
fi

# A real CSV tap for the tests of dates and money as people write them (its own singer-sdk: its own venv).
if [ ! -x .venv-tap-spreadsheets/bin/tap-spreadsheets ]; then
  if [ ! -x .venv-tap-spreadsheets/bin/python ]; then python3 -m venv .venv-tap-spreadsheets; fi
  .venv-tap-spreadsheets/bin/python -m pip install --quiet 'tap-spreadsheets>=1.1,<2'
fi

if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy target_segmetrics
REQUIRE_POSTGRES=1 REQUIRE_MELTANO=1 REQUIRE_TAPS=1 MELTANO_BIN="$PWD/.venv-meltano/bin/meltano" .venv/bin/python -m pytest "$@"
scripts/check_package.sh
