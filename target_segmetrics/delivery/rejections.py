"""A run that fails loudly: a stream whose first records are nearly all rejected stops the run.

One mistake in a mapping (a yes/no column read as a status with no ``map``) rejects every record
of a stream. Going on would log thousands of rejections, exit 0 and let STATE pass them all. Like
the breaker on SegMetrics' refusals (``breaker.py``), this one watches each stream's first
:data:`RECORDS` mapped records: at :data:`MIN_REJECTED` rejected among them (90%) the run stops,
naming the stream, the leading reason and its count. Until a stream's first records are judged,
its rejections are held back from the checkpoints, so no STATE passes them if it trips (a stream
is judged as soon as more than ``RECORDS - MIN_REJECTED`` of its records were not rejected: it can no
longer trip); they are kept in the store for replay either way (``replay.py``).
"""

from __future__ import annotations

import threading
import typing as t

from target_segmetrics.errors import StreamRejectedError

if t.TYPE_CHECKING:
    from target_segmetrics.delivery.dispatch import Checkpoints
    from target_segmetrics.reporting_reasons import ReasonLog

RECORDS = 100
MIN_REJECTED = 90
"""Rejected among a stream's first :data:`RECORDS` mapped records that stop the run (90%)."""


class _Judging:
    def __init__(self) -> None:
        self.mapped = 0
        self.held: list[int] = []


class RejectionBreaker:
    """Watches each stream's first mapped records; holds their rejections back from STATE until judged."""

    def __init__(self, checkpoints: Checkpoints, reasons: ReasonLog) -> None:
        self._checkpoints = checkpoints
        self._reasons = reasons
        self._lock = threading.Lock()
        self._streams: dict[str, _Judging | None] = {}  # None: judged, it goes on
        self._tripped = False

    def mapped(self, stream: str, *, rejected: bool, where: str) -> None:
        """One more record of ``stream`` was mapped (and rejected, or not): raises when the stream trips.
        ``where`` says where the rejected records are kept (for the message)."""
        with self._lock:
            judging = self._streams.setdefault(stream, _Judging())
            if judging is None or self._tripped:
                return
            judging.mapped += 1
            if rejected:
                judging.held.append(self._checkpoints.ticket())
            tripped = self._tripped = len(judging.held) >= MIN_REJECTED
            # Judged when its first RECORDS are, or once too few are rejected for it ever to trip.
            can_trip = judging.mapped - len(judging.held) <= RECORDS - MIN_REJECTED
            done = not tripped and (judging.mapped >= RECORDS or not can_trip)
            if done:
                self._streams[stream] = None
            held, mapped = len(judging.held), judging.mapped
            release = judging.held if done else []
        for number in release:
            self._checkpoints.landed(number, True)
        if tripped:  # what it holds stays held: no STATE passes these records
            raise StreamRejectedError(self._message(stream, held, mapped, where))

    def _message(self, stream: str, held: int, mapped: int, where: str) -> str:
        leading = self._reasons.leading(stream)
        reason = f" Leading reason ({leading[1]} records, e.g. {leading[2]}): {leading[0]}." if leading else ""
        return (
            f"Stopping: {held} of the first {mapped} records of stream '{stream}' were rejected: when nearly "
            f"every record is rejected, the mapping is wrong, not the data.{reason} The rejected records are "
            f"kept in {where} and no STATE passes them: fix the mapping and run again (they are mapped again "
            "and sent at the end of the next run)"
        )

    def close(self) -> None:
        """End of the input: the rejections of streams too short to judge stand (they land)."""
        with self._lock:
            if self._tripped:
                return
            held = [n for judging in self._streams.values() if judging is not None for n in judging.held]
            self._streams = dict.fromkeys(self._streams)
        for number in held:
            self._checkpoints.landed(number, True)
