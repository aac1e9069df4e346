"""Talking to SegMetrics' import API: session, auth, retries, and what each answer means.

- One pooled ``requests.Session`` (keep-alive) carries the ``Authorization`` header; the key is
  never put into a message, an exception or a log line (:func:`redact` scrubs server text too).
- 429 (honouring ``Retry-After``), 500/502/503/504, 408, timeouts, dropped connections and a
  2xx that is not SegMetrics' own success (:mod:`answers`: an empty body, ``{}``, ``"ok"`` ...) are
  retried with exponential backoff and full jitter (the ``backoff`` library), up to ``max_retries``
  retries. Each try has one deadline, ``timeout``, for connect + headers + body together.
- Not retried, the run stops at once saying what it is: another 5xx (501, 505, 511 ...), an
  untrusted certificate or a server that does not speak TLS, this process out of open files
  (:mod:`failures` tells these apart; the per-try deadline is :mod:`deadlines`).
- Every request passes the shared :class:`Throttle`: at most ``max_concurrency`` in flight, fewer
  after a 429 (halved, and everyone pauses for ``Retry-After``), growing back by one per clean
  round; optionally at most ``max_requests_per_second``.
- 400 (and other 4xx about the payload) -> :class:`RejectedError`: the record is rejected with the
  API's own ``errors``; the run goes on.
- 401/403 -> :class:`AuthenticationError`, 404 -> :class:`NotFoundError`, retries exhausted ->
  :class:`ApiUnavailableError`: the run stops (these are :class:`FatalError` s, in :mod:`errors`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import random
import threading
import typing as t
import urllib.parse
from dataclasses import dataclass

import backoff
import requests
import urllib3
from requests.adapters import BaseAdapter

from target_segmetrics.errors import (
    REFUSALS,
    THROTTLED,
    TRANSIENT,
    ApiUnavailableError,
    AuthenticationError,
    FatalError,
    NotFoundError,
    RejectedError,
    Retryable,
    UnexpectedAnswerError,
)
from target_segmetrics.http import deadlines, failures
from target_segmetrics.http.answers import (
    EMPTY,
    NOT_ACKNOWLEDGED_HINT,
    Unreadable,
    not_acknowledged,
    parse_retry_after,
    phrase,
)
from target_segmetrics.http.deadlines import Deadlines, WatchedAdapter
from target_segmetrics.http.throttle import Throttle
from target_segmetrics.mapping.wire import Request

if t.TYPE_CHECKING:
    from collections.abc import Generator

MAX_BODY_BYTES = 64 * 1024
"""An answer is read up to this size; SegMetrics' answers are a few hundred bytes."""

RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 30.0


class _Hooks(t.NamedTuple):
    on_try: t.Callable[[], None] | None
    on_retry: t.Callable[[str], None] | None


NO_HOOKS = _Hooks(None, None)


@dataclass(frozen=True)
class Answer:
    """What SegMetrics said to a request it accepted."""

    status: int
    body: t.Any


def check_api_url(api_url: str) -> str | None:
    """Why ``api_url`` is not acceptable, or None. Plain ``http://`` is for loopback only.

    A message never quotes a user name, password, query or fragment: that is where a secret would be.
    """
    try:
        parts = urllib.parse.urlsplit(str(api_url).strip())
        port = parts.port
    except ValueError:
        return "api_url is not a valid URL (check the host and port): it must look like https://host/path"
    host = parts.hostname or ""
    shown = f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"
    if parts.scheme not in ("https", "http") or not host:
        return f"api_url must be an https:// URL with a host, got {shown if host else 'something else'!r}"
    found = [
        problem
        for problem, present in (
            ("a user name or password (user:pass@)", "@" in parts.netloc),
            ("a query (?...)", bool(parts.query) or "?" in api_url),
            ("a fragment (#...)", bool(parts.fragment) or "#" in api_url),
        )
        if present
    ]
    if found:
        return (
            f"api_url {shown!r} carries {' and '.join(found)}: remove it. The API key goes in api_key (sent only "
            "in the Authorization header); anything in the URL would show in logs"
        )
    if parts.scheme == "http" and not _is_loopback(host):
        return (
            f"api_url {shown!r} uses plain http:// to a host that is not this machine; "
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _may_use_proxy(url: str) -> bool:
    """Whether ``HTTPS_PROXY`` and the like apply: only to https:// (a CONNECT tunnel keeps the key
    encrypted end to end), and never to this machine."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" and not _is_loopback(parts.hostname or "")


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


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
        if not _may_use_proxy(self._base):
            # Plain http:// is loopback-only, and a proxy would see the key in clear text; a loopback
            # request has no reason to leave this machine at all.
            self._send_settings["proxies"] = {}
        self._send_settings["stream"] = True  # the answer is read with a size limit
        self._send_settings["verify"] = self._send_settings.get("verify") or True  # TLS is always verified
        self.session.trust_env = False
        if max_requests_per_second is not None:
            rate = float(max_requests_per_second)
            if not (rate > 0 and math.isfinite(rate)):
                raise FatalError(f"max_requests_per_second must be a number above 0, got {max_requests_per_second}")
        self.throttle = Throttle(failures.capped_concurrency(max_concurrency, self.logger), max_requests_per_second)
        # One pool sized to the concurrency: every request reuses a kept-alive connection. A dry run
        # (or a test) hands over its own transport instead: everything above it stays the same.
        adapter = transport or WatchedAdapter(
            pool_connections=1, pool_maxsize=self.throttle.max_concurrency, max_retries=0
        )
        self._deadlines = Deadlines()
        self._kinds_seen: set[str] = set()  # kinds of retries logged at INFO already
        self._kinds_lock = threading.Lock()
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._send_with_retries = backoff.on_exception(
            _wait_times,
            Retryable,
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
        """Close the pooled connections (and stop the deadline watchdog)."""
        self.session.close()
        self._deadlines.close()

    def send(
        self,
        request: Request,
        *,
        on_try: t.Callable[[], None] | None = None,
        on_retry: t.Callable[[str], None] | None = None,
    ) -> Answer:
        """Send one request, retrying transient failures; raise on refusal or fatal answers.

        ``on_try()`` is called for each try as it goes out, ``on_retry(kind)`` before each retry with
        what went wrong ("answered 429", "dropped connection", ...): a request that finally fails
        is counted too."""
        tried = 0

        def counted() -> None:  # each try as it goes out
            nonlocal tried
            tried += 1
            if on_try is not None:
                on_try()

        try:
            status, body = self._send_with_retries(request, _Hooks(counted, on_retry))
        except Retryable as exc:
            unavailable = ApiUnavailableError(
                f"SegMetrics did not accept {request.method} {request.endpoint} after {tried} tries "
                f"({self.where}): {redact(exc.reason, self._api_key)}. {exc.hint} (the last STATE printed "
                "covers only what SegMetrics acknowledged)"
            )
            self.throttle.close(unavailable)  # the other senders stop too
            raise unavailable from None
        return Answer(status, body)

    def verify_integration(self) -> None:
        """Make sure the account and integration exist (a 404 on ``tags/*`` or a DELETE does not say
        which of contact or integration is missing). Sends a contact with no fields: SegMetrics refuses
        it (400) when the integration exists and answers 404 when not; nothing is written either way."""
        with contextlib.suppress(RejectedError):
            self.send(Request("POST", "contact", {}))

    def _failure(self, exc: Exception) -> Exception:
        """What a failed exchange means: another try, or a stop that says what is wrong."""
        return failures.classify(
            exc,
            base=self._base,
            timeout=self.timeout,
            proxied=bool(self._send_settings.get("proxies")),
            where=self.where,
            concurrency=self.throttle.max_concurrency,
        )

    def _send_once(self, request: Request, hooks: _Hooks = NO_HOOKS) -> tuple[int, t.Any]:
        self.throttle.acquire()
        if hooks.on_try is not None:
            hooks.on_try()
        status = 0
        retry_after: str | None = None
        try:
            failure: Exception | None = None
            deadline = self._deadlines.open(self.timeout)
            deadlines.use(deadline)
            try:
                status, retry_after, body = self._exchange(request)
            except (requests.RequestException, Retryable) as exc:
                failure = exc
            finally:
                deadlines.use(None)
                expired = deadline.finish()
            if expired:  # whatever the cut-off sockets raised, or a body they cut short
                status = 0
                raise Retryable(f"no answer within {self.timeout:g}s", kind="timed out")
            if failure is not None:
                raise self._failure(failure) from None
            return self._judge(request, status, body, retry_after)
        except FatalError as exc:
            self.throttle.close(exc)  # before the slot is freed: nobody else sends after this
            raise
        finally:
            throttled = status == 429
            self.throttle.release(
                healthy=200 <= status < 300 or status in REFUSALS,
                throttled=throttled,
                retry_after=parse_retry_after(retry_after) if throttled else None,
            )

    def _exchange(self, request: Request) -> tuple[int, str | None, t.Any]:
        """One request and its whole answer: status, ``Retry-After`` and the body."""
        # Session.prepare_request's result (session headers, cookies, hooks) without its per-request merging.
        session = self.session
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=request.method,
            url=self.url(request.endpoint),
            headers=session.headers,
            data=request.data,
            cookies=session.cookies,
            hooks=session.hooks,
        )
        response = self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **self._send_settings)
        try:
            return response.status_code, response.headers.get("Retry-After"), self._read_body(response)
        finally:
            response.close()

    def _read_body(self, response: requests.Response) -> t.Any:
        try:
            raw = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise Retryable(f"the answer was cut off ({type(exc).__name__})", kind="cut-off answer") from None
        if len(raw) > MAX_BODY_BYTES:
            return Unreadable(f"an answer larger than {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else EMPTY
        except (UnicodeDecodeError, json.JSONDecodeError):
            # Scrubbed before it is cut: a key straddling the cut would otherwise leave its start.
            text = redact(raw.decode("utf-8", "replace"), self._api_key)
            snippet = text[:80].replace("\n", " ")
            return Unreadable(f"an answer that is not JSON ({snippet!r})")

    def _judge(self, request: Request, status: int, body: t.Any, retry_after: str | None) -> tuple[int, t.Any]:
        if 200 <= status < 300:
            if isinstance(body, Unreadable):
                # Not SegMetrics' answer (a proxy's page?): the write is not known to have landed.
                raise Retryable(f"HTTP {status} with {body.what}", kind="unreadable answer")
            if isinstance(body, dict) and body.get("status") == "error":
                raise RejectedError(status, self._errors(body) or ["status: error"])
            problem = not_acknowledged(request.method, body)
            if problem is not None:  # only SegMetrics' own success says the write landed
                problem = redact(problem, self._api_key)
                raise Retryable(f"HTTP {status} with {problem}", hint=NOT_ACKNOWLEDGED_HINT, kind="not acknowledged")
            return status, body
        errors = self._errors(body)
        if status == 429:
            raise Retryable("HTTP 429 (too many requests)", parse_retry_after(retry_after), kind=THROTTLED)
        if status in TRANSIENT:
            said = f" ({'; '.join(errors)})" if errors else ""
            raise Retryable(
                f"HTTP {status}{said}",
                parse_retry_after(retry_after) if status == 503 else None,
                kind=f"answered {status}",
            )
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
                f"{body.what if isinstance(body, Unreadable) else 'no reason'}: that is not SegMetrics' "
                f"answer ({self.where}); something between the target and SegMetrics answered (a proxy, a "
                "firewall?) or api_url is wrong; nothing past this point was sent"
            )
        if status == 404:
            if request.method == "DELETE" or request.endpoint.startswith("tags/"):
                # A missing contact (tags), an object already gone (DELETE), or a missing integration:
                # the caller tells them apart with verify_integration().
                raise RejectedError(status, errors or ["not found"])
            raise NotFoundError(failures.not_found(self._base, self.where, request.endpoint))
        if status in REFUSALS:
            raise RejectedError(status, errors or [f"HTTP {status} without a reason"])
        # A redirect, 405, 407, 501, 505, 511 ...: not SegMetrics refusing this record but something
        # between us, or a wrong api_url. Rejecting record after record would let STATE pass them all.
        raise UnexpectedAnswerError(
            f"SegMetrics answered {request.method} {request.endpoint} with HTTP {status}{phrase(status)}"
            f"{' (' + '; '.join(errors) + ')' if errors else ''} ({self.where}): check api_url (no proxy or "
            "redirect in between); nothing past this point was sent"
        )

    def _errors(self, body: t.Any) -> list[str]:
        if isinstance(body, Unreadable):
            return [redact(body.what, self._api_key)]
        if isinstance(body, dict):
            raw = body.get("errors") or body.get("error") or body.get("message")
            if isinstance(raw, list):
                return [redact(str(item), self._api_key)[:300] for item in raw]
            if raw:
                return [redact(str(raw), self._api_key)[:300]]
        return []

    def _log_retry(self, details: t.Mapping[str, t.Any]) -> None:
        """Before a retry: count it, and log it; at INFO only the first time its kind of trouble comes
        up in this run (a 429 storm is one line; the progress lines and the summary count the rest)."""
        exc = details.get("exception")
        request, hooks = details["args"]
        kind = getattr(exc, "kind", "failed request")
        if hooks.on_retry is not None:
            hooks.on_retry(kind)
        with self._kinds_lock:
            first = kind not in self._kinds_seen
            self._kinds_seen.add(kind)
        self.logger.log(
            logging.INFO if first else logging.DEBUG,
            "Retrying %s %s in %.1fs (try %d failed: %s)%s",
            request.method,
            request.endpoint,
            details.get("wait", 0.0),
            details["tries"],
            redact(str(getattr(exc, "reason", type(exc).__name__)), self._api_key),
            f"; further retries ({kind}) are counted in the progress lines and the summary" if first else "",
        )


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
