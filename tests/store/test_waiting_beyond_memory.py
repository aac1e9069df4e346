"""What waits, beyond what the target keeps in memory, on both back ends: lookup rows (only the most
recently used keys are in memory, rows are written in batches), yet every lookup finds what the store
and this run hold; parked records and records kept for replay, read a page at a time, all land.

The in-process runs set the memory small (``CACHE_KEYS`` and ``FLUSH_EVERY`` of store/lookups.py, the
``PAGE`` of parked and kept records) so a handful of records goes beyond it; the killed run uses the
defaults."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import base_config, held, record, schema, singer_text, state, target_executable

from target_segmetrics.store import lookups
from target_segmetrics.store.parked import ParkedRecords
from target_segmetrics.store.rejected import RejectedRecords

NAMES = schema("names", {"user": {"type": "string"}, "name": {"type": "string"}}, key_properties=())
GROUPS = schema("groups", {"id": {"type": "string"}, "user": {"type": "string"}, "group": {"type": "string"}})
USERS = schema("users", {"id": {"type": "string"}, "email": {"type": "string"}})
MAPPINGS = {
    "names": {"lookup": {"key": "user"}},
    "groups": {"lookup": {"key": "user"}},
    "users": {
        "fields": {
            "contact_id": "id",
            "email": "email",
            "first_name": {"lookup": "names", "key": "id", "field": "name"},
        }
    },
}
GROUP_MAPPINGS = {
    "groups": {"lookup": {"key": "user"}},
    "users": {
        "fields": {"contact_id": "id", "email": "email"},
        "tags": [{"lookup": "groups", "key": "id", "field": "group", "all": True}],
        "tags_mode": "replace",
    },
}


def name(i: int, text: str) -> dict:
    return record("names", {"user": f"u{i}", "name": text})


def user(i: int) -> dict:
    return record("users", {"id": f"u{i}", "email": f"u{i}@example.com"})


def first_names(sandbox) -> dict[str, str]:
    return {key: contact["first_name"] for key, contact in held(sandbox).items()}


@pytest.fixture
def small_memory(monkeypatch):
    """Rows of 3 keys kept in memory, rows written every 4."""
    monkeypatch.setattr(lookups, "CACHE_KEYS", 3)
    monkeypatch.setattr(lookups, "FLUSH_EVERY", 4)


def test_a_row_of_an_earlier_run_is_found_again_after_many_other_keys(sandbox, run_target, store_config, small_memory):
    cfg = base_config(sandbox, mappings=MAPPINGS, **store_config)
    assert run_target(cfg, [NAMES, *(name(i, f"Name {i}") for i in range(10))]).returncode == 0
    # u0 is looked up, then 9 other keys (u0 leaves the memory), then u0 again.
    run = run_target(cfg, [USERS, *(user(i) for i in range(10)), record("users", {"id": "u0", "email": "new@x.io"})])
    assert run.returncode == 0, run.stderr
    assert first_names(sandbox) == {f"u{i}": f"Name {i}" for i in range(10)}
    assert sandbox.contact("u0")["email"] == "new@x.io"
    assert "parked" not in run.stderr.split("Run summary", 1)[1]


def test_rows_put_this_run_are_found_written_or_not_after_many_other_keys(
    sandbox, run_target, store_config, small_memory
):
    cfg = base_config(sandbox, mappings=MAPPINGS, **store_config)
    messages = [NAMES, USERS, name(0, "Ann"), user(0)]  # u0 looked up at once: kept in memory
    messages += [name(i, f"Name {i}") for i in range(1, 10)]  # 9 more rows: 8 written, 1 not yet
    messages += [user(i) for i in range(1, 10)]  # 9 more keys: u0 leaves the memory
    messages += [name(0, "Anna"), record("users", {"id": "u0", "email": "new@x.io"})]  # u0 renamed
    run = run_target(cfg, messages)
    assert run.returncode == 0, run.stderr
    assert first_names(sandbox) == {"u0": "Anna"} | {f"u{i}": f"Name {i}" for i in range(1, 10)}
    assert sandbox.contact("u0")["email"] == "new@x.io"


def group(row: str, i: int, name: str) -> dict:
    return record("groups", {"id": row, "user": f"u{i}", "group": name})


def test_the_rows_a_run_puts_under_a_key_replace_earlier_runs_rows_beyond_memory(
    sandbox, run_target, store_config, small_memory
):
    cfg = base_config(sandbox, mappings=GROUP_MAPPINGS, **store_config)
    assert run_target(cfg, [GROUPS, USERS, group("g1", 1, "Gold"), group("g2", 1, "Silver"), user(1)]).returncode == 0
    assert held(sandbox)["u1"]["tags"] == ["Gold", "Silver"]
    # The tap sends u1's groups again: only Beta now. u1 was looked up first (its rows in memory); then
    # rows of 9 other keys (written, and u1 leaves the memory); then u1 again.
    messages = [GROUPS, USERS, user(1), group("g3", 1, "Beta")]
    messages += [group(f"g{i}0", i, f"Group {i}") for i in range(2, 11)] + [user(1)]
    run = run_target(cfg, messages)
    assert run.returncode == 0, run.stderr
    assert held(sandbox)["u1"]["tags"] == ["Beta"]
    later = run_target(cfg, [USERS, user(1)])  # the next run finds what this one left
    assert later.returncode == 0, later.stderr
    assert held(sandbox)["u1"]["tags"] == ["Beta"]


def test_rows_before_a_state_are_in_the_store_when_the_run_is_killed_after_it(
    sandbox, run_target, tmp_path, store_config
):
    # Defaults: rows are written every 500 and the rest with the STATE; 1100 rows are both.
    cfg = base_config(sandbox, mappings=MAPPINGS, **store_config)
    path = tmp_path / "killed.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen(
        [target_executable(), "--config", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(singer_text([NAMES, *(name(i, f"Name {i}") for i in range(1100)), state({"rows": 1100})]))
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {"rows": 1100}
    finally:
        proc.kill()  # SIGKILL right after the STATE: nothing more is written
        proc.communicate()
    sample = (0, 499, 500, 999, 1000, 1099)  # the first batch, the second, and the rows the STATE wrote
    run = run_target(cfg, [USERS, *(user(i) for i in sample)])
    assert run.returncode == 0, run.stderr
    assert first_names(sandbox) == {f"u{i}": f"Name {i}" for i in sample}


INVOICES = schema("invoices", {"id": {"type": "string"}, "user": {"type": "string"}, "total": {"type": "integer"}})
INVOICE_FIELDS = {"id": "id", "paid": "total", "date_created": {"value": "2024-04-01"}}
ITEMS = {"fields": {"name": {"value": "Plan"}, "product_id": {"value": "plan"}, "amount": "total"}}
EMAILS = schema("emails", {"user": {"type": "string"}, "email": {"type": "string"}}, key_properties=())


def invoice_mappings(amount: str) -> dict:
    fields = {**INVOICE_FIELDS, "amount": amount, "email": {"lookup": "emails", "key": "user", "field": "email"}}
    return {"emails": {"lookup": {"key": "user"}}, "invoices": {"object": "invoice", "fields": fields, "items": ITEMS}}


def invoices_held(sandbox) -> dict[str, int]:
    return {str(i["id"]): i["amount"] for i in sandbox.invoices()}


def invoice(i: int) -> dict:
    return record("invoices", {"id": f"i{i}", "user": f"u{i}", "total": 100 + i})


def email(i: int) -> dict:
    return record("emails", {"user": f"u{i}", "email": f"u{i}@example.com"})


def test_records_parked_beyond_a_page_all_land_on_their_release(sandbox, run_target, store_config, monkeypatch):
    monkeypatch.setattr(ParkedRecords, "PAGE", 3)
    cfg = base_config(sandbox, mappings=invoice_mappings("total"), **store_config)
    first = run_target(cfg, [INVOICES, *(invoice(i) for i in range(10))])
    assert first.returncode == 0 and "10 records parked" in first.stderr
    second = run_target(cfg, [EMAILS, *(email(i) for i in range(10))])
    assert second.returncode == 0, second.stderr
    assert invoices_held(sandbox) == {f"i{i}": 100 + i for i in range(10)}
    assert "parked, waiting" not in second.stderr


def test_records_kept_for_replay_beyond_a_page_all_land_once_the_mapping_is_fixed(
    sandbox, run_target, store_config, monkeypatch
):
    monkeypatch.setattr(RejectedRecords, "PAGE", 3)
    cfg = base_config(sandbox, **store_config)

    def mappings(amount: str) -> dict:
        fields = {**INVOICE_FIELDS, "amount": amount, "email": {"path": "user", "format": "{}@example.com"}}
        return {"invoices": {"object": "invoice", "fields": fields, "items": ITEMS}}

    first = run_target({**cfg, "mappings": mappings("user")}, [INVOICES, *(invoice(i) for i in range(10))])
    assert "10 rejected records kept in" in first.stderr  # their amount is no amount
    assert invoices_held(sandbox) == {}
    second = run_target({**cfg, "mappings": mappings("total")}, [INVOICES, state({"invoices": "done"})])
    assert second.returncode == 0, second.stderr
    assert invoices_held(sandbox) == {f"i{i}": 100 + i for i in range(10)}
    assert "kept in" not in second.stderr.split("Run summary")[-1]
