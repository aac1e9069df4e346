"""The mapping language as a tree: each node evaluates itself against a record and a :class:`Context`,
and says which record paths it reads (the schema check and its did-you-mean come from there).

The parser (``sources.py`` for sources and predicates, ``compiler.py`` for entries) builds the tree
once from the config; nothing reads the raw config again. A node's ``where`` is its place in the config.

- :class:`Path` a path into the record; :class:`FirstOf` the first alternative with a value;
  :class:`Constant`; :class:`Lookup` rows of a lookup stream (from the context);
- :class:`~target_segmetrics.mapping.steps.Pipeline` (``steps.py``) a base node and its steps;
- :class:`Predicate` the one yes/no form of ``when``, ``where`` and ``check``;
- :class:`TagObject` one tag (or one per element of a list) built from several sources.
"""

from __future__ import annotations

import copy
import typing as t
from dataclasses import dataclass

from target_segmetrics.mapping.paths import ELEMENT, MISSING, walk
from target_segmetrics.mapping.values import ValueProblem, key_text, opened, storable_key, unwrap

Checks = list[tuple[str, tuple[str, ...]]]
"""Per place in the config, the paths it may read: the run stops when the schema declares none of them."""


class LookupPending(ValueProblem):
    """A lookup found no row yet: the record waits (is parked) instead of being rejected."""

    def __init__(self, stream: str, key: str) -> None:
        super().__init__(f"no row of lookup stream {stream!r} for key {key!r} yet")
        self.waiting = f"{stream}[{key}]"


class Lookups(t.Protocol):
    """Where lookup rows come from (the target's store), and whether a record may still wait for one."""

    def rows(self, stream: str, key: str) -> list[dict]: ...

    def may_wait(self, stream: str) -> bool:
        """Whether a row of ``stream`` may still come in this run (a declared lookup source, input not ended)."""
        ...

    def digest(self, stream: str, key: str) -> str | None:
        """What :meth:`rows` finds under ``key`` now, digested (see ``transcript.py``)."""
        ...


@dataclass(frozen=True)
class Context:
    """What a mapping reads besides the record, handed in by whoever maps it (the sink, the parking):
    the lookup rows, and a counter for what the summary shows (``dropped:<field>``)."""

    lookups: Lookups | None = None
    count: t.Callable[[str, str], None] | None = None
    """``count(stream, what)``: one more of ``what`` for the stream (the delivery's counters)."""


NO_CONTEXT = Context()
"""No lookup rows (a lookup that may wait waits), nothing counted."""


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


class Node:
    """One node of a mapping: evaluated against a record and a context."""

    where: str
    drop_invalid: bool = False
    """``"on_invalid": "drop"``: a value that cannot be converted leaves its field out (see ``mapping.py``)."""

    def evaluate(self, record: t.Any, ctx: Context) -> t.Any:
        raise NotImplementedError

    def __call__(self, record: t.Any, ctx: Context = NO_CONTEXT) -> t.Any:
        return self.evaluate(record, ctx)

    def reads(self, prefixes: tuple[str, ...], checks: Checks) -> tuple[list[str], bool]:
        """The record paths this node may find its value at (under each prefix), and whether it has an
        alternative that is no path (a lookup, a constant: it may be what finds the value). The paths
        its options read are added to ``checks`` as checks of their own."""
        return [], True

    def elements(self, prefixes: tuple[str, ...]) -> tuple[str, ...] | None:
        """The prefixes under which a path read in each element of what it finds is checked
        (``list.*.``); None when the config does not say (a lookup's rows, a constant)."""
        return None


def check(node: Node, prefixes: tuple[str, ...], checks: Checks) -> None:
    """Add the check of ``node`` (read under each of ``prefixes``): its paths, unless another kind of
    alternative may find the value; and the checks of its options."""
    paths, other = node.reads(prefixes, checks)
    if paths and not other:
        checks.append((node.where, tuple(paths)))


def checks_of(node: Node | None, prefixes: tuple[str, ...] = ("",)) -> Checks:
    found: Checks = []
    if node is not None:
        check(node, prefixes, found)
    return found


@dataclass(eq=False)
class Path(Node):
    where: str
    text: str
    segments: tuple[str, ...]

    def evaluate(self, record: t.Any, ctx: Context) -> t.Any:
        return walk(record, self.segments)

    def reads(self, prefixes: tuple[str, ...], checks: Checks) -> tuple[list[str], bool]:
        return [prefix + self.text for prefix in prefixes], False

    def elements(self, prefixes: tuple[str, ...]) -> tuple[str, ...] | None:
        return tuple(f"{prefix}{self.text}.{ELEMENT}." for prefix in prefixes)


@dataclass(eq=False)
class FirstOf(Node):
    where: str
    alternatives: list[Node]

    @property
    def drop_invalid(self) -> bool:  # type: ignore[override]
        return any(alternative.drop_invalid for alternative in self.alternatives)

    def evaluate(self, record: t.Any, ctx: Context) -> t.Any:
        for alternative in self.alternatives:
            value = alternative.evaluate(record, ctx)
            if not is_empty(value):
                return value
        return MISSING

    def reads(self, prefixes: tuple[str, ...], checks: Checks) -> tuple[list[str], bool]:
        paths: list[str] = []
        other = False
        for alternative in self.alternatives:
            found, more = alternative.reads(prefixes, checks)
            paths += found
            other = other or more
        return paths, other

    def elements(self, prefixes: tuple[str, ...]) -> tuple[str, ...] | None:
        found = [alternative.elements(prefixes) for alternative in self.alternatives]
        return None if any(f is None for f in found) else tuple(p for f in found for p in t.cast("tuple", f))


@dataclass(eq=False)
class Constant(Node):
    where: str
    value: t.Any

    def evaluate(self, record: t.Any, ctx: Context) -> t.Any:
        return copy.copy(self.value)


WAITS = (True, False, "run")
"""``wait``: true, a record with no row yet is parked until its row comes (in this run or a later
one); false, it finds nothing (the next alternative is used); ``"run"``, it waits for the rest of this
run only when the lookup stream is listed, then finds nothing (a list tag falls back to the list's id)."""


@dataclass(eq=False)
class Lookup(Node):
    """The rows of a lookup stream kept under the key found in the record (a list, MISSING when none)."""

    where: str
    stream: str
    key: Node
    wait: bool | str = True

    def evaluate(self, record: t.Any, ctx: Context) -> t.Any:
        found = self.key.evaluate(record, ctx)
        if is_empty(found):
            return MISSING
        lookups = ctx.lookups
        rows: list[t.Any] = []
        # Several keys: the rows of each, once (a line item linked by two association types is one).
        texts = dict.fromkeys(key_text(one) for one in (found if isinstance(found, list) else [found]))
        for text in texts:
            storable_key(text, f"a row of lookup stream {self.stream!r}")  # so none is found or waited for
            kept = lookups.rows(self.stream, text) if lookups is not None else []
            if not kept:
                if not self.wait or (self.wait == "run" and (lookups is None or not lookups.may_wait(self.stream))):
                    continue  # no row, and no waiting for one: nothing from this key
                raise LookupPending(self.stream, text)
            rows += kept
        return [row for row in rows if not is_empty(row)] or MISSING

    def reads(self, prefixes: tuple[str, ...], checks: Checks) -> tuple[list[str], bool]:
        check(self.key, prefixes, checks)
        return [], True


@dataclass(eq=False)
class Predicate(Node):
    """``when``, ``where`` and ``check`` alike: ``source`` (read in the record, or in each element for
    ``where``) is ``in`` some values, ``not_in`` them (an empty value is not), equal to what ``is``
    finds in the record, or (no operator) says yes (:func:`truthy`)."""

    where: str
    source: Node
    op: str | None = None
    """``in``, ``not_in``, ``is`` or None (truthy)."""
    values: frozenset[str] = frozenset()
    other: Node | None = None
    """``is``: the source in the record whose value(s) the element's must equal."""

    def wanted(self, record: t.Any, ctx: Context) -> frozenset[str] | None:
        """For ``is``: the keys to match, read in the record once (None: nothing can match)."""
        if self.other is None:
            return self.values
        found = self.other.evaluate(record, ctx)
        if is_empty(found):
            return None
        return frozenset(key_text(v) for v in (found if isinstance(found, list) else [found]))

    def holds(self, item: t.Any, ctx: Context, wanted: frozenset[str] | None = None) -> bool:
        """Whether it holds for ``item`` (the record, or one element); ``wanted`` from :meth:`wanted`."""
        value = self.source.evaluate(item, ctx)
        if self.op is None:
            return truthy(value)
        keys = {key_text(v) for v in (value if isinstance(value, list) else [value]) if not is_empty(v)}
        if self.op == "not_in":
            return not keys & self.values
        return wanted is not None and bool(keys & wanted)

    def evaluate(self, record: t.Any, ctx: Context) -> t.Any:
        return self.holds(record, ctx, self.wanted(record, ctx))

    def reads(self, prefixes: tuple[str, ...], checks: Checks) -> tuple[list[str], bool]:
        if self.other is not None:
            check(self.other, prefixes, checks)
        return self.source.reads(prefixes, checks)


@dataclass(eq=False)
class TagObject(Node):
    """``{"tag": {"name": src, "date": src, "id": src}}``: one tag object from several sources; with
    ``each``, one per element of that list in the record (the parts read in the element)."""

    where: str
    parts: dict[str, Node]
    each: Node | None = None

    def build(self, item: t.Any, ctx: Context) -> t.Any:
        tag = {}
        for key, source in self.parts.items():
            value = source.evaluate(item, ctx)
            if not is_empty(value):
                tag[key] = value[0] if isinstance(value, list) and len(value) == 1 else value
        return tag if ("id" in tag or "name" in tag) else MISSING

    def evaluate(self, record: t.Any, ctx: Context) -> t.Any:
        if self.each is None:
            return self.build(record, ctx)
        found = opened(self.each.evaluate(record, ctx))  # what the SDK's flattening made of a list
        if is_empty(found):
            return MISSING
        # An empty element (a null in the list) gives no tag, as a tag that comes out empty does.
        elements = [element for element in (found if isinstance(found, list) else [found]) if not is_empty(element)]
        if not all(isinstance(element, t.Mapping) for element in elements):
            raise ValueProblem("expected a list of objects (each)")
        tags = [tag for element in elements if (tag := self.build(element, ctx)) is not MISSING]
        return tags or MISSING

    def reads(self, prefixes: tuple[str, ...], checks: Checks) -> tuple[list[str], bool]:
        parts_read_in: tuple[str, ...] | None = prefixes
        if self.each is not None:
            check(self.each, prefixes, checks)
            parts_read_in = self.each.elements(prefixes)
        for part in self.parts.values() if parts_read_in else ():
            check(part, t.cast("tuple[str, ...]", parts_read_in), checks)
        return [], True
