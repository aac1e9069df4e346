"""A pipeline: a base node (a path, a lookup, a constant) and its steps, in the order the README
gives them (``when`` gates it all; ``where``, ``latest``, ``field`` on the list found; ``check``,
``default``, ``split``; then per value ``transform``, ``map``, ``format``)."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from target_segmetrics.mapping.nodes import Checks, Context, Lookup, Node, Path, Predicate, check, is_empty
from target_segmetrics.mapping.paths import ELEMENT, MISSING
from target_segmetrics.mapping.values import ValueProblem, key_text, opened, to_moment, to_text


class Step:
    """One step of a :class:`Pipeline`: the whole value in, the value out (MISSING: nothing)."""

    def apply(self, value: t.Any, record: t.Any, ctx: Context) -> t.Any:
        raise NotImplementedError

    def reads(self, prefixes: tuple[str, ...], elements: tuple[str, ...] | None, checks: Checks) -> None:
        """Add the checks of what the step reads (in the record, or in each element)."""


@dataclass(eq=False)
class Where(Step):
    """The elements (objects) for which the predicate holds."""

    predicate: Predicate

    def apply(self, value: list[t.Any], record: t.Any, ctx: Context) -> t.Any:
        wanted = self.predicate.wanted(record, ctx)
        return [item for item in value if isinstance(item, t.Mapping) and self.predicate.holds(item, ctx, wanted)]

    def reads(self, prefixes: tuple[str, ...], elements: tuple[str, ...] | None, checks: Checks) -> None:
        if self.predicate.other is not None:
            check(self.predicate.other, prefixes, checks)
        if elements:
            check(self.predicate.source, elements, checks)


@dataclass(eq=False)
class Latest(Step):
    """Of the elements (objects), only the one whose ``path`` (a date, a time, a number) is latest; of
    several equally late ones, the last in the list."""

    path: Path

    def apply(self, value: list[t.Any], record: t.Any, ctx: Context) -> t.Any:
        ordered = [(_order_key(self.path.evaluate(item, ctx)), i, item) for i, item in enumerate(value)]
        ordered = [entry for entry in ordered if isinstance(entry[2], t.Mapping)]
        return [max(ordered, key=lambda entry: (entry[0], entry[1]))[2]] if ordered else []

    def reads(self, prefixes: tuple[str, ...], elements: tuple[str, ...] | None, checks: Checks) -> None:
        if elements:
            check(self.path, elements, checks)


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


@dataclass(eq=False)
class Field(Step):
    """``field`` read in each element (the empty ones left out)."""

    path: Path

    def apply(self, value: list[t.Any], record: t.Any, ctx: Context) -> t.Any:
        return [found for item in value if not is_empty(found := self.path.evaluate(item, ctx))]

    def reads(self, prefixes: tuple[str, ...], elements: tuple[str, ...] | None, checks: Checks) -> None:
        if elements:
            check(self.path, elements, checks)


@dataclass(eq=False)
class Check(Step):
    """The value is kept only when the predicate's source is empty or the predicate holds; otherwise
    the field is refused with the reason (``{}``: what the source found)."""

    predicate: Predicate
    otherwise: str

    def apply(self, value: t.Any, record: t.Any, ctx: Context) -> t.Any:
        if is_empty(value):
            return value
        found = self.predicate.source.evaluate(record, ctx)
        if is_empty(found) or self.predicate.holds(record, ctx, self.predicate.wanted(record, ctx)):
            return value
        shown = key_text(found[0] if isinstance(found, list) and len(found) == 1 else found)
        raise ValueProblem(self.otherwise.replace("{}", repr(shown)))

    def reads(self, prefixes: tuple[str, ...], elements: tuple[str, ...] | None, checks: Checks) -> None:
        check(self.predicate, prefixes, checks)


@dataclass(eq=False)
class Default(Step):
    value: t.Any

    def apply(self, value: t.Any, record: t.Any, ctx: Context) -> t.Any:
        return self.value if is_empty(value) else value


@dataclass(eq=False)
class Split(Step):
    """Text split into several values (the value becomes a list)."""

    delimiter: str

    def apply(self, value: t.Any, record: t.Any, ctx: Context) -> t.Any:
        values = value if isinstance(value, list) else [value]
        return [part for v in values for part in (v.split(self.delimiter) if isinstance(v, str) else [v])]


@dataclass(eq=False)
class Transform(Step):
    """Each value through the named functions in turn (an empty result: that value is left out)."""

    functions: list[t.Callable[[t.Any], t.Any]]

    def apply(self, value: t.Any, record: t.Any, ctx: Context) -> t.Any:
        for function in self.functions:
            value = function(value)
            if is_empty(value):
                return MISSING
        return value


@dataclass(eq=False)
class Map(Step):
    """Each value through a table (``"*"``: what any other value becomes)."""

    table: dict[str, t.Any]

    def apply(self, value: t.Any, record: t.Any, ctx: Context) -> t.Any:
        return self.table.get(key_text(value), self.table.get("*", value))


@dataclass(eq=False)
class Format(Step):
    """Each value written into a template at ``{}``."""

    template: str

    def apply(self, value: t.Any, record: t.Any, ctx: Context) -> t.Any:
        return self.template.replace("{}", to_text(value))


@dataclass(eq=False)
class Pipeline(Node):
    """A base node and its steps: ``when`` gates it all; the element steps (``where``, ``latest``,
    ``field``) run on the list the base finds; ``first`` keeps a lookup's first value; then ``check``,
    ``default``, ``split``, and per value the ``each`` steps (transform, map, format)."""

    where: str
    base: Node
    gate: Predicate | None = None
    element_steps: list[Step] = field(default_factory=list)
    first: bool = False
    steps: list[Step] = field(default_factory=list)
    each: list[Step] = field(default_factory=list)
    split: bool = False
    drop_invalid: bool = False

    def evaluate(self, record: t.Any, ctx: Context) -> t.Any:
        if self.gate is not None and not self.gate.evaluate(record, ctx):
            return MISSING  # not read at all then (a lookup does not wait), not even the default
        value = self.base.evaluate(record, ctx)
        if value is MISSING and not self.steps:
            return MISSING  # nothing found, no default: what every step below would come to
        if self.element_steps:
            value = self._elements(value, record, ctx)
        if self.first:
            value = value[0] if isinstance(value, list) and value else MISSING
        for step in self.steps:
            value = step.apply(value, record, ctx)
        if is_empty(value):
            return MISSING
        values = value if isinstance(value, list) else [value]
        out = [shaped for item in values if (shaped := self._shape(item, record, ctx)) is not MISSING]
        if not out:
            return MISSING
        return out if isinstance(value, list) or self.split else out[0]

    def _elements(self, value: t.Any, record: t.Any, ctx: Context) -> t.Any:
        if not isinstance(self.base, Lookup):
            try:
                value = opened(value)  # what the SDK's flattening made of a list
            except ValueProblem:
                return MISSING
        if is_empty(value):
            return MISSING
        items = value if isinstance(value, list) else [value]
        for step in self.element_steps:
            items = step.apply(items, record, ctx)
        return items or MISSING

    def _shape(self, item: t.Any, record: t.Any, ctx: Context) -> t.Any:
        """One value through transform, map and format (MISSING when it comes out empty)."""
        for step in self.each:
            if is_empty(item):
                return MISSING
            item = step.apply(item, record, ctx)
        if is_empty(item):
            return MISSING
        return item.strip() if isinstance(item, str) else item

    def reads(self, prefixes: tuple[str, ...], checks: Checks) -> tuple[list[str], bool]:
        if self.gate is not None:
            check(self.gate, prefixes, checks)
        elements = None if isinstance(self.base, Lookup) else self.base.elements(prefixes)
        for step in (*self.element_steps, *self.steps):
            step.reads(prefixes, elements, checks)
        return self.base.reads(prefixes, checks)

    def elements(self, prefixes: tuple[str, ...]) -> tuple[str, ...] | None:
        if isinstance(self.base, Lookup):
            return None
        elements = self.base.elements(prefixes)
        fields = [step for step in self.element_steps if isinstance(step, Field)]
        if elements is None or not fields:
            return elements
        return tuple(f"{prefix}{fields[0].path.text}.{ELEMENT}." for prefix in elements)
