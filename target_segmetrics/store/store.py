"""The target's store: acknowledged digests and tags, lookup rows, parked and rejected records, in SQLite or PostgreSQL.

By default one SQLite file (``state_db_path``); with ``state_db_url`` a PostgreSQL database (psycopg 3),
shared safely by several runs at once: every write is an upsert or a delete keyed by destination, a
batch is written in key order (no deadlock between two runs). The tables are made on first use and the
schema version recorded in ``schema_version`` (:mod:`.schema`); connections in :mod:`.engine`.

Six tables, each keyed by destination (API URL, account, integration) first, each its own module:

- ``sent`` (:mod:`.digests`): with ``skip_unchanged``, what SegMetrics acknowledged per object, and
  beside it ``record_digests``: per record, what it was as it came and what its mapping read;
- ``lookup_rows`` (:mod:`.lookups`): the rows of lookup streams, by stream and key (the most recently
  used keys kept in memory);
- ``parked`` (:mod:`.parked`): records that cannot be sent *yet*, one per object;
- ``rejected`` (:mod:`.rejected`): rejected records kept for replay, one per object;
- ``contact_tags`` (:mod:`.tags`): with ``skip_unchanged``, the own tags SegMetrics acknowledged per
  contact (``tags_mode: own``), so only the tag requests a change needs are sent.

Writes made on the reader thread are committed before the next STATE message is handled
(:meth:`Store.commit`), so a STATE that passes a lookup row or a parked record never runs ahead of
the store. Every call to PostgreSQL is bounded in time (``state_db_timeout``, :mod:`.bounds`), and a
store that stopped answering or went away is *gone*: nothing more is said to it. A dry run keeps the
store in memory. A missing SQLite file means a full resend; a file that is not a database is set aside
with a warning and a new one started; a locked one is waited for, a bounded time (:mod:`.engine`), and
never set aside. Losing the store costs a full resend of what
``skip_unchanged`` would skip, and loses the parked records and the lookup rows of earlier runs.
"""

from __future__ import annotations

import contextlib
import typing as t

from target_segmetrics.errors import StoreUnavailableError
from target_segmetrics.store.bounds import DEFAULT_TIMEOUT_SECONDS
from target_segmetrics.store.digests import Digests
from target_segmetrics.store.engine import Database, database_url, redacted
from target_segmetrics.store.lookups import LookupRows
from target_segmetrics.store.parked import ParkedRecords
from target_segmetrics.store.rejected import RejectedRecords
from target_segmetrics.store.schema import SCHEMA_VERSION
from target_segmetrics.store.tags import ContactTags

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    import sqlalchemy as sa

    from target_segmetrics.config.settings import Settings

__all__ = ["SCHEMA_VERSION", "Store", "StoreUnavailableError", "database_url", "redacted"]


class Store:
    """The store (SQLite or PostgreSQL), safe to use from the reader and the senders."""

    def __init__(
        self,
        path: str,
        scope: str,
        logger: logging.Logger,
        *,
        full_resend: bool = False,
        url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.db = Database(path, scope, logger, full_resend=full_resend, url=url, timeout=timeout)
        self.digests = Digests(self.db)
        self.lookups = LookupRows(self.db)
        self.parked_records = ParkedRecords(self.db)
        self.tags = ContactTags(self.db)
        """Each contact's acknowledged own tags (``tags.py``)."""
        self.rejected = RejectedRecords(self, self.db.conn, self.db.write_lock)
        """Rejected records kept for replay (``rejected.py``)."""

    @classmethod
    def of(cls, settings: Settings, logger: logging.Logger) -> Store:
        """The run's store: the SQLite file at ``state_db_path`` or the database at ``state_db_url``; a dry
        run keeps it in memory. A database that cannot be reached stops the run here, before any request."""
        dry = settings.dry_run
        return cls(
            ":memory:" if dry else settings.state_db_path,
            settings.destination,
            logger,
            full_resend=settings.full_resend,
            url=None if dry else settings.state_db_url,
            timeout=settings.state_db_timeout,
        )

    @property
    def scope(self) -> str:
        """This destination (API URL, account, integration): every row is keyed by it."""
        return self.db.scope

    @property
    def where(self) -> str:
        """Where the store is, for messages (never with the password)."""
        return self.db.where

    # --- acknowledged digests ---------------------------------------------------------------------

    def unchanged(self, kind: str, key: str, digest: str) -> bool:
        """Whether SegMetrics already acknowledged exactly this for this object (reader thread)."""
        return self.digests.unchanged(kind, key, digest)

    def recognised(self, stream: str, key: str, record: str) -> tuple[str, str] | None:
        """What a record that came exactly so before made, while SegMetrics still holds it: its
        transcript and identities (JSON), or None (reader thread)."""
        return self.digests.recognised(stream, key, record)

    def remember_record(self, stream: str, key: str, record: str, made: dict[str, str]) -> None:
        """A record that came so made what SegMetrics now holds (written in batches)."""
        self.digests.remember_record(stream, key, record, made)

    def remember(self, kind: str, key: str, email: str | None, digest: str) -> None:
        """SegMetrics acknowledged ``digest`` for this object (written in batches)."""
        self.digests.remember(kind, key, email, digest)

    def forget(self, kind: str, key: str, email: str | None = None) -> None:
        """The object was deleted: nothing about it may be skipped again."""
        self.digests.forget(kind, key, email)

    def flush(self) -> None:
        """Write what was remembered so far."""
        self.digests.flush()
        self.tags.flush()

    # --- lookup rows ------------------------------------------------------------------------------

    def put_row(self, stream: str, key: str, row_id: str, row: str) -> None:
        """Remember a lookup stream's row (JSON text) under its key (reader thread; see commit)."""
        self.lookups.put(stream, key, row_id, row)

    def rows(self, stream: str, key: str) -> list[dict]:
        """Every row of a lookup stream under ``key``: this run's and earlier runs' (reader thread)."""
        return self.lookups.rows(stream, key)

    # --- parked records (see parked.py: versions, compare and delete) ---------------------------

    def park(self, stream: str, obj: str, record: str, waiting: str, identities: str | None = None) -> int:
        """Keep a record that cannot be sent yet (a newer one for the same object replaces it): its version.
        Written with the next :meth:`commit` (before a STATE passes it), in one batch."""
        return self.parked_records.park(stream, obj, record, waiting, identities)

    def still_waiting(self, stream: str, obj: str, seq: int, waiting: str) -> None:
        """The parked version ``seq`` tried again and still waiting: it keeps its place and its age."""
        self.parked_records.still_waiting(stream, obj, seq, waiting)

    def unpark(self, stream: str, obj: str, seq: int) -> None:
        """The parked version ``seq`` landed (or was given up): it is no longer kept."""
        self.parked_records.unpark(stream, obj, seq)

    def supersede(self, stream: str, obj: str) -> None:
        """A newer record of the object came: what was parked for it before is no longer kept."""
        self.parked_records.supersede(stream, obj)

    def write_parked(self) -> None:
        """Write the queued parked-record changes now (a sender parks a record SegMetrics refused for
        want of its contact: it must be on disk before the record counts as landed and STATE passes it)."""
        self.parked_records.write()

    def failed(self, exc: sa.exc.DBAPIError) -> StoreUnavailableError:
        """The error that stops the run when the store fails (never with the password)."""
        return self.db.failed(exc)

    def parked(self) -> t.Iterator[list[tuple[str, str, str, str, float, int]]]:
        """Every record parked before now, oldest first, a page at a time: (stream, object, record,
        waiting, parked_at, seq)."""
        return self.parked_records.pages()

    # --- the whole store --------------------------------------------------------------------------

    def commit(self) -> None:
        """Make what the reader stored durable (called before a STATE message is handled)."""
        with self.db.write_lock:
            self.parked_records.write_locked()
            self.lookups.write_locked()
        self.flush()

    @property
    def gone(self) -> StoreUnavailableError | None:
        """Why the store is gone (it stopped answering, was lost, or left mid-call), or None: once it is,
        every call fails at once without a word to the database."""
        return self.db.gone

    def hurry(self, seconds: float) -> None:
        """A stop began: every store call from now on ends within ``seconds`` (or the store is given up)."""
        self.db.hurry(seconds)

    def close(self) -> None:
        """Flush and close."""
        try:
            self.commit()
        finally:
            self.db.close()

    def finish(self, *notes: Callable[[], None], reason: str | None = None) -> None:
        """The run's last words to the store: everything still queued, ``notes`` (the summary's, read from
        the store), then the connections. Never raises: a store that fails now (a stop's time ran out,
        it is gone) is said once in a warning, unless it is the ``reason`` the run stops for."""
        failure: StoreUnavailableError | None = None
        try:
            self.rejected.write()  # what is kept for replay, before the summary says so
            self.commit()
            for note in notes:
                with contextlib.suppress(Exception):  # the summary's note only
                    note()
        except StoreUnavailableError as exc:
            failure = exc
        finally:
            self.db.close()  # not a word more to a store that is gone
        failure = self.gone or failure
        if failure is not None and str(failure) not in (reason or ""):
            self.db.logger.warning("%s", failure)
