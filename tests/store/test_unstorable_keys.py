"""Text the store cannot hold: a lone surrogate (a broken tap's half of an emoji, written ``\\ud800`` in the
Singer line) or a NUL (``\\u0000``) in a key the store keeps a row under. Such a record is rejected with one
line naming its stream, its key (escaped) and the field; the rest of the run goes on, and so do later runs.
A record whose other values hold such characters is kept (parked, or for replay) and read back exactly."""

from __future__ import annotations

import json

import pytest
from helpers import base_config, record, rejected, schema

from target_segmetrics.sandbox import FaultAction

BAD = {"surrogate": ("\ud800", "\\ud800"), "NUL": ("\x00", "\\x00")}
"""The character as the tap sends it, and as a message shows it."""

EMAILS = schema(
    "emails", {"row": {"type": "string"}, "person": {"type": "string"}, "email": {"type": "string"}}, ("row",)
)
PEOPLE = schema("people", {"id": {"type": "string"}, "ref": {"type": "string"}, "name": {"type": "string"}})
MAPPINGS = {
    "emails": {"lookup": {"key": "person"}},
    "people": {
        "fields": {
            "contact_id": "id",
            "email": {"lookup": "emails", "key": "ref", "field": "email"},
            "first_name": "name",
        }
    },
}


def row(row_id: str, person: str, email: str) -> dict:
    return record("emails", {"row": row_id, "person": person, "email": email})


def person(i: str, ref: str, name: str = "Ann") -> dict:
    return record("people", {"id": i, "ref": ref, "name": name})


def emails_held(sandbox) -> dict[str, str]:
    return {str(c["contact_id"]): c["email"] for c in sandbox.contacts()}


def rejection_lines(run, stream: str) -> list[str]:
    return [line for line in run.warnings if f"Rejected record of stream '{stream}'" in line]


def clean(run) -> None:
    """No traceback, no error; the characters themselves never reach the log (only their escapes)."""
    assert "Traceback" not in run.stderr and "Unexpected error" not in run.stderr, ascii(run.stderr)
    assert not run.errors, ascii(run.errors)
    assert not [char for char, _ in BAD.values() if char in run.stderr], ascii(run.stderr)


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("where", ["person", "row"])
def test_a_lookup_row_whose_key_the_store_cannot_hold_is_rejected_and_the_rest_go_on(
    sandbox, run_target, tmp_path, store_config, bad, where
):
    char, shown = BAD[bad]
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings=MAPPINGS, rejects_path=str(rejects), **store_config)
    broken = {"row": "r1", "person": "p1", "email": "one@example.com"} | {where: f"{where}1{char}"}
    run = run_target(
        config, [EMAILS, record("emails", broken), row("r2", "p2", "two@example.com"), PEOPLE, person("2", "p2")]
    )
    assert run.returncode == 0, run.stderr
    clean(run)
    lines = rejection_lines(run, "emails")
    assert len(lines) == 1, run.warnings
    field = "lookup.key" if where == "person" else "row"
    assert f"{field}:" in lines[0] and f"{where}1{shown}" in lines[0], lines[0]
    assert char not in lines[0]
    assert emails_held(sandbox) == {"2": "two@example.com"}
    assert len(rejected(rejects)) == 1

    later = run_target(config, [EMAILS, row("r3", "p3", "three@example.com"), PEOPLE, person("3", "p3")])
    assert later.returncode == 0, later.stderr
    clean(later)
    assert emails_held(sandbox) == {"2": "two@example.com", "3": "three@example.com"}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_record_whose_lookup_key_the_store_cannot_hold_is_rejected_naming_the_field(
    sandbox, run_target, tmp_path, store_config, bad
):
    char, shown = BAD[bad]
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings=MAPPINGS, rejects_path=str(rejects), **store_config)
    messages = [EMAILS, row("r2", "p2", "two@example.com"), PEOPLE, person("1", f"p1{char}"), person("2", "p2")]
    run = run_target(config, messages)
    assert run.returncode == 0, run.stderr
    clean(run)
    [line] = rejection_lines(run, "people")
    assert "(id=1)" in line and "email:" in line and f"p1{shown}" in line, line
    assert emails_held(sandbox) == {"2": "two@example.com"}
    assert list(rejected(rejects)) == ["id=1"]

    later = run_target(config, [EMAILS, row("r3", "p3", "three@example.com"), PEOPLE, person("3", "p3")])
    assert later.returncode == 0, later.stderr
    clean(later)
    assert not rejection_lines(later, "people")  # the record kept for replay is refused again, quietly
    assert emails_held(sandbox) == {"2": "two@example.com", "3": "three@example.com"}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_record_waiting_for_a_lookup_row_whose_key_the_store_cannot_hold_is_rejected(
    sandbox, run_target, tmp_path, store_config, bad
):
    char, shown = BAD[bad]
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings=MAPPINGS, rejects_path=str(rejects), **store_config)
    run = run_target(config, [EMAILS, PEOPLE, person(f"8{char}", "p8"), person("7", "p7")])
    assert run.returncode == 0, run.stderr
    clean(run)
    [line] = rejection_lines(run, "people")
    assert f"(id=8{shown})" in line and "id:" in line, line
    assert "1 record parked" in run.stderr  # person 7 waits for its row
    assert list(rejected(rejects)) == [f"id=8{shown}"]

    later = run_target(config, [EMAILS, row("r7", "p7", "seven@example.com"), row("r8", "p8", "eight@example.com")])
    assert later.returncode == 0, later.stderr
    clean(later)
    assert emails_held(sandbox) == {"7": "seven@example.com"}


INVOICES = schema(
    "invoices",
    {"number": {"type": "string"}, "id": {"type": "string"}, "contact": {"type": "string"}, "item": {"type": "string"}},
    ("number",),
)
INVOICE_MAPPING = {
    "invoices": {
        "object": "invoice",
        "fields": {
            "id": "id",
            "contact_id": "contact",
            "amount": {"value": 100},
            "paid": {"value": 100},
            "date_created": {"value": "2024-04-01"},
        },
        "items": {"fields": {"name": "item", "product_id": {"value": "plan"}, "amount": {"value": 100}}},
    },
    "users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}},
}
USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}})


def invoice(number: str, i: str, contact: str = "5", item: str = "Plan", **more) -> dict:
    return record("invoices", {"number": number, "id": i, "contact": contact, "item": item, **more})


def invoice_items(sandbox) -> dict[str, str]:
    return {str(i["id"]): i["items"][0]["name"] for i in sandbox.invoices()}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_an_invoice_parked_for_its_contact_whose_key_the_store_cannot_hold_is_rejected(
    sandbox, run_target, tmp_path, store_config, bad
):
    char, shown = BAD[bad]
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings=INVOICE_MAPPING, rejects_path=str(rejects), **store_config)
    run = run_target(config, [INVOICES, invoice(f"N1{char}", "1"), invoice("N2", "2")])
    assert run.returncode == 0, run.stderr
    clean(run)
    [line] = rejection_lines(run, "invoices")
    assert f"(number=N1{shown})" in line and "number:" in line, line
    assert "1 record parked, waiting for their contact" in run.stderr

    later = run_target(config, [USERS, record("users", {"id": 5, "email": "five@example.com"})])
    assert later.returncode == 0, later.stderr
    clean(later)
    assert invoice_items(sandbox) == {"2": "Plan"}


def test_a_parked_record_holding_a_nul_and_a_lone_surrogate_is_kept_and_read_back_exactly(
    sandbox, run_target, tmp_path, store_config
):
    rejects = tmp_path / "rejects.jsonl"
    summary = tmp_path / "summary.json"
    config = base_config(
        sandbox, mappings=INVOICE_MAPPING, rejects_path=str(rejects), summary_path=str(summary), **store_config
    )
    # The item's name holds a NUL (SegMetrics takes it); a field the mapping does not read holds a half emoji.
    parked = invoice("N1", "1", item="Plan\x00Pro", note="broken \ud800 half")
    run = run_target(
        config,
        [
            {
                **INVOICES,
                "schema": {
                    **INVOICES["schema"],
                    "properties": {**INVOICES["schema"]["properties"], "note": {"type": "string"}},
                },
            },
            parked,
        ],
    )
    assert run.returncode == 0, run.stderr
    clean(run)
    assert "1 record parked, waiting for their contact" in run.stderr

    later = run_target(config, [USERS, record("users", {"id": 5, "email": "five@example.com"})])
    assert later.returncode == 0, later.stderr
    clean(later)
    assert invoice_items(sandbox) == {"1": "Plan\x00Pro"}
    assert json.loads(summary.read_text())["streams"]["invoices"]["released"] == 1
    assert rejected(rejects) == {}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_refusal_whose_words_hold_a_nul_or_a_lone_surrogate_is_kept_for_replay(
    sandbox, run_target, tmp_path, store_config, bad
):
    char, shown = BAD[bad]
    words = json.dumps({"status": "error", "errors": [f"first_name is not valid: Ann{char}"]})

    class RefuseAnn:
        def before(self, ctx):
            if isinstance(ctx.body, dict) and ctx.body.get("first_name") == "Ann":
                return FaultAction("answer", status=400, body=words.encode())
            return None

        def after(self, ctx, status):
            return None

    rejects = tmp_path / "rejects.jsonl"
    mappings = {
        "users": {
            "fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email", "first_name": "name"}
        }
    }
    users = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"}})
    config = base_config(sandbox, mappings=mappings, rejects_path=str(rejects), **store_config)
    sandbox.faults = RefuseAnn()
    run = run_target(
        config,
        [
            users,
            record("users", {"id": 1, "email": "a@example.com", "name": "Ann"}),
            record("users", {"id": 2, "email": "b@example.com", "name": "Bob"}),
        ],
    )
    assert run.returncode == 0, run.stderr
    clean(run)
    [line] = rejection_lines(run, "users")
    assert "(id=1) by SegMetrics (HTTP 400)" in line, line
    assert "1 rejected record kept" in run.stderr
    assert sorted(emails_held(sandbox).values()) == ["b@example.com"]

    assert char not in line and shown in line, line

    later = run_target(config, [])  # it maps to what SegMetrics refused: kept, nothing sent
    assert later.returncode == 0, later.stderr
    clean(later)
    assert "1 rejected record kept" in later.stderr


@pytest.mark.parametrize("bad", sorted(BAD))
def test_skip_unchanged_with_an_id_the_store_cannot_hold_rejects_that_record_and_skips_the_rest(
    sandbox, run_target, tmp_path, store_config, bad
):
    char, shown = BAD[bad]
    mappings = {"people": {"fields": {"contact_id": "id", "email": "email"}}}
    people = schema("people", {"id": {"type": "string"}, "email": {"type": "string"}}, ())
    config = base_config(sandbox, mappings=mappings, skip_unchanged=True, **store_config)
    messages = [
        people,
        record("people", {"id": f"c1{char}", "email": "one@example.com"}),
        record("people", {"id": "c2", "email": "two@example.com"}),
    ]
    run = run_target(config, messages)
    assert run.returncode == 0, run.stderr
    clean(run)
    [line] = rejection_lines(run, "people")
    assert "contact_id:" in line and f"c1{shown}" in line and char not in line, line
    assert "Could not update the store" not in run.stderr
    assert emails_held(sandbox) == {"c2": "two@example.com"}

    count = sandbox.request_count
    again = run_target(config, messages)
    assert again.returncode == 0, again.stderr
    clean(again)
    assert sandbox.request_count == count  # c2 is unchanged: its digest was kept


def test_a_parked_record_with_a_lone_surrogate_in_a_field_that_is_sent_is_rejected_when_released(
    sandbox, run_target, tmp_path, store_config
):
    # It waits for its lookup row first; once the row is there, the name cannot be sent as UTF-8.
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings=MAPPINGS, rejects_path=str(rejects), **store_config)
    first = run_target(config, [EMAILS, PEOPLE, person("7", "p7", name="broken \ud800 half")])
    assert first.returncode == 0, first.stderr
    clean(first)
    assert "1 record parked" in first.stderr

    later = run_target(config, [EMAILS, row("r7", "p7", "seven@example.com"), PEOPLE, person("6", "p7")])
    assert later.returncode == 0, later.stderr
    clean(later)
    [line] = rejection_lines(later, "people")
    assert "(id=7)" in line and "first_name: 'broken \\ud800 half' holds a character that is not valid Unicode" in line
    assert emails_held(sandbox) == {"6": "seven@example.com"}
    assert list(rejected(rejects)) == ["id=7"]
