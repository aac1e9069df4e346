"""Order follows the contact's identity across streams: what SegMetrics holds is what the input says.

Each case runs against the sandbox with shuffled latency (requests in flight finish in a random
order), many contacts at once, and checks the end state; the fuzz compares a concurrent run with a
sequential replay of the same input (``max_concurrency: 1``) on a second sandbox.
"""

from __future__ import annotations

import random

import pytest
from helpers import ACCOUNT, API_KEY, INTEGRATION, RandomDelay, base_config, record, schema

from target_segmetrics.sandbox import Sandbox

CONTACTS = schema(
    "contacts",
    {"id": {"type": "string"}, "email": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]}},
)
SIGNUPS = schema("signups", {"email": {"type": "string"}, "name": {"type": ["string", "null"]}}, key_properties=())
TAG_EVENTS = schema("tag_events", {"email": {"type": "string"}, "tag": {"type": "string"}}, key_properties=())
INVOICES = schema(
    "invoices",
    {
        "id": {"type": "string"},
        "contact": {"type": "string"},
        "total": {"type": "integer"},
        "date": {"type": "string"},
    },
)
MAPPINGS = {
    "contacts": {"fields": {"contact_id": "id", "email": "email", "first_name": "name"}, "tags_mode": "add"},
    "signups": {"fields": {"email": "email", "first_name": "name"}},
    "tag_events": {"object": "tags", "fields": {"email": "email"}, "tags": ["tag"]},
    "invoices": {
        "object": "invoice",
        "fields": {"id": "id", "contact_id": "contact", "amount": "total", "paid": "total", "date_created": "date"},
        "items": {"fields": {"name": {"value": "Plan"}, "product_id": {"value": "plan"}, "amount": "total"}},
    },
}
DELETED = "2024-05-01T00:00:00Z"


def held(sandbox: Sandbox) -> dict:
    """What SegMetrics holds, comparable across runs (tags by name: ids depend on arrival order)."""
    contacts = sorted(
        (
            str(c["contact_id"]),
            c["email"],
            c.get("first_name"),
            tuple(sorted(t["name"] for t in c["tags"])),
        )
        for c in sandbox.contacts()
    )
    invoices = sorted((str(i["id"]), str(i.get("contact_id")), i["amount"]) for i in sandbox.invoices())
    return {"contacts": contacts, "invoices": invoices}


def config(sandbox: Sandbox, **overrides) -> dict:
    return base_config(sandbox, **{"mappings": MAPPINGS, "hard_delete": True, "max_concurrency": 16, **overrides})


def test_a_tag_event_by_email_lands_before_that_contacts_email_changes(sandbox, run_target):
    sandbox.faults = RandomDelay(40, seed=3)
    messages = [CONTACTS, SIGNUPS, TAG_EVENTS]
    for n in range(20):
        messages += [
            record("contacts", {"id": f"c{n}", "email": f"old{n}@x.test", "name": "A"}),
            record("signups", {"email": f"old{n}@x.test", "name": "Signed up"}),
            record("tag_events", {"email": f"old{n}@x.test", "tag": "Webinar"}),
            record("contacts", {"id": f"c{n}", "email": f"new{n}@x.test", "name": "B"}),
        ]
    run = run_target(config(sandbox), messages)
    assert run.returncode == 0, run.stderr
    assert "Rejected" not in run.stderr
    assert held(sandbox)["contacts"] == sorted((f"c{n}", f"new{n}@x.test", "B", ("Webinar",)) for n in range(20))


def test_a_sign_up_after_a_delete_creates_the_contact_again(sandbox, run_target):
    sandbox.faults = RandomDelay(40, seed=5)
    messages = [CONTACTS, SIGNUPS]
    for n in range(20):
        messages += [
            record("contacts", {"id": f"c{n}", "email": f"p{n}@x.test", "name": "A"}),
            record("contacts", {"id": f"c{n}", "email": None, "name": None, "_sdc_deleted_at": DELETED}),
            record("signups", {"email": f"p{n}@x.test", "name": "F"}),
        ]
    run = run_target(config(sandbox), messages)
    assert run.returncode == 0, run.stderr
    assert "Rejected" not in run.stderr
    assert held(sandbox)["contacts"] == sorted(("None", f"p{n}@x.test", "F", ()) for n in range(20))


def test_a_contact_delete_waits_for_the_invoices_that_name_the_contact(sandbox, run_target):
    sandbox.faults = RandomDelay(40, seed=7)
    messages = [CONTACTS, INVOICES]
    for n in range(20):
        messages += [
            record("contacts", {"id": f"c{n}", "email": f"q{n}@x.test", "name": "A"}),
            record("invoices", {"id": f"i{n}", "contact": f"c{n}", "total": 1000 + n, "date": "2024-04-01"}),
            record("contacts", {"id": f"c{n}", "email": None, "name": None, "_sdc_deleted_at": DELETED}),
        ]
    run = run_target(config(sandbox), messages)
    assert run.returncode == 0, run.stderr
    assert "Rejected" not in run.stderr
    assert held(sandbox) == {"contacts": [], "invoices": sorted((f"i{n}", f"c{n}", 1000 + n) for n in range(20))}


def fuzz_input(seed: int, size: int) -> list[dict]:
    """Mixed keys across four streams: id only, email only, both, email changes, deletes, tags."""
    rng = random.Random(seed)
    ids = [f"c{n}" for n in range(8)]
    emails = {cid: f"{cid}@x.test" for cid in ids}
    messages = [CONTACTS, SIGNUPS, TAG_EVENTS, INVOICES]
    # Each contact is introduced with its id and email: what ties them together is in the input. (Two
    # records nothing ties together are independent; which of them SegMetrics creates first is not.)
    messages += [record("contacts", {"id": cid, "email": emails[cid], "name": "first"}) for cid in ids]
    for step in range(size):
        cid = rng.choice(ids)
        roll = rng.random()
        if roll < 0.3:
            if rng.random() < 0.2:
                emails[cid] = f"{cid}.{step}@x.test"  # an email change
            messages.append(record("contacts", {"id": cid, "email": emails[cid], "name": f"n{step}"}))
        elif roll < 0.45:
            messages.append(record("contacts", {"id": cid, "email": None, "name": f"id-only{step}"}))
        elif roll < 0.6:
            messages.append(record("signups", {"email": emails[cid], "name": f"s{step}"}))
        elif roll < 0.8:
            messages.append(record("tag_events", {"email": emails[cid], "tag": f"T{step % 5}"}))
        elif roll < 0.9:
            messages.append(record("invoices", {"id": f"i{step}", "contact": cid, "total": step, "date": "2024-04-01"}))
        else:
            messages.append(record("contacts", {"id": cid, "email": None, "name": None, "_sdc_deleted_at": DELETED}))
    return messages


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_fuzz_concurrent_run_ends_as_a_sequential_replay(sandbox, run_target, seed):
    messages = fuzz_input(seed, 300)
    with Sandbox(api_key=API_KEY, account_id=ACCOUNT, integration_ids=(INTEGRATION,)) as replay:
        sequential = run_target(config(replay, max_concurrency=1), messages)
        expected = held(replay)
    # Rejections (a tag event or invoice for a contact that does not exist at that point) are part of
    # what the input says: the same ones happen in both runs.
    assert sequential.returncode == 0, sequential.stderr
    sandbox.faults = RandomDelay(30, seed=seed)
    concurrent = run_target(config(sandbox), messages)
    assert concurrent.returncode == 0, concurrent.stderr
    assert held(sandbox) == expected
    assert sandbox.peak_in_flight > 1
    assert concurrent.stderr.count("Rejected record") == sequential.stderr.count("Rejected record")
