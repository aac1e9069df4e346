"""A TCP proxy on 127.0.0.1 in front of a real server (the tests' PostgreSQL), to make that server freeze
or go away mid-run without touching the server the rest of the session shares.

- :meth:`TcpProxy.freeze`: the proxy stops forwarding, both ways, but keeps every connection open and
  keeps reading what each side sends (as a frozen server's kernel does: the bytes are acknowledged,
  nothing ever answers). :attr:`TcpProxy.held` counts what it holds back since then, both ways: a
  call sent after the freeze, or the answer to one sent just before it.
- :meth:`TcpProxy.thaw`: what was held is forwarded and the proxy goes on as before.
- :meth:`TcpProxy.gone`: every connection is closed and nothing listens any more (the server is gone).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TcpProxy:
    """``with TcpProxy(port) as proxy:`` forwards 127.0.0.1:``proxy.port`` to 127.0.0.1:``port``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._frozen = False
        self._closing = False
        self.held = 0
        """Bytes held back while frozen, both ways (a store call waiting for an answer that never comes)."""
        self.connections = 0
        """Connections accepted so far."""
        self._peers: dict[socket.socket, socket.socket] = {}
        self._backlog: dict[socket.socket, bytearray] = {}  # socket -> what it sent while frozen
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._loop, name="test-tcp-proxy", daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def freeze(self) -> None:
        with self._lock:
            self._frozen = True
            self.held = 0

    def thaw(self) -> None:
        with self._lock:
            self._frozen = False
        self._wake()

    def gone(self) -> None:
        """Close every connection and stop listening: the server is gone."""
        with self._lock:
            self._closing = True
        self._wake()
        self._thread.join(timeout=10)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # --- the loop -----------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closing:
                        return
                for key, _ in self._selector.select(timeout=0.2):
                    sock = key.fileobj
                    if sock is self._listener:
                        self._accept()
                    elif sock is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                        self._flush_backlog()
                    else:
                        self._pump(sock)
        finally:
            self._close_all()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
        self._peers[client], self._peers[server] = server, client
        self._backlog[client], self._backlog[server] = bytearray(), bytearray()
        self.connections += 1

    def _pump(self, sock: socket.socket) -> None:
        if sock not in self._peers:
            return
        with self._lock:
            frozen = self._frozen
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        if frozen:
            with self._lock:
                self.held += len(data)
            self._backlog[sock] += data
            return
        self._send(self._peers[sock], data)

    def _flush_backlog(self) -> None:
        with self._lock:
            if self._frozen:
                return
        for sock, data in list(self._backlog.items()):
            if data and sock in self._peers:
                self._send(self._peers[sock], bytes(data))
                data.clear()

    def _send(self, sock: socket.socket, data: bytes) -> None:
        sock.setblocking(True)
        try:
            sock.sendall(data)
        except OSError:
            self._drop(sock)
        finally:
            with contextlib.suppress(OSError):
                sock.setblocking(False)

    def _drop(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._peers.pop(one, None)
            self._backlog.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            one.close()

    def _close_all(self) -> None:
        for sock in list(self._peers):
            self._drop(sock)
        for sock in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
        self._selector.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.gone()
