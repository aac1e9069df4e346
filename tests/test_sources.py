"""Sources and schemas read flattened keys by one rule: ``a.b`` also finds ``a__b`` (unit tests, no HTTP)."""

from __future__ import annotations

import pytest

from target_segmetrics.sources import MISSING, compile_source, schema_has_path

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
