"""Rows kept one version per object (parked records, rejected records kept for replay).

Each row is one version of its object (``seq``: nanoseconds when written, unique in a run; never
``max(seq) + 1``, which two runs at once would both take). A change that read a version names it
(compare and delete); a newer record of the object removes every version before it. Changes are
queued in the order they happened and written in that order, in one transaction.
"""

from __future__ import annotations

import itertools
import time
import typing as t

import sqlalchemy as sa


class Clock:
    """Versions: nanoseconds, increasing and unique in a run."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(time.time_ns(), self._last + 1)
        return self._last


def object_key(table: sa.Table) -> tuple[sa.ColumnElement[bool], ...]:
    """The row of one object, from the bound ``b_scope``, ``b_stream`` and ``b_object``."""
    c = table.c
    return (
        c.scope == sa.bindparam("b_scope"),
        c.stream == sa.bindparam("b_stream"),
        c.object == sa.bindparam("b_object"),
    )


def version_deletes(table: sa.Table) -> tuple[sa.Delete, sa.Delete]:
    """Deleting the version read (``b_seq``: compare and delete) and every version older than ``b_seq``
    (a newer record of the object came)."""
    key, seq = object_key(table), table.c.seq
    exact = table.delete().where(*key, seq == sa.bindparam("b_seq"))
    older = table.delete().where(*key, seq < sa.bindparam("b_seq"))
    return exact, older


def write_in_order(
    conn: sa.Connection, ops: list[tuple[str, dict[str, t.Any]]], statements: t.Mapping[str, sa.Executable], upsert: str
) -> None:
    """The queued changes in order, consecutive ones of a kind as one executemany; an object the
    ``upsert`` writes twice in a row is written once, the later (as two statements would leave it)."""
    for op, group in itertools.groupby(ops, key=lambda item: item[0]):
        rows = [row for _, row in group]
        if op == upsert:
            rows = list({(r["stream"], r["object"]): r for r in rows}.values())
        conn.execute(statements[op], rows)
