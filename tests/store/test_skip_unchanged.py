"""Send only what changed: the store of acknowledged digests (skip_unchanged)."""

from __future__ import annotations

import json

from helpers import FIXTURES, RefuseFirst, base_config, record, schema, scripted, state

HUBSPOT = FIXTURES / "hubspot" / "meltanolabs_contacts.singer"
USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"}})
MAPPING = {
    "users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email", "first_name": "name"}}
}


def users(names: dict[int, str]) -> list[dict]:
    return [
        USERS,
        *[record("users", {"id": i, "email": f"u{i}@example.com", "name": n}) for i, n in names.items()],
        state({"run": "done"}),
    ]


def config(sandbox, tmp_path, store, **extra):
    """``store``: the back end's settings (``store_config``: the SQLite file or a PostgreSQL database)."""
    settings = {
        "mappings": MAPPING,
        "skip_unchanged": True,
        "state_db_path": str(tmp_path / "sent.db"),
        **store,
        "summary_path": str(tmp_path / "summary.json"),
        **extra,
    }
    return base_config(sandbox, **settings)


def summary(tmp_path) -> dict:
    return json.loads((tmp_path / "summary.json").read_text())["streams"]


def test_unchanged_second_run_sends_nothing(sandbox, run_target, tmp_path, store_config):
    cfg = base_config(
        sandbox,
        mappings={"contacts": {"preset": "hubspot"}},
        skip_unchanged=True,
        summary_path=str(tmp_path / "summary.json"),
        **{"state_db_path": str(tmp_path / "sent.db"), **store_config},
    )
    first = run_target(cfg, HUBSPOT)
    assert first.returncode == 0, first.stderr
    sent = sandbox.request_count
    assert sent == 6  # per contact: the upsert with its tags (hubspot preset, MeltanoLabs: no other stream tags it)
    second = run_target(cfg, HUBSPOT)
    assert second.returncode == 0, second.stderr
    assert sandbox.request_count == sent  # nothing more was sent
    assert summary(tmp_path)["contacts"]["unchanged"] == 6
    assert second.states == first.states  # STATE still moves on


def test_one_changed_field_sends_exactly_that_contact(sandbox, run_target, tmp_path, store_config):
    run_target(config(sandbox, tmp_path, store_config), users({1: "Ann", 2: "Bob", 3: "Cy"}))
    before = sandbox.request_count
    run = run_target(config(sandbox, tmp_path, store_config), users({1: "Ann", 2: "Robert", 3: "Cy"}))
    assert run.returncode == 0
    sent = sandbox.requests_log()[before:]
    assert [e["body"]["contact_id"] for e in sent] == ["2"]
    assert sandbox.contact("2")["first_name"] == "Robert"
    assert summary(tmp_path)["users"]["unchanged"] == 2


def test_a_record_that_failed_is_sent_again_next_run(sandbox, run_target, tmp_path, store_config):
    sandbox.faults = scripted(*[503] * 3)  # the first record's request fails past the retry budget
    failed = run_target(config(sandbox, tmp_path, store_config, max_retries=2), users({1: "Ann"}))
    assert failed.returncode == 1
    sandbox.faults = None
    again = run_target(config(sandbox, tmp_path, store_config), users({1: "Ann", 2: "Bob"}))
    assert again.returncode == 0, again.stderr
    assert sandbox.contact("1")["first_name"] == "Ann"
    assert summary(tmp_path)["users"]["unchanged"] == 0


def test_a_rejected_record_is_not_remembered(sandbox, run_target, tmp_path, store_config):
    sandbox.faults = RefuseFirst(1)
    run_target(config(sandbox, tmp_path, store_config), users({1: "Ann"}))
    assert sandbox.contacts() == []
    run = run_target(config(sandbox, tmp_path, store_config), users({1: "Ann"}))
    assert run.returncode == 0
    assert sandbox.contact("1")["first_name"] == "Ann"


def test_a_mapping_change_or_another_integration_resends(sandbox, run_target, tmp_path, store_config):
    run_target(config(sandbox, tmp_path, store_config), users({1: "Ann"}))
    count = sandbox.request_count
    changed = {"users": {**MAPPING["users"], "fields": {**MAPPING["users"]["fields"], "last_name": "name"}}}
    run_target(config(sandbox, tmp_path, store_config, mappings=changed), users({1: "Ann"}))
    assert sandbox.request_count == count + 1
    assert sandbox.contact("1")["last_name"] == "Ann"
    run_target(config(sandbox, tmp_path, store_config, mappings=changed, integration_id="int2"), users({1: "Ann"}))
    assert sandbox.contact("1", integration_id="int2")["first_name"] == "Ann"


def test_full_resend_sends_everything_and_a_delete_forgets(sandbox, run_target, tmp_path, store_config):
    run_target(config(sandbox, tmp_path, store_config), users({1: "Ann", 2: "Bob"}))
    count = sandbox.request_count
    run_target(config(sandbox, tmp_path, store_config, full_resend=True), users({1: "Ann", 2: "Bob"}))
    assert sandbox.request_count == count + 2
    deleted = [
        USERS,
        record("users", {"id": 1, "email": "u1@example.com", "name": "Ann", "_sdc_deleted_at": "2024-01-01T00:00:00Z"}),
    ]
    run_target(config(sandbox, tmp_path, store_config, hard_delete=True), deleted)
    assert sandbox.contact("1") is None
    run = run_target(config(sandbox, tmp_path, store_config), users({1: "Ann", 2: "Bob"}))
    assert sandbox.contact("1")["first_name"] == "Ann"  # forgotten, so sent again
    assert summary(tmp_path)["users"]["unchanged"] == 1
    assert run.returncode == 0


def test_tag_events_are_never_skipped(sandbox, run_target, tmp_path, store_config):
    run_target(config(sandbox, tmp_path, store_config), users({1: "Ann"}))
    events = schema("events", {"id": {"type": "string"}, "tag": {"type": "string"}}, key_properties=())
    mapping = {"events": {"object": "tags", "fields": {"contact_id": "id"}, "tags": ["tag"]}}
    cfg = config(sandbox, tmp_path, store_config, mappings=mapping)
    run_target(cfg, [events, record("events", {"id": "1", "tag": "VIP"})])
    sandbox_tags = lambda: [t["name"] for t in sandbox.contact("1")["tags"]]  # noqa: E731
    assert sandbox_tags() == ["VIP"]
    remove = config(sandbox, tmp_path, store_config, mappings={"events": {**mapping["events"], "action": "remove"}})
    run_target(remove, [events, record("events", {"id": "1", "tag": "VIP"})])
    assert sandbox_tags() == []
    run_target(cfg, [events, record("events", {"id": "1", "tag": "VIP"})])  # the same add as before
    assert sandbox_tags() == ["VIP"]


def test_a_corrupted_or_missing_store_means_a_full_resend_with_a_warning(sandbox, run_target, tmp_path):
    run_target(config(sandbox, tmp_path, {}), users({1: "Ann"}))
    (tmp_path / "sent.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"sent.db{suffix}").unlink(missing_ok=True)
    count = sandbox.request_count
    run = run_target(config(sandbox, tmp_path, {}), users({1: "Ann"}))
    assert run.returncode == 0, run.stderr
    assert "is unreadable" in run.stderr and "every record is sent once this run" in run.stderr
    assert "Traceback" not in run.stderr
    assert sandbox.request_count == count + 1
    assert list(tmp_path.glob("sent.db.unreadable-*"))
    (tmp_path / "sent.db").unlink()
    run = run_target(config(sandbox, tmp_path, {}), users({1: "Ann"}))
    assert run.returncode == 0 and sandbox.request_count == count + 2


# --- a digest skips only what SegMetrics holds given everything earlier in this run ---------------------

TAGGED = schema("tagged", {"id": {"type": "integer"}, "email": {"type": "string"}, "tags": {"type": "array"}})
TAG_EVENTS = schema("tag_events", {"email": {"type": "string"}, "tag": {"type": "string"}}, key_properties=())
TAG_MAPPING = {
    "tagged": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}, "tags": ["tags"]},
    "tag_events": {"object": "tags", "action": "remove", "fields": {"email": "email"}, "tags": ["tag"]},
}


def test_a_record_equal_to_last_runs_is_sent_after_this_run_changed_the_contact(
    sandbox, run_target, tmp_path, store_config
):
    run_target(config(sandbox, tmp_path, store_config), users({1: "X"}))
    second = run_target(
        config(sandbox, tmp_path, store_config),
        [USERS, record("users", {"id": 1, "email": "u1@example.com", "name": "Y"}), *users({1: "X"})[1:]],
    )
    assert second.returncode == 0, second.stderr
    assert sandbox.contact("1")["first_name"] == "X"


def test_a_contact_deleted_and_created_again_in_one_run_is_sent(sandbox, run_target, tmp_path, store_config):
    run_target(config(sandbox, tmp_path, store_config), users({1: "X"}))
    deleted = record("users", {"id": 1, "email": "u1@example.com", "name": "X", "_sdc_deleted_at": "2024-05-01"})
    second = run_target(
        config(sandbox, tmp_path, store_config, hard_delete=True), [USERS, deleted, *users({1: "X"})[1:]]
    )
    assert second.returncode == 0, second.stderr
    assert [c["first_name"] for c in sandbox.contacts()] == ["X"]


def test_a_tag_removed_by_an_event_is_restored_by_a_later_contact_record(sandbox, run_target, tmp_path, store_config):
    cfg = config(sandbox, tmp_path, store_config, mappings=TAG_MAPPING)
    contact = record("tagged", {"id": 1, "email": "t@example.com", "tags": ["VIP"]})
    run_target(cfg, [TAGGED, contact])
    second = run_target(
        cfg, [TAGGED, TAG_EVENTS, record("tag_events", {"email": "t@example.com", "tag": "VIP"}), contact]
    )
    assert second.returncode == 0, second.stderr
    assert [t["name"] for t in sandbox.contact("1")["tags"]] == ["VIP"]


# --- an unchanged record is one whose mapping would send exactly what SegMetrics acknowledged ---------
# (recognised before it is mapped: the record, its mapping and what the mapping read besides the record)

OWNED = schema("owned", {"id": {"type": "integer"}, "email": {"type": "string"}, "owner_id": {"type": "string"}})
OWNERS = schema("owners", {"id": {"type": "string"}, "name": {"type": "string"}})
OWNED_MAPPING = {
    "owners": {"lookup": {"key": "id"}},
    "owned": {
        "fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"},
        "custom_fields": {"Owner": {"lookup": "owners", "key": "owner_id", "field": "name", "wait": False}},
    },
}


def owned_run(owner: str | None) -> list[dict]:
    """The owners stream (one row, or none), then the same contact record every run."""
    rows = [OWNERS, record("owners", {"id": "o1", "name": owner})] if owner else [OWNERS]
    return [*rows, OWNED, record("owned", {"id": 1, "email": "o@example.com", "owner_id": "o1"}), state({"n": 1})]


def owner_field(sandbox) -> str | None:
    return (sandbox.contact("1").get("custom_fields") or {}).get("Owner")


def test_an_unchanged_record_is_sent_again_when_a_lookup_row_it_reads_changed(
    sandbox, run_target, tmp_path, store_config
):
    cfg = config(sandbox, tmp_path, store_config, mappings=OWNED_MAPPING)
    for owner, sent in ((None, 1), ("Olga", 1), ("Olga", 0), ("Olga Ivanova", 1)):
        before = sandbox.request_count
        run = run_target(cfg, owned_run(owner))
        assert run.returncode == 0, run.stderr
        assert sandbox.request_count - before == sent, (owner, sandbox.requests_log()[before:])
        assert owner_field(sandbox) == owner


def test_a_renamed_hubspot_stage_renames_the_tag_of_a_contact_whose_record_did_not_change(
    sandbox, run_target, tmp_path, store_config
):
    contacts = HUBSPOT.read_text().splitlines()
    properties = (FIXTURES / "hubspot" / "meltanolabs_properties.singer").read_text().splitlines()
    renamed = [line.replace('"label":"Lead"', '"label":"Prospect"') for line in properties]
    assert renamed != properties
    presets = {"contacts": {"preset": "hubspot"}, "properties": {"preset": "hubspot"}}
    cfg = config(sandbox, tmp_path, store_config, mappings=presets)
    for props in (properties, properties, renamed):  # the properties before the contacts: nothing waits
        path = tmp_path / "input.singer"
        path.write_text("\n".join(props + contacts) + "\n")
        run = run_target(cfg, path)
        assert run.returncode == 0, run.stderr
    lead = [c for c in sandbox.contacts() if "Lifecycle: Prospect" in {t["name"] for t in c["tags"]}]
    assert len(lead) == 1, [c["tags"] for c in sandbox.contacts()]  # the one contact at the lead stage
    assert "Lifecycle: Lead" not in {t["name"] for t in lead[0]["tags"]}


def test_an_unchanged_record_is_sent_again_after_another_stream_changed_its_contact(
    sandbox, run_target, tmp_path, store_config
):
    crm = schema("crm", {"id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"}})
    mappings = {**MAPPING, "crm": MAPPING["users"]}
    cfg = config(sandbox, tmp_path, store_config, mappings=mappings)
    assert run_target(cfg, users({1: "Ann"})).returncode == 0
    assert run_target(cfg, [crm, record("crm", {"id": 1, "email": "u1@example.com", "name": "Annie"})]).returncode == 0
    assert sandbox.contact("1")["first_name"] == "Annie"
    run = run_target(cfg, users({1: "Ann"}))  # the users record as it was: SegMetrics no longer holds it
    assert run.returncode == 0, run.stderr
    assert sandbox.contact("1")["first_name"] == "Ann"


def test_an_unchanged_record_still_counts_the_values_its_mapping_leaves_out(
    sandbox, run_target, tmp_path, store_config
):
    people = schema("people", {"id": {"type": "integer"}, "email": {"type": "string"}, "age": {"type": "string"}})
    mappings = {
        "people": {
            "fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"},
            "custom_fields": {"Age": {"path": "age", "transform": "integer", "on_invalid": "drop"}},
        }
    }
    cfg = config(sandbox, tmp_path, store_config, mappings=mappings)
    messages = [people, record("people", {"id": 1, "email": "p@example.com", "age": "forty"}), state({"n": 1})]
    for unchanged in (0, 1):
        run = run_target(cfg, messages)
        assert run.returncode == 0, run.stderr
        counts = summary(tmp_path)["people"]
        assert (counts["unchanged"], counts["dropped_by_field"]) == (unchanged, {"custom_fields.Age": 1}), counts
        assert "1 value left out (on_invalid: drop; custom_fields.Age: 1)" in run.stderr


def test_a_record_recognised_unchanged_still_supersedes_an_older_one_that_waits(
    sandbox, run_target, tmp_path, store_config
):
    waits = {"owners": OWNED_MAPPING["owners"], "owned": {**OWNED_MAPPING["owned"]}}
    waits["owned"]["custom_fields"] = {"Owner": {"lookup": "owners", "key": "owner_id", "field": "name"}}
    cfg = config(sandbox, tmp_path, store_config, mappings=waits)
    contact = {"id": 1, "email": "o@example.com", "owner_id": "o1"}
    olga = [OWNERS, record("owners", {"id": "o1", "name": "Olga"})]
    assert run_target(cfg, [*olga, OWNED, record("owned", contact)]).returncode == 0
    moved = run_target(cfg, [OWNED, record("owned", {**contact, "owner_id": "o2"})])  # o2's row never came
    assert moved.returncode == 0, moved.stderr
    assert "parked" in moved.stderr and owner_field(sandbox) == "Olga"
    # Next run: the contact as it was first (newer than the one waiting), then o2's row after all.
    back = run_target(cfg, [OWNED, record("owned", contact), OWNERS, record("owners", {"id": "o2", "name": "Oscar"})])
    assert back.returncode == 0, back.stderr
    assert summary(tmp_path)["owned"]["unchanged"] == 1
    assert owner_field(sandbox) == "Olga"  # the newest record wins: the one waiting was superseded
