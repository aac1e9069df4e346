"""One deadline per try: connect + headers + body within ``request_timeout``.

``timeout`` in requests bounds each socket operation, so a server sending a byte every few seconds
holds a request forever. Each try therefore gets a deadline; a watchdog thread shuts the try's
sockets down when it passes, which ends any read at once. The sockets are found through the pool
(a kept-alive connection) and at creation (a new one: a duplicate handle, because wrapping in TLS
detaches the original while the handshake runs).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
import typing as t

import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


def use(deadline: Deadline | None) -> None:
    """The deadline of the try this thread runs now (None once it is over): new sockets join it."""
    _current.deadline = deadline


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also for a TLS socket


class Deadline:
    """One try's deadline and the sockets it uses."""

    __slots__ = ("_conns", "_handles", "_lock", "at", "done", "expired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.done = False
        self.expired = False
        self._conns: list[HTTPConnection] = []
        self._handles: list[socket.socket] = []
        self._lock = threading.Lock()

    def watch(self, conn: HTTPConnection) -> None:
        """A pooled connection this try sends on."""
        with self._lock:
            self._conns.append(conn)
            if self.expired:
                _shut(conn.sock)

    def watch_socket(self, sock: socket.socket) -> None:
        """A socket just opened for this try (kept as a duplicate handle until the try ends)."""
        handle = sock.dup()
        with self._lock:
            self._handles.append(handle)
            if self.expired:
                _shut(handle)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            for conn in self._conns:
                _shut(conn.sock)
            for handle in self._handles:
                _shut(handle)

    def finish(self) -> bool:
        """The try is over; True if its deadline passed first."""
        with self._lock:
            self.done = True
            handles, self._handles, self._conns = self._handles, [], []
        for handle in handles:
            handle.close()
        return self.expired


class Deadlines:
    """The watchdog: one thread, one heap of deadlines, woken only when the earliest one changes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._count = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def open(self, seconds: float) -> Deadline:
        deadline = Deadline(time.monotonic() + seconds)
        with self._cond:
            heap = self._heap
            while heap and heap[0][2].done:
                heapq.heappop(heap)
            heapq.heappush(heap, (deadline.at, next(self._count), deadline))
            if self._thread is None:
                self._closed = False
                self._thread = threading.Thread(target=self._watch, name="segmetrics-deadlines", daemon=True)
                self._thread.start()
            elif heap[0][2] is deadline:
                self._cond.notify()
        return deadline

    def close(self) -> None:
        with self._cond:
            self._closed = True
            thread, self._thread = self._thread, None
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                heap = self._heap
                while heap and (heap[0][2].done or heap[0][0] <= now):
                    heapq.heappop(heap)[2].expire()
                self._cond.wait(heap[0][0] - now if heap else None)


def _watch_new_socket(sock: socket.socket) -> socket.socket:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        try:
            deadline.watch_socket(sock)
        except OSError:
            sock.close()
            raise
    return sock


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _watch_new_socket(super()._new_conn())


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _watch_new_socket(super()._new_conn())


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> t.Any:
        conn = super()._get_conn(timeout)
        if (deadline := getattr(_current, "deadline", None)) is not None:
            deadline.watch(conn)
        return conn


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> t.Any:
        conn = super()._get_conn(timeout)
        if (deadline := getattr(_current, "deadline", None)) is not None:
            deadline.watch(conn)
        return conn


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter, with pools whose connections a try's deadline can cut off."""

    def init_poolmanager(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: t.Any) -> t.Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager
