"""Sources: where a mapped value comes from in a record, compiled into a function of the record.

Source forms (see the README's mapping guide):

- ``"properties.email"``: a path (``paths.py``); dots go into objects, an integer segment indexes a
  list, and a flattened key (``properties__email``, from the SDK's flattening) is found too;
- ``["a", "b"]``: the first source with a non-empty value wins;
- ``{"value": X}``: a constant;
- ``{"path": ..., "where": {...}, "latest": ..., "field": ..., "default": ..., "split": ";",
  "transform": ..., "map": {...}, "format": "..."}``: applied in that order: look up, keep the list's
  elements that match ``where``, keep only the one whose ``latest`` is latest, read ``field`` in each,
  default when empty, split text into several values, transform each, map each through the lookup
  table, write each into the template;
- ``"when": SOURCE`` in a source object: the source finds nothing unless ``when`` finds a true value
  in the record (see :func:`truthy`).
"""

from __future__ import annotations

import contextvars
import copy
import typing as t
import urllib.parse

from target_segmetrics.mapping.formats import cents_in, date_in, units_to_cents
from target_segmetrics.mapping.paths import MISSING, MappingConfigError, Source, compile_path
from target_segmetrics.mapping.values import (
    ValueProblem,
    as_boolean,
    as_whole,
    key_text,
    opened,
    to_moment,
    to_number,
    to_segmetrics_date,
    to_segmetrics_datetime,
    to_text,
    unwrap,
)

OPTION_KEYS = {
    "path",
    "value",
    "lookup",
    "key",
    "field",
    "all",
    "wait",
    "where",
    "latest",
    "when",
    "default",
    "split",
    "transform",
    "map",
    "format",
    "check",
}
LOOKUP_KEYS = {"lookup", "key", "all", "wait"}
WHERE_KEYS = {"field", "in", "not_in", "is"}
CHECK_KEYS = {"source", "in", "otherwise"}


class LookupPending(ValueProblem):
    """A lookup found no row yet: the record waits (is parked) instead of being rejected."""

    def __init__(self, stream: str, key: str) -> None:
        super().__init__(f"no row of lookup stream {stream!r} for key {key!r} yet")
        self.waiting = f"{stream}[{key}]"


class Lookups(t.Protocol):
    """Where lookup rows come from (the target's store), and whether a record may still wait for one."""

    def rows(self, stream: str, key: str) -> list[dict]: ...

    def may_wait(self, stream: str) -> bool:
        """Whether a row of ``stream`` may still come in this run (it is a declared lookup source
        and the input has not ended)."""
        ...


LOOKUPS: contextvars.ContextVar[Lookups | None] = contextvars.ContextVar("segmetrics_lookups", default=None)
"""The rows that lookup sources read, set by the delivery for the run (records are mapped on the
reader thread, where it is set)."""


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


def truthy(value: t.Any) -> bool:
    """Whether a value says yes: not empty, not false, not zero (``0.0`` as text too), and not text
    like "false", "no" or "off"; a list says yes when any of its values does; an older tap-hubspot's
    ``{"value": x}`` wrapper says what ``x`` says."""
    value = unwrap(value)
    if is_empty(value):
        return False
    if isinstance(value, list):
        return any(truthy(v) for v in value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("false", "no", "n", "off"):
            return False
        try:
            return float(text) != 0
        except ValueError:
            return True
    return bool(value)


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
"""Transforms by name; those written ``name:ARGUMENT`` are made on demand by :data:`MADE_TRANSFORMS`."""


def url_param(name: str) -> t.Callable[[t.Any], t.Any]:
    """The value of query parameter ``name`` in a URL (MISSING when the URL has none). The query is
    what follows the first ``?`` (up to a ``#``), read so even where the rest of the URL is malformed
    (``urlsplit`` refuses a broken host, and the UTM parameters are still there)."""

    def read(value: t.Any) -> t.Any:
        query = to_text(value).strip().split("#", 1)[0].partition("?")[2]
        found = urllib.parse.parse_qs(query).get(name)
        return found[0] if found else MISSING

    return read


MADE_TRANSFORMS: dict[str, t.Callable[[str], t.Callable[[t.Any], t.Any]]] = {
    "url_param": url_param,  # url_param:utm_source, a URL's query parameter
    "date": date_in,  # date:%m/%d/%Y, a date in a known format
    "cents": cents_in,  # cents:JPY, an amount in a known currency
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
    if sum(name in spec for name in ("path", "value", "lookup")) != 1:
        raise MappingConfigError(f"{where}: a source object needs exactly one of 'path', 'value' or 'lookup'")
    if "lookup" not in spec and LOOKUP_KEYS & set(spec):
        raise MappingConfigError(f"{where}: {', '.join(sorted(LOOKUP_KEYS & set(spec)))} go with 'lookup' only")
    if "value" in spec and {"where", "latest", "field"} & set(spec):
        raise MappingConfigError(f"{where}: where, latest and field go with 'path' or 'lookup'")

    base: Source
    if "lookup" in spec:
        base = _compile_lookup(spec, where)
    elif "value" in spec:
        constant = spec["value"]

        def base(_record: t.Mapping[str, t.Any]) -> t.Any:
            return copy.copy(constant)
    else:
        path = spec["path"]
        base = compile_source(path if isinstance(path, (str, list)) else _bad_path(path, where), where)
        base = _elements(base, spec, where)

    if len(spec) == 1 and "value" in spec:
        # A bare constant: {"value": null} stays null (it removes a custom field).
        return base
    condition = compile_source(spec["when"], f"{where}.when") if "when" in spec else None
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
    check = _compile_check(spec.get("check"), f"{where}.check")
    template = spec.get("format")
    if template is not None and (not isinstance(template, str) or "{}" not in template):
        raise MappingConfigError(f"{where}.format: must be text containing {{}} where the value goes")

    def shape(item: t.Any) -> t.Any:
        """One value through transform, map and format (MISSING when it comes out empty)."""
        if is_empty(item):
            return MISSING
        for transform in transforms:
            item = transform(item)
            if is_empty(item):
                return MISSING
        if table is not None:
            item = table.get(key_text(item), table.get("*", item))
            if is_empty(item):
                return MISSING
        if template is not None:
            item = template.replace("{}", to_text(item))
        return item.strip() if isinstance(item, str) else item

    def derived(record: t.Mapping[str, t.Any]) -> t.Any:
        value = base(record)
        if check is not None and not is_empty(value):
            check(record)
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

    return derived if condition is None else _gated(derived, condition)


WAITS = (True, False, "run")
"""``wait``: true, a record with no row yet is parked until its row comes (in this run or a later
one); false, it finds nothing (the next alternative is used); ``"run"``, it waits for the rest of this
run only when the lookup stream is listed, then finds nothing (a list tag falls back to the list's id)."""


def _gated(base: Source, condition: Source) -> Source:
    """``when``: the source finds nothing (not even its ``default``) unless the condition finds a true
    value in the record; the source is not read at all then (a lookup does not wait)."""

    def gated(record: t.Mapping[str, t.Any]) -> t.Any:
        return base(record) if truthy(condition(record)) else MISSING

    return gated


def _compile_lookup(spec: dict[str, t.Any], where: str) -> Source:
    """``{"lookup": STREAM, "key": SOURCE, "field": PATH, "all": false, "wait": true}``: ``field`` of the
    row(s) of a lookup stream found under the key computed from the record; ``all``: every row's, as a
    list; ``wait``: see :data:`WAITS`."""
    stream = spec["lookup"]
    if not isinstance(stream, str) or not stream.strip():
        raise MappingConfigError(f"{where}.lookup: must name a lookup stream, got {stream!r}")
    if "key" not in spec:
        raise MappingConfigError(f"{where}: a lookup needs 'key' (a source in this record)")
    key = compile_source(spec["key"], f"{where}.key")
    keep = _compile_where(spec.get("where"), f"{where}.where")
    latest = _compile_latest(spec.get("latest"), f"{where}.latest")
    field = compile_path(spec["field"], f"{where}.field") if "field" in spec else None
    every = spec.get("all", False)
    if not isinstance(every, bool):
        raise MappingConfigError(f"{where}.all: must be true or false, got {every!r}")
    wait = spec.get("wait", True)
    if not any(wait is allowed or (isinstance(allowed, str) and wait == allowed) for allowed in WAITS):
        raise MappingConfigError(f'{where}.wait: must be true, false or "run", got {wait!r}')

    def lookup(record: t.Mapping[str, t.Any]) -> t.Any:
        found = key(record)
        if is_empty(found):
            return MISSING
        lookups = LOOKUPS.get()
        rows: list[t.Any] = []
        # Several keys: the rows of each, once (a line item linked by two association types is one).
        texts = dict.fromkeys(key_text(one) for one in (found if isinstance(found, list) else [found]))
        for text in texts:
            kept = lookups.rows(stream, text) if lookups is not None else []
            if not kept:
                if not wait or (wait == "run" and (lookups is None or not lookups.may_wait(stream))):
                    continue  # no row, and no waiting for one: nothing from this key
                raise LookupPending(stream, text)
            rows += kept
        if keep is not None:
            rows = keep(rows, record)
        if latest is not None:
            rows = latest(rows)
        values = [value for row in rows if not is_empty(value := field(row) if field is not None else row)]
        if every:
            return values or MISSING
        return values[0] if values else MISSING

    return lookup


def _elements(base: Source, spec: dict[str, t.Any], where: str) -> Source:
    """``where`` and ``field`` on a path: the elements of the list it finds that match ``where``,
    and ``field`` read in each (a list; an object found stands for a list of one)."""
    keep = _compile_where(spec.get("where"), f"{where}.where")
    latest = _compile_latest(spec.get("latest"), f"{where}.latest")
    field = compile_path(spec["field"], f"{where}.field") if "field" in spec else None
    if keep is None and latest is None and field is None:
        return base

    def elements(record: t.Mapping[str, t.Any]) -> t.Any:
        try:
            found = opened(base(record))  # what the SDK's flattening made of a list
        except ValueProblem:
            return MISSING
        if is_empty(found):
            return MISSING
        items = found if isinstance(found, list) else [found]
        if keep is not None:
            items = keep(items, record)
        if latest is not None:
            items = latest(items)
        if field is not None:
            items = [value for item in items if not is_empty(value := field(item))]
        return items or MISSING

    return elements


def _compile_where(spec: t.Any, where: str) -> t.Callable[[list[t.Any], t.Mapping[str, t.Any]], list[t.Any]] | None:
    """``{"field": PATH, "in": [values]}``, ``{"field": PATH, "not_in": [values]}`` or ``{"field": PATH,
    "is": SOURCE}``: keep the elements (objects) whose ``field`` is one of the values, is not one of
    them (a missing field is not), or equals what ``is`` finds in the record."""
    if spec is None:
        return None
    if (
        not isinstance(spec, dict)
        or set(spec) - WHERE_KEYS
        or "field" not in spec
        or sum(name in spec for name in ("in", "not_in", "is")) != 1
        or any(name in spec and not isinstance(spec[name], list) for name in ("in", "not_in"))
    ):
        raise MappingConfigError(
            f'{where}: must be {{"field": <path in each element>, "in": [values]}}, {{"field": ..., "not_in": '
            f'[values]}} or {{"field": ..., "is": <source>}}'
        )
    for name in ("in", "not_in"):
        if name in spec and not spec[name]:
            raise MappingConfigError(
                f"{where}.{name}: an empty list {'keeps no element' if name == 'in' else 'refuses none'}; "
                "name the values"
            )
        if any(is_empty(v) for v in spec.get(name, [])):
            raise MappingConfigError(
                f"{where}.{name}: null or empty values match nothing (an element without the field is "
                f"{'never kept' if name == 'in' else 'always kept'}); remove them"
            )
    field = compile_path(spec["field"], f"{where}.field")
    allowed = _key_texts(spec["in"], f"{where}.in") if "in" in spec else None
    refused = _key_texts(spec["not_in"], f"{where}.not_in") if "not_in" in spec else None
    equal = compile_source(spec["is"], f"{where}.is") if "is" in spec else None

    def keep(items: list[t.Any], record: t.Mapping[str, t.Any]) -> list[t.Any]:
        wanted = allowed
        if equal is not None:
            found = equal(record)
            if is_empty(found):
                return []
            wanted = {key_text(v) for v in (found if isinstance(found, list) else [found])}
        out = []
        for item in items:
            if not isinstance(item, t.Mapping):
                continue
            value = field(item)
            if refused is not None:
                if is_empty(value) or key_text(value) not in refused:
                    out.append(item)
            elif not is_empty(value) and key_text(value) in t.cast("set[str]", wanted):
                out.append(item)
        return out

    return keep


def _key_texts(values: list[t.Any], where: str) -> set[str]:
    try:
        return {key_text(value) for value in values}
    except ValueProblem as exc:
        raise MappingConfigError(f"{where}: {exc}") from None


def _compile_latest(spec: t.Any, where: str) -> t.Callable[[list[t.Any]], list[t.Any]] | None:
    """``"latest": PATH``: of the elements (objects), only the one whose ``PATH`` (a date, a time, a
    number) is latest; of several equally late ones, the last in the list. None: every element."""
    if spec is None:
        return None
    field = compile_path(spec, where)

    def latest(items: list[t.Any]) -> list[t.Any]:
        ordered = [(_order_key(field(item)), i, item) for i, item in enumerate(items) if isinstance(item, t.Mapping)]
        return [max(ordered, key=lambda entry: (entry[0], entry[1]))[2]] if ordered else []

    return latest


def _order_key(value: t.Any) -> tuple[int, float, str]:
    """How ``latest`` orders values: a date in any form the README's dates take (epoch numbers, also
    as digit text, in milliseconds from 10^11 up) by its moment, after any value that is no date (text
    among themselves, in text order), after a missing one."""
    if is_empty(value):
        return (0, 0.0, "")
    try:
        return (2, to_moment(value).timestamp(), "")
    except (ValueError, OverflowError):  # ValueProblem is a ValueError
        return (1, 0.0, value.strip() if isinstance(value, str) else "")


def _compile_check(spec: t.Any, where: str) -> t.Callable[[t.Mapping[str, t.Any]], None] | None:
    """``{"source": SOURCE, "in": [allowed...], "otherwise": "reason, {} is the value"}``: the value is
    sent only when ``source`` is empty or one of ``in``; otherwise the field is refused with the reason."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - CHECK_KEYS or "source" not in spec or "in" not in spec:
        raise MappingConfigError(f'{where}: must be {{"source": ..., "in": [allowed values], "otherwise": "reason"}}')
    source = compile_source(spec["source"], f"{where}.source")
    allowed = spec["in"] if isinstance(spec["in"], list) else [spec["in"]]
    allowed_keys = {key_text(v) for v in allowed}
    otherwise = spec.get("otherwise", "{} is not one of " + ", ".join(sorted(allowed_keys)))
    if not isinstance(otherwise, str):
        raise MappingConfigError(f"{where}.otherwise: must be text")

    def run(record: t.Mapping[str, t.Any]) -> None:
        found = source(record)
        if is_empty(found) or key_text(found) in allowed_keys:
            return
        raise ValueProblem(otherwise.replace("{}", repr(key_text(found))))

    return run


def _bad_path(path: t.Any, where: str) -> t.NoReturn:
    raise MappingConfigError(f"{where}.path: must be a path or a list of paths, got {path!r}")


def _compile_transforms(spec: t.Any, where: str) -> list[t.Callable[[t.Any], t.Any]]:
    if spec is None:
        return []
    names = spec if isinstance(spec, list) else [spec]
    compiled = []
    for name in names:
        made, _, argument = name.partition(":") if isinstance(name, str) else ("", "", "")
        if made in MADE_TRANSFORMS and argument.strip():
            try:
                compiled.append(MADE_TRANSFORMS[made](argument.strip() if made != "date" else argument))
            except ValueError as exc:
                raise MappingConfigError(f"{where}: transform {name!r}: {exc}") from None
            continue
        if not isinstance(name, str) or name not in TRANSFORMS:
            raise MappingConfigError(
                f"{where}: unknown transform {name!r} (known: {', '.join(sorted(TRANSFORMS))}, "
                "url_param:<name>, date:<format>, cents:<currency>)"
            )
        compiled.append(TRANSFORMS[name])
    return compiled
