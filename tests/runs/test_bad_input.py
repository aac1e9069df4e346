"""A corpus of broken Singer input (tests/data/bad): each gets one clear line, nothing is lost silently."""

from __future__ import annotations

import json

import pytest
from helpers import API_KEY, DATA, base_config, record, schema

BAD = DATA / "bad"
MAPPING = {"contacts": {"fields": {"email": ["email", "profile.email"], "first_name": "name"}}}

# file -> (exit code, a line the log must hold, keys kept in the rejects file, emails SegMetrics holds)
CASES = {
    "not_json": (1, "Line 3: not valid JSON (Expecting value at column 1): 'INFO tap-foo: fetched 2 pages'", [], None),
    "non_object": (1, "Line 3: a Singer message is a JSON object, got list: '[1, 2, 3]'", [], None),
    "unknown_type": (
        0,
        "Line 3: unknown Singer message type 'HEARTBEAT', skipped",
        [],
        ["first@example.com", "last@example.com"],
    ),
    "record_before_schema": (1, "Line 1: a RECORD for stream 'contacts' came before that stream's SCHEMA", [], []),
    "empty_stream_name": (1, "Line 3: a RECORD message needs a non-empty 'stream' name, got ''", [], None),
    "batch_message": (
        1,
        "Line 3: a BATCH message for stream 'contacts'; this target takes RECORD messages only",
        [],
        None,
    ),
    "schema_violation": (
        0,
        "Rejected record of stream 'contacts' (id=2) locally: email: does not match the "
        "stream's schema: must be string or null",
        ["id=2"],
        ["first@example.com", "last@example.com"],
    ),
    "number_for_string": (
        0,
        "(id=2) locally: name: does not match the stream's schema: must be string or null",
        ["id=2"],
        ["first@example.com", "last@example.com"],
    ),
    "missing_key_property": (
        0,
        "Rejected record of stream 'contacts' (line 3) locally: id: key property missing",
        ["line 3"],
        ["first@example.com", "last@example.com"],
    ),
    "nested_nulls": (
        0,
        "(id=2) locally: contact_id or email: missing",
        ["id=2", "id=3"],
        ["first@example.com", "last@example.com", "nested@example.com"],
    ),
    "odd_unicode": (
        0,
        "(id=2) locally: first_name: 'broken \\ud800 half' holds a character that is not valid Unicode",
        ["id=2"],
        ["emoji@example.com", "first@example.com", "last@example.com"],
    ),
    "huge_string": (
        0,
        "Rejected record of stream 'contacts' (id=2) by SegMetrics (HTTP 413)",
        ["id=2"],
        ["first@example.com", "last@example.com"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_input_gets_one_clear_line(case, sandbox, run_target, tmp_path):
    code, message, rejected_keys, held = CASES[case]
    rejects = tmp_path / "rejects.jsonl"
    run = run_target(base_config(sandbox, mappings=MAPPING, rejects_path=str(rejects)), BAD / f"{case}.singer")

    assert run.returncode == code, run.stderr
    assert message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert API_KEY not in run.everything()
    kept = [json.loads(line)["key"] for line in rejects.read_text().splitlines()] if rejects.exists() else []
    assert kept == rejected_keys
    for line in run.stderr.splitlines():
        assert len(line) < 1000, "a log line must stay readable (no 2 MB values in messages)"
    if code == 0:
        assert sorted(c["email"] for c in sandbox.contacts()) == held
        assert run.states == [{"done": 9}]
        assert f"{len(rejected_keys)} rejected" in run.stderr
    else:
        assert run.states == []  # stopped: no STATE past the broken line
        assert len(run.errors) == 1
        if held is not None:
            assert sorted(c["email"] for c in sandbox.contacts()) == held


def test_emoji_and_right_to_left_text_arrive_intact(sandbox, run_target):
    run = run_target(base_config(sandbox, mappings=MAPPING), BAD / "odd_unicode.singer")
    assert run.returncode == 0
    assert (
        sandbox.contact("emoji@example.com")["first_name"] == "Zoë 👩\u200d💻 \u200f\u05e9\u05dc\u05d5\u05dd \u0000 end"
    )


def test_a_mapping_path_that_names_nothing_stops_before_the_stream_is_sent(sandbox, run_target):
    mapping = {"contacts": {"fields": {"email": "emial", "first_name": "name"}}}
    run = run_target(base_config(sandbox, mappings=mapping), BAD / "unknown_type.singer")
    assert run.returncode == 1
    assert (
        "mappings.contacts.fields.email reads 'emial', which stream 'contacts' does not declare "
        "(did you mean 'email'?)" in run.stderr
    )
    assert "Traceback" not in run.stderr
    assert sandbox.request_count == 0


def test_an_email_with_a_bom_lands_clean_and_one_with_a_nul_is_rejected_naming_it(sandbox, run_target, tmp_path):
    # A CSV tap's first cell often starts with a byte order mark; a NUL in an address is never an address.
    people = schema("people", {"id": {"type": "string"}, "email": {"type": "string"}})
    config = base_config(
        sandbox,
        mappings={"people": {"fields": {"contact_id": "id", "email": "email"}}},
        rejects_path=str(tmp_path / "rejects.jsonl"),
    )
    run = run_target(
        config,
        [
            people,
            record("people", {"id": "1", "email": "\ufeff bom@example.com "}),
            record("people", {"id": "2", "email": "nul@exam\x00ple.com"}),
        ],
    )
    assert run.returncode == 0, run.errors
    assert [c["email"] for c in sandbox.contacts()] == ["bom@example.com"]
    assert [line for line in run.warnings if "id=2" in line and "email:" in line and "NUL" in line], run.warnings


def test_an_email_with_a_bom_at_its_end_lands_clean_and_one_with_a_bom_inside_is_rejected(
    sandbox, run_target, tmp_path
):
    # Stripped at either end (invisible, never part of an address); inside, SegMetrics would keep it in the address.
    people = schema("people", {"id": {"type": "string"}, "email": {"type": "string"}})
    config = base_config(
        sandbox,
        mappings={"people": {"fields": {"contact_id": "id", "email": "email"}}},
        rejects_path=str(tmp_path / "rejects.jsonl"),
    )
    run = run_target(
        config,
        [
            people,
            record("people", {"id": "1", "email": "end@example.com\ufeff"}),
            record("people", {"id": "2", "email": "in\ufeffside@example.com"}),
        ],
    )
    assert run.returncode == 0, run.errors
    assert [c["email"] for c in sandbox.contacts()] == ["end@example.com"]
    [line] = [line for line in run.warnings if "Rejected record" in line]
    assert "(id=2)" in line and "email:" in line and "byte order mark (\\ufeff)" in line, line


def test_on_invalid_drop_sends_the_record_without_the_value_that_cannot_be_converted(sandbox, run_target, tmp_path):
    people = schema("people", {"id": {"type": "string"}, "email": {"type": "string"}, "age": {"type": "string"}})
    age = {"path": "age", "transform": "integer", "on_invalid": "drop"}
    config = base_config(
        sandbox,
        mappings={"people": {"fields": {"contact_id": "id", "email": "email"}, "custom_fields": {"age": age}}},
        rejects_path=str(tmp_path / "rejects.jsonl"),
    )
    messages = [
        people,
        record("people", {"id": "1", "email": "old@example.com", "age": "forty"}),
        record("people", {"id": "2", "email": "young@example.com", "age": "20"}),
    ]
    run = run_target(config, messages)
    assert run.returncode == 0, run.errors
    held = {c["email"]: c.get("custom_fields", {}) for c in sandbox.contacts()}
    assert held == {"old@example.com": {}, "young@example.com": {"age": 20}}
    assert not [line for line in run.warnings if "Rejected" in line], run.warnings
    assert not (tmp_path / "rejects.jsonl").exists()
