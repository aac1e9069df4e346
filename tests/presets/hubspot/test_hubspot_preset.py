"""The `hubspot` preset as a marketer needs it (issue 14), over what the tap-hubspot variants really emit.

Every test runs the target over the recorded tap output in tests/fixtures/hubspot and looks at what
the sandbox (SegMetrics) ends up holding.
"""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES, base_config

HUBSPOT = FIXTURES / "hubspot"
VARIANTS = ["meltanolabs", "singerio", "singerio_legacy"]


def held(sandbox) -> dict[str, dict]:
    out = {}
    for held_contact in sandbox.contacts():
        contact = {**held_contact, "tags": sorted(tag["name"] for tag in held_contact["tags"])}
        out[str(contact["contact_id"])] = contact
    return out


def invoices(sandbox) -> list[tuple[str, str, int]]:
    return sorted((str(i["id"]), str(i["contact_id"]), i["amount"]) for i in sandbox.invoices())


def infos(run) -> list[str]:
    return [line for line in run.stderr.splitlines() if "| INFO" in line]


def joined(tmp_path, *names: str):
    path = tmp_path / "joined.singer"
    path.write_text("".join((HUBSPOT / name).read_text() for name in names))
    return path


# --- 1. every stream the tap emits can be listed with the preset ---------------------------------

EVERY_STREAM = {
    name: {"preset": "hubspot"}
    for name in (
        "contacts",
        "deals",
        "products",
        "list_memberships",
        "contact_lists",
        "deal_contact_associations",
        "owners",
        "companies",
        "deal_pipelines",
        "engagements",
        "email_events",
        "forms",
        "some_stream_hubspot_adds_next_year",
    )
}


def test_listing_every_stream_with_the_preset_runs_and_names_the_ignored_ones_once(sandbox, run_target, tmp_path):
    deals = {**EVERY_STREAM, "deals": {"preset": "hubspot", "currency": "USD"}}
    config = base_config(sandbox, mappings=deals)
    run = run_target(config, joined(tmp_path, "meltanolabs_contacts.singer", "meltanolabs_deals.singer"))
    assert run.returncode == 0, run.stderr
    assert run.errors == []
    warned = [line for line in run.warnings if "Run summary" not in line]
    assert len(warned) == 1 and "Rejected record of stream 'deals' (id=7002)" in warned[0]  # 499 GBP
    lines = [line for line in infos(run) if "Not sent to SegMetrics" in line]
    assert len(lines) == 1
    for stream in ("engagements", "email_events", "some_stream_hubspot_adds_next_year"):
        assert f"'{stream}' (" in lines[0]
    assert "no SegMetrics object" in lines[0] and "no mapping for a stream of this name" in lines[0]
    for looked_up in (
        "owners",
        "companies",
        "contact_lists",
        "deal_contact_associations",
        "forms",
        "contacts",
        "deals",
    ):
        assert f"'{looked_up}'" not in lines[0]
    assert len(held(sandbox)) == 6
    assert invoices(sandbox) == [("7001", "74251", 150000)]


def test_a_preset_lookup_or_ignored_stream_with_keys_of_its_own_is_one_clear_config_error(sandbox, run_target):
    mappings = {"owners": {"preset": "hubspot", "fields": {"email": "email"}}}
    run = run_target(base_config(sandbox, mappings=mappings), HUBSPOT / "meltanolabs_contacts.singer")
    assert run.returncode == 1
    assert any("mappings.owners: with preset 'hubspot' this stream is a lookup source" in line for line in run.errors)
    assert sandbox.request_count == 0


# --- 2. revenue ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_won_deals_are_revenue_of_their_contact_in_the_home_currency_only(sandbox, run_target, tmp_path, variant):
    rejects = tmp_path / "rejects.jsonl"
    mappings = {
        "contacts": {"preset": "hubspot"},
        "deal_contact_associations": {"preset": "hubspot"},
        "deals": {"preset": "hubspot", "currency": "usd"},
    }
    config = base_config(sandbox, mappings=mappings, rejects_path=str(rejects))
    run = run_target(config, joined(tmp_path, f"{variant}_contacts.singer", f"{variant}_deals.singer"))
    assert run.returncode == 0, run.stderr
    assert invoices(sandbox) == [("7001", "74251", 150000)]  # 7002 is 499 GBP: not sent as 499 USD
    kept = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [k["key"] for k in kept] == ["id=7002"] or [k["key"] for k in kept] == ["dealId=7002"]
    assert "the deal is in 'GBP', not in USD" in " ".join(kept[0]["reasons"])
    items = sandbox.invoices()[0]["items"]
    assert [item["product_id"] for item in items] == ["hubspot-pipeline-default"]  # not one product per deal


@pytest.mark.parametrize("variant", ["singerio", "singerio_legacy"])
def test_a_deal_without_line_items_is_an_item_named_after_its_pipeline_not_after_the_deal(
    sandbox, run_target, tmp_path, variant
):
    # The item's product is the pipeline's (one product for every such deal): SegMetrics creates an
    # unknown product with the first item's name, so that name is the pipeline's, never one deal's.
    mappings = {"contacts": {"preset": "hubspot"}, "deals": {"preset": "hubspot", "currency": "USD"}}
    run = run_target(
        base_config(sandbox, mappings=mappings),
        joined(tmp_path, f"{variant}_contacts.singer", f"{variant}_deals.singer"),
    )
    assert run.returncode == 0, run.stderr
    items = [item for invoice in sandbox.invoices() for item in invoice["items"]]
    assert [(item["name"], item["product_id"]) for item in items] == [
        ("HubSpot pipeline: default", "hubspot-pipeline-default")
    ]
    assert [(p["id"], p["name"]) for p in sandbox.products()] == [
        ("hubspot-pipeline-default", "HubSpot pipeline: default")
    ]


def test_without_a_currency_no_deal_is_sent_as_if_converted(sandbox, run_target, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    mappings = {"deal_contact_associations": {"preset": "hubspot"}, "deals": {"preset": "hubspot"}}
    config = base_config(sandbox, mappings=mappings, rejects_path=str(rejects))
    run = run_target(config, joined(tmp_path, "meltanolabs_contacts.singer", "meltanolabs_deals.singer"))
    assert run.returncode == 0, run.stderr
    assert invoices(sandbox) == []
    kept = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert sorted(k["key"] for k in kept) == ["id=7001", "id=7002"]
    assert all('set "currency" in the deals entry' in " ".join(k["reasons"]) for k in kept)


def test_the_home_currency_amount_is_used_where_the_tap_has_it(sandbox, run_target, tmp_path):
    lines = []
    for line in joined(tmp_path, "meltanolabs_contacts.singer", "meltanolabs_deals.singer").read_text().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD" and message["stream"] == "deals" and message["record"]["id"] == "7002":
            message["record"]["properties"]["amount_in_home_currency"] = "633.73"  # 499 GBP in USD
        if message["type"] == "SCHEMA" and message["stream"] == "deals":
            message["schema"]["properties"]["properties"]["properties"]["amount_in_home_currency"] = {
                "type": ["string", "null"]
            }
        lines.append(json.dumps(message))
    path = tmp_path / "home.singer"
    path.write_text("\n".join(lines) + "\n")
    mappings = {
        "contacts": {"preset": "hubspot"},
        "deal_contact_associations": {"preset": "hubspot"},
        "deals": {"preset": "hubspot", "currency": "USD"},
    }
    run = run_target(base_config(sandbox, mappings=mappings), path)
    assert run.returncode == 0, run.stderr
    assert invoices(sandbox) == [("7001", "74251", 150000), ("7002", "74256", 63373)]


# --- 3.-5. attribution, opt-in, readable tags ------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_contacts_carry_real_utm_data_opt_in_status_and_readable_tags(sandbox, run_target, variant):
    run = run_target(
        base_config(sandbox, mappings={"contacts": {"preset": "hubspot"}}), HUBSPOT / f"{variant}_contacts.singer"
    )
    assert run.returncode == 0, run.stderr
    contacts = held(sandbox)
    alice, zoe, marcus, jdoe = contacts["74251"], contacts["74252"], contacts["74254"], contacts["74255"]
    for contact in contacts.values():  # singer-io 2.x/3.x carry the lists inline (covered below)
        contact["tags"] = [tag for tag in contact["tags"] if not tag.startswith("HubSpot list: ")]
    # The first page URL's query: ?utm_source=facebook&utm_medium=paid_social&utm_campaign=spring_promo
    assert (alice["utm_source"], alice["utm_medium"], alice["utm_campaign"]) == (
        "facebook",
        "paid_social",
        "spring_promo",
    )
    assert alice.get("utm_content") is None and alice.get("utm_term") is None
    assert (jdoe["utm_source"], jdoe["utm_medium"]) == ("hs_email", "email")
    for contact in (zoe, marcus):  # no UTM parameters: no UTM data (not HubSpot's channel, not its drill-down)
        assert all(contact.get(f"utm_{name}") is None for name in ("source", "medium", "campaign", "content", "term"))
    assert alice["tags"] == ["Lead status: Connected", "Lifecycle: Customer", "Source: Paid Social"]
    assert zoe["tags"] == ["Lead status: In Progress", "Lifecycle: Marketing Qualified Lead", "Source: Organic Search"]
    assert marcus["tags"] == ["Lead status: Attempted to Contact", "Lifecycle: Opportunity", "Source: Offline Sources"]
    assert jdoe["status"] == "inactive" and alice["status"] == "active"  # hs_email_optout true / false
    no_channel = {"PAID_SOCIAL", "ORGANIC_SEARCH", "OFFLINE", "IMPORT", "trade-show-leads-2024.csv"}
    for contact in contacts.values():
        assert not no_channel & {str(value) for value in contact.values()}


def test_the_contacts_own_utm_properties_win_over_the_url(sandbox, run_target, tmp_path):
    lines = []
    for line in (HUBSPOT / "meltanolabs_contacts.singer").read_text().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD" and message["record"]["id"] == "74251":
            message["record"]["properties"].update(utm_source="fb-ads", utm_term="crm software")
        if message["type"] == "SCHEMA":
            for name in ("utm_source", "utm_term"):
                message["schema"]["properties"]["properties"]["properties"][name] = {"type": ["string", "null"]}
        lines.append(json.dumps(message))
    path = tmp_path / "utm.singer"
    path.write_text("\n".join(lines) + "\n")
    run = run_target(base_config(sandbox, mappings={"contacts": {"preset": "hubspot"}}), path)
    assert run.returncode == 0, run.stderr
    alice = held(sandbox)["74251"]
    assert (alice["utm_source"], alice["utm_medium"], alice["utm_term"]) == ("fb-ads", "paid_social", "crm software")


@pytest.mark.parametrize("with_lists", [True, False])
def test_list_tags_by_name_through_contact_lists_else_by_id(sandbox, run_target, tmp_path, with_lists):
    mappings = {"contacts": {"preset": "hubspot"}, "list_memberships": {"preset": "hubspot"}}
    if with_lists:
        mappings["contact_lists"] = {"preset": "hubspot"}
    config = base_config(sandbox, mappings=mappings)
    run = run_target(config, joined(tmp_path, "singerio_contacts.singer", "singerio_contact_lists.singer"))
    assert run.returncode == 0, run.stderr
    lists = {cid: [tag for tag in c["tags"] if tag.startswith("HubSpot list")] for cid, c in held(sandbox).items()}
    if with_lists:
        assert lists["74252"] == [
            "HubSpot list: Newsletter subscribers (active)",
            "HubSpot list: Webinar attendees – Feb 2024",
        ]
    else:
        assert lists["74252"] == ["HubSpot list: 12", "HubSpot list: 14"]


# --- 6. tags that survive incremental runs ---------------------------------------------------------


def edited(tmp_path, variant: str, contact_id: str, **properties: str):
    """The variant's contacts output with one contact edited in HubSpot (an incremental run's record)."""
    lines = []
    for line in (HUBSPOT / f"{variant}_contacts.singer").read_text().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            record = message["record"]
            if str(record.get("id", record.get("vid"))) != contact_id:
                continue
            for name, value in properties.items():
                wrapped = isinstance(record["properties"].get(name), dict)
                record["properties"][name] = {"value": value} if wrapped else value
                if f"property_{name}" in record:
                    record[f"property_{name}"] = record["properties"][name]
        lines.append(json.dumps(message))
    path = tmp_path / f"{variant}-edited.singer"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("variant", ["singerio", "singerio_legacy"])
def test_an_incremental_contacts_run_keeps_list_tags_and_replaces_the_lifecycle_tag(
    sandbox, run_target, tmp_path, variant
):
    mappings = {name: {"preset": "hubspot"} for name in ("contacts", "list_memberships", "contact_lists")}
    config = base_config(sandbox, mappings=mappings, state_db_path=str(tmp_path / "store.sqlite3"))
    first = run_target(config, joined(tmp_path, f"{variant}_contacts.singer", "singerio_contact_lists.singer"))
    assert first.returncode == 0, first.stderr
    before = held(sandbox)["74252"]["tags"]
    assert "Lifecycle: Marketing Qualified Lead" in before and "HubSpot list: Newsletter subscribers (active)" in before

    # Zoë becomes a customer in HubSpot; the next run's contacts stream re-sends her, the lists do not.
    second = run_target(
        config, edited(tmp_path, variant, "74252", lifecyclestage="customer", hs_lead_status="OPEN_DEAL")
    )
    assert second.returncode == 0, second.stderr
    after = held(sandbox)["74252"]["tags"]
    assert after == sorted(
        [
            "HubSpot list: Newsletter subscribers (active)",
            "HubSpot list: Webinar attendees – Feb 2024",
            "Lead status: Open Deal",
            "Lifecycle: Customer",
            "Source: Organic Search",
        ]
    )
    others = {cid: c["tags"] for cid, c in held(sandbox).items() if cid != "74252"}
    assert all(len([t for t in tags if t.startswith("Lifecycle: ")]) == 1 for tags in others.values())


# --- 7. flattening on gives the same data ----------------------------------------------------------


def everything_held(sandbox) -> tuple[dict, list]:
    contacts = {cid: {k: v for k, v in c.items() if k != "seq"} for cid, c in held(sandbox).items()}
    deals = sorted(json.dumps({k: v for k, v in i.items() if k != "seq"}, sort_keys=True) for i in sandbox.invoices())
    return contacts, deals


@pytest.mark.parametrize("variant", VARIANTS)
def test_flattening_on_gives_the_same_segmetrics_data(sandbox, run_target, tmp_path, variant):
    mappings = {
        "contacts": {"preset": "hubspot"},
        "deal_contact_associations": {"preset": "hubspot"},
        "deals": {"preset": "hubspot", "currency": "USD"},
    }
    data = joined(tmp_path, f"{variant}_contacts.singer", f"{variant}_deals.singer")
    assert run_target(base_config(sandbox, mappings=mappings), data).returncode == 0
    plain = everything_held(sandbox)
    assert len(plain[0]) == 6 and len(plain[1]) == 1
    for depth in (1, 3, 10):
        sandbox.reset()
        config = base_config(sandbox, mappings=mappings, flattening_enabled=True, flattening_max_depth=depth)
        run = run_target(config, data)
        assert run.returncode == 0, run.stderr
        assert everything_held(sandbox) == plain, f"flattening_max_depth {depth}"


def test_a_stream_can_be_ignored_on_purpose_and_is_named_in_the_same_line(sandbox, run_target, tmp_path):
    mappings = {"contacts": {"ignore": "loaded by another integration"}, "deals": {"preset": "hubspot"}}
    run = run_target(base_config(sandbox, mappings=mappings), HUBSPOT / "meltanolabs_contacts.singer")
    assert run.returncode == 0, run.stderr
    assert run.warnings == [line for line in run.warnings if "Run summary" in line]  # no "not listed" warning
    assert [line for line in infos(run) if "'contacts' (loaded by another integration)" in line]
    assert sandbox.contacts() == []
    bad = run_target(
        base_config(sandbox, mappings={"contacts": {"ignore": ""}}), HUBSPOT / "meltanolabs_contacts.singer"
    )
    assert bad.returncode == 1 and any('is {"ignore": "<why' in line for line in bad.errors)


def test_a_misspelt_stream_with_the_preset_is_named_with_what_was_meant(sandbox, run_target):
    mappings = {"contacts": {"preset": "hubspot"}, "contact": {"preset": "hubspot"}}
    run = run_target(base_config(sandbox, mappings=mappings), HUBSPOT / "meltanolabs_contacts.singer")
    assert run.returncode == 0, run.stderr
    assert [line for line in infos(run) if "'contact' (" in line and "did you mean 'contacts'?" in line]


# --- 8. singer-io 2.x/3.x: list memberships inline in the contact ------------------------------------


def streams_of(tmp_path, name: str, *streams: str):
    """The SCHEMA and RECORD messages of some streams of one fixture file."""
    path = tmp_path / f"{'-'.join(streams)}-of-{name}"
    lines = [
        line
        for line in (HUBSPOT / name).read_text().splitlines()
        if json.loads(line).get("stream") in streams and json.loads(line)["type"] in ("SCHEMA", "RECORD")
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("with_lists", [True, False])
def test_legacy_contacts_inline_list_memberships_are_list_tags(sandbox, run_target, tmp_path, with_lists):
    # singer-io 2.x/3.x emit no list_memberships stream: a contact's lists come in its own
    # "list-memberships", and the tap syncs contact_lists (the names) AFTER contacts.
    mappings = {"contacts": {"preset": "hubspot"}}
    if with_lists:
        mappings["contact_lists"] = {"preset": "hubspot"}
    lists = streams_of(tmp_path, "singerio_contact_lists.singer", "contact_lists")
    path = tmp_path / "legacy.singer"
    path.write_text((HUBSPOT / "singerio_legacy_contacts.singer").read_text() + lists.read_text())
    run = run_target(base_config(sandbox, mappings=mappings), path)
    assert run.returncode == 0, run.stderr
    tags = {cid: [tag for tag in c["tags"] if tag.startswith("HubSpot list")] for cid, c in held(sandbox).items()}
    names = {"12": "Webinar attendees – Feb 2024", "14": "Newsletter subscribers (active)"}
    expected = {
        "74251": ["12"],
        "74252": ["12", "14"],
        "74253": ["12", "14"],
        "74254": [],
        "74255": ["14"],
        "74256": [],
    }
    for cid, ids in expected.items():
        assert tags[cid] == sorted(f"HubSpot list: {names[i] if with_lists else i}" for i in ids), cid
    # Waiting for the names is for the rest of the run only: nothing stays parked for the next one.
    assert not any("parked, waiting" in line for line in run.stderr.splitlines())
