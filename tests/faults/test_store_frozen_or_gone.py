"""The PostgreSQL store freezes (the server stops answering, its connections stay open) or goes away in
the middle of a run. The run never hangs: every store call is bounded in time (connecting, a statement,
a lock wait), the run stops with one ERROR line (never the password, never a traceback), the summary is
printed, the exit code is not 0, and every STATE printed is kept: what it passes either landed in
SegMetrics or is parked in the store. SIGTERM while the store is frozen ends the run within seconds.

A real PostgreSQL (the session's server) behind a TCP proxy on 127.0.0.1 (tcp_proxy.py) that freezes
or goes away, so the server the other tests share is never touched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time

import psycopg
import pytest
from helpers import DOCS, base_config, record, schema, singer_text, start_process, state, target_executable
from tcp_proxy import TcpProxy

from target_segmetrics.store import Store, StoreUnavailableError

PASSWORD = "pw-Fr0zen-5e1d"  # trust authentication on the test server: accepted, never checked
LOGGER = logging.getLogger("test-store")
USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}})
INVOICES = schema("invoices", {"id": {"type": "string"}, "contact": {"type": "string"}, "total": {"type": "integer"}})
OWNERS = schema("owners", {"id": {"type": "string"}, "email": {"type": "string"}})
MAPPINGS = {
    "owners": {"lookup": {"key": "id"}},
    "users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}},
    "invoices": {
        "object": "invoice",
        "fields": {
            "id": "id",
            "contact_id": "contact",
            "amount": "total",
            "paid": "total",
            "date_created": {"value": "2024-04-01"},
        },
        "items": {"fields": {"name": {"value": "Plan"}, "product_id": {"value": "plan"}, "amount": "total"}},
    },
}
RECORDS = 3000
STOP_BOUND_SECONDS = 20.0
"""A stop must end well within this (it takes a few seconds); the store's own bound is set far above it."""

pytestmark = [pytest.mark.slow, pytest.mark.timing]


def messages() -> list[dict]:
    """Users, invoices of contacts SegMetrics never holds (each one is parked in the store), rows of a
    lookup stream (kept in the store), a STATE ``{"done": n}`` after every 10 of each."""
    out = [USERS, INVOICES, OWNERS]
    for i in range(RECORDS):
        out.append(record("owners", {"id": f"o{i}", "email": f"owner{i}@example.com"}))
        out.append(record("users", {"id": i, "email": f"u{i}@example.com"}))
        out.append(record("invoices", {"id": f"inv{i}", "contact": f"nobody{i}", "total": 100}))
        if (i + 1) % 10 == 0:
            out.append(state({"done": i + 1}))
    return out


@pytest.fixture
def proxied(postgres_server):
    """A new database on the session's server, reached through a proxy: (proxy, url through it, direct url)."""
    direct = postgres_server.new_database()
    with TcpProxy(postgres_server.port) as proxy:
        through = direct.replace(f"127.0.0.1:{postgres_server.port}", f"127.0.0.1:{proxy.port}")
        yield proxy, through.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@"), direct


def start(sandbox, tmp_path, **settings) -> subprocess.Popen:
    """The run as a process; its log goes to tmp_path/stderr.log (read by :func:`ended`)."""
    sandbox.set_latency(5)
    config = base_config(sandbox, mappings=MAPPINGS, max_concurrency=4, skip_unchanged=True, **settings)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with (tmp_path / "stderr.log").open("w") as log:
        return start_process(path, messages(), stderr=log)


def first_states(proc: subprocess.Popen, enough: int) -> list[dict]:
    """The STATE lines printed until one passes ``enough`` records (the run is well under way)."""
    states = []
    for line in proc.stdout:
        states.append(json.loads(line))
        if states[-1]["done"] >= enough:
            return states
    pytest.fail(f"the run ended before {enough} records")


@contextlib.contextmanager
def killed_at_the_end(proc: subprocess.Popen):
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def ended(proc: subprocess.Popen, since: float, tmp_path) -> tuple[str, str, float]:
    """What the run printed from now to its end (STATE lines, its whole log), and how long after ``since``
    it ended. (Not ``communicate``: it would wait on the feeder's stdin, which a hung run never reads.)"""
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        log = (tmp_path / "stderr.log").read_text()
        pytest.fail(f"the run did not end 60 s after the store stopped answering: {log[-3000:]}")
    took = time.monotonic() - since
    return proc.stdout.read(), (tmp_path / "stderr.log").read_text(), took


def assert_every_state_is_kept(sandbox, direct_url: str, states: list[dict]) -> None:
    """Every STATE printed passes only what landed or what the store keeps (read from the server itself)."""
    assert states
    done = states[-1]["done"]
    with psycopg.connect(direct_url) as conn:
        parked = {json.loads(text)["id"] for (text,) in conn.execute("SELECT record FROM parked")}
        rows = {key for (key,) in conn.execute("SELECT key FROM lookup_rows")}
    contacts = {c["contact_id"] for c in sandbox.contacts()}
    assert {str(i) for i in range(done)} <= contacts
    assert {f"inv{i}" for i in range(done)} <= parked, "a STATE passed an invoice the store does not keep"
    assert {f"o{i}" for i in range(done)} <= rows, "a STATE passed a lookup row the store does not keep"


def assert_one_clean_error(err: str, *wanted: str) -> str:
    errors = [line for line in err.splitlines() if "| ERROR" in line or "| CRITICAL" in line]
    assert len(errors) == 1, err[-3000:]
    for text in wanted:
        assert text in errors[0], errors[0]
    assert "Traceback" not in err, err[-3000:]
    assert PASSWORD not in err
    assert "Run summary (" in err, err[-3000:]
    return errors[0]


def documented(start: str) -> re.Pattern:
    """The Troubleshooting entry of docs/operations.md that starts so, as a pattern of the line printed."""
    page = (DOCS / "operations.md").read_text().split("## Troubleshooting", 1)[1]
    entry = next(e for e in re.findall(r"^- \*\*`(.+?)`\*\*", page, flags=re.M) if e.startswith(start))
    pattern = re.escape(entry).replace(re.escape("user:***@host:5432/db"), r"postgres:\*\*\*@127\.0\.0\.1:\d+/\w+")
    return re.compile(re.sub(r"\d+s", r"\\d+s", pattern).replace(re.escape("; ..."), ".*?"))


def test_a_store_that_freezes_mid_run_stops_it_in_one_line_with_the_state_it_keeps(sandbox, tmp_path, proxied):
    proxy, url, direct = proxied
    proc = start(sandbox, tmp_path, state_db_url=url, state_db_timeout=2)
    with killed_at_the_end(proc):
        states = first_states(proc, 100)
        proxy.freeze()
        frozen = time.monotonic()
        out, err, took = ended(proc, frozen, tmp_path)
    assert proc.returncode == 1
    assert took < STOP_BOUND_SECONDS, (took, err[-3000:])
    line = assert_one_clean_error(err, "did not answer within", "postgresql+psycopg://postgres:***@127.0.0.1")
    assert "did not answer within 5s (state_db_timeout 2s" in line
    assert documented("The store postgresql+psycopg://user:***@host:5432/db did not answer within").search(line)
    assert PASSWORD not in out
    states += [json.loads(text) for text in out.splitlines()]
    proxy.thaw()
    assert_every_state_is_kept(sandbox, direct, states)


def test_sigterm_while_the_store_is_frozen_stops_within_seconds(sandbox, tmp_path, proxied):
    """The store's own bound (300 s) is far longer than the stop: SIGTERM does not wait for it."""
    proxy, url, direct = proxied
    proc = start(sandbox, tmp_path, state_db_url=url, state_db_timeout=300)
    with killed_at_the_end(proc):
        states = first_states(proc, 100)
        proxy.freeze()
        deadline = time.monotonic() + 30
        while proxy.held == 0:  # a store call is waiting for an answer that never comes
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # well into the wait (senders and the reader both stuck on the store)
        assert proc.poll() is None  # still running: the store's bound is 300 s
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        out, err, took = ended(proc, sent, tmp_path)
    assert proc.returncode == 128 + signal.SIGTERM
    assert took < STOP_BOUND_SECONDS, (took, err[-3000:])
    assert_one_clean_error(err, "Stopped by SIGTERM")
    states += [json.loads(text) for text in out.splitlines()]
    proxy.thaw()
    assert_every_state_is_kept(sandbox, direct, states)


def test_sigterm_while_the_reader_waits_on_a_frozen_store_stops_within_seconds(sandbox, tmp_path, proxied):
    """Nothing in flight: the run's reader itself waits for the store (lookup rows written before a STATE)
    when SIGTERM comes. The store's own bound (300 s) is far longer than the stop."""
    proxy, url, direct = proxied
    path = tmp_path / "config.json"
    path.write_text(json.dumps(base_config(sandbox, mappings=MAPPINGS, state_db_url=url, state_db_timeout=300)))
    chunks = [
        singer_text(
            [
                *(record("owners", {"id": f"o{i}", "email": f"owner{i}@example.com"}) for i in range(n, n + 10)),
                state({"done": n + 10}),
            ]
        )
        for n in range(0, RECORDS, 10)
    ]
    with (tmp_path / "stderr.log").open("w") as log:
        proc = subprocess.Popen(
            [target_executable(), "--config", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
        )

    def feed() -> None:  # slowly: the run is still reading when the store freezes
        try:
            proc.stdin.write(singer_text([OWNERS]).encode())
            for chunk in chunks:
                proc.stdin.write(chunk.encode())
                proc.stdin.flush()
                time.sleep(0.02)
            proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the target was stopped

    threading.Thread(target=feed, name="test-slow-feeder", daemon=True).start()
    with killed_at_the_end(proc):
        states = first_states(proc, 100)
        proxy.freeze()
        deadline = time.monotonic() + 30
        while proxy.held == 0:  # the reader's write before the next STATE waits for an answer
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        assert proc.poll() is None  # still waiting: the store's bound is 300 s
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        out, err, took = ended(proc, sent, tmp_path)
    assert proc.returncode == 128 + signal.SIGTERM
    assert took < STOP_BOUND_SECONDS, (took, err[-3000:])
    assert_one_clean_error(err, "Stopped by SIGTERM")
    assert "was left in the middle of a call by the stop: what it had not written yet is not kept" in err
    assert "| WARNING  | psycopg" not in err  # its clean-up of the abandoned connection says nothing more
    states += [json.loads(text) for text in out.decode().splitlines()]
    with psycopg.connect(direct) as conn:
        rows = {key for (key,) in conn.execute("SELECT key FROM lookup_rows")}
    assert {f"o{i}" for i in range(states[-1]["done"])} <= rows


def test_a_store_gone_mid_run_stops_it_in_one_line_and_the_summary_is_printed(sandbox, tmp_path, proxied):
    proxy, url, direct = proxied
    proc = start(sandbox, tmp_path, state_db_url=url)
    with killed_at_the_end(proc):
        states = first_states(proc, 100)
        proxy.gone()
        out, err, took = ended(proc, time.monotonic(), tmp_path)
    assert proc.returncode == 1
    assert took < STOP_BOUND_SECONDS, (took, err[-3000:])
    line = assert_one_clean_error(err, "The store postgresql+psycopg://postgres:***@127.0.0.1")
    assert documented("The store postgresql+psycopg://user:***@host:5432/db failed (").search(line), line
    assert PASSWORD not in out
    states += [json.loads(text) for text in out.splitlines()]
    assert_every_state_is_kept(sandbox, direct, states)


# --- each store call on its own: connecting, a statement, a lock wait --------------------------------


def test_connecting_to_a_frozen_server_is_bounded(proxied):
    proxy, url, _direct = proxied
    proxy.freeze()
    began = time.monotonic()
    with pytest.raises(StoreUnavailableError) as failed:
        Store(":unused:", "dest", LOGGER, url=url, timeout=2)
    assert time.monotonic() - began < STOP_BOUND_SECONDS
    message = str(failed.value)
    assert "cannot be reached" in message and "nothing was sent" in message
    assert PASSWORD not in message and "\n" not in message


def test_a_statement_the_frozen_server_never_answers_is_bounded_and_the_store_is_then_known_gone(proxied):
    proxy, url, _direct = proxied
    store = Store(":unused:", "dest", LOGGER, url=url, timeout=2)
    try:
        proxy.freeze()
        store.park("invoices", "inv1", "{}", "its contact")
        began = time.monotonic()
        with pytest.raises(StoreUnavailableError) as failed:
            store.commit()
        assert time.monotonic() - began < STOP_BOUND_SECONDS
        message = str(failed.value)
        assert "did not answer within" in message and "state_db_timeout" in message
        assert PASSWORD not in message and "\n" not in message
        again = time.monotonic()  # known gone: every later call fails at once, without a word to the server
        with pytest.raises(StoreUnavailableError) as later:
            list(store.parked())  # read a page at a time: the first read fails
        assert str(later.value) == message
        store.park("invoices", "inv2", "{}", "its contact")
        with pytest.raises(StoreUnavailableError):
            store.close()  # what it still held is not written: said, at once; the connections are closed
        assert time.monotonic() - again < 1.0
    finally:
        with contextlib.suppress(StoreUnavailableError):
            store.close()


def test_a_lock_held_by_another_run_is_waited_for_a_bounded_time(proxied):
    _proxy, url, direct = proxied
    store = Store(":unused:", "dest", LOGGER, url=url, timeout=2)
    other = psycopg.connect(direct)
    try:
        other.execute("LOCK TABLE parked IN ACCESS EXCLUSIVE MODE")  # held: its transaction stays open
        store.park("invoices", "inv1", "{}", "its contact")
        began = time.monotonic()
        with pytest.raises(StoreUnavailableError) as failed:
            store.commit()
        assert time.monotonic() - began < STOP_BOUND_SECONDS
        assert "lock timeout" in str(failed.value)
    finally:
        other.close()
        store.close()


def test_a_signal_stop_with_a_sqlite_store_still_writes_what_it_keeps(sandbox, tmp_path):
    """The SQLite store is not bounded by a clock (it is a local file): a stop still writes to it."""
    proc = start(sandbox, tmp_path, state_db_path=str(tmp_path / "s.sqlite3"))
    with killed_at_the_end(proc):
        states = first_states(proc, 100)
        os.kill(proc.pid, signal.SIGTERM)
        out, err, _took = ended(proc, time.monotonic(), tmp_path)
    assert proc.returncode == 128 + signal.SIGTERM
    assert_one_clean_error(err, "Stopped by SIGTERM")
    states += [json.loads(text) for text in out.splitlines()]
    with contextlib.closing(sqlite3.connect(tmp_path / "s.sqlite3")) as conn:
        parked = {json.loads(text)["id"] for (text,) in conn.execute("SELECT record FROM parked")}
    assert {f"inv{i}" for i in range(states[-1]["done"])} <= parked
    assert "parked, waiting for their contact" in err  # the summary read the store after the stop
