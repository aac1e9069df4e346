"""``rejected``: records rejected (locally or by SegMetrics with a 4xx), kept for replay.

One row per object (destination, stream, key): the record as the tap sent it, the reasons, a digest
of what was refused, when it was first kept and ``seq``, the version (nanoseconds when last kept,
unique in a run). Keep and drop are queued in the order they happened (any thread) and written in
one transaction with the next commit (before a STATE passes them), or at once by :meth:`write`.
A drop names the version it read (compare-and-delete: a newer version kept meanwhile, by this run
or another one at once, stays), or, for a newer record of the object, every version older than now.

The table is made on first use (its own, so a store written before it existed simply gains it).
"""

from __future__ import annotations

import threading
import time
import typing as t

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from target_segmetrics.store.versions import Clock, version_deletes, write_in_order

if t.TYPE_CHECKING:
    from target_segmetrics.store.bounds import BoundedLock
    from target_segmetrics.store.store import Store

FLUSH_EVERY = 500
_CREATE_LOCK = 0x5E6_3E8  # pg_advisory_xact_lock key: two first runs do not create the table at once

metadata = sa.MetaData()
rejected_table = sa.Table(
    "rejected",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("stream", sa.Text, primary_key=True),
    sa.Column("object", sa.Text, primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("kept_at", sa.Float, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)


class RejectedRecords:
    """The rejected records of this destination kept for replay: queued changes, written in order."""

    def __init__(self, store: Store, conn: sa.Connection, lock: BoundedLock) -> None:
        self.store = store
        self.scope = store.scope
        self._conn = conn
        self._write_lock = lock
        self._lock = threading.Lock()  # held for an append only
        self._clock = Clock()
        self._ops: list[tuple[str, dict[str, t.Any]]] = []
        self._ready = False
        postgres = conn.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert

    PAGE = 500
    """Kept records read at a time by :meth:`kept` (memory stays flat however many are kept)."""

    def stamp(self) -> int:
        """A version later than every one given before (a record kept from now on has a later seq)."""
        with self._lock:
            return self._clock.next()

    def keep(self, stream: str, obj: str, record: str, reasons: str, digest: str) -> None:
        """Keep a rejected record (a newer one of the same object replaces it; its age is the first one's)."""
        row = {"scope": self.scope, "stream": stream, "object": obj, "record": record, "reasons": reasons}
        self._queue("keep", {**row, "digest": digest, "kept_at": time.time()})

    def drop(self, stream: str, obj: str, *, seq: int | None = None) -> None:
        """The version ``seq`` of the object is no longer kept (it landed, or is parked or skipped now);
        without ``seq``: a newer record of the object came, so every version kept before now goes."""
        row = {"b_scope": self.scope, "b_stream": stream, "b_object": obj}
        self._queue("drop" if seq is not None else "supersede", {**row, "b_seq": seq})

    def _queue(self, op: str, row: dict[str, t.Any]) -> None:
        with self._lock:
            if op == "keep":
                row["seq"] = self._clock.next()
            elif op == "supersede":
                row["b_seq"] = self._clock.next()
            self._ops.append((op, row))
            full = len(self._ops) >= FLUSH_EVERY
        if full:
            self.write()

    def _create(self, conn: sa.Connection) -> None:
        if self._ready:
            return
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CREATE_LOCK)))
        metadata.create_all(conn)
        self._ready = True

    def write(self) -> None:
        """Write the queued changes now, in order, in one transaction."""
        with self._write_lock:
            with self._lock:
                ops, self._ops = self._ops, []
            if not ops and self._ready:
                return
            c = rejected_table.c
            exact, older = version_deletes(rejected_table)
            insert = self._insert(rejected_table)
            statements = {
                "keep": insert.on_conflict_do_update(
                    index_elements=[c.scope, c.stream, c.object],
                    set_={
                        "record": insert.excluded.record,
                        "reasons": insert.excluded.reasons,
                        "digest": insert.excluded.digest,
                        "seq": insert.excluded.seq,
                    },
                ),
                "drop": exact,
                "supersede": older,
            }
            try:
                with self.store.db.transaction() as conn:  # bounded in time; rolled back on a failure
                    self._create(conn)
                    write_in_order(conn, ops, statements, upsert="keep")
            except BaseException:
                self._ready = False
                raise

    def _select(self, statement: sa.Select) -> list[sa.Row]:
        self.write()
        with self._write_lock, self.store.db.transaction() as conn:
            found = conn.execute(statement).all()
        return list(found)

    def kept(self) -> t.Iterator[tuple[str, str, str, str, float, int]]:
        """Every record of this destination kept before now, oldest first, read a page at a time:
        (stream, object, record, digest, kept_at, seq). One kept while they are read is not read."""
        c = rejected_table.c
        until = self.stamp()
        after = (-1, "", "")
        while True:
            page = self._select(
                sa.select(c.stream, c.object, c.record, c.digest, c.kept_at, c.seq)
                .where(c.scope == self.scope, c.seq < until, sa.tuple_(c.seq, c.stream, c.object) > sa.tuple_(*after))
                .order_by(c.seq, c.stream, c.object)
                .limit(self.PAGE)
            )
            if not page:
                return
            after = (page[-1][5], page[-1][0], page[-1][1])
            for r in page:
                yield (r[0], r[1], r[2], r[3], r[4], r[5])

    def objects(self, key: t.Callable[[int], None]) -> None:
        """``hash((stream, object))`` of every record kept for this destination, to ``key`` (read once a
        run, to spot newer records), a page at a time."""
        c = rejected_table.c
        after = ("", "")
        while True:
            page = self._select(
                sa.select(c.stream, c.object)
                .where(c.scope == self.scope, sa.tuple_(c.stream, c.object) > sa.tuple_(*after))
                .order_by(c.stream, c.object)
                .limit(self.PAGE * 10)
            )
            if not page:
                return
            after = (page[-1][0], page[-1][1])
            for stream, obj in page:
                key(hash((stream, obj)))

    def count(self) -> int:
        c = rejected_table.c
        rows = self._select(sa.select(sa.func.count()).select_from(rejected_table).where(c.scope == self.scope))
        return int(rows[0][0])
