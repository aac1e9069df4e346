"""Talking to SegMetrics' import API: session, auth, retries, and what each answer means.

- One pooled ``requests.Session`` (keep-alive) carries the ``Authorization`` header; the key is
  never put into a message, an exception or a log line (:func:`redact` scrubs server text too).
- 429 (honouring ``Retry-After``), 5xx, 408, timeouts and dropped connections are retried with
  exponential backoff and full jitter (the ``backoff`` library), up to ``max_retries`` retries.
- Every request passes the shared :class:`Throttle`: at most ``max_concurrency`` in flight, fewer
  after a 429 (halved, and everyone pauses for ``Retry-After``), growing back by one per clean
  round; optionally at most ``max_requests_per_second``.
- 400 (and other 4xx about the payload) -> :class:`RejectedError`: the record is rejected with the
  API's own ``errors``; the run goes on.
- 401/403 -> :class:`AuthenticationError`, 404 -> :class:`NotFoundError`, retries exhausted ->
  :class:`ApiUnavailableError`: the run stops (these are :class:`FatalError` s).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import ipaddress
import json
import logging
import math
import random
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass

import backoff
import requests
import urllib3
from requests.adapters import BaseAdapter, HTTPAdapter

from target_segmetrics.wire import Request

if t.TYPE_CHECKING:
    from collections.abc import Generator

MAX_BODY_BYTES = 64 * 1024
"""An answer is read up to this size; SegMetrics' answers are a few hundred bytes."""

RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 30.0
RETRY_AFTER_CAP_SECONDS = 300.0


class FatalError(Exception):
    """The run cannot go on; the message says what to fix (and never holds the key)."""


class AuthenticationError(FatalError):
    """SegMetrics refused the API key (401/403)."""


class NotFoundError(FatalError):
    """The account or integration does not exist (404)."""


class ApiUnavailableError(FatalError):
    """SegMetrics kept failing past the retry budget."""


class UnexpectedAnswerError(FatalError):
    """An answer that is neither success, a refusal of the record, nor a transient failure."""


REFUSALS = frozenset({400, 409, 413, 422})
"""Answers that refuse the record itself: it is rejected, the run goes on."""


class RejectedError(Exception):
    """SegMetrics refused this payload (400 and the like); ``errors`` are its own words."""

    def __init__(self, status: int, errors: list[str]) -> None:
        super().__init__(f"HTTP {status}: {'; '.join(errors)}")
        self.status = status
        self.errors = errors


class _Retryable(Exception):
    """A transient failure worth another try."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Answer:
    """What SegMetrics said to a request it accepted."""

    status: int
    body: t.Any
    tries: int
    throttled: int = 0
    """How many of the tries SegMetrics answered 429."""


def check_api_url(api_url: str) -> str | None:
    """Why ``api_url`` is not acceptable, or None. Plain ``http://`` is for loopback only."""
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"api_url must be an https:// URL, got {api_url!r}"
    if parts.scheme == "http":
        host = parts.hostname
        loopback = host == "localhost"
        with contextlib.suppress(ValueError):
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        if not loopback:
            return (
                f"api_url {api_url!r} uses plain http:// to a host that is not this machine; "
                "the API key would travel unencrypted. Use https:// (http:// is allowed only for "
                "a loopback address such as the local sandbox)"
            )
    return None


def integration_url(api_url: str, account_id: str, integration_id: str) -> str:
    """The URL every endpoint is relative to: ``{api_url}/{account_id}/{integration_id}/``."""
    return (
        f"{api_url.rstrip('/')}/{urllib.parse.quote(str(account_id), safe='')}/"
        f"{urllib.parse.quote(str(integration_id), safe='')}/"
    )


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


class Throttle:
    """The gate every request passes: how many may be in flight, and how fast they may start.

    Additive increase, multiplicative decrease: a 429 halves the allowed concurrency (at most once
    per second, so one burst of 429s counts once) and pauses every sender until ``Retry-After``
    has passed; each run of clean answers as long as the current limit raises it by one again, up
    to ``max_concurrency``. With ``max_requests_per_second`` the starts are also spaced evenly.
    It opens with one request in flight and widens to ``max_concurrency`` at the first normal
    answer, so a wrong key or account costs one request.
    """

    def __init__(self, max_concurrency: int, max_requests_per_second: float | None = None) -> None:
        self.max_concurrency = max(1, int(max_concurrency))
        self.limit = 1
        self._opened = False
        self.in_flight = 0
        self.peak_in_flight = 0
        self.throttled = 0
        self._interval = 1.0 / max_requests_per_second if max_requests_per_second else 0.0
        self._next_start = 0.0
        self._paused_until = 0.0
        self._last_decrease = -1e9
        self._clean = 0
        self._closed: FatalError | None = None
        self._cond = threading.Condition()

    def close(self, reason: FatalError) -> None:
        """No more requests: every waiting and later :meth:`acquire` raises ``reason``."""
        with self._cond:
            self._closed = reason
            self._cond.notify_all()

    def acquire(self) -> None:
        """Wait for a slot (and for any pause or rate spacing to pass), then take it."""
        with self._cond:
            while True:
                if self._closed is not None:
                    raise self._closed
                now = time.monotonic()
                if now < self._paused_until:
                    self._cond.wait(self._paused_until - now)
                elif self.in_flight >= self.limit:
                    self._cond.wait()
                elif self._interval and now < self._next_start:
                    self._cond.wait(self._next_start - now)
                else:
                    break
            if self._interval:
                self._next_start = max(now, self._next_start) + self._interval
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def release(self, *, healthy: bool, throttled: bool = False, retry_after: float | None = None) -> None:
        """Give the slot back, saying whether SegMetrics answered normally, or with 429."""
        with self._cond:
            self.in_flight -= 1
            now = time.monotonic()
            if healthy and not self._opened:
                self._opened = True
                if not self.throttled:
                    self.limit = self.max_concurrency
            if throttled:
                self.throttled += 1
                self._clean = 0
                if now - self._last_decrease >= 1.0:
                    self.limit = max(1, self.limit // 2)
                    self._last_decrease = now
                self._paused_until = max(self._paused_until, now + (retry_after if retry_after is not None else 1.0))
            elif healthy and self.limit < self.max_concurrency:
                self._clean += 1
                if self._clean >= self.limit:
                    self.limit += 1
                    self._clean = 0
            self._cond.notify_all()


class SegMetricsClient:
    """Sends requests to one SegMetrics custom integration."""

    def __init__(
        self,
        *,
        api_url: str,
        account_id: str,
        integration_id: str,
        api_key: str,
        timeout: float = 30.0,
        max_retries: int = 6,
        max_concurrency: int = 16,
        max_requests_per_second: float | None = None,
        logger: logging.Logger | None = None,
        transport: BaseAdapter | None = None,
    ) -> None:
        self.account_id = account_id
        self.integration_id = integration_id
        self._api_key = api_key
        self._base = integration_url(api_url, account_id, integration_id)
        self.timeout = timeout
        self.max_retries = max_retries
        self.logger = logger or logging.getLogger("target-segmetrics.client")
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": api_key, "Content-Type": "application/json", "Accept": "application/json"}
        )
        # Proxy and CA-bundle environment variables are read once here, not on every request
        # (requests re-reads the environment per request, a measurable share of the CPU per record).
        self._send_settings = self.session.merge_environment_settings(self._base, {}, None, True, None)
        self._send_settings["stream"] = True  # the answer is read with a size limit
        self._send_settings["verify"] = self._send_settings.get("verify") or True  # TLS is always verified
        self.session.trust_env = False
        self.throttle = Throttle(max_concurrency, max_requests_per_second)
        # One pool sized to the concurrency: every request reuses a kept-alive connection. A dry run
        # (or a test) hands over its own transport instead: everything above it stays the same.
        adapter = transport or HTTPAdapter(
            pool_connections=1, pool_maxsize=self.throttle.max_concurrency, max_retries=0
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._send_with_retries = backoff.on_exception(
            _wait_times,
            _Retryable,
            max_tries=max(0, max_retries) + 1,
            jitter=None,  # _wait_times jitters the exponential waits and keeps Retry-After exact
            on_backoff=self._log_retry,
            on_giveup=None,
            logger=None,
            raise_on_giveup=True,
        )(self._send_once)

    @property
    def where(self) -> str:
        """The account and integration, for messages."""
        return f"account {self.account_id!r}, integration {self.integration_id!r}"

    def url(self, endpoint: str) -> str:
        """The full URL of an endpoint (``contact``, ``tags/add``, ``contact/<id>``)."""
        return self._base + endpoint

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def send(self, request: Request) -> Answer:
        """Send one request, retrying transient failures; raise on refusal or fatal answers."""
        tries = [0, 0]  # tries, of which answered 429
        try:
            status, body = self._send_with_retries(request, tries)
        except _Retryable as exc:
            unavailable = ApiUnavailableError(
                f"SegMetrics did not accept {request.method} {request.endpoint} after {tries[0]} tries "
                f"({self.where}): {exc.reason}. The API may be down; run again later (the last STATE "
                "printed covers only what SegMetrics acknowledged)"
            )
            self.throttle.close(unavailable)  # the other senders stop too
            raise unavailable from None
        return Answer(status, body, tries[0], tries[1])

    def verify_integration(self) -> None:
        """Make sure the account and integration exist (a 404 on ``tags/*`` or a DELETE does not say
        which of contact or integration is missing). Sends a contact with no fields: SegMetrics refuses
        it (400) when the integration exists and answers 404 when not; nothing is written either way."""
        with contextlib.suppress(RejectedError):
            self.send(Request("POST", "contact", {}))

    def _send_once(self, request: Request, tries: list[int]) -> tuple[int, t.Any]:
        tries[0] += 1
        data = request.data
        self.throttle.acquire()
        status = 0
        retry_after: str | None = None
        try:
            try:
                prepared = self.session.prepare_request(
                    requests.Request(
                        request.method,
                        self.url(request.endpoint),
                        data=data,
                    )
                )
                response = self.session.send(
                    prepared, timeout=self.timeout, allow_redirects=False, **self._send_settings
                )
            except requests.Timeout:
                raise _Retryable(f"no answer within {self.timeout:g}s") from None
            except requests.ConnectionError as exc:
                raise _Retryable(f"connection failed ({type(exc).__name__})") from None
            except requests.RequestException as exc:
                raise _Retryable(f"request failed ({type(exc).__name__})") from None
            try:
                status = response.status_code
                retry_after = response.headers.get("Retry-After")
                body = self._read_body(response)
            finally:
                response.close()
            return self._judge(request, status, body, retry_after)
        except FatalError as exc:
            self.throttle.close(exc)  # before the slot is freed: nobody else sends after this
            raise
        finally:
            throttled = status == 429
            tries[1] += throttled
            self.throttle.release(
                healthy=200 <= status < 300 or status in REFUSALS,
                throttled=throttled,
                retry_after=_parse_retry_after(retry_after) if throttled else None,
            )

    def _read_body(self, response: requests.Response) -> t.Any:
        try:
            raw = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise _Retryable(f"the answer was cut off ({type(exc).__name__})") from None
        if len(raw) > MAX_BODY_BYTES:
            return _Unreadable(f"an answer larger than {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            snippet = raw[:80].decode("utf-8", "replace").replace("\n", " ")
            return _Unreadable(f"an answer that is not JSON ({snippet!r})")

    def _judge(self, request: Request, status: int, body: t.Any, retry_after: str | None) -> tuple[int, t.Any]:
        if 200 <= status < 300:
            if isinstance(body, _Unreadable):
                # Not SegMetrics' answer (a proxy's page?): the write is not known to have landed.
                raise _Retryable(f"HTTP {status} with {body.what}")
            if isinstance(body, dict) and body.get("status") == "error":
                raise RejectedError(status, self._errors(body) or ["status: error"])
            return status, body
        errors = self._errors(body)
        if status == 429:
            raise _Retryable("HTTP 429 (too many requests)", _parse_retry_after(retry_after))
        if status >= 500 or status == 408:
            raise _Retryable(f"HTTP {status}", _parse_retry_after(retry_after) if status == 503 else None)
        if status in (401, 403):
            raise AuthenticationError(
                f"SegMetrics refused the API key (HTTP {status}) for {self.where}: check that api_key "
                "is the key of this account (Account Settings page) and has not been revoked"
            )
        if status in REFUSALS and status != 413 and not isinstance(body, dict):  # 413 says it all: too large
            # Not SegMetrics' answer (an HTML page from a proxy or a firewall, or nothing): no
            # verdict on the record. Rejecting record after record would let STATE pass them all.
            raise UnexpectedAnswerError(
                f"HTTP {status} to {request.method} {request.endpoint} with "
                f"{body.what if isinstance(body, _Unreadable) else 'no reason'}: that is not SegMetrics' "
                f"answer ({self.where}); something between the target and SegMetrics answered (a proxy, a "
                "firewall?) or api_url is wrong; nothing past this point was sent"
            )
        if status == 404:
            if request.method == "DELETE" or request.endpoint.startswith("tags/"):
                # A missing contact (tags), an object already gone (DELETE), or a missing integration:
                # the caller tells them apart with verify_integration().
                raise RejectedError(status, errors or ["not found"])
            raise NotFoundError(
                f"SegMetrics has no {self.where} (HTTP 404 on {request.endpoint}): check account_id and "
                "integration_id against the Account Settings page"
            )
        if status in REFUSALS:
            raise RejectedError(status, errors or [f"HTTP {status} without a reason"])
        # A redirect, 405, 407 ...: not SegMetrics refusing this record but something between us,
        # or a wrong api_url. Rejecting record after record would let STATE pass them all.
        raise UnexpectedAnswerError(
            f"SegMetrics answered {request.method} {request.endpoint} with HTTP {status}"
            f"{' (' + '; '.join(errors) + ')' if errors else ''} ({self.where}): check api_url (no proxy or "
            "redirect in between); nothing past this point was sent"
        )

    def _errors(self, body: t.Any) -> list[str]:
        if isinstance(body, _Unreadable):
            return [body.what]
        if isinstance(body, dict):
            raw = body.get("errors") or body.get("error") or body.get("message")
            if isinstance(raw, list):
                return [redact(str(item), self._api_key)[:300] for item in raw]
            if raw:
                return [redact(str(raw), self._api_key)[:300]]
        return []

    def _log_retry(self, details: t.Mapping[str, t.Any]) -> None:
        exc = details.get("exception")
        request = details["args"][0]
        self.logger.info(
            "Retrying %s %s in %.1fs (try %d failed: %s)",
            request.method,
            request.endpoint,
            details.get("wait", 0.0),
            details["tries"],
            getattr(exc, "reason", type(exc).__name__),
        )


class _Unreadable:
    def __init__(self, what: str) -> None:
        self.what = what


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); None if unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            seconds = (when - dt.datetime.now(dt.timezone.utc)).total_seconds()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, min(seconds, RETRY_AFTER_CAP_SECONDS))


def _wait_times() -> Generator[float, t.Any, None]:
    """Waits between tries: ``Retry-After`` when the server gave one, else jittered exponential."""
    exc = yield 0.0
    attempt = 0
    while True:
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            wait = retry_after
        else:
            wait = random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**attempt))  # noqa: S311
        attempt += 1
        exc = yield wait
