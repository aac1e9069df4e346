"""Compiling the config: a stream's ``mappings`` entry (its preset applied) into a StreamMapping.

A mapping entry (one per stream under the ``mappings`` setting) says which SegMetrics object the
stream feeds and where each field comes from. Everything is checked when the config is read, so a
malformed mapping stops the run before any request is made, with every error at once: each section
of an entry has its own compiler below, which returns its compiled part and adds what is wrong to
a shared list of errors. Without a ``mappings`` setting, :func:`by_name` maps contacts by name.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from target_segmetrics.mapping.formats import with_currency
from target_segmetrics.mapping.mapping import DEFAULTS, ItemsMapping, StreamMapping
from target_segmetrics.mapping.nodes import Lookup, Node, Predicate, TagObject, checks_of
from target_segmetrics.mapping.objects import CONTACT, OBJECTS, TAG_EVENTS, ObjectSpec
from target_segmetrics.mapping.paths import MappingConfigError, unknown_keys
from target_segmetrics.mapping.presets import Preset
from target_segmetrics.mapping.resolving import Resolved, resolve
from target_segmetrics.mapping.sources import compile_path, compile_predicate, compile_source
from target_segmetrics.mapping.steps import Step
from target_segmetrics.mapping.tagsets import compile_tags_elsewhere

TAG_MODES = ("replace", "add", "own")
ENTRY_KEYS: dict[str, str] = {
    "object": "the SegMetrics object the stream feeds (default contact)",
    "currency": "the currency the amounts are in (an ISO 4217 code): every plain cents transform reads them in it",
    "preset": "a mapping shipped with the target, the entry's own keys over it",
    "fields": "segmetrics_field -> source (null: a preset's field switched off)",
    "custom_fields": "name -> source (contacts; a constant null removes the custom field)",
    "tags": "a list of sources of tags, or tag objects (contacts, tag events)",
    "tags_mode": "replace (default: the record's tags are the contact's), add, or own (its own tags)",
    "tags_remove": "with tags_mode add or own: sources of tags removed first",
    "items": 'an invoice\'s line items: {"path": <list in the record>, "fields": {...}}',
    "action": "object tags only: add (default) or remove",
    "when": "a predicate: only records for which it holds are sent",
    "require": '[{"paths": [path, ...], "why": "..."}]: the schema must declare one of the paths',
    "tags_elsewhere": "with tags_mode own: other stream -> properties of this schema ruling its tags out",
}
"""Every key of a mapping entry and what it holds (``docs/reference/mapping.md`` is checked against it)."""
ITEMS_KEYS: dict[str, str] = {
    "path": "the list of items in the record (none: the record is the item)",
    "fields": "item field -> source",
}
TAG_OBJECT_KEYS: dict[str, str] = {
    "tag": "the tag's parts: some of id, name, date, each a source",
    "each": "a source of a list: one tag per element, its parts read in the element",
}
TAG_PARTS = ("id", "name", "date")
TAG_ACTIONS = ("add", "remove")


Requirement = tuple[str, tuple[str, ...], str]
"""Where in the config, paths the stream's schema must declare one of, and why (``require``)."""


@dataclass(frozen=True)
class LookupStream:
    """A stream whose rows are remembered by a key (in the store), not sent: ``{"lookup": {"key": ...}}``."""

    stream: str
    key: Node
    path_checks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """The paths of the key, when the user wrote it."""


def compile_lookup_stream(stream: str, entry: dict[str, t.Any], written: bool = True) -> LookupStream:
    """``"<stream>": {"lookup": {"key": SOURCE}}``: the key each row is remembered under; ``written``:
    the user wrote it (a preset's is not checked against the schema)."""
    where = f"mappings.{stream}"
    errors: list[str] = []
    if set(entry) != {"lookup"}:
        errors.append(f"{where}: a lookup source has only 'lookup' (its rows are not sent), got {sorted(entry)}")
    spec = entry["lookup"]
    if not isinstance(spec, dict) or set(spec) != {"key"}:
        raise MappingConfigError(*errors, f'{where}.lookup: must be {{"key": <source of the key in each row>}}')
    key = _attempt(spec["key"], f"{where}.lookup.key", errors)
    if errors or key is None:
        raise MappingConfigError(*errors)
    return LookupStream(stream, key, tuple(checks_of(key)) if written else ())


def lookup_references(nodes: t.Iterable[Node | Step]) -> list[tuple[str, str]]:
    """Every lookup in trees of nodes: (where it is, the stream it looks up)."""
    found: list[tuple[str, str]] = []
    for node in nodes:
        if isinstance(node, Lookup):
            found.append((node.where, node.stream))
        for child in vars(node).values():
            for one in child.values() if isinstance(child, dict) else child if isinstance(child, list) else [child]:
                if isinstance(one, (Node, Step)):
                    found += lookup_references([one])
    return found


def compile_entry(stream: str, entry: t.Any, presets: t.Mapping[str, t.Any]) -> StreamMapping:
    """Compile the ``mappings`` entry for one stream (its preset applied); report every error."""
    return compile_resolved(stream, resolve(stream, entry, presets))


def compile_resolved(stream: str, resolved: Resolved) -> StreamMapping:
    """Compile an entry whose preset is applied (:func:`resolve`, once per entry)."""
    where = f"mappings.{stream}"
    entry, written = resolved.entry, resolved.written
    if "ignore" in entry or "lookup" in entry:
        what = (
            f"not mapped by preset {written['preset']!r}: {entry['ignore']}" if "ignore" in entry else "a lookup source"
        )
        raise MappingConfigError(f"{where}: {what}")
    errors: list[str] = []
    unknown = set(entry) - set(ENTRY_KEYS)
    if unknown:
        errors.append(unknown_keys(where, unknown, ENTRY_KEYS, "an entry"))
    entry = with_currency(entry, where)
    spec = _compile_object(entry, where, errors)
    fields = _compile_fields(entry, spec, where, errors)
    tags, tags_mode = _compile_tags(entry, spec, where, errors)
    tags_remove = _compile_tags_remove(entry, spec, tags_mode, where, errors)
    custom = _compile_custom_fields(entry, spec, where, errors)
    when = _compile_when(entry, where, errors)
    action = _compile_action(entry, spec, where, errors)
    items = _compile_items(entry, spec, where, errors, resolved.preset)
    requires = _compile_require(entry, where, errors)
    if resolved.preset is not None:
        requires += tuple((where, paths, why) for paths, why in resolved.preset.requires)
    elsewhere = compile_tags_elsewhere(entry.get("tags_elsewhere"), tags_mode, f"{where}.tags_elsewhere", errors)
    if errors:
        raise MappingConfigError(*errors)
    # The schema check reads the paths the user wrote (a preset's own are not checked: taps differ).
    own: list[Node | None] = [node for name, node in fields.items() if name in (written.get("fields") or {})]
    own += [node for name, node in custom.items() if name in (written.get("custom_fields") or {})]
    own += (tags if "tags" in written else []) + (tags_remove if "tags_remove" in written else [])
    own += [when if "when" in written else None, items.path if items is not None and "items" in written else None]
    return StreamMapping(
        stream,
        spec,
        fields,
        tags,
        tags_mode,
        custom,
        when=when,
        action=action,
        items=items,
        tags_remove=tags_remove,
        path_checks=tuple(found for node in own for found in checks_of(node)),
        requires=requires,
        written=(
            *(node for node in own if node is not None),
            *(items.fields.values() if items and "items" in written else ()),
        ),
        tags_elsewhere=elsewhere,
    )


# --- one compiler per section of an entry -------------------------------------------------------


def _attempt(source: t.Any, at: str, errors: list[str]) -> Node | None:
    """The compiled source, or None with its errors added to ``errors``."""
    try:
        return compile_source(source, at)
    except MappingConfigError as exc:
        errors.extend(exc.errors)
        return None


def _compile_object(entry: dict[str, t.Any], where: str, errors: list[str]) -> ObjectSpec:
    """``object``: without a known object nothing else can be checked, so this one stops here."""
    object_name = entry.get("object", DEFAULTS["object"])
    spec = OBJECTS.get(object_name) if isinstance(object_name, str) else None
    if spec is None:
        raise MappingConfigError(
            *errors,
            f"{where}.object: unknown object {object_name!r} (known: {', '.join(sorted(OBJECTS))})",
        )
    return spec


def _compile_fields(entry: dict[str, t.Any], spec: ObjectSpec, where: str, errors: list[str]) -> dict[str, Node]:
    fields: dict[str, Node] = {}
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
        compiled = _attempt(source, f"{where}.fields.{name}", errors)
        if compiled is not None:
            fields[name] = compiled
    if spec.one_of and not any(name in raw_fields and raw_fields[name] is not None for name in spec.one_of):
        errors.append(f"{where}.fields: map at least one of {', '.join(spec.one_of)}")
    return fields


def _compile_tags(entry: dict[str, t.Any], spec: ObjectSpec, where: str, errors: list[str]) -> tuple[list[Node], str]:
    """``tags`` (sources, or ``{"tag": {...}}`` objects built from several) and ``tags_mode``."""
    tags: list[Node] = []
    raw_tags = entry.get("tags") or []
    if raw_tags and not spec.has_tags:
        errors.append(f"{where}.tags: a {spec.name} has no tags")
    elif not isinstance(raw_tags, list):
        errors.append(f"{where}.tags: must be a list of sources")
    else:
        for i, source in enumerate(raw_tags):
            if isinstance(source, dict) and ("tag" in source or "each" in source):
                compiled = _compile_tag_object(source, f"{where}.tags[{i}]", errors)
            else:
                compiled = _attempt(source, f"{where}.tags[{i}]", errors)
            if compiled is not None:
                tags.append(compiled)

    tags_mode = entry.get("tags_mode", DEFAULTS["tags_mode"])
    if tags_mode not in TAG_MODES:
        errors.append(f"{where}.tags_mode: must be one of {', '.join(TAG_MODES)}, got {tags_mode!r}")
    return tags, tags_mode


def _compile_tags_remove(
    entry: dict[str, t.Any], spec: ObjectSpec, tags_mode: str, where: str, errors: list[str]
) -> list[Node]:
    """``tags_remove``: sources of tags to remove first (with ``tags_mode: add`` or ``own``)."""
    raw = entry.get("tags_remove")
    if raw is None:
        return []
    if not spec.has_tags or spec is TAG_EVENTS or tags_mode not in ("add", "own"):
        errors.append(f"{where}.tags_remove: goes with a contact stream's tags_mode 'add' or 'own'")
        return []
    if not isinstance(raw, list):
        errors.append(f"{where}.tags_remove: must be a list of sources")
        return []
    compiled = [_attempt(source, f"{where}.tags_remove[{i}]", errors) for i, source in enumerate(raw)]
    return [source for source in compiled if source is not None]


def _compile_tag_object(source: dict[str, t.Any], at: str, errors: list[str]) -> Node | None:
    """``{"tag": {"name": src, ...}}``, one tag object; with ``"each": <list in the record>``, one per
    element of the list, its sources read in the element."""
    unknown = set(source) - set(TAG_OBJECT_KEYS)
    if unknown:
        errors.append(unknown_keys(at, unknown, TAG_OBJECT_KEYS, "a tag object"))
        return None
    if "tag" not in source:
        errors.append(f"{at}: 'each' without 'tag' (a tag object has 'tag', and 'each' for one tag per element)")
        return None
    spec = source["tag"]
    if not isinstance(spec, dict) or not spec or set(spec) - set(TAG_PARTS):
        errors.append(f"{at}.tag: a tag object maps some of {', '.join(TAG_PARTS)} to a source")
        return None
    parts = {key: _attempt(src, f"{at}.tag.{key}", errors) for key, src in spec.items()}
    each = _attempt(source["each"], f"{at}.each", errors) if "each" in source else None
    if any(part is None for part in parts.values()) or ("each" in source and each is None):
        return None
    return TagObject(at, t.cast("dict[str, Node]", parts), each)


def _compile_custom_fields(entry: dict[str, t.Any], spec: ObjectSpec, where: str, errors: list[str]) -> dict[str, Node]:
    custom: dict[str, Node] = {}
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
            compiled = _attempt(source, f"{where}.custom_fields.{name}", errors)
            if compiled is not None:
                custom[name] = compiled
    return custom


def _compile_when(entry: dict[str, t.Any], where: str, errors: list[str]) -> Predicate | None:
    """``when``: a predicate; only records for which it is true are sent."""
    if entry.get("when") is None:
        return None
    try:
        return compile_predicate(entry["when"], f"{where}.when")
    except MappingConfigError as exc:
        errors.extend(exc.errors)
        return None


def _compile_require(entry: dict[str, t.Any], where: str, errors: list[str]) -> tuple[Requirement, ...]:
    """``require``: ``[{"paths": [path, ...], "why": "..."}]``: the stream's schema must declare one of
    the paths, or the run stops before its first record, saying why (a preset's own too)."""
    raw = entry.get("require")
    if raw is None:
        return ()
    shape = 'must be a list of {"paths": [path, ...], "why": "what goes wrong without them"}'
    if not isinstance(raw, list):
        errors.append(f"{where}.require: {shape}")
        return ()
    found: list[Requirement] = []
    for i, item in enumerate(raw):
        paths = item.get("paths") if isinstance(item, dict) else None
        why = item.get("why") if isinstance(item, dict) else None
        if (
            set(item if isinstance(item, dict) else ()) != {"paths", "why"}
            or not isinstance(paths, list)
            or not paths
            or not all(isinstance(p, str) and p.strip() for p in paths)
            or not isinstance(why, str)
        ):
            errors.append(f"{where}.require[{i}]: {shape}")
            continue
        found.append((where, tuple(p.strip() for p in paths), why))
    return tuple(found)


def _compile_action(entry: dict[str, t.Any], spec: ObjectSpec, where: str, errors: list[str]) -> str:
    """``action`` (tag events only: add or remove), and a stream of tag events needs a tag source."""
    action = entry.get("action", DEFAULTS["action"])
    if "action" in entry and spec is not TAG_EVENTS:
        errors.append(f"{where}.action: only an entry with object 'tags' has an action")
    elif action not in TAG_ACTIONS:
        errors.append(f"{where}.action: must be one of {', '.join(TAG_ACTIONS)}, got {action!r}")
    if spec is TAG_EVENTS and not entry.get("tags"):
        errors.append(f"{where}.tags: a stream of tag events needs at least one tag source")
    return action


def _compile_items(
    entry: dict[str, t.Any], spec: ObjectSpec, where: str, errors: list[str], preset: Preset | None
) -> ItemsMapping | None:
    """``items``: where an invoice's line items are in the record, and each item's fields."""
    raw_items = entry.get("items")
    if not spec.item_fields:
        if raw_items is not None:
            errors.append(f"{where}.items: a {spec.name} has no items")
        return None
    if not isinstance(raw_items, dict) or not isinstance(raw_items.get("fields"), dict):
        errors.append(
            f'{where}.items: an {spec.name} needs items: {{"path": <list in the record>, "fields": '
            f"{{{', '.join(spec.item_fields)}}}}}"
        )
        return None
    unknown = set(raw_items) - set(ITEMS_KEYS)
    if unknown:
        errors.append(unknown_keys(f"{where}.items", unknown, ITEMS_KEYS, "items"))
    path = _attempt(raw_items["path"], f"{where}.items.path", errors) if raw_items.get("path") is not None else None
    item_fields: dict[str, Node] = {}
    for name, source in raw_items["fields"].items():
        if source is None:
            continue
        if name not in spec.item_fields:
            errors.append(
                f"{where}.items.fields.{name}: an item has no field {name!r} (known: {', '.join(spec.item_fields)})"
            )
            continue
        compiled = _attempt(source, f"{where}.items.fields.{name}", errors)
        if compiled is not None:
            item_fields[name] = compiled
    missing = [n for n in spec.item_required if n not in item_fields]
    if missing:
        errors.append(f"{where}.items.fields: map {', '.join(missing)} (SegMetrics requires them)")
    # A preset's own option (the deals': a deal without line items is its own one item).
    return ItemsMapping(path, item_fields, or_self=preset is not None and preset.items_or_self and path is not None)


# --- name matching ------------------------------------------------------------------------------


def by_name(stream: str, schema: t.Mapping[str, t.Any]) -> StreamMapping | None:
    """The mapping used without a ``mappings`` setting: properties named like contact fields.

    A stream whose schema has ``email`` or ``contact_id`` is sent as contacts; its properties that
    carry a contact field's name (and ``tags``, ``custom_fields``) are sent, the others dropped.
    Returns None for a stream that cannot be contacts.
    """
    properties = schema.get("properties") or {}
    spec = CONTACT
    if not any(name in properties for name in spec.one_of):
        return None
    fields: dict[str, Node] = {
        name: compile_path(name, f"{stream}.{name}") for name in spec.fields if name in properties
    }
    tags: list[Node] = [compile_path("tags", f"{stream}.tags")] if "tags" in properties else []
    custom_object = compile_path("custom_fields", f"{stream}.custom_fields") if "custom_fields" in properties else None
    return StreamMapping(stream, spec, fields, tags, custom_fields_object=custom_object)
