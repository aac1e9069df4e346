"""Lookups across streams and runs, and records that wait (parked) instead of being lost.

Over real tap output: MeltanoLabs' tap-hubspot emits each deal's contact in a separate stream,
`deal_contact_associations` (recorded by the tap's own code, see tests/fixtures/hubspot/README.md).
"""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES, base_config
from helpers import LOOKUP_DEALS as DEALS
from helpers import LOOKUP_MAPPINGS as MAPPINGS

HUBSPOT = FIXTURES / "hubspot"
CONTACTS = HUBSPOT / "meltanolabs_contacts.singer"
# Closed-won deals of the recorded portal, and the contact the associations stream gives each.
WON = [("7001", "74251", 150000), ("7002", "74256", 49900)]


def invoices(sandbox) -> list[tuple[str, str, int]]:
    return sorted((str(i["id"]), str(i["contact_id"]), i["amount"]) for i in sandbox.invoices())


def deals_with_associations_last(tmp_path):
    """The same tap output, the associations stream moved after the deals."""
    lines = DEALS.read_text().splitlines()
    assoc = [line for line in lines if '"deal_contact_associations"' in line and '"STATE"' not in line]
    rest = [line for line in lines if line not in assoc]
    path = tmp_path / "deals-first.singer"
    path.write_text("\n".join(rest + assoc) + "\n")
    return path


@pytest.mark.parametrize("order", ["associations first (as the tap emits)", "deals first"])
def test_meltanolabs_deals_become_invoices_of_the_right_contacts(sandbox, run_target, tmp_path, order, store_config):
    config = base_config(sandbox, mappings=MAPPINGS, **store_config)
    assert run_target(config, CONTACTS).returncode == 0
    deals = DEALS if order.startswith("associations") else deals_with_associations_last(tmp_path)
    run = run_target(config, deals)
    assert run.returncode == 0, run.stderr
    assert "Rejected" not in run.stderr
    assert invoices(sandbox) == WON
    summary = run.stderr.split("Run summary", 1)[1]
    if order == "deals first":  # they waited for their contact's association row, then landed in this run
        assert "parked" in summary, summary
    else:
        assert "parked" not in summary, summary


def test_contacts_a_run_later_give_the_same_invoices_as_one_full_run(sandbox, run_target, tmp_path, store_config):
    # A tap start_date: the deals' contacts were not modified since, so they come in a later run.
    config = base_config(sandbox, mappings=MAPPINGS, summary_path=str(tmp_path / "s.json"), **store_config)
    first = run_target(config, DEALS)
    assert first.returncode == 0, first.stderr
    assert invoices(sandbox) == []  # SegMetrics holds no contact yet: refused, parked (not rejected)
    assert "Rejected" not in first.stderr
    assert "2 records parked, waiting for their contact" in first.stderr
    assert first.states[-1]["bookmarks"]["deals"]  # parked is durable: STATE passes them
    summary = json.loads((tmp_path / "s.json").read_text())["streams"]["deals"]
    assert (summary["parked"], summary["released"]) == (2, 0)

    second = run_target(config, CONTACTS)
    assert second.returncode == 0, second.stderr
    assert invoices(sandbox) == WON
    summary = json.loads((tmp_path / "s.json").read_text())["streams"]["deals"]
    assert summary["released"] == 2
    assert "parked, waiting" not in second.stderr


def test_a_record_parked_too_long_goes_to_the_rejects_file_with_its_reason(sandbox, run_target, tmp_path, store_config):
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings=MAPPINGS, rejects_path=str(rejects), **store_config)
    assert run_target(config, DEALS).returncode == 0
    assert not rejects.exists()
    later = run_target({**config, "park_max_age_days": 0}, [])
    assert later.returncode == 0, later.stderr
    kept = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert sorted(k["key"] for k in kept) == ["id=7001", "id=7002"]
    assert all("waiting for its contact" in k["reasons"][0] and "park_max_age_days" in k["reasons"][0] for k in kept)
    assert invoices(sandbox) == []


@pytest.mark.parametrize(
    ("mappings", "message"),
    [
        (
            {"deals": {**MAPPINGS["deals"]}},
            "looks up stream 'deal_contact_associations', which 'mappings' does not declare",
        ),
        (
            {"deals": {**MAPPINGS["deals"]}, "deal_contact_associations": {"fields": {"email": "to_id"}}},
            "stream 'deal_contact_associations' is not a lookup source",
        ),
        ({"deal_contact_associations": {"lookup": {"key": "from_id"}, "object": "invoice"}}, "has only 'lookup'"),
    ],
)
def test_a_lookup_that_cannot_work_stops_before_any_request(sandbox, run_target, mappings, message):
    run = run_target(base_config(sandbox, mappings=mappings), DEALS)
    assert run.returncode == 1
    assert [line for line in run.errors if message in line]
    assert sandbox.request_count == 0


def tag_names(sandbox) -> dict[str, list[str]]:
    return {str(c["contact_id"]): sorted(t["name"] for t in c["tags"]) for c in sandbox.contacts()}


def test_list_memberships_before_their_contacts_end_as_one_full_run(sandbox, run_target, tmp_path, store_config):
    from helpers import ACCOUNT, API_KEY, INTEGRATION

    from target_segmetrics.sandbox import Sandbox

    mappings = {"contacts": {"preset": "hubspot", "tags_mode": "add"}, "list_memberships": {"preset": "hubspot"}}
    lists, contacts = HUBSPOT / "singerio_contact_lists.singer", HUBSPOT / "singerio_contacts.singer"
    with Sandbox(api_key=API_KEY, account_id=ACCOUNT, integration_ids=(INTEGRATION,)) as full:
        config = base_config(full, mappings=mappings, state_db_path=str(tmp_path / "full.sqlite3"))
        assert run_target(config, contacts).returncode == 0
        assert run_target(config, lists).returncode == 0
        expected = tag_names(full)
    assert any(any(name.startswith("HubSpot list") for name in names) for names in expected.values())

    config = base_config(sandbox, mappings=mappings, **store_config)
    first = run_target(config, lists)  # the contacts come a run later
    assert first.returncode == 0, first.stderr
    assert "Rejected" not in first.stderr and "parked, waiting for their contact" in first.stderr
    second = run_target(config, contacts)
    assert second.returncode == 0, second.stderr
    assert tag_names(sandbox) == expected


def test_what_a_lookup_key_holds_is_digested_anew_once_its_rows_change_or_leave_memory(store_config, monkeypatch):
    """An unchanged record is recognised by the digests of the lookup rows its mapping read: a row put in
    this run, or the key's rows read again after other keys pushed them out of memory, is digested anew."""
    import logging

    from target_segmetrics.store import Store, lookups

    monkeypatch.setattr(lookups, "CACHE_KEYS", 2)
    path = store_config.get("state_db_path", ":unused:")
    store = Store(path, "dest", logging.getLogger("test"), url=store_config.get("state_db_url"))
    try:
        rows = store.lookups
        store.put_row("owners", "o1", "o1", '{"name": "Olga"}')
        olga = rows.digest("owners", "o1")
        assert rows.digest("owners", "o1") == olga
        store.put_row("owners", "o1", "o1", '{"name": "Oscar"}')  # the same key, a new row, this run
        oscar = rows.digest("owners", "o1")
        assert oscar != olga
        store.commit()
        for key in ("o2", "o3", "o4"):  # o1 leaves memory
            rows.digest("owners", key)
        other = Store(path, "dest", logging.getLogger("test"), url=store_config.get("state_db_url"))
        other.put_row("owners", "o1", "o1", '{"name": "Otto"}')  # another run, meanwhile
        other.close()
        assert rows.digest("owners", "o1") not in (olga, oscar)  # read again: what the store holds now
    finally:
        store.close()
