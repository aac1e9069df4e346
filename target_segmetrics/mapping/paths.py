"""Paths: where a value sits in a record (``properties.email``, ``associations.0.id``), compiled into a
function of the record, and whether a stream's schema can hold it (the config's typo check).

A path also finds what the SDK's flattening made of the record: ``a.b`` finds the key ``a__b``, and a
list or object flattened into JSON text is read as the list or object.
"""

from __future__ import annotations

import difflib
import functools
import typing as t

from target_segmetrics.mapping.values import ValueProblem, opened


class MappingConfigError(ValueError):
    """A mapping in the config that cannot work; each message names where it is."""

    def __init__(self, *messages: str) -> None:
        super().__init__("\n".join(messages))
        self.errors = list(messages)


def unknown_keys(
    where: str, unknown: t.Iterable[str], known: t.Iterable[str], what: str, renamed: t.Mapping[str, str] | None = None
) -> str:
    """``where: unknown key(s) x (did you mean 'y'? <what> may have ...)``: the message of a key typo;
    ``renamed``: older spellings, matched too, and named by their new key."""
    names = sorted(str(name) for name in unknown)
    allowed = sorted(known)
    renamed = renamed or {}
    candidates = [*allowed, *renamed]
    meant = [renamed.get(m, m) for name in names for m in difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)]
    hint = f"did you mean {', '.join(repr(m) for m in dict.fromkeys(meant))}? " if meant else ""
    return f"{where}: unknown key(s) {', '.join(names)} ({hint}{what} may have {', '.join(allowed)})"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: t.Any = _Missing()
"""What a source yields when it finds nothing (a missing or empty value)."""


def walk(node: t.Any, segments: tuple[str, ...]) -> t.Any:
    """What a dotted path's ``segments`` find in a record (MISSING: nothing); also flattened keys."""
    # Fast path: plain nested dicts, every segment present (the common case).
    found = node
    for segment in segments:
        if type(found) is dict and segment in found:
            found = found[segment]
        else:
            return _walk_slowly(node, segments)
    return found


def _walk_slowly(node: t.Any, segments: tuple[str, ...]) -> t.Any:
    """Lists, other mappings, and flattened keys: ``a.b`` also finds ``a__b`` (the nested ``a`` is tried first)."""
    if not segments:
        return node
    try:
        node = opened(node)  # a list or object the SDK's flattening wrote as JSON text: go on inside it
    except ValueProblem:
        return MISSING
    if isinstance(node, dict):
        head = segments[0]
        if head in node:
            found = _walk_slowly(node[head], segments[1:])
            if found is not MISSING:
                return found
        for joined, rest in _flattened_keys(segments):
            if joined in node:
                found = _walk_slowly(node[joined], rest)
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


@functools.lru_cache(maxsize=4096)
def _flattened_keys(segments: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The flattened keys that ``segments`` may also be held under, widest join first.

    A flattened record holds "a__b" where the nested one holds {"a": {"b": ...}}: for ``a.b.c`` these
    are ``a__b__c`` (nothing left to walk) and ``a__b`` (``c`` left), each with what remains. A mapping's
    paths are few and walked for every record: the joins are made once per path (and its tails).
    """
    return tuple(("__".join(segments[:width]), segments[width:]) for width in range(len(segments), 1, -1))


ELEMENT = "*"
"""In a path checked against a schema: each element of the list before it (an object found there
stands for a list of one); a record path never holds it."""


def schema_has_path(schema: t.Mapping[str, t.Any], path: str) -> bool:
    """Whether a dotted path can name something in a JSON schema (loose: any doubt says yes).

    Flattened properties are found as a record's are (:func:`_flattened_keys`); :data:`ELEMENT` goes
    into a list's ``items``; any option of ``anyOf``/``oneOf``/``allOf`` may hold the path; an object
    is open (any key) unless it declares properties and neither ``additionalProperties`` nor
    ``patternProperties``.
    """
    return _has_path(schema, tuple(path.split(".")))


def _has_path(node: t.Any, segments: tuple[str, ...]) -> bool:
    if not segments or not isinstance(node, t.Mapping):
        return True
    options = _options(node)
    if any(_has_path(option, segments) for option in options):
        return True
    if node.get("additionalProperties") not in (None, False) or node.get("patternProperties"):
        return True
    properties = node.get("properties") or {}
    if not properties and "items" not in node:
        return not options  # nothing declared here: open, unless its options said no
    if segments[0] == ELEMENT or ("items" in node and segments[0].lstrip("-").isdigit()):
        return _has_path(node.get("items", node), segments[1:])
    return any(
        _has_path(properties[key], rest)
        for key, rest in (*_flattened_keys(segments), (segments[0], segments[1:]))
        if key in properties
    )


def _options(node: t.Mapping[str, t.Any]) -> list[t.Mapping[str, t.Any]]:
    """The non-null options of a schema node's ``anyOf``/``oneOf``/``allOf``."""
    return [
        option
        for combinator in ("anyOf", "oneOf", "allOf")
        for option in node.get(combinator) or ()
        if isinstance(option, t.Mapping) and option.get("type") != "null"
    ]


def declared_paths(schema: t.Mapping[str, t.Any], prefix: str = "", depth: int = 4) -> list[str]:
    """Every dotted path a schema declares (objects and lists' elements followed a few levels deep)."""
    out: list[str] = []
    properties = schema.get("properties") if isinstance(schema, t.Mapping) else None
    for name, node in (properties or {}).items():
        path = f"{prefix}{name}"
        out.append(path)
        if depth > 1 and isinstance(node, t.Mapping):
            for option in (node, *_options(node)):
                out += declared_paths(option, f"{path}.", depth - 1)
                if isinstance(option.get("items"), t.Mapping):
                    out += declared_paths(option["items"], f"{path}.{ELEMENT}.", depth - 1)
    return out


def shown(path: str) -> str:
    """A checked path as a user reads it: ``'name' in each element of 'lists'`` for ``lists.*.name``."""
    head, found, element = path.rpartition(f".{ELEMENT}.")
    if not found:
        return repr(path)
    return f"{element!r} in each element of {head.replace(f'.{ELEMENT}.', '.')!r}"
