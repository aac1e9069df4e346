"""What a Meltano user sees: dry run, progress, run summary, plugin definition, docs that match the code."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import DATA, FIXTURES, base_config, record, schema, state, target_executable

ROOT = Path(__file__).parent.parent
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
    # Per contact (hubspot preset): the upsert, tags/remove of its other stages, tags/add of its tags.
    assert len(lines) == 6 * 3
    assert {line["method"] for line in lines} == {"POST"}
    assert {line["path"] for line in lines} == {"contact", "tags/remove", "tags/add"}
    alice = [line for line in lines if line["body"].get("contact_id") == "74251"]
    assert [line["path"] for line in alice] == ["contact", "tags/remove", "tags/add"]
    assert (
        alice[0]["body"]["email"] == "alice.johnson@example.com" and "Lifecycle: Customer" in alice[2]["body"]["tags"]
    )
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
        "0 skipped, 0 retries, 0 answered 429"
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
    assert row["elapsed_seconds"] >= 0 and "records_per_second" in row


@functools.cache
def about_settings() -> tuple[str, ...]:
    about = subprocess.run(
        [target_executable(), "--about", "--format=json"], capture_output=True, text=True, check=True
    )
    settings = tuple(json.loads(about.stdout)["settings"]["properties"])
    assert {"api_key", "account_id", "integration_id", "mappings"} <= set(settings)
    return settings


def test_about_markdown_documents_every_setting():
    markdown = subprocess.run(
        [target_executable(), "--about", "--format=markdown"], capture_output=True, text=True, check=True
    ).stdout
    for name in about_settings():
        row = next((line for line in markdown.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None, name
        assert len(row.split("|")[4].strip()) > 10, f"{name} has no description"


def test_readme_settings_table_matches_the_code():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    assert documented == set(about_settings())


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


# Each Troubleshooting entry of the README (by how it starts), and a run that must print it.
TROUBLESHOOTING = [
    "SegMetrics refused the API key (HTTP 401)",
    "SegMetrics has no account",
    "Stopping before any record of stream 'contacts' is sent",
    "unknown setting 'mapping'",
    "Stream 'orders' is not listed in 'mappings'",
    "Rejected record of stream 'contacts'",
    "Line 3: not valid JSON",
]


def test_troubleshooting_entries_quote_the_real_messages(sandbox, run_target):
    readme = (ROOT / "README.md").read_text()
    entries = re.findall(r"^\*\*`(.+?)`\*\*", readme.split("## Troubleshooting", 1)[1], flags=re.M)
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
        run_target(base_config(sandbox), DATA / "bad" / "not_json.singer"),
    ]
    for entry, run in zip(entries, runs, strict=True):  # each entry is what its run printed
        pattern = re.escape(entry).replace(r"\.\.\.", ".*?").replace("'contacts'", "'users'")
        pattern = pattern.replace(r"mappings\.contacts", r"mappings\.users")
        pattern = pattern.replace("'properties\\.emial'", "'emial'").replace(r"\(id=74254\)", r"\(id=\d+\)")
        assert re.search(pattern, run.stderr), (entry, run.stderr[-2000:])
