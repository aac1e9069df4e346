"""Compiling the config: a stream's ``mappings`` entry (its preset applied) into a StreamMapping.

A mapping entry (one per stream under the ``mappings`` setting) says which SegMetrics object the
stream feeds and where each field comes from. Everything is checked when the config is read, so a
malformed mapping stops the run before any request is made, with every error at once: each section
of an entry has its own compiler below, which returns its compiled part and adds what is wrong to
a shared list of errors. Without a ``mappings`` setting, :func:`by_name` maps contacts by name.
"""

from __future__ import annotations

import copy
import difflib
import typing as t
from dataclasses import dataclass

from target_segmetrics.mapping.mapping import ItemsMapping, StreamMapping, tag_builder
from target_segmetrics.mapping.objects import CONTACT, OBJECTS, TAG_EVENTS, ObjectSpec
from target_segmetrics.mapping.paths import ELEMENT, MappingConfigError, Source, compile_path
from target_segmetrics.mapping.presets import PRESET_OPTIONS, UNKNOWN_WHY
from target_segmetrics.mapping.sources import compile_source
from target_segmetrics.mapping.tagsets import compile_tags_elsewhere

TAG_MODES = ("replace", "add", "own")
ENTRY_KEYS = {
    "object",
    "preset",
    "currency",
    "tags_remove",
    "fields",
    "tags",
    "tags_mode",
    "custom_fields",
    "items",
    "action",
    "when",
    "require",
    "tags_elsewhere",
}
TAG_ACTIONS = ("add", "remove")
TAG_OBJECT_KEYS = {"id", "name", "date"}


Checks = list[tuple[str, tuple[str, ...]]]
"""Per place in the config, the paths it may read: the run stops when the schema declares none of them."""


Requirement = tuple[str, tuple[str, ...], str]
"""Where in the config, paths the stream's schema must declare one of, and why (``require``)."""


@dataclass(frozen=True)
class LookupStream:
    """A stream whose rows are remembered by a key (in the store), not sent: ``{"lookup": {"key": ...}}``."""

    stream: str
    key: Source
    path_checks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """The paths of the key, when the user wrote it (see :func:`path_checks`)."""


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
    checks: Checks = []
    if written:
        _check(spec["key"], f"{where}.lookup.key", ("",), checks)
    return LookupStream(stream, key, tuple(checks))


def lookup_references(entry: t.Any, where: str) -> list[tuple[str, str]]:
    """Every lookup source in an entry: (where it is, the stream it looks up)."""
    found: list[tuple[str, str]] = []
    if isinstance(entry, dict):
        if isinstance(entry.get("lookup"), str):
            found.append((where, entry["lookup"]))
        for name, value in entry.items():
            found += lookup_references(value, f"{where}.{name}")
    elif isinstance(entry, list):
        for i, value in enumerate(entry):
            found += lookup_references(value, f"{where}[{i}]")
    return found


def compile_entry(stream: str, entry: t.Any, presets: t.Mapping[str, dict[str, t.Any]]) -> StreamMapping:
    """Compile the ``mappings`` entry for one stream (with its preset applied); report every error."""
    where = f"mappings.{stream}"
    if not isinstance(entry, dict):
        raise MappingConfigError(f"{where}: must be an object, got {entry!r}")
    written = entry
    entry = apply_preset(stream, entry, presets)
    if "ignore" in entry or "lookup" in entry:
        what = (
            f"not mapped by preset {written['preset']!r}: {entry['ignore']}" if "ignore" in entry else "a lookup source"
        )
        raise MappingConfigError(f"{where}: {what}")
    errors: list[str] = []
    _check_keys(entry, where, errors)
    spec = _compile_object(entry, where, errors)
    fields = _compile_fields(entry, spec, where, errors)
    tags, tags_mode = _compile_tags(entry, spec, where, errors)
    tags_remove = _compile_tags_remove(entry, spec, tags_mode, where, errors)
    custom = _compile_custom_fields(entry, spec, where, errors)
    when = _compile_when(entry, where, errors)
    action = _compile_action(entry, spec, where, errors)
    items = _compile_items(entry, spec, where, errors)
    requires = _compile_require(entry, where, errors)
    elsewhere = compile_tags_elsewhere(entry.get("tags_elsewhere"), tags_mode, f"{where}.tags_elsewhere", errors)
    if errors:
        raise MappingConfigError(*errors)
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
        path_checks=path_checks(written, where),
        requires=requires,
        tags_elsewhere=elsewhere,
    )


def path_checks(written: dict[str, t.Any], where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Per source the user wrote (not the preset's), where it is and the paths it may read; a path
    read in each element of a list is checked as ``list.*.path`` (see :func:`schema_has_path`)."""
    sources: list[tuple[str, t.Any]] = []
    for section in ("fields", "custom_fields"):
        raw = written.get(section)
        if isinstance(raw, dict):
            sources += [(f"{where}.{section}.{name}", src) for name, src in raw.items() if src is not None]
    for section in ("tags", "tags_remove"):
        raw = written.get(section)
        sources += [(f"{where}.{section}[{i}]", src) for i, src in enumerate(raw if isinstance(raw, list) else [])]
    if written.get("when") is not None:
        sources.append((f"{where}.when", written["when"]))
    if isinstance(written.get("items"), dict) and written["items"].get("path") is not None:
        sources.append((f"{where}.items.path", written["items"]["path"]))
    checks: Checks = []
    for at, src in sources:
        _check(src, at, ("",), checks)
    return tuple(checks)


def _check(source: t.Any, at: str, prefixes: tuple[str, ...], checks: Checks) -> None:
    """Add the check of one source (read under each of ``prefixes``) at ``at``; an alternative that
    is not a path (a lookup, a constant) can always be what finds the value, so it is not checked."""
    paths, other = _paths_of(source, at, prefixes, checks)
    if paths and not other:
        checks.append((at, tuple(paths)))


def _paths_of(source: t.Any, at: str, prefixes: tuple[str, ...], checks: Checks) -> tuple[list[str], bool]:
    """The paths a source may read, and whether it has another kind of alternative. The record paths
    of its options (``when``, ``check.source``, ``where.is``, a lookup's ``key``) and the paths read in
    each element of the list it finds (``where.field``, ``latest``, ``field``, an ``each`` tag's parts)
    are checks of their own."""
    if isinstance(source, str):
        return [prefix + source.strip() for prefix in prefixes], False
    if isinstance(source, list):
        paths: list[str] = []
        other = False
        for i, item in enumerate(source):
            found, more = _paths_of(item, f"{at}[{i}]", prefixes, checks)
            paths += found
            other = other or more
        return paths, other
    if not isinstance(source, dict):
        return [], True
    if isinstance(source.get("tag"), dict):  # a tag object: its parts read the record, or each element
        parts_read_in = prefixes
        if "each" in source:
            _check(source["each"], f"{at}.each", prefixes, checks)
            parts_read_in = _elements_of(source["each"], prefixes) or ()
        for key, part in source["tag"].items() if parts_read_in else ():
            _check(part, f"{at}.tag.{key}", parts_read_in, checks)
        return [], True
    where: dict[str, t.Any] = source["where"] if isinstance(source.get("where"), dict) else {}
    check: dict[str, t.Any] = source["check"] if isinstance(source.get("check"), dict) else {}
    record_options = {"when": source.get("when"), "where.is": where.get("is"), "check.source": check.get("source")}
    for name, option in record_options.items():
        if option is not None:
            _check(option, f"{at}.{name}", prefixes, checks)
    if "lookup" in source:
        _check(source.get("key"), f"{at}.key", prefixes, checks)
        return [], True
    if "path" not in source:
        return [], True
    elements = _elements_of(source["path"], prefixes)
    element_options = {"where.field": where.get("field"), "latest": source.get("latest"), "field": source.get("field")}
    for name, option in element_options.items():
        if elements and isinstance(option, str):
            _check(option, f"{at}.{name}", elements, checks)
    return _paths_of(source["path"], at, prefixes, checks)


def _elements_of(source: t.Any, prefixes: tuple[str, ...]) -> tuple[str, ...] | None:
    """The prefixes under which a path read in each element of what ``source`` finds is checked
    (``list.*.``); None when that is not known from the config (a lookup's rows, a constant)."""
    if isinstance(source, str):
        return tuple(f"{prefix}{source.strip()}.{ELEMENT}." for prefix in prefixes)
    if isinstance(source, list):
        found = [_elements_of(item, prefixes) for item in source]
        return None if any(f is None for f in found) else tuple(p for f in found for p in t.cast("tuple[str, ...]", f))
    if isinstance(source, dict) and "path" in source and "lookup" not in source:
        elements = _elements_of(source["path"], prefixes)
        field = source.get("field")
        if elements is None or field is None:
            return elements
        return tuple(f"{prefix}{field.strip()}.{ELEMENT}." for prefix in elements) if isinstance(field, str) else None
    return None


# --- one compiler per section of an entry -------------------------------------------------------


def _attempt(source: t.Any, at: str, errors: list[str]) -> Source | None:
    """The compiled source, or None with its errors added to ``errors``."""
    try:
        return compile_source(source, at)
    except MappingConfigError as exc:
        errors.extend(exc.errors)
        return None


def _check_keys(entry: dict[str, t.Any], where: str, errors: list[str]) -> None:
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        known = ", ".join(sorted(ENTRY_KEYS))
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)} (an entry may have {known})")


def _compile_object(entry: dict[str, t.Any], where: str, errors: list[str]) -> ObjectSpec:
    """``object``: without a known object nothing else can be checked, so this one stops here."""
    object_name = entry.get("object", "contact")
    spec = OBJECTS.get(object_name) if isinstance(object_name, str) else None
    if spec is None:
        raise MappingConfigError(
            *errors,
            f"{where}.object: unknown object {object_name!r} (known: {', '.join(sorted(OBJECTS))})",
        )
    return spec


def _compile_fields(entry: dict[str, t.Any], spec: ObjectSpec, where: str, errors: list[str]) -> dict[str, Source]:
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
        compiled = _attempt(source, f"{where}.fields.{name}", errors)
        if compiled is not None:
            fields[name] = compiled
    if spec.one_of and not any(name in raw_fields and raw_fields[name] is not None for name in spec.one_of):
        errors.append(f"{where}.fields: map at least one of {', '.join(spec.one_of)}")
    return fields


def _compile_tags(entry: dict[str, t.Any], spec: ObjectSpec, where: str, errors: list[str]) -> tuple[list[Source], str]:
    """``tags`` (sources, or ``{"tag": {...}}`` objects built from several) and ``tags_mode``."""
    tags: list[Source] = []
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

    tags_mode = entry.get("tags_mode", "replace")
    if tags_mode not in TAG_MODES:
        errors.append(f"{where}.tags_mode: must be one of {', '.join(TAG_MODES)}, got {tags_mode!r}")
    return tags, tags_mode


def _compile_tags_remove(
    entry: dict[str, t.Any], spec: ObjectSpec, tags_mode: str, where: str, errors: list[str]
) -> list[Source]:
    """``tags_remove``: sources of tags to remove first (with ``tags_mode: add`` only)."""
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


def _compile_tag_object(source: dict[str, t.Any], at: str, errors: list[str]) -> Source | None:
    """``{"tag": {"name": src, ...}}``, one tag object; with ``"each": <list in the record>``, one per
    element of the list, its sources read in the element."""
    unknown = sorted(set(source) - {"tag", "each"})
    if unknown or "tag" not in source:
        said = f"unknown key(s) {', '.join(unknown)} " if unknown else "'each' without 'tag' "
        errors.append(f"{at}: {said}(a tag object has 'tag', and 'each' for one tag per element of a list)")
        return None
    spec = source["tag"]
    if not isinstance(spec, dict) or not spec or set(spec) - TAG_OBJECT_KEYS:
        errors.append(f"{at}.tag: a tag object maps some of id, name, date to a source")
        return None
    parts = {key: _attempt(src, f"{at}.tag.{key}", errors) for key, src in spec.items()}
    each = _attempt(source["each"], f"{at}.each", errors) if "each" in source else None
    if any(part is None for part in parts.values()) or ("each" in source and each is None):
        return None
    return tag_builder(t.cast("dict[str, Source]", parts), each)


def _compile_custom_fields(
    entry: dict[str, t.Any], spec: ObjectSpec, where: str, errors: list[str]
) -> dict[str, Source]:
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
            compiled = _attempt(source, f"{where}.custom_fields.{name}", errors)
            if compiled is not None:
                if _constant_null(source):
                    compiled.constant_null = True  # type: ignore[attr-defined]
                custom[name] = compiled
    return custom


def _constant_null(spec: t.Any) -> bool:
    return isinstance(spec, dict) and set(spec) == {"value"} and spec["value"] is None


def _compile_when(entry: dict[str, t.Any], where: str, errors: list[str]) -> Source | None:
    """``when``: a source; only records for which it is true are sent."""
    return _attempt(entry["when"], f"{where}.when", errors) if entry.get("when") is not None else None


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
    action = entry.get("action", "add")
    if "action" in entry and spec is not TAG_EVENTS:
        errors.append(f"{where}.action: only an entry with object 'tags' has an action")
    elif action not in TAG_ACTIONS:
        errors.append(f"{where}.action: must be one of {', '.join(TAG_ACTIONS)}, got {action!r}")
    if spec is TAG_EVENTS and not entry.get("tags"):
        errors.append(f"{where}.tags: a stream of tag events needs at least one tag source")
    return action


def _compile_items(entry: dict[str, t.Any], spec: ObjectSpec, where: str, errors: list[str]) -> ItemsMapping | None:
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
    unknown_keys = sorted(set(raw_items) - {"path", "fields", "or_self"})
    if unknown_keys:
        errors.append(f"{where}.items: unknown key(s) {', '.join(unknown_keys)} (path, fields, or_self)")
    or_self = raw_items.get("or_self", False)
    if not isinstance(or_self, bool) or (or_self and raw_items.get("path") is None):
        errors.append(f"{where}.items.or_self: true or false, with a path (the record is the item when it finds none)")
    path = _attempt(raw_items["path"], f"{where}.items.path", errors) if raw_items.get("path") is not None else None
    item_fields: dict[str, Source] = {}
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
    return ItemsMapping(path, item_fields, or_self is True)


# --- presets and name matching ------------------------------------------------------------------


PRESET_OPTION_KEYS = ("currency",)


def apply_preset(stream: str, entry: dict[str, t.Any], presets: t.Mapping[str, dict[str, t.Any]]) -> dict[str, t.Any]:
    """The preset's mapping with the entry's own keys over it (``fields``/``custom_fields`` per name).

    ``"preset": "hubspot"`` picks ``hubspot/<stream>``; ``"hubspot/deals"`` names one outright. The
    result may also be a lookup source (``{"lookup": ...}``) or ``{"ignore": why}``: a stream of the
    family the preset has no mapping for, or one it names as not for SegMetrics.
    """
    name = entry.get("preset")
    if name is None:
        return entry
    where = f"mappings.{stream}"
    if not isinstance(name, str):
        raise MappingConfigError(f"{where}.preset: must be a preset name, got {name!r}")
    chosen = name if name in presets else f"{name}/{stream}"
    own = {key: value for key, value in entry.items() if key != "preset"}
    if chosen not in presets:
        family = sorted(key for key in presets if key.startswith(f"{name}/"))
        if not family:
            known = sorted({key.split("/")[0] for key in presets} | set(presets))
            raise MappingConfigError(f"{where}.preset: unknown preset {name!r} (known: {', '.join(known)})")
        streams = [key.split("/", 1)[1] for key in family]
        close = difflib.get_close_matches(stream, streams, n=1, cutoff=0.75)
        base: dict[str, t.Any] = {"ignore": UNKNOWN_WHY + (f"; did you mean {close[0]!r}?" if close else "")}
    else:
        options = {key: own.pop(key) for key in PRESET_OPTION_KEYS if key in own}
        if chosen in PRESET_OPTIONS:
            _check_options(options, where)
            base = PRESET_OPTIONS[chosen](**options)
        elif options:
            raise MappingConfigError(f"{where}: {', '.join(options)} is an option of hubspot/deals only")
        else:
            base = presets[chosen]
    if "lookup" in base or "ignore" in base:
        if own:
            what = "a lookup source" if "lookup" in base else "not mapped"
            raise MappingConfigError(
                f"{where}: with preset {name!r} this stream is {what}; it takes no other keys "
                f"(got {', '.join(sorted(own))}): write a whole entry without 'preset' to map it your way"
            )
        return copy.deepcopy(base)
    merged = copy.deepcopy(base)
    for key, value in own.items():
        if key in ("fields", "custom_fields") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def _check_options(options: dict[str, t.Any], where: str) -> None:
    currency = options.get("currency")
    if currency is not None and not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise MappingConfigError(f'{where}.currency: must be a currency code such as "USD", got {currency!r}')
    if currency is not None:
        options["currency"] = currency.upper()


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
    fields = {name: compile_path(name, f"{stream}.{name}") for name in spec.fields if name in properties}
    tags = [compile_path("tags", f"{stream}.tags")] if "tags" in properties else []
    custom_object = compile_path("custom_fields", f"{stream}.custom_fields") if "custom_fields" in properties else None
    return StreamMapping(stream, spec, fields, tags, "replace", {}, custom_object)
