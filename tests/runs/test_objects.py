"""Beyond contacts: invoices, subscriptions, products, ad performance, tag events, deletes."""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES, RandomDelay, base_config, record, schema, state

from target_segmetrics.mapping.compiler import compile_entry
from target_segmetrics.mapping.presets import PRESETS
from target_segmetrics.mapping.sources import MappingConfigError

PEOPLE = schema("people", {"id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"}})
ORDERS = schema(
    "orders",
    {
        "order_id": {"type": "string"},
        "customer_id": {"type": "integer"},
        "total": {"type": "string"},
        "paid": {"type": "string"},
        "created": {"type": "string"},
        "refunded": {"type": "boolean"},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "title": {"type": "string"}, "price": {"type": "string"}},
            },
        },
    },
    key_properties=("order_id",),
)
CONTACTS_MAPPING = {
    "fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email", "first_name": "name"}
}
ORDERS_MAPPING = {
    "object": "invoice",
    "fields": {
        "id": "order_id",
        "contact_id": {"path": "customer_id", "transform": "string"},
        "amount": {"path": "total", "transform": "cents"},
        "paid": {"path": "paid", "transform": "cents"},
        "date_created": "created",
        "is_refunded": "refunded",
    },
    "items": {
        "path": "lines",
        "fields": {"product_id": "sku", "name": "title", "amount": {"path": "price", "transform": "cents"}},
    },
}


def order(order_id, customer, total, lines, paid=None, refunded=False):
    return record(
        "orders",
        {
            "order_id": order_id,
            "customer_id": customer,
            "total": total,
            "paid": paid or total,
            "created": "2024-03-01T10:15:00+01:00",
            "refunded": refunded,
            "lines": [{"sku": s, "title": t, "price": p} for s, t, p in lines],
        },
    )


def test_invoices_with_items_in_cents_after_their_contacts(sandbox, run_target):
    sandbox.faults = RandomDelay(
        25, seed=5
    )  # answers in shuffled order: without the contact-first rule invoices would fail
    messages = [PEOPLE, ORDERS]
    for i in range(30):
        messages.append(record("people", {"id": i, "email": f"p{i}@example.com", "name": f"P{i}"}))
        messages.append(order(f"o{i}", i, "19.99", [("sku-1", "Widget", "19.99")]))
    messages.append(
        order(
            "big", 3, "1,250.5", [("sku-1", "Widget", "19.99"), ("sku-2", "Gadget", "1230.51")], paid="0", refunded=True
        )
    )
    messages.append(state({"orders": "big"}))
    config = base_config(sandbox, max_concurrency=16, mappings={"people": CONTACTS_MAPPING, "orders": ORDERS_MAPPING})
    run = run_target(config, messages)
    assert run.returncode == 0, run.stderr
    assert run.warnings == []
    assert len(sandbox.invoices()) == 31
    big = sandbox.invoice("big")
    assert big == {
        "id": "big",
        "contact_id": "3",
        "amount": 125050,
        "paid": 0,
        "date_created": "2024-03-01 09:15:00",
        "is_refunded": True,
        "items": [
            {"product_id": "sku-1", "name": "Widget", "amount": 1999, "id": "big-1"},
            {"product_id": "sku-2", "name": "Gadget", "amount": 123051, "id": "big-2"},
        ],
    }
    assert sandbox.invoice("o7")["amount"] == 1999  # 19.99 -> 1999 exactly, no float drift
    assert sorted(p["id"] for p in sandbox.products()) == ["sku-1", "sku-2"]
    assert run.states == [{"orders": "big"}]


def test_money_that_is_not_a_number_is_rejected_clearly(sandbox, run_target):
    config = base_config(sandbox, mappings={"people": CONTACTS_MAPPING, "orders": ORDERS_MAPPING})
    uncents = {**ORDERS_MAPPING, "fields": {**ORDERS_MAPPING["fields"], "amount": "total"}}
    messages = [
        PEOPLE,
        ORDERS,
        record("people", {"id": 1, "email": "a@example.com", "name": "A"}),
        order("bad", 1, "n/a", [("s", "S", "1.00")]),
    ]
    run = run_target(config, messages)
    assert "(order_id=bad) locally: amount, paid: 'n/a' is not an amount" in "\n".join(run.warnings)
    run = run_target(
        base_config(sandbox, mappings={"orders": uncents}), [ORDERS, order("o", 1, "19.99", [("s", "S", "1.00")])]
    )
    assert (
        'amount: 19.99 is not a whole number of cents (an amount in currency units needs "transform": "cents")'
        in run.stderr
    )
    assert sandbox.invoices() == []


SUBS = schema(
    "subs",
    {
        "id": {"type": "string"},
        "email": {"type": "string"},
        "price": {"type": "number"},
        "plan": {"type": "string"},
        "interval": {"type": "string"},
        "count": {"type": "integer"},
        "started": {"type": "string"},
        "billed": {"type": "string"},
        "canceled": {"type": ["string", "null"]},
    },
    key_properties=("id",),
)
SUBS_MAPPING = {
    "object": "subscription",
    "fields": {
        "id": "id",
        "email": "email",
        "amount": {"path": "price", "transform": "cents"},
        "product_id": "plan",
        "name": {"path": "plan", "transform": "title"},
        "billing_cycle": "interval",
        "frequency": "count",
        "start_date": "started",
        "last_bill_date": "billed",
        "canceled_date": "canceled",
    },
}


def test_subscriptions_products_and_ad_performance(sandbox, run_target):
    products = schema("catalog", {"sku": {"type": "string"}, "title": {"type": "string"}}, key_properties=("sku",))
    ads = schema(
        "ad_stats",
        {
            "ad_id": {"type": "string"},
            "ad_name": {"type": "string"},
            "campaign": {"type": "string"},
            "campaign_name": {"type": "string"},
            "day": {"type": "string"},
            "cost": {"type": "string"},
            "clicks": {"type": "integer"},
            "views": {"type": "integer"},
        },
        key_properties=("ad_id", "day"),
    )
    mappings = {
        "subs": SUBS_MAPPING,
        "catalog": {"object": "product", "fields": {"id": "sku", "name": "title"}},
        "ad_stats": {
            "object": "ad_performance",
            "fields": {
                "ad": "ad_id",
                "ad_name": "ad_name",
                "adcampaign": "campaign",
                "adcampaign_name": "campaign_name",
                "date": "day",
                "spend": {"path": "cost", "transform": "cents"},
                "clicks": "clicks",
                "impressions": "views",
            },
        },
    }
    messages = [
        SUBS,
        products,
        ads,
        record(
            "subs",
            {
                "id": "s1",
                "email": "sub@example.com",
                "price": 29.5,
                "plan": "pro",
                "interval": "monthly",
                "count": 1,
                "started": "2024-01-01T00:00:00Z",
                "billed": "2024-03-01T00:00:00Z",
                "canceled": None,
            },
        ),
        record("catalog", {"sku": "pro", "title": "Pro plan"}),
        record(
            "ad_stats",
            {
                "ad_id": "ad-9",
                "ad_name": "Spring video",
                "campaign": "c-1",
                "campaign_name": "Spring",
                "day": "2024-03-01T23:30:00Z",
                "cost": "12.34",
                "clicks": 17,
                "views": 2300,
            },
        ),
    ]
    run = run_target(base_config(sandbox, mappings=mappings), messages)
    assert run.returncode == 0, run.stderr
    assert sandbox.subscription("s1") == {
        "id": "s1",
        "email": "sub@example.com",
        "amount": 2950,
        "product_id": "pro",
        "name": "Pro",
        "quantity": 1,
        "billing_cycle": "month",
        "frequency": 1,
        "start_date": "2024-01-01 00:00:00",
        "last_bill_date": "2024-03-01 00:00:00",
    }
    assert sandbox.product("pro")["name"] == "Pro plan"
    assert sandbox.ad_performance() == [
        {"ad": "ad-9", "date": "2024-03-01", "spend": 1234, "clicks": 17, "impressions": 2300, "adcampaign": "c-1"}
    ]


def test_tag_events_add_and_remove(sandbox, run_target):
    events = schema(
        "list_events",
        {"contact": {"type": "string"}, "list": {"type": "string"}, "at": {"type": "string"}},
        key_properties=(),
    )
    contacts = [PEOPLE, record("people", {"id": 1, "email": "a@example.com", "name": "A"})]
    tag = [{"tag": {"name": {"path": "list", "format": "List: {}"}, "date": "at"}}]
    run_target(base_config(sandbox, mappings={"people": CONTACTS_MAPPING}), contacts)
    add = {"list_events": {"object": "tags", "action": "add", "fields": {"contact_id": "contact"}, "tags": tag}}
    run = run_target(
        base_config(sandbox, mappings=add),
        [
            events,
            *[
                record("list_events", {"contact": "1", "list": name, "at": "2024-02-01T10:00:00Z"})
                for name in ("VIP", "Beta")
            ],
        ],
    )
    assert run.returncode == 0, run.stderr
    assert [(t["name"], t["date"]) for t in sandbox.contact("1")["tags"]] == [
        ("List: VIP", "2024-02-01 10:00:00"),
        ("List: Beta", "2024-02-01 10:00:00"),
    ]
    remove = {"list_events": {**add["list_events"], "action": "remove"}}
    run = run_target(
        base_config(sandbox, mappings=remove),
        [events, record("list_events", {"contact": "1", "list": "VIP", "at": "2024-03-01T00:00:00Z"})],
    )
    assert run.returncode == 0, run.stderr
    assert [t["name"] for t in sandbox.contact("1")["tags"]] == ["List: Beta"]
    assert [e["path"] for e in sandbox.requests_log()][-1] == "tags/remove"


# --- deletes ----------------------------------------------------------------------------------------------


def deleted(stream, data):
    return record(stream, {**data, "_sdc_deleted_at": "2024-03-02T00:00:00Z"})


YEARLY_SUB = {
    "id": "s1",
    "email": "a@example.com",
    "price": 5,
    "plan": "p",
    "interval": "year",
    "count": 1,
    "started": "2024-01-01",
    "billed": "2024-01-01",
    "canceled": None,
}


def test_hard_delete_removes_contacts_invoices_and_subscriptions(sandbox, run_target, tmp_path):
    mappings = {"people": CONTACTS_MAPPING, "orders": ORDERS_MAPPING, "subs": SUBS_MAPPING}
    setup = [
        PEOPLE,
        ORDERS,
        SUBS,
        record("people", {"id": 1, "email": "a@example.com", "name": "A"}),
        record("people", {"id": 2, "email": "b@example.com", "name": "B"}),
        order("o1", 1, "10.00", [("s", "S", "10.00")]),
        record("subs", YEARLY_SUB),
    ]
    assert run_target(base_config(sandbox, mappings=mappings), setup).returncode == 0
    deletes = [
        PEOPLE,
        ORDERS,
        SUBS,
        deleted("people", {"id": 1, "email": "a@example.com", "name": "A"}),
        deleted(
            "orders",
            {
                "order_id": "o1",
                "customer_id": 1,
                "total": "10.00",
                "paid": "10.00",
                "created": "2024-03-01",
                "refunded": False,
                "lines": [],
            },
        ),
        deleted("subs", YEARLY_SUB),
        deleted("people", {"id": 77, "email": "gone@example.com", "name": "Already gone"}),
        state({"deleted": True}),
    ]
    summary = tmp_path / "summary.json"
    run = run_target(base_config(sandbox, mappings=mappings, hard_delete=True, summary_path=str(summary)), deletes)
    assert run.returncode == 0, run.stderr
    assert [c["email"] for c in sandbox.contacts()] == ["b@example.com"]
    assert sandbox.invoices() == [] and sandbox.subscriptions() == []
    streams = json.loads(summary.read_text())["streams"]
    assert {name: (row["object"], row["deleted"], row["upserted"]) for name, row in streams.items()} == {
        "people": ("contact", 2, 0),
        "orders": ("invoice", 1, 0),
        "subs": ("subscription", 1, 0),
    }
    assert run.states == [{"deleted": True}]
    methods = [(e["method"], e["path"]) for e in sandbox.requests_log()[-4:]]
    assert ("DELETE", "contact/1") in methods and ("DELETE", "invoice/o1") in methods


def test_without_hard_delete_a_deleted_record_is_upserted_without_sdc_fields(sandbox, run_target):
    run = run_target(
        base_config(sandbox, mappings={"people": CONTACTS_MAPPING}),
        [PEOPLE, deleted("people", {"id": 5, "email": "e@example.com", "name": "E"})],
    )
    assert run.returncode == 0, run.stderr
    assert sandbox.contact("5")["first_name"] == "E"
    sent = sandbox.requests_log()
    assert len(sent) == 1 and "_sdc" not in json.dumps(sent[0]["body"])


def test_delete_circuit_breaker_stops_the_run(sandbox, run_target):
    messages = [PEOPLE] + [record("people", {"id": i, "email": f"p{i}@example.com", "name": "P"}) for i in range(5)]
    run_target(base_config(sandbox, mappings={"people": CONTACTS_MAPPING}), messages)
    deletes = [PEOPLE] + [deleted("people", {"id": i, "email": f"p{i}@example.com", "name": "P"}) for i in range(5)]
    run = run_target(
        base_config(sandbox, mappings={"people": CONTACTS_MAPPING}, hard_delete=True, max_deletes_per_run=2),
        [*deletes, state({"x": 1})],
    )
    assert run.returncode == 1
    assert "would delete more than max_deletes_per_run (2)" in run.errors[0]
    assert len(sandbox.contacts()) >= 3  # at most two deletes went out
    assert run.states == []


# --- the hubspot preset beyond contacts ---------------------------------------------------------------------

HUBSPOT = FIXTURES / "hubspot"
ALL_HUBSPOT = {s: {"preset": "hubspot"} for s in ("contacts", "deals", "products", "list_memberships")}


@pytest.mark.parametrize("variant", ["singerio", "singerio_legacy"])
def test_hubspot_closed_won_deals_become_invoices(sandbox, run_target, variant):
    text = (HUBSPOT / f"{variant}_contacts.singer").read_text() + (HUBSPOT / f"{variant}_deals.singer").read_text()
    mappings = {**ALL_HUBSPOT, "deals": {"preset": "hubspot", "currency": "USD"}}
    run = run_target(base_config(sandbox, mappings=mappings), [json.loads(line) for line in text.splitlines()])
    assert run.returncode == 0, run.stderr
    rejected = [w for w in run.warnings if "Rejected" in w]
    assert len(rejected) == 1 and "(dealId=7002)" in rejected[0] and "the deal is in 'GBP'" in rejected[0]
    assert sorted((i["id"], i["contact_id"], i["amount"]) for i in sandbox.invoices()) == [
        ("7001", "74251", 150000),
    ]  # 7002 is in GBP: rejected, not sent as USD; 7003 is open, 7004 lost: skipped
    assert sandbox.invoice("7001")["items"] == [
        {
            "name": "HubSpot pipeline: default",
            "product_id": "hubspot-pipeline-default",
            "amount": 150000,
            "id": "7001-1",
        }
    ]
    assert "2 skipped" in run.stderr


def test_hubspot_meltanolabs_deals_wait_for_their_associations_when_the_stream_is_not_listed(sandbox, run_target):
    text = (HUBSPOT / "meltanolabs_contacts.singer").read_text() + (HUBSPOT / "meltanolabs_deals.singer").read_text()
    mappings = {**ALL_HUBSPOT, "deals": {"preset": "hubspot", "currency": "USD"}}
    run = run_target(base_config(sandbox, mappings=mappings), [json.loads(line) for line in text.splitlines()])
    assert run.returncode == 0
    assert sandbox.invoices() == []
    assert "Rejected record of stream 'deals' (id=7001)" not in run.stderr  # parked, not rejected
    assert "waiting for deal_contact_associations" in run.stderr


def test_hubspot_products_and_list_memberships(sandbox, run_target):
    text = "".join(
        (HUBSPOT / f).read_text()
        for f in ("meltanolabs_products.singer", "singerio_contacts.singer", "singerio_contact_lists.singer")
    )
    run = run_target(base_config(sandbox, mappings=ALL_HUBSPOT), [json.loads(line) for line in text.splitlines()])
    assert run.returncode == 0, run.stderr
    assert sorted((p["id"], p["name"]) for p in sandbox.products()) == [
        ("3101", "Annual plan"),
        ("3102", "Starter"),
        ("3103", "Onboarding package (één keer)"),
    ]
    lists = sorted(t["name"] for t in sandbox.contact("74253")["tags"] if t["name"].startswith("HubSpot list"))
    assert lists == ["HubSpot list: 12", "HubSpot list: 14"]  # names need contact_lists listed


# --- mapping errors for the new objects -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"object": "invoice", "fields": {"id": "i", "email": "e"}}, "an invoice needs items"),
        (
            {"object": "invoice", "fields": {"id": "i", "email": "e"}, "items": {"fields": {"name": "n"}}},
            "items.fields: map product_id, amount",
        ),
        (
            {"object": "product", "fields": {"id": "i", "name": "n"}, "action": "add"},
            "only an entry with object 'tags'",
        ),
        ({"object": "tags", "fields": {"email": "e"}, "tags": ["t"], "action": "toggle"}, "must be one of add, remove"),
        ({"object": "tags", "fields": {"email": "e"}}, "needs at least one tag source"),
        ({"object": "product", "fields": {"id": "i"}, "tags": ["t"]}, "a product has no tags"),
        (
            {"object": "tags", "fields": {"email": "e"}, "tags": [{"tag": {"title": "x"}}]},
            "maps some of id, name, date",
        ),
        ({"preset": "hubspot"}, "not mapped by preset 'hubspot': the preset has no mapping for a stream of this name"),
    ],
)
def test_object_mapping_errors(entry, message):
    with pytest.raises(MappingConfigError) as exc:
        compile_entry("contacts_v2", entry, PRESETS)
    assert message in str(exc.value)
