"""The breaker: when SegMetrics refuses nearly everything among the first records, the setup is wrong.

A mapping that sends what the integration does not take, a proxy answering for SegMetrics: each looks
like "every record was refused". Rejecting record after record would burn the whole input and let
STATE pass it. While SegMetrics has answered fewer than :data:`RECORDS` records, a run where it
refused at least :data:`MIN_REFUSED` and at least :data:`RATE` of them stops; until the breaker has
judged (past :data:`RECORDS` answers, or at the end of the input), those refusals are held back from
the checkpoints, so no STATE passes them if it trips.
"""

from __future__ import annotations

import threading
import typing as t

from target_segmetrics.errors import SetupRefusedError

if t.TYPE_CHECKING:
    from target_segmetrics.delivery.dispatch import Checkpoints

RECORDS = 100
MIN_REFUSED = 20
RATE = 0.9


class Breaker:
    """Watches the first answers; holds early refusals back from STATE until it has judged."""

    def __init__(self, checkpoints: Checkpoints) -> None:
        self._checkpoints = checkpoints
        self._lock = threading.Lock()
        self._answered = 0
        self._refused: list[int] = []
        self._tripped = False

    def answered(self, number: int, *, refused: bool) -> None:
        """SegMetrics answered record ``number`` (refused it, or not); raises when the breaker trips."""
        with self._lock:
            if self._answered >= RECORDS or self._tripped:
                return
            self._answered += 1
            if refused:
                self._refused.append(number)
            trip = len(self._refused) >= MIN_REFUSED and len(self._refused) >= RATE * self._answered
            self._tripped = trip
            release = [] if trip or self._answered < RECORDS else self._refused
            if release:
                self._refused = []
            refused_count, answered = len(self._refused), self._answered
        if trip:
            msg = (
                f"Stopping: SegMetrics refused {refused_count} of the first {answered} records it answered. "
                "When nearly everything is refused, the setup is wrong, not the data (a mapping that sends "
                "what this integration does not take, a proxy answering for SegMetrics...): see the rejection "
                "warnings above; no STATE passes the refused records"
            )
            raise SetupRefusedError(msg)
        for held in release:
            self._checkpoints.landed(held, True)

    def holds(self, number: int) -> bool:
        """Whether record ``number``'s landing is held back (a refusal under watch, or it tripped)."""
        with self._lock:
            return self._tripped or number in self._refused

    def close(self) -> None:
        """End of the input with too few answers to judge: the held rejections stand."""
        with self._lock:
            held, self._refused = ([] if self._tripped else self._refused), []
        for number in held:
            self._checkpoints.landed(number, True)
