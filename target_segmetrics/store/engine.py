"""The store's database: the SQLite file (or memory, for a dry run) or PostgreSQL, its connections and locks.

One writer connection (under ``write_lock``) and, outside memory, one reader connection in autocommit
(under ``read_lock``: SQLite in WAL mode, so reads never wait on a write). A database that cannot be
reached or used raises :class:`StoreUnavailableError` with one line that never holds the password; a
SQLite file another run or process holds locked is waited for (:data:`LOCK_WAIT_SECONDS`), then is one of
those, and only a file that is not a database is moved aside. Every call to PostgreSQL is bounded in time
(:mod:`.bounds`); a call that leaves the store unusable (no answer in time, the connection lost, a signal
mid-call) makes it *gone*: every later call fails at once, without a word to the database, so a stop
never waits on it.
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

from target_segmetrics.errors import StoreUnavailableError
from target_segmetrics.store import schema
from target_segmetrics.store.bounds import DEFAULT_TIMEOUT_SECONDS, BoundedLock, Bounds, bounded_connection_class

if t.TYPE_CHECKING:
    from collections.abc import Iterator

FLUSH_EVERY = 500
"""Queued writes (digests, parked-record changes) are written at the latest every this many."""
BUSY_TIMEOUT_SECONDS = 5.0
"""How long one SQLite statement waits for a lock another connection holds (SQLite's own wait)."""
LOCK_WAIT_SECONDS = 30.0
"""How long a run waits, at start, for a SQLite store another run or process holds locked."""
_LOCKED = ("database is locked", "database table is locked", "SQLITE_BUSY", "SQLITE_LOCKED")
_NOT_A_DATABASE = ("file is not a database", "database disk image is malformed", "SQLITE_NOTADB", "SQLITE_CORRUPT")
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
NOT_KEPT = "what it had not written yet is not kept (what came after the last STATE printed is read again next run)"
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


def _sqlite_says(exc: sa.exc.DBAPIError, what: tuple[str, ...]) -> bool:
    """Whether SQLite's error is one of ``what`` (its error name, Python 3.11+, or its message)."""
    inner = getattr(exc, "orig", None) or exc
    said = f"{getattr(inner, 'sqlite_errorname', '')} {inner}"
    return any(text in said for text in what)


def _redact(text: str, url: URL) -> str:
    """The driver's message without the password (should it ever quote it)."""
    return text.replace(url.password, "***") if url.password else text


class Database:
    """The store's connections: a writer (``conn``, under ``write_lock``) and a reader (``reader``, under
    ``read_lock``); ``pending_lock`` guards the queues of what is still to be written (held for an append
    only: senders never wait on the database)."""

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
        self.memory = url is None and path == ":memory:"
        self.path = Path(path)
        self.url = database_url(url) if url else None
        self.postgres = self.url is not None
        self.scope = scope  # api_url + account + integration: a different destination never matches
        self.logger = logger
        self.full_resend = full_resend
        self.bounds = Bounds(timeout)
        self.gone: StoreUnavailableError | None = None
        """Once the store stopped answering, went away or was left mid-call: what every later call raises."""
        self._closed = False
        self.pending_lock = threading.Lock()
        self.write_lock = BoundedLock(self)
        self.engine, self.conn = self._open()
        self.insert = postgresql.insert if self.postgres else sqlite.insert
        self.reader: sa.Connection
        if self.memory:
            self.reader = self.conn
            self.read_lock = self.write_lock
        else:
            self.read_lock = BoundedLock(self)
            try:
                self.reader = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except sa.exc.DBAPIError as exc:
                self.conn.close()
                self.engine.dispose()
                raise self._unusable(exc) from None

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
            engine, conn = self._connect_when_free()
        except sa.exc.DatabaseError as exc:
            if not _sqlite_says(exc, _NOT_A_DATABASE):  # only a file that is not a database is set aside
                raise StoreUnavailableError(
                    f"The store {self.path} cannot be used ({one_line(exc)}): stopped, nothing was sent; the "
                    "store was left as it is (it holds the parked records and lookup rows of earlier runs)"
                ) from None
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

    def _connect_when_free(self) -> tuple[sa.Engine, sa.Connection]:
        """The SQLite file, once no other run or process holds it locked (waiting up to
        :data:`LOCK_WAIT_SECONDS`): a locked store is in use, never unreadable."""
        first = min(BUSY_TIMEOUT_SECONDS, LOCK_WAIT_SECONDS)
        try:
            return self._connect(busy_timeout=first)
        except sa.exc.OperationalError as exc:
            if not _sqlite_says(exc, _LOCKED):
                raise
        self.logger.warning(
            "The store %s is in use by another run or process (locked): waiting up to %g s for it",
            self.path,
            LOCK_WAIT_SECONDS,
        )
        try:
            return self._connect(busy_timeout=max(0.1, LOCK_WAIT_SECONDS - first))
        except sa.exc.OperationalError as exc:
            if not _sqlite_says(exc, _LOCKED):
                raise
        raise StoreUnavailableError(
            f"The store {self.path} is in use by another run or process (it stayed locked for "
            f"{LOCK_WAIT_SECONDS:g} s): stopped, nothing was sent and the store was left as it is. Let the "
            f"other run finish (or end the process holding it open: fuser {self.path} names it) and run again"
        )

    def _connect(self, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> tuple[sa.Engine, sa.Connection]:
        """The SQLite file (WAL) or memory, its tables made if new; a statement waits up to ``busy_timeout``
        seconds for a lock another connection holds."""
        if self.memory:
            engine = sa.create_engine(
                "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            engine = sa.create_engine(
                URL.create("sqlite", database=str(self.path)),
                connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
            )

            @sa.event.listens_for(engine, "connect")
            def _wal(dbapi_conn: t.Any, _record: t.Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

        conn = engine.connect()
        try:
            if busy_timeout != BUSY_TIMEOUT_SECONDS:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            schema.create(conn, self.where)
            conn.exec_driver_sql(f"PRAGMA user_version={schema.SCHEMA_VERSION}")
            sent = schema.sent
            conn.execute(sa.select(sa.func.count()).select_from(sent).where(sent.c.scope == "probe")).first()
            conn.commit()
            if busy_timeout != BUSY_TIMEOUT_SECONDS:  # the rest of the run waits as any statement does
                conn.exec_driver_sql(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        except BaseException:
            conn.close()
            engine.dispose()
            raise
        return engine, conn

    def _open_postgres(self, url: URL) -> tuple[sa.Engine, sa.Connection]:
        engine = sa.create_engine(url, connect_args=self.bounds.connect_args(url.query), pool_size=2, max_overflow=2)
        bounded = bounded_connection_class()
        limit, settings = self.bounds.call_seconds, self.bounds.session_settings()

        @sa.event.listens_for(engine, "do_connect")
        def _connect(_dialect: t.Any, _record: t.Any, cargs: t.Any, cparams: t.Any) -> t.Any:
            conn: t.Any = bounded.connect(*cargs, **cparams)  # each wait for an answer bounded (bounds.py)
            conn.limit = limit
            return conn

        @sa.event.listens_for(engine, "connect")
        def _server_bounds(dbapi_conn: t.Any, _record: t.Any) -> None:
            dbapi_conn.autocommit = True  # session settings, outside any transaction
            for name, value in settings:
                dbapi_conn.execute("SELECT set_config(%s, %s, false)", (name, value))
            dbapi_conn.autocommit = False

        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            raise StoreUnavailableError(
                f"The store's database cannot be reached (host {url.host or 'localhost'}, port {url.port or 5432}, "
                f"database {url.database}); nothing was sent: {_redact(one_line(exc), url)}"
            ) from None
        try:
            with self.bounded(conn), conn.begin():
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                schema.create(conn, self.where)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                conn.invalidate()  # not another word to a store that failed while opening
            engine.dispose()
            if isinstance(exc, StoreUnavailableError) and exc.reason is not None:
                raise self._unusable(exc) from None
            raise
        return engine, conn

    def _unusable(self, exc: BaseException) -> StoreUnavailableError:
        """Opening failed after connecting: one line, nothing was sent."""
        if isinstance(exc, StoreUnavailableError):
            reason = exc.reason or str(exc)
        else:
            reason = _redact(one_line(exc), self.url) if self.url is not None else one_line(exc)
        return StoreUnavailableError(f"The store's database {self.where} cannot be used; nothing was sent: {reason}")

    # --- using it ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def bounded(self, conn: sa.Connection) -> Iterator[sa.Connection]:
        """One call to the store on ``conn`` (the caller holds its lock), within the bounds. A database
        error raises :meth:`failed`; a call that leaves the store unusable makes it :attr:`gone`."""
        if self.gone is not None:
            raise self.gone
        deadline = self.bounds.deadline()
        if deadline <= time.monotonic():  # a stop's time is up: not another word to the store
            raise self._lose(conn, self._no_answer())
        dbapi = t.cast("t.Any", conn.connection.dbapi_connection) if self.postgres else None
        if dbapi is not None:
            dbapi.deadline = deadline
        try:
            yield conn
        except BaseException as exc:
            if self.postgres and not isinstance(exc, Exception):  # a signal mid-call: the answer never read
                self._lose(
                    conn,
                    StoreUnavailableError(
                        f"The store {self.where} was left in the middle of a call by the stop: {NOT_KEPT}"
                    ),
                )
                raise
            if isinstance(exc, sa.exc.DBAPIError):
                if self.postgres and time.monotonic() >= deadline:  # psycopg's wait for an answer timed out
                    raise self._lose(conn, self._no_answer()) from None
                if self.postgres and exc.connection_invalidated:  # the connection is lost
                    raise self._lose(conn, self.failed(exc)) from None
                raise self.failed(exc) from None
            raise
        finally:
            if dbapi is not None:
                dbapi.deadline = None

    def _lose(self, conn: sa.Connection, error: StoreUnavailableError) -> StoreUnavailableError:
        """The store is gone (the first reason stays): ``conn`` is dropped without a word to the database."""
        with self.pending_lock:
            if self.gone is None:
                self.gone = error
        with contextlib.suppress(Exception):
            conn.invalidate()
        return self.gone

    def _no_answer(self) -> StoreUnavailableError:
        stop_by = self.bounds.stop_by
        if stop_by is not None and time.monotonic() >= stop_by - 0.05:
            return StoreUnavailableError(
                f"The store {self.where} did not answer before the stop's deadline: {NOT_KEPT}"
            )
        return StoreUnavailableError(
            f"The store {self.where} did not answer within {self.bounds.call_seconds:g}s (state_db_timeout "
            f"{self.bounds.timeout:g}s: the server, or the network to it, stopped answering): stopped, nothing "
            "more is sent"
        )

    def lock_timed_out(self) -> StoreUnavailableError:
        """A stop's time ran out waiting for a store call of another thread to end: the store is given up."""
        with self.pending_lock:
            if self.gone is None:
                self.gone = self._no_answer()
        return self.gone

    def hurry(self, seconds: float) -> None:
        """A stop began: every store call from now on, and every wait for its locks, ends within ``seconds``."""
        self.bounds.hurry(seconds)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """The writer, committed at the end (caller holds ``write_lock``). On any failure it is rolled
        back; a database error stops the run (:meth:`failed`): what was not stored must not be passed by
        a STATE."""
        with self.bounded(self.conn) as conn:
            try:
                yield conn
                conn.commit()
            except BaseException:
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    conn.rollback()
                raise

    def read(self, statement: sa.Executable, params: dict[str, t.Any] | None = None) -> list[sa.Row]:
        """Rows on the reader connection (reader thread); ``params`` for a statement's bind parameters."""
        with self.read_lock, self.bounded(self.reader) as reader:
            rows = reader.execute(statement, params).all()
            if self.memory:
                reader.commit()
        return list(rows)

    def prepared(self, statement: sa.Select) -> t.Callable[[dict[str, t.Any]], list[t.Any]]:
        """A read made once per record, as a function of its bind parameters (reader thread). On SQLite it
        runs the SQL SQLAlchemy compiled, once, on the driver's connection: some 9 µs a call against 64
        through ``execute`` (``bench/run.py``: the 1% run). A driver error is raised as SQLAlchemy's, so the
        bounds handle it as any other. PostgreSQL (whose lost connections the bounds see through SQLAlchemy)
        and a dry run's memory read with :meth:`read`."""
        if self.postgres or self.memory:
            return lambda params: self.read(statement, params)
        compiled = statement.compile(dialect=self.engine.dialect)
        sql, names = str(compiled), list(compiled.positiontup or [])
        error = self.engine.dialect.loaded_dbapi.Error

        def read(params: dict[str, t.Any]) -> list[t.Any]:
            values = tuple(params[name] for name in names)
            with self.read_lock, self.bounded(self.reader) as reader:
                try:
                    driver = t.cast("t.Any", reader.connection.driver_connection)  # the sqlite3 connection
                    return list(driver.execute(sql, values).fetchall())
                except error as exc:
                    raise sa.exc.DBAPIError.instance(sql, values, exc, error) from exc

        return read

    def failed(self, exc: sa.exc.DBAPIError) -> StoreUnavailableError:
        """The run stops: the store failed (one line, never the password)."""
        reason = _redact(one_line(exc), self.url) if self.url is not None else one_line(exc)
        error = StoreUnavailableError(f"The store {self.where} failed ({reason}): stopped, nothing more is sent")
        error.reason = reason
        return error

    def close(self) -> None:
        """Close the connections (caller flushed first). A store known gone is left without a word to it;
        a call of another thread that does not end within a stop's time leaves them to the process's end."""
        if self._closed or not self.write_lock.acquire():
            return
        try:
            self._closed = True
            for conn in [self.conn] if self.reader is self.conn else [self.reader, self.conn]:
                if self.gone is None:
                    with contextlib.suppress(StoreUnavailableError), self.bounded(conn):
                        conn.close()  # the pool's reset (a rollback) is bounded too
                if self.gone is not None:
                    with contextlib.suppress(Exception):
                        conn.invalidate()
                        conn.close()
            self.engine.dispose()
        finally:
            self.write_lock.release()
