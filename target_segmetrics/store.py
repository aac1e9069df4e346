"""The target's store: acknowledged digests, lookup rows and parked records, in one SQLite file.

Three tables, each keyed by destination (API URL, account, integration) first:

- ``sent``: with ``skip_unchanged``, what SegMetrics acknowledged per object (below);
- ``lookup_rows``: the rows of lookup streams (``{"lookup": {"key": ...}}`` in ``mappings``), by
  stream and key, so a lookup also finds rows a tap emitted in an earlier run;
- ``parked``: records that cannot be sent *yet* (a lookup found nothing, or SegMetrics does not hold
  their contact yet), one per object, until they can be sent or are too old.

Writes made on the reader thread are committed before the next STATE message is handled
(:meth:`Store.commit`), so a STATE that passes a lookup row or a parked record never runs ahead of
the disk. A dry run keeps the store in memory.

``sent``: a SQLite file (``state_db_path``) holds, per SegMetrics object, a digest of exactly the requests
that were acknowledged for it. The object's key includes everything that decides where the data
went — API URL, account, integration, object kind, object key — and the digest covers the
requests themselves (endpoint and body), so a changed mapping, a changed value or another
integration never matches, and such a record is sent.

Correctness before savings:
- a digest is written only after SegMetrics acknowledged the request; a failed, rejected or
  unacknowledged record is never remembered (it is sent again next run);
- a delete forgets the object (and, for a contact deleted by email, every contact with that email);
- requests that are not idempotent are never skipped (tag events, ``tags_mode: add``): re-adding a
  tag someone removed since is what the stream says to do;
- a missing store means a full resend; an unreadable one is set aside with a warning and a new one
  started. Losing the store only ever costs a full resend.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from target_segmetrics.wire import Mapped

SCHEMA_VERSION = 2
FLUSH_EVERY = 500


def digest_of(mapped: Mapped) -> str:
    """A digest of exactly the requests a record makes (method, endpoint, body as sent)."""
    digest = hashlib.blake2b(digest_size=16)
    for request in mapped.requests:
        digest.update(f"{request.method} {request.endpoint}\n".encode())
        digest.update(request.data or b"")
        digest.update(b"\n")
    return digest.hexdigest()


class Store:
    """The SQLite store, safe to use from the reader and the senders."""

    def __init__(self, path: str, scope: str, logger: logging.Logger, *, full_resend: bool = False) -> None:
        self.memory = path == ":memory:"
        self.path = Path(path)
        self.scope = scope  # api_url + account + integration: a different destination never matches
        self.logger = logger
        self.full_resend = full_resend
        self._pending_lock = threading.Lock()  # held for an append only: senders never wait on SQLite
        self._write_lock = threading.Lock()
        self._pending: list[tuple[str, str, str, str | None, str]] = []
        self._forget: list[tuple[str, str, str, str | None]] = []
        self._conn = self._open()  # writes (under _write_lock)
        # Nothing stored for this destination yet (a first run): no lookup can match, so none is made.
        self._empty = self._conn.execute("SELECT 1 FROM sent WHERE scope = ? LIMIT 1", (scope,)).fetchone() is None
        # Lookups come from the reader thread only, on their own connection (WAL: reads never wait).
        self._reader = (
            self._conn if self.memory else sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        )
        self._rows: dict[tuple[str, str], dict[str, dict]] = {}  # lookup rows read or written this run
        self._row_writes: list[tuple[str, str, str, str, str, float]] = []

    def _open(self) -> sqlite3.Connection:
        if self.memory:
            return self._connect()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        try:
            conn = self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            self.path.replace(aside)
            self.logger.warning(
                "The store of sent records %s is unreadable (%s); it was moved to %s and a new one started: "
                "every record is sent once this run",
                self.path,
                exc,
                aside,
            )
            conn = self._connect()
            existed = False
        if not existed:
            self.logger.info("No store of sent records at %s yet: every record is sent this run", self.path)
        elif self.full_resend:
            self.logger.info("full_resend is set: every record is sent this run (the store is updated)")
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(":memory:" if self.memory else self.path, check_same_thread=False, isolation_level=None)
        if not self.memory:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS lookup_rows (scope TEXT NOT NULL, stream TEXT NOT NULL, key TEXT NOT NULL, "
            "row_id TEXT NOT NULL, row TEXT NOT NULL, stored_at REAL NOT NULL, "
            "PRIMARY KEY (scope, stream, key, row_id))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS parked (scope TEXT NOT NULL, stream TEXT NOT NULL, object TEXT NOT NULL, "
            "record TEXT NOT NULL, waiting TEXT NOT NULL, parked_at REAL NOT NULL, seq INTEGER NOT NULL, "
            "PRIMARY KEY (scope, stream, object))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS sent (scope TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, "
            "email TEXT, digest TEXT NOT NULL, sent_at REAL NOT NULL, PRIMARY KEY (scope, kind, key))"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS sent_email ON sent (scope, kind, email)")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("SELECT count(*) FROM sent WHERE scope = ?", ("probe",)).fetchone()
        return conn

    def unchanged(self, kind: str, key: str, digest: str) -> bool:
        """Whether SegMetrics already acknowledged exactly this for this object (reader thread)."""
        if self.full_resend or self._empty:
            return False
        try:
            row = self._reader.execute(
                "SELECT digest FROM sent WHERE scope = ? AND kind = ? AND key = ?", (self.scope, kind, key)
            ).fetchone()
        except sqlite3.Error:
            return False  # when in doubt, send
        return row is not None and row[0] == digest

    def remember(self, kind: str, key: str, email: str | None, digest: str) -> None:
        """SegMetrics acknowledged ``digest`` for this object (written in batches)."""
        with self._pending_lock:
            self._pending.append((self.scope, kind, key, email, digest))
            full = len(self._pending) >= FLUSH_EVERY
        if full:
            self.flush()

    def forget(self, kind: str, key: str, email: str | None = None) -> None:
        """The object was deleted: nothing about it may be skipped again."""
        with self._pending_lock:
            self._forget.append((self.scope, kind, key, email))
        self.flush()

    def flush(self) -> None:
        """Write what was remembered so far."""
        with self._write_lock:
            with self._pending_lock:
                pending, self._pending = self._pending, []
                forget, self._forget = self._forget, []
            if pending or forget:
                self._write(pending, forget)

    def _write(
        self, pending: list[tuple[str, str, str, str | None, str]], forget: list[tuple[str, str, str, str | None]]
    ) -> None:
        now = time.time()
        try:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO sent (scope, kind, key, email, digest, sent_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (scope, kind, key) DO UPDATE SET email = excluded.email, digest = excluded.digest, "
                "sent_at = excluded.sent_at",
                [(*row, now) for row in pending],
            )
            for scope, kind, key, email in forget:
                self._conn.execute("DELETE FROM sent WHERE scope = ? AND kind = ? AND key = ?", (scope, kind, key))
                if email:
                    self._conn.execute(
                        "DELETE FROM sent WHERE scope = ? AND kind = ? AND email = ?", (scope, kind, email)
                    )
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # Not being able to remember only costs a resend next time; never a lost record.
            self.logger.warning("Could not update the store of sent records %s (%s)", self.path, exc)
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    # --- lookup rows ----------------------------------------------------------------------------

    def put_row(self, stream: str, key: str, row_id: str, row: str) -> None:
        """Remember a lookup stream's row (JSON text) under its key (reader thread; see commit)."""
        self._rows.setdefault((stream, key), {})[row_id] = json.loads(row)
        self._row_writes.append((self.scope, stream, key, row_id, row, time.time()))

    def rows(self, stream: str, key: str) -> list[dict]:
        """Every row of a lookup stream under ``key``: this run's and earlier runs' (reader thread)."""
        cached = self._rows.get((stream, key))
        if cached is None:
            with self._write_lock:
                found = self._reader.execute(
                    "SELECT row_id, row FROM lookup_rows WHERE scope = ? AND stream = ? AND key = ?",
                    (self.scope, stream, key),
                ).fetchall()
            cached = self._rows[(stream, key)] = {row_id: json.loads(row) for row_id, row in found}
        return list(cached.values())

    # --- parked records --------------------------------------------------------------------------

    def park(self, stream: str, obj: str, record: str, waiting: str) -> None:
        """Keep a record that cannot be sent yet (a newer one for the same object replaces it)."""
        now = time.time()
        with self._write_lock:
            self._conn.execute(
                "INSERT INTO parked (scope, stream, object, record, waiting, parked_at, seq) "
                "VALUES (?, ?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM parked)) "
                "ON CONFLICT (scope, stream, object) DO UPDATE SET record = excluded.record, "
                "waiting = excluded.waiting, seq = excluded.seq",
                (self.scope, stream, obj, record, waiting, now),
            )

    def still_waiting(self, stream: str, obj: str, waiting: str) -> None:
        """A parked record tried again and still waiting: it keeps its place and its age."""
        with self._write_lock:
            self._conn.execute(
                "UPDATE parked SET waiting = ? WHERE scope = ? AND stream = ? AND object = ?",
                (waiting, self.scope, stream, obj),
            )

    def unpark(self, stream: str, obj: str) -> None:
        """The record landed (or was given up): it is no longer kept."""
        with self._write_lock:
            self._conn.execute(
                "DELETE FROM parked WHERE scope = ? AND stream = ? AND object = ?", (self.scope, stream, obj)
            )

    def parked(self) -> list[tuple[str, str, str, str, float]]:
        """Every parked record of this destination, oldest first: (stream, object, record, waiting, parked_at)."""
        with self._write_lock:
            return self._conn.execute(
                "SELECT stream, object, record, waiting, parked_at FROM parked WHERE scope = ? ORDER BY seq",
                (self.scope,),
            ).fetchall()

    def commit(self) -> None:
        """Make what the reader stored durable (called before a STATE message is handled)."""
        with self._write_lock:
            writes, self._row_writes = self._row_writes, []
            if writes:
                self._conn.execute("BEGIN")
                self._conn.executemany(
                    "INSERT INTO lookup_rows (scope, stream, key, row_id, row, stored_at) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (scope, stream, key, row_id) DO UPDATE SET row = excluded.row, "
                    "stored_at = excluded.stored_at",
                    writes,
                )
                self._conn.execute("COMMIT")
        self.flush()

    def close(self) -> None:
        """Flush and close."""
        self.commit()
        with self._write_lock:
            if self._reader is not self._conn:
                self._reader.close()
            self._conn.close()
