"""A SQLite store another process holds write-locked when a run starts: the run waits for it (a bounded
time), then goes on with the store's parked records and lookup rows, or stops before the first request
with one line saying what holds it. A locked store is never moved aside (only one that is not a database)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import pytest
from helpers import DOCS, base_config, record, schema

from target_segmetrics.store import engine

pytestmark = [pytest.mark.slow, pytest.mark.timing]

EMAILS = schema("emails", {"person": {"type": "string"}, "email": {"type": "string"}}, ("person",))
PEOPLE = schema("people", {"id": {"type": "string"}, "ref": {"type": "string"}})
INVOICES = schema("invoices", {"id": {"type": "string"}, "contact": {"type": "string"}})
MAPPINGS = {
    "emails": {"lookup": {"key": "person"}},
    "people": {"fields": {"contact_id": "id", "email": {"lookup": "emails", "key": "ref", "field": "email"}}},
    "invoices": {
        "object": "invoice",
        "fields": {
            "id": "id",
            "contact_id": "contact",
            "amount": {"value": 100},
            "paid": {"value": 100},
            "date_created": {"value": "2024-04-01"},
        },
        "items": {"fields": {"name": {"value": "Plan"}, "product_id": {"value": "plan"}, "amount": {"value": 100}}},
    },
}
FIRST_RUN = [EMAILS, record("emails", {"person": "p5", "email": "five@example.com"}), INVOICES]
FIRST_RUN += [record("invoices", {"id": "1", "contact": "5"})]  # SegMetrics holds no contact 5 yet: parked
CONTACT_5 = [PEOPLE, record("people", {"id": "5", "ref": "p5"})]  # its email from the lookup row kept
BUSY_TIMEOUT = 5  # what a SQLite connection waits for a lock by itself (the store moved aside after it)

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
if sys.argv[2] == "until-told":
    sys.stdin.readline()
else:
    time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
conn.close()
"""


def hold_lock(path, how: str) -> subprocess.Popen:
    """Another process holding the store's write lock (``how``: seconds, or until told on stdin)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), how], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def landed(sandbox) -> tuple[dict[str, str], list[str]]:
    return {str(c["contact_id"]): c["email"] for c in sandbox.contacts()}, [str(i["id"]) for i in sandbox.invoices()]


def documented(start: str, store, wait: float = 30) -> str:
    """The message docs/operations.md quotes (Troubleshooting) that starts so, for this store and wait."""
    page = (DOCS / "operations.md").read_text(encoding="utf-8")
    [quoted] = [line.strip()[3:-3] for line in page.splitlines() if line.strip().startswith(f"**`{start}")]
    return quoted.replace(".target-segmetrics/sent.sqlite3", str(store)).replace("30 s", f"{wait:g} s")


def fingerprint(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_store_locked_at_start_is_waited_for_and_its_parked_records_and_lookup_rows_are_used(
    sandbox, run_target, tmp_path
):
    store = tmp_path / "store.sqlite3"
    config = base_config(sandbox, mappings=MAPPINGS, state_db_path=str(store))
    first = run_target(config, FIRST_RUN)
    assert first.returncode == 0 and "1 record parked" in first.stderr, first.stderr

    held_for = BUSY_TIMEOUT + 3
    holder = hold_lock(store, str(held_for))
    started = time.monotonic()
    try:
        run = run_target(config, CONTACT_5)
    finally:
        holder.communicate(timeout=60)
    took = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    assert took >= held_for - 0.5  # it waited for the lock to go
    assert [line for line in run.warnings if "in use by another run or process" in line], run.warnings
    assert "unreadable" not in run.stderr and not list(tmp_path.glob("*unreadable*"))
    assert landed(sandbox) == ({"5": "five@example.com"}, ["1"])


def test_a_store_locked_past_the_wait_stops_the_run_before_any_request_and_is_kept(
    sandbox, run_target, tmp_path, monkeypatch
):
    store = tmp_path / "store.sqlite3"
    config = base_config(sandbox, mappings=MAPPINGS, state_db_path=str(store))
    assert run_target(config, FIRST_RUN).returncode == 0
    requests, before = sandbox.request_count, fingerprint(store)

    wait = BUSY_TIMEOUT + 3
    monkeypatch.setattr(engine, "LOCK_WAIT_SECONDS", wait)  # the default (30 s) would make a long test
    holder = hold_lock(store, "until-told")
    started = time.monotonic()
    try:
        run = run_target(config, CONTACT_5)
        took = time.monotonic() - started
    finally:
        holder.communicate("go\n", timeout=60)
    assert run.returncode == 1, run.stderr
    assert wait - 0.5 <= took <= wait + 15  # waited for it, then gave up within a bound
    [error] = run.errors
    assert error.endswith(documented("The store .target-segmetrics/sent.sqlite3 is in use", store, wait)), error
    assert "Traceback" not in run.stderr and "unreadable" not in run.stderr
    assert sandbox.request_count == requests
    assert run.states == []
    assert not list(tmp_path.glob("*unreadable*")) and fingerprint(store) == before

    later = run_target(config, CONTACT_5)  # the lock is gone: the store's rows and parked record are used
    assert later.returncode == 0, later.stderr
    assert landed(sandbox) == ({"5": "five@example.com"}, ["1"])


def test_a_store_that_cannot_be_opened_for_another_reason_is_left_as_it_is(sandbox, run_target, tmp_path):
    store = tmp_path / "store.sqlite3"
    config = base_config(sandbox, mappings=MAPPINGS, state_db_path=str(store))
    assert run_target(config, FIRST_RUN).returncode == 0
    (tmp_path / "store.sqlite3-wal").unlink(missing_ok=True)
    (tmp_path / "store.sqlite3-wal").mkdir()  # its write-ahead log cannot be opened
    requests, before = sandbox.request_count, fingerprint(store)
    run = run_target(config, CONTACT_5)
    assert run.returncode == 1, run.stderr
    [error] = run.errors
    assert error.endswith(documented("The store .target-segmetrics/sent.sqlite3 cannot be used", store)), error
    assert "Traceback" not in run.stderr and "unreadable" not in run.stderr
    assert not list(tmp_path.glob("*unreadable*")) and fingerprint(store) == before
    assert sandbox.request_count == requests

    (tmp_path / "store.sqlite3-wal").rmdir()
    later = run_target(config, CONTACT_5)
    assert later.returncode == 0, later.stderr
    assert landed(sandbox) == ({"5": "five@example.com"}, ["1"])
