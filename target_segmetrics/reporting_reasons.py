"""Readable rejections: a reason said once per record, a few times per stream, and grouped in the summary.

A mapping mistake rejects every record for the same reason: one WARNING line per record would bury
everything else. Here a reason (its values masked: ``'yes'`` and ``'no'`` give the same reason) is
logged for the first :data:`LOGGED_FIRST` records of a stream, then every :data:`LOGGED_EVERY`\\ th;
the summary (log and JSON) lists each reason with its count and an example key. The rejects file
still gets every record.
"""

from __future__ import annotations

import re
import threading
import typing as t
from dataclasses import dataclass

from target_segmetrics.mapping.values import escaped

if t.TYPE_CHECKING:
    import logging

    from target_segmetrics.mapping.wire import Problem

LOGGED_FIRST = 3
LOGGED_EVERY = 1000
SHOWN_IN_SUMMARY = 5
"""Reasons listed per stream in the summary's log block (the JSON has them all)."""

_VALUES = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|-?\d+(?:[.,]\d+)*")


def said_once(problems: t.Iterable[Problem]) -> list[str]:
    """Each reason once, with every field it applies to: ``amount, paid, items[0].amount: <reason>``."""
    fields: dict[str, list[str]] = {}
    for problem in problems:
        fields.setdefault(problem.reason, []).append(problem.field)
    return [f"{', '.join(names)}: {reason}" for reason, names in fields.items()]


def reason_of(reasons: t.Sequence[str]) -> str:
    """What makes two rejections the same: their reasons with the values masked."""
    return "; ".join(_VALUES.sub("…", reason) for reason in reasons)


@dataclass
class _Group:
    count: int
    example: str
    example_key: str
    by: str


class ReasonLog:
    """Counts rejections per stream and reason; logs a few of each; lists them for the summary."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._lock = threading.Lock()
        self._groups: dict[str, dict[tuple[str, str], _Group]] = {}

    def note(self, stream: str, key: str, by: str, reasons: t.Sequence[str]) -> None:
        """One rejected record: logged when it is among the first of its reason, or a 1000th."""
        text, key = escaped("; ".join(reasons)), escaped(key)  # SegMetrics' words may hold a NUL, a half emoji
        with self._lock:
            groups = self._groups.setdefault(stream, {})
            group = groups.get((by, reason_of(reasons)))
            if group is None:
                group = groups[(by, reason_of(reasons))] = _Group(0, text, key, by)
            group.count += 1
            n = group.count
        if n > LOGGED_FIRST and n % LOGGED_EVERY:
            return
        if n == LOGGED_FIRST:
            text += (
                f" (more records of stream '{stream}' rejected for this reason are logged every "
                f"{LOGGED_EVERY}th; the summary counts them all)"
            )
        elif n > LOGGED_FIRST:
            text += f" ({n} records of stream '{stream}' rejected for this reason so far)"
        self.logger.warning("Rejected record of stream '%s' (%s) %s: %s", stream, key, by, text)

    def leading(self, stream: str) -> tuple[str, int, str] | None:
        """The most common reason of a stream's rejections: (reason, count, example key)."""
        with self._lock:
            groups = sorted(self._groups.get(stream, {}).values(), key=lambda g: -g.count)
        return (groups[0].example, groups[0].count, groups[0].example_key) if groups else None

    def as_json(self) -> dict[str, list[dict[str, t.Any]]]:
        """Per stream, each reason with its count and an example key, most common first."""
        with self._lock:
            return {
                stream: [
                    {"reason": g.example, "count": g.count, "example_key": g.example_key, "rejected_by": g.by}
                    for g in sorted(groups.values(), key=lambda g: -g.count)
                ]
                for stream, groups in sorted(self._groups.items())
            }

    def summary_lines(self) -> list[str]:
        """The summary's lines: per stream, its most common reasons."""
        lines = []
        for stream, groups in self.as_json().items():
            lines.append(f"  rejected records of stream '{stream}', by reason:")
            for group in groups[:SHOWN_IN_SUMMARY]:
                lines.append(
                    f"    {group['count']} {group['rejected_by']}: {_short(group['reason'])} "
                    f"(e.g. {group['example_key']})"
                )
            if len(groups) > SHOWN_IN_SUMMARY:
                more = sum(g["count"] for g in groups[SHOWN_IN_SUMMARY:])
                lines.append(f"    {more} more, for {len(groups) - SHOWN_IN_SUMMARY} other reasons")
        return lines


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
