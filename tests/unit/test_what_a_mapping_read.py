"""What a record's mapping read besides the record (``mapping/transcript.py``): asked again, the same
answers mean the same requests; any other answer means the record must be mapped again."""

from __future__ import annotations

import json

from target_segmetrics.mapping.compiler import compile_entry
from target_segmetrics.mapping.nodes import Context
from target_segmetrics.mapping.presets import PRESETS
from target_segmetrics.mapping.transcript import Transcript, fingerprint, record_digest, still_holds

ENTRY = {
    "fields": {
        "contact_id": "id",
        "email": {"path": ["email", {"lookup": "owners", "key": "owner", "field": "email", "wait": "run"}]},
    },
    "custom_fields": {"Age": {"path": "age", "transform": "integer", "on_invalid": "drop"}},
}


class Rows:
    """Lookup rows by stream and key, and whether a lookup stream may still come."""

    def __init__(self, rows: dict[tuple[str, str], list[dict]], waiting: bool = False) -> None:
        self._rows, self.waiting = rows, waiting

    def rows(self, stream: str, key: str) -> list[dict]:
        return self._rows.get((stream, key), [])

    def may_wait(self, stream: str) -> bool:
        return self.waiting

    def digest(self, stream: str, key: str) -> str:
        return json.dumps(self.rows(stream, key), sort_keys=True)


def mapped_with(rows: Rows, record: dict) -> tuple[Transcript, list[str], bytes]:
    counted: list[str] = []
    transcript = Transcript(Context(lookups=rows, count=lambda stream, what: counted.append(what)))
    mapping = compile_entry("people", ENTRY, PRESETS)
    body = mapping.map(record, transcript.context).requests[0].data
    assert body is not None
    return transcript, counted, body


def test_the_same_answers_hold_and_count_again_what_the_mapping_counted():
    rows = Rows({("owners", "o1"): [{"email": "owner@example.com"}]})
    transcript, counted, body = mapped_with(rows, {"id": "1", "owner": "o1", "age": "forty"})
    assert b"owner@example.com" in body and counted == ["dropped:custom_fields.Age"]
    again: list[str] = []
    assert still_holds(transcript.text, Context(lookups=rows, count=lambda stream, what: again.append(what)))
    assert again == counted


def test_a_changed_row_or_a_lookup_stream_that_may_come_now_does_not_hold():
    rows = Rows({("owners", "o1"): [{"email": "owner@example.com"}]})
    transcript, _, _ = mapped_with(rows, {"id": "1", "owner": "o1"})
    changed = Rows({("owners", "o1"): [{"email": "new@example.com"}]})
    assert not still_holds(transcript.text, Context(lookups=changed))
    none_then = Rows({})
    waited, _, _ = mapped_with(none_then, {"id": "1", "owner": "o1"})  # found nothing, could not wait
    assert not still_holds(waited.text, Context(lookups=Rows({}, waiting=True)))
    assert still_holds(waited.text, Context(lookups=Rows({})))
    found_first, _, _ = mapped_with(rows, {"id": "1", "owner": "o1", "email": "own@example.com"})
    assert found_first.calls == []  # its own email: no lookup made, nothing a row could change


def test_a_record_is_the_same_only_with_its_keys_in_their_order_values_of_their_type_and_one_mapping():
    prefix = fingerprint("people", {"properties": {}}, ["id"], {"people": ENTRY}, (True,))
    one = record_digest(prefix, {"id": "1", "n": 1})
    assert one == record_digest(prefix, {"id": "1", "n": 1})
    assert one != record_digest(prefix, {"n": 1, "id": "1"})
    assert one != record_digest(prefix, {"id": "1", "n": "1"})
    other = fingerprint("people", {"properties": {}}, ["id"], {"people": {**ENTRY, "tags": ["x"]}}, (True,))
    assert one != record_digest(other, {"id": "1", "n": 1})
    unchecked = fingerprint("people", {"properties": {}}, ["id"], {"people": ENTRY}, (False,))  # validate_records
    assert one != record_digest(unchecked, {"id": "1", "n": 1})
    broken = record_digest(prefix, {"id": "\ud800"})  # a lone surrogate is digested too (the mapping rejects it)
    assert broken != record_digest(prefix, {"id": "\ud801"})
