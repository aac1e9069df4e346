"""``lookup_rows``: the rows of lookup streams (``{"lookup": {"key": ...}}`` in ``mappings``), by stream and
key, so a lookup also finds rows a tap emitted in an earlier run. Written with the next commit (before a
STATE passes them)."""

from __future__ import annotations

import json
import time
import typing as t

import sqlalchemy as sa

from target_segmetrics.store.schema import lookup_rows

if t.TYPE_CHECKING:
    from target_segmetrics.store.engine import Database


class LookupRows:
    """Lookup rows, read and written on the reader thread."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._rows: dict[tuple[str, str], dict[str, dict]] = {}  # lookup rows read or written this run
        self._writes: dict[tuple[str, str, str, str], tuple[str, float]] = {}

    def put(self, stream: str, key: str, row_id: str, row: str) -> None:
        """Remember a lookup stream's row (JSON text) under its key (see :meth:`write`)."""
        self._rows.setdefault((stream, key), {})[row_id] = json.loads(row)
        self._writes[(self.db.scope, stream, key, row_id)] = (row, time.time())

    def rows(self, stream: str, key: str) -> list[dict]:
        """Every row of a lookup stream under ``key``: this run's and earlier runs'."""
        cached = self._rows.get((stream, key))
        if cached is None:
            c = lookup_rows.c
            found = self.db.read(
                sa.select(c.row_id, c.row).where(c.scope == self.db.scope, c.stream == stream, c.key == key)
            )
            cached = self._rows[(stream, key)] = {row_id: json.loads(row) for row_id, row in found}
        return list(cached.values())

    def write(self) -> None:
        """Write the rows put since the last write, in one transaction (caller holds ``write_lock``)."""
        writes, self._writes = self._writes, {}
        if not writes:
            return
        stmt = self.db.insert(lookup_rows)
        c = lookup_rows.c
        with self.db.transaction() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[c.scope, c.stream, c.key, c.row_id],
                    set_={"row": stmt.excluded.row, "stored_at": stmt.excluded.stored_at},
                ),
                [
                    {"scope": s, "stream": st, "key": k, "row_id": r, "row": row, "stored_at": at}
                    for (s, st, k, r), (row, at) in sorted(writes.items())  # key order: no deadlock
                ],
            )
