"""What a 2xx answer says: only SegMetrics' own success is an acknowledgement that a write landed.

SegMetrics answers a write with ``{"status": "success"}`` and a DELETE with ``{"id": ...,
"status": "success", "object": ..., "deleted": true}``. Anything else with a 2xx status (an empty
body, 204, ``[]``, ``null``, ``"ok"``, ``{}``, ``{"status": "fail"}``) is not SegMetrics' answer
(a proxy, a stub, a broken gateway): the write is not known to have landed, so it is tried again
like a transient fault, and no STATE passes it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http
import json
import math
import typing as t

SUCCESS = "success"
RETRY_AFTER_CAP_SECONDS = 300.0

NOT_ACKNOWLEDGED_HINT = (
    "Something between the target and SegMetrics may be answering in its place (a proxy, a stub, a gateway), or "
    "api_url points at another server; nothing past this point counts as landed"
)


class Unreadable:
    """An answer body that is not JSON, or too large to be SegMetrics' answer."""

    def __init__(self, what: str) -> None:
        self.what = what


class _Empty:
    """An answer with no body at all."""


EMPTY = _Empty()


def not_acknowledged(method: str, body: t.Any) -> str | None:
    """Why a 2xx answer with ``body`` (parsed JSON, :data:`EMPTY`) does not acknowledge the write, or None."""
    if isinstance(body, dict) and body.get("status") == SUCCESS and (method != "DELETE" or body.get("deleted") is True):
        return None
    expected = '{"status": "success", ..., "deleted": true}' if method == "DELETE" else '{"status": "success"}'
    return f"{describe(body)}, not SegMetrics' success ({expected})"


def describe(body: t.Any) -> str:
    """The body of an answer, in a few words for a message."""
    if body is EMPTY:
        return "an empty body"
    text = json.dumps(body, ensure_ascii=True)
    return f"the body {text if len(text) <= 60 else text[:57] + '...'}"


def phrase(status: int) -> str:
    """`` Not Implemented`` for 501: the standard name of a status, if it has one."""
    try:
        return " " + http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def parse_retry_after(value: str | None) -> float | None:
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
