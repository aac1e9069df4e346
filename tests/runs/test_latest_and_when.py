"""Review of sources' ``latest``, ``when`` and ``where.not_in`` (commit f05f0b3): what a user would see
go wrong in SegMetrics or in the run's output. Each test fails on that commit."""

from __future__ import annotations

import datetime

import pytest
from helpers import SUBSCRIPTION_CHANGES, base_config, record, schema

from target_segmetrics.mapping.sources import MISSING, MappingConfigError, compile_source

LATEST_CHANGE = {"path": "changes", "latest": "timestamp", "field": "change"}


def changes(*pairs) -> dict:
    return {"changes": [{"timestamp": at, "change": value} for at, value in pairs]}


# --- latest: dates read as the README reads them ----------------------------------------------------


def test_latest_reads_epoch_milliseconds_written_as_digit_text_as_a_time():
    # HubSpot's v1 API writes dates as epoch-millisecond text; the README's dates accept "an epoch
    # number (milliseconds), also as digit text". 1701011200000 is 2023-11-26, 1700000000000 is
    # 2023-11-14, but "1701011200000" also parses as ISO 8601 basic (1701-01-12), so it came out oldest.
    record_ = changes(("1701011200000", "SUBSCRIBED"), ("1700000000000", "UNSUBSCRIBED"))
    assert compile_source(LATEST_CHANGE, "t")(record_) == ["SUBSCRIBED"]


LATER = "later"
EARLIER = "earlier"
MARCH_2 = datetime.datetime(2024, 3, 2, tzinfo=datetime.timezone.utc)
JAN_1_MS = 1704067200000  # 2024-01-01 in epoch milliseconds


@pytest.mark.parametrize(
    "later_at",
    [
        "2024-03-02T00:00:00Z",  # ISO text
        "2024-03-02T00:00:00",  # ISO text without a zone (UTC)
        MARCH_2,  # a datetime, as the SDK parses a date-time property
        int(MARCH_2.timestamp()),  # epoch seconds (the README: numbers below 10^11 are seconds)
    ],
    ids=["iso", "iso-no-z", "datetime", "epoch-seconds"],
)
def test_latest_orders_an_epoch_millisecond_number_and_other_date_forms_by_time(later_at):
    # An epoch number in milliseconds was compared with the other forms' seconds: it always won.
    record_ = changes((later_at, LATER), (JAN_1_MS, EARLIER))
    assert compile_source(LATEST_CHANGE, "t")(record_) == [LATER]


def test_a_huge_number_where_latest_reads_a_date_does_not_stop_the_run(sandbox, run_target, tmp_path):
    # One record with an absurd timestamp (an integer too large for a float) raised OverflowError:
    # "Unexpected error" and exit 1, the records after it never sent. The target refuses such numbers
    # elsewhere (values.py); here the record should at most be rejected, the run go on.
    def subscription_change(recipient: str, at) -> dict:
        change = {"changeType": "PORTAL_STATUS", "change": "UNSUBSCRIBED", "timestamp": at, "portalId": 1}
        data = {"timestamp": "2024-03-01T10:00:00Z", "portalId": 1, "recipient": recipient, "changes": [change]}
        return record("subscription_changes", data)

    huge = subscription_change("huge@example.com", 10**400)
    huge["record"]["changes"].append(
        {"changeType": "PORTAL_STATUS", "change": "SUBSCRIBED", "timestamp": 1, "portalId": 1}
    )
    messages = [SUBSCRIPTION_CHANGES, huge, subscription_change("next@example.com", "2024-03-01T10:00:00Z")]
    config = base_config(
        sandbox, mappings={"subscription_changes": {"preset": "hubspot"}}, rejects_path=str(tmp_path / "rejects.jsonl")
    )
    run = run_target(config, messages)
    assert "Unexpected error" not in run.stderr and "Traceback" not in run.stderr, run.errors
    assert run.returncode == 0, run.errors
    assert "next@example.com" in {c["email"] for c in sandbox.contacts()}


# --- when: a gate that finds nothing --------------------------------------------------------------

USERS = schema(
    "users",
    {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "plan": {"type": "string"},
        "paid": {"type": "boolean"},
    },
)


def test_a_when_path_the_schema_does_not_declare_stops_the_run(sandbox, run_target):
    # A typo in an entry's own "when" stops the run before the first request (test_typos); one in a
    # source's "when" was accepted, and the custom field was silently never sent.
    mappings = {
        "users": {
            "fields": {"contact_id": "id", "email": "email"},
            "custom_fields": {"plan": {"path": "plan", "when": "piad"}},
        }
    }
    messages = [USERS, record("users", {"id": 1, "email": "a@example.com", "plan": "pro", "paid": True})]
    run = run_target(base_config(sandbox, mappings=mappings), messages)
    assert run.returncode == 1, sandbox.contacts()
    assert [line for line in run.errors if "piad" in line and "custom_fields.plan" in line], run.errors
    assert sandbox.request_count == 0


def test_when_false_finds_nothing_even_with_a_default():
    # README: "the source object finds nothing unless `when` is true in the record". With a default,
    # the default was sent instead (and a sent value overwrites what SegMetrics holds).
    plan = compile_source({"path": "plan", "when": "paid", "default": "free"}, "t")
    assert plan({"plan": "pro", "paid": True}) == "pro"
    assert plan({"plan": "pro", "paid": False}) is MISSING


# --- where.not_in ---------------------------------------------------------------------------------


def test_not_in_null_is_a_config_error_naming_its_place():
    # A missing (or null) field is never refused, so "not_in": [null] drops nothing: a config that
    # cannot do what it says, accepted silently.
    spec = {"path": "list-memberships", "where": {"field": "is-member", "not_in": [None]}}
    with pytest.raises(MappingConfigError, match=r"mappings\.contacts\.tags\[0\]\.each\.where"):
        compile_source(spec, "mappings.contacts.tags[0].each")
