"""``dry_run``: a transport of the real client that writes each request down instead of sending it.

The client, its throttle, its retries and every rule about answers stay exactly those of a real
run; only the last step differs: :class:`DryRunTransport` (a ``requests`` adapter, mounted on the
client's session) writes ``{"method", "path", "body"}`` as one JSON line (``path`` relative to the
integration: ``contact``, ``tags/add``, ``invoice/12``) to a file or, without one, to the log, and
answers as SegMetrics answers a success (a DELETE as SegMetrics answers a delete).
"""

from __future__ import annotations

import io
import json
import threading
import typing as t
import urllib.parse

import requests
from requests.adapters import BaseAdapter
from urllib3.response import HTTPResponse

if t.TYPE_CHECKING:
    import logging

SUCCESS = b'{"status":"success"}'


class DryRunTransport(BaseAdapter):
    """Answers every request with SegMetrics' success, after writing it down."""

    def __init__(self, base_url: str, path: str | None, logger: logging.Logger) -> None:
        super().__init__()
        self._base = base_url
        self._logger = logger
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - closed in close()

    def send(self, request: requests.PreparedRequest, *args: t.Any, **kwargs: t.Any) -> requests.Response:
        """Write the request down; answer 200 ``{"status": "success"}`` (a DELETE: ``"deleted": true`` too)."""
        url = request.url or ""
        body = request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        line = json.dumps(
            {
                "method": request.method,
                "path": url.removeprefix(self._base),
                "body": json.loads(body) if body else None,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            else:
                self._logger.info("Dry run: %s", line)
        response = requests.Response()
        response.status_code = 200
        response.url = url
        response.request = request
        response.headers["Content-Type"] = "application/json"
        answer = SUCCESS
        if request.method == "DELETE":
            obj, _, key = url.removeprefix(self._base).partition("/")
            key = urllib.parse.unquote(key)
            answer = json.dumps({"id": key, "status": "success", "object": obj, "deleted": True}).encode()
        response.raw = HTTPResponse(
            body=io.BytesIO(answer), status=200, headers={"Content-Type": "application/json"}, preload_content=False
        )
        return response

    def close(self) -> None:
        """Close the output file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
