"""What the run summary says: streams left out on purpose, a dry run, each stream's own time, skip reasons.

Each test reads what a user reads: the summary block in the log and the JSON in ``summary_path``.
"""

from __future__ import annotations

import json

import pytest
from helpers import USERS, Policy, base_config, record, schema, summary_block, users

from target_segmetrics.sandbox import FaultAction

USERS_ONLY = {"users": {"fields": {"email": "email", "contact_id": {"path": "id", "transform": "string"}}}}
EVENTS = schema("events", {"id": {"type": "integer"}, "kind": {"type": "string"}})
ENGAGEMENTS = schema("engagements", {"id": {"type": "integer"}})


class Slow(Policy):
    """Every request answered after ``ms`` milliseconds."""

    def __init__(self, ms: int):
        self.ms = ms

    def before(self, ctx):
        return FaultAction("delay", delay_ms=self.ms)


def test_streams_ignored_on_purpose_are_not_reported_as_unmapped(sandbox, run_target, tmp_path):
    mappings = {
        **USERS_ONLY,
        "events": {"ignore": "product analytics, not for SegMetrics"},
        "engagements": {"preset": "hubspot"},  # the preset ignores HubSpot's activities
    }
    messages = [
        USERS,
        *users(0, 2),
        EVENTS,
        *[record("events", {"id": i, "kind": "click"}) for i in range(3)],
        ENGAGEMENTS,
        record("engagements", {"id": 1}),
    ]
    summary = tmp_path / "summary.json"
    run = run_target(base_config(sandbox, mappings=mappings, summary_path=str(summary)), messages)
    assert run.returncode == 0, run.stderr
    block = summary_block(run)
    assert "| INFO" in block[0], block  # nothing to warn about
    assert not [line for line in run.stderr.splitlines() if "NOT SENT" in line or "not in mappings" in line]
    assert run.warnings == [], run.warnings
    assert "  events -> not sent, on purpose (product analytics, not for SegMetrics): 3 records" in block
    assert any(line.startswith("  engagements -> not sent, on purpose (") for line in block), block
    streams = json.loads(summary.read_text())["streams"]
    assert streams["events"]["ignored"] == "product analytics, not for SegMetrics"
    assert streams["events"]["skipped"] == 3 and streams["events"]["object"] is None
    assert "ignored" not in streams["users"]
    assert len(sandbox.contacts()) == 2


def test_a_dry_run_says_what_would_be_sent_and_never_that_it_landed(sandbox, run_target, tmp_path):
    summary = tmp_path / "summary.json"
    config = base_config(sandbox, mappings=USERS_ONLY, dry_run=True, summary_path=str(summary))
    run = run_target(config, [USERS, *users(0, 40)])
    assert run.returncode == 0, run.stderr
    assert sandbox.contacts() == []  # nothing was sent
    block = summary_block(run)
    assert "dry run: nothing was sent" in block[0], block
    assert "  total: 40 records would be sent to SegMetrics (dry run: nothing was sent), 0 rejected" in block
    assert any("40 requests would be sent, 40 would be created or updated" in line for line in block), block
    assert "landed" not in run.stderr, [line for line in run.stderr.splitlines() if "landed" in line]
    read = [line for line in run.stderr.splitlines() if "Read " in line and " lines of input" in line]
    assert len(read) == 1 and "dry run" in read[0], read


def test_each_stream_reports_its_own_time_and_rate(sandbox, run_target, tmp_path):
    # Stream `first` (2 records) lands early; stream `users` (20 records, one at a time, each answered
    # after 60 ms) takes over a second after it. Each stream's time runs from its first record to
    # its last acknowledgement, not over the whole run.
    sandbox.faults = Slow(60)
    first = schema("first", {"id": {"type": "integer"}, "email": {"type": "string"}})
    mappings = {**USERS_ONLY, "first": USERS_ONLY["users"]}
    messages = [
        first,
        record("first", {"id": 1001, "email": "f1@example.com"}),
        record("first", {"id": 1002, "email": "f2@example.com"}),
        USERS,
        *users(0, 20),
    ]
    summary = tmp_path / "summary.json"
    config = base_config(sandbox, mappings=mappings, max_concurrency=1, summary_path=str(summary))
    run = run_target(config, messages)
    assert run.returncode == 0, run.stderr
    document = json.loads(summary.read_text())
    early, late = document["streams"]["first"], document["streams"]["users"]
    assert late["elapsed_seconds"] >= 20 * 0.06  # 20 answers, one after the other
    assert early["elapsed_seconds"] < late["elapsed_seconds"] / 3, (early, late)
    assert late["elapsed_seconds"] <= document["elapsed_seconds"]
    for row in (early, late):
        assert row["records_per_second"] == pytest.approx(row["upserted"] / row["elapsed_seconds"], rel=0.05)
    block = summary_block(run)
    assert any(
        line.startswith("  users -> contacts:") and f"in {late['elapsed_seconds']:.2f}s" in line for line in block
    )


def test_skipped_records_are_counted_by_reason(sandbox, run_target, tmp_path):
    mappings = {
        "users": {**USERS_ONLY["users"], "when": "active"},
        "labels": {"object": "tags", "fields": {"email": "email"}, "tags": ["label"]},
    }
    people = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}, "active": {"type": "boolean"}})
    labels = schema(
        "labels", {"id": {"type": "integer"}, "email": {"type": "string"}, "label": {"type": ["string", "null"]}}
    )
    messages = [
        people,
        record("users", {"id": 1, "email": "a@example.com", "active": True}),
        record("users", {"id": 2, "email": "b@example.com", "active": False}),
        record("users", {"id": 3, "email": "c@example.com", "active": False}),
        labels,
        record("labels", {"id": 1, "email": "a@example.com", "label": None}),
    ]
    summary = tmp_path / "summary.json"
    run = run_target(base_config(sandbox, mappings=mappings, summary_path=str(summary)), messages)
    assert run.returncode == 0, run.stderr
    streams = json.loads(summary.read_text())["streams"]
    assert streams["users"]["skipped_by_reason"] == {"its 'when' condition is not met": 2}
    assert streams["labels"]["skipped_by_reason"] == {"it yields no tag": 1}
    block = summary_block(run)
    assert any("2 skipped (2: its 'when' condition is not met)" in line for line in block), block
    assert any("1 skipped (1: it yields no tag)" in line for line in block), block
