"""What waits, and for how long: park times, releases under skip_unchanged, lookups that wait for a
stream listed later in the run, and digests another run wrote while this one ran."""

from __future__ import annotations

import json
import subprocess
import time

from helpers import (
    FIXTURES,
    base_config,
    held,
    record,
    rejected,
    schema,
    singer_text,
    state,
    target_executable,
)

HUBSPOT = FIXTURES / "hubspot"
INVOICES = schema("invoices", {"id": {"type": "string"}, "contact": {"type": "string"}, "total": {"type": "integer"}})
INVOICE_MAPPING = {
    "invoices": {
        "object": "invoice",
        "fields": {
            "id": "id",
            "contact_id": "contact",
            "amount": "total",
            "paid": "total",
            "date_created": {"value": "2024-04-01"},
        },
        "items": {"fields": {"name": {"value": "Plan"}, "product_id": {"value": "plan"}, "amount": "total"}},
    }
}


def test_a_record_replacing_a_parked_one_is_aged_from_its_own_park_time(sandbox, run_target, tmp_path, store_config):
    rejects = tmp_path / "rejects.jsonl"
    cfg = base_config(sandbox, mappings=INVOICE_MAPPING, rejects_path=str(rejects), **store_config)
    first = run_target(cfg, [INVOICES, record("invoices", {"id": "7", "contact": "c1", "total": 100})])
    assert first.returncode == 0 and "1 record parked" in first.stderr
    time.sleep(3)  # v1 is 3 s old when v2 replaces it; v2 is released within a fraction of a second
    second = run_target(
        {**cfg, "park_max_age_days": 1.5 / 86400},
        [INVOICES, record("invoices", {"id": "7", "contact": "c1", "total": 200})],
    )
    assert second.returncode == 0, second.stderr
    assert rejected(rejects) == {}
    assert "1 record parked, waiting for their contact" in second.stderr


LEGACY_MAPPINGS = {"contacts": {"preset": "hubspot"}, "contact_lists": {"preset": "hubspot"}}


def legacy_contacts_and_lists_without_their_names(tmp_path):
    """singer-io 2.x contacts (lists inline) and a contact_lists stream that names none of their lists."""
    lines = (HUBSPOT / "singerio_legacy_contacts.singer").read_text().splitlines()
    lists = [
        line
        for line in (HUBSPOT / "singerio_contact_lists.singer").read_text().splitlines()
        if json.loads(line)["type"] == "SCHEMA"
    ]
    path = tmp_path / "legacy-unnamed.singer"
    path.write_text("\n".join(lines + lists) + "\n")
    return path


def test_an_unchanged_release_leaves_the_store_and_is_never_rejected_after_waiting(
    sandbox, run_target, tmp_path, store_config
):
    rejects = tmp_path / "rejects.jsonl"
    cfg = base_config(sandbox, mappings=LEGACY_MAPPINGS, skip_unchanged=True, rejects_path=str(rejects), **store_config)
    path = legacy_contacts_and_lists_without_their_names(tmp_path)
    first = run_target(cfg, path)
    assert first.returncode == 0, first.stderr
    tagged = held(sandbox)
    assert "HubSpot list: 12" in tagged["74251"]["tags"]  # the list's id: its name never came
    second = run_target(cfg, path)  # the same input: every release is unchanged
    assert second.returncode == 0, second.stderr
    assert "parked, waiting" not in second.stderr
    later = run_target({**cfg, "park_max_age_days": 0}, [])
    assert later.returncode == 0, later.stderr
    assert rejected(rejects) == {}
    assert held(sandbox) == tagged


def test_a_meltanolabs_custom_stage_waits_for_the_properties_stream_later_in_the_run(sandbox, run_target, tmp_path):
    # The tap emits streams in name order: contacts before properties (the stages' labels).
    path = tmp_path / "contacts-then-properties.singer"
    path.write_text(
        (HUBSPOT / "meltanolabs_incremental_contacts.singer").read_text()
        + (HUBSPOT / "meltanolabs_properties.singer").read_text()
    )
    mappings = {"contacts": {"preset": "hubspot"}, "properties": {"preset": "hubspot"}}
    run = run_target(base_config(sandbox, mappings=mappings), path)
    assert run.returncode == 0, run.stderr
    stages = [t for t in held(sandbox)["74253"]["tags"] if t.startswith("Lifecycle: ")]
    assert stages == ["Lifecycle: Product trial"]


USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"}})
USER_MAPPING = {
    "users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email", "first_name": "name"}}
}


def user(i: int, name: str) -> dict:
    return record("users", {"id": i, "email": f"u{i}@example.com", "name": name})


def test_skip_unchanged_sees_a_change_an_overlapping_run_wrote(sandbox, run_target, tmp_path, store_config):
    cfg = base_config(sandbox, mappings=USER_MAPPING, skip_unchanged=True, **store_config)
    assert run_target(cfg, [USERS, user(1, "Ann"), user(2, "Bob")]).returncode == 0
    path = tmp_path / "overlapping.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen(
        [target_executable(), "--config", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(singer_text([USERS, user(2, "Bob"), state({"step": 1})]))
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {"step": 1}  # run A read the store for user 2
        # Run B, while A runs: user 1 renamed.
        assert run_target(cfg, [USERS, user(1, "Anna")]).returncode == 0
        assert sandbox.contact("1")["first_name"] == "Anna"
        # Then A's record for user 1 says "Ann" again: newer than B's, so it is sent.
        _, err = proc.communicate(singer_text([user(1, "Ann"), state({"step": 2})]), timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert sandbox.contact("1")["first_name"] == "Ann"
