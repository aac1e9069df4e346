"""The sandbox HTTP server: a strict local stand-in for SegMetrics' import API.

Routes (everything else is 404; a known endpoint with the wrong method is 405):

* ``POST   /api/v1/<account_id>/<integration_id>/<endpoint>`` for ``contact``, ``tags/add``,
  ``tags/remove``, ``invoice``, ``subscription``, ``product``, ``ad/performance``;
* ``DELETE /api/v1/<account_id>/<integration_id>/<contact|invoice|subscription>/<id>`` (the id is
  URL-decoded; ``contact/<email>`` deletes every contact with that email);
* control endpoints, no auth, not counted or logged: ``GET /_sandbox/state``,
  ``GET /_sandbox/requests``, ``GET /_sandbox/stats`` (counters only), ``POST /_sandbox/reset``,
  ``POST /_sandbox/config``
  (``{"latency_ms": int, "faults": {<Faults settings>}}``).

Order of checks for an API request: path shape (404) -> ``Authorization`` header equal to the
bare API key (401) -> account (404) -> integration (404) -> endpoint (404) -> method (405) ->
``Content-Type: application/json`` and a JSON-object body (400) -> fault policy ``before`` ->
validation and write (400 listing every problem / 404 for absent contacts or deletes / 200) ->
fault policy ``after``. The configured latency is awaited (``asyncio.sleep``) at the start of every
API request, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import threading
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from aiohttp import web

from .api_request import Reject, accept, apply_fault, json_response
from .faults import FaultContext, FaultPolicy, Faults
from .state import Result, SandboxState

__all__ = ["Sandbox"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class Sandbox:
    """A strict SegMetrics import-API stand-in running on ``host`` in a background thread.

    ``with Sandbox() as sb: ...`` starts and stops it; ``sb.base_url`` is the API base
    (``http://127.0.0.1:<port>/api/v1``), so the account URL is
    ``f"{sb.base_url}/{account_id}/{integration_id}/"``. Accessors return snapshot copies and are
    safe to call from any thread; see :mod:`target_segmetrics.sandbox.state` for how data is held.

    ``integration_id`` arguments default to the first configured integration. ``log_limit`` bounds
    the request log (oldest entries dropped; ``request_count`` keeps counting).
    """

    def __init__(
        self,
        api_key: str = "test-key",
        account_id: str = "acct1",
        integration_ids: Iterable[str] = ("int1",),
        latency_ms: float = 0,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        faults: FaultPolicy | None = None,
        log_limit: int | None = 100_000,
        shutdown_timeout: float = 2.0,
    ) -> None:
        ids = (integration_ids,) if isinstance(integration_ids, str) else tuple(integration_ids)
        if not ids:
            raise ValueError("at least one integration id is required")
        self.api_key = api_key
        self.account_id = account_id
        self.integration_ids: tuple[str, ...] = ids
        self.host = host
        self.faults: FaultPolicy | None = faults
        self.shutdown_timeout = shutdown_timeout
        self._latency_s = max(0.0, latency_ms) / 1000.0
        self._requested_port = port
        self._port: int | None = None
        self._state = SandboxState(account_id, ids)
        self._log: deque[JSON] = deque(maxlen=log_limit)
        self._log_lock = threading.Lock()
        self._in_flight = 0
        self._peak_in_flight = 0
        self._request_count = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Sandbox:
        """Start serving in a background thread; returns once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        ready = threading.Event()
        self._startup_error = None
        thread = threading.Thread(target=self._run, args=(ready,), name="segmetrics-sandbox", daemon=True)
        self._thread = thread
        thread.start()
        ready.wait()
        if self._startup_error is not None:
            thread.join()
            self._thread = None
            raise self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving (idempotent). Held data stays readable."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                loop.call_soon_threadsafe(stop_event.set)
        thread.join()
        self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # pragma: no cover - reported through start()
            if not ready.is_set():
                self._startup_error = exc
                ready.set()
            else:
                log.exception("sandbox server crashed")
        finally:
            loop.close()
            self._loop = None

    async def _serve(self, ready: threading.Event) -> None:
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(
            self.build_app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.shutdown_timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port, backlog=2048, reuse_address=True)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except BaseException as exc:
            self._startup_error = exc
            ready.set()
            await runner.cleanup()
            return
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

    def build_app(self) -> web.Application:
        """The aiohttp application (usable directly, e.g. with aiohttp's test utilities)."""
        app = web.Application()
        app.router.add_get("/_sandbox/state", self._h_state)
        app.router.add_get("/_sandbox/requests", self._h_requests)
        app.router.add_get("/_sandbox/stats", self._h_stats)
        app.router.add_post("/_sandbox/reset", self._h_reset)
        app.router.add_post("/_sandbox/config", self._h_config)
        app.router.add_route("*", "/{tail:.*}", self._h_api)
        return app

    # ------------------------------------------------------------------ properties

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("sandbox not started")
        return self._port

    @property
    def url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:8765`` (control endpoints live under it)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v1"

    def integration_url(self, integration_id: str | None = None) -> str:
        """``<base_url>/<account_id>/<integration_id>`` (no trailing slash)."""
        return f"{self.base_url}/{self.account_id}/{integration_id or self.integration_ids[0]}"

    @property
    def latency_ms(self) -> float:
        return self._latency_s * 1000.0

    def set_latency(self, ms: float) -> None:
        self._latency_s = max(0.0, ms) / 1000.0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        return self._peak_in_flight

    @property
    def request_count(self) -> int:
        return self._request_count

    def configure(self, settings: JSON) -> None:
        """Apply ``{"latency_ms": number, "faults": {<Faults settings>}}`` (both optional).

        Fault settings install a :class:`Faults` policy when none is installed.
        """
        if not isinstance(settings, dict):
            raise TypeError("settings must be a JSON object")
        if "latency_ms" in settings:
            self.set_latency(float(settings["latency_ms"]))
        fault_settings = settings.get("faults")
        if fault_settings is not None:
            if self.faults is None:
                self.faults = Faults()
            if not isinstance(self.faults, Faults):
                raise TypeError("the installed fault policy is not configurable")
            self.faults.configure(**fault_settings)

    # ------------------------------------------------------------------ accessors

    def _section(self, name: str, integration_id: str | None) -> list[JSON]:
        with self._state.lock:
            store = self._state.store(integration_id)
            if name == "contacts":
                return [store.contact_snapshot(c) for c in store.contacts.values()]
            held: dict[Any, JSON] = getattr(store, name)
            return copy.deepcopy(list(held.values()))

    def contacts(self, integration_id: str | None = None) -> list[JSON]:
        return self._section("contacts", integration_id)

    def contact(self, key: str | int, integration_id: str | None = None) -> JSON | None:
        """A contact by contact_id, else by email (the oldest with it); None if absent."""
        with self._state.lock:
            store = self._state.store(integration_id)
            found = store.find_contact(key)
            return store.contact_snapshot(found) if found is not None else None

    def invoices(self, integration_id: str | None = None) -> list[JSON]:
        return self._section("invoices", integration_id)

    def subscriptions(self, integration_id: str | None = None) -> list[JSON]:
        return self._section("subscriptions", integration_id)

    def products(self, integration_id: str | None = None) -> list[JSON]:
        return self._section("products", integration_id)

    def ad_performance(self, integration_id: str | None = None) -> list[JSON]:
        return self._section("ad_performance", integration_id)

    def _one(self, name: str, key: str | int, integration_id: str | None) -> JSON | None:
        with self._state.lock:
            held: dict[str, JSON] = getattr(self._state.store(integration_id), name)
            found = held.get(str(key))
            return copy.deepcopy(found) if found is not None else None

    def invoice(self, invoice_id: str | int, integration_id: str | None = None) -> JSON | None:
        return self._one("invoices", invoice_id, integration_id)

    def subscription(self, subscription_id: str | int, integration_id: str | None = None) -> JSON | None:
        return self._one("subscriptions", subscription_id, integration_id)

    def product(self, product_id: str | int, integration_id: str | None = None) -> JSON | None:
        return self._one("products", product_id, integration_id)

    def tags(self, integration_id: str | None = None) -> list[JSON]:
        """The integration's tag registry: ``[{"id": int, "name": str | None}, ...]`` by id."""
        with self._state.lock:
            store = self._state.store(integration_id)
            return [{"id": i, "name": n} for i, n in sorted(store.tag_names.items())]

    def state(self) -> JSON:
        """Everything held (as served by ``GET /_sandbox/state``)."""
        out = self._state.snapshot()
        out.update(
            request_count=self._request_count,
            in_flight=self._in_flight,
            peak_in_flight=self._peak_in_flight,
            latency_ms=self.latency_ms,
            faults=self.faults.settings() if isinstance(self.faults, Faults) else None,
        )
        return out

    def requests_log(self) -> list[JSON]:
        """Every API request: method, path (relative to the integration), status, body, auth_ok,
        account_id, integration_id, fault. ``status`` is None when the connection was dropped."""
        with self._log_lock:
            return copy.deepcopy(list(self._log))

    def reset(self) -> None:
        """Forget all data, the request log and the counters (latency and faults are kept)."""
        self._state.reset()
        with self._log_lock:
            self._log.clear()
        self._request_count = 0
        self._peak_in_flight = self._in_flight

    # ------------------------------------------------------------------ control endpoints

    async def _h_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    def stats(self) -> JSON:
        """Counters and how many objects are held, without the objects (cheap for benchmarks)."""
        with self._state.lock:
            held = {
                integration: {
                    "contacts": len(store.contacts),
                    "invoices": len(store.invoices),
                    "subscriptions": len(store.subscriptions),
                }
                for integration, store in self._state.stores.items()
            }
        return {
            "request_count": self._request_count,
            "in_flight": self._in_flight,
            "peak_in_flight": self._peak_in_flight,
            "latency_ms": self.latency_ms,
            "held": held,
        }

    async def _h_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _h_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.requests_log())

    async def _h_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"status": "success"})

    async def _h_config(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.configure(body)
        except (ValueError, TypeError) as exc:
            return web.json_response({"status": "error", "errors": [str(exc)]}, status=400)
        faults = self.faults.settings() if isinstance(self.faults, Faults) else None
        return web.json_response({"status": "success", "latency_ms": self.latency_ms, "faults": faults})

    # ------------------------------------------------------------------ API

    async def _h_api(self, request: web.Request) -> web.StreamResponse:
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        self._request_count += 1
        try:
            return await self._handle(request, self._request_count)
        finally:
            self._in_flight -= 1

    def _record(self, entry: JSON) -> None:
        with self._log_lock:
            self._log.append(entry)

    async def _handle(self, request: web.Request, number: int) -> web.StreamResponse:
        raw = await request.read()
        if self._latency_s > 0:
            await asyncio.sleep(self._latency_s)
        auth_ok = request.headers.get("Authorization") == self.api_key
        body: Any = None
        body_error: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                body_error = "request body is not valid JSON"
        entry: JSON = {
            "method": request.method,
            "path": request.path,
            "status": None,
            "body": body,
            "auth_ok": auth_ok,
            "account_id": None,
            "integration_id": None,
            "fault": None,
        }

        def finish(result: Result, headers: dict[str, str] | None = None) -> web.Response:
            entry["status"] = result.status
            self._record(entry)
            return json_response(result, headers)

        try:
            integration_id, endpoint, key = accept(
                request, entry, body, body_error, account=self.account_id, integrations=self.integration_ids
            )
        except Reject as rejection:
            return finish(rejection.result, rejection.headers)

        ctx: FaultContext | None = None
        if self.faults is not None:
            ctx = FaultContext(request.method, entry["path"], body, integration_id, number)
            action = self.faults.before(ctx)
            if action is not None:
                response = await apply_fault(request, action, entry, finish, applied=False, record=self._record)
                if response is not None:
                    return response

        if key is None:
            result = self._state.post(integration_id, endpoint, body)
        else:
            result = self._state.delete(integration_id, endpoint, key)

        if ctx is not None and self.faults is not None:
            action = self.faults.after(ctx, result.status)
            if action is not None:
                response = await apply_fault(request, action, entry, finish, applied=True, record=self._record)
                if response is not None:
                    return response
        return finish(result)
