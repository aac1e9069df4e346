"""The target's store: acknowledged digests, lookup rows and parked records, in SQLite or PostgreSQL.

By default one SQLite file (``state_db_path``); with ``state_db_url`` a PostgreSQL database (psycopg 3),
shared safely by several runs at once: every write is an upsert or a delete keyed by destination, a
batch is written in key order (no deadlock between two runs), and the order of parked records is a
timestamp with a tiebreak, never ``max(seq) + 1``. The tables are made on first use and the schema
version recorded in ``schema_version``.

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
import itertools
import json
import logging
import threading
import time
import typing as t
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url

from target_segmetrics.http.client import FatalError

if t.TYPE_CHECKING:
    from target_segmetrics.mapping.wire import Mapped

SCHEMA_VERSION = 2
FLUSH_EVERY = 500
CONNECT_TIMEOUT_SECONDS = 10
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SCHEMA_LOCK = 0x5E6_3E7  # pg_advisory_xact_lock key: two first runs do not create the tables at once

metadata = sa.MetaData()
lookup_rows = sa.Table(
    "lookup_rows",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("stream", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("row_id", sa.Text, primary_key=True),
    sa.Column("row", sa.Text, nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False),
)
parked_table = sa.Table(
    "parked",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("stream", sa.Text, primary_key=True),
    sa.Column("object", sa.Text, primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("waiting", sa.Text, nullable=False),
    sa.Column("parked_at", sa.Float, nullable=False),
    # Nanoseconds when (last) parked, unique in a run: the release order (ties between two runs are
    # broken by stream and object). Never max(seq) + 1, which two runs at once would both take.
    sa.Column("seq", sa.BigInteger, nullable=False),
)
sent = sa.Table(
    "sent",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("email", sa.Text),
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Index("sent_email", "scope", "kind", "email"),
)
schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)


class StoreUnavailableError(FatalError):
    """The store's database cannot be reached or used: the run stops (before any request when opening)."""


def database_url(text: str) -> URL:
    """``state_db_url`` as a SQLAlchemy URL on psycopg 3; ValueError with a reason (no password) if not usable."""
    try:
        url = make_url(text.strip())
    except Exception:  # SQLAlchemy's own message may echo the text, password included
        raise ValueError(
            "state_db_url is not a database URL: expected postgresql://user:password@host:5432/database"
        ) from None
    if url.drivername not in POSTGRES_SCHEMES:
        raise ValueError(
            f"state_db_url has an unknown scheme {url.drivername!r}: expected postgresql://user:password@host/"
            "database (leave it unset for the SQLite file at state_db_path)"
        )
    if not url.database:
        raise ValueError(f"state_db_url {redacted(url)} names no database (postgresql://user@host:5432/DATABASE)")
    return url.set(drivername="postgresql+psycopg")


def redacted(url: URL | str) -> str:
    """The URL to show: the password is never printed."""
    url = make_url(url) if isinstance(url, str) else url
    return url.render_as_string(hide_password=True)


def digest_of(mapped: Mapped) -> str:
    """A digest of exactly the requests a record makes (method, endpoint, body as sent)."""
    digest = hashlib.blake2b(digest_size=16)
    for request in mapped.requests:
        digest.update(f"{request.method} {request.endpoint}\n".encode())
        digest.update(request.data or b"")
        digest.update(b"\n")
    return digest.hexdigest()


def _one_line(exc: BaseException) -> str:
    """The driver's reason, on one line (psycopg's own, not SQLAlchemy's wrapper with its link)."""
    inner = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return "; ".join(lines[:2])[:300] or type(inner).__name__


class Store:
    """The store (SQLite or PostgreSQL), safe to use from the reader and the senders."""

    def __init__(
        self, path: str, scope: str, logger: logging.Logger, *, full_resend: bool = False, url: str | None = None
    ) -> None:
        self.memory = url is None and path == ":memory:"
        self.path = Path(path)
        self.url = database_url(url) if url else None
        self.scope = scope  # api_url + account + integration: a different destination never matches
        self.logger = logger
        self.full_resend = full_resend
        self._pending_lock = threading.Lock()  # held for an append only: senders never wait on the database
        self._write_lock = threading.Lock()
        self._pending: list[tuple[str, str, str, str | None, str]] = []
        self._forget: list[tuple[str, str, str, str | None]] = []
        self._seq = 0
        self._engine, self._conn = self._open()  # writes (under _write_lock)
        self.postgres = self._engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self.postgres else sqlite.insert
        # Nothing stored for this destination yet (a first run): no lookup can match, so none is made.
        first = sa.select(sa.literal(1)).select_from(sent).where(sent.c.scope == scope).limit(1)
        self._empty = self._conn.execute(first).first() is None
        self._conn.commit()
        # Lookups come from the reader thread only, on their own connection (SQLite WAL: reads never wait).
        if self.memory:
            self._reader = self._conn
            self._read_lock = self._write_lock
        else:
            self._reader = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._read_lock = threading.Lock()
        # PostgreSQL: a round trip per record would be the cost, so this destination's digests are read
        # once (on first use) and kept up to date with what this run remembers and forgets.
        self._digests: dict[tuple[str, str], tuple[str, str | None]] | None = None
        self._rows: dict[tuple[str, str], dict[str, dict]] = {}  # lookup rows read or written this run
        self._row_writes: dict[tuple[str, str, str, str], tuple[str, float]] = {}
        self._parked_ops: list[tuple[str, dict[str, t.Any]]] = []  # park/wait/unpark, in order (see commit)
        from target_segmetrics.store.tags import ContactTags  # TEMPORARY until the store split lands

        self.tags = ContactTags(Database(self))

    @property
    def where(self) -> str:
        """Where the store is, for messages (never with the password)."""
        if self.url is not None:
            return redacted(self.url)
        return "memory (dry run: not kept)" if self.memory else str(self.path)

    def _open(self) -> tuple[sa.Engine, sa.Connection]:
        if self.url is not None:
            return self._open_postgres(self.url)
        if self.memory:
            return self._connect()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        try:
            engine, conn = self._connect()
        except sa.exc.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            self.path.replace(aside)
            self.logger.warning(
                "The store of sent records %s is unreadable (%s); it was moved to %s and a new one started: "
                "every record is sent once this run",
                self.path,
                _one_line(exc),
                aside,
            )
            engine, conn = self._connect()
            existed = False
        if not existed:
            self.logger.info("No store of sent records at %s yet: every record is sent this run", self.path)
        elif self.full_resend:
            self.logger.info("full_resend is set: every record is sent this run (the store is updated)")
        return engine, conn

    def _connect(self) -> tuple[sa.Engine, sa.Connection]:
        """The SQLite file (WAL) or memory, its tables made if new."""
        if self.memory:
            engine = sa.create_engine(
                "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            engine = sa.create_engine(
                URL.create("sqlite", database=str(self.path)), connect_args={"check_same_thread": False}
            )

            @sa.event.listens_for(engine, "connect")
            def _wal(dbapi_conn: t.Any, _record: t.Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

        conn = engine.connect()
        try:
            metadata.create_all(conn)
            self._record_version(conn)
            conn.exec_driver_sql(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute(sa.select(sa.func.count()).select_from(sent).where(sent.c.scope == "probe")).first()
            conn.commit()
        except BaseException:
            conn.close()
            engine.dispose()
            raise
        return engine, conn

    def _open_postgres(self, url: URL) -> tuple[sa.Engine, sa.Connection]:
        args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        engine = sa.create_engine(url, connect_args=args, pool_size=2, max_overflow=2)
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            raise StoreUnavailableError(
                f"The store's database cannot be reached (host {url.host or 'localhost'}, port {url.port or 5432}, "
                f"database {url.database}); nothing was sent: {_redact(_one_line(exc), url)}"
            ) from None
        try:
            with conn.begin():
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                metadata.create_all(conn)
                self._record_version(conn)
        except BaseException as exc:
            conn.close()
            engine.dispose()
            if isinstance(exc, sa.exc.DBAPIError):
                raise StoreUnavailableError(
                    f"The store's database {redacted(url)} cannot be used; nothing was sent: "
                    f"{_redact(_one_line(exc), url)}"
                ) from None
            raise
        return engine, conn

    def _record_version(self, conn: sa.Connection) -> None:
        """The schema version this store holds (for later migrations); a newer one is not touched."""
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(schema_version)
        conn.execute(insert.values(id=1, version=SCHEMA_VERSION).on_conflict_do_nothing())
        version = conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1)).scalar_one()
        if version > SCHEMA_VERSION:
            raise StoreUnavailableError(
                f"The store {self.where} was written by a newer target-segmetrics (schema version {version}, "
                f"this one knows {SCHEMA_VERSION}): upgrade target-segmetrics"
            )

    # --- acknowledged digests -------------------------------------------------------------------

    def unchanged(self, kind: str, key: str, digest: str) -> bool:
        """Whether SegMetrics already acknowledged exactly this for this object (reader thread)."""
        if self.full_resend or self._empty:
            return False
        try:
            if self.postgres:
                return self._digest(kind, key) == digest
            with self._read_lock:
                row = self._reader.execute(
                    sa.select(sent.c.digest).where(sent.c.scope == self.scope, sent.c.kind == kind, sent.c.key == key)
                ).first()
                if self.memory:
                    self._reader.commit()
        except sa.exc.SQLAlchemyError:
            return False  # when in doubt, send
        return row is not None and row[0] == digest

    def _digest(self, kind: str, key: str) -> str | None:
        with self._read_lock:
            if self._digests is None:
                found = self._reader.execute(
                    sa.select(sent.c.kind, sent.c.key, sent.c.digest, sent.c.email).where(sent.c.scope == self.scope)
                )
                self._digests = {(k, o): (d, e) for k, o, d, e in found}
            entry = self._digests.get((kind, key))
        return entry[0] if entry else None

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
        latest = {(scope, kind, key): (email, digest) for scope, kind, key, email, digest in pending}
        rows = [
            {"scope": s, "kind": k, "key": o, "email": e, "digest": d, "sent_at": now}
            for (s, k, o), (e, d) in sorted(latest.items())  # key order: two runs never deadlock
        ]
        try:
            if rows:
                stmt = self._insert(sent)
                self._conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[sent.c.scope, sent.c.kind, sent.c.key],
                        set_={"email": stmt.excluded.email, "digest": stmt.excluded.digest, "sent_at": now},
                    ),
                    rows,
                )
            for scope, kind, key, email in forget:
                self._conn.execute(sent.delete().where(sent.c.scope == scope, sent.c.kind == kind, sent.c.key == key))
                if email:
                    self._conn.execute(
                        sent.delete().where(sent.c.scope == scope, sent.c.kind == kind, sent.c.email == email)
                    )
            self._conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            # Not being able to remember only costs a resend next time; never a lost record.
            self.logger.warning("Could not update the store of sent records %s (%s)", self.where, _one_line(exc))
            self._conn.rollback()
            self._digests = None  # read again: what was kept in memory may not be what the store holds
            return
        if self._digests is not None:
            with self._read_lock:
                for (_, kind, key), (email, digest) in latest.items():
                    self._digests[(kind, key)] = (digest, email)
                for _, kind, key, email in forget:
                    self._digests.pop((kind, key), None)
                    if email:
                        for gone in [k for k, (_, e) in self._digests.items() if k[0] == kind and e == email]:
                            del self._digests[gone]

    # --- lookup rows ----------------------------------------------------------------------------

    def put_row(self, stream: str, key: str, row_id: str, row: str) -> None:
        """Remember a lookup stream's row (JSON text) under its key (reader thread; see commit)."""
        self._rows.setdefault((stream, key), {})[row_id] = json.loads(row)
        self._row_writes[(self.scope, stream, key, row_id)] = (row, time.time())

    def rows(self, stream: str, key: str) -> list[dict]:
        """Every row of a lookup stream under ``key``: this run's and earlier runs' (reader thread)."""
        cached = self._rows.get((stream, key))
        if cached is None:
            with self._read_lock:
                try:
                    found = self._reader.execute(
                        sa.select(lookup_rows.c.row_id, lookup_rows.c.row).where(
                            lookup_rows.c.scope == self.scope, lookup_rows.c.stream == stream, lookup_rows.c.key == key
                        )
                    ).all()
                except sa.exc.DBAPIError as exc:
                    raise self._failed(exc) from None
                if self.memory:
                    self._reader.commit()
            cached = self._rows[(stream, key)] = {row_id: json.loads(row) for row_id, row in found}
        return list(cached.values())

    # --- parked records --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = max(time.time_ns(), self._seq + 1)
        return self._seq

    def park(self, stream: str, obj: str, record: str, waiting: str) -> None:
        """Keep a record that cannot be sent yet (a newer one for the same object replaces it).
        Written with the next :meth:`commit` (before a STATE passes it), in one batch."""
        row = {"scope": self.scope, "stream": stream, "object": obj, "record": record, "waiting": waiting}
        self._queue("park", {**row, "parked_at": time.time()})

    def still_waiting(self, stream: str, obj: str, waiting: str) -> None:
        """A parked record tried again and still waiting: it keeps its place and its age."""
        self._queue("wait", {"b_scope": self.scope, "b_stream": stream, "b_object": obj, "b_waiting": waiting})

    def unpark(self, stream: str, obj: str) -> None:
        """The record landed (or was given up): it is no longer kept."""
        self._queue("unpark", {"b_scope": self.scope, "b_stream": stream, "b_object": obj})

    def _queue(self, op: str, row: dict[str, t.Any]) -> None:
        """Park, still waiting and unpark, in the order they happened (any thread)."""
        with self._pending_lock:
            if op == "park":
                row["seq"] = self._next_seq()
            self._parked_ops.append((op, row))
            full = len(self._parked_ops) >= FLUSH_EVERY
        if full:
            with self._write_lock:
                self._write_parked()

    def write_parked(self) -> None:
        """Write the queued parked-record changes now (a sender parks a record SegMetrics refused for
        want of its contact: it must be on disk before the record counts as landed and STATE passes it)."""
        with self._write_lock:
            self._write_parked()

    def _write_parked(self) -> None:
        """The queued parked-record changes, in order, in one transaction: each a single statement keyed
        by (scope, stream, object), consecutive ones of a kind as one executemany (under _write_lock)."""
        with self._pending_lock:
            ops, self._parked_ops = self._parked_ops, []
        if not ops:
            return
        c = parked_table.c
        key = (
            c.scope == sa.bindparam("b_scope"),
            c.stream == sa.bindparam("b_stream"),
            c.object == sa.bindparam("b_object"),
        )
        insert = self._insert(parked_table)
        statements = {
            "park": insert.on_conflict_do_update(
                index_elements=[c.scope, c.stream, c.object],
                set_={"record": insert.excluded.record, "waiting": insert.excluded.waiting, "seq": insert.excluded.seq},
            ),
            "wait": parked_table.update().where(*key).values(waiting=sa.bindparam("b_waiting")),
            "unpark": parked_table.delete().where(*key),
        }
        try:
            for op, group in itertools.groupby(ops, key=lambda item: item[0]):
                rows = [row for _, row in group]
                if op == "park":  # one object twice in a row: the later one (as two statements would)
                    rows = list({(r["stream"], r["object"]): r for r in rows}.values())
                self._conn.execute(statements[op], rows)
            self._conn.commit()
        except BaseException as exc:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.rollback()
            if isinstance(exc, sa.exc.DBAPIError):
                raise self._failed(exc) from None
            raise

    def _run(self, statement: sa.Executable, rows: list[dict[str, t.Any]] | None = None) -> None:
        """One statement (for each of ``rows``), committed (writer; under _write_lock). A failure stops
        the run: a parked record or a lookup row that is not stored must not be passed by a STATE."""
        try:
            self._conn.execute(statement, rows)
            self._conn.commit()
        except BaseException as exc:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.rollback()
            if isinstance(exc, sa.exc.DBAPIError):
                raise self._failed(exc) from None
            raise

    def _failed(self, exc: sa.exc.DBAPIError) -> StoreUnavailableError:
        reason = _redact(_one_line(exc), self.url) if self.url is not None else _one_line(exc)
        return StoreUnavailableError(f"The store {self.where} failed ({reason}): stopped, nothing more is sent")

    def parked(self) -> list[tuple[str, str, str, str, float]]:
        """Every parked record of this destination, oldest first: (stream, object, record, waiting, parked_at)."""
        c = parked_table.c
        with self._write_lock:
            self._write_parked()
            try:
                found = self._conn.execute(
                    sa.select(c.stream, c.object, c.record, c.waiting, c.parked_at)
                    .where(c.scope == self.scope)
                    .order_by(c.seq, c.stream, c.object)
                ).all()
                self._conn.commit()
            except sa.exc.DBAPIError as exc:
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    self._conn.rollback()
                raise self._failed(exc) from None
        return [(row[0], row[1], row[2], row[3], row[4]) for row in found]

    def commit(self) -> None:
        """Make what the reader stored durable (called before a STATE message is handled)."""
        with self._write_lock:
            self._write_parked()
            writes, self._row_writes = self._row_writes, {}
            if writes:
                stmt = self._insert(lookup_rows)
                c = lookup_rows.c
                self._run(
                    stmt.on_conflict_do_update(
                        index_elements=[c.scope, c.stream, c.key, c.row_id],
                        set_={"row": stmt.excluded.row, "stored_at": stmt.excluded.stored_at},
                    ),
                    [
                        {"scope": s, "stream": st, "key": k, "row_id": r, "row": row, "stored_at": at}
                        for (s, st, k, r), (row, at) in sorted(writes.items())  # key order: no deadlock
                    ],
                )
        self.flush()

    def close(self) -> None:
        """Flush and close."""
        try:
            self.tags.flush()
            self.commit()
        finally:
            with self._write_lock:
                if self._reader is not self._conn:
                    self._reader.close()
                self._conn.close()
                self._engine.dispose()


def _redact(text: str, url: URL) -> str:
    """The driver's message without the password (should it ever quote it)."""
    return text.replace(url.password, "***") if url.password else text


class Database:
    """TEMPORARY: the store's connections as the store split names them."""

    def __init__(self, store: Store) -> None:
        self.s = store
        self.scope, self.logger, self.postgres, self.insert = store.scope, store.logger, store.postgres, store._insert
        self.conn, self.write_lock = store._conn, store._write_lock

    @property
    def where(self) -> str:
        return self.s.where

    def read(self, statement: sa.Executable) -> list[sa.Row]:
        with self.s._read_lock:
            rows = self.s._reader.execute(statement).all()
            if self.s.memory:
                self.s._reader.commit()
        return list(rows)

    def failed(self, exc: sa.exc.DBAPIError) -> StoreUnavailableError:
        return self.s._failed(exc)

    @contextlib.contextmanager
    def transaction(self) -> t.Iterator[sa.Connection]:
        try:
            yield self.conn
            self.conn.commit()
        except BaseException as exc:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self.conn.rollback()
            if isinstance(exc, sa.exc.DBAPIError):
                raise self.failed(exc) from None
            raise
