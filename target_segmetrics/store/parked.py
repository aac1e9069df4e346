"""``parked``: records that cannot be sent *yet* (a lookup found nothing, or SegMetrics does not hold their
contact yet), one per object, until they can be sent or are too old.

Each row is one version of a record (``seq``: nanoseconds when parked, unique in a run). Still waiting
and unpark name the version they read (compare and delete: a newer version parked meanwhile, by this run
or another one at once, stays); supersede (a newer record of the object came) removes every version
parked before it. Park, still waiting, unpark and supersede are queued in the order they happened (any
thread) and written in one transaction with the next commit (before a STATE passes them),
or at once by :meth:`ParkedRecords.write`.
The release order is a timestamp with a tiebreak, never ``max(seq) + 1`` (two runs at once would both
take it)."""

from __future__ import annotations

import json
import time
import typing as t

import sqlalchemy as sa

from target_segmetrics.store.engine import FLUSH_EVERY
from target_segmetrics.store.schema import parked_table
from target_segmetrics.store.versions import Clock, object_key, version_deletes, write_in_order

if t.TYPE_CHECKING:
    from target_segmetrics.store.engine import Database


class ParkedRecords:
    """Parked records of this destination: queued changes, written in order."""

    PAGE = 500
    """Parked records read at a time by :meth:`pages` (memory stays flat however many wait)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._clock = Clock()
        self._ops: list[tuple[str, dict[str, t.Any]]] = []  # park/wait/unpark/supersede, in order

    def stamp(self) -> int:
        """A version later than every one given before, parks included (nanoseconds, unique in a run)."""
        with self.db.pending_lock:
            return self._clock.next()

    def park(self, stream: str, obj: str, record: str, waiting: str, identities: str | None = None) -> int:
        """Keep a record that cannot be sent yet (a newer one for the same object replaces it): its version."""
        row = {"scope": self.db.scope, "stream": stream, "object": obj, "record": record, "waiting": waiting}
        return self._queue("park", {**row, "identities": identities, "parked_at": time.time()})

    def still_waiting(self, stream: str, obj: str, seq: int, waiting: str) -> None:
        """The version ``seq`` tried again and still waiting: it keeps its place and its age."""
        self._queue("wait", {**self._key(stream, obj), "b_seq": seq, "b_waiting": waiting})

    def unpark(self, stream: str, obj: str, seq: int) -> None:
        """The version ``seq`` landed (or was given up): it is no longer kept (a newer one stays)."""
        self._queue("unpark", {**self._key(stream, obj), "b_seq": seq})

    def supersede(self, stream: str, obj: str) -> None:
        """A newer record of the object came: every version parked before now is no longer kept."""
        self._queue("supersede", self._key(stream, obj))

    def _key(self, stream: str, obj: str) -> dict[str, t.Any]:
        return {"b_scope": self.db.scope, "b_stream": stream, "b_object": obj}

    def _queue(self, op: str, row: dict[str, t.Any]) -> int:
        with self.db.pending_lock:
            seq = self._clock.next()
            row["seq" if op == "park" else "b_seq"] = row.get("b_seq", seq)
            self._ops.append((op, row))
            full = len(self._ops) >= FLUSH_EVERY
        if full:
            self.write()
        return seq

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
        exact, older = version_deletes(parked_table)
        insert = self.db.insert(parked_table)
        statements = {
            "park": insert.on_conflict_do_update(
                index_elements=[c.scope, c.stream, c.object],
                set_={
                    "record": insert.excluded.record,
                    "waiting": insert.excluded.waiting,
                    "identities": insert.excluded.identities,
                    "seq": insert.excluded.seq,
                    "parked_at": insert.excluded.parked_at,  # the newer record waits from its own time
                },
                where=c.seq < insert.excluded.seq,  # never over a newer version (another run's)
            ),
            "wait": parked_table.update()
            .where(*object_key(parked_table), c.seq == sa.bindparam("b_seq"))
            .values(waiting=sa.bindparam("b_waiting")),
            "unpark": exact,
            "supersede": older,
        }
        with self.db.transaction() as conn:
            write_in_order(conn, ops, statements, upsert="park")

    def pages(self) -> t.Iterator[list[tuple[str, str, str, str, float, int]]]:
        """Every record parked before now, oldest first, a page at a time: (stream, object, record,
        waiting, parked_at, seq). One parked while the pages are read (a newer version) is not read."""
        c = parked_table.c
        with self.db.pending_lock:
            until = self._clock.next()
        after = (-1, "", "")
        while True:
            with self.db.write_lock:
                self.write_locked()
                with self.db.transaction() as conn:
                    found = conn.execute(
                        sa.select(c.stream, c.object, c.record, c.waiting, c.parked_at, c.seq)
                        .where(
                            c.scope == self.db.scope,
                            c.seq < until,
                            sa.tuple_(c.seq, c.stream, c.object) > sa.tuple_(*after),
                        )
                        .order_by(c.seq, c.stream, c.object)
                        .limit(self.PAGE)
                    ).all()
            if not found:
                return
            page = [(row[0], row[1], row[2], row[3], row[4], row[5]) for row in found]
            after = (page[-1][5], page[-1][0], page[-1][1])
            yield page

    def objects(self, key: t.Callable[[int], None], identity: t.Callable[[int], None]) -> None:
        """What is parked for this destination, as hashes, to ``key`` and ``identity``: each (stream,
        object), and each identity the records name (what a newer record of another stream must be
        checked against)."""
        c = parked_table.c
        with self.db.write_lock:
            self.write_locked()
            with self.db.transaction() as conn:
                result = conn.execute(
                    sa.select(c.stream, c.object, c.identities).where(c.scope == self.db.scope)
                ).yield_per(self.PAGE)
                for stream, obj, names in result:
                    key(hash((stream, obj)))
                    for name in json.loads(names or "[]"):
                        identity(hash(tuple(name)))

    def count(self) -> tuple[int, list[str]]:
        """How many records are parked for this destination, and what they wait for."""
        c = parked_table.c
        with self.db.write_lock:
            self.write_locked()
            with self.db.transaction() as conn:
                total = conn.execute(
                    sa.select(sa.func.count()).select_from(parked_table).where(c.scope == self.db.scope)
                ).scalar_one()
                waits = conn.execute(sa.select(c.waiting).where(c.scope == self.db.scope).distinct()).scalars()
                return int(total), list(waits)
