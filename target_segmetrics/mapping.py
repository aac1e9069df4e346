"""Compile a stream's mapping config into a function: record -> SegMetrics payload.

A mapping entry (one per stream under the ``mappings`` setting) says which SegMetrics object the
stream feeds and where each field comes from. Everything is checked when the config is read, so a
malformed mapping stops the run before any request is made; per-record problems (a value that is
not a date, a contact with neither email nor contact_id) come back as :class:`Problem` s.

Source forms (see the README's mapping guide):

- ``"properties.email"``: a path; dots go into objects, an integer segment indexes a list, and a
  flattened key (``properties__email``, from the SDK's flattening) is found too;
- ``["a", "b"]``: the first source with a non-empty value wins;
- ``{"value": X}``: a constant;
- ``{"path": ..., "default": ..., "split": ";", "transform": ..., "map": {...}, "format": "..."}``:
  applied in that order: look up, default when empty, split text into several values, transform
  each, map each through the lookup table, write each into the template.
"""

from __future__ import annotations

import copy
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from target_segmetrics import objects
from target_segmetrics.objects import ObjectSpec
from target_segmetrics.values import (
    Converter,
    ValueProblem,
    as_boolean,
    as_custom_value,
    as_tag,
    as_whole,
    key_text,
    tag_identity,
    to_number,
    to_segmetrics_date,
    to_segmetrics_datetime,
    to_text,
    units_to_cents,
    unwrap,
)
from target_segmetrics.wire import Mapped, Problem, Request


class MappingConfigError(ValueError):
    """A mapping in the config that cannot work; each message names where it is."""

    def __init__(self, *messages: str) -> None:
        super().__init__("\n".join(messages))
        self.errors = list(messages)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: t.Any = _Missing()
"""What a source yields when it finds nothing (a missing or empty value)."""

Source = t.Callable[[t.Mapping[str, t.Any]], t.Any]

TAG_MODES = ("replace", "add")
ENTRY_KEYS = {"object", "preset", "fields", "tags", "tags_mode", "custom_fields", "items", "action", "when"}
TAG_ACTIONS = ("add", "remove")
TAG_OBJECT_KEYS = {"id", "name", "date"}
OPTION_KEYS = {"path", "value", "default", "split", "transform", "map", "format"}


def is_empty(value: t.Any) -> bool:
    """None, missing, blank text, and empty lists/objects count as 'no value'."""
    if value is None or value is MISSING:
        return True
    kind = type(value)
    if kind is str:
        return not value or value.isspace()
    if kind is list or kind is dict:
        return not value
    return False


# --- paths -------------------------------------------------------------------------------------


def compile_path(path: str, where: str) -> Source:
    """A dotted path into the record (``a.b.0.c``); also finds flattened keys (``a__b``)."""
    if not isinstance(path, str) or not path.strip():
        raise MappingConfigError(f"{where}: a path must be non-empty text, got {path!r}")
    segments = tuple(path.strip().split("."))
    if any(not part for part in segments):
        raise MappingConfigError(f"{where}: path {path!r} has an empty segment")

    def lookup(record: t.Mapping[str, t.Any]) -> t.Any:
        return _walk(record, segments)

    lookup.path = path  # type: ignore[attr-defined]
    return lookup


def _walk(node: t.Any, segments: tuple[str, ...]) -> t.Any:
    # Fast path: plain nested dicts, every segment present (the common case).
    found = node
    for segment in segments:
        if type(found) is dict and segment in found:
            found = found[segment]
        else:
            return _walk_slowly(node, segments)
    return found


def _walk_slowly(node: t.Any, segments: tuple[str, ...]) -> t.Any:
    """Lists, other mappings, and flattened keys: ``a.b`` also finds ``a__b``."""
    if not segments:
        return node
    if isinstance(node, dict):
        head = segments[0]
        if head in node:
            found = _walk_slowly(node[head], segments[1:])
            if found is not MISSING:
                return found
        # A flattened record holds "a__b" where the nested one holds {"a": {"b": ...}}.
        for width in range(len(segments), 1, -1):
            joined = "__".join(segments[:width])
            if joined in node:
                found = _walk_slowly(node[joined], segments[width:])
                if found is not MISSING:
                    return found
        return MISSING
    if isinstance(node, list):
        head = segments[0]
        if head.lstrip("-").isdigit():
            index = int(head)
            if -len(node) <= index < len(node):
                return _walk_slowly(node[index], segments[1:])
        return MISSING
    return MISSING


# --- transforms --------------------------------------------------------------------------------


TRANSFORMS: dict[str, t.Callable[[t.Any], t.Any]] = {
    "unwrap": unwrap,
    "lower": lambda v: to_text(v).lower(),
    "upper": lambda v: to_text(v).upper(),
    "title": lambda v: to_text(v).title(),
    "strip": lambda v: to_text(v).strip(),
    "string": to_text,
    "integer": as_whole,
    "number": to_number,
    "boolean": as_boolean,
    "datetime": to_segmetrics_datetime,
    "date": to_segmetrics_date,
    "cents": units_to_cents,
}


# --- sources -----------------------------------------------------------------------------------


def compile_source(spec: t.Any, where: str) -> Source:
    """Compile one source config into a function of the record (see the module docstring)."""
    if isinstance(spec, str):
        return compile_path(spec, where)
    if isinstance(spec, list):
        if not spec:
            raise MappingConfigError(f"{where}: an empty list names no source")
        alternatives = [compile_source(item, f"{where}[{i}]") for i, item in enumerate(spec)]

        def first(record: t.Mapping[str, t.Any]) -> t.Any:
            for alternative in alternatives:
                value = alternative(record)
                if not is_empty(value):
                    return value
            return MISSING

        return first
    if not isinstance(spec, dict):
        raise MappingConfigError(f"{where}: a source is a path, a list of sources or an object, got {spec!r}")

    unknown = sorted(set(spec) - OPTION_KEYS)
    if unknown:
        raise MappingConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} (a source object may have {', '.join(sorted(OPTION_KEYS))})"
        )
    if ("path" in spec) == ("value" in spec):
        raise MappingConfigError(f"{where}: a source object needs exactly one of 'path' or 'value'")

    base: Source
    if "value" in spec:
        constant = spec["value"]

        def base(_record: t.Mapping[str, t.Any]) -> t.Any:
            return copy.copy(constant)
    else:
        path = spec["path"]
        base = compile_source(path if isinstance(path, (str, list)) else _bad_path(path, where), where)

    if len(spec) == 1 and "value" in spec:
        # A bare constant: {"value": null} stays null (it removes a custom field).
        return base

    default = spec.get("default", MISSING)
    split = spec.get("split")
    if split is not None and (not isinstance(split, str) or not split):
        raise MappingConfigError(f"{where}.split: the delimiter must be non-empty text")
    transforms = _compile_transforms(spec.get("transform"), f"{where}.transform")
    table = spec.get("map")
    if table is not None:
        if not isinstance(table, dict):
            raise MappingConfigError(f"{where}.map: must be an object of value -> replacement")
        table = {key_text(k): v for k, v in table.items()}
    template = spec.get("format")
    if template is not None and (not isinstance(template, str) or "{}" not in template):
        raise MappingConfigError(f"{where}.format: must be text containing {{}} where the value goes")

    def shape(item: t.Any) -> t.Any:
        """One value through transform, map and format (MISSING when it comes out empty)."""
        if is_empty(item):
            return MISSING
        for transform in transforms:
            item = transform(item)
        if table is not None:
            item = table.get(key_text(item), table.get("*", item))
            if is_empty(item):
                return MISSING
        if template is not None:
            item = template.replace("{}", to_text(item))
        return item.strip() if isinstance(item, str) else item

    def derived(record: t.Mapping[str, t.Any]) -> t.Any:
        value = base(record)
        if is_empty(value):
            if default is MISSING:
                return MISSING
            value = default
        values = value if isinstance(value, list) else [value]
        if split is not None:
            values = [part for v in values for part in (v.split(split) if isinstance(v, str) else [v])]
        out = [shaped for item in values if not is_empty(shaped := shape(item))]
        if not out:
            return MISSING
        return out if isinstance(value, list) or split is not None else out[0]

    return derived


def _bad_path(path: t.Any, where: str) -> t.NoReturn:
    raise MappingConfigError(f"{where}.path: must be a path or a list of paths, got {path!r}")


def _compile_transforms(spec: t.Any, where: str) -> list[t.Callable[[t.Any], t.Any]]:
    if spec is None:
        return []
    names = spec if isinstance(spec, list) else [spec]
    compiled = []
    for name in names:
        if name not in TRANSFORMS:
            raise MappingConfigError(f"{where}: unknown transform {name!r} (known: {', '.join(sorted(TRANSFORMS))})")
        compiled.append(TRANSFORMS[name])
    return compiled


# --- a whole stream ----------------------------------------------------------------------------


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

    @property
    def source_paths(self) -> list[str]:
        """Every plain path this mapping reads (for warnings about paths that name nothing)."""
        return [p for src in [*self.fields.values(), *self.tags, *self.custom_fields.values()] for p in _paths(src)]

    def map(self, record: t.Mapping[str, t.Any]) -> Mapped:
        """Build the payload and the requests for one record."""
        problems: list[Problem] = []
        if self.when is not None:
            decision = _evaluate(self.when, record, "when", problems)
            if not problems and not _truthy(decision):
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
        if self.spec is objects.TAG_EVENTS:
            if not tags:
                mapped.skipped = "it yields no tag"
                return mapped
            mapped.payload = {**_contact_match(payload), "tags": tags}
            mapped.requests.append(Request("POST", f"tags/{self.action}", mapped.payload))
            return mapped
        if tags and self.tags_mode == "replace":
            payload["tags"] = tags
        mapped.payload = self.spec.compose(payload) if self.spec.compose else payload
        mapped.needs_contact = self.spec.family != "contact" and self.spec.name != "contact" and "contact_id" in payload
        mapped.requests.append(Request("POST", self.spec.endpoint, mapped.payload))
        if tags and self.tags_mode == "add":
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
        target = urllib.parse.quote(str(payload[name]), safe="@")
        mapped.requests.append(Request("DELETE", f"{self.spec.endpoint}/{target}", None))
        return mapped

    def _tags(self, record: t.Mapping[str, t.Any], problems: list[Problem]) -> list[t.Any]:
        tags: list[t.Any] = []
        seen: set[tuple[str, str]] = set()
        for i, source in enumerate(self.tags):
            value = _evaluate(source, record, f"tags[{i}]", problems)
            if is_empty(value):
                continue
            for item in value if isinstance(value, list) else [value]:
                try:
                    tag = as_tag(item)
                except ValueProblem as exc:
                    problems.append(Problem(f"tags[{i}]", str(exc)))
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

    def map(self, record: t.Mapping[str, t.Any], spec: ObjectSpec, problems: list[Problem]) -> list[dict[str, t.Any]]:
        """The items' payloads; problems are named ``items[n].field``."""
        if self.path is None:
            found: t.Any = [record]
        else:
            found = _evaluate(self.path, record, "items", problems)
            if is_empty(found):
                found = []
            elif isinstance(found, dict):
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


def _contact_match(payload: dict[str, t.Any]) -> dict[str, t.Any]:
    """How ``tags/add``/``tags/remove`` name the contact: contact_id when known, else email."""
    if "contact_id" in payload:
        return {"contact_id": payload["contact_id"]}
    return {"email": payload["email"]}


def _truthy(value: t.Any) -> bool:
    if is_empty(value):
        return False
    if isinstance(value, list):
        return any(_truthy(v) for v in value)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "n", "off")
    return bool(value)


def _evaluate(source: Source, record: t.Mapping[str, t.Any], name: str, problems: list[Problem]) -> t.Any:
    try:
        return source(record)
    except ValueProblem as exc:
        problems.append(Problem(name, str(exc)))
        return MISSING


def _paths(source: Source) -> list[str]:
    path = getattr(source, "path", None)
    return [path] if isinstance(path, str) else []


def _constant_null(spec: t.Any) -> bool:
    return isinstance(spec, dict) and set(spec) == {"value"} and spec["value"] is None


# --- entries -----------------------------------------------------------------------------------


def compile_entry(stream: str, entry: t.Any, presets: t.Mapping[str, dict[str, t.Any]]) -> StreamMapping:
    """Compile the ``mappings`` entry for one stream (with its preset applied); report every error."""
    where = f"mappings.{stream}"
    if not isinstance(entry, dict):
        raise MappingConfigError(f"{where}: must be an object, got {entry!r}")
    entry = apply_preset(stream, entry, presets)
    errors: list[str] = []

    def attempt(source: t.Any, at: str) -> Source | None:
        try:
            return compile_source(source, at)
        except MappingConfigError as exc:
            errors.extend(exc.errors)
            return None

    def attempt_tag(spec_: t.Any, at: str) -> Source | None:
        if not isinstance(spec_, dict) or not spec_ or set(spec_) - TAG_OBJECT_KEYS:
            errors.append(f"{at}: a tag object maps some of id, name, date, each to a source")
            return None
        parts = {key: attempt(src, f"{at}.{key}") for key, src in spec_.items()}
        if any(part is None for part in parts.values()):
            return None
        return _tag_builder(t.cast("dict[str, Source]", parts))

    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        known = ", ".join(sorted(ENTRY_KEYS))
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)} (an entry may have {known})")
    object_name = entry.get("object", "contact")
    spec = objects.OBJECTS.get(object_name) if isinstance(object_name, str) else None
    if spec is None:
        raise MappingConfigError(
            *errors,
            f"{where}.object: unknown object {object_name!r} (known: {', '.join(sorted(objects.OBJECTS))})",
        )

    fields: dict[str, Source] = {}
    raw_fields = entry.get("fields") or {}
    if not isinstance(raw_fields, dict):
        errors.append(f"{where}.fields: must be an object of segmetrics_field -> source")
        raw_fields = {}
    for name, source in raw_fields.items():
        if source is None:
            continue  # a preset's field switched off
        if name not in spec.fields:
            errors.append(f"{where}.fields.{name}: {spec.name} has no field {name!r} (known: {', '.join(spec.fields)})")
            continue
        compiled = attempt(source, f"{where}.fields.{name}")
        if compiled is not None:
            fields[name] = compiled
    if spec.one_of and not any(name in raw_fields and raw_fields[name] is not None for name in spec.one_of):
        errors.append(f"{where}.fields: map at least one of {', '.join(spec.one_of)}")

    tags: list[Source] = []
    raw_tags = entry.get("tags") or []
    if raw_tags and not spec.has_tags:
        errors.append(f"{where}.tags: a {spec.name} has no tags")
    elif not isinstance(raw_tags, list):
        errors.append(f"{where}.tags: must be a list of sources")
    else:
        for i, source in enumerate(raw_tags):
            if isinstance(source, dict) and set(source) == {"tag"}:
                compiled = attempt_tag(source["tag"], f"{where}.tags[{i}].tag")
            else:
                compiled = attempt(source, f"{where}.tags[{i}]")
            if compiled is not None:
                tags.append(compiled)

    tags_mode = entry.get("tags_mode", "replace")
    if tags_mode not in TAG_MODES:
        errors.append(f"{where}.tags_mode: must be one of {', '.join(TAG_MODES)}, got {tags_mode!r}")

    custom: dict[str, Source] = {}
    raw_custom = entry.get("custom_fields") or {}
    if raw_custom and not spec.has_custom_fields:
        errors.append(f"{where}.custom_fields: a {spec.name} has no custom fields")
    elif not isinstance(raw_custom, dict):
        errors.append(f"{where}.custom_fields: must be an object of name -> source")
    else:
        for name, source in raw_custom.items():
            if source is None:
                continue  # a preset's custom field switched off
            if not name.strip():
                errors.append(f"{where}.custom_fields: a custom field needs a name")
                continue
            compiled = attempt(source, f"{where}.custom_fields.{name}")
            if compiled is not None:
                if _constant_null(source):
                    compiled.constant_null = True  # type: ignore[attr-defined]
                custom[name] = compiled

    when = attempt(entry["when"], f"{where}.when") if entry.get("when") is not None else None

    action = entry.get("action", "add")
    if "action" in entry and spec is not objects.TAG_EVENTS:
        errors.append(f"{where}.action: only an entry with object 'tags' has an action")
    elif action not in TAG_ACTIONS:
        errors.append(f"{where}.action: must be one of {', '.join(TAG_ACTIONS)}, got {action!r}")
    if spec is objects.TAG_EVENTS and not raw_tags:
        errors.append(f"{where}.tags: a stream of tag events needs at least one tag source")

    items: ItemsMapping | None = None
    raw_items = entry.get("items")
    if spec.item_fields:
        if not isinstance(raw_items, dict) or not isinstance(raw_items.get("fields"), dict):
            errors.append(
                f'{where}.items: an {spec.name} needs items: {{"path": <list in the record>, "fields": '
                f"{{{', '.join(spec.item_fields)}}}}}"
            )
        else:
            unknown_keys = sorted(set(raw_items) - {"path", "fields"})
            if unknown_keys:
                errors.append(f"{where}.items: unknown key(s) {', '.join(unknown_keys)} (path, fields)")
            path = attempt(raw_items["path"], f"{where}.items.path") if raw_items.get("path") is not None else None
            item_fields: dict[str, Source] = {}
            for name, source in raw_items["fields"].items():
                if source is None:
                    continue
                if name not in spec.item_fields:
                    errors.append(
                        f"{where}.items.fields.{name}: an item has no field {name!r} "
                        f"(known: {', '.join(spec.item_fields)})"
                    )
                    continue
                compiled = attempt(source, f"{where}.items.fields.{name}")
                if compiled is not None:
                    item_fields[name] = compiled
            missing = [n for n in spec.item_required if n not in item_fields]
            if missing:
                errors.append(f"{where}.items.fields: map {', '.join(missing)} (SegMetrics requires them)")
            items = ItemsMapping(path, item_fields)
    elif raw_items is not None:
        errors.append(f"{where}.items: a {spec.name} has no items")

    if errors:
        raise MappingConfigError(*errors)
    return StreamMapping(stream, spec, fields, tags, tags_mode, custom, when=when, action=action, items=items)


def _tag_builder(parts: dict[str, Source]) -> Source:
    """``{"tag": {"name": src, "date": src, "id": src}}``: one tag object from several sources."""

    def build(record: t.Mapping[str, t.Any]) -> t.Any:
        tag = {}
        for key, source in parts.items():
            value = source(record)
            if not is_empty(value):
                tag[key] = value[0] if isinstance(value, list) and len(value) == 1 else value
        return tag if ("id" in tag or "name" in tag) else MISSING

    return build


def apply_preset(stream: str, entry: dict[str, t.Any], presets: t.Mapping[str, dict[str, t.Any]]) -> dict[str, t.Any]:
    """The preset's mapping with the entry's own keys over it (``fields``/``custom_fields`` per name).

    ``"preset": "hubspot"`` picks ``hubspot/<stream>``; ``"hubspot/deals"`` names one outright.
    """
    name = entry.get("preset")
    if name is None:
        return entry
    if not isinstance(name, str):
        raise MappingConfigError(f"mappings.{stream}.preset: must be a preset name, got {name!r}")
    chosen = name if name in presets else f"{name}/{stream}"
    if chosen not in presets:
        family = sorted(key for key in presets if key.startswith(f"{name}/"))
        if family:
            raise MappingConfigError(
                f"mappings.{stream}.preset: preset {name!r} has no mapping for a stream named {stream!r} "
                f"(it has {', '.join(family)}; name one of them outright)"
            )
        known = sorted({key.split("/")[0] for key in presets} | set(presets))
        raise MappingConfigError(f"mappings.{stream}.preset: unknown preset {name!r} (known: {', '.join(known)})")
    merged = copy.deepcopy(presets[chosen])
    for key, value in entry.items():
        if key == "preset":
            continue
        if key in ("fields", "custom_fields") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def by_name(stream: str, schema: t.Mapping[str, t.Any]) -> StreamMapping | None:
    """The mapping used without a ``mappings`` setting: properties named like contact fields.

    A stream whose schema has ``email`` or ``contact_id`` is sent as contacts; its properties that
    carry a contact field's name (and ``tags``, ``custom_fields``) are sent, the others dropped.
    Returns None for a stream that cannot be contacts.
    """
    properties = schema.get("properties") or {}
    spec = objects.CONTACT
    if not any(name in properties for name in spec.one_of):
        return None
    fields = {name: compile_path(name, f"{stream}.{name}") for name in spec.fields if name in properties}
    tags = [compile_path("tags", f"{stream}.tags")] if "tags" in properties else []
    custom_object = compile_path("custom_fields", f"{stream}.custom_fields") if "custom_fields" in properties else None
    return StreamMapping(stream, spec, fields, tags, "replace", {}, custom_object)
