"""``sent``: with ``skip_unchanged``, a digest of exactly the requests SegMetrics acknowledged, per object.

The object's key includes everything that decides where the data went — API URL, account, integration,
object kind, object key — and the digest covers the requests themselves (endpoint and body), so a changed
mapping, a changed value or another integration never matches, and such a record is sent.

Correctness before savings:
- a digest is written only after SegMetrics acknowledged the request; a failed, rejected or
  unacknowledged record is never remembered (it is sent again next run);
- a delete forgets the object (and, for a contact deleted by email, every contact with that email);
- a record that is not idempotent is never skipped (a delete, a tag event: ``object: tags``). A contact
  with ``tags_mode: add`` is: its requests (the upsert, its ``tags/remove`` and ``tags/add``) are computed
  from the record alone, so the same record leaves the contact the same;
- not being able to write a digest only costs a resend next run, never a lost record.

Beside it, ``record_digests``: per record of a stream, what the record was as it came (with its mapping)
and what its mapping read besides it (``mapping/transcript.py``), joined to the object's digest. A record
found there, as it was, while ``sent`` still holds what it made is unchanged without being mapped again.
"""

from __future__ import annotations

import time
import typing as t

import sqlalchemy as sa

from target_segmetrics.errors import StoreUnavailableError
from target_segmetrics.store.engine import FLUSH_EVERY
from target_segmetrics.store.schema import record_digests, sent

if t.TYPE_CHECKING:
    from target_segmetrics.store.engine import Database


class Digests:
    """What SegMetrics acknowledged per object, read on the reader thread, written in batches."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[tuple[str, str, str, str | None, str]] = []
        self._forget: list[tuple[str, str, str, str | None]] = []
        self._records: dict[tuple[str, str], dict[str, str]] = {}  # (stream, key) -> row, to be written
        # Nothing stored for this destination yet (a first run): no lookup can match, so none is made.
        first = sa.select(sa.literal(1)).select_from(sent).where(sent.c.scope == db.scope).limit(1)
        with db.write_lock, db.transaction() as conn:
            self._empty = conn.execute(first).first() is None
        # Each record's digest is read from the store when it is checked (one indexed read), on both
        # back ends: a change another run acknowledged meanwhile is seen, never skipped as unchanged.
        # One statement for the run, its values bound per read: SQLAlchemy compiles it once (building
        # the expression per record cost more than the read itself).
        self._lookup = db.prepared(
            sa.select(sent.c.digest).where(
                sent.c.scope == sa.bindparam("scope"),
                sent.c.kind == sa.bindparam("kind"),
                sent.c.key == sa.bindparam("key"),
            )
        )

        r = record_digests.c
        self._recognise = db.prepared(
            sa.select(r.transcript, r.identities)
            .join(sent, sa.and_(sent.c.scope == r.scope, sent.c.kind == r.kind, sent.c.key == r.object))
            .where(
                r.scope == sa.bindparam("scope"),
                r.stream == sa.bindparam("stream"),
                r.key == sa.bindparam("key"),
                r.record == sa.bindparam("record"),
                sent.c.digest == r.made,
            )
        )

    def recognised(self, stream: str, key: str, record: str) -> tuple[str, str] | None:
        """The transcript and identities (JSON) of a record of ``stream`` (``key``) that came exactly so
        before and made what SegMetrics still holds, or None (reader thread)."""
        db = self.db
        if db.full_resend or self._empty:
            return None
        try:
            found = self._recognise({"scope": db.scope, "stream": stream, "key": key, "record": record})
        except StoreUnavailableError:
            if db.gone is not None:  # the store is gone: the run stops
                raise
            return None  # when in doubt, map it
        return (found[0][0], found[0][1]) if found else None

    def remember_record(self, stream: str, key: str, record: str, made: dict[str, str]) -> None:
        """The record of ``stream`` (``key``) that came so (``record``) made ``made`` (its transcript, kind,
        object, identities and the digest of its requests), which SegMetrics holds (written in batches)."""
        with self.db.pending_lock:
            self._records[(stream, key)] = {
                "scope": self.db.scope,
                "stream": stream,
                "key": key,
                "record": record,
                **made,
            }
            full = len(self._records) >= FLUSH_EVERY
        if full:
            self.flush()

    def unchanged(self, kind: str, key: str, digest: str) -> bool:
        """Whether SegMetrics already acknowledged exactly this for this object (reader thread)."""
        db = self.db
        if db.full_resend or self._empty:
            return False
        try:
            found = self._lookup({"scope": db.scope, "kind": kind, "key": key})
        except StoreUnavailableError:
            if db.gone is not None:  # the store is gone: the run stops
                raise
            return False  # when in doubt, send
        return bool(found) and found[0][0] == digest

    def remember(self, kind: str, key: str, email: str | None, digest: str) -> None:
        """SegMetrics acknowledged ``digest`` for this object (written in batches)."""
        with self.db.pending_lock:
            self._pending.append((self.db.scope, kind, key, email, digest))
            full = len(self._pending) >= FLUSH_EVERY
        if full:
            self.flush()

    def forget(self, kind: str, key: str, email: str | None = None) -> None:
        """The object was deleted: nothing about it may be skipped again."""
        with self.db.pending_lock:
            self._forget.append((self.db.scope, kind, key, email))
        self.flush()

    def flush(self) -> None:
        """Write what was remembered so far."""
        with self.db.write_lock:
            with self.db.pending_lock:
                pending, self._pending = self._pending, []
                forget, self._forget = self._forget, []
                records, self._records = self._records, {}
            if pending or forget or records:
                self._write(pending, forget, [records[k] for k in sorted(records)])  # key order: no deadlock

    def _write(
        self,
        pending: list[tuple[str, str, str, str | None, str]],
        forget: list[tuple[str, str, str, str | None]],
        records: list[dict[str, str]],
    ) -> None:
        db = self.db
        now = time.time()
        latest = {(scope, kind, key): (email, digest) for scope, kind, key, email, digest in pending}
        rows = [
            {"scope": s, "kind": k, "key": o, "email": e, "digest": d, "sent_at": now}
            for (s, k, o), (e, d) in sorted(latest.items())  # key order: two runs never deadlock
        ]
        try:
            with db.transaction() as conn:
                if rows:
                    stmt = db.insert(sent)
                    conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=[sent.c.scope, sent.c.kind, sent.c.key],
                            set_={"email": stmt.excluded.email, "digest": stmt.excluded.digest, "sent_at": now},
                        ),
                        rows,
                    )
                if records:
                    stmt = db.insert(record_digests)
                    r = record_digests.c
                    changing = ("record", "transcript", "kind", "object", "identities", "made")
                    conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=[r.scope, r.stream, r.key],
                            set_={name: stmt.excluded[name] for name in changing},
                        ),
                        records,
                    )
                for scope, kind, key, email in forget:
                    conn.execute(sent.delete().where(sent.c.scope == scope, sent.c.kind == kind, sent.c.key == key))
                    if email:
                        conn.execute(
                            sent.delete().where(sent.c.scope == scope, sent.c.kind == kind, sent.c.email == email)
                        )
        except StoreUnavailableError as exc:
            if db.gone is not None:  # the store is gone: the run stops
                raise
            # Not being able to remember only costs a resend next time; never a lost record.
            db.logger.warning("Could not update the store of sent records %s (%s)", db.where, exc.reason or exc)
