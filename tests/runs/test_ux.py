"""What a Meltano user sees: dry run, progress, run summary, plugin definition, docs that match the code."""

from __future__ import annotations

import functools
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import (
    DATA,
    FIXTURES,
    USERS,
    Policy,
    base_config,
    record,
    schema,
    scripted,
    state,
    summary_block,
    target_executable,
    users,
)

from target_segmetrics.reporting import Reporter
from target_segmetrics.sandbox.faults import FaultAction

ROOT = Path(__file__).resolve().parents[2]
HUBSPOT = FIXTURES / "hubspot" / "meltanolabs_contacts.singer"
HUBSPOT_LAST_STATE = {
    "bookmarks": {
        "contacts": {"replication_key": "lastmodifieddate", "replication_key_value": "2024-03-10T07:07:07.070Z"}
    }
}
BAD_MAPPING = {"contacts": {"fields": {"email": "email", "first_name": "name", "date_created": "signed_up"}}}


def test_dry_run_sends_nothing_needs_no_key_and_writes_every_request(sandbox, run_target, tmp_path):
    out = tmp_path / "requests.jsonl"
    config = base_config(sandbox, dry_run=True, dry_run_path=str(out), mappings={"contacts": {"preset": "hubspot"}})
    del config["api_key"]
    run = run_target(config, HUBSPOT)
    assert run.returncode == 0, run.stderr
    assert sandbox.request_count == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # Per contact (hubspot preset, MeltanoLabs: no other stream tags its contacts): one upsert with its tags.
    assert len(lines) == 6
    assert {(line["method"], line["path"]) for line in lines} == {("POST", "contact")}
    alice = [line for line in lines if line["body"].get("contact_id") == "74251"]
    assert alice[0]["body"]["email"] == "alice.johnson@example.com"
    assert {"name": "Lifecycle: Customer"} in alice[0]["body"]["tags"]
    # Nothing was sent, so no STATE: Meltano must not move its bookmark past data that never landed.
    assert run.stdout == ""
    assert [line for line in run.stderr.splitlines() if "no STATE is passed on" in line]


def test_dry_run_to_the_log_with_the_same_rejections_as_a_real_run(sandbox, run_target):
    real = run_target(base_config(sandbox, mappings=BAD_MAPPING), DATA / "contacts_bad.singer")
    config = base_config(sandbox, mappings=BAD_MAPPING, dry_run=True)
    sandbox.reset()
    dry = run_target(config, DATA / "contacts_bad.singer")
    assert dry.returncode == real.returncode == 0
    assert sandbox.request_count == 0
    rejected = [w.split("|")[-1] for w in real.warnings if "Rejected" in w]
    assert len(rejected) == 4
    assert [w.split("|")[-1] for w in dry.warnings if "Rejected" in w] == rejected
    logged = [line for line in dry.stderr.splitlines() if "Dry run: " in line]
    assert len(logged) == 2
    assert json.loads(logged[0].split("Dry run: ", 1)[1]) == {
        "method": "POST",
        "path": "contact",
        "body": {"email": "good1@example.com", "first_name": "Good One", "date_created": "2024-01-05 10:00:00"},
    }


def test_progress_lines_on_long_runs_only(sandbox, run_target):
    sandbox.set_latency(30)
    users = [schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}})]
    users += [record("users", {"id": i, "email": f"u{i}@example.com"}) for i in range(150)]
    long_run = run_target(base_config(sandbox, max_concurrency=2, progress_interval=0.5), users)
    assert long_run.returncode == 0, long_run.stderr
    progress = [line for line in long_run.stderr.splitlines() if "Progress of stream 'users'" in line]
    assert len(progress) >= 2
    assert re.search(r"\d+ received, \d+ sent, 0 rejected, 0 retried, [\d.]+ records/s now", progress[0])
    sandbox.set_latency(0)
    short_run = run_target(base_config(sandbox), users[:10])
    assert short_run.returncode == 0, short_run.stderr
    assert "Progress of stream" not in short_run.stderr


def test_run_summary_block_and_json(sandbox, run_target, tmp_path):
    summary = tmp_path / "out" / "summary.json"
    config = base_config(sandbox, mappings=BAD_MAPPING, summary_path=str(summary))
    run = run_target(config, DATA / "contacts_bad.singer")
    assert run.returncode == 0
    assert "Run summary (" in run.stderr
    assert (
        "contacts -> contacts: 6 received, 2 requests sent, 2 created or updated, 0 unchanged, 0 deleted, 4 rejected, "
        "0 skipped, 0 retries,"
    ) in run.stderr
    document = json.loads(summary.read_text())
    row = document["streams"]["contacts"]
    assert (row["object"], row["received"], row["upserted"], row["rejected"], row["requests"]) == (
        "contact",
        6,
        2,
        4,
        2,
    )
    assert document["totals"]["rejected"] == 4
    assert row["elapsed_seconds"] > 0
    assert row["records_per_second"] == pytest.approx(row["upserted"] / row["elapsed_seconds"], rel=0.05, abs=0.1)


@functools.cache
def about_schema() -> dict:
    about = subprocess.run(
        [target_executable(), "--about", "--format=json"], capture_output=True, text=True, check=True
    )
    return json.loads(about.stdout)["settings"]


def about_settings() -> tuple[str, ...]:
    settings = tuple(about_schema()["properties"])
    assert {"api_key", "account_id", "integration_id", "mappings"} <= set(settings)
    return settings


def readme_settings() -> dict[str, tuple[str, str, str]]:
    """docs/settings.md's hand-written table: per setting, (Required, Default, What it does) as printed."""
    page = (ROOT / "docs" / "settings.md").read_text()
    table = page.split("## What each setting does", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                rows[name] = (cells[1], cells[2], cells[3])
    return rows


def test_about_markdown_documents_every_setting():
    markdown = subprocess.run(
        [target_executable(), "--about", "--format=markdown"], capture_output=True, text=True, check=True
    ).stdout
    for name in about_settings():
        row = next((line for line in markdown.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None, name
        assert len(row.split("|")[4].strip()) > 10, f"{name} has no description"


def test_settings_page_table_matches_the_code():
    assert set(readme_settings()) == set(about_settings())


def test_settings_page_and_about_agree_on_required_defaults_and_load_method():
    about = about_schema()
    props = about["properties"]
    for name, (required, default, _what) in readme_settings().items():
        described = props[name].get("description", "")
        if required == "yes":
            assert name in about["required"], name
        elif required == "yes (not with dry_run)":
            assert name not in about["required"] and "Required unless dry_run" in described, name
        else:
            assert required == "" and name not in about["required"], name
        if "default" in props[name] and default:  # "the log" and the like: no default in the schema
            shown = json.dumps(props[name]["default"]).strip('"')
            assert default.strip("`") in (shown, shown.removesuffix(".0")), (name, default, shown)
        elif default.startswith("`"):
            pytest.fail(f"docs/settings.md gives {name} the default {default}; --about gives none")
    assert readme_settings()["api_key"][0] == "yes (not with dry_run)"
    assert props["batch_size_rows"]["default"] == 10000
    load = props["load_method"]
    assert (load["enum"], load["default"]) == (["upsert"], "upsert")
    assert "every record is an upsert keyed by the object's id" in load["description"].lower()
    assert "upsert" in readme_settings()["load_method"][2]


@pytest.mark.slow
def test_meltano_and_hub_definitions_match_the_code():
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plugin_definition.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    loader = project["plugins"]["loaders"][0]
    assert (loader["name"], loader["namespace"], loader["pip_url"], loader["executable"]) == (
        "target-segmetrics",
        "target_segmetrics",
        "-e .",
        "target-segmetrics",
    )
    settings = {s["name"]: s for s in loader["settings"]}
    assert tuple(settings) == about_settings()
    # kind `password` is deprecated in Meltano 4: a sensitive string
    assert settings["api_key"]["sensitive"] is True and settings["api_key"]["kind"] == "string"
    assert settings["mappings"]["kind"] == "object"
    assert all(s.get("kind") and s.get("description") for s in settings.values())
    hub = yaml.safe_load((ROOT / "meltano-hub" / "target-segmetrics.yml").read_text())
    assert hub["settings"] == loader["settings"]


# Each Troubleshooting entry of docs/operations.md (by how it starts), and a run that must print it.
TROUBLESHOOTING = [
    "SegMetrics refused the API key (HTTP 401)",
    "SegMetrics has no account",
    "Stopping before any record of stream 'contacts' is sent",
    "unknown setting 'mapping'",
    "Stream 'orders' is not listed in 'mappings'",
    "Rejected record of stream 'contacts'",
    "Rejected record of stream 'people' (id=8",
    "Line 3: not valid JSON",
]


def test_troubleshooting_entries_quote_the_real_messages(sandbox, run_target):
    page = (ROOT / "docs" / "operations.md").read_text()
    entries = re.findall(r"^\*\*`(.+?)`\*\*", page.split("## Troubleshooting", 1)[1], flags=re.M)
    assert [next((e for e in entries if e.startswith(start)), None) for start in TROUBLESHOOTING] == entries, entries
    users = [
        schema("users", {"id": {"type": "integer"}, "email": {"type": ["string", "null"]}}),
        record("users", {"id": 1, "email": None}),
        state({"x": 1}),
    ]
    runs = [
        run_target(
            base_config(sandbox, api_key="sk-wrong-key-123"), [users[0], record("users", {"id": 2, "email": "a@b.co"})]
        ),
        run_target(
            base_config(sandbox, integration_id="nope"), [users[0], record("users", {"id": 2, "email": "a@b.co"})]
        ),
        run_target(base_config(sandbox, mappings={"users": {"fields": {"email": "emial"}}}), users),
        run_target(base_config(sandbox, mapping={"users": {}}), users),
        run_target(
            base_config(sandbox, mappings={"users": {"fields": {"email": "email"}}}),
            [*users, schema("orders", {"id": {"type": "integer"}}), record("orders", {"id": 1})],
        ),
        run_target(base_config(sandbox), users),
        run_target(
            base_config(sandbox, mappings={"people": {"fields": {"contact_id": "id"}}}),
            [schema("people", {"id": {"type": "string"}}), record("people", {"id": "8\ud800"})],
        ),
        run_target(base_config(sandbox), DATA / "bad" / "not_json.singer"),
    ]
    for entry, run in zip(entries, runs, strict=True):  # each entry is what its run printed
        pattern = re.escape(entry).replace(r"\.\.\.", ".*?").replace("'contacts'", "'users'")
        pattern = pattern.replace(r"mappings\.contacts", r"mappings\.users")
        pattern = pattern.replace("'properties\\.emial'", "'emial'").replace(r"\(id=74254\)", r"\(id=\d+\)")
        assert re.search(pattern, run.stderr), (entry, run.stderr[-2000:])


# --- what the log says: wording, counts, noise --------------------------------------------------------

USERS_ONLY = {"users": {"fields": {"email": "email", "contact_id": {"path": "id", "transform": "string"}}}}


def test_summary_speaks_singular_and_plural_and_names_each_object(sandbox, run_target):
    people = schema("people", {"id": {"type": "integer"}, "email": {"type": "string"}})
    events = schema("list_events", {"contact": {"type": "string"}, "list": {"type": "string"}}, key_properties=())
    mappings = {
        "people": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}},
        "list_events": {"object": "tags", "fields": {"contact_id": "contact"}, "tags": [{"tag": {"name": "list"}}]},
    }
    messages = [
        people,
        record("people", {"id": 1, "email": "a@example.com"}),
        events,
        *[record("list_events", {"contact": "1", "list": name}) for name in ("VIP", "Beta")],
    ]
    run = run_target(base_config(sandbox, mappings=mappings), messages)
    assert run.returncode == 0, run.stderr
    block = "\n".join(summary_block(run))
    assert "  people -> contacts: 1 received, 1 request sent, 1 created or updated," in block
    assert "  list_events -> tag events: 2 received, 2 requests sent, 2 created or updated," in block
    assert "total: 3 records landed in SegMetrics" in block
    one = run_target(base_config(sandbox, mappings=USERS_ONLY), [USERS, *users(5, 6)])
    block = "\n".join(summary_block(one))
    assert "1 request sent" in block and "total: 1 record landed in SegMetrics" in block
    for wrong in ("1 requests", "1 records", "tagss", "1 retries"):  # "41.1 records/s" is fine
        assert not re.search(rf"(?<![\d.]){wrong}", one.stderr + run.stderr), wrong


def test_retries_of_a_request_that_finally_failed_are_counted_and_logged_once(sandbox, run_target, tmp_path):
    sandbox.faults = scripted(*["drop"] * 10)
    summary = tmp_path / "summary.json"
    config = base_config(sandbox, mappings=USERS_ONLY, max_retries=3, summary_path=str(summary))
    run = run_target(config, [USERS, *users(0, 1)])
    assert run.returncode == 1
    assert "after 4 tries" in run.stderr
    block = "\n".join(summary_block(run))
    assert "users -> contacts: 1 received, 4 requests sent," in block
    assert "3 retries (3 dropped connections)" in block
    row = json.loads(summary.read_text())["streams"]["users"]
    assert (row["requests"], row["retries"], row["throttled"]) == (4, 3, 0)
    # One INFO line when the trouble starts; each further retry only at DEBUG.
    retrying = [line for line in run.stderr.splitlines() if "Retrying" in line]
    assert len(retrying) == 1 and "| INFO" in retrying[0], retrying


def test_a_refused_key_counts_the_request_it_sent(sandbox, run_target, tmp_path):
    summary = tmp_path / "summary.json"
    config = base_config(sandbox, api_key="sk-wrong-key-123", mappings=USERS_ONLY, summary_path=str(summary))
    run = run_target(config, [USERS, *users(0, 1)])
    assert run.returncode == 1 and "refused the API key" in run.stderr
    assert sandbox.request_count == 1
    assert "users -> contacts: 1 received, 1 request sent," in "\n".join(summary_block(run))
    assert json.loads(summary.read_text())["streams"]["users"]["requests"] == 1


class Throttled(Policy):
    """Answers the first ``count`` requests 429 with ``Retry-After: 0``."""

    def __init__(self, count: int):
        self.left = count

    def before(self, ctx):
        if self.left > 0:
            self.left -= 1
            return FaultAction("status", status=429, retry_after=0)
        return None


def test_a_429_storm_is_one_info_line_and_counted_in_the_summary(sandbox, run_target):
    sandbox.faults = Throttled(12)
    run = run_target(
        base_config(sandbox, mappings=USERS_ONLY, max_concurrency=1, max_retries=15), [USERS, *users(0, 3)]
    )
    assert run.returncode == 0, run.stderr
    assert len(sandbox.contacts()) == 3
    # "HTTP 429", not "429": a log line's timestamp may end in ",429" (milliseconds).
    info = [
        line for line in run.stderr.splitlines() if "| INFO" in line and "HTTP 429" in line and "Progress" not in line
    ]
    assert len(info) == 1 and "Retrying" in info[0], info
    assert not [line for line in run.stderr.splitlines() if "Retrying" in line and "| INFO" not in line]
    assert "users -> contacts: 3 received, 15 requests sent, 3 created or updated" in run.stderr
    assert "12 retries (12 answered 429)" in run.stderr


def test_progress_line_breaks_retries_down_by_kind():
    logger = logging.getLogger("test-progress-line")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        reporter = Reporter(logger)
        reporter.describe("users", "contact")
        reporter.count("users", "received", 40)
        for _ in range(29):
            reporter.retry("users", "answered 429")
        for _ in range(8):
            reporter.retry("users", "dropped connection")
        reporter.retry("users", "timed out")
        reporter.progress()
    finally:
        logger.removeHandler(handler)
    [line] = [r.getMessage() for r in records]
    assert "40 received, 0 sent, 0 rejected, 38 retried (29 answered 429, 8 dropped connections, 1 timed out)" in line


def test_an_unmapped_stream_cannot_be_missed_in_the_summary(sandbox, run_target):
    orders = schema("orders", {"id": {"type": "integer"}})
    messages = [USERS, *users(0, 2), orders, *[record("orders", {"id": i}) for i in range(3)]]
    run = run_target(base_config(sandbox, mappings=USERS_ONLY), messages)
    assert run.returncode == 0, run.stderr
    block = summary_block(run)
    assert "| WARNING" in block[0]
    assert "  orders -> NOT SENT: not in mappings (3 records skipped)" in block
    assert "NOT SENT" in block[-1] and "'orders'" in block[-1] and "'users'" not in block[-1]
    mapped = run_target(base_config(sandbox, mappings=USERS_ONLY), [USERS, *users(0, 2)])
    block = summary_block(mapped)
    assert "| INFO" in block[0] and not any("NOT SENT" in line for line in block)


def test_a_plain_run_logs_what_matters_only(sandbox, run_target):
    orders = schema("orders", {"id": {"type": "integer"}})
    messages = [USERS, *users(0, 3), orders, record("orders", {"id": 1}), state({"done": 1})]
    run = run_target(base_config(sandbox, mappings=USERS_ONLY), messages)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    for noise in ("Skipping parse of env var", "batch_processing_time", "completed processing"):
        assert not [line for line in lines if noise in line], noise
    metrics = [json.loads(line.split("METRIC: ", 1)[1]) for line in lines if "METRIC: " in line]
    assert {(m["metric"], m["tags"]["stream"]): m["value"] for m in metrics} == {
        ("record_count", "users"): 3,
        ("record_count", "orders"): 0,
    }
    assert len(metrics) == 2
    read = [line for line in lines if "Read 7 lines" in line]
    assert len(read) == 1 and "waiting for" in read[0], lines
