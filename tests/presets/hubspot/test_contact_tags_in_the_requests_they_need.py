"""A HubSpot contact's tags in as few requests as they need, and still what all its streams say together.

Over the real taps' output (tests/fixtures/hubspot), with the README's one config and
``skip_unchanged`` (the store remembers which tags SegMetrics acknowledged per contact). Requests are
counted by the sandbox, per contact: the upsert and every ``tags/add`` / ``tags/remove`` naming it.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from helpers import FIXTURES, base_config, held, readme_hubspot_mappings

HUBSPOT = FIXTURES / "hubspot"

SYNC_ORDER = {  # each variant's files in the order the tap syncs those streams
    "meltanolabs": ["contacts", "owners", "deal_pipelines", "properties", "deals", "line_items", "products"],
    "singerio": ["subscription_changes", "contacts", "deals", "forms", "owners", "contact_lists", "deal_pipelines"],
    "singerio_legacy": ["subscription_changes", "contacts", "deals", "forms", "owners", "contact_lists"],
}
ALONE = ["meltanolabs", "singerio_legacy"]  # every tag a contact gets comes from its own record
WEBINAR, NEWSLETTER = "HubSpot list: Webinar attendees – Feb 2024", "HubSpot list: Newsletter subscribers (active)"


def tap_run(tmp_path, variant: str, run: str = "", edit=None):
    """One run of the tap (``""``, ``incremental_``); ``edit(contact id, properties)`` changes contacts."""
    lines = []
    for job in SYNC_ORDER[variant]:
        path = HUBSPOT / f"{variant}_{run}{job}.singer"
        for line in path.read_text().splitlines() if path.exists() else []:
            message = json.loads(line)
            if edit and message["type"] == "RECORD" and message["stream"] == "contacts":
                record = message["record"]
                edit(str(record.get("id") or record.get("vid")), record)
            lines.append(json.dumps(message) + "\n")
    out = tmp_path / f"{variant}-{run or 'first_'}{'edited' if edit else 'run'}.singer"
    out.write_text("".join(lines))
    return out


def set_property(record: dict, name: str, value) -> None:
    """A property as the variant holds it (singer-io 2.x/3.x wrap each one as {"value": ...}; singer-io
    also copies it to the top level as ``property_<name>``)."""
    for where, key in ((record["properties"], name), (record, f"property_{name}")):
        if key in where or where is record["properties"]:
            where[key] = {"value": value} if isinstance(where.get(key), dict) else value


def contact_requests(sandbox) -> Counter:
    """Requests per contact id for its contact record: (contact id, path) -> count, for the upserts and
    their tag operations (not the list and form tags other streams add)."""
    found: Counter = Counter()
    for entry in sandbox.requests_log():
        body = entry.get("body") or {}
        names = [tag["name"] if isinstance(tag, dict) else str(tag) for tag in body.get("tags") or []]
        if names and all(name.startswith(("HubSpot list: ", "Form: ")) for name in names):
            continue  # a list_memberships or form_submissions event
        if entry["path"] in ("contact", "tags/add", "tags/remove") and body.get("contact_id") is not None:
            found[(str(body["contact_id"]), entry["path"])] += 1
    return found


def per_contact(found: Counter) -> Counter:
    out: Counter = Counter()
    for (cid, _), n in found.items():
        out[cid] += n
    return out


def tag_bodies(sandbox, cid: str) -> list[tuple[str, list[str]]]:
    """The tag operations of a contact's own record, in the order they were received."""
    out = []
    for entry in sandbox.requests_log():
        body = entry.get("body") or {}
        if entry["path"].startswith("tags/") and str(body.get("contact_id")) == cid:
            names = sorted(tag["name"] if isinstance(tag, dict) else tag for tag in body["tags"])
            if not all(name.startswith(("HubSpot list: ", "Form: ")) for name in names):
                out.append((entry["path"], names))
    return out


@pytest.fixture
def target(sandbox, run_target, tmp_path):
    """Run the target with the README's one config and skip_unchanged; ``store`` names the store file."""

    def run(path, store: str = "store", **extra):
        settings = {"state_db_path": str(tmp_path / f"{store}.sqlite3"), **extra}
        config = base_config(sandbox, mappings=readme_hubspot_mappings(), skip_unchanged=True, **settings)
        result = run_target(config, path)
        assert result.returncode == 0, result.stderr
        assert result.errors == []
        return result

    return run


def lifecycle_and_status(contacts: dict) -> dict[str, list[str]]:
    return {
        cid: [t for t in c["tags"] if t.startswith(("Lifecycle: ", "Lead status: "))] for cid, c in contacts.items()
    }


@pytest.mark.parametrize("variant", ALONE)
def test_a_first_run_sends_one_request_per_contact_when_its_own_record_decides_its_tags(
    sandbox, target, tmp_path, variant
):
    target(tap_run(tmp_path, variant))
    found = contact_requests(sandbox)
    assert per_contact(found) == dict.fromkeys(["74251", "74252", "74253", "74254", "74255", "74256"], 1)
    contacts = held(sandbox)
    assert [t for t in contacts["74251"]["tags"] if not t.startswith(("HubSpot list: ", "Form: "))] == [
        "Lead status: Connected",
        "Lifecycle: Customer",
        "Source: Paid Social",
    ]
    if variant == "singerio_legacy":  # lists and forms inline: in the same one request
        assert {WEBINAR, NEWSLETTER, "Form: Webinar registration"} <= set(contacts["74253"]["tags"])


def test_a_first_run_where_other_streams_set_tags_keeps_them_and_sends_no_more_than_three_per_contact(
    sandbox, target, tmp_path
):
    target(tap_run(tmp_path, "singerio"))  # singer-io 4.x: list_memberships and form_submissions
    found = contact_requests(sandbox)
    assert max(per_contact(found).values()) <= 3
    assert all(found[(cid, "contact")] == 1 for cid in per_contact(found))
    contacts = held(sandbox)
    assert {WEBINAR, NEWSLETTER} <= set(contacts["74252"]["tags"])
    assert lifecycle_and_status(contacts)["74253"] == ["Lead status: New", "Lifecycle: Lead"]


def test_a_tag_stream_of_ones_own_keeps_its_tags_beside_a_meltanolabs_contact(sandbox, run_target, tmp_path):
    # The mappings name another stream that tags contacts: the contact's record no longer decides its
    # tags alone, so its update keeps the webinar tag (and costs its tag requests).
    mappings = {
        "contacts": {"preset": "hubspot"},
        "webinars": {"object": "tags", "fields": {"contact_id": "contact"}, "tags": [{"value": "Webinar: June"}]},
    }
    webinars = [
        {"type": "SCHEMA", "stream": "webinars", "schema": {"properties": {"contact": {"type": "string"}}}},
        {"type": "RECORD", "stream": "webinars", "record": {"contact": "74251"}},
    ]
    first = tap_run(tmp_path, "meltanolabs")
    first.write_text(first.read_text() + "".join(json.dumps(m) + "\n" for m in webinars))
    config = base_config(sandbox, mappings=mappings, skip_unchanged=True, state_db_path=str(tmp_path / "s.db"))
    assert run_target(config, first).returncode == 0
    assert run_target(config, tap_run(tmp_path, "meltanolabs", "incremental_")).returncode == 0
    tags = held(sandbox)["74251"]["tags"]
    assert "Webinar: June" in tags and "Lifecycle: Customer" in tags


@pytest.mark.parametrize("variant", [*ALONE, "singerio"])
def test_an_incremental_run_sends_one_request_per_changed_contact_and_only_the_tag_operations_a_change_needs(
    sandbox, target, tmp_path, variant
):
    target(tap_run(tmp_path, variant))
    before = contact_requests(sandbox)
    target(tap_run(tmp_path, variant, "incremental_"))
    found = contact_requests(sandbox) - before
    cost = per_contact(found)
    # 74252 (opted out) and 74255 (edited, tags unchanged): the upsert alone.
    assert cost["74252"] == cost["74255"] == 1
    contacts = held(sandbox)
    stage = "Lifecycle: Product trial" if variant == "meltanolabs" else "Lifecycle: 1034567"
    assert lifecycle_and_status(contacts)["74253"] == ["Lead status: Open", stage]
    if variant in ALONE:
        assert cost["74253"] == 1
    else:
        # lead -> custom stage, NEW -> OPEN: what the store knows was sent is removed, the new labels added.
        assert tag_bodies(sandbox, "74253")[-2:] in (
            [("tags/remove", ["Lead status: New", "Lifecycle: Lead"]), ("tags/add", ["Lead status: Open", stage])],
            [("tags/add", ["Lead status: Open", stage]), ("tags/remove", ["Lead status: New", "Lifecycle: Lead"])],
        )
        assert cost["74253"] == 3
        assert {WEBINAR, NEWSLETTER} <= set(contacts["74252"]["tags"])  # set by list_memberships: kept


@pytest.mark.parametrize("variant", ["singerio", "singerio_legacy"])
def test_a_stage_change_with_the_store_replaces_even_a_custom_stage_tag(
    sandbox, target, tmp_path, variant, store_config
):
    # No properties stream (singer-io emits none): the record does not say what a custom stage was;
    # the store (or, for a contact whose record alone decides its tags, the record) does.
    target(tap_run(tmp_path, variant), **store_config)
    target(tap_run(tmp_path, variant, "incremental_"), **store_config)  # 74253: lead -> custom stage 1034567
    moved = tap_run(
        tmp_path,
        variant,
        "incremental_",
        edit=lambda cid, record: set_property(record, "lifecyclestage", "2045678") if cid == "74253" else None,
    )
    target(moved, **store_config)
    contacts = held(sandbox)
    assert lifecycle_and_status(contacts)["74253"] == ["Lead status: Open", "Lifecycle: 2045678"]
    assert {WEBINAR, NEWSLETTER} <= set(contacts["74253"]["tags"])  # list tags stay
    if variant == "singerio":
        assert tag_bodies(sandbox, "74253")[-2:] in (
            [("tags/remove", ["Lifecycle: 1034567"]), ("tags/add", ["Lifecycle: 2045678"])],
            [("tags/add", ["Lifecycle: 2045678"]), ("tags/remove", ["Lifecycle: 1034567"])],
        )


@pytest.mark.parametrize("variant", ["meltanolabs", "singerio", "singerio_legacy"])
def test_a_stage_change_with_a_lost_store_ends_right(sandbox, target, tmp_path, variant):
    target(tap_run(tmp_path, variant), store="first")

    # A new container: the store is gone. 74252 moved from one default stage to another and cleared
    # her lead status; 74251's stage is unchanged.
    def edit(cid, record):
        if cid == "74252":
            set_property(record, "lifecyclestage", "opportunity")
            set_property(record, "hs_lead_status", None)

    target(tap_run(tmp_path, variant, "incremental_", edit=edit), store="lost")
    contacts = held(sandbox)
    assert lifecycle_and_status(contacts)["74252"] == ["Lifecycle: Opportunity"]
    assert lifecycle_and_status(contacts)["74253"][0] == "Lead status: Open"
    assert len([t for t in contacts["74253"]["tags"] if t.startswith("Lifecycle: ")]) == 1
    if variant == "singerio":
        assert {WEBINAR, NEWSLETTER} <= set(contacts["74252"]["tags"])  # set by list_memberships: kept
    if variant == "singerio_legacy":
        # Her lists come with her record; the name of list 12 came from the lost store's contact_lists
        # rows (the tap does not send an unchanged list again), so it is named by its id now.
        lists = [t for t in contacts["74252"]["tags"] if t.startswith("HubSpot list: ")]
        assert lists == ["HubSpot list: 12", NEWSLETTER]
