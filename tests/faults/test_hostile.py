"""Hostile or broken servers, certificates, proxies and limits: the client gives up in time and says why.

Each server here is a tiny one on 127.0.0.1 written for the case (a raw socket thread, or
``http.server``); the sandbox stands in for SegMetrics where the data must land.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import API_KEY, base_config, record, schema, target_executable

from target_segmetrics.errors import ApiUnavailableError, FatalError, UnexpectedAnswerError
from target_segmetrics.http.client import SegMetricsClient
from target_segmetrics.mapping.mapping import Request

USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}})
MAPPING = {"users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}}}
CONTACT = Request("POST", "contact", {"contact_id": "1", "email": "a@example.com"})


def users(count: int) -> list[dict]:
    return [USERS, *(record("users", {"id": i, "email": f"user{i}@example.com"}) for i in range(count))]


def client_for(url: str, **overrides) -> SegMetricsClient:
    settings = {
        "api_url": url,
        "account_id": "a",
        "integration_id": "i",
        "api_key": API_KEY,
        "timeout": 5.0,
        "max_retries": 2,
        "max_concurrency": 4,
        **overrides,
    }
    return SegMetricsClient(**settings)


def send_within(client: SegMetricsClient, request: Request, limit: float) -> tuple[BaseException | None, float]:
    """Send in a thread; what it raised and how long it took. Fails the test if it takes past ``limit``."""
    outcome: list[BaseException | None] = []
    started = time.monotonic()

    def go():
        try:
            client.send(request)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(limit)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"send still running after {limit}s"
    return outcome[0], elapsed


class RawServer:
    """A raw TCP server on 127.0.0.1: ``handle(conn)`` runs per connection in its own thread."""

    def __init__(self, handle):
        self.handle = handle
        self.stop = threading.Event()
        self.connections = 0
        self.received = bytearray()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def __enter__(self):
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self._threads:
            thread.join(5)
        self._sock.close()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn):
        with conn:
            conn.settimeout(0.2)
            with contextlib.suppress(OSError):
                self.handle(self, conn)

    def read_request(self, conn) -> bytes:
        """Read until the end of the headers (and a Content-Length body)."""
        data = b""
        while b"\r\n\r\n" not in data and not self.stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                while len(body) < length and not self.stop.is_set():
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    body += chunk
        self.received += data
        return data


def trickle(where: str, interval: float):
    """A server that answers one byte every ``interval`` seconds, forever: in the TLS handshake, headers or body."""

    def handle(server, conn):
        if where == "handshake":  # the ClientHello, then a TLS record promising 16 KiB, a byte at a time
            while not server.stop.is_set():  # under load the ClientHello may take longer than one 0.2 s read
                try:
                    conn.recv(65536)
                    break
                except TimeoutError:
                    continue
            conn.sendall(b"\x16\x03\x03\x40\x00")
            while not server.stop.wait(interval):
                conn.sendall(b"\x02")
            return
        server.read_request(conn)
        if where == "headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        while not server.stop.wait(interval):
            conn.sendall(b"a" if where == "headers" else b" ")

    return handle


# --- 1. a trickling answer is cut off at request_timeout, in total ------------------------------------


@pytest.mark.parametrize("where", ["headers", "body", "handshake"])
def test_a_trickling_answer_is_cut_off_at_the_request_timeout(where):
    timeout, retries = 1.5, 1
    scheme = "https" if where == "handshake" else "http"
    with RawServer(trickle(where, 0.3)) as server:
        client = client_for(f"{scheme}://127.0.0.1:{server.port}/api", timeout=timeout, max_retries=retries)
        error, elapsed = send_within(client, CONTACT, 30)
        client.close()
    assert isinstance(error, ApiUnavailableError), error
    assert f"no answer within {timeout:g}s" in str(error)
    assert server.connections == retries + 1
    # Two tries of 1.5 s each and one backoff wait of at most 0.5 s: well under 6 s; not before 3 s.
    assert (retries + 1) * timeout <= elapsed < 6.0, elapsed
    print(f"trickle in the {where}: gave up after {elapsed:.2f}s (2 tries x {timeout}s)")


# --- 2. certificates and TLS ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class _Ok(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b'{"status":"success"}'
    content_type = "application/json"
    hits = 0

    def do_POST(self):
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = self.body.replace(b"{key}", self.headers.get("Authorization", "").encode())
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a refused TLS handshake is expected here


def serve(handler, tls: tuple[Path, Path] | None = None):
    server = QuietServer(("127.0.0.1", 0), handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_self_signed_certificate_stops_at_once_and_says_what_to_do(self_signed, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    handler = type("Handler", (_Ok,), {"hits": 0})
    server = serve(handler, self_signed)
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/api"
        client = client_for(url, max_retries=6)
        error, elapsed = send_within(client, CONTACT, 30)
        client.close()

        assert isinstance(error, FatalError) and not isinstance(error, ApiUnavailableError), error
        message = str(error)
        assert "certificate verification failed for host 127.0.0.1" in message
        assert "not trusted" in message and "REQUESTS_CA_BUNDLE" in message
        assert "may be down" not in message
        assert elapsed < 3.0, elapsed  # no retries
        assert handler.hits == 0

        # The advice works: with the certificate trusted, the same server is reached.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(self_signed[0]))
        trusting = client_for(url)
        assert trusting.send(CONTACT).status == 200
        trusting.close()
        assert handler.hits == 1
    finally:
        server.shutdown()
        server.server_close()
    print(f"self-signed certificate: stopped after {elapsed:.2f}s")


def test_https_to_a_plain_http_server_names_the_tls_problem_at_once():
    handler = type("Handler", (_Ok,), {"hits": 0})
    server = serve(handler)
    try:
        client = client_for(f"https://127.0.0.1:{server.server_address[1]}/api", max_retries=6)
        error, elapsed = send_within(client, CONTACT, 30)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(error, FatalError) and not isinstance(error, ApiUnavailableError), error
    assert "does not speak TLS" in str(error) and "is api_url http://" in str(error)
    assert "may be down" not in str(error)
    assert elapsed < 3.0, elapsed


def test_a_tls_handshake_cut_short_is_retried_but_not_called_the_api_being_down():
    def hang_up_mid_handshake(server, conn):
        conn.recv(65536)  # the ClientHello, then a clean close
        conn.shutdown(socket.SHUT_WR)
        server.stop.wait(1)

    with RawServer(hang_up_mid_handshake) as server:
        client = client_for(f"https://127.0.0.1:{server.port}/api", max_retries=1)
        error, _ = send_within(client, CONTACT, 30)
        client.close()
    assert isinstance(error, ApiUnavailableError), error
    assert server.connections == 2  # transient: retried
    assert "the TLS connection failed" in str(error) and "A TLS problem between this machine and" in str(error)
    assert "may be down" not in str(error)


def test_a_certificate_error_through_the_cli_is_one_clear_line(self_signed, run_target):
    server = serve(type("Handler", (_Ok,), {"hits": 0}), self_signed)
    try:
        config = {
            "api_key": API_KEY,
            "account_id": "a",
            "integration_id": "i",
            "api_url": f"https://127.0.0.1:{server.server_address[1]}/api",
            "mappings": MAPPING,
        }
        started = time.monotonic()
        run = run_target(config, users(3))
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert len(run.errors) == 1 and "certificate verification failed for host 127.0.0.1" in run.errors[0]
    assert "may be down" not in run.stderr and "Retrying" not in run.stderr
    assert elapsed < 15, elapsed  # was ~22 s of retries


# --- 3. which 5xx answers are retried ---------------------------------------------------------------


@pytest.mark.parametrize("status", [501, 505, 511])
def test_a_non_transient_5xx_stops_at_once(status):
    handler = type("Handler", (_Ok,), {"hits": 0, "status": status, "body": b"<html>no</html>"})
    server = serve(handler)
    try:
        client = client_for(f"http://127.0.0.1:{server.server_address[1]}/api", max_retries=6)
        error, _ = send_within(client, CONTACT, 30)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(error, UnexpectedAnswerError), error
    assert f"HTTP {status}" in str(error)
    assert "may be down" not in str(error)
    assert handler.hits == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_a_transient_status_is_still_retried(status):
    handler = type("Handler", (_Ok,), {"hits": 0, "status": status, "body": b"{}"})
    server = serve(handler)
    try:
        client = client_for(f"http://127.0.0.1:{server.server_address[1]}/api", max_retries=2)
        error, _ = send_within(client, CONTACT, 30)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(error, ApiUnavailableError), error
    assert handler.hits == 3


# --- 4. the key is scrubbed from every quote of a server's text -------------------------------------------


@pytest.mark.parametrize("status", [400, 503, 200])
def test_a_page_echoing_the_key_is_quoted_redacted_everywhere(run_target, tmp_path, status):
    # The key twice: whole within the first 80 bytes, and straddling byte 80 (where a quote is cut).
    page = b"<html><body>You sent: {key} ........................................ and: {key}</body></html>"
    assert page.index(b"and: {key}") + 5 < 80 < page.index(b"and: {key}") + 5 + len(API_KEY)
    handler = type("Handler", (_Ok,), {"hits": 0, "status": status, "body": page, "content_type": "text/html"})
    server = serve(handler)
    rejects = tmp_path / "rejects.jsonl"
    try:
        config = {
            "api_key": API_KEY,
            "account_id": "a",
            "integration_id": "i",
            "api_url": f"http://127.0.0.1:{server.server_address[1]}/api",
            "mappings": MAPPING,
            "max_retries": 1,
            "rejects_path": str(rejects),
        }
        run = run_target(config, users(2))
    finally:
        server.shutdown()
        server.server_close()
    written = rejects.read_text() if rejects.exists() else ""
    assert "You sent: ***" in run.stderr  # the page really was quoted
    for text in (run.stdout, run.stderr, written):
        assert API_KEY not in text
        assert API_KEY[:10] not in text
    # None of these is SegMetrics' answer (a 400 page included): the run stops, nothing is "rejected".
    assert run.returncode == 1
    assert written == ""


# --- 5. proxies -------------------------------------------------------------------------------------


def test_a_loopback_api_url_never_goes_through_a_proxy(sandbox, run_target, monkeypatch):
    def record_everything(server, conn):
        server.read_request(conn)  # and never answer

    with RawServer(record_everything) as proxy:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        config = base_config(sandbox, mappings=MAPPING, max_retries=0, request_timeout=2)
        run = run_target(config, users(5))
    assert proxy.connections == 0 and bytes(proxy.received) == b""
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(c["contact_id"] for c in sandbox.contacts()) == ["0", "1", "2", "3", "4"]


# --- 6. no secret in api_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://user:s3cr3t-in-url@api.example.com/api/v1", "user name or password"),
        ("https://s3cr3t-in-url@api.example.com/api/v1", "user name or password"),
        ("https://api.example.com/api/v1?key=s3cr3t-in-url", "query"),
        ("https://api.example.com/api/v1#s3cr3t-in-url", "fragment"),
    ],
)
def test_an_api_url_carrying_a_secret_is_refused_without_echoing_it(run_target, url, problem):
    config = {"api_key": API_KEY, "account_id": "a", "integration_id": "i", "api_url": url, "mappings": MAPPING}
    run = run_target(config, users(1))
    assert run.returncode == 1
    assert problem in run.stderr
    assert "s3cr3t-in-url" not in run.everything()
    assert "Traceback" not in run.stderr


# --- 7. max_requests_per_second and max_concurrency ------------------------------------------------


def test_a_fractional_requests_per_second_works(sandbox, run_target):
    config = base_config(sandbox, mappings=MAPPING, max_requests_per_second=2.5)
    started = time.monotonic()
    run = run_target(config, users(5))
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert len(sandbox.contacts()) == 5
    assert elapsed >= 4 * 0.4  # five starts spaced 0.4 s apart: the cap is honoured


def run_with_file_limit(config_path: Path, messages: list[dict], limit: int) -> subprocess.CompletedProcess:
    import resource

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return subprocess.run(
        [target_executable(), "--config", str(config_path)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=lower,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )


def test_a_huge_max_concurrency_is_capped_to_the_open_file_limit(sandbox, tmp_path):
    sandbox.set_latency(400)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(base_config(sandbox, mappings=MAPPING, max_concurrency=10000)))
    run = run_with_file_limit(config_path, users(600), 256)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(sandbox.contacts()) == 600
    lowered = [line for line in run.stderr.splitlines() if "max_concurrency" in line and "lowered" in line]
    assert len(lowered) == 1 and "| WARNING" in lowered[0] and "256" in lowered[0], run.stderr[-3000:]
    assert "may be down" not in run.stderr


def test_running_out_of_open_files_is_named_at_once(sandbox):
    script = f"""
import os, resource, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from target_segmetrics.http.client import SegMetricsClient
from target_segmetrics.errors import ApiUnavailableError, FatalError
from target_segmetrics.mapping.mapping import Request
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
client = SegMetricsClient(api_url={sandbox.base_url!r}, account_id="acct1", integration_id="int1",
                          api_key="x" * 12, max_retries=6, max_concurrency=4)
held = []
try:
    while True:
        held.append(open(os.devnull))
except OSError:
    pass
started = time.monotonic()
try:
    client.send(Request("POST", "contact", {{"contact_id": "1"}}))
    print("SENT")
except FatalError as exc:
    print(type(exc).__name__, "|", exc, "|", round(time.monotonic() - started, 2))
for handle in held:  # before exiting: the interpreter's shutdown needs a few files too
    handle.close()
client.close()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    name, message, elapsed = proc.stdout.strip().split(" | ")
    assert name != "ApiUnavailableError"
    assert "open files" in message and "ulimit -n, is 64" in message and "may be down" not in message
    assert float(elapsed) < 3.0
