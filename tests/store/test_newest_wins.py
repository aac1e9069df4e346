"""Newest wins: a record that waits (parked) is superseded by any newer record of the same object.

What SegMetrics ends holding is what the input's newest record of each object says, whether the
older one waited for its contact, for a lookup row, or in an earlier run; a release acts only on the
exact version it read, also when another run shares the store.
"""

from __future__ import annotations

import json
import random
import threading

import pytest
from helpers import (
    FIXTURES,
    FaultAction,
    Policy,
    RandomDelay,
    base_config,
    record,
    schema,
    start_process,
)

HUBSPOT = FIXTURES / "hubspot"
CONTACTS = schema(
    "contacts", {"id": {"type": "string"}, "email": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]}}
)
NAMES = schema("names", {"id": {"type": "string"}, "name": {"type": "string"}})
INVOICES = schema(
    "invoices",
    {"id": {"type": "string"}, "contact": {"type": ["string", "null"]}, "total": {"type": "integer"}},
)
OWNERS = schema("owners", {"invoice": {"type": "string"}, "contact": {"type": "string"}}, key_properties=("invoice",))
MAPPINGS = {
    "contacts": {
        "fields": {
            "contact_id": "id",
            "email": "email",
            "first_name": ["name", {"lookup": "names", "key": "id", "field": "name"}],
        }
    },
    "names": {"lookup": {"key": "id"}},
    "owners": {"lookup": {"key": "invoice"}},
    "invoices": {
        "object": "invoice",
        "fields": {
            "id": "id",
            "contact_id": ["contact", {"lookup": "owners", "key": "id", "field": "contact"}],
            "amount": "total",
            "paid": "total",
            "date_created": {"value": "2024-04-01"},
        },
        "items": {"fields": {"name": {"value": "Plan"}, "product_id": {"value": "plan"}, "amount": "total"}},
    },
}
DELETED = "2024-05-01T00:00:00Z"


def contact(cid: str, name: str | None = "Ann", **extra) -> dict:
    return record("contacts", {"id": cid, "email": f"{cid}@x.test", "name": name, **extra})


def invoice(iid: str, contact_id: str | None, total: int) -> dict:
    return record("invoices", {"id": iid, "contact": contact_id, "total": total})


def held_invoices(sandbox) -> dict[str, tuple[str, int]]:
    return {str(i["id"]): (str(i["contact_id"]), i["amount"]) for i in sandbox.invoices()}


def config(sandbox, store_config, **extra) -> dict:
    return base_config(sandbox, mappings=MAPPINGS, **{"max_concurrency": 8, **store_config, **extra})


def test_an_invoice_waiting_for_its_contact_loses_to_a_newer_one_sent_in_the_same_run(
    sandbox, run_target, store_config
):
    run = run_target(
        config(sandbox, store_config),
        [CONTACTS, INVOICES, invoice("7", "c1", 100), contact("c1"), invoice("7", "c1", 200)],
    )
    assert run.returncode == 0, run.stderr
    assert held_invoices(sandbox) == {"7": ("c1", 200)}
    assert "parked, waiting" not in run.stderr


def test_an_invoice_waiting_for_a_lookup_row_loses_to_a_newer_one_sent_before_the_row_came(
    sandbox, run_target, store_config
):
    messages = [CONTACTS, INVOICES, OWNERS, contact("c1"), contact("c2")]
    messages += [invoice("7", None, 100), invoice("7", "c2", 200), record("owners", {"invoice": "7", "contact": "c1"})]
    run = run_target(config(sandbox, store_config), messages)
    assert run.returncode == 0, run.stderr
    assert held_invoices(sandbox) == {"7": ("c2", 200)}


def test_an_invoice_parked_in_one_run_loses_to_a_newer_one_sent_in_the_next(sandbox, run_target, store_config):
    cfg = config(sandbox, store_config)
    first = run_target(cfg, [CONTACTS, INVOICES, invoice("7", "c1", 100)])
    assert first.returncode == 0 and "1 record parked" in first.stderr
    second = run_target(cfg, [CONTACTS, INVOICES, contact("c1"), invoice("7", "c1", 200)])
    assert second.returncode == 0, second.stderr
    assert held_invoices(sandbox) == {"7": ("c1", 200)}
    third = run_target(cfg, [])  # nothing older is left to come back
    assert third.returncode == 0 and held_invoices(sandbox) == {"7": ("c1", 200)}


MEMBERSHIPS = schema("memberships", {"contact": {"type": "string"}, "list": {"type": "string"}}, ("contact", "list"))
MEMBERSHIP_MAPPINGS = {
    "contacts": MAPPINGS["contacts"],
    "names": MAPPINGS["names"],
    "memberships": {
        "object": "tags",
        "action": "add",
        "fields": {"contact_id": "contact"},
        "tags": [{"path": "list", "format": "List: {}"}],
    },
}


def test_a_tag_event_waiting_for_its_contact_still_adds_its_tag_after_another_tag_of_the_contact(
    sandbox, run_target, store_config
):
    # A tag event sets no field of the contact: a newer one (another list) does not take its tags away.
    cfg = base_config(sandbox, mappings=MEMBERSHIP_MAPPINGS, **store_config)
    first = run_target(cfg, [MEMBERSHIPS, record("memberships", {"contact": "c1", "list": "A"})])
    assert first.returncode == 0 and "1 record parked" in first.stderr
    messages = [CONTACTS, MEMBERSHIPS, contact("c1"), record("memberships", {"contact": "c1", "list": "B"})]
    second = run_target(cfg, messages)
    assert second.returncode == 0, second.stderr
    assert "Rejected" not in second.stderr
    assert sorted(tag["name"] for tag in sandbox.contact("c1")["tags"]) == ["List: A", "List: B"]


def test_a_contact_deleted_while_its_older_record_waits_stays_deleted(sandbox, run_target, store_config):
    messages = [CONTACTS, NAMES, contact("c1", name=None), contact("c1", name=None, _sdc_deleted_at=DELETED)]
    messages.append(record("names", {"id": "c1", "name": "Ann"}))  # what the older record waited for
    run = run_target(config(sandbox, store_config, hard_delete=True), messages)
    assert run.returncode == 0, run.stderr
    assert sandbox.contacts() == []


def singerio_contact_and_unsubscribe(tmp_path):
    """A singer-io 2.x contact in a list (it waits for the list's name until the end of the run), then
    the recipient's unsubscribe, and the contact_lists stream that never names the list."""
    contacts = [json.loads(line) for line in (HUBSPOT / "singerio_legacy_contacts.singer").read_text().splitlines()]
    schema_message = next(m for m in contacts if m["type"] == "SCHEMA")
    alice = next(m for m in contacts if m["type"] == "RECORD" and m["record"]["vid"] == 74251)
    assert alice["record"]["properties"]["hs_email_optout"] == {"value": False}
    assert alice["record"]["list-memberships"]  # the list tag waits for contact_lists
    changes = [json.loads(line) for line in (HUBSPOT / "singerio_subscription_changes.singer").read_text().splitlines()]
    changes_schema = next(m for m in changes if m["type"] == "SCHEMA")
    email = alice["record"]["properties"]["email"]["value"]
    unsubscribe = {
        "timestamp": "2024-03-02T10:00:00.000000Z",
        "portalId": 1234567,
        "recipient": email,
        "changes": [{"change": "UNSUBSCRIBED", "changeType": "PORTAL_STATUS", "timestamp": "2024-03-02T10:00:00Z"}],
    }
    lists = [
        json.loads(line)
        for line in (HUBSPOT / "singerio_contact_lists.singer").read_text().splitlines()
        if json.loads(line)["type"] == "SCHEMA"
    ]
    return [schema_message, alice, changes_schema, record("subscription_changes", unsubscribe), *lists]


def test_a_singerio_contact_that_unsubscribed_while_its_record_waited_ends_inactive(
    sandbox, run_target, tmp_path, store_config
):
    mappings = {name: {"preset": "hubspot"} for name in ("contacts", "contact_lists", "subscription_changes")}
    run = run_target(
        base_config(sandbox, mappings=mappings, **store_config), singerio_contact_and_unsubscribe(tmp_path)
    )
    assert run.returncode == 0, run.stderr
    assert [(c["email"], c["status"]) for c in sandbox.contacts()] == [("alice.johnson@example.com", "inactive")]


class HoldFirstInvoice(Policy):
    """Answers the first invoice request of ``amount`` only after ``hold_ms`` (and says when it came)."""

    def __init__(self, amount: int, hold_ms: int) -> None:
        self.amount, self.hold_ms = amount, hold_ms
        self.arrived = threading.Event()

    def before(self, ctx):
        held = ctx.path == "invoice" and isinstance(ctx.body, dict) and ctx.body.get("amount") == self.amount
        if held and not self.arrived.is_set():
            self.arrived.set()
            return FaultAction("delay", delay_ms=self.hold_ms)
        return None


def test_a_release_landing_late_keeps_the_newer_record_another_run_parked_meanwhile(
    sandbox, run_target, tmp_path, store_config
):
    cfg = config(sandbox, store_config)
    assert run_target(cfg, [CONTACTS, INVOICES, invoice("7", "c1", 100)]).returncode == 0  # v1 parked
    # c1 comes into SegMetrics through another store (v1 stays parked in this one).
    assert run_target(base_config(sandbox, mappings=MAPPINGS), [CONTACTS, contact("c1")]).returncode == 0
    hold = HoldFirstInvoice(100, hold_ms=8000)
    sandbox.faults = hold
    path = tmp_path / "release.json"
    path.write_text(json.dumps(cfg))
    releasing = start_process(path, [])  # run B: releases v1, its request held 8 s by SegMetrics
    try:
        assert hold.arrived.wait(60), "run B never released the parked invoice"
        # Run A, meanwhile (well within the 8 s): v2 for a contact SegMetrics does not hold: parked.
        parking = run_target(cfg, [CONTACTS, INVOICES, invoice("7", "c2", 200)])
        assert parking.returncode == 0, parking.stderr
        assert hold.arrived.is_set() and releasing.poll() is None  # B's v1 has not landed yet
        releasing.wait(timeout=60)
    finally:
        if releasing.poll() is None:
            releasing.kill()
            releasing.wait()
    assert releasing.returncode == 0, releasing.stderr.read() if releasing.stderr else ""
    assert held_invoices(sandbox) == {"7": ("c1", 100)}  # v1 landed after A parked v2
    sandbox.faults = None
    assert run_target(base_config(sandbox, mappings=MAPPINGS), [CONTACTS, contact("c2")]).returncode == 0
    last = run_target(cfg, [])  # v2 was kept: released now that c2 exists
    assert last.returncode == 0, last.stderr
    assert held_invoices(sandbox) == {"7": ("c2", 200)}


def test_records_of_a_stream_without_key_properties_parked_in_two_runs_all_land(sandbox, run_target, store_config):
    # Each user's email (what names the contact) comes from a lookup: it waits for its row.
    emails = schema("emails", {"user": {"type": "string"}, "email": {"type": "string"}}, key_properties=())
    users = schema("users", {"id": {"type": "string"}, "name": {"type": "string"}}, key_properties=())
    mappings = {
        "emails": {"lookup": {"key": "user"}},
        "users": {"fields": {"email": {"lookup": "emails", "key": "id", "field": "email"}, "first_name": "name"}},
    }
    cfg = base_config(sandbox, mappings=mappings, **store_config)
    assert run_target(cfg, [users, record("users", {"id": "u1", "name": "Ann"})]).returncode == 0
    assert run_target(cfg, [users, record("users", {"id": "u2", "name": "Bob"})]).returncode == 0  # the same line
    rows = [record("emails", {"user": u, "email": f"{u}@x.test"}) for u in ("u1", "u2")]
    last = run_target(cfg, [emails, *rows])
    assert last.returncode == 0, last.stderr
    assert sorted((c["email"], c["first_name"]) for c in sandbox.contacts()) == [
        ("u1@x.test", "Ann"),
        ("u2@x.test", "Bob"),
    ]


def test_a_lookup_row_of_a_stream_without_key_properties_is_replaced_by_its_newer_version(
    sandbox, run_target, store_config
):
    emails = schema("emails", {"user": {"type": "string"}, "email": {"type": "string"}}, key_properties=())
    users = schema("users", {"id": {"type": "string"}})
    mappings = {
        "emails": {"lookup": {"key": "user"}},
        "users": {"fields": {"contact_id": "id", "email": {"lookup": "emails", "key": "id", "field": "email"}}},
    }
    cfg = base_config(sandbox, mappings=mappings, **store_config)
    old = [emails, record("emails", {"user": "u1", "email": "old@x.test"})]
    new = [
        emails,
        record("emails", {"user": "u0", "email": "other@x.test"}),
        record("emails", {"user": "u1", "email": "new@x.test"}),
    ]
    for messages in (old, new):
        assert run_target(cfg, messages).returncode == 0
    run = run_target(cfg, [users, record("users", {"id": "u1"})])
    assert run.returncode == 0, run.stderr
    assert [c["email"] for c in sandbox.contacts()] == ["new@x.test"]


def waiting_fuzz(seed: int, runs: int = 3, steps: int = 60) -> tuple[list[list[dict]], dict[str, tuple[str, int]]]:
    """Three runs of contacts, invoice versions and owner rows in a random order: invoices whose contact
    SegMetrics does not hold yet or whose owner row has not come (both wait), newer versions while
    older ones wait, contacts and rows in a later run or never. Returns the runs' input and, computed
    from the input alone, what SegMetrics must end holding: each invoice's newest version that could land."""
    rng = random.Random(seed)
    contacts = [f"c{n}" for n in range(8)]  # c7 never comes
    created: set[str] = set()
    owners: dict[str, str] = {}
    held: dict[str, tuple[str, int]] = {}
    waiting: dict[str, dict] = {}  # invoice -> its newest version that waits
    inputs = []

    def resolve(version: dict) -> str | None:
        return version["contact"] or owners.get(version["id"])

    for run in range(runs):
        messages = [CONTACTS, INVOICES, OWNERS]
        for step in range(steps):
            roll = rng.random()
            if roll < 0.2:
                cid = rng.choice(contacts[:7])
                messages.append(contact(cid, name=f"n{run}.{step}"))
                created.add(cid)
            elif roll < 0.35:
                iid, cid = f"i{rng.randrange(10)}", rng.choice(contacts)
                messages.append(record("owners", {"invoice": iid, "contact": cid}))
                owners[iid] = cid
            else:
                version = {
                    "id": f"i{rng.randrange(10)}",
                    "contact": rng.choice([*contacts, None, None]),
                    "total": 100 * run + step,
                }
                messages.append(invoice(version["id"], version["contact"], version["total"]))
                waiting.pop(version["id"], None)  # newest wins: an older version waiting is superseded
                cid = resolve(version)
                if cid is not None and cid in created:
                    held[version["id"]] = (cid, version["total"])
                else:
                    waiting[version["id"]] = version
        inputs.append(messages)
        for iid, version in list(waiting.items()):  # the end of the run: what waited and can go now
            cid = resolve(version)
            if cid is not None and cid in created:
                held[iid] = (cid, version["total"])
                del waiting[iid]
    return inputs, held


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_fuzz_each_invoice_ends_as_its_newest_version_whatever_waited(sandbox, run_target, store_config, seed):
    inputs, expected = waiting_fuzz(seed)
    sandbox.faults = RandomDelay(20, seed=seed)
    cfg = config(sandbox, store_config, max_concurrency=16)
    for messages in inputs:
        run = run_target(cfg, messages)
        assert run.returncode == 0, run.stderr
        assert "Rejected" not in run.stderr
    assert held_invoices(sandbox) == expected
