"""Review of the hubspot preset's extensions (list/form tags, opt-in status, labels, line items):
what a user would see go wrong in SegMetrics, each over a small input in the shape the taps emit."""

from __future__ import annotations

from helpers import SUBSCRIPTION_CHANGES, base_config, record, schema

from target_segmetrics.mapping.compiler import compile_entry
from target_segmetrics.mapping.presets import PRESETS
from target_segmetrics.mapping.sources import MappingConfigError

# --- singer-io subscription_changes ---------------------------------------------------------------


def change(change_type: str, value: str, at: str) -> dict:
    return {"changeType": change_type, "change": value, "timestamp": at, "portalId": 1, "source": "SOURCE_RECIPIENT"}


def changes_of(recipient: str, *changes: dict) -> dict:
    """One subscription_changes record: the recipient's changes, timed as the last of them."""
    at = max(c["timestamp"] for c in changes)
    return record(
        "subscription_changes", {"timestamp": at, "portalId": 1, "recipient": recipient, "changes": list(changes)}
    )


def test_a_subscription_change_with_several_portal_wide_changes_sets_the_opt_in_status(sandbox, run_target):
    # One timeline record can carry several changes: a spam report comes with the portal-wide
    # unsubscribe it causes; a re-subscribe after an unsubscribe can come in the same record.
    messages = [
        SUBSCRIPTION_CHANGES,
        changes_of(
            "spam@example.com",
            change("PORTAL_STATUS", "UNSUBSCRIBED", "2024-03-01T10:00:00Z"),
            change("PORTAL_SPAM", "REPORTED_SPAM", "2024-03-01T10:00:00Z"),
        ),
        changes_of(
            "back@example.com",
            change("PORTAL_STATUS", "UNSUBSCRIBED", "2024-03-01T09:00:00Z"),
            change("PORTAL_STATUS", "SUBSCRIBED", "2024-03-02T10:00:00Z"),
        ),
    ]
    config = base_config(sandbox, mappings={"subscription_changes": {"preset": "hubspot"}})
    run = run_target(config, messages)
    assert run.returncode == 0, run.stderr
    status = {c["email"]: c["status"] for c in sandbox.contacts()}
    assert status == {"spam@example.com": "inactive", "back@example.com": "active"}, run.stderr


# --- MeltanoLabs deals with line items -------------------------------------------------------------

TEXT = {"type": ["string", "null"]}
ASSOCIATION = {"from_id": TEXT, "to_id": TEXT, "association_type_id": {"type": ["integer", "null"]}}
OBJECT = {"id": TEXT, "properties": {"type": ["object", "null"], "additionalProperties": True}}


def contact_messages() -> list[dict]:
    return [
        schema("contacts", OBJECT),
        record("contacts", {"id": "74251", "properties": {"email": "alice@example.com", "firstname": "Alice"}}),
    ]


def deal(deal_id: str, **properties) -> dict:
    return record(
        "deals",
        {
            "id": deal_id,
            "properties": {
                "dealname": f"Deal {deal_id}",
                "hs_is_closed_won": "true",
                "dealstage": "closedwon",
                "closedate": "2024-03-01T12:00:00Z",
                "pipeline": "default",
                **properties,
            },
        },
    )


def line_item(item_id: str, name: str, amount: str, currency: str, product: str) -> dict:
    properties = {"name": name, "amount": amount, "hs_line_item_currency_code": currency, "hs_product_id": product}
    return record("line_items", {"id": item_id, "properties": properties})


def deal_run(deal_record: dict, links: list[tuple[str, str, int]], items: list[dict]) -> list[dict]:
    """The MeltanoLabs tap's streams for one deal: its contact, its associations, the deal, its line items."""
    return [
        *contact_messages(),
        schema("deal_contact_associations", ASSOCIATION, key_properties=("from_id", "to_id", "association_type_id")),
        record(
            "deal_contact_associations",
            {"from_id": deal_record["record"]["id"], "to_id": "74251", "association_type_id": 3},
        ),
        schema("deal_line_item_associations", ASSOCIATION, key_properties=("from_id", "to_id", "association_type_id")),
        *[
            record("deal_line_item_associations", {"from_id": f, "to_id": to, "association_type_id": kind})
            for f, to, kind in links
        ],
        schema("deals", OBJECT),
        deal_record,
        schema("line_items", OBJECT),
        *items,
    ]


DEAL_STREAMS = {
    "contacts": {"preset": "hubspot"},
    "deals": {"preset": "hubspot", "currency": "USD"},
    "deal_contact_associations": {"preset": "hubspot"},
    "deal_line_item_associations": {"preset": "hubspot"},
    "line_items": {"preset": "hubspot"},
}


def held_invoices(sandbox) -> dict[str, dict]:
    return {
        str(i["id"]): {
            "amount": i["amount"],
            "items": sorted((item["name"], str(item["product_id"]), item["amount"]) for item in i["items"]),
        }
        for i in sandbox.invoices()
    }


def test_a_deal_in_another_currency_with_its_home_amount_still_loads_when_it_has_line_items(
    sandbox, run_target, tmp_path
):
    # A EUR deal for which HubSpot gives the home-currency (USD) amount loaded before line items were
    # joined (one item, the home amount). Its EUR line items must not make SegMetrics lose the deal.
    won = deal("7003", amount="2500", deal_currency_code="EUR", amount_in_home_currency="2700")
    messages = deal_run(won, [("7003", "8003", 19)], [line_item("8003", "Annual plan", "2500", "EUR", "3101")])
    config = base_config(sandbox, mappings=DEAL_STREAMS, rejects_path=str(tmp_path / "rejects.jsonl"))
    run = run_target(config, messages)
    assert run.returncode == 0, run.stderr
    found = held_invoices(sandbox)
    assert "7003" in found, (tmp_path / "rejects.jsonl").read_text() if (tmp_path / "rejects.jsonl").exists() else ""
    assert found["7003"]["amount"] == 270000


def test_without_a_currency_option_a_deal_with_its_home_amount_is_one_item_in_that_amount(sandbox, run_target):
    # No "currency" in the deals entry: the line items' currency cannot be known to be the home one,
    # so the deal (in its home amount, which HubSpot computed) is the one item; nothing is refused.
    won = deal("7005", amount="900", deal_currency_code="USD", amount_in_home_currency="900")
    messages = deal_run(won, [("7005", "8005", 19)], [line_item("8005", "Seats", "900", "USD", "3102")])
    mappings = {**DEAL_STREAMS, "deals": {"preset": "hubspot"}}
    run = run_target(base_config(sandbox, mappings=mappings), messages)
    assert run.returncode == 0, run.stderr
    assert held_invoices(sandbox)["7005"] == {
        "amount": 90000,
        "items": [("HubSpot pipeline: default", "hubspot-pipeline-default", 90000)],
    }


def test_a_line_item_linked_by_two_association_types_is_one_item(sandbox, run_target):
    # The tap emits one association row per association type (deal_contact_associations in the
    # fixtures has 7001 -> 74251 twice: type 3 and the user-defined "Decision maker"); a deal and a
    # line item linked by a default and a labelled type are still one line item on the invoice.
    won = deal("7001", amount="1500", deal_currency_code="USD")
    links = [("7001", "8001", 19), ("7001", "8001", 301)]
    messages = deal_run(won, links, [line_item("8001", "Annual plan", "1500", "USD", "3101")])
    run = run_target(base_config(sandbox, mappings=DEAL_STREAMS), messages)
    assert run.returncode == 0, run.stderr
    assert held_invoices(sandbox)["7001"]["items"] == [("Annual plan", "3101", 150000)]


def test_a_line_item_removed_from_a_deal_in_hubspot_leaves_the_invoice(sandbox, run_target, tmp_path):
    # Run 1: deal 7001 has two line items. Then in HubSpot the onboarding item is removed and the deal
    # edited: the next run emits the deal and its one remaining association.
    config = base_config(sandbox, mappings=DEAL_STREAMS, state_db_path=str(tmp_path / "store.sqlite3"))
    items = [
        line_item("8001", "Annual plan", "1500", "USD", "3101"),
        line_item("8004", "Onboarding", "250", "USD", "3103"),
    ]
    first = deal_run(
        deal("7001", amount="1750", deal_currency_code="USD"), [("7001", "8001", 19), ("7001", "8004", 19)], items
    )
    assert run_target(config, first).returncode == 0
    assert len(held_invoices(sandbox)["7001"]["items"]) == 2
    edited = deal("7001", amount="1500", deal_currency_code="USD", hs_lastmodifieddate="2024-03-05T00:00:00Z")
    second = deal_run(edited, [("7001", "8001", 19)], [])
    run = run_target(config, second)
    assert run.returncode == 0, run.stderr
    assert held_invoices(sandbox)["7001"] == {"amount": 150000, "items": [("Annual plan", "3101", 150000)]}


# --- config errors ----------------------------------------------------------------------------------


def test_a_tag_object_with_each_and_an_unknown_key_names_only_the_unknown_key():
    mapping = {"fields": {"contact_id": "id"}, "tags": [{"each": "lists", "tag": {"name": "id"}, "colour": "red"}]}
    try:
        compile_entry("users", mapping, PRESETS)
    except MappingConfigError as error:
        message = str(error)
    else:
        raise AssertionError("a tag object with an unknown key compiled")
    assert "colour" in message
    named = message.rsplit("unknown key(s) ", maxsplit=1)[-1].split(" (", maxsplit=1)[0]
    assert named == "colour", message  # each and tag are what a tag object has
    # each without its tag: the message says what each goes with
    try:
        compile_entry("users", {"fields": {"contact_id": "id"}, "tags": [{"each": "lists"}]}, PRESETS)
    except MappingConfigError as error:
        message = str(error)
    assert "'tag'" in message or "tag object" in message, message


# --- singer-io 2.x/3.x inline list memberships ------------------------------------------------------


def test_a_legacy_inline_list_membership_that_is_not_a_membership_gives_no_list_tag(sandbox, run_target):
    # The v1 contact's list-memberships carry "is-member" (the tap's schema has it): an entry with
    # is-member false says the contact is NOT in that list.
    legacy = schema(
        "contacts",
        {"vid": {"type": ["null", "integer"]}, "properties": {"type": ["null", "object"]}, "list-memberships": {}},
        key_properties=("vid",),
    )
    contact = {
        "vid": 74251,
        "properties": {"email": {"value": "alice@example.com"}},
        "list-memberships": [
            {"static-list-id": 12, "internal-list-id": 12, "timestamp": 1707926772000, "vid": 74251, "is-member": True},
            {
                "static-list-id": 14,
                "internal-list-id": 14,
                "timestamp": 1707926772000,
                "vid": 74251,
                "is-member": False,
            },
            None,  # a null element in the list: no tag from it, the rest still counts
            {"static-list-id": 16, "internal-list-id": 16, "timestamp": 1707926772000, "vid": 74251},
        ],
    }
    run = run_target(
        base_config(sandbox, mappings={"contacts": {"preset": "hubspot"}}), [legacy, record("contacts", contact)]
    )
    assert run.returncode == 0, run.stderr
    tags = sorted(tag["name"] for c in sandbox.contacts() for tag in c["tags"])
    assert tags == ["HubSpot list: 12", "HubSpot list: 16"], run.stderr  # no is-member: a membership


# --- deals whose currency the tap does not send ----------------------------------------------------


def test_deals_without_any_currency_property_in_the_schema_stop_the_run_naming_it(sandbox, run_target):
    # singer-io taps let a user select a deal's properties one by one: with deal_currency_code (and
    # every home-currency amount) left out, each deal read as "no currency" and its amount went out
    # as if in the portal's currency: a EUR 1,000 deal became USD 1,000 of revenue.
    value = {"type": ["null", "object"], "properties": {"value": {"type": ["null", "string"]}}}
    deals = schema(
        "deals",
        {
            "dealId": {"type": "integer"},
            "properties": {
                "type": "object",
                "properties": dict.fromkeys(("amount", "dealstage", "closedate", "pipeline"), value),
            },
            "associations": {"type": ["null", "object"], "additionalProperties": True},
        },
        key_properties=("dealId",),
    )
    deal = {
        "dealId": 7,
        "properties": {
            "amount": {"value": "1000"},
            "dealstage": {"value": "closedwon"},
            "closedate": {"value": "2024-03-01T10:00:00Z"},
        },
        "associations": {"associatedVids": [74251]},
    }
    config = base_config(sandbox, mappings={"deals": {"preset": "hubspot", "currency": "USD"}})
    run = run_target(config, [deals, record("deals", deal)])
    assert run.returncode == 1, sandbox.invoices()
    assert [line for line in run.errors if "mappings.deals" in line and "deal_currency_code" in line], run.errors
    assert sandbox.request_count == 0
