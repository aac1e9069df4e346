"""Sources and schemas read flattened keys by one rule: ``a.b`` also finds ``a__b`` (unit tests, no HTTP)."""

from __future__ import annotations

import pytest

from target_segmetrics.mapping.paths import schema_has_path
from target_segmetrics.mapping.sources import MISSING, MappingConfigError, compile_source

FLAT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "properties__email": {"type": ["string", "null"]},
        "a__b": {"type": "object", "properties": {"c": {"type": "integer"}}},
        "emails": {"type": "array", "items": {"type": "object", "properties": {"v": {"type": "string"}}}},
        "owner": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"name": {"type": "string"}}}]},
    },
}
FLAT_RECORD = {
    "id": 1,
    "properties__email": "a@b.co",
    "a__b": {"c": 4},
    "emails": [{"v": "x@y.z"}],
    "owner": {"name": "O"},
}


@pytest.mark.parametrize("path", ["properties.email", "a.b.c", "emails.0.v", "owner.name", "id"])
def test_a_path_the_record_walk_finds_is_one_the_schema_declares(path):
    assert compile_source(path, "t")(FLAT_RECORD) is not MISSING
    assert schema_has_path(FLAT_SCHEMA, path)


@pytest.mark.parametrize("path", ["properties.emial", "a.c", "emails.0.w", "owner.nmae", "a__b.d"])
def test_a_path_that_names_nothing_is_undeclared(path):
    assert compile_source(path, "t")(FLAT_RECORD) is MISSING
    assert not schema_has_path(FLAT_SCHEMA, path)


def test_the_widest_flattened_key_is_taken_first_in_a_schema():
    schema = {"properties": {"a__b": {"properties": {"x": {}}}, "a__b__c": {"type": "string"}}}
    assert compile_source("a.b.c", "t")({"a__b": {"x": 1}, "a__b__c": "found"}) == "found"
    assert schema_has_path(schema, "a.b.c")
    assert schema_has_path(schema, "a.b.x")
    assert not schema_has_path(schema, "a.b.d")


def test_open_schemas_give_the_benefit_of_the_doubt():
    assert schema_has_path({"type": "object"}, "anything.at.all")
    assert schema_has_path({"properties": {"o": {"type": "object", "additionalProperties": True}}}, "o.k")


# --- where and field: elements of a list ------------------------------------------------------------


CHANGE = {
    "recipient": "zoe@example.de",
    "stage": "1034567",
    "changes": [
        {"changeType": "SUBSCRIPTION_STATUS", "change": "UNSUBSCRIBED", "subscriptionId": 7},
        {"changeType": "PORTAL_STATUS", "change": "UNSUBSCRIBED"},
    ],
    "options": [{"value": "lead", "label": "Lead"}, {"value": "1034567", "label": "Product trial"}],
}


def test_where_keeps_the_matching_elements_and_field_reads_each():
    portal = {"path": "changes", "where": {"field": "changeType", "in": ["PORTAL_STATUS"]}, "field": "change"}
    assert compile_source(portal, "t")(CHANGE) == ["UNSUBSCRIBED"]
    mapped = {**portal, "map": {"UNSUBSCRIBED": "inactive"}}
    assert compile_source(mapped, "t")(CHANGE) == ["inactive"]
    none = {"path": "changes", "where": {"field": "changeType", "in": ["PORTAL_SPAM"]}, "field": "change"}
    assert compile_source(none, "t")(CHANGE) is MISSING
    label = {"path": "options", "where": {"field": "value", "is": "stage"}, "field": "label", "format": "Lifecycle: {}"}
    assert compile_source(label, "t")(CHANGE) == ["Lifecycle: Product trial"]
    assert compile_source(label, "t")({**CHANGE, "stage": "other"}) is MISSING
    every = {"path": "options", "field": "label"}
    assert compile_source(every, "t")(CHANGE) == ["Lead", "Product trial"]
    flattened = {**CHANGE, "options": '[{"value": "lead", "label": "Lead"}]'}  # the SDK's flattening
    assert compile_source(every, "t")(flattened) == ["Lead"]


@pytest.mark.parametrize(
    "bad",
    [
        {"field": "changeType"},
        {"field": "changeType", "in": "PORTAL_STATUS"},
        {"field": "changeType", "in": ["A"], "is": "x"},
        {"in": ["A"]},
        {"field": "a", "in": ["A"], "like": "x"},
    ],
)
def test_a_malformed_where_is_a_config_error_naming_its_place(bad):
    from target_segmetrics.mapping.sources import MappingConfigError

    with pytest.raises(MappingConfigError, match=r"mappings\.x\.fields\.status\.where: must be"):
        compile_source({"path": "changes", "where": bad}, "mappings.x.fields.status")


@pytest.mark.parametrize(
    ("when", "says"),
    [("0.0", False), ("0", False), ("2", True), ("no", False), ({"value": False}, False), ({"value": "yes"}, True)],
)
def test_when_reads_numbers_as_text_and_an_older_hubspot_wrapper_as_its_value(when, says):
    # "0.0" counted as yes while 0.0 counted as no; singer-io 2.x/3.x's {"value": false} counted as yes.
    plan = compile_source({"path": "plan", "when": "paid"}, "t")
    assert (plan({"plan": "pro", "paid": when}) == "pro") is says


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"field": "kind", "in": []}, r"t\.where\.in: an empty list keeps no element"),
        ({"field": "kind", "not_in": []}, r"t\.where\.not_in: an empty list refuses none"),
        ({"field": "kind", "in": [10**41]}, r"t\.where\.in: .* is too large"),
    ],
)
def test_a_where_that_cannot_match_as_written_is_a_config_error_naming_its_place(where, message):
    with pytest.raises(MappingConfigError, match=message):
        compile_source({"path": "lists", "where": where}, "t")
