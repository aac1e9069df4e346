"""How long the store may take: every call to PostgreSQL is bounded in time, and a stop in seconds.

``state_db_timeout`` (default 30 s) bounds each store call, whatever the server or the network does:

- connecting: libpq's ``connect_timeout`` (psycopg applies it on the client);
- a statement, a lock wait, a transaction left open: PostgreSQL's own ``statement_timeout``,
  ``lock_timeout`` and ``idle_in_transaction_session_timeout`` (set on each new connection), so a live
  server cancels them and says why;
- a server that does not answer at all (frozen, or the network to it lost): its kernel may still
  acknowledge every byte, so neither TCP keepalives nor a server-side timeout ever fires. psycopg's own
  wait for an answer takes a timeout (:meth:`psycopg.Connection.wait`): each wait of a store connection
  is given what is left of its call's time, :data:`NO_ANSWER_MARGIN_SECONDS` past the server's own
  bounds, so a live server always answers first with its reason. TCP keepalives are on as well.

Once a stop begins (a signal, a fatal error) every store call, and every wait for the store's locks,
must end by the stop's deadline (:meth:`Bounds.hurry`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import typing as t

from typing_extensions import override

if t.TYPE_CHECKING:
    import psycopg
    from psycopg.abc import PQGen

    from target_segmetrics.errors import StoreUnavailableError

DEFAULT_TIMEOUT_SECONDS = 30.0
"""``state_db_timeout``'s default."""
NO_ANSWER_MARGIN_SECONDS = 3.0
"""A call the server never answers is given up this long after ``state_db_timeout`` (2 s after the
server's own ``statement_timeout`` would have fired)."""
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
"""libpq's TCP keepalives: an idle connection whose peer vanished is noticed (a URL's own values win)."""

RV = t.TypeVar("RV")


class Bounds:
    """The time a store call may take, and the stop's deadline once a stop began."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.stop_by: float | None = None

    @property
    def call_seconds(self) -> float:
        """How long one call may take on the client's side."""
        return self.timeout + NO_ANSWER_MARGIN_SECONDS

    def deadline(self) -> float:
        """When a call starting now must be over."""
        end = time.monotonic() + self.call_seconds
        return end if self.stop_by is None else min(end, self.stop_by)

    def hurry(self, seconds: float) -> None:
        """A stop began: every store call and every wait for the store's locks ends within ``seconds``."""
        stop_by = time.monotonic() + seconds
        self.stop_by = stop_by if self.stop_by is None else min(self.stop_by, stop_by)

    def lock_wait(self) -> float:
        """How long to wait for one of the store's locks: -1 (for ever: its holder's calls are bounded)
        until a stop began, then what is left of the stop's time."""
        return -1 if self.stop_by is None else max(0.0, self.stop_by - time.monotonic())

    def connect_args(self, query: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """libpq's connection parameters for the bounds (what the URL's query sets itself wins)."""
        args: dict[str, t.Any] = {"connect_timeout": max(2, math.ceil(self.timeout))}
        args.update(KEEPALIVES)
        return {name: value for name, value in args.items() if name not in query}

    def session_settings(self) -> list[tuple[str, str]]:
        """The server's own bounds, set on each new connection (``set_config``)."""
        ms = max(1, round(self.timeout * 1000))
        return [
            ("lock_timeout", str(ms)),  # a lock another run holds: said as such, before the statement's bound
            ("statement_timeout", str(ms + 1000)),
            ("idle_in_transaction_session_timeout", str(2 * ms + 1000)),
        ]


class Guarded(t.Protocol):
    """What a :class:`BoundedLock` guards: the store's database."""

    bounds: Bounds
    gone: StoreUnavailableError | None

    def lock_timed_out(self) -> StoreUnavailableError:
        """The error once a lock was not released within the stop's time (the store is given up)."""
        ...


class BoundedLock:
    """One of the store's locks: waited for at most what :meth:`Bounds.lock_wait` allows; past it, or
    once the store is known gone, entering raises the store's error (the caller stops)."""

    def __init__(self, db: Guarded) -> None:
        self._lock = threading.RLock()  # never taken twice by one thread; an RLock knows its owner
        self._db = db

    def acquire(self) -> bool:
        """Wait for the lock within the bounds; False when the time is up. A signal during the wait, or
        just after it, never leaves the lock taken (the stop that follows needs it)."""
        try:
            return self._lock.acquire(timeout=self._db.bounds.lock_wait())
        except BaseException:
            if getattr(self._lock, "_is_owned", lambda: False)():
                self._lock.release()
            raise

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> BoundedLock:
        if self._db.gone is not None:
            raise self._db.gone
        if not self.acquire():
            raise self._db.lock_timed_out()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class _AbandonedPipeline(logging.Filter):
    """psycopg's own warning that it ignored an error leaving a pipeline: after a signal the connection
    is abandoned on purpose (the stop says what was not written), so the line says nothing more."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored")


def bounded_connection_class() -> type[psycopg.Connection[t.Any]]:
    """psycopg's connection whose every wait for the server ends by its call's deadline (psycopg is
    imported only for a PostgreSQL store: target-segmetrics[postgres])."""
    import psycopg

    quiet = logging.getLogger("psycopg")
    if not any(isinstance(existing, _AbandonedPipeline) for existing in quiet.filters):
        quiet.addFilter(_AbandonedPipeline())

    class BoundedConnection(psycopg.Connection[t.Any]):
        """Each wait for the server gets at most ``limit`` seconds, and never past ``deadline``. A wait
        that timed out or that a signal interrupted leaves the connection abandoned: any later wait on
        it (psycopg's own clean-up of a pipeline, say) raises the same again at once, before it starts."""

        limit: float | None = None
        deadline: float | None = None
        abandoned: BaseException | None = None

        @override
        def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
            if self.abandoned is not None:
                raise self.abandoned
            left = self.limit
            if self.deadline is not None:
                until = max(0.0, self.deadline - time.monotonic())
                left = until if left is None else min(left, until)
            if left is not None:
                timeout = left if timeout is None else min(timeout, left)
            started = time.monotonic()
            try:
                return super().wait(gen, interval, timeout)
            except BaseException as exc:
                # A signal (the run is stopping), or no answer in time: not another wait on this connection.
                if not isinstance(exc, Exception) or (timeout is not None and time.monotonic() >= started + timeout):
                    self.abandoned = exc
                raise

    return BoundedConnection
