"""The store's database: the SQLite file (or memory, for a dry run) or PostgreSQL, its connections and locks.

One writer connection (under ``write_lock``) and, outside memory, one reader connection in autocommit
(under ``read_lock``: SQLite in WAL mode, so reads never wait on a write). A database that cannot be
reached or used raises :class:`StoreUnavailableError` with one line that never holds the password.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import typing as t
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url

from target_segmetrics.store import schema
from target_segmetrics.store.schema import StoreUnavailableError

if t.TYPE_CHECKING:
    from collections.abc import Iterator

FLUSH_EVERY = 500
"""Queued writes (digests, parked-record changes) are written at the latest every this many."""
CONNECT_TIMEOUT_SECONDS = 10
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SCHEMA_LOCK = 0x5E6_3E7  # pg_advisory_xact_lock key: two first runs do not create the tables at once


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
    return _password_in_place(url).set(drivername="postgresql+psycopg")


def _password_in_place(url: URL) -> URL:
    """The password where it is known to be secret: an unencoded ``@`` in it (the parser takes the rest for
    the host) and ``?password=...`` both become the URL's password, so no message ever shows it."""
    if url.host and "@" in url.host:
        extra, host = url.host.rsplit("@", 1)
        if url.password is not None:
            url = url.set(password=f"{url.password}@{extra}", host=host)
        else:
            url = url.set(username=f"{url.username}@{extra}", host=host)
    if "password" in url.query:
        secret = url.query["password"]
        password = secret[-1] if isinstance(secret, tuple) else secret
        url = url.difference_update_query(["password"]).set(password=password)
    return url


def redacted(url: URL | str) -> str:
    """The URL to show: the password is never printed."""
    url = make_url(url) if isinstance(url, str) else url
    return url.render_as_string(hide_password=True)


def one_line(exc: BaseException) -> str:
    """The driver's reason, on one line (psycopg's own, not SQLAlchemy's wrapper with its link)."""
    inner = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return "; ".join(lines[:2])[:300] or type(inner).__name__


def _redact(text: str, url: URL) -> str:
    """The driver's message without the password (should it ever quote it)."""
    return text.replace(url.password, "***") if url.password else text


class Database:
    """The store's connections: a writer (``conn``, under ``write_lock``) and a reader (``reader``, under
    ``read_lock``); ``pending_lock`` guards the queues of what is still to be written (held for an append
    only: senders never wait on the database)."""

    def __init__(
        self, path: str, scope: str, logger: logging.Logger, *, full_resend: bool = False, url: str | None = None
    ) -> None:
        self.memory = url is None and path == ":memory:"
        self.path = Path(path)
        self.url = database_url(url) if url else None
        self.scope = scope  # api_url + account + integration: a different destination never matches
        self.logger = logger
        self.full_resend = full_resend
        self.pending_lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.engine, self.conn = self._open()
        self.postgres = self.engine.dialect.name == "postgresql"
        self.insert = postgresql.insert if self.postgres else sqlite.insert
        if self.memory:
            self.reader = self.conn
            self.read_lock = self.write_lock
        else:
            self.reader = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self.read_lock = threading.Lock()

    @property
    def where(self) -> str:
        """Where the store is, for messages (never with the password)."""
        if self.url is not None:
            return redacted(self.url)
        return "memory (dry run: not kept)" if self.memory else str(self.path)

    # --- opening ----------------------------------------------------------------------------------

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
                one_line(exc),
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
            schema.create(conn, self.where)
            conn.exec_driver_sql(f"PRAGMA user_version={schema.SCHEMA_VERSION}")
            sent = schema.sent
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
                f"database {url.database}); nothing was sent: {_redact(one_line(exc), url)}"
            ) from None
        try:
            with conn.begin():
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                schema.create(conn, self.where)
        except BaseException as exc:
            conn.close()
            engine.dispose()
            if isinstance(exc, sa.exc.DBAPIError):
                raise StoreUnavailableError(
                    f"The store's database {redacted(url)} cannot be used; nothing was sent: "
                    f"{_redact(one_line(exc), url)}"
                ) from None
            raise
        return engine, conn

    # --- using it ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """The writer, committed at the end (caller holds ``write_lock``). On any failure it is rolled
        back; a database error stops the run (:meth:`failed`): what was not stored must not be passed by
        a STATE."""
        try:
            yield self.conn
            self.conn.commit()
        except BaseException as exc:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self.conn.rollback()
            if isinstance(exc, sa.exc.DBAPIError):
                raise self.failed(exc) from None
            raise

    def read(self, statement: sa.Executable, params: dict[str, t.Any] | None = None) -> list[sa.Row]:
        """Rows on the reader connection (reader thread); ``params``: values of the statement's bound parameters."""
        with self.read_lock:
            rows = self.reader.execute(statement, params).all()
            if self.memory:
                self.reader.commit()
        return list(rows)

    def failed(self, exc: sa.exc.DBAPIError) -> StoreUnavailableError:
        """The run stops: the store failed (one line, never the password)."""
        reason = _redact(one_line(exc), self.url) if self.url is not None else one_line(exc)
        return StoreUnavailableError(f"The store {self.where} failed ({reason}): stopped, nothing more is sent")

    def close(self) -> None:
        """Close the connections (caller flushed first)."""
        with self.write_lock:
            if self.reader is not self.conn:
                self.reader.close()
            self.conn.close()
            self.engine.dispose()
