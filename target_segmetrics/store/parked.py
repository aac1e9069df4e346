"""``parked``: records that cannot be sent *yet* (a lookup found nothing, or SegMetrics does not hold their
contact yet), one per object, until they can be sent or are too old.

Park, still waiting and unpark are queued in the order they happened (any thread) and written in one
transaction with the next commit (before a STATE passes them), or at once by :meth:`ParkedRecords.write`.
The release order is a timestamp with a tiebreak, never ``max(seq) + 1`` (two runs at once would both
take it)."""

from __future__ import annotations

import itertools
import time
import typing as t

import sqlalchemy as sa

from target_segmetrics.store.engine import FLUSH_EVERY
from target_segmetrics.store.schema import parked_table

if t.TYPE_CHECKING:
    from target_segmetrics.store.engine import Database


class ParkedRecords:
    """Parked records of this destination: queued changes, written in order."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._seq = 0
        self._ops: list[tuple[str, dict[str, t.Any]]] = []  # park/wait/unpark, in order

    def _next_seq(self) -> int:
        self._seq = max(time.time_ns(), self._seq + 1)
        return self._seq

    def park(self, stream: str, obj: str, record: str, waiting: str) -> None:
        """Keep a record that cannot be sent yet (a newer one for the same object replaces it)."""
        row = {"scope": self.db.scope, "stream": stream, "object": obj, "record": record, "waiting": waiting}
        self._queue("park", {**row, "parked_at": time.time()})

    def still_waiting(self, stream: str, obj: str, waiting: str) -> None:
        """A parked record tried again and still waiting: it keeps its place and its age."""
        self._queue("wait", {"b_scope": self.db.scope, "b_stream": stream, "b_object": obj, "b_waiting": waiting})

    def unpark(self, stream: str, obj: str) -> None:
        """The record landed (or was given up): it is no longer kept."""
        self._queue("unpark", {"b_scope": self.db.scope, "b_stream": stream, "b_object": obj})

    def _queue(self, op: str, row: dict[str, t.Any]) -> None:
        with self.db.pending_lock:
            if op == "park":
                row["seq"] = self._next_seq()
            self._ops.append((op, row))
            full = len(self._ops) >= FLUSH_EVERY
        if full:
            self.write()

    def write(self) -> None:
        """Write the queued changes now."""
        with self.db.write_lock:
            self.write_locked()

    def write_locked(self) -> None:
        """The queued changes, in order, in one transaction: each a single statement keyed by (scope,
        stream, object), consecutive ones of a kind as one executemany (caller holds ``write_lock``)."""
        with self.db.pending_lock:
            ops, self._ops = self._ops, []
        if not ops:
            return
        c = parked_table.c
        key = (
            c.scope == sa.bindparam("b_scope"),
            c.stream == sa.bindparam("b_stream"),
            c.object == sa.bindparam("b_object"),
        )
        insert = self.db.insert(parked_table)
        statements = {
            "park": insert.on_conflict_do_update(
                index_elements=[c.scope, c.stream, c.object],
                set_={
                    "record": insert.excluded.record,
                    "waiting": insert.excluded.waiting,
                    "seq": insert.excluded.seq,
                    "parked_at": insert.excluded.parked_at,  # the newer record waits from its own time
                },
            ),
            "wait": parked_table.update().where(*key).values(waiting=sa.bindparam("b_waiting")),
            "unpark": parked_table.delete().where(*key),
        }
        with self.db.transaction() as conn:
            for op, group in itertools.groupby(ops, key=lambda item: item[0]):
                rows = [row for _, row in group]
                if op == "park":  # one object twice in a row: the later one (as two statements would)
                    rows = list({(r["stream"], r["object"]): r for r in rows}.values())
                conn.execute(statements[op], rows)

    def all(self) -> list[tuple[str, str, str, str, float]]:
        """Every parked record of this destination, oldest first: (stream, object, record, waiting, parked_at)."""
        c = parked_table.c
        with self.db.write_lock:
            self.write_locked()
            with self.db.transaction() as conn:
                found = conn.execute(
                    sa.select(c.stream, c.object, c.record, c.waiting, c.parked_at)
                    .where(c.scope == self.db.scope)
                    .order_by(c.seq, c.stream, c.object)
                ).all()
        return [(row[0], row[1], row[2], row[3], row[4]) for row in found]
