"""Review 4: the schema check of record paths stops runs whose config and schema are fine.

Each test maps one stream with a path its records do hold, under a schema a real tap emits; the
README says of the check "any doubt says yes", yet the run stops before the stream's first record.
"""

from __future__ import annotations

from target_segmetrics.config.settings import load


def route_error(mappings: dict, stream: str, properties: dict) -> str | None:
    config = {"api_key": "k", "account_id": "a", "integration_id": "i", "api_url": "http://127.0.0.1:9"}
    settings = load(config | {"mappings": mappings})
    return settings.route(stream, {"type": "object", "properties": properties}).error


def test_a_path_into_the_second_option_of_an_anyof_is_not_a_typo():
    # The user sees: "Stopping before any record of stream 'people' is sent: mappings.people.fields.email
    # reads 'owner.0.email', which stream 'people' does not declare" for an owner the schema declares as
    # an object or a list of objects. schema_has_path (paths.py) follows only the first non-null option.
    owner = {"type": "object", "properties": {"email": {"type": "string"}}}
    properties = {
        "id": {"type": "string"},
        "owner": {"anyOf": [owner, {"type": "array", "items": owner}, {"type": "null"}]},
    }
    mapping = {"people": {"fields": {"contact_id": "id", "email": "owner.0.email"}}}
    assert route_error(mapping, "people", properties) is None


def test_a_path_read_in_each_element_whose_items_are_anyof_objects():
    # The user sees the run stop on "'sku' in each element of 'lines'" though the schema's second kind
    # of line declares sku (paths.py: schema_has_path takes the first anyOf option only).
    properties = {
        "id": {"type": "string"},
        "lines": {
            "type": ["array", "null"],
            "items": {
                "anyOf": [
                    {"type": "object", "properties": {"note": {"type": "string"}}},
                    {"type": "object", "properties": {"sku": {"type": "string"}}},
                ]
            },
        },
    }
    mapping = {"people": {"fields": {"contact_id": "id"}, "tags": [{"each": "lines", "tag": {"name": "sku"}}]}}
    assert route_error(mapping, "people", properties) is None


def test_a_key_matching_patternproperties_is_declared():
    # The user sees "mappings.people.custom_fields.Plan reads 'metadata.c_plan', which stream 'people'
    # does not declare" for a key the schema's patternProperties declare; additionalProperties is
    # allowed, patternProperties is not (paths.py schema_has_path).
    properties = {
        "id": {"type": "string"},
        "metadata": {
            "type": ["object", "null"],
            "properties": {"source": {"type": "string"}},
            "patternProperties": {"^c_": {"type": "string"}},
        },
    }
    mapping = {"people": {"fields": {"contact_id": "id"}, "custom_fields": {"Plan": "metadata.c_plan"}}}
    assert route_error(mapping, "people", properties) is None


def test_an_object_declared_with_empty_properties_is_open():
    # singer-io taps declare free-form objects as {"type": ["null", "object"], "properties": {}} (tap-stripe's
    # metadata): the user sees the run stop on "reads 'metadata.plan', which stream 'people' does not declare",
    # though nothing in the schema closes the object (paths.py schema_has_path).
    properties = {"id": {"type": "string"}, "metadata": {"type": ["null", "object"], "properties": {}}}
    mapping = {"people": {"fields": {"contact_id": "id"}, "custom_fields": {"Plan": "metadata.plan"}}}
    assert route_error(mapping, "people", properties) is None
