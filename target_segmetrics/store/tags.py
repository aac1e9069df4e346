"""``contact_tags``: with ``skip_unchanged``, the own tags SegMetrics acknowledged per contact.

One row per contact and stream (``tags_mode: own``, see ``delivery/tags.py``): the tags that stream's
record gave the contact, as sent, once SegMetrics acknowledged them. A row is only ever *absent* or
*true*: before a request changes tags a row stands for, the row is deleted on disk (:meth:`forget_now`,
a failure stops the run); the new row is written after the acknowledgement, in batches (one lost in a
crash only costs the next run its tag requests). Read once per run (on first use) and kept up to date
in memory, like PostgreSQL's digests.
"""

from __future__ import annotations

import json
import threading
import time
import typing as t

import sqlalchemy as sa

from target_segmetrics.store.engine import FLUSH_EVERY, one_line
from target_segmetrics.store.schema import metadata

if t.TYPE_CHECKING:
    from target_segmetrics.store.engine import Database

contact_tags = sa.Table(
    "contact_tags",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("contact", sa.Text, primary_key=True),
    sa.Column("stream", sa.Text, primary_key=True),
    sa.Column("email", sa.Text),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False),
    sa.Index("contact_tags_email", "scope", "email"),
)


class ContactTags:
    """The own tags SegMetrics holds per contact, as far as this target sent them (any thread)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, list[t.Any]]] | None = None  # contact -> stream -> tags
        self._by_email: dict[str, set[str]] = {}  # email -> contacts
        self._pending: dict[tuple[str, str], tuple[str | None, list[t.Any]]] = {}

    def _load(self) -> dict[str, dict[str, list[t.Any]]]:
        """This destination's rows, read once (under ``_lock``)."""
        if self._known is None:
            c = contact_tags.c
            try:
                rows = self.db.read(sa.select(c.contact, c.stream, c.email, c.tags).where(c.scope == self.db.scope))
            except sa.exc.DBAPIError as exc:
                raise self.db.failed(exc) from None
            self._known = {}
            for contact, stream, email, tags in rows:
                self._known.setdefault(contact, {})[stream] = json.loads(tags)
                if email:
                    self._by_email.setdefault(email, set()).add(contact)
        return self._known

    def known(self, contact: str, stream: str) -> list[t.Any] | None:
        """The own tags ``stream`` gave the contact that SegMetrics acknowledged; None: not known."""
        with self._lock:
            found = self._load().get(contact, {}).get(stream)
        return list(found) if found is not None else None

    def remember(self, contact: str, stream: str, email: str | None, tags: list[t.Any]) -> None:
        """SegMetrics acknowledged these own tags (written in batches)."""
        with self._lock:
            streams = self._load().setdefault(contact, {})
            if streams.get(stream) == tags and (contact, stream) not in self._pending:
                return  # the same as on disk: nothing to write
            streams[stream] = list(tags)
            if email:
                self._by_email.setdefault(email, set()).add(contact)
            self._pending[(contact, stream)] = (email, list(tags))
            full = len(self._pending) >= FLUSH_EVERY
        if full:
            self.flush()

    def forget_now(self, contact: str, email: str | None) -> None:
        """What SegMetrics holds for this contact (and every contact with this email) is about to change:
        forgotten on disk before the request goes (nothing to do when nothing is known of it)."""
        with self._lock:
            known = self._load()
            contacts = {contact} | (self._by_email.get(email, set()) if email else set())
            gone = sorted((c, s) for c in contacts for s in known.pop(c, {}))
            for key in gone:
                self._pending.pop(key, None)
        if not gone:
            return
        c = contact_tags.c
        with self.db.write_lock, self.db.transaction() as conn:
            for found in gone:  # key order: two runs never deadlock
                conn.execute(
                    contact_tags.delete().where(c.scope == self.db.scope, c.contact == found[0], c.stream == found[1])
                )

    def flush(self) -> None:
        """Write what was remembered so far; a failure only costs requests next run (it is not known then)."""
        db = self.db
        with db.write_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return
            now = time.time()
            rows = [
                {"scope": db.scope, "contact": c, "stream": s, "email": e, "tags": json.dumps(tags), "stored_at": now}
                for (c, s), (e, tags) in sorted(pending.items())  # key order: two runs never deadlock
            ]
            stmt = db.insert(contact_tags)
            try:
                db.conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[contact_tags.c.scope, contact_tags.c.contact, contact_tags.c.stream],
                        set_={"email": stmt.excluded.email, "tags": stmt.excluded.tags, "stored_at": now},
                    ),
                    rows,
                )
                db.conn.commit()
            except sa.exc.SQLAlchemyError as exc:
                db.logger.warning("Could not update the store's contact tags %s (%s)", db.where, one_line(exc))
                db.conn.rollback()
