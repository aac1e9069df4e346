"""Parsing sources: where a mapped value comes from in a record, into a tree of nodes (``nodes.py``).

Source forms (the tables of ``docs/reference/mapping.md``, checked against :data:`SOURCE_KEYS`):

- ``"properties.email"``: a path (``paths.py``); dots go into objects, an integer segment indexes a
  list, and a flattened key (``properties__email``, from the SDK's flattening) is found too;
- ``["a", "b"]``: the first source with a non-empty value wins;
- ``{"value": X}``: a constant;
- ``{"path": SOURCE, ...}`` or ``{"lookup": STREAM, "key": SOURCE, ...}`` with the options of
  :data:`SOURCE_KEYS`, applied in that table's order.

A predicate (``when``, ``where``, ``check``) is one form: ``{"source": SOURCE, "in": [values]}``,
``"not_in"``, ``"is": SOURCE``, or a bare source that says yes or no (see :func:`nodes.truthy`).
"""

from __future__ import annotations

import functools
import typing as t
import urllib.parse

from target_segmetrics.mapping.formats import cents_in, date_in, units_to_cents
from target_segmetrics.mapping.nodes import WAITS, Constant, FirstOf, Lookup, Node, Path, Predicate, is_empty
from target_segmetrics.mapping.paths import MISSING, MappingConfigError, unknown_keys
from target_segmetrics.mapping.steps import (
    Check,
    Default,
    Field,
    Format,
    Latest,
    Map,
    Pipeline,
    Split,
    Transform,
    Where,
)
from target_segmetrics.mapping.values import (
    ValueProblem,
    as_boolean,
    as_whole,
    key_text,
    to_number,
    to_segmetrics_date,
    to_segmetrics_datetime,
    to_text,
    unwrap,
)

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
        found = _query(to_text(value)).get(name)
        return found[0] if found else MISSING

    return read


@functools.lru_cache(maxsize=256)
def _query(url: str) -> dict[str, list[str]]:
    """A URL's query parameters; each URL is read once for all the parameters taken from it (a record's
    landing page gives utm_source, utm_medium, utm_campaign...). Callers only read the result."""
    return urllib.parse.parse_qs(url.strip().split("#", 1)[0].partition("?")[2])


MADE_TRANSFORMS: dict[str, t.Callable[[str], t.Callable[[t.Any], t.Any]]] = {
    "url_param": url_param,  # url_param:utm_source, a URL's query parameter
    "date": date_in,  # date:%m/%d/%Y, a date in a known format
    "cents": cents_in,  # cents:JPY, an amount in a known currency
}


# --- the grammar of a source object -------------------------------------------------------------

SOURCE_KEYS: dict[str, str] = {
    "path": "where the value is: a path, or any source (one, or a list: the first with a value)",
    "value": "a constant",
    "lookup": "a lookup stream whose rows are read (with key)",
    "key": "with lookup: the source in this record of the key the rows are kept under",
    "all": "with lookup: every row's value, as a list (default false: the first row's)",
    "wait": 'with lookup: a record with no row yet waits (true), finds nothing (false), or waits this run ("run")',
    "when": "a predicate: the source finds nothing (not even its default) unless it holds in the record",
    "where": "a predicate read in each element of the list found: keep the elements for which it holds",
    "latest": "a path in each element: keep only the element whose value (a date, a number) is latest",
    "field": "a path read in each element of the list found",
    "check": "a predicate (with otherwise: the reason): the value is refused unless it holds",
    "default": "the value when the source finds none",
    "split": "a delimiter: text split into several values",
    "transform": "a transform, or a list of them, applied to each value in turn",
    "map": 'an object: each value replaced by its entry ("*": any other value)',
    "format": "text with {} where each value goes",
    "on_invalid": '"reject" (the default: the record is rejected) or "drop": a value that cannot be converted is '
    "left out (the field is not sent, the record lands; counted as dropped:<field> in the summary)",
}
"""Every key of a source object, in the order its steps apply, and what it does."""

PREDICATE_KEYS: dict[str, str] = {
    "source": "the source tested (in where: read in each element)",
    "in": "a list of values: holds when the source's value is one of them",
    "not_in": "a list of values: holds when it is none of them (an empty value is none)",
    "is": "a source in the record: holds when the source's value equals what it finds",
    "otherwise": "in check only: the reason a refused value is rejected with ({} is the value)",
}
"""Every key of a predicate object; without in, not_in or is, the source's value says yes or no."""

RENAMED: dict[str, str] = {"field": "source"}
"""Old spellings in a predicate (``where.field``), still read: the key they are now."""

LOOKUP_KEYS = ("lookup", "key", "all", "wait")
ON_INVALID = ("reject", "drop")
OPERATORS = ("in", "not_in", "is")


def compile_path(path: t.Any, where: str) -> Path:
    """A dotted path into the record (``a.b.0.c``); also finds flattened keys (``a__b``)."""
    if not isinstance(path, str) or not path.strip():
        raise MappingConfigError(f"{where}: a path must be non-empty text, got {path!r}")
    segments = tuple(path.strip().split("."))
    if any(not part for part in segments):
        raise MappingConfigError(f"{where}: path {path!r} has an empty segment")
    return Path(where, path.strip(), segments)


def compile_source(spec: t.Any, where: str) -> Node:
    """Parse one source config into a node (see the module docstring)."""
    if isinstance(spec, str):
        return compile_path(spec, where)
    if isinstance(spec, list):
        if not spec:
            raise MappingConfigError(f"{where}: an empty list names no source")
        return FirstOf(where, [compile_source(item, f"{where}[{i}]") for i, item in enumerate(spec)])
    if not isinstance(spec, dict):
        raise MappingConfigError(f"{where}: a source is a path, a list of sources or an object, got {spec!r}")
    unknown = set(spec) - set(SOURCE_KEYS)
    if unknown:
        raise MappingConfigError(unknown_keys(where, unknown, SOURCE_KEYS, "a source object"))
    if sum(name in spec for name in ("path", "value", "lookup")) != 1:
        raise MappingConfigError(f"{where}: a source object needs exactly one of 'path', 'value' or 'lookup'")
    if "lookup" not in spec and set(LOOKUP_KEYS) & set(spec):
        raise MappingConfigError(f"{where}: {', '.join(sorted(set(LOOKUP_KEYS) & set(spec)))} go with 'lookup' only")
    if "value" in spec and {"where", "latest", "field"} & set(spec):
        raise MappingConfigError(f"{where}: where, latest and field go with 'path' or 'lookup'")
    if set(spec) == {"value"}:
        return Constant(where, spec["value"])  # a bare constant: {"value": null} stays null
    base: Node
    if "lookup" in spec:
        base = _lookup(spec, where)
    elif "value" in spec:
        base = Constant(where, spec["value"])
    else:
        path = spec["path"]
        base = compile_source(path, where if isinstance(path, (str, list)) else f"{where}.path")
    pipeline = Pipeline(where, base, first="lookup" in spec and spec.get("all") is not True)
    for key, add in _OPTIONS.items():
        if key in spec:
            add(pipeline, spec[key], f"{where}.{key}")
    return pipeline


def _lookup(spec: dict[str, t.Any], where: str) -> Lookup:
    """``{"lookup": STREAM, "key": SOURCE, "all": false, "wait": true}``: the rows of a lookup stream
    kept under the key computed from the record (``where``, ``latest``, ``field`` then read in them)."""
    stream = spec["lookup"]
    if not isinstance(stream, str) or not stream.strip():
        raise MappingConfigError(f"{where}.lookup: must name a lookup stream, got {stream!r}")
    if "key" not in spec:
        raise MappingConfigError(f"{where}: a lookup needs 'key' (a source in this record)")
    every = spec.get("all", False)
    if not isinstance(every, bool):
        raise MappingConfigError(f"{where}.all: must be true or false, got {every!r}")
    wait = spec.get("wait", Lookup.wait)
    if not any(wait is allowed or (isinstance(allowed, str) and wait == allowed) for allowed in WAITS):
        raise MappingConfigError(f'{where}.wait: must be true, false or "run", got {wait!r}')
    return Lookup(where, stream, compile_source(spec["key"], f"{where}.key"), wait)


def compile_predicate(spec: t.Any, where: str, *, each: bool = False, check: bool = False) -> Predicate:
    """The one predicate form (``when``, ``where`` with ``each``, ``check``): a predicate object, or a
    bare source that says yes or no. In ``where`` an operator is required (it keeps elements by value)."""
    shape = (
        f'{where}: must be {{"source": <path in each element>, "in": [values]}}, {{"source": ..., "not_in": '
        f'[values]}} or {{"source": ..., "is": <source>}} ("field" is the older name of "source")'
        if each
        else f'{where}: must be {{"source": ..., "in": [allowed values], "otherwise": "reason"}}'
        if check
        else f'{where}: must be a source, or {{"source": ..., "in"/"not_in": [values] or "is": <source>}}'
    )
    if not isinstance(spec, dict) or not (each or check or "source" in spec):
        if each or check:
            raise MappingConfigError(shape)
        source = compile_source(spec, where)  # a bare source: its value says yes or no
        return Predicate(source.where, source)
    named = [key for key in spec if key in RENAMED]
    keys = {RENAMED.get(key, key) for key in spec}
    allowed = set(PREDICATE_KEYS) - (set() if check else {"otherwise"})
    operators = [name for name in OPERATORS if name in spec]
    if keys - allowed:
        unknown = unknown_keys(where, set(spec) - allowed - set(named), allowed, "a predicate", RENAMED)
        raise MappingConfigError(f"{shape}; {unknown.split(': ', 1)[1]}" if each else unknown)
    if (
        not {"source", *named} & set(spec)
        or len(operators) > 1
        or (each and not operators)
        or ("source" in spec and named)
        or any(name in spec and not isinstance(spec[name], list) for name in ("in", "not_in") if not check)
    ):
        raise MappingConfigError(shape)
    key = named[0] if named else "source"
    source = compile_source(spec[key], f"{where}.{key}")
    op = operators[0] if operators else None
    if op == "is":
        return Predicate(source.where, source, op, other=compile_source(spec["is"], f"{where}.is"))
    if op is None:
        return Predicate(source.where, source)
    values = spec[op] if isinstance(spec[op], list) else [spec[op]]
    if not values and not check:
        raise MappingConfigError(
            f"{where}.{op}: an empty list {'keeps no element' if op == 'in' else 'refuses none'}; name the values"
        )
    if any(is_empty(v) for v in values):
        raise MappingConfigError(
            f"{where}.{op}: null or empty values match nothing (an element without the field is "
            f"{'never kept' if op == 'in' else 'always kept'}); remove them"
        )
    try:
        keys_of = frozenset(key_text(value) for value in values)
    except ValueProblem as exc:
        raise MappingConfigError(f"{where}.{op}: {exc}") from None
    return Predicate(source.where, source, op, keys_of)


def _when(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    pipeline.gate = compile_predicate(spec, where)


def _where(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    pipeline.element_steps.append(Where(compile_predicate(spec, where, each=True)))


def _latest(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    pipeline.element_steps.append(Latest(compile_path(spec, where)))


def _field(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    pipeline.element_steps.append(Field(compile_path(spec, where)))


def _check(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    predicate = compile_predicate(spec, where, check=True)
    shown = ", ".join(sorted(predicate.values))
    otherwise = spec.get("otherwise", f"{{}} is not one of {shown}" if predicate.op == "in" else "{} is refused")
    if not isinstance(otherwise, str):
        raise MappingConfigError(f"{where}.otherwise: must be text")
    pipeline.steps.append(Check(predicate, otherwise))


def _default(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    pipeline.steps.append(Default(spec))


def _split(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    if not isinstance(spec, str) or not spec:
        raise MappingConfigError(f"{where}: the delimiter must be non-empty text")
    pipeline.steps.append(Split(spec))
    pipeline.split = True


def _transform(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    pipeline.each.append(Transform(_compile_transforms(spec, where)))


def _map(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    if not isinstance(spec, dict):
        raise MappingConfigError(f"{where}: must be an object of value -> replacement")
    pipeline.each.append(Map({key_text(k): v for k, v in spec.items()}))


def _format(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    if not isinstance(spec, str) or "{}" not in spec:
        raise MappingConfigError(f"{where}: must be text containing {{}} where the value goes")
    pipeline.each.append(Format(spec))


def _on_invalid(pipeline: Pipeline, spec: t.Any, where: str) -> None:
    if spec not in ON_INVALID:
        raise MappingConfigError(f"{where}: must be one of {', '.join(ON_INVALID)}, got {spec!r}")
    pipeline.drop_invalid = spec == "drop"


_OPTIONS: dict[str, t.Callable[[Pipeline, t.Any, str], None]] = {
    "when": _when,
    "where": _where,
    "latest": _latest,
    "field": _field,
    "check": _check,
    "default": _default,
    "split": _split,
    "transform": _transform,
    "map": _map,
    "format": _format,
    "on_invalid": _on_invalid,
}
"""How each option (beyond the base: path, value, lookup and its keys) adds to the pipeline, in order."""


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
