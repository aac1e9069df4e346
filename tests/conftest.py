"""Fixtures: a running sandbox, two runners of the target (in-process by default, or the installed
console script as a separate process), and a guard against runs that leave threads or sockets behind.

Builders, fault policies and the runners themselves are in helpers.py.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import ACCOUNT, API_KEY, INTEGRATION, Run, run_in_process, run_process, singer_text
from pg_server import PostgresServer, ServerUnavailableError

from target_segmetrics.sandbox import Sandbox

LEFTOVERS_GRACE_SECONDS = 5.0


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on 127.0.0.1 for the whole session (see pg_server.py). Without one:
    skipped, unless REQUIRE_POSTGRES=1 (scripts/test.sh), then the test fails."""
    try:
        server = PostgresServer().start()
    except (ServerUnavailableError, OSError, subprocess.SubprocessError) as exc:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but no PostgreSQL server could be started: {exc}")
        pytest.skip(f"no PostgreSQL server could be started (set REQUIRE_POSTGRES=1 to fail instead): {exc}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a new, empty database on the session's server (postgresql://...)."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store_config(request, tmp_path):
    """The store settings of each back end: the SQLite file in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return {"state_db_path": str(tmp_path / "store.sqlite3")}
    return {"state_db_url": request.getfixturevalue("postgres_url")}


@pytest.fixture
def sandbox():
    with Sandbox(api_key=API_KEY, account_id=ACCOUNT, integration_ids=(INTEGRATION, "int2")) as server:
        yield server


def _input_file(tmp_path: Path, messages) -> Path:
    if isinstance(messages, (str, Path)):
        return Path(messages)
    path = tmp_path / "input.singer"
    path.write_text(singer_text(messages))
    return path


def _config_file(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def run_target(tmp_path):
    """Run the target in this process, as `target-segmetrics --config FILE --input FILE` (its click
    command), over Singer input (a file path or a list of messages). Returns a :class:`Run`."""

    def run(config: dict, messages, *, timeout: float = 120) -> Run:
        return run_in_process(_config_file(tmp_path, config), _input_file(tmp_path, messages), timeout=timeout)

    return run


@pytest.fixture
def run_target_process(tmp_path):
    """Run the installed console script as a separate process, the input on stdin: for what only a
    process shows (signals, exit codes after abandoned requests, the environment, the script itself)."""

    def run(config: dict, messages, *, timeout: float = 120) -> Run:
        text = Path(messages).read_text() if isinstance(messages, (str, Path)) else singer_text(messages)
        return run_process(_config_file(tmp_path, config), text, timeout=timeout)

    return run


def _socket_fds() -> set[str]:
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            fds.add(target)
    return fds


def _global_state() -> dict:
    """What a run of the CLI may change in the interpreter (pytest's own log handlers aside)."""
    return {
        "signal handlers": [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)],
        "root log handlers": [h for h in logging.getLogger().handlers if not type(h).__module__.startswith("_pytest")],
        "root log level": logging.getLogger().level,
        "excepthook": sys.excepthook,
        "os._exit": os._exit,
    }


@pytest.fixture(autouse=True)
def no_leftovers():
    """After each test (and its fixtures): no thread it started still runs, no socket it opened is
    open, and the interpreter's signal handlers, root logger and excepthook are as they were."""
    threads = set(threading.enumerate())
    sockets = _socket_fds()
    before = _global_state()
    yield
    assert _global_state() == before
    deadline = time.monotonic() + LEFTOVERS_GRACE_SECONDS
    while True:
        stray = [t for t in set(threading.enumerate()) - threads if t.is_alive() and not t.daemon]
        opened = _socket_fds() - sockets
        if (not stray and not opened) or time.monotonic() > deadline:
            break
        gc.collect()  # a socket that nothing refers to any more is closed by the collector
        time.sleep(0.05)
    assert not stray, f"non-daemon threads left running: {[t.name for t in stray]}"
    assert not opened, f"sockets left open: {sorted(opened)}"


# --- Meltano ------------------------------------------------------------------------------------


def meltano_executable() -> str | None:
    """MELTANO_BIN, else the .venv-meltano scripts/test.sh makes, else a meltano on PATH."""
    for candidate in (
        os.environ.get("MELTANO_BIN"),
        str(Path(__file__).parent.parent / ".venv-meltano" / "bin" / "meltano"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("meltano")


@pytest.fixture(scope="module")
def meltano():
    """The meltano executable the Meltano tests run (skipped without one, unless REQUIRE_MELTANO)."""
    exe = meltano_executable()
    if exe is None:
        if os.environ.get("REQUIRE_MELTANO"):
            pytest.fail("meltano is required (REQUIRE_MELTANO is set) but was not found")
        pytest.skip("meltano is not installed (scripts/test.sh installs it into .venv-meltano)")
    return exe


UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/unit is a unit test (``-m unit``): no sockets, no processes."""
    for item in items:
        if UNIT in Path(item.path).parents:
            item.add_marker(pytest.mark.unit)
