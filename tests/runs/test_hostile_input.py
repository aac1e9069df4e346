"""Hostile input and config: each case is one clear line (a rejected record, or a config error before
any request), never a traceback, never a hang, and never the key."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from helpers import API_KEY, base_config, record, schema, state, target_executable

from target_segmetrics.delivery.dispatch import Checkpoints

CONTACTS = schema("contacts", {"id": {}, "email": {"type": "string"}, "score": {}, "born": {}})
MAPPING = {
    "contacts": {
        "fields": {"contact_id": "id", "email": "email", "date_created": "born"},
        "custom_fields": {"score": "score"},
    }
}
INVOICES = schema("invoices", {"id": {}, "email": {"type": "string"}, "total": {}, "lines": {"type": "array"}})
INVOICE_MAPPING = {
    "invoices": {
        "object": "invoice",
        "fields": {
            "id": "id",
            "email": "email",
            "amount": "total",
            "paid": "total",
            "date_created": {"value": "2024-01-01"},
        },
        "items": {"path": "lines", "fields": {"name": "name", "product_id": "sku", "amount": "amount"}},
    }
}


def contacts(*bad: dict) -> list[dict]:
    good = [record("contacts", {"id": f"g{i}", "email": f"g{i}@example.com"}) for i in range(3)]
    return [CONTACTS, good[0], *[record("contacts", b) for b in bad], *good[1:], state({"done": True})]


def assert_rest_landed(run, sandbox, rejected: int) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert run.stderr.count("Rejected record") == rejected
    assert {c["email"] for c in sandbox.contacts()} == {f"g{i}@example.com" for i in range(3)}
    assert run.states[-1] == {"done": True}


# --- the key and the ids: text, from a file or from the environment -----------------------------------


def run_env(env: dict, messages: list[dict], timeout: float = 60) -> subprocess.CompletedProcess:
    text = "".join(json.dumps(m) + "\n" for m in messages)
    full = {k: v for k, v in os.environ.items() if not k.startswith("TARGET_SEGMETRICS_")} | env
    return subprocess.run(
        [target_executable(), "--config", "ENV"],
        input=text,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        check=False,
    )


def test_config_from_the_environment_takes_any_key_and_keeps_leading_zeros(sandbox):
    messages = [CONTACTS, record("contacts", {"id": "1", "email": "a@example.com"}), state({"ok": 1})]
    proc = run_env(
        {
            "TARGET_SEGMETRICS_API_KEY": API_KEY,
            "TARGET_SEGMETRICS_ACCOUNT_ID": sandbox.account_id,
            "TARGET_SEGMETRICS_INTEGRATION_ID": "int1",
            "TARGET_SEGMETRICS_API_URL": sandbox.base_url,
            "TARGET_SEGMETRICS_MAPPINGS": json.dumps(MAPPING),
        },
        messages,
    )
    assert proc.returncode == 0, proc.stderr
    assert API_KEY not in proc.stderr + proc.stdout
    assert sandbox.contact("1")["email"] == "a@example.com"


def test_an_id_with_leading_zeros_is_sent_as_written(sandbox):
    proc = run_env(
        {
            "TARGET_SEGMETRICS_API_KEY": API_KEY,
            "TARGET_SEGMETRICS_ACCOUNT_ID": "0042",
            "TARGET_SEGMETRICS_INTEGRATION_ID": "int1",
            "TARGET_SEGMETRICS_API_URL": sandbox.base_url,
        },
        [CONTACTS, record("contacts", {"id": "1", "email": "a@example.com"})],
    )
    assert proc.returncode == 1
    assert "account '0042'" in proc.stderr  # not 42
    assert "Traceback" not in proc.stderr


def test_invalid_json_in_the_mappings_variable_is_one_clear_line(sandbox):
    proc = run_env(
        {
            "TARGET_SEGMETRICS_API_KEY": API_KEY,
            "TARGET_SEGMETRICS_ACCOUNT_ID": "acct1",
            "TARGET_SEGMETRICS_INTEGRATION_ID": "int1",
            "TARGET_SEGMETRICS_API_URL": sandbox.base_url,
            "TARGET_SEGMETRICS_MAPPINGS": '{"contacts": {"fields": ',
        },
        [CONTACTS],
    )
    assert proc.returncode == 1
    assert "TARGET_SEGMETRICS_MAPPINGS" in proc.stderr and "not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert API_KEY not in proc.stderr


@pytest.mark.parametrize("key", [4242424242, [API_KEY], {"key": API_KEY}, True])
def test_a_key_of_the_wrong_type_is_named_but_never_echoed(sandbox, run_target, key):
    run = run_target(base_config(sandbox, api_key=key), [CONTACTS])
    assert "Traceback" not in run.stderr
    if isinstance(key, int) and not isinstance(key, bool):  # a number in a JSON config is text
        assert run.returncode == 0, run.stderr
        return
    assert run.returncode == 1
    assert "api_key" in run.stderr
    assert API_KEY not in run.stderr and "4242424242" not in run.stderr


# --- numbers and dates that would hang or crash ----------------------------------------------------------


def with_raw_record(tmp_path, raw: str):
    """The good contacts with one RECORD written as raw JSON text (numbers Python would not write)."""
    messages = contacts()
    text = "".join(json.dumps(m) + "\n" for m in messages[:2])
    text += '{"type": "RECORD", "stream": "contacts", "record": ' + raw + "}\n"
    text += "".join(json.dumps(m) + "\n" for m in messages[2:])
    path = tmp_path / "in.singer"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"id": "x1", "email": "x@example.com", "score": 1e999999999}', "score"),
        ('{"id": "x1", "email": "x@example.com", "score": 1e100000}', "score"),
        ('{"id": 1e999999999, "email": "x@example.com"}', "contact_id"),
        ('{"id": "x1", "email": "x@example.com", "born": ' + "9" * 400 + "}", "date_created"),
        ('{"id": "x1", "email": "x@example.com", "born": "1e999999999"}', "date_created"),
        ('{"id": "x1", "email": "x@example.com", "score": ' + "7" * 5000 + "}", "score"),
    ],
)
def test_an_absurd_number_rejects_one_record(sandbox, run_target, tmp_path, raw, field):
    run = run_target(base_config(sandbox, mappings=MAPPING), with_raw_record(tmp_path, raw), timeout=60)
    assert_rest_landed(run, sandbox, 1)
    assert "not valid JSON" not in run.stderr
    assert f"{field}: " in next(line for line in run.stderr.splitlines() if "Rejected record" in line)


@pytest.mark.parametrize("bad_id", ["..", ".", " .. "])
def test_a_delete_never_addresses_the_integration_or_a_collection(sandbox, run_target, bad_id):
    bad = {"id": bad_id, "email": "", "_sdc_deleted_at": "2024-05-01T00:00:00Z"}
    mapping = {"contacts": {"fields": {"contact_id": "id", "email": "email"}}}
    run = run_target(base_config(sandbox, mappings=mapping, hard_delete=True), contacts(bad))
    assert_rest_landed(run, sandbox, 1)
    assert all(entry["method"] == "POST" for entry in sandbox.requests_log())


def test_a_deeply_nested_record_is_rejected_and_kept(sandbox, run_target, tmp_path):
    deep = '{"x": ' * 980 + "{}" + "}" * 980
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings=MAPPING, rejects_path=str(rejects))
    raw = '{"id": "x1", "email": "x@example.com", "score": ' + deep + "}"
    run = run_target(config, with_raw_record(tmp_path, raw))
    assert_rest_landed(run, sandbox, 1)
    kept = rejects.read_text().splitlines()
    assert len(kept) == 1
    assert '"key":"id=x1"' in kept[0] and '"stream":"contacts"' in kept[0]


def test_an_invoice_with_no_items_is_rejected_locally(sandbox, run_target):
    messages = [
        INVOICES,
        record("invoices", {"id": "i1", "email": "a@example.com", "total": 100, "lines": []}),
        record(
            "invoices",
            {"id": "i2", "email": "a@example.com", "total": 100, "lines": [{"name": "A", "sku": "a", "amount": 100}]},
        ),
    ]
    run = run_target(base_config(sandbox, mappings=INVOICE_MAPPING), messages)
    assert run.returncode == 0, run.stderr
    assert "(id=i1) locally: items:" in run.stderr
    assert [i["id"] for i in sandbox.invoices()] == ["i2"]


# --- config mistakes: listed up front ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mappings": {"contacts": {"fields": {"email": {"path": "email", "transform": [["lower"]]}}}}}, "transform"),
        ({"mappings": {"contacts": {"fields": {"email": {"path": "email", "transform": {"x": 1}}}}}}, "transform"),
        ({"request_timeout": -1}, "request_timeout"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_requests_per_second": 0}, "max_requests_per_second"),
        ({"progress_interval": -5}, "progress_interval"),
    ],
)
def test_a_bad_setting_is_a_config_error_before_any_request(sandbox, run_target, overrides, message):
    run = run_target(base_config(sandbox, **overrides), contacts())
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "Unexpected error" not in run.stderr
    assert [line for line in run.errors if message in line]
    assert sandbox.request_count == 0


def test_a_store_path_that_cannot_be_a_file_is_a_config_error(sandbox, run_target, tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("x")
    directory = tmp_path / "a-dir"
    directory.mkdir()
    for path, why in ((regular / "sent.db", "state_db_path"), (directory, "is a directory")):
        run = run_target(base_config(sandbox, skip_unchanged=True, state_db_path=str(path)), contacts())
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr
        assert [line for line in run.errors if why in line]
        assert directory.is_dir() and not list(tmp_path.glob("a-dir.unreadable*"))  # never moved aside
    assert sandbox.request_count == 0


def test_a_summary_path_that_cannot_be_written_is_a_config_error(sandbox, run_target, tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("x")
    run = run_target(base_config(sandbox, summary_path=str(regular / "summary.json")), contacts())
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert [line for line in run.errors if "summary_path" in line]


# --- STATE and stdout ---------------------------------------------------------------------------------


class CountingState(dict):
    """A STATE value that counts how often it is compared."""

    comparisons = 0

    def __eq__(self, other):
        CountingState.comparisons += 1
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]


def test_a_large_state_is_compared_once_per_state_message_not_per_record():
    written: list[dict] = []
    checkpoints = Checkpoints(written.append, interval=3600, every=10**9)
    CountingState.comparisons = 0
    value = CountingState({"bookmarks": {"x": "y" * 1000}})
    tickets = [checkpoints.ticket() for _ in range(1000)]
    checkpoints.state(value)
    for number in tickets:
        checkpoints.landed(number, True)
    checkpoints.flush()
    assert written == [value]
    assert CountingState.comparisons <= 3


def test_a_closed_stdout_stops_the_run_with_one_line(sandbox, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(sandbox, mappings=MAPPING, batch_size_rows=5)))
    messages = [CONTACTS]
    for i in range(200):
        messages += [record("contacts", {"id": f"c{i}", "email": f"c{i}@example.com"}), state({"n": i})]
    text = "".join(json.dumps(m) + "\n" for m in messages)
    proc = subprocess.run(
        f"{target_executable()} --config {config} | head -1",
        shell=True,
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        executable="/bin/bash",
    )
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr
    assert "stdout" in proc.stderr  # says what happened
    assert len(proc.stdout.splitlines()) == 1
