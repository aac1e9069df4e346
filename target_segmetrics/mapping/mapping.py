"""Mapping one record: a compiled entry turns a record into a SegMetrics payload and requests.

A :class:`StreamMapping` (built by ``compiler.py`` from a ``mappings`` entry) evaluates each
field's source, converts the value with the object's converter, and says what to send: the
requests in order, or the :class:`~target_segmetrics.mapping.wire.Problem` s (a value that is not a date, a
contact with neither email nor contact_id) that keep the record from being sent.
"""

from __future__ import annotations

import typing as t
import urllib.parse
from dataclasses import dataclass, field

from target_segmetrics.mapping.objects import TAG_EVENTS, ObjectSpec
from target_segmetrics.mapping.sources import MISSING, LookupPending, Source, is_empty, truthy
from target_segmetrics.mapping.values import Converter, ValueProblem, as_custom_value, as_tag, opened, tag_identity
from target_segmetrics.mapping.wire import Mapped, OwnTags, Problem, Request


@dataclass
class StreamMapping:
    """A compiled mapping entry: call :meth:`map` on each record."""

    stream: str
    spec: ObjectSpec
    fields: dict[str, Source]
    tags: list[Source] = field(default_factory=list)
    tags_mode: str = "replace"
    custom_fields: dict[str, Source] = field(default_factory=dict)
    custom_fields_object: Source | None = None
    """A source that yields a whole object of custom fields (name matching's ``custom_fields``)."""
    when: Source | None = None
    """Only records for which this source is true are sent (the others count as skipped)."""
    action: str = "add"
    """For ``object: tags``: ``add`` or ``remove``."""
    items: ItemsMapping | None = None
    tags_remove: list[Source] = field(default_factory=list)
    """With ``tags_mode: add``: tags removed (``tags/remove``) before the record's tags are added, such
    as the contact's other lifecycle stages (a stage change replaces the old stage's tag)."""
    path_checks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """The paths the user wrote, per source (where in the config, its alternative paths): checked
    against the stream's schema when it arrives (a preset's own paths are not: taps differ)."""
    requires: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    """``require``: (where, paths the schema must declare one of, why), checked as ``path_checks``."""
    tags_elsewhere: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """With ``tags_mode: own``: other streams that never set these contacts' tags, per schema (tagsets.py)."""
    tags_alone: bool = False
    """With ``tags_mode: own``: no other stream sets these contacts' tags (decided from the schema and
    the other mappings): the tags go with the contact, replacing its tags, in one request."""

    def map(self, record: t.Mapping[str, t.Any]) -> Mapped:
        """Build the payload and the requests for one record."""
        problems: list[Problem] = []
        if self.when is not None:
            decision = _evaluate(self.when, record, "when", problems)
            if not problems and not truthy(decision):
                return Mapped(object_key=None, skipped="its 'when' condition is not met")
        payload = _convert(self.fields, self.spec.fields, record, problems, "")
        tags = self._tags(record, problems)
        custom = self._custom_fields(record, problems)
        if self.items is not None:
            payload["items"] = self.items.map(record, self.spec, problems)
        unusable = {problem.field.split(".")[0].split("[")[0] for problem in problems}
        for name in self.spec.required:
            if name not in payload and name not in unusable:
                problems.append(Problem(name, f"missing: SegMetrics requires it for a {self.spec.name}"))
        if self.spec.one_of and not any(name in payload or name in unusable for name in self.spec.one_of):
            problems.append(
                Problem(
                    " or ".join(self.spec.one_of),
                    f"missing: SegMetrics needs one of them to match the {self.spec.name}",
                )
            )
        if custom:
            payload["custom_fields"] = custom

        mapped = Mapped(
            object_key=self.spec.key_of(payload), identities=self.spec.identities(payload), problems=problems
        )
        if problems:
            if tags:
                payload["tags"] = tags
            mapped.payload = payload
            return mapped
        if self.spec is TAG_EVENTS:
            if not tags:
                mapped.skipped = "it yields no tag"
                return mapped
            mapped.payload = {**_contact_match(payload), "tags": tags}
            mapped.requests.append(Request("POST", f"tags/{self.action}", mapped.payload))
            return mapped
        if tags and self.tags_mode == "replace":
            payload["tags"] = tags
        elif self.tags_mode == "own" and self.tags_alone:
            # The record alone decides the contact's tags: all of them, none included (a cleared stage).
            payload["tags"] = [{"name": tag} if isinstance(tag, str) else tag for tag in tags]
        mapped.payload = self.spec.compose(payload) if self.spec.compose else payload
        mapped.needs_contact = self.spec.family != "contact" and self.spec.name != "contact" and "contact_id" in payload
        mapped.requests.append(Request("POST", self.spec.endpoint, mapped.payload))
        if self.tags_mode == "own" and not self.tags_alone:
            mapped.own_tags = OwnTags(self.stream, tags, _contact_match(payload))
        elif self.tags_mode != "add":
            return mapped
        if self.tags_remove and (gone := self._tags(record, problems, self.tags_remove, "tags_remove")):
            kept = {tag_identity(tag) for tag in tags}
            gone = [_without_date(tag) for tag in gone if tag_identity(tag) not in kept]
            if gone:
                mapped.requests.append(Request("POST", "tags/remove", {**_contact_match(payload), "tags": gone}))
        if tags:
            mapped.requests.append(Request("POST", "tags/add", {**_contact_match(payload), "tags": tags}))
        return mapped

    def map_delete(self, record: t.Mapping[str, t.Any]) -> Mapped:
        """The DELETE for a record the tap reports deleted (``_sdc_deleted_at``, with ``hard_delete``)."""
        problems: list[Problem] = []
        keys = {name: src for name, src in self.fields.items() if name in self.spec.delete_by}
        payload = _convert(keys, self.spec.fields, record, problems, "")
        mapped = Mapped(
            object_key=self.spec.key_of(payload),
            identities=self.spec.identities(payload),
            problems=problems,
            payload=payload,
            delete=True,
        )
        if problems:
            return mapped
        name = next((n for n in self.spec.delete_by if n in payload), None)
        if name is None:
            mapped.problems.append(
                Problem(" or ".join(self.spec.delete_by), f"missing: needed to delete the {self.spec.name}")
            )
            return mapped
        value = str(payload[name]).strip()
        if value in (".", ".."):
            mapped.problems.append(Problem(name, f"{value!r} cannot name a {self.spec.name} in a URL"))
            return mapped
        target = urllib.parse.quote(value, safe="@")
        mapped.requests.append(Request("DELETE", f"{self.spec.endpoint}/{target}", None))
        return mapped

    def _tags(
        self,
        record: t.Mapping[str, t.Any],
        problems: list[Problem],
        sources: list[Source] | None = None,
        name: str = "tags",
    ) -> list[t.Any]:
        tags: list[t.Any] = []
        seen: set[tuple[str, str]] = set()
        for i, source in enumerate(self.tags if sources is None else sources):
            value = _evaluate(source, record, f"{name}[{i}]", problems)
            if is_empty(value):
                continue
            for item in value if isinstance(value, list) else [value]:
                try:
                    tag = as_tag(item)
                except ValueProblem as exc:
                    problems.append(Problem(f"{name}[{i}]", str(exc)))
                    continue
                if tag is None:
                    continue
                identity = tag_identity(tag)
                if identity not in seen:
                    seen.add(identity)
                    tags.append(tag)
        return tags

    def _custom_fields(self, record: t.Mapping[str, t.Any], problems: list[Problem]) -> dict[str, t.Any]:
        custom: dict[str, t.Any] = {}
        if self.custom_fields_object is not None:
            whole = _evaluate(self.custom_fields_object, record, "custom_fields", problems)
            if isinstance(whole, t.Mapping):
                for name, value in whole.items():
                    if value is None:
                        continue
                    try:
                        custom[str(name)] = as_custom_value(value)
                    except ValueProblem as exc:
                        problems.append(Problem(f"custom_fields.{name}", str(exc)))
            elif not is_empty(whole):
                problems.append(Problem("custom_fields", "must be an object of name -> value"))
        for name, source in self.custom_fields.items():
            where = f"custom_fields.{name}"
            value = _evaluate(source, record, where, problems)
            if value is None and getattr(source, "constant_null", False):
                custom[name] = None  # {"value": null}: remove the custom field in SegMetrics
                continue
            if is_empty(value):
                continue
            if isinstance(value, list):
                if len(value) != 1:
                    problems.append(Problem(where, f"the source gave {len(value)} values, expected one"))
                    continue
                value = value[0]
            try:
                custom[name] = as_custom_value(value)
            except ValueProblem as exc:
                problems.append(Problem(where, str(exc)))
        return custom


@dataclass
class ItemsMapping:
    """An invoice's ``items``: a list in the record (or the record itself), each item mapped."""

    path: Source | None
    fields: dict[str, Source]
    or_self: bool = False
    """When ``path`` finds no item, the record itself is the one item (a deal without line items)."""

    def map(self, record: t.Mapping[str, t.Any], spec: ObjectSpec, problems: list[Problem]) -> list[dict[str, t.Any]]:
        """The items' payloads; problems are named ``items[n].field``."""
        if self.path is None:
            found: t.Any = [record]
        else:
            found = _evaluate(self.path, record, "items", problems)
            if is_empty(found) and self.or_self:
                found = [record]
            if is_empty(found):
                problems.append(Problem("items", f"missing: SegMetrics requires at least one item for an {spec.name}"))
                return []
            if isinstance(found, dict):
                found = [found]
            elif not isinstance(found, list):
                problems.append(Problem("items", f"expected a list of items, got {type(found).__name__}"))
                return []
        items = []
        for i, item in enumerate(found):
            if not isinstance(item, dict):
                problems.append(Problem(f"items[{i}]", "an item must be an object"))
                continue
            payload = _convert(self.fields, spec.item_fields, item, problems, f"items[{i}].")
            for name in spec.item_required:
                if name not in payload and not any(p.field == f"items[{i}].{name}" for p in problems):
                    problems.append(Problem(f"items[{i}].{name}", "missing: SegMetrics requires it for an item"))
            items.append(payload)
        return items


def _convert(
    sources: dict[str, Source],
    converters: dict[str, Converter],
    record: t.Mapping[str, t.Any],
    problems: list[Problem],
    prefix: str,
) -> dict[str, t.Any]:
    """Evaluate each field's source and convert its value; a missing value sends nothing."""
    payload: dict[str, t.Any] = {}
    for name, source in sources.items():
        value = _evaluate(source, record, prefix + name, problems)
        if is_empty(value):
            continue
        if isinstance(value, list):
            if len(value) != 1:
                problems.append(Problem(prefix + name, f"the source gave {len(value)} values, expected one"))
                continue
            value = value[0]
        try:
            payload[name] = converters[name](value)
        except ValueProblem as exc:
            problems.append(Problem(prefix + name, str(exc)))
    return payload


def _without_date(tag: t.Any) -> t.Any:
    """A tag as ``tags/remove`` takes it (tag objects there carry only id and name)."""
    return {k: v for k, v in tag.items() if k in ("id", "name")} if isinstance(tag, dict) else tag


def _contact_match(payload: dict[str, t.Any]) -> dict[str, t.Any]:
    """How ``tags/add``/``tags/remove`` name the contact: contact_id when known, else email."""
    if "contact_id" in payload:
        return {"contact_id": payload["contact_id"]}
    return {"email": payload["email"]}


def _evaluate(source: Source, record: t.Mapping[str, t.Any], name: str, problems: list[Problem]) -> t.Any:
    try:
        return source(record)
    except LookupPending as exc:
        problems.append(Problem(name, str(exc), waiting=exc.waiting))
        return MISSING
    except ValueProblem as exc:
        problems.append(Problem(name, str(exc)))
        return MISSING


def tag_builder(parts: dict[str, Source], each: Source | None = None) -> Source:
    """``{"tag": {"name": src, "date": src, "id": src}}``: one tag object from several sources; with
    ``each``, one per element of that list in the record (the parts read in the element)."""

    def build(record: t.Mapping[str, t.Any]) -> t.Any:
        tag = {}
        for key, source in parts.items():
            value = source(record)
            if not is_empty(value):
                tag[key] = value[0] if isinstance(value, list) and len(value) == 1 else value
        return tag if ("id" in tag or "name" in tag) else MISSING

    if each is None:
        return build

    def build_each(record: t.Mapping[str, t.Any]) -> t.Any:
        found = opened(each(record))  # what the SDK's flattening made of a list
        if is_empty(found):
            return MISSING
        # An empty element (a null in the list) gives no tag, as a tag that comes out empty does.
        elements = [element for element in (found if isinstance(found, list) else [found]) if not is_empty(element)]
        if not all(isinstance(element, t.Mapping) for element in elements):
            raise ValueProblem("expected a list of objects (each)")
        tags = [tag for element in elements if (tag := build(element)) is not MISSING]
        return tags or MISSING

    return build_each
