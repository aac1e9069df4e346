"""Remember what SegMetrics acknowledged, to skip records whose payload it already has.

A SQLite file (``state_db_path``) holds, per SegMetrics object, a digest of exactly the requests
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
import logging
import sqlite3
import threading
import time
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from target_segmetrics.wire import Mapped

SCHEMA_VERSION = 1
FLUSH_EVERY = 500


def digest_of(mapped: Mapped) -> str:
    """A digest of exactly the requests a record makes (method, endpoint, body as sent)."""
    digest = hashlib.blake2b(digest_size=16)
    for request in mapped.requests:
        digest.update(f"{request.method} {request.endpoint}\n".encode())
        digest.update(request.data or b"")
        digest.update(b"\n")
    return digest.hexdigest()


class SentStore:
    """The SQLite store of acknowledged digests, safe to use from the reader and the senders."""

    def __init__(self, path: str, scope: str, logger: logging.Logger, *, full_resend: bool = False) -> None:
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
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)

    def _open(self) -> sqlite3.Connection:
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
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
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

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        with self._write_lock:
            self._reader.close()
            self._conn.close()
