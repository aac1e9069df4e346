"""What the run tells the user: rejected records (log line + rejects file) and the run summary."""

from __future__ import annotations

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
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._rejects_path = Path(rejects_path) if rejects_path else None
        self._rejects_file: t.IO[str] | None = None

    def count(self, stream: str, what: str, n: int = 1) -> None:
        """Add ``n`` to a stream's counter (received, sent, rejected, skipped, requests, retries)."""
        with self._lock:
            self.counts.setdefault(stream, Counter())[what] += n

    def total(self, what: str) -> int:
        """A counter summed over every stream."""
        with self._lock:
            return sum(counter[what] for counter in self.counts.values())

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
        line = serialize_json(
            {
                "stream": stream,
                "key": key,
                "rejected_by": by,
                "reasons": reasons,
                "record": record,
                "payload": payload,
            }
        )
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

    def summary(self) -> None:
        """Log one line per stream and a total."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        for stream, counter in sorted(self.counts.items()):
            self.logger.info(
                "Summary for stream '%s': %d received, %d sent, %d deleted, %d rejected, %d skipped, "
                "%d requests, %d retries",
                stream,
                counter["received"],
                counter["sent"] - counter["deleted"],
                counter["deleted"],
                counter["rejected"],
                counter["skipped"],
                counter["requests"],
                counter["retries"],
            )
        sent = self.total("sent")
        deleted = self.total("deleted")
        rejected = self.total("rejected")
        level = "warning" if rejected else "info"
        getattr(self.logger, level)(
            "Run finished in %.1fs: %d records sent to SegMetrics (%.1f/s), %d deleted, %d rejected, %d skipped%s",
            elapsed,
            sent - deleted,
            sent / elapsed,
            deleted,
            rejected,
            self.total("skipped"),
            f" (see the warnings above{' and ' + str(self._rejects_path) if self._rejects_path else ''})"
            if rejected
            else "",
        )
