"""What a failed exchange with SegMetrics means: another try, or a stop that names the cause.

A certificate that is not trusted or a server that does not speak TLS (:class:`TlsError`), this
process out of open files (:class:`LocalLimitError`): no retry changes these. Any other TLS or
connection failure, and a timeout, is worth another try (:class:`Retryable`). The open-file limit
also caps ``max_concurrency`` up front (:func:`capped_concurrency`).
"""

from __future__ import annotations

import errno
import logging
import ssl
import threading
import typing as t
import urllib.parse

import requests

from target_segmetrics.errors import LocalLimitError, Retryable, TlsError

try:  # imported now: when the files run out, an import cannot open its module any more
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

if t.TYPE_CHECKING:
    from collections.abc import Generator

NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL", "HTTP_REQUEST"}
)
"""OpenSSL's words for "the other end answered the handshake with something that is not TLS"."""
REFUSED_TLS_WORDS = (
    "HANDSHAKE_FAILURE",
    "PROTOCOL_VERSION",
    "UNSUPPORTED_PROTOCOL",
    "NO_PROTOCOLS_AVAILABLE",
    "NO_SHARED_CIPHER",
    "INSUFFICIENT_SECURITY",
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
)
"""Words in OpenSSL's reasons for a handshake that no retry will get through."""
OUT_OF_FILES = frozenset({errno.EMFILE, errno.ENFILE})

FILES_PER_REQUEST = 2
"""Open files one request in flight may hold: its socket, and a handle on it while it connects."""
FILES_RESERVED = 64
"""Open files left for everything else (standard streams, the store, the rejects file, imports)."""

_WARNED: set[tuple[int, int]] = set()
"""Concurrency lowerings already warned about in this process (one warning, however many clients)."""
_WARNED_LOCK = threading.Lock()


def capped_concurrency(wanted: int, logger: logging.Logger) -> int:
    """``wanted``, or fewer if this process may not open enough files for that many connections."""
    wanted = max(1, int(wanted))
    limit = open_file_limit()
    if limit is None:
        return wanted
    allowed = max(1, (limit - FILES_RESERVED) // FILES_PER_REQUEST)
    if wanted <= allowed:
        return wanted
    with _WARNED_LOCK:
        if (wanted, limit) in _WARNED:
            return allowed
        _WARNED.add((wanted, limit))
    logger.warning(
        "max_concurrency %d lowered to %d: this process may open only %d files (ulimit -n) and each request "
        "in flight needs up to %d; raise the limit to run more at once",
        wanted,
        allowed,
        limit,
        FILES_PER_REQUEST,
    )
    return allowed


def classify(exc: Exception, *, base: str, timeout: float, proxied: bool, where: str, concurrency: int) -> Exception:
    """What the failed exchange with ``base`` (the integration's URL) means: :class:`Retryable` or a
    :class:`FatalError` saying what is wrong. ``where`` names the account and integration."""
    if isinstance(exc, Retryable):
        return exc
    if isinstance(exc, requests.Timeout):
        return Retryable(f"no answer within {timeout:g}s", kind="timed out")
    causes = list(_causes(exc))
    parts = urllib.parse.urlsplit(base)
    host, server = parts.hostname or "", parts.netloc
    via_proxy = " (or the proxy in HTTPS_PROXY)" if proxied else ""
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return TlsError(_certificate_problem(cause, host))
        if isinstance(cause, ssl.SSLError) and cause.reason in NOT_TLS_REASONS:
            return TlsError(
                f"The server at {server}{via_proxy} does not speak TLS (it answered the TLS handshake with "
                f"something else); is api_url http:// ? ({where})"
            )
        if isinstance(cause, ssl.SSLError) and any(word in str(cause.reason) for word in REFUSED_TLS_WORDS):
            return TlsError(
                f"The TLS handshake with {server}{via_proxy} was refused ({cause.reason}): the server and "
                f"this machine share no TLS version or cipher, or the server refused this client ({where})"
            )
        if not isinstance(cause, ssl.SSLError) and isinstance(cause, OSError) and cause.errno in OUT_OF_FILES:
            return LocalLimitError(_out_of_files(cause.errno, concurrency))
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return Retryable(
                f"the TLS connection failed ({cause.reason or type(cause).__name__})",
                hint=f"A TLS problem between this machine and {server}{via_proxy} (a proxy or firewall in "
                "between?); run again later",
                kind="TLS failure",
            )
    if any(isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED for cause in causes):
        address = f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        return Retryable(
            f"nothing answers at {address}{via_proxy} (connection refused)",
            hint=f"Check api_url's host and port ({address}), or whether the server there is running",
            kind="refused connection",
        )
    if isinstance(exc, requests.ConnectionError):
        return Retryable(f"connection failed ({type(exc).__name__})", kind="dropped connection")
    return Retryable(f"request failed ({type(exc).__name__})")


API_PATH = "/api/v1"
"""The import API's path (the reference page's ``https://import.segmetrics.io/api/v1``)."""


def not_found(base: str, where: str, endpoint: str) -> str:
    """What a 404 on ``endpoint`` says: no such account or integration, or (when api_url's path is not
    the import API's) most likely a wrong api_url, which is named."""
    api_url = base.rstrip("/").rsplit("/", 2)[0]
    path = urllib.parse.urlsplit(api_url).path.rstrip("/")
    if path != API_PATH:
        return (
            f"HTTP 404 on {endpoint} at api_url '{api_url}': its path '{path or '/'}' is not the import API's "
            f"'{API_PATH}', so api_url is most likely wrong (the default is https://import.segmetrics.io"
            f"{API_PATH}); if it is right, SegMetrics has no {where}"
        )
    return (
        f"SegMetrics has no {where} (HTTP 404 on {endpoint}): check account_id and integration_id against "
        "the Account Settings page"
    )


def _causes(exc: BaseException) -> Generator[BaseException, None, None]:
    """``exc`` and everything behind it: causes, contexts, urllib3's ``reason``, exceptions in ``args``."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        for nxt in (current.__cause__, current.__context__, reason, *current.args):
            if isinstance(nxt, BaseException):
                pending.append(nxt)


def _certificate_problem(error: ssl.SSLCertVerificationError, host: str) -> str:
    what = str(error.verify_message or error.reason or "not verified")
    if "mismatch" in what.lower():
        advice = f"the certificate was made for another host name than {host!r}: check api_url's host"
    elif "expired" in what.lower():
        advice = "the server's certificate has expired: nothing this machine can fix, the server's owner must renew it"
    else:
        advice = (
            "the certificate is not trusted; if a company proxy re-signs TLS, point REQUESTS_CA_BUNDLE at its CA "
            "certificate (a PEM file)"
        )
    return f"TLS certificate verification failed for host {host} ({what}): {advice}"


def _out_of_files(code: int, concurrency: int) -> str:
    limit = open_file_limit()
    if code == errno.ENFILE:
        return (
            "This machine ran out of open files (the system-wide table is full, ENFILE) while connecting to "
            "SegMetrics: not an API problem; close other programs or lower max_concurrency"
        )
    return (
        f"This process ran out of open files (EMFILE; its limit, ulimit -n, is {limit}) while connecting to "
        f"SegMetrics with max_concurrency {concurrency}: not an API problem; lower max_concurrency or raise the "
        "limit (ulimit -n)"
    )


def open_file_limit() -> int | None:
    """The soft limit on open files, or None where it cannot be read."""
    if resource is None:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)
