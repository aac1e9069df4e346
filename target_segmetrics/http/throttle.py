"""The gate every request to SegMetrics passes: how many may be in flight, how fast they may start."""

from __future__ import annotations

import math
import threading
import time

from target_segmetrics.errors import FatalError


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
        self.throttled = 0
        # float(): the SDK hands a JSON number like 2.5 over as a Decimal.
        rate = float(max_requests_per_second) if max_requests_per_second is not None else 0.0
        self._interval = 1.0 / rate if rate > 0 and math.isfinite(rate) else 0.0
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
