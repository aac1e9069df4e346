"""Mapping: each source form, what is sent, and what is refused (unit tests, no HTTP)."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from target_segmetrics.mapping.compiler import by_name, compile_entry
from target_segmetrics.mapping.presets import PRESETS
from target_segmetrics.mapping.sources import MISSING, MappingConfigError, compile_source
from target_segmetrics.mapping.values import ValueProblem, to_segmetrics_datetime
from target_segmetrics.mapping.wire import Request


def entry(**kwargs):
    return compile_entry("contacts", kwargs, PRESETS)


def payload_of(mapping, record):
    mapped = mapping.map(record)
    assert not mapped.problems, mapped.problems
    return mapped.payload


# --- sources -----------------------------------------------------------------------------------


def test_path_walks_objects_and_lists():
    record = {"properties": {"email": "a@b.co"}, "emails": [{"v": "x@y.z"}, {"v": "second@y.z"}]}
    assert compile_source("properties.email", "t")(record) == "a@b.co"
    assert compile_source("emails.1.v", "t")(record) == "second@y.z"
    assert compile_source("emails.-1.v", "t")(record) == "second@y.z"
    assert compile_source("emails.7.v", "t")(record) is MISSING
    assert compile_source("properties.nothing", "t")(record) is MISSING
    assert compile_source("properties.email.deeper", "t")(record) is MISSING


def test_path_finds_flattened_keys():
    flat = {"properties__email": "flat@b.co", "a__b__c": 3}
    assert compile_source("properties.email", "t")(flat) == "flat@b.co"
    assert compile_source("a.b.c", "t")(flat) == 3
    partly = {"a__b": {"c": 4}}
    assert compile_source("a.b.c", "t")(partly) == 4


def test_list_of_sources_first_non_empty_wins():
    source = compile_source(["missing", "blank", "none", "found", "later"], "t")
    assert source({"blank": "  ", "none": None, "found": "yes", "later": "no"}) == "yes"
    assert source({}) is MISSING


def test_constant_and_default():
    assert compile_source({"value": "Imported"}, "t")({}) == "Imported"
    assert compile_source({"value": None}, "t")({}) is None
    source = compile_source({"path": "stage", "default": "unknown"}, "t")
    assert source({"stage": "lead"}) == "lead"
    assert source({"stage": ""}) == "unknown"
    assert source({}) == "unknown"


def test_map_matches_values_the_way_a_person_writes_them():
    source = compile_source({"path": "optout", "map": {"true": "inactive", "false": "active"}}, "t")
    assert source({"optout": True}) == "inactive"
    assert source({"optout": "false"}) == "active"
    numbers = compile_source({"path": "n", "map": {"1": "one", "2.5": "two and a half"}}, "t")
    assert numbers({"n": 1}) == "one"
    assert numbers({"n": decimal.Decimal("1.0")}) == "one"
    assert numbers({"n": 2.5}) == "two and a half"
    assert numbers({"n": 3}) == 3  # unmatched values pass through
    fallback = compile_source({"path": "n", "map": {"1": "one", "*": None}}, "t")
    assert fallback({"n": 3}) is MISSING  # "*": null drops what the table does not know


def test_split_transform_map_format_in_order():
    source = compile_source(
        {
            "path": "interests",
            "split": ";",
            "transform": ["strip", "lower"],
            "map": {"ebooks": "E-books"},
            "format": "Interest: {}",
        },
        "t",
    )
    assert source({"interests": " Webinars ; EBOOKS;;"}) == ["Interest: webinars", "Interest: E-books"]
    assert source({"interests": ""}) is MISSING


def test_url_params_come_from_each_records_own_url():
    source = {"path": "url", "transform": "url_param:utm_source"}
    mapping = entry(
        object="contact",
        fields={"email": "email", "utm_source": source, "utm_medium": {**source, "transform": "url_param:utm_medium"}},
    )
    first = {"email": "a@b.co", "url": " https://x.example/p?utm_source=fb&utm_medium=cpc#top"}
    second = {"email": "c@d.co", "url": "https://x.example/p?utm_source=news"}
    for _ in range(2):  # the same URLs again read the same
        assert payload_of(mapping, first) == {"email": "a@b.co", "utm_source": "fb", "utm_medium": "cpc"}
        assert payload_of(mapping, second) == {"email": "c@d.co", "utm_source": "news"}


def test_cents_is_exact_and_half_up():
    cents = compile_source({"path": "amount", "transform": "cents"}, "t")
    assert cents({"amount": "19.99"}) == 1999
    assert cents({"amount": decimal.Decimal("0.005")}) == 1
    assert cents({"amount": 1500}) == 150000
    assert cents({"amount": "1,500.00"}) == 150000
    with pytest.raises(ValueProblem, match="a comma only separates thousands"):
        cents({"amount": "1,50"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "non-empty"),
        ("a..b", "empty segment"),
        ([], "empty list"),
        (42, "a source is"),
        ({"path": "a", "value": 1}, "exactly one of"),
        ({"pth": "a"}, "unknown key(s) pth"),
        ({"path": "a", "transform": "shout"}, "unknown transform 'shout'"),
        ({"path": "a", "format": "no placeholder"}, "containing {}"),
        ({"path": "a", "split": ""}, "delimiter"),
        ({"path": "a", "map": ["x"]}, "map: must be an object"),
        ({"lookup": "lists", "key": "id", "field": "name", "wait": "later"}, 'must be true, false or "run"'),
        ({"lookup": "lists", "key": "id", "field": "name", "wait": 1}, 'must be true, false or "run"'),
    ],
)
def test_malformed_sources_are_config_errors(spec, message):
    with pytest.raises(MappingConfigError) as exc:
        compile_source(spec, "mappings.contacts.fields.email")
    assert "mappings.contacts.fields.email" in str(exc.value)
    assert message in str(exc.value)


# --- entries -----------------------------------------------------------------------------------


def test_entry_errors_name_the_place():
    with pytest.raises(MappingConfigError, match=r"mappings\.contacts\.object: unknown object 'order'"):
        entry(object="order", fields={"email": "e"})
    with pytest.raises(MappingConfigError, match=r"mappings\.contacts\.fields\.mail: contact has no field 'mail'"):
        entry(fields={"mail": "e"})
    with pytest.raises(MappingConfigError, match=r"tags_mode: must be one of replace, add"):
        entry(fields={"email": "e"}, tags_mode="merge")
    with pytest.raises(MappingConfigError, match=r"unknown preset 'salesforce'"):
        entry(preset="salesforce")
    with pytest.raises(MappingConfigError, match=r"unknown key\(s\) field"):
        entry(field={"email": "e"})
    with pytest.raises(MappingConfigError, match=r"map at least one of contact_id, email"):
        entry(fields={"first_name": "f"})


def test_a_tag_object_with_each_gives_one_tag_per_element_of_a_list():
    mapping = entry(
        fields={"contact_id": "vid"},
        tags=[{"each": "lists", "tag": {"name": {"path": "id", "format": "List {}"}, "date": "at"}}],
    )
    record = {"vid": 7, "lists": [{"id": 12, "at": "2024-02-14T16:06:12Z"}, {"id": 14}, {"other": 1}]}
    assert payload_of(mapping, record)["tags"] == [
        {"name": "List 12", "date": "2024-02-14 16:06:12"},
        {"name": "List 14"},
    ]
    flattened = {"vid": 7, "lists": '[{"id": 12}]'}  # what the SDK's flattening makes of the list
    assert payload_of(mapping, flattened)["tags"] == [{"name": "List 12"}]
    assert "tags" not in payload_of(mapping, {"vid": 7, "lists": []})
    mapped = mapping.map({"vid": 7, "lists": ["12", "14"]})
    assert [str(p) for p in mapped.problems] == ["tags[0]: expected a list of objects (each)"]
    with pytest.raises(MappingConfigError, match=r"tags\[0\]\.tag: a tag object maps some of id, name, date"):
        entry(fields={"vid": "vid"}, tags=[{"each": "lists", "tag": {"label": "id"}}])
    with pytest.raises(MappingConfigError, match=r"tags\[0\]\.each: .*empty segment"):
        entry(fields={"vid": "vid"}, tags=[{"each": "a..b", "tag": {"name": "id"}}])


def test_contact_payload_converts_values():
    mapping = entry(
        fields={
            "contact_id": "id",
            "email": "email",
            "first_name": "first",
            "date_created": "created",
            "last_updated": "updated",
            "geo_lat": "lat",
            "status": "active",
        }
    )
    record = {
        "id": 249,
        "email": " joey@bloggs.com ",
        "first": "Joey",
        "created": "2018-10-02T18:15:00.381+02:00",
        "updated": 1543397322000,
        "lat": decimal.Decimal("45.523064"),
        "active": False,
    }
    assert payload_of(mapping, record) == {
        "contact_id": 249,
        "email": "joey@bloggs.com",
        "first_name": "Joey",
        "date_created": "2018-10-02 16:15:00",
        "last_updated": "2018-11-28 09:28:42",
        "geo_lat": "45.523064",
        "status": "inactive",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-02-14T16:05:12.381Z", "2024-02-14 16:05:12"),
        ("2024-02-14T16:05:12.381000Z", "2024-02-14 16:05:12"),
        ("2024-02-14T18:05:12+02:00", "2024-02-14 16:05:12"),
        ("2024-02-14 16:05:12", "2024-02-14 16:05:12"),
        ("2024-02-14", "2024-02-14 00:00:00"),
        (1707926712381, "2024-02-14 16:05:12"),
        ("1707926712381", "2024-02-14 16:05:12"),
        (1707926712, "2024-02-14 16:05:12"),
        (dt.datetime(2024, 2, 14, 16, 5, 12, tzinfo=dt.timezone.utc), "2024-02-14 16:05:12"),
        (dt.date(2024, 2, 14), "2024-02-14 00:00:00"),
        ("20240214", "2024-02-14 00:00:00"),
        (20240214, "2024-02-14 00:00:00"),
    ],
)
def test_dates_become_segmetrics_format_in_utc(value, expected):
    assert to_segmetrics_datetime(value) == expected


def test_missing_or_null_sources_send_nothing():
    mapping = entry(fields={"email": "email", "first_name": "first", "last_name": "last"})
    assert payload_of(mapping, {"email": "a@b.co", "first": None, "last": ""}) == {"email": "a@b.co"}


def test_tags_strings_ids_objects_dropping_empties_and_duplicates():
    mapping = entry(
        fields={"email": "email"},
        tags=[
            {"path": "stage", "format": "Lifecycle: {}"},
            {"path": "interests", "split": ";"},
            "tag_ids",
            "tag_objects",
            {"value": "HubSpot import"},
        ],
    )
    record = {
        "email": "a@b.co",
        "stage": "lead",
        "interests": "webinars;;Webinars; ebooks",
        "tag_ids": [3, 3, None],
        "tag_objects": [{"id": 8, "name": "Platinum", "date": "2018-11-28T09:28:42Z"}, {"name": ""}],
    }
    assert payload_of(mapping, record)["tags"] == [
        "Lifecycle: lead",
        "webinars",
        "ebooks",
        3,
        {"id": 8, "name": "Platinum", "date": "2018-11-28 09:28:42"},
        "HubSpot import",
    ]


def test_no_tags_leaves_the_contacts_tags_alone():
    mapping = entry(fields={"email": "email"}, tags=["stage"])
    assert "tags" not in payload_of(mapping, {"email": "a@b.co", "stage": None})


def test_tags_mode_add_sends_contact_then_tags_add():
    mapping = entry(fields={"email": "email", "contact_id": "id"}, tags=["stage"], tags_mode="add")
    mapped = mapping.map({"email": "a@b.co", "id": "7", "stage": "lead"})
    assert mapped.requests == [
        Request("POST", "contact", {"contact_id": "7", "email": "a@b.co"}),
        Request("POST", "tags/add", {"contact_id": "7", "tags": ["lead"]}),
    ]


def test_custom_fields_skip_missing_and_remove_with_constant_null():
    mapping = entry(
        fields={"email": "email"},
        custom_fields={"Company": "company", "Phone": "phone", "Old field": {"value": None}, "Score": "score"},
    )
    payload = payload_of(
        mapping, {"email": "a@b.co", "company": "Acme", "phone": None, "score": decimal.Decimal("4.5")}
    )
    assert payload["custom_fields"] == {"Company": "Acme", "Old field": None, "Score": 4.5}


def test_problems_name_the_field():
    mapping = entry(
        fields={"email": "email", "status": "status", "date_created": "created"},
        custom_fields={"List": "list"},
    )
    mapped = mapping.map({"email": "not-an-email", "status": "paused", "created": "yesterday", "list": [1, 2]})
    assert [p.field for p in mapped.problems] == ["email", "status", "date_created", "custom_fields.List"]
    assert mapped.requests == []
    assert "is not an email address" in str(mapped.problems[0])
    assert "not one of active, inactive" in str(mapped.problems[1])


def test_record_without_email_or_contact_id_is_a_problem():
    mapping = entry(fields={"email": "email", "first_name": "first"})
    mapped = mapping.map({"first": "Nobody"})
    assert [str(p) for p in mapped.problems] == [
        "contact_id or email: missing: SegMetrics needs one of them to match the contact"
    ]


def test_numbers_where_text_belongs_are_written_out_but_objects_are_refused():
    mapping = entry(fields={"email": "email", "affiliate_id": "aff", "first_name": "first"})
    assert payload_of(mapping, {"email": "a@b.co", "aff": 123})["affiliate_id"] == "123"
    mapped = mapping.map({"email": "a@b.co", "first": {"nested": "x"}})
    assert [str(p) for p in mapped.problems] == ["first_name: expected text, got an object"]


def test_preset_keys_are_overridden_by_the_entry():
    mapping = entry(preset="hubspot", fields={"first_name": "nick", "utm_source": None}, tags_mode="add")
    assert "utm_source" not in mapping.fields
    assert mapping.tags_mode == "add"
    payload = payload_of(mapping, {"id": "1", "nick": "Al", "properties": {"email": "al@x.io", "firstname": "Albert"}})
    assert payload["first_name"] == "Al"


def test_name_matching_without_mappings():
    schema = {"properties": {"id": {}, "email": {}, "first_name": {}, "favourite_colour": {}, "tags": {}}}
    mapping = by_name("users", schema)
    assert mapping is not None
    payload = payload_of(
        mapping, {"id": 1, "email": "a@b.co", "first_name": "A", "favourite_colour": "red", "tags": ["x"]}
    )
    assert payload == {"email": "a@b.co", "first_name": "A", "tags": ["x"]}
    assert by_name("orders", {"properties": {"id": {}, "total": {}}}) is None
