"""``lookup_rows``: the rows of lookup streams (``{"lookup": {"key": ...}}`` in ``mappings``), by stream and
key, so a lookup also finds rows a tap emitted in an earlier run.

The rows a run puts under a key replace the rows earlier runs kept under it (a tap emits every row of a
key it sends: a deal's associations when the deal changed, so a line item removed in HubSpot leaves the
invoice); a row put again under the same row id replaces the older one.

Memory stays flat however many rows a run reads or writes: the rows of the most recently used keys are
kept in memory (:data:`CACHE_KEYS`: the lookups of one key are usually close together), any other key is
one indexed read. A row put is written at the latest :data:`FLUSH_EVERY` rows later, and with the next
commit (before a STATE passes it); until then a lookup finds it among the rows still to be written."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import typing as t
from collections import OrderedDict

import sqlalchemy as sa

from target_segmetrics.store.engine import FLUSH_EVERY
from target_segmetrics.store.schema import lookup_rows

if t.TYPE_CHECKING:
    from target_segmetrics.store.engine import Database

CACHE_KEYS = 2000
"""Lookup keys (stream and key) whose rows are kept in memory, the most recently used."""

_Rows = dict[str, tuple[dict, float]]
"""The rows of one key: row id -> (row, when stored)."""


class LookupRows:
    """Lookup rows, read and written on the reader thread."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.started = time.time()
        """Rows stored before this are earlier runs' (a key this run puts rows under drops them)."""
        self._cache: OrderedDict[tuple[str, str], _Rows] = OrderedDict()  # every row of the key
        self._writes: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}  # put, not written yet
        self._waiting = 0  # rows in _writes
        self._digests: dict[tuple[str, str], str] = {}  # of the rows of a key in the cache, made on first ask
        c = lookup_rows.c
        self._select = sa.select(c.row_id, c.row, c.stored_at).where(  # built once: a miss costs the read only
            c.scope == sa.bindparam("b_scope"), c.stream == sa.bindparam("b_stream"), c.key == sa.bindparam("b_key")
        )

    def put(self, stream: str, key: str, row_id: str, row: str) -> None:
        """Remember a lookup stream's row (JSON text) under its key (written in batches, see :meth:`write`)."""
        at = max(time.time(), self.started)
        pending = self._writes.setdefault((stream, key), {})
        self._waiting += row_id not in pending
        pending[row_id] = (row, at)
        self._digests.pop((stream, key), None)
        cached = self._cache.get((stream, key))
        if cached is not None:  # still every row of the key: this run's only, from now on
            for earlier in [rid for rid, (_, stored) in cached.items() if stored < self.started]:
                del cached[earlier]
            cached[row_id] = (json.loads(row), at)
        if self._waiting >= FLUSH_EVERY:
            self.write()

    def rows(self, stream: str, key: str) -> list[dict]:
        """Every row of a lookup stream under ``key`` (this run's, else earlier runs'), by row id."""
        cached = self._cache.get((stream, key))
        if cached is None:
            cached = self._cache[(stream, key)] = self._read(stream, key)
            if len(self._cache) > CACHE_KEYS:
                evicted, _ = self._cache.popitem(last=False)
                self._digests.pop(evicted, None)
        else:
            self._cache.move_to_end((stream, key))
        if len(cached) == 1:
            return [next(iter(cached.values()))[0]]
        return [cached[row_id][0] for row_id in sorted(cached)]

    def digest(self, stream: str, key: str) -> str:
        """What :meth:`rows` finds under ``key`` now, digested: the same text while the rows stay the same
        (what recognises an unchanged record whose mapping read them, ``skip_unchanged``)."""
        rows = self.rows(stream, key)  # first: the key is cached (and its digest dropped if evicted meanwhile)
        found = self._digests.get((stream, key))
        if found is None:
            text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False, default=str)
            found = self._digests[(stream, key)] = hashlib.blake2b(
                text.encode("utf-8", "surrogatepass"), digest_size=16
            ).hexdigest()
        return found

    def _read(self, stream: str, key: str) -> _Rows:
        """The rows of a key in the store, and those not written yet (which replace earlier runs')."""
        found = self.db.read(self._select, {"b_scope": self.db.scope, "b_stream": stream, "b_key": key})
        pending = self._writes.get((stream, key))
        rows = {
            row_id: (json.loads(row), stored)
            for row_id, row, stored in found
            if pending is None or stored >= self.started
        }
        for row_id, (row, at) in (pending or {}).items():
            rows[row_id] = (json.loads(row), at)
        return rows

    def write(self) -> None:
        """Write the rows put since the last write now."""
        with self.db.write_lock:
            self.write_locked()

    def write_locked(self) -> None:
        """Write the rows put since the last write, in one transaction: earlier runs' rows of their keys
        go, then the rows (caller holds ``write_lock``)."""
        writes, self._writes, self._waiting = self._writes, {}, 0
        if not writes:
            return
        stmt = self.db.insert(lookup_rows)
        c = lookup_rows.c
        scope = self.db.scope
        keys = sorted(writes)  # key order: two runs never deadlock
        with self.db.transaction() as conn:
            for stream, group in itertools.groupby(keys, key=lambda k: k[0]):
                names = [key for _, key in group]
                for start in range(0, len(names), FLUSH_EVERY):
                    conn.execute(
                        lookup_rows.delete().where(
                            c.scope == scope,
                            c.stream == stream,
                            c.key.in_(names[start : start + FLUSH_EVERY]),
                            c.stored_at < self.started,
                        )
                    )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[c.scope, c.stream, c.key, c.row_id],
                    set_={"row": stmt.excluded.row, "stored_at": stmt.excluded.stored_at},
                ),
                [
                    {"scope": scope, "stream": stream, "key": key, "row_id": row_id, "row": row, "stored_at": at}
                    for stream, key in keys
                    for row_id, (row, at) in sorted(writes[(stream, key)].items())
                ],
            )
