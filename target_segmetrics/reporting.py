"""What the run tells the user: rejected records (log line + rejects file) and the run summary."""

from __future__ import annotations

import json
import reprlib
import threading
import time
import typing as t
from collections import Counter
from pathlib import Path

from singer_sdk.singerlib.json import serialize_json

if t.TYPE_CHECKING:
    import logging


class Reporter:
    """Counts per stream, rejected records, and the summary at the end of the run."""

    def __init__(self, logger: logging.Logger, rejects_path: str | None = None) -> None:
        self.logger = logger
        self.counts: dict[str, Counter[str]] = {}
        self.objects: dict[str, str | None] = {}
        self.started = time.monotonic()
        self._last_progress: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._rejects_path = Path(rejects_path) if rejects_path else None
        self._rejects_file: t.IO[str] | None = None
        self.parked_note: str | None = None
        """What is still parked at the end (how many, waiting for what, where), for the summary."""

    def describe(self, stream: str, object_name: str | None) -> None:
        """Which SegMetrics object a stream feeds (None: skipped)."""
        with self._lock:
            self.objects[stream] = object_name
            self.counts.setdefault(stream, Counter())

    def count(self, stream: str, what: str, n: int = 1) -> None:
        """Add ``n`` to a stream's counter: received, upserted, deleted, rejected, skipped,
        requests, retries, throttled (429 answers)."""
        with self._lock:
            self.counts.setdefault(stream, Counter())[what] += n

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
        self.logger.warning("Rejected record of stream '%s' (%s) %s: %s", stream, key, by, "; ".join(reasons))
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
        """Per stream: the object it feeds and every counter, plus elapsed time and rate."""
        elapsed = time.monotonic() - self.started
        with self._lock:
            out = {}
            for stream, counter in sorted(self.counts.items()):
                landed = counter["upserted"] + counter["deleted"]
                out[stream] = {
                    "object": self.objects.get(stream),
                    **{name: counter[name] for name in COUNTERS},
                    "elapsed_seconds": round(elapsed, 3),
                    "records_per_second": round(landed / elapsed, 1) if elapsed > 0 else 0.0,
                }
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
                "Progress of stream '%s': %d received, %d sent, %d rejected, %d retried, %.1f records/s now",
                stream,
                figures["received"],
                landed,
                figures["rejected"],
                figures["retries"],
                rate,
            )

    def summary(self, summary_path: str | None = None) -> None:
        """The run summary: a readable block in the log, and JSON in ``summary_path`` if set."""
        figures = self.snapshot()
        elapsed = time.monotonic() - self.started
        lines = [f"Run summary ({elapsed:.1f}s):"]
        for stream, row in figures.items():
            what = f"{row['object']}s" if row["object"] else "skipped (no mapping)"
            lines.append(
                f"  {stream} -> {what}: {row['received']} received, {row['requests']} requests sent, "
                f"{row['upserted']} created or updated, {row['unchanged']} unchanged, {row['deleted']} deleted, "
                f"{row['rejected']} rejected, "
                f"{row['skipped']} skipped, {row['retries']} retries, {row['throttled']} answered 429, "
                + (f"{row['remembered']} lookup rows kept, " if row["remembered"] else "")
                + (
                    f"{row['parked']} parked, {row['released']} released, {row['expired']} expired, "
                    if row["parked"] or row["released"] or row["expired"]
                    else ""
                )
                + f"{row['records_per_second']} records/s"
            )
        rejected = sum(row["rejected"] for row in figures.values())
        landed = sum(row["upserted"] + row["deleted"] for row in figures.values())
        lines.append(
            f"  total: {landed} records landed in SegMetrics, {rejected} rejected"
            + (
                f" (see the warnings above{' and ' + str(self._rejects_path) if self._rejects_path else ''})"
                if rejected
                else ""
            )
        )
        if self.parked_note:
            lines.append(f"  {self.parked_note}")
        (self.logger.warning if rejected else self.logger.info)("\n".join(lines))
        if summary_path:
            document = {
                "elapsed_seconds": round(elapsed, 3),
                "streams": figures,
                "totals": {name: sum(row[name] for row in figures.values()) for name in COUNTERS},
            }
            path = Path(summary_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


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
)
