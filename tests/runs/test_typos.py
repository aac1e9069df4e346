"""Typos stop the run before anything is sent, naming the typo and what was probably meant."""

from __future__ import annotations

import pytest
from helpers import FIXTURES, base_config, record, schema, state

CONTACTS = schema(
    "contacts",
    {
        "id": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "profile": {"type": "object", "properties": {"given": {"type": "string"}}},
        "extra": {"type": "object"},  # open: any key may be there
    },
)


def contacts() -> list[dict]:
    return [
        CONTACTS,
        record("contacts", {"id": "1", "email": "a@example.com", "profile": {"given": "Ann"}, "extra": {"x": "1"}}),
        state({"done": 1}),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"contact_id": "id", "email": "emial"}, "fields.email reads 'emial'"),
        ({"contact_id": "id", "first_name": "profile.givn"}, "(did you mean 'profile.given'?)"),
        ({"contact_id": "id", "email": ["mail", "e_mail"]}, "reads 'mail' or 'e_mail'"),
    ],
)
def test_a_path_the_schema_does_not_declare_stops_the_run(sandbox, run_target, fields, message):
    run = run_target(base_config(sandbox, mappings={"contacts": {"fields": fields}}), contacts())
    assert run.returncode == 1
    assert [line for line in run.errors if message in line]
    assert sandbox.request_count == 0
    assert run.stdout == ""


@pytest.mark.parametrize(
    "fields",
    [
        {"contact_id": "id", "email": ["mail", "email"]},  # one alternative exists
        {"contact_id": "id", "email": "email", "custom_fields": None, "first_name": "extra.given_name"},  # open
        {"contact_id": "id", "email": {"path": "email", "transform": "lower"}, "first_name": "profile.given"},
    ],
)
def test_paths_that_can_exist_are_fine(sandbox, run_target, fields):
    fields = {k: v for k, v in fields.items() if k != "custom_fields"}
    run = run_target(base_config(sandbox, mappings={"contacts": {"fields": fields}}), contacts())
    assert run.returncode == 0, run.stderr
    assert sandbox.contact("1")["email"] == "a@example.com"


def test_a_presets_own_alternatives_never_fail(sandbox, run_target):
    # The hubspot preset reads paths of every tap variant; a recording of one variant lacks the others'.
    config = base_config(sandbox, mappings={"contacts": {"preset": "hubspot"}})
    run = run_target(config, FIXTURES / "hubspot" / "singerio_legacy_contacts.singer")
    assert run.returncode == 0, run.stderr
    assert len(sandbox.contacts()) == 6


def test_a_typo_in_an_override_of_a_preset_fails(sandbox, run_target):
    mappings = {"contacts": {"preset": "hubspot", "custom_fields": {"plan": "propertis.plan"}}}
    run = run_target(base_config(sandbox, mappings=mappings), FIXTURES / "hubspot" / "meltanolabs_contacts.singer")
    assert run.returncode == 1
    assert [line for line in run.errors if "custom_fields.plan reads 'propertis.plan'" in line]


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("mapping", "mappings"), ("max_concurency", "max_concurrency"), ("api_kee", "api_key")],
)
def test_an_unknown_setting_stops_the_run_naming_what_was_meant(sandbox, run_target, typo, meant):
    config = base_config(sandbox, **{typo: {"contacts": {"fields": {"email": "email"}}} if typo == "mapping" else 8})
    run = run_target(config, contacts())
    assert run.returncode == 1
    assert [line for line in run.errors if f"unknown setting '{typo}' (did you mean '{meant}'?)" in line]
    assert sandbox.request_count == 0


def test_settings_the_sdk_adds_are_known(sandbox, run_target):
    config = base_config(sandbox, flattening_enabled=False, add_record_metadata=False, batch_size_rows=100, _note="x")
    run = run_target(config, contacts())
    assert run.returncode == 0, run.stderr


def test_an_unmapped_stream_can_stop_the_run(sandbox, run_target):
    orders = schema("orders", {"id": {"type": "string"}})
    messages = [*contacts(), orders, record("orders", {"id": "o1"}), state({"done": 2})]
    mappings = {"contacts": {"fields": {"contact_id": "id", "email": "email"}}}
    skipped = run_target(base_config(sandbox, mappings=mappings), messages)
    assert skipped.returncode == 0, skipped.stderr
    assert [line for line in skipped.warnings if "'orders'" in line and "NOT sent" in line]
    assert skipped.states[-1] == {"done": 2}

    failed = run_target(base_config(sandbox, mappings=mappings, on_unmapped_stream="fail"), messages)
    assert failed.returncode == 1
    assert [line for line in failed.errors if "stream 'orders' is not listed in 'mappings'" in line]
    assert failed.states == [{"done": 1}]  # the STATE before the unmapped stream, not past it


def test_a_typo_in_a_lookup_streams_key_stops_the_run(sandbox, run_target):
    # A misspelt key in a lookup source's declaration found no key in any row: every row was lost
    # and each record looking one up waited (parked) for a row that never came, in a clean run.
    owners = schema("owners", {"user_id": {"type": "string"}, "name": {"type": "string"}})
    mappings = {
        "owners": {"lookup": {"key": "user_idd"}},
        "contacts": {
            "fields": {"contact_id": "id", "email": "email"},
            "custom_fields": {"owner": {"lookup": "owners", "key": "id", "field": "name"}},
        },
    }
    messages = [owners, record("owners", {"user_id": "1", "name": "Olga"}), *contacts()]
    run = run_target(base_config(sandbox, mappings=mappings), messages)
    assert run.returncode == 1
    assert [line for line in run.errors if "mappings.owners.lookup.key reads 'user_idd'" in line], run.errors
    assert "did you mean 'user_id'" in run.stderr
    assert sandbox.request_count == 0
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("require", "message"),
    [
        (
            [{"paths": ["profile.company", "company"], "why": "accounts are segmented by company"}],
            "mappings.contacts: accounts are segmented by company (stream 'contacts' declares none of "
            "profile.company, company)",
        ),
        ("company", 'mappings.contacts.require: must be a list of {"paths"'),
        ([{"paths": ["company"]}], 'mappings.contacts.require[0]: must be a list of {"paths"'),
    ],
    ids=["unmet", "not-a-list", "no-why"],
)
def test_a_required_path_the_schema_does_not_declare_stops_the_run_with_the_reason(
    sandbox, run_target, require, message
):
    mappings = {"contacts": {"fields": {"contact_id": "id", "email": "email"}, "require": require}}
    run = run_target(base_config(sandbox, mappings=mappings), contacts())
    assert run.returncode == 1
    assert [line for line in run.errors if message in line], run.errors
    assert sandbox.request_count == 0


def test_a_required_path_the_schema_declares_lets_the_run_go_on(sandbox, run_target):
    require = [{"paths": ["profile.given"], "why": "first names are needed"}]
    mappings = {"contacts": {"fields": {"contact_id": "id", "email": "email"}, "require": require}}
    run = run_target(base_config(sandbox, mappings=mappings), contacts())
    assert run.returncode == 0, run.errors
    assert [c["email"] for c in sandbox.contacts()] == ["a@example.com"]


def test_a_typo_in_an_each_list_is_named_once_not_again_for_each_part_of_the_tag(sandbox, run_target):
    lists = {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
    people = schema("people", {"id": {"type": "string"}, "email": {"type": "string"}, "lists": lists})
    tags = [{"each": "listz", "tag": {"name": "name"}}]
    mappings = {"people": {"fields": {"contact_id": "id", "email": "email"}, "tags": tags}}
    run = run_target(base_config(sandbox, mappings=mappings), [people])
    assert run.returncode == 1
    assert "mappings.people.tags[0].each reads 'listz'" in run.stderr and "(did you mean 'lists'?)" in run.stderr
    assert "in each element of 'listz'" not in run.stderr, run.errors
    assert sandbox.request_count == 0
