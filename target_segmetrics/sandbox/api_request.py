"""One API request of the sandbox: its route, the checks in the order SegMetrics makes them, and the
faults a policy injects before or after the write (see :mod:`target_segmetrics.sandbox.server`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .faults import FaultAction
from .state import DELETE_ENDPOINTS, POST_ENDPOINTS, Result

JSON = dict[str, Any]

_SUCCESS_BODY = b'{"status": "success"}'
_FAULT_MESSAGES = {
    429: "too many requests, slow down",
    503: "service unavailable, try again later",
}


def json_response(result: Result, headers: dict[str, str] | None = None) -> web.Response:
    if result.status == 200 and result.payload == {"status": "success"}:
        body = _SUCCESS_BODY
    else:
        body = json.dumps(result.payload).encode()
    return web.Response(body=body, status=result.status, content_type="application/json", headers=headers)


class Reject(Exception):
    """Ends a request early with an error answer."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.result = Result.error(status, message)
        self.headers = headers


def accept(
    request: web.Request, entry: JSON, body: Any, body_error: str | None, *, account: str, integrations: Iterable[str]
) -> tuple[str, str, str | None]:
    """Route, authenticate and check the body shape: (integration_id, endpoint, id), or raise Reject."""
    parts = request.rel_url.raw_path.split("/")
    if len(parts) < 6 or parts[0] != "" or parts[1] != "api" or parts[2] != "v1":
        raise Reject(404, "not found")
    account_id, integration_id = unquote(parts[3]), unquote(parts[4])
    rest = [unquote(p) for p in parts[5:]]
    path = "/".join(rest)
    entry.update(path=path, account_id=account_id, integration_id=integration_id)
    if not entry["auth_ok"]:
        raise Reject(401, "invalid API key")
    if account_id != account:
        raise Reject(404, f"unknown account '{account_id}'")
    if integration_id not in integrations:
        raise Reject(404, f"unknown integration '{integration_id}'")
    endpoint, key = route(rest)
    if endpoint is None:
        raise Reject(404, f"unknown endpoint '{path}'")
    allowed = "DELETE" if key is not None else "POST"
    if request.method != allowed:
        raise Reject(405, f"method {request.method} not allowed for '{path}'", {"Allow": allowed})
    if allowed == "POST":
        if request.content_type != "application/json":
            raise Reject(400, "Content-Type must be application/json")
        if body_error is not None:
            raise Reject(400, body_error)
        if not isinstance(body, dict):
            raise Reject(400, "request body must be a JSON object")
    return integration_id, endpoint, key


async def apply_fault(
    request: web.Request,
    action: FaultAction,
    entry: JSON,
    finish: Callable[[Result, dict[str, str] | None], web.Response],
    *,
    applied: bool,
    record: Callable[[JSON], None],
) -> web.StreamResponse | None:
    """Carry out a fault; returns the response to send, or None to carry on.

    Logged as ``fault``: before the write ``"delay"``, ``"drop"``, ``"status <n>"``, ``"answer <n>"``;
    after it (``applied``) ``"slow"``, ``"lost"``, ``"status <n> after write"``, ``"answer <n> after write"``.
    """
    if action.kind == "delay":
        entry["fault"] = "slow" if applied else "delay"
        await asyncio.sleep(action.delay_ms / 1000.0)
        return None
    if action.kind == "drop":
        entry["fault"] = "lost" if applied else "drop"
        record(entry)
        transport = request.transport
        if transport is not None:
            transport.abort()
        # aiohttp's attempt to send this onto the aborted connection fails quietly.
        return web.Response(status=500)
    if action.kind == "answer":
        entry["fault"] = f"answer {action.status}" + (" after write" if applied else "")
        entry["status"] = action.status
        record(entry)
        return web.Response(body=action.body or None, status=action.status, content_type="application/json")
    entry["fault"] = f"status {action.status}" + (" after write" if applied else "")
    headers: dict[str, str] = {}
    if action.retry_after is not None:
        headers["Retry-After"] = f"{action.retry_after:g}"
    message = _FAULT_MESSAGES.get(action.status, "server error, try again later")
    return finish(Result.error(action.status, message), headers)


def route(rest: list[str]) -> tuple[str | None, str | None]:
    """(endpoint, id) for the path below the integration; (None, None) if unknown."""
    if len(rest) == 1 and rest[0] in POST_ENDPOINTS:
        return rest[0], None
    if len(rest) == 2:
        joined = f"{rest[0]}/{rest[1]}"
        if joined in POST_ENDPOINTS:
            return joined, None
        if rest[0] in DELETE_ENDPOINTS and rest[1]:
            return rest[0], rest[1]
    return None, None
