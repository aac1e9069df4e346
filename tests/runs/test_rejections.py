"""Nothing rejected is lost: replay after a fixed mapping, a run that fails loudly when nearly everything
is rejected, rejections that stay readable (a few lines per reason, grouped in the summary)."""

from __future__ import annotations

import json

from helpers import USERS, RefuseEmail, base_config, record, rejected, schema, state, users

LEADS = schema(
    "leads",
    {"id": {"type": "integer"}, "email": {"type": "string"}, "subscribed": {"type": "string"}},
)


def lead(i: int, subscribed: str = "yes") -> dict:
    return record("leads", {"id": i, "email": f"lead{i}@example.com", "subscribed": subscribed})


def leads(n: int, *, state_every: int = 10, make=lead) -> list[dict]:
    messages: list[dict] = [LEADS]
    for i in range(n):
        messages.append(make(i))
        if (i + 1) % state_every == 0:
            messages.append(state({"leads": i + 1}))
    return messages


# A marketer's first mapping: status read from a yes/no column, with no map (every record is refused).
BROKEN = {"leads": {"fields": {"email": "email", "status": "subscribed"}}}
FIXED = {
    "leads": {
        "fields": {"email": "email", "status": {"path": "subscribed", "map": {"yes": "active", "no": "inactive"}}}
    }
}
NOTHING_NEW = [LEADS, state({"leads": "done"})]  # the tap sends nothing again: its bookmark moved on


def statuses(sandbox) -> dict[str, str]:
    return {c["email"]: c.get("status") for c in sandbox.contacts()}


def test_a_fixed_mapping_lands_the_earlier_rejections_on_the_next_run(sandbox, run_target, tmp_path, store_config):
    rejects = tmp_path / "rejects.jsonl"
    summary = tmp_path / "summary.json"
    config = base_config(sandbox, **store_config, rejects_path=str(rejects), summary_path=str(summary))
    first = run_target({**config, "mappings": BROKEN}, leads(12, make=lambda i: lead(i, "yes" if i % 2 else "no")))
    assert first.returncode == 0, first.stderr
    assert statuses(sandbox) == {}
    assert len(rejected(rejects)) == 12
    assert "12 rejected records kept in" in first.stderr

    # Unchanged mapping, and a newer record of lead 3 that maps (status written as SegMetrics takes it):
    # no request for the 11 others (they map to what was refused), lead 3's newer record wins.
    before = sandbox.request_count
    second = run_target({**config, "mappings": BROKEN}, [LEADS, lead(3, "inactive"), state({"leads": "done"})])
    assert second.returncode == 0, second.stderr
    assert sandbox.request_count - before == 1
    assert statuses(sandbox) == {"lead3@example.com": "inactive"}
    assert len(rejects.read_text().splitlines()) == 12  # nothing rejected again: nothing said again

    # The mapping fixed: the tap sends nothing again, the earlier rejections land.
    third = run_target({**config, "mappings": FIXED}, NOTHING_NEW)
    assert third.returncode == 0, third.stderr
    expected = {f"lead{i}@example.com": "active" if i % 2 else "inactive" for i in range(12)}
    assert statuses(sandbox) == expected | {"lead3@example.com": "inactive"}
    streams = json.loads(summary.read_text())["streams"]
    assert streams["leads"]["replayed"] == 11
    assert "kept in" not in third.stderr.split("Run summary")[-1]

    # Landed: they left the store; another run sends nothing for them.
    before = sandbox.request_count
    fourth = run_target({**config, "mappings": FIXED}, NOTHING_NEW)
    assert fourth.returncode == 0, fourth.stderr
    assert sandbox.request_count == before


def test_a_stream_whose_records_are_all_rejected_stops_the_run_and_keeps_them(sandbox, run_target, tmp_path):
    store = str(tmp_path / "store.sqlite3")
    config = base_config(sandbox, state_db_path=store)
    run = run_target({**config, "mappings": BROKEN}, leads(300))
    assert run.returncode != 0
    assert run.states == []  # no STATE passes the rejected records
    errors = "\n".join(run.errors)
    assert "90 of the first 90 records of stream 'leads' were rejected" in errors
    assert "Leading reason (90 records, e.g. id=0): status: 'yes' is not one of active, inactive" in errors
    assert statuses(sandbox) == {}

    fixed = run_target({**config, "mappings": FIXED}, NOTHING_NEW)
    assert fixed.returncode == 0, fixed.stderr
    assert len(statuses(sandbox)) == 90  # the rest the tap sends again: no STATE passed them


def test_many_rejections_of_one_reason_log_a_few_lines_and_the_summary_counts_them(sandbox, run_target, tmp_path):
    summary = tmp_path / "summary.json"
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings=BROKEN, summary_path=str(summary), rejects_path=str(rejects))
    # 4 of 5 refused ("yes"), 1 of 5 sent ("active"): 80% is not "nearly all", the run goes on.
    run = run_target(config, leads(500, make=lambda i: lead(i, "active" if i % 5 == 0 else "yes")))
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "Rejected record" in line]
    assert len(lines) <= 12, lines
    assert "logged every 1000th; the summary counts them all" in lines[2]
    assert len(rejects.read_text().splitlines()) == 400  # the rejects file has every one
    grouped = json.loads(summary.read_text())["rejections"]["leads"]
    assert grouped == [
        {
            "reason": "status: 'yes' is not one of active, inactive",
            "count": 400,
            "example_key": "id=1",
            "rejected_by": "locally",
        }
    ]
    block = run.stderr.split("Run summary")[-1]
    assert "400 locally: status: 'yes' is not one of active, inactive (e.g. id=1)" in block
    assert len(sandbox.contacts()) == 100


# Contacts whose own record alone decides their tags (tags_mode own, no other stream tags them): the tags
# go with the contact, in one request. Which way the tags go is decided with the stream's schema.
OWN_TAGS = {
    "leads": {
        "fields": {"email": "email"},
        "tags": [{"path": "subscribed", "format": "Subscribed: {}"}],
        "tags_mode": "own",
    },
    "users": {"fields": {"email": "email"}},
}


def requests_for(sandbox, email: str) -> list[tuple[str, list[str] | None]]:
    """The requests SegMetrics received for one contact: (path, the tag names sent with it)."""
    return [
        (entry["path"], [tag["name"] for tag in body["tags"]] if "tags" in body else None)
        for entry in sandbox.requests_log()
        if (body := entry.get("body") or {}).get("email") == email
    ]


def test_a_contact_segmetrics_refused_waits_for_its_own_stream_to_be_replayed_as_it_was_refused(
    sandbox, run_target, tmp_path
):
    sandbox.faults = RefuseEmail("lead0@example.com")
    rejects = tmp_path / "rejects.jsonl"
    summary = tmp_path / "summary.json"
    config = base_config(sandbox, mappings=OWN_TAGS, rejects_path=str(rejects), summary_path=str(summary))
    first = run_target(config, [LEADS, lead(0), lead(1), state({"leads": 2})])
    assert first.returncode == 0, first.stderr
    assert list(rejected(rejects)) == ["id=0"]
    assert [(c["email"], [tag["name"] for tag in c["tags"]]) for c in sandbox.contacts()] == [
        ("lead1@example.com", ["Subscribed: yes"])
    ]
    refused = requests_for(sandbox, "lead0@example.com")
    assert refused[-1] == ("contact", ["Subscribed: yes"])  # the contact with its tags, in one request

    # A run of another stream only: the lead is not sent again (nor refused and said again).
    other = run_target(config, [USERS, *users(0, 2), state({"users": 2})])
    assert other.returncode == 0, other.stderr
    assert requests_for(sandbox, "lead0@example.com") == refused, other.stderr
    assert len(rejects.read_text().splitlines()) == 1, other.stderr
    assert "1 rejected record kept in" in other.stderr

    # Its own stream again, the mapping unchanged: it maps to exactly what was refused, nothing is sent.
    again = run_target(config, [LEADS, state({"leads": "done"})])
    assert again.returncode == 0, again.stderr
    assert requests_for(sandbox, "lead0@example.com") == refused, again.stderr
    assert len(rejects.read_text().splitlines()) == 1, again.stderr

    # SegMetrics takes it now and the mapping changed: it lands, its tags with it, in one request.
    sandbox.faults = None
    fixed = {**OWN_TAGS, "leads": {**OWN_TAGS["leads"], "fields": {"email": "email", "first_name": "subscribed"}}}
    landed = run_target({**config, "mappings": fixed}, [LEADS, state({"leads": "done"})])
    assert landed.returncode == 0, landed.stderr
    assert requests_for(sandbox, "lead0@example.com")[len(refused) :] == [("contact", ["Subscribed: yes"])]
    assert json.loads(summary.read_text())["streams"]["leads"]["replayed"] == 1
    lead0 = next(c for c in sandbox.contacts() if c["email"] == "lead0@example.com")
    assert [tag["name"] for tag in lead0["tags"]] == ["Subscribed: yes"]


NAMES = schema("names", {"email": {"type": "string"}, "name": {"type": "string"}}, key_properties=("email",))
BROKEN_WITH_LOOKUP = {
    "names": {"lookup": {"key": "email"}},
    "leads": {
        "fields": {
            "email": "email",
            "status": "subscribed",
            "first_name": {"lookup": "names", "key": "email", "field": "name"},
        }
    },
}
FIXED_WITH_LOOKUP = {
    "names": BROKEN_WITH_LOOKUP["names"],
    "leads": {
        "fields": {**FIXED["leads"]["fields"], "first_name": BROKEN_WITH_LOOKUP["leads"]["fields"]["first_name"]}
    },
}


def test_a_fixed_mapping_replays_a_record_with_the_lookup_rows_the_store_holds(sandbox, run_target, store_config):
    rows = [NAMES, record("names", {"email": "lead0@example.com", "name": "Ann"})]
    first = run_target(base_config(sandbox, mappings=BROKEN_WITH_LOOKUP, **store_config), [*rows, LEADS, lead(0)])
    assert first.returncode == 0, first.stderr
    assert sandbox.contacts() == []  # refused: status 'yes'
    second = run_target(base_config(sandbox, mappings=FIXED_WITH_LOOKUP, **store_config), NOTHING_NEW)
    assert second.returncode == 0, second.stderr
    assert [(c["email"], c.get("first_name"), c.get("status")) for c in sandbox.contacts()] == [
        ("lead0@example.com", "Ann", "active")
    ]
    assert "parked" not in second.stderr


def test_a_replay_in_a_run_without_the_stream_reports_it_as_sent(sandbox, run_target, store_config):
    assert run_target(base_config(sandbox, mappings=BROKEN, **store_config), [LEADS, lead(0)]).returncode == 0
    later = run_target(base_config(sandbox, mappings=FIXED, **store_config), [])  # the tap sends no leads at all
    assert later.returncode == 0, later.stderr
    assert statuses(sandbox) == {"lead0@example.com": "active"}
    assert "NOT SENT" not in later.stderr
    assert "leads -> contacts: 0 received" in later.stderr, later.stderr
