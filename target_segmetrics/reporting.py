"""What the run tells the user: rejected records (log line + rejects file) and the run summary."""

from __future__ import annotations

import difflib
import json
import reprlib
import threading
import time
import typing as t
from collections import Counter
from pathlib import Path

from singer_sdk import metrics
from singer_sdk.singerlib.json import serialize_json

from target_segmetrics.errors import THROTTLED
from target_segmetrics.reporting_reasons import ReasonLog

if t.TYPE_CHECKING:
    import logging


class Reporter:
    """Counts per stream, rejected records, and the summary at the end of the run."""

    def __init__(
        self,
        logger: logging.Logger,
        rejects_path: str | None = None,
        *,
        dry_run: bool = False,
        mapping_keys: t.Iterable[str] = (),
    ) -> None:
        self.logger = logger
        self.dry_run = dry_run
        """A dry run: nothing lands, the summary says what would be sent."""
        self.mapping_keys = tuple(mapping_keys)
        """The streams ``mappings`` lists: an entry no stream matched is named next to a stream like it."""
        self.ignored: dict[str, str] = {}
        """Streams not sent on purpose (``{"ignore": why}``, a preset's ignored streams), and why."""
        self.skip_reasons: dict[str, Counter[str]] = {}
        self._first_seen: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}
        self._last_landed: dict[str, float] = {}
        self.counts: dict[str, Counter[str]] = {}
        self.objects: dict[str, str | None] = {}
        self.started = time.monotonic()
        self._last_progress: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._rejects_path = Path(rejects_path) if rejects_path else None
        self._rejects_file: t.IO[str] | None = None
        self.parked_note: str | None = None
        """What is still parked at the end (how many, waiting for what, where), for the summary."""
        self.retry_kinds: dict[str, Counter[str]] = {}
        self._landed_meters: dict[str, metrics.Counter] = {}
        self.reasons = ReasonLog(logger)
        self.notes: list[str] = []
        """More lines for the summary's log block (what is kept for replay)."""

    def describe(self, stream: str, object_name: str | None) -> None:
        """Which SegMetrics object a stream feeds (None: skipped)."""
        with self._lock:
            self.objects[stream] = object_name
            self.counts.setdefault(stream, Counter())
            self._meter(stream)

    def ignore(self, stream: str, why: str) -> None:
        """A stream not sent on purpose: its records count as skipped, never as unmapped."""
        with self._lock:
            self.ignored[stream] = why

    def count(self, stream: str, what: str, n: int = 1) -> None:
        """Add ``n`` to a stream's counter: received, upserted, deleted, rejected, skipped,
        requests, retries, throttled (429 answers)."""
        with self._lock:
            self.counts.setdefault(stream, Counter())[what] += n
            now = time.monotonic()
            self._first_seen.setdefault(stream, now)
            self._last_seen[stream] = now
            if what in ("upserted", "deleted"):
                self._last_landed[stream] = now
                self._meter(stream).increment(n)

    def skip(self, stream: str, reason: str) -> None:
        """A record of ``stream`` is not sent, for ``reason`` (counted by reason in the summary)."""
        self.count(stream, "skipped")
        with self._lock:
            self.skip_reasons.setdefault(stream, Counter())[reason] += 1

    def retry(self, stream: str, kind: str) -> None:
        """A request of ``stream`` is tried again after ``kind`` of trouble ("answered 429", ...)."""
        with self._lock:
            counter = self.counts.setdefault(stream, Counter())
            counter["retries"] += 1
            counter["throttled"] += kind == THROTTLED
            self.retry_kinds.setdefault(stream, Counter())[kind] += 1

    def _meter(self, stream: str) -> metrics.Counter:
        """The SDK's ``record_count`` metric of ``stream``, counting records that landed."""
        meter = self._landed_meters.get(stream)
        if meter is None:
            meter = self._landed_meters[stream] = metrics.record_counter(stream)
        return meter

    def reject(
        self,
        *,
        stream: str,
        key: str,
        reasons: list[str],
        record: t.Mapping[str, t.Any],
        payload: t.Mapping[str, t.Any] | None,
        by: str,
    ) -> None:
        """Report one rejected record: one WARNING line, and a JSON line in the rejects file."""
        self.count(stream, "rejected")
        self.reasons.note(stream, key, by, reasons)  # a few lines per reason, not one per record
        if self._rejects_path is None:
            return
        entry = {
            "stream": stream,
            "key": key,
            "rejected_by": by,
            "reasons": reasons,
            "record": record,
            "payload": payload,
        }
        try:
            line = serialize_json(entry)
        except (RecursionError, ValueError, TypeError) as exc:  # nested too deep to write as JSON, ...
            entry["record"] = entry["payload"] = f"(not written as JSON: {type(exc).__name__}) {reprlib.repr(record)}"
            line = serialize_json(entry)
        with self._lock:
            if self._rejects_file is None:
                self._rejects_path.parent.mkdir(parents=True, exist_ok=True)
                self._rejects_file = self._rejects_path.open("a", encoding="utf-8")
            self._rejects_file.write(line + "\n")
            self._rejects_file.flush()

    def close(self) -> None:
        """Close the rejects file."""
        with self._lock:
            if self._rejects_file is not None:
                self._rejects_file.close()
                self._rejects_file = None

    def snapshot(self) -> dict[str, dict[str, t.Any]]:
        """Per stream: the object it feeds and every counter, plus its own elapsed time and rate: from
        its first record to its last acknowledgement (to now while nothing of it has landed yet)."""
        now = time.monotonic()
        with self._lock:
            out = {}
            for stream, counter in sorted(self.counts.items()):
                landed = counter["upserted"] + counter["deleted"]
                first = self._first_seen.get(stream, now)
                elapsed = self._last_landed.get(stream, self._last_seen.get(stream, now)) - first
                out[stream] = {
                    "object": self.objects.get(stream),
                    **{name: counter[name] for name in COUNTERS},
                    "retries_by_kind": dict(self.retry_kinds.get(stream, Counter()).most_common()),
                    "skipped_by_reason": dict(self.skip_reasons.get(stream, Counter()).most_common()),
                    # ``"on_invalid": "drop"``: values left out (the record landed without them), per field
                    "dropped_by_field": {
                        name.removeprefix("dropped:"): n
                        for name, n in sorted(counter.items())
                        if name.startswith("dropped:") and n
                    },
                    "elapsed_seconds": round(elapsed, 3),
                    "records_per_second": round(landed / elapsed, 1) if elapsed > 0 else 0.0,
                }
                if stream in self.ignored:
                    out[stream]["ignored"] = self.ignored[stream]
            return out

    def progress(self) -> None:
        """One line per stream that moved since the last call (called every few seconds)."""
        now = time.monotonic()
        for stream, figures in self.snapshot().items():
            last_time, last_landed = self._last_progress.get(stream, (self.started, 0))
            landed = figures["upserted"] + figures["deleted"]
            if landed == last_landed and figures["received"] == 0:
                continue
            rate = (landed - last_landed) / max(now - last_time, 1e-9)
            self._last_progress[stream] = (now, landed)
            self.logger.info(
                "Progress of stream '%s': %d received, %d %s, %d rejected, %d retried%s, %.1f records/s now",
                stream,
                figures["received"],
                landed,
                "would be sent (dry run)" if self.dry_run else "sent",
                figures["rejected"],
                figures["retries"],
                _kinds(figures["retries_by_kind"]),
                rate,
            )

    def summary(self, summary_path: str | None = None) -> None:
        """The run summary: a readable block in the log, and JSON in ``summary_path`` if set.

        The block is a WARNING when records were rejected or a stream was not sent at all (not in
        ``mappings``): then its last line says so."""
        figures = self.snapshot()
        elapsed = time.monotonic() - self.started
        dry = self.dry_run
        lines = [f"Run summary ({elapsed:.1f}s{', dry run: nothing was sent' if dry else ''}):"]
        unmapped = {
            stream: row["skipped"] for stream, row in figures.items() if not row["object"] and "ignored" not in row
        }
        for stream, row in figures.items():
            if "ignored" in row:
                lines.append(
                    f"  {stream} -> not sent, on purpose ({row['ignored']}): {counted(row['skipped'], 'record')}"
                )
                continue
            if not row["object"]:
                lines.append(f"  {stream} -> NOT SENT: not in mappings ({counted(row['skipped'], 'record')} skipped)")
                continue
            lines.append(
                f"  {stream} -> {plural_of(row['object'])}: {row['received']} received, "
                + (
                    f"{counted(row['requests'], 'request')} would be sent, {row['upserted']} would be created or "
                    "updated, "
                    if dry
                    else f"{counted(row['requests'], 'request')} sent, {row['upserted']} created or updated, "
                )
                + f"{row['unchanged']} unchanged, {row['deleted']} deleted, {row['rejected']} rejected, "
                f"{row['skipped']} skipped{_reasons(row['skipped_by_reason'])}, "
                f"{counted(row['retries'], 'retry', 'retries')}"
                f"{_kinds(row['retries_by_kind'])}, "
                + (f"{row['remembered']} lookup rows kept, " if row["remembered"] else "")
                + _dropped(row["dropped_by_field"])
                + (
                    f"{row['parked']} parked, {row['released']} released, {row['expired']} expired, "
                    if row["parked"] or row["released"] or row["expired"]
                    else ""
                )
                + f"{row['records_per_second']} records/s in {row['elapsed_seconds']:.2f}s"
            )
        rejected = sum(row["rejected"] for row in figures.values())
        landed = sum(row["upserted"] + row["deleted"] for row in figures.values())
        lines.append(
            f"  total: {counted(landed, 'record')} "
            + ("would be sent to SegMetrics (dry run: nothing was sent)" if dry else "landed in SegMetrics")
            + f", {rejected} rejected"
            + (
                f" (see the warnings above{' and ' + str(self._rejects_path) if self._rejects_path else ''})"
                if rejected
                else ""
            )
        )
        if unmapped:
            names = ", ".join(f"'{stream}'" for stream in unmapped)
            one = len(unmapped) == 1
            lines.append(
                f"  NOT SENT: {counted(sum(unmapped.values()), 'record')} of stream{'' if one else 's'} {names}, "
                f"which {'is' if one else 'are'} not in mappings: add {'it' if one else 'them'} to mappings to send "
                f"{'it' if one else 'them'}"
            )
            lines.extend(self._unused_entries(unmapped, figures))
        if self.parked_note:
            lines.append(f"  {self.parked_note}")
        lines += self.reasons.summary_lines() + [f"  {note}" for note in self.notes]
        (self.logger.warning if rejected or unmapped else self.logger.info)("\n".join(lines))
        with self._lock:
            meters, self._landed_meters = self._landed_meters, {}
        for meter in meters.values():
            meter.exit()  # the last record_count METRIC of each stream: records landed
        if summary_path:
            document = {
                "elapsed_seconds": round(elapsed, 3),
                "streams": figures,
                "totals": {name: sum(row[name] for row in figures.values()) for name in COUNTERS},
                "rejections": self.reasons.as_json(),
            }
            path = Path(summary_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    def _unused_entries(self, unmapped: t.Iterable[str], seen: t.Container[str]) -> list[str]:
        """For a stream not in mappings, the entry like its name that matched no stream (``lead``
        for ``leads``): most likely the same stream, misspelled."""
        unused = [key for key in self.mapping_keys if key not in seen]
        lines = []
        for stream in unmapped:
            close = similar_name(stream, unused)
            if close:
                lines.append(
                    f"  mappings entry '{close}' matched no stream of this run: did you mean '{stream}'? "
                    f"(rename the entry to send stream '{stream}')"
                )
        return lines


def similar_name(name: str, names: t.Iterable[str]) -> str | None:
    """The one of ``names`` most like ``name`` (ignoring case), if any is close."""
    by_fold = {candidate.casefold(): candidate for candidate in names}
    close = difflib.get_close_matches(name.casefold(), list(by_fold), n=1, cutoff=0.75)
    return by_fold[close[0]] if close else None


def _reasons(by_reason: t.Mapping[str, int]) -> str:
    """`` (3: its 'when' condition is not met; 1: it yields no tag)``, or nothing."""
    if not by_reason:
        return ""
    return " (" + "; ".join(f"{n}: {reason}" for reason, n in by_reason.items()) + ")"


def _dropped(by_field: t.Mapping[str, int]) -> str:
    """``3 values left out (on_invalid: drop; custom_fields.age: 2, email: 1), ``, or nothing."""
    if not by_field:
        return ""
    fields = "; ".join(f"{name}: {n}" for name, n in by_field.items())
    return f"{counted(sum(by_field.values()), 'value')} left out (on_invalid: drop; {fields}), "


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``1 record``, ``2 records``: a count with its noun."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


PLURALS = {"tags": "tag events", "ad_performance": "ad performance rows", "lookup rows": "lookup rows"}
"""How objects whose name is not a plain noun are named in the summary."""


def plural_of(object_name: str) -> str:
    """``contacts``, ``tag events``: what a stream's records become in SegMetrics."""
    return PLURALS.get(object_name, object_name + "s")


VERB_KINDS = ("answered ", "timed out")
"""Kinds of retry that read as a verb (``12 answered 429``): no plural."""


def _kinds(by_kind: t.Mapping[str, int]) -> str:
    """`` (29 answered 429, 8 dropped connections)``, or nothing without retries."""
    if not by_kind:
        return ""
    parts = [f"{n} {kind}" if kind.startswith(VERB_KINDS) else counted(n, kind) for kind, n in by_kind.items()]
    return f" ({', '.join(parts)})"


COUNTERS = (
    "received",
    "requests",
    "upserted",
    "unchanged",
    "deleted",
    "rejected",
    "skipped",
    "retries",
    "throttled",
    "remembered",
    "parked",
    "released",
    "expired",
    "replayed",
)
