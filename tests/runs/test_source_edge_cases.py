"""Review of the mapping language's sources (README "Sources") and the hubspot preset (README "The
`hubspot` preset"): what a user would see go wrong in SegMetrics, in the run's output or in its exit
code. Each test fails on the commit it was written against (524eaba), for the reason its comment gives."""

from __future__ import annotations

import pytest
from helpers import base_config, record, schema

TEXT = {"type": ["string", "null"]}
OPEN_OBJECT = {"type": ["object", "null"], "additionalProperties": True}

# --- HubSpot contacts in the shapes the taps emit -------------------------------------------------

# singer-io 2.x/3.x: v1 contacts, each property wrapped as {"value": ...}, lists and forms inline.
LEGACY_CONTACTS = schema(
    "contacts",
    {
        "vid": {"type": ["null", "integer"]},
        "properties": {"type": ["null", "object"]},
        "list-memberships": {"type": ["null", "array"]},
        "form-submissions": {"type": ["null", "array"]},
    },
    key_properties=("vid",),
)


def legacy_contact(vid: int, email: str, **inline) -> dict:
    return record("contacts", {"vid": vid, "properties": {"email": {"value": email}}, **inline})


# MeltanoLabs (and singer-io 4.x, typed): {"id", "properties": {...}}.
CONTACTS = schema("contacts", {"id": TEXT, "properties": OPEN_OBJECT})


def contact(contact_id: str, email: str, **properties) -> dict:
    return record("contacts", {"id": contact_id, "properties": {"email": email, **properties}})


def emails(sandbox) -> set[str]:
    return {c["email"] for c in sandbox.contacts()}


def tag_names(sandbox, email: str) -> list[str]:
    return sorted(tag["name"] for c in sandbox.contacts() if c["email"] == email for tag in c["tags"])


HUBSPOT_CONTACTS = {"contacts": {"preset": "hubspot"}}


# --- 1. odd input stops the whole run -------------------------------------------------------------


def run_goes_on(sandbox, run_target, tmp_path, messages: list[dict]):
    """The hubspot contacts run ends well, and the contact after the odd one (next@) is sent."""
    config = base_config(sandbox, mappings=HUBSPOT_CONTACTS, rejects_path=str(tmp_path / "rejects.jsonl"))
    run = run_target(config, messages)
    assert "Unexpected error" not in run.stderr and "Traceback" not in run.stderr, run.errors
    assert run.returncode == 0, run.errors
    assert "next@example.com" in emails(sandbox)
    return run


def test_a_list_written_as_deeply_nested_json_text_is_rejected_and_the_run_goes_on(sandbox, run_target, tmp_path):
    # What a user sees: "Unexpected error (RecursionError): maximum recursion depth exceeded while
    # decoding a JSON array", exit 1, and every record after this one is never sent.
    # The README (Sources) reads "a list the SDK's flattening wrote as JSON text" as the list; bad
    # input must be one rejected record with its reason, the run going on. sources._walk_slowly,
    # sources._elements, mapping.tag_builder and values.unwrap catch only ValueError around json.loads.
    nested = "[" * 5000 + "]" * 5000
    # The schema as the SDK's flattening leaves it past its max depth: the list is JSON text.
    flattened = schema(
        "contacts",
        {"vid": {"type": ["null", "integer"]}, "properties": {"type": ["null", "object"]}, "form-submissions": TEXT},
        key_properties=("vid",),
    )
    messages = [
        flattened,
        legacy_contact(1, "deep@example.com", **{"form-submissions": nested}),
        legacy_contact(2, "next@example.com"),
    ]
    run = run_goes_on(sandbox, run_target, tmp_path, messages)
    # The odd contact is rejected in one line naming its stream, key and field, not lost silently.
    assert [line for line in run.warnings if "'contacts' (vid=1)" in line and "tags[4]" in line], run.warnings


def test_a_malformed_first_page_url_does_not_stop_the_run(sandbox, run_target, tmp_path):
    # What a user sees: one contact whose hs_analytics_first_url is not a valid URL (an unclosed
    # IPv6 bracket) stops the run: "Unexpected error (ValueError): Invalid IPv6 URL", exit 1, no
    # contact of the stream sent. The README's hubspot table: the UTM fields come from the first
    # URL's query, "none: nothing". sources.url_param lets urllib's ValueError through (it is not a
    # ValueProblem, so mapping._evaluate does not turn it into a rejection).
    messages = [
        CONTACTS,
        contact("1", "odd-url@example.com", hs_analytics_first_url="https://[shop.example.com/?utm_source=fb"),
        contact("2", "next@example.com"),
    ]
    run_goes_on(sandbox, run_target, tmp_path, messages)
    # The UTM parameters are in the query, whatever the host: they are still read.
    assert {c["email"]: c.get("utm_source") for c in sandbox.contacts()}["odd-url@example.com"] == "fb"


# --- 2. each: one odd element loses the whole contact ---------------------------------------------


def test_a_null_element_in_an_each_list_gives_no_tag_and_the_contact_is_still_sent(sandbox, run_target, tmp_path):
    # What a user sees: "Rejected record of stream 'contacts' (vid=74251) locally: tags[4]: expected
    # a list of objects (each)": the contact (email, name, its list tags) never reaches SegMetrics
    # because its inline form-submissions list holds a null. The README: "`each` builds one per
    # element of the list" and "Empty tags ... are dropped"; the same null in list-memberships already
    # gives no tag and the rest still counts (test_hubspot_edge_cases). mapping.tag_builder.build_each
    # refuses the whole list when one element is not an object.
    membership = {"static-list-id": 12, "internal-list-id": 12, "timestamp": 1707926772000, "is-member": True}
    form = {"form-id": "b1f6a2c4", "timestamp": 1707926772000, "conversion-id": "c1"}
    messages = [
        LEGACY_CONTACTS,
        legacy_contact(
            74251, "alice@example.com", **{"list-memberships": [membership], "form-submissions": [None, form]}
        ),
    ]
    config = base_config(sandbox, mappings=HUBSPOT_CONTACTS, rejects_path=str(tmp_path / "rejects.jsonl"))
    run = run_target(config, messages)
    assert run.returncode == 0, run.errors
    assert "alice@example.com" in emails(sandbox), run.warnings
    assert tag_names(sandbox, "alice@example.com") == ["HubSpot list: 12"]


# --- 3. typos in paths the user wrote that are never checked --------------------------------------

USERS = schema(
    "users",
    {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "plan": {"type": "string"},
        "old_plan": {"type": "string"},
        "lists": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"list": {"type": "string"}, "kind": {"type": "string"}, "at": {"type": "string"}},
            },
        },
    },
)
USER = record(
    "users",
    {
        "id": 1,
        "email": "ann@example.com",
        "plan": "pro",
        "old_plan": "free",
        "lists": [{"list": "Webinar", "kind": "pro", "at": "2024-03-01T10:00:00Z"}],
    },
)


@pytest.mark.parametrize(
    ("entry", "place", "typo"),
    [
        ({"tags_mode": "add", "tags": ["plan"], "tags_remove": ["old_pln"]}, "tags_remove[0]", "old_pln"),
        (
            {"custom_fields": {"List": {"path": "lists", "where": {"field": "kind", "is": "pln"}, "field": "list"}}},
            "custom_fields.List.where.is",
            "pln",
        ),
        (
            {"custom_fields": {"Plan": {"path": "plan", "check": {"source": "old_pln", "in": ["free"]}}}},
            "custom_fields.Plan.check.source",
            "old_pln",
        ),
    ],
    ids=["tags_remove", "where.is", "check.source"],
)
def test_a_typo_in_a_record_path_of_a_source_option_stops_the_run(sandbox, run_target, entry, place, typo):
    # What a user sees: the run succeeds and the source silently finds nothing, for every record:
    # tags_remove removes no old tag, where.is keeps no element, check never refuses. These are record
    # paths the user wrote, like fields.email; the README (Troubleshooting): a path you wrote in
    # `mappings` that matches no property of the stream's schema stops the run before anything is
    # sent, naming it (as a source's `when` now does). compiler.path_checks / _paths_of collect
    # neither tags_remove nor the record sources inside where.is and check.source.
    mappings = {"users": {"fields": {"contact_id": "id", "email": "email"}, **entry}}
    run = run_target(base_config(sandbox, mappings=mappings), [USERS, USER])
    assert run.returncode == 1, sandbox.contacts()
    assert [line for line in run.errors if typo in line and place in line], run.errors
    assert sandbox.request_count == 0


@pytest.mark.parametrize(
    ("source_key", "source", "place", "typo"),
    [
        ("tags", [{"each": "lists", "tag": {"name": "lst", "date": "at"}}], "tags[0]", "lst"),
        (
            "custom_fields",
            {"List": {"path": "lists", "where": {"field": "knd", "in": ["pro"]}, "field": "list"}},
            "custom_fields.List",
            "knd",
        ),
        ("custom_fields", {"List": {"path": "lists", "latest": "att", "field": "list"}}, "custom_fields.List", "att"),
    ],
    ids=["each.tag.name", "where.field", "latest"],
)
def test_a_typo_in_an_element_path_the_schema_declares_stops_the_run(
    sandbox, run_target, source_key, source, place, typo
):
    # What a user sees: no tag from any element (each.tag.name), the custom field never sent
    # (where.field keeps nothing), or latest picking the last element instead of the latest - for
    # every record, and a clean run. The schema declares the list's elements ("items" with
    # "properties": list, kind, at), so these typos are as checkable as a record path; the README
    # (Troubleshooting) promises that a path you wrote naming nothing the schema declares stops the
    # run. compiler.path_checks checks only the each/path source, never the paths read inside elements.
    mappings = {"users": {"fields": {"contact_id": "id", "email": "email"}, source_key: source}}
    run = run_target(base_config(sandbox, mappings=mappings), [USERS, USER])
    assert run.returncode == 1, sandbox.contacts()
    assert [line for line in run.errors if typo in line and place in line], run.errors
    assert sandbox.request_count == 0


# --- 4. hubspot preset: tags ----------------------------------------------------------------------


def test_a_cleared_lead_status_removes_the_old_lead_status_tag(sandbox, run_target, tmp_path):
    # What a marketer sees: a contact whose lead status was cleared in HubSpot (common when a lead
    # becomes a customer) keeps "Lead status: New" in SegMetrics forever, so a segment on that tag
    # keeps targeting customers. The README: "What the contact's record says it is *not* any more is
    # removed with tags/remove: the labels of every other lifecycle stage and lead status"; its limit
    # is only a move between two *custom* stages without the properties stream ("moving to or from a
    # default stage is exact"). presets.HUBSPOT_CONTACTS tags_remove maps only a non-empty
    # hs_lead_status (others(...)); an empty one removes nothing (singer-io, or MeltanoLabs without
    # the properties stream).
    config = base_config(sandbox, mappings=HUBSPOT_CONTACTS, state_db_path=str(tmp_path / "store.sqlite3"))
    first = contact("74251", "alice@example.com", hs_lead_status="NEW", lifecyclestage="lead")
    assert run_target(config, [CONTACTS, first]).returncode == 0
    assert tag_names(sandbox, "alice@example.com") == ["Lead status: New", "Lifecycle: Lead"]
    edited = contact(
        "74251",
        "alice@example.com",
        hs_lead_status=None,
        lifecyclestage="customer",
        lastmodifieddate="2024-06-01T00:00:00Z",
    )
    run = run_target(config, [CONTACTS, edited])
    assert run.returncode == 0, run.errors
    assert tag_names(sandbox, "alice@example.com") == ["Lifecycle: Customer"]
