"""The `hubspot` preset on what both tap-hubspot variants really emit (fixtures from the taps' code)."""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES, base_config

HUBSPOT = FIXTURES / "hubspot"
VARIANTS = ["meltanolabs", "singerio", "singerio_legacy"]


def held(sandbox) -> dict[str, dict]:
    """What SegMetrics holds, per contact_id, with tags as names (ids depend on arrival order).

    List tags are left out: singer-io 2.x/3.x carry a contact's lists inline, the newer taps in a
    stream of their own (tests/presets/hubspot/test_hubspot_preset.py covers them)."""
    out = {}
    for held_contact in sandbox.contacts():
        names = sorted(tag["name"] for tag in held_contact["tags"])
        contact = {**held_contact, "tags": [name for name in names if not name.startswith("HubSpot list: ")]}
        out[contact["contact_id"]] = contact
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_hubspot_preset_maps_every_contact(sandbox, run_target, variant):
    config = base_config(sandbox, mappings={"contacts": {"preset": "hubspot"}})
    run = run_target(config, HUBSPOT / f"{variant}_contacts.singer")
    assert run.returncode == 0, run.stderr
    assert run.warnings == []
    contacts = held(sandbox)
    assert sorted(contacts) == ["74251", "74252", "74253", "74254", "74255", "74256"]

    alice = contacts["74251"]
    assert alice["email"] == "alice.johnson@example.com"
    assert (alice["first_name"], alice["last_name"]) == ("Alice", "Johnson")
    assert alice["date_created"] == "2024-02-14 16:05:12"
    assert alice["last_updated"] == "2024-03-01 09:12:44"
    assert alice["utm_source"] == "facebook"
    assert alice["utm_campaign"] == "spring_promo"
    assert alice["referring_url"] == "https://l.facebook.com/"
    assert alice["tags"] == ["Lead status: Connected", "Lifecycle: Customer", "Source: Paid Social"]
    assert alice["custom_fields"] == {"company": "Acme Corp", "job_title": "Head of Growth", "phone": "+1 512-555-0142"}

    zoe = contacts["74252"]
    assert (zoe["first_name"], zoe["last_name"]) == ("Zoë", "Müller")
    assert zoe["custom_fields"]["company"] == "Müller & Söhne GmbH"
    assert contacts["74253"]["first_name"] == "伟"
    assert contacts["74254"]["email"] is None  # no email in HubSpot: matched by contact_id alone
    assert "first_name" not in contacts["74255"]  # an empty firstname sends nothing
    assert contacts["74255"]["tags"] == ["Lifecycle: Subscriber", "Source: Email Marketing"]  # no lead status: no tag


def test_both_variants_give_segmetrics_the_same_data(sandbox, run_target):
    config = base_config(sandbox, mappings={"contacts": {"preset": "hubspot"}})
    results = {}
    for variant in VARIANTS:
        sandbox.reset()
        assert run_target(config, HUBSPOT / f"{variant}_contacts.singer").returncode == 0
        results[variant] = held(sandbox)
    assert results["meltanolabs"] == results["singerio"] == results["singerio_legacy"]


def test_hubspot_preset_with_flattening_and_overrides(sandbox, run_target):
    config = base_config(
        sandbox,
        flattening_enabled=True,
        flattening_max_depth=1,
        mappings={
            "contacts": {
                "preset": "hubspot",
                "tags": [{"path": "properties.interests", "split": ";", "format": "Interest: {}"}],
                "custom_fields": {"phone": None, "city": "properties.ip_city"},
            }
        },
    )
    run = run_target(config, HUBSPOT / "meltanolabs_contacts.singer")
    assert run.returncode == 0, run.stderr
    alice = held(sandbox)["74251"]
    assert alice["email"] == "alice.johnson@example.com"  # found as properties__email
    assert alice["tags"] == ["Interest: ebooks", "Interest: webinars"]
    assert alice["custom_fields"] == {"company": "Acme Corp", "job_title": "Head of Growth", "city": "Austin"}


def test_fixture_files_are_what_the_taps_emitted():
    # Guard against hand edits: every line is a Singer message, and the contacts stream is there.
    for variant in VARIANTS:
        lines = (HUBSPOT / f"{variant}_contacts.singer").read_text().splitlines()
        messages = [json.loads(line) for line in lines]
        assert {m["type"] for m in messages} >= {"SCHEMA", "RECORD", "STATE"}
        assert sum(m["type"] == "RECORD" and m["stream"] == "contacts" for m in messages) == 6
