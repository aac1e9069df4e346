"""The mapping language as one grammar: any source where a path goes, one predicate form for when,
where and check, lookups read from the context handed in, preset options kept to their presets."""

from __future__ import annotations

import pytest

from target_segmetrics.mapping.compiler import compile_entry
from target_segmetrics.mapping.nodes import Context, checks_of
from target_segmetrics.mapping.presets import PRESETS
from target_segmetrics.mapping.sources import MISSING, MappingConfigError, compile_source


class Rows:
    """Lookup rows as the store holds them: by stream and key."""

    def __init__(self, rows: dict[tuple[str, str], list[dict]]) -> None:
        self._rows = rows

    def rows(self, stream: str, key: str) -> list[dict]:
        return self._rows.get((stream, key), [])

    def may_wait(self, stream: str) -> bool:
        return False


def test_path_takes_one_source_object_as_well_as_a_list_of_them():
    assert compile_source({"path": {"value": "x"}}, "t")({}) == "x"
    assert compile_source({"path": [{"value": "x"}]}, "t")({}) == "x"
    assert compile_source({"path": {"path": "a", "default": "none"}, "format": "<{}>"}, "t")({}) == "<none>"
    with pytest.raises(MappingConfigError, match=r"t\.path: a source is a path, a list of sources or an object"):
        compile_source({"path": 42}, "t")


def test_when_where_and_check_share_one_predicate_form():
    record = {"plan": "pro", "currency": "EUR", "lines": [{"kind": "a", "n": 1}, {"kind": "b", "n": 2}]}
    when = compile_source({"path": "plan", "when": {"source": "currency", "in": ["EUR", "USD"]}}, "t")
    assert when(record) == "pro"
    assert when({**record, "currency": "GBP"}) is MISSING
    where = compile_source({"path": "lines", "where": {"source": "kind", "not_in": ["a"]}, "field": "n"}, "t")
    assert where(record) == [2]
    # the older spelling of a where's source still works
    older = compile_source({"path": "lines", "where": {"field": "kind", "in": ["a"]}, "field": "n"}, "t")
    assert older(record) == [1]
    check = compile_source(
        {"path": "plan", "check": {"source": "currency", "not_in": ["EUR"], "otherwise": "in {}"}}, "t"
    )
    with pytest.raises(ValueError, match="in 'EUR'"):
        check(record)
    assert check({**record, "currency": "USD"}) == "pro"


def test_a_misspelt_predicate_key_names_the_new_spelling():
    with pytest.raises(MappingConfigError, match=r"unknown key\(s\) filed \(did you mean 'source'\?"):
        compile_source({"path": "lines", "where": {"filed": "kind", "in": ["a"]}}, "t")
    with pytest.raises(MappingConfigError, match=r"unknown key\(s\) pth \(did you mean 'path'\?"):
        compile_source({"pth": "a"}, "t")


def test_lookups_read_the_rows_of_the_context_handed_in():
    source = compile_source({"lookup": "owners", "key": "owner_id", "field": "email"}, "t")
    record = {"owner_id": 7}
    first = Context(lookups=Rows({("owners", "7"): [{"email": "a@example.com"}]}))
    second = Context(lookups=Rows({("owners", "7"): [{"email": "b@example.com"}]}))
    assert source(record, first) == "a@example.com"
    assert source(record, second) == "b@example.com"
    assert source(record, first) == "a@example.com"  # nothing kept from the other mapping's context


def test_a_stream_mapping_maps_with_the_context_it_is_given_and_waits_without_one():
    entry = {"fields": {"email": "email", "first_name": {"lookup": "names", "key": "id", "field": "first"}}}
    mapping = compile_entry("people", entry, PRESETS)
    record = {"id": "1", "email": "a@example.com"}
    mapped = mapping.map(record, Context(lookups=Rows({("names", "1"): [{"first": "Ada"}]})))
    assert mapped.payload["first_name"] == "Ada"
    waiting = mapping.map(record)
    assert [p.waiting for p in waiting.problems] == ["names[1]"]


def test_each_node_lists_the_paths_it_reads_and_those_read_in_each_element():
    source = compile_source(
        {
            "path": ["a.lines", "b.lines"],
            "where": {"source": "kind", "is": "wanted"},
            "latest": "at",
            "field": "sku",
            "when": "on",
        },
        "x",
    )
    assert sorted(checks_of(source)) == sorted(
        [
            ("x.when", ("on",)),
            ("x.where.is", ("wanted",)),
            ("x.where.source", ("a.lines.*.kind", "b.lines.*.kind")),
            ("x.latest", ("a.lines.*.at", "b.lines.*.at")),
            ("x.field", ("a.lines.*.sku", "b.lines.*.sku")),
            ("x", ("a.lines", "b.lines")),
        ]
    )


def test_options_only_a_preset_understands_are_not_entry_keys_but_currency_is_for_any_entry():
    compile_entry("people", {"fields": {"email": "email"}, "currency": "USD"}, PRESETS)
    with pytest.raises(MappingConfigError, match=r"mappings\.people\.currency: must be a currency code"):
        compile_entry("people", {"fields": {"email": "email"}, "currency": "dollars"}, PRESETS)
    invoice = {
        "object": "invoice",
        "fields": {"id": "id", "email": "e", "amount": "a", "paid": "a", "date_created": "d"},
        "items": {"path": "lines", "or_self": True, "fields": {"name": "n", "product_id": "p", "amount": "a"}},
    }
    with pytest.raises(MappingConfigError, match=r"mappings\.orders\.items: unknown key\(s\) or_self"):
        compile_entry("orders", invoice, PRESETS)
    compile_entry("contacts", {"preset": "hubspot", "currency": "USD"}, PRESETS)
    deals = compile_entry("deals", {"preset": "hubspot", "currency": "eur"}, PRESETS)
    assert deals.items is not None and deals.items.or_self
    assert deals.requires and deals.requires[0][0] == "mappings.deals"


def test_on_invalid_drop_leaves_the_field_out_and_counts_it():
    entry = {
        "fields": {
            "email": {"path": "email", "on_invalid": "drop"},
            "date_created": {"path": "created", "on_invalid": "drop"},
            "first_name": "name",
        },
        "custom_fields": {"age": {"path": "age", "transform": "integer", "on_invalid": "drop"}},
    }
    mapping = compile_entry("people", {**entry, "fields": {**entry["fields"], "contact_id": "id"}}, PRESETS)
    counted: list[tuple[str, str]] = []
    ctx = Context(count=lambda stream, what: counted.append((stream, what)))
    mapped = mapping.map({"id": "1", "email": "nope", "created": "yesterday", "age": "old", "name": "Ada"}, ctx)
    assert mapped.problems == []
    assert mapped.payload == {"contact_id": "1", "first_name": "Ada"}
    assert sorted(counted) == [
        ("people", "dropped:custom_fields.age"),
        ("people", "dropped:date_created"),
        ("people", "dropped:email"),
    ]
    # without it, the same record is rejected naming the field
    strict = compile_entry("people", {"fields": {"contact_id": "id", "email": "email"}}, PRESETS)
    assert [str(p) for p in strict.map({"id": "1", "email": "nope"}).problems] == [
        "email: 'nope' is not an email address"
    ]
    with pytest.raises(MappingConfigError, match=r"fields\.email\.on_invalid: must be one of reject, drop"):
        compile_entry("people", {"fields": {"email": {"path": "email", "on_invalid": "skip"}}}, PRESETS)


def test_an_entry_when_takes_the_predicate_form_too():
    entry = {"fields": {"email": "email"}, "when": {"source": "plan", "in": ["pro", "team"]}}
    mapping = compile_entry("people", entry, PRESETS)
    assert mapping.map({"email": "a@example.com", "plan": "team"}).skipped is None
    assert mapping.map({"email": "a@example.com", "plan": "free"}).skipped == "its 'when' condition is not met"
    assert mapping.map({"email": "a@example.com"}).skipped == "its 'when' condition is not met"
