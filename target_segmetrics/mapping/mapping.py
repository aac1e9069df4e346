"""Mapping one record: a compiled entry turns a record into a SegMetrics payload and requests.

A :class:`StreamMapping` (built by ``compiler.py`` from a ``mappings`` entry) evaluates each
field's source, converts the value with the object's converter, and says what to send: the
requests in order, or the :class:`~target_segmetrics.mapping.wire.Problem` s (a value that is not a date, a
contact with neither email nor contact_id) that keep the record from being sent.
"""

from __future__ import annotations

import re
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from target_segmetrics.mapping.nodes import NO_CONTEXT, Constant, Context, LookupPending, Node, Predicate, is_empty
from target_segmetrics.mapping.objects import TAG_EVENTS, ObjectSpec
from target_segmetrics.mapping.paths import MISSING
from target_segmetrics.mapping.values import Converter, ValueProblem, as_custom_value, as_tag, tag_identity
from target_segmetrics.mapping.wire import Mapped, OwnTags, Problem, Request

DEFAULTS: dict[str, t.Any] = {"object": "contact", "tags_mode": "replace", "action": "add"}
"""The defaults of a mapping entry's keys, here only (the compiler and :class:`StreamMapping` read them)."""


@dataclass
class StreamMapping:
    """A compiled mapping entry: call :meth:`map` on each record."""

    stream: str
    spec: ObjectSpec
    fields: dict[str, Node]
    tags: list[Node] = field(default_factory=list)
    tags_mode: str = DEFAULTS["tags_mode"]
    custom_fields: dict[str, Node] = field(default_factory=dict)
    custom_fields_object: Node | None = None
    """A source that yields a whole object of custom fields (name matching's ``custom_fields``)."""
    when: Predicate | None = None
    """Only records for which this source is true are sent (the others count as skipped)."""
    action: str = DEFAULTS["action"]
    """For ``object: tags``: ``add`` or ``remove``."""
    items: ItemsMapping | None = None
    tags_remove: list[Node] = field(default_factory=list)
    """With ``tags_mode: add`` or ``own``: tags removed (``tags/remove``) before the record's tags are added, such
    as the contact's other lifecycle stages (a stage change replaces the old stage's tag)."""
    path_checks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """The paths the user wrote, per source (where in the config, its alternative paths): checked
    against the stream's schema when it arrives (a preset's own paths are not: taps differ)."""
    requires: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    """``require``: (where, paths the schema must declare one of, why), checked as ``path_checks``."""
    written: tuple[Node, ...] = field(default=(), repr=False)
    """The sources the user wrote (not the preset's): whose lookups must name a declared lookup stream."""
    tags_elsewhere: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """With ``tags_mode: own``: other streams that never set these contacts' tags, per schema (tagsets.py)."""
    tags_alone: bool = False
    """With ``tags_mode: own``: no other stream sets these contacts' tags (decided from the schema and
    the other mappings): the tags go with the contact, replacing its tags, in one request."""

    def map(self, record: t.Mapping[str, t.Any], ctx: Context = NO_CONTEXT) -> Mapped:
        """Build the payload and the requests for one record; ``ctx``: the lookup rows (and counters)."""
        problems: list[Problem] = []
        slots = Slots(self.stream, ctx, problems)
        if self.when is not None:
            decision = slots.value(self.when, record, "when")
            if not problems and not decision:
                return Mapped(object_key=None, skipped="its 'when' condition is not met")
        payload = slots.convert(self.fields, self.spec.fields, record, "")
        tags = self._tags(record, slots)
        custom = self._custom_fields(record, slots)
        if self.items is not None:
            payload["items"] = self.items.map(record, self.spec, slots)
        unusable = {problem.field.split(".")[0].split("[")[0] for problem in problems}
        for name in self.spec.required:
            if name not in payload and name not in unusable:
                problems.append(
                    Problem(name, f"missing: SegMetrics requires it for {article(self.spec.name)} {self.spec.name}")
                )
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
        mapped.requests.append(Request("POST", self.spec.endpoint, mapped.payload))
        if self.tags_mode == "own" and not self.tags_alone:
            mapped.own_tags = OwnTags(self.stream, tags, _contact_match(payload))
        elif self.tags_mode != "add":
            return mapped
        if self.tags_remove and (gone := self._tags(record, slots, self.tags_remove, "tags_remove")):
            kept = {tag_identity(tag) for tag in tags}
            gone = [_without_date(tag) for tag in gone if tag_identity(tag) not in kept]
            if gone:
                mapped.requests.append(Request("POST", "tags/remove", {**_contact_match(payload), "tags": gone}))
        if tags:
            mapped.requests.append(Request("POST", "tags/add", {**_contact_match(payload), "tags": tags}))
        return mapped

    def map_delete(self, record: t.Mapping[str, t.Any], ctx: Context = NO_CONTEXT) -> Mapped:
        """The DELETE for a record the tap reports deleted (``_sdc_deleted_at``, with ``hard_delete``)."""
        problems: list[Problem] = []
        keys = {name: src for name, src in self.fields.items() if name in self.spec.delete_by}
        payload = Slots(self.stream, ctx, problems).convert(keys, self.spec.fields, record, "")
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
            mapped.problems.append(
                Problem(name, f"{value!r} cannot name {article(self.spec.name)} {self.spec.name} in a URL")
            )
            return mapped
        target = urllib.parse.quote(value, safe="@")
        mapped.requests.append(Request("DELETE", f"{self.spec.endpoint}/{target}", None))
        return mapped

    def _tags(
        self, record: t.Mapping[str, t.Any], slots: Slots, sources: list[Node] | None = None, name: str = "tags"
    ) -> list[t.Any]:
        tags: list[t.Any] = []
        seen: set[tuple[str, str]] = set()
        for i, source in enumerate(self.tags if sources is None else sources):
            value = slots.value(source, record, f"{name}[{i}]")
            for item in value if isinstance(value, list) else [] if is_empty(value) else [value]:
                tag = slots.converted(source, item, f"{name}[{i}]", as_tag)
                if tag is None or tag is MISSING:
                    continue
                identity = tag_identity(tag)
                if identity not in seen:
                    seen.add(identity)
                    tags.append(tag)
        return tags

    def _custom_fields(self, record: t.Mapping[str, t.Any], slots: Slots) -> dict[str, t.Any]:
        custom: dict[str, t.Any] = {}
        if self.custom_fields_object is not None:
            whole = slots.value(self.custom_fields_object, record, "custom_fields")
            if isinstance(whole, t.Mapping):
                for name, value in whole.items():
                    if value is not None:
                        where = f"custom_fields.{name}"
                        found = slots.converted(self.custom_fields_object, value, where, as_custom_value)
                        if found is not MISSING:
                            custom[str(name)] = found
            elif not is_empty(whole):
                slots.problems.append(Problem("custom_fields", "must be an object of name -> value"))
        for name, source in self.custom_fields.items():
            if isinstance(source, Constant) and source.value is None:
                custom[name] = None  # {"value": null}: remove the custom field in SegMetrics
                continue
            found = slots.one(source, record, f"custom_fields.{name}", as_custom_value)
            if found is not MISSING:
                custom[name] = found
        return custom


@dataclass
class ItemsMapping:
    """An invoice's ``items``: a list in the record (or the record itself), each item mapped."""

    path: Node | None
    fields: dict[str, Node]
    or_self: bool = False
    """When ``path`` finds no item, the record itself is the one item (a deal without line items)."""

    def map(self, record: t.Mapping[str, t.Any], spec: ObjectSpec, slots: Slots) -> list[dict[str, t.Any]]:
        """The items' payloads; problems are named ``items[n].field``."""
        problems = slots.problems
        if self.path is None:
            found: t.Any = [record]
        else:
            found = slots.value(self.path, record, "items")
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
            payload = slots.convert(self.fields, spec.item_fields, item, f"items[{i}].")
            for name in spec.item_required:
                if name not in payload and not any(p.field == f"items[{i}].{name}" for p in problems):
                    problems.append(Problem(f"items[{i}].{name}", "missing: SegMetrics requires it for an item"))
            items.append(payload)
        return items


@dataclass
class Slots:
    """Where a record's values are evaluated and converted, each named as its problems are: a value
    that cannot be converted is a problem of the record, or (``"on_invalid": "drop"`` on its source)
    left out and counted as ``dropped:<field>``."""

    stream: str
    ctx: Context
    problems: list[Problem]

    def value(self, source: Node, record: t.Any, name: str) -> t.Any:
        """What a source finds (MISSING, with the problem noted, when it cannot be read)."""
        try:
            return source.evaluate(record, self.ctx)
        except LookupPending as exc:
            self.problems.append(Problem(name, str(exc), waiting=exc.waiting))
        except ValueProblem as exc:
            self._invalid(source, name, str(exc))
        return MISSING

    def converted(self, source: Node, value: t.Any, name: str, convert: Converter) -> t.Any:
        """``value`` as ``convert`` makes it (MISSING when it cannot be)."""
        try:
            return convert(value)
        except ValueProblem as exc:
            self._invalid(source, name, str(exc))
            return MISSING

    def one(self, source: Node, record: t.Any, name: str, convert: Converter) -> t.Any:
        """The one value of a field, converted (MISSING: nothing to send)."""
        value = self.value(source, record, name)
        if is_empty(value):
            return MISSING
        if isinstance(value, list):
            if len(value) != 1:
                self._invalid(source, name, f"the source gave {len(value)} values, expected one")
                return MISSING
            value = value[0]
        return self.converted(source, value, name, convert)

    def convert(
        self, sources: dict[str, Node], converters: dict[str, Converter], record: t.Any, prefix: str
    ) -> dict[str, t.Any]:
        """Each field's value, converted; a missing value sends nothing."""
        payload: dict[str, t.Any] = {}
        for name, source in sources.items():
            value = self.one(source, record, prefix + name, converters[name])
            if value is not MISSING:
                payload[name] = value
        return payload

    def _invalid(self, source: Node, name: str, reason: str) -> None:
        if not source.drop_invalid:
            self.problems.append(Problem(name, reason))
        elif self.ctx.count is not None:
            self.ctx.count(self.stream, "dropped:" + re.sub(r"\[\d+\]", "", name))


def article(noun: str) -> str:
    """``an`` invoice, ``a`` contact."""
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _without_date(tag: t.Any) -> t.Any:
    """A tag as ``tags/remove`` takes it (tag objects there carry only id and name)."""
    return {k: v for k, v in tag.items() if k in ("id", "name")} if isinstance(tag, dict) else tag


def _contact_match(payload: dict[str, t.Any]) -> dict[str, t.Any]:
    """How ``tags/add``/``tags/remove`` name the contact: contact_id when known, else email."""
    if "contact_id" in payload:
        return {"contact_id": payload["contact_id"]}
    return {"email": payload["email"]}
