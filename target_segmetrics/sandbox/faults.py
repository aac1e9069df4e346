"""Fault injection for the sandbox.

The server asks a fault policy twice per data request (never for ``/_sandbox/*`` control calls,
and only for requests that passed routing and authentication):

* ``before(ctx)`` - before the write is applied. A :class:`FaultAction` of kind ``"status"``
  answers with that status (e.g. 503, or 429 with ``Retry-After``) WITHOUT applying the write;
  ``"drop"`` closes the connection without answering and without applying; ``"delay"`` waits
  ``delay_ms`` and then carries on.
* ``after(ctx, status)`` - after the write was applied (``status`` is the answer it would get).
  ``"drop"`` closes the connection without answering (a lost reply: the write IS held);
  ``"status"`` answers with that status although the write is held; ``"delay"`` is a slow reply.

Either time, ``"answer"`` answers ``status`` with exactly the bytes ``body`` (nothing when empty): an
answer that is not SegMetrics' own, such as a 2xx with an empty body, ``[]`` or ``{"status": "fail"}``
(:class:`Answers` sends one of those; :data:`NOT_ACKNOWLEDGEMENTS` names the usual ones).

Any object with those two methods can be plugged in (``Sandbox(faults=...)``); :class:`Faults` is a
simple one driven by random rates and/or a script of actions for the next requests.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NOT_ACKNOWLEDGEMENTS", "Answers", "FaultAction", "FaultContext", "FaultPolicy", "Faults"]

FaultKind = Literal["status", "drop", "delay", "answer"]


@dataclass(frozen=True)
class FaultAction:
    kind: FaultKind
    status: int = 503
    retry_after: float | None = None
    delay_ms: int = 0
    body: bytes = b""
    """What an ``"answer"`` sends, byte for byte."""


@dataclass
class FaultContext:
    """One data request as the fault policy sees it."""

    method: str
    path: str  # relative to the integration, e.g. "contact", "tags/add", "invoice/12"
    body: Any
    integration_id: str
    number: int  # 1-based request number since start / reset
    planned_after: FaultAction | None = field(default=None)


class FaultPolicy(Protocol):
    def before(self, ctx: FaultContext) -> FaultAction | None: ...

    def after(self, ctx: FaultContext, status: int) -> FaultAction | None: ...


ScriptStep = int | str

NOT_ACKNOWLEDGEMENTS: dict[str, tuple[int, bytes]] = {
    "200 empty": (200, b""),
    "204": (204, b""),
    "200 []": (200, b"[]"),
    "200 null": (200, b"null"),
    '200 "ok"': (200, b'"ok"'),
    "200 {}": (200, b"{}"),
    '200 {"status": "fail"}': (200, b'{"status": "fail"}'),
    '201 {"status": "ok"}': (201, b'{"status": "ok"}'),
}
"""2xx answers that are not SegMetrics' success (``{"status": "success"}``): (status, body) by name."""


class Answers:
    """Answers matching data requests with ``status`` and exactly ``body``, as something that is not
    SegMetrics would (a proxy, a stub, a broken gateway).

    ``applied``: the write is held first (the answer lies about nothing but itself) or not.
    ``matches(ctx)`` picks the requests (default: all); ``times`` bounds how many are answered so
    (None: every one), after which requests go through. ``answered`` counts them.
    """

    def __init__(
        self,
        status: int,
        body: bytes,
        *,
        applied: bool = True,
        matches: Callable[[FaultContext], bool] | None = None,
        times: int | None = None,
    ) -> None:
        self.action = FaultAction("answer", status=status, body=body)
        self.applied = applied
        self.matches = matches
        self.times = times
        self.answered = 0
        self._lock = threading.Lock()

    def _take(self, ctx: FaultContext) -> FaultAction | None:
        if self.matches is not None and not self.matches(ctx):
            return None
        with self._lock:
            if self.times is not None and self.answered >= self.times:
                return None
            self.answered += 1
        return self.action

    def before(self, ctx: FaultContext) -> FaultAction | None:
        return None if self.applied else self._take(ctx)

    def after(self, ctx: FaultContext, status: int) -> FaultAction | None:
        return self._take(ctx) if self.applied else None


class Faults:
    """Random and scripted faults.

    Rates are probabilities per data request, checked in this order (at most one fault per
    request): ``error_rate`` (``error_status`` before the write), ``throttle_rate`` (429 with
    ``Retry-After: retry_after`` seconds when not None, before the write), ``drop_rate``
    (connection closed before the write), ``lost_reply_rate`` (write applied, connection closed
    without an answer), ``slow_rate`` (write applied, answer delayed by ``slow_ms``).

    ``script(*steps)`` queues exact behaviour for the next data requests, consumed one per request
    before the random rates apply: an ``int`` status (answered before the write; 429 carries
    ``Retry-After``), ``"drop"``, ``"lost"`` (applied, no reply), ``"error-after"`` (applied, then
    answered 500), ``"slow"`` (applied, answered after ``slow_ms``) or ``"ok"``.

    ``counts`` tallies injected faults by name.
    """

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        error_status: int = 503,
        throttle_rate: float = 0.0,
        retry_after: float | None = 1.0,
        drop_rate: float = 0.0,
        lost_reply_rate: float = 0.0,
        slow_rate: float = 0.0,
        slow_ms: int = 1000,
        seed: int | None = None,
    ) -> None:
        self.error_rate = error_rate
        self.error_status = error_status
        self.throttle_rate = throttle_rate
        self.retry_after = retry_after
        self.drop_rate = drop_rate
        self.lost_reply_rate = lost_reply_rate
        self.slow_rate = slow_rate
        self.slow_ms = slow_ms
        self._rng = random.Random(seed)  # noqa: S311 - not cryptographic
        self._script: deque[ScriptStep] = deque()
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def configure(self, **settings: Any) -> None:
        """Change rates / settings (same names as the constructor, except ``seed``)."""
        for name, value in settings.items():
            if name.startswith("_") or name in ("counts", "seed") or not hasattr(self, name):
                raise ValueError(f"unknown fault setting {name!r}")
            setattr(self, name, value)

    def script(self, *steps: ScriptStep) -> None:
        for step in steps:
            if not isinstance(step, int) and step not in ("drop", "lost", "error-after", "slow", "ok"):
                raise ValueError(f"unknown fault step {step!r}")
        with self._lock:
            self._script.extend(steps)

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self.counts.clear()

    def _status(self, status: int) -> FaultAction:
        self.counts[str(status)] += 1
        retry_after = self.retry_after if status == 429 else None
        return FaultAction("status", status=status, retry_after=retry_after)

    def before(self, ctx: FaultContext) -> FaultAction | None:
        with self._lock:
            step: ScriptStep | None = self._script.popleft() if self._script else None
        if step is None:
            step = self._random_step()
        if step is None or step == "ok":
            return None
        if isinstance(step, int):
            return self._status(step)
        self.counts[step] += 1
        if step == "drop":
            return FaultAction("drop")
        if step == "lost":
            ctx.planned_after = FaultAction("drop")
        elif step == "error-after":
            ctx.planned_after = FaultAction("status", status=500)
        elif step == "slow":
            ctx.planned_after = FaultAction("delay", delay_ms=self.slow_ms)
        return None

    def after(self, ctx: FaultContext, status: int) -> FaultAction | None:
        return ctx.planned_after

    def _random_step(self) -> ScriptStep | None:
        roll = self._rng.random()
        for rate, step in (
            (self.error_rate, self.error_status),
            (self.throttle_rate, 429),
            (self.drop_rate, "drop"),
            (self.lost_reply_rate, "lost"),
            (self.slow_rate, "slow"),
        ):
            if roll < rate:
                return step
            roll -= rate
        return None

    def settings(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "throttle_rate": self.throttle_rate,
            "retry_after": self.retry_after,
            "drop_rate": self.drop_rate,
            "lost_reply_rate": self.lost_reply_rate,
            "slow_rate": self.slow_rate,
            "slow_ms": self.slow_ms,
            "scripted": len(self._script),
            "counts": dict(self.counts),
        }
