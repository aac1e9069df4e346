"""Replay: a rejected record is kept, and sent once the mapping is fixed.

A record rejected locally (its mapping gives a value SegMetrics would refuse) or by SegMetrics (a
4xx answer) is kept in the store with a digest of what was refused, like a parked record. At the
end of every later run (:meth:`Replay.release`) each is mapped again with the current mapping:

- it maps to exactly what was refused (the same reasons and payload, or the same requests
  SegMetrics refused): nothing is sent, nothing is said; an unchanged mapping costs no request;
- it maps to something else: sent (it leaves the store once SegMetrics acknowledges it, and the
  summary counts it ``replayed``), or rejected again for the new reasons (and kept with them);
- it now waits for a lookup row: parked; its ``when`` is no longer met: dropped.

Newest wins: a newer record of the same object (same stream and key), sent, parked or skipped, in
this run or a later one, supersedes the kept one; a release acts only on the exact version it read
(compare-and-delete on the version's ``seq``). One kept longer than ``park_max_age_days`` is
dropped (the rejects file has it). The rejects file still gets every rejection.
"""

from __future__ import annotations

import hashlib
import json
import time
import typing as t

from singer_sdk.singerlib.json import deserialize_json, serialize_json

from target_segmetrics.delivery.maybe import MaybeSet
from target_segmetrics.reporting_reasons import said_once

if t.TYPE_CHECKING:
    import logging

    from target_segmetrics.config.settings import Settings
    from target_segmetrics.delivery.parking import Hands
    from target_segmetrics.mapping.nodes import Context
    from target_segmetrics.mapping.wire import Mapped
    from target_segmetrics.store.store import Store

REPLAYED_BY = "locally (kept from an earlier run, mapped again)"


def refused_digest(reasons: t.Sequence[str], mapped: Mapped) -> str:
    """What a local rejection refused: its reasons and the payload they are about."""
    digest = hashlib.blake2b(digest_size=16)
    # surrogatepass: SegMetrics' words may hold a lone surrogate; the digest of valid text is unchanged
    digest.update(json.dumps(list(reasons), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    digest.update(
        json.dumps(mapped.payload, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")
    )
    return "local:" + digest.hexdigest()


def kept_key(key: str, record_text: str) -> str:
    """The object a kept record stands for: its key, or (a record with no key, named by its input line)
    a digest of the record itself, never a line number another run would reuse."""
    if not key.startswith("line "):
        return key
    return "record " + hashlib.blake2b(record_text.encode(), digest_size=12).hexdigest()


class Replay:
    """The rejected records kept in the delivery's store, and their replay at the end of each run."""

    def __init__(
        self, store: Store, settings: Settings, logger: logging.Logger, hands: Hands, context: Context
    ) -> None:
        self.store = store
        self.context = context
        """What mappings read besides the record: the lookup rows the store holds (the parking's)."""
        self.settings = settings
        self.logger = logger
        self.hands = hands
        # hash((stream, object)) of what may be kept, in fixed memory (read once on first use)
        self._known: MaybeSet | None = None
        # A record kept with a later seq was kept by this run: its mapping is the one that refused it.
        self._started = store.rejected.stamp()

    def keep(
        self, stream: str, key: str, record: t.Mapping[str, t.Any], mapped: Mapped, reasons: list[str], *, by: str
    ) -> None:
        """A rejected record: kept with a digest of what was refused (a newer one of the object replaces it).
        Refused by SegMetrics (on a sender): written at once, before it counts as landed."""
        try:
            text = serialize_json(record)
        except (RecursionError, ValueError, TypeError):
            return  # not JSON (nested too deep): it cannot be kept; the rejects file says why
        local = not by.startswith("by SegMetrics")
        digest = refused_digest(reasons, mapped) if local else mapped.digest
        obj = kept_key(key, text)
        table = self.store.rejected
        table.keep(stream, obj, text, json.dumps(reasons), digest)  # ASCII: both back ends keep any reason
        self.known.add(hash((stream, obj)))
        if not local:
            table.write()

    @property
    def known(self) -> MaybeSet:
        if self._known is None:
            self._known = MaybeSet()
            self.store.rejected.objects(self._known.add)
        return self._known

    def superseded(self, stream: str, key: str) -> None:
        """A newer record of this object was sent, parked or skipped: whatever was kept for it goes
        (when nothing is, a false yes of ``known``, the drop deletes nothing)."""
        if hash((stream, key)) in self.known:
            self.store.rejected.drop(stream, key)

    def landed(self, stream: str, key: str, seq: int, *, count: bool = True) -> None:
        """A replayed record was acknowledged (or is held otherwise now): the version read leaves the store."""
        self.store.rejected.drop(stream, key, seq=seq)
        if count:
            self.hands.count(stream, "replayed")

    def release(self) -> None:
        """At the end of the run: every kept record mapped again with the current mapping; sent only
        when it maps to something other than what was refused."""
        store = self.store.rejected
        max_age = self.settings.park_max_age_days * 86400
        now = time.time()
        expired = 0
        for stream, obj, text, digest, kept_at, seq in store.kept():
            mapping = self.hands.mapping_of(stream)  # as routed in this run (tags_mode own: by its schema)
            if mapping is None or seq >= self._started:
                continue  # its stream is not mapped now (it stays until it is), or this run refused it
            if mapping.tags_mode == "own" and self.hands.mapping_of(stream, routed=True) is None:
                continue  # how its tags go depends on its schema (tagsets.py): replayed by a run that reads it
            if now - kept_at > max_age:
                store.drop(stream, obj, seq=seq)
                expired += 1
                continue
            record = deserialize_json(text)  # numbers as the reader read them (Decimal)
            mapped = mapping.map(record, self.context)
            waiting = sorted({p.waiting for p in mapped.problems if p.waiting})
            if waiting:
                store.drop(stream, obj, seq=seq)
                self.hands.park(stream, obj, record, ", ".join(waiting))
            elif mapped.problems:
                reasons = said_once(mapped.problems)
                if refused_digest(reasons, mapped) != digest:
                    self.hands.reject(stream, obj, record, mapped, reasons, by=REPLAYED_BY)
            elif mapped.skipped:
                store.drop(stream, obj, seq=seq)
            elif mapped.digest != digest:
                self.hands.deliver(stream, mapping.spec, obj, record, mapped, replayed=seq)
        if expired:
            days = self.settings.park_max_age_days
            self.logger.info(
                "%d rejected records kept for replay were older than park_max_age_days (%g) and are no longer "
                "kept (the rejects file has them)",
                expired,
                days,
            )

    def note(self) -> str | None:
        """For the summary: how many rejected records are kept for replay, and where."""
        kept = self.store.rejected.count()
        if not kept:
            return None
        return (
            f"{kept} rejected record{'s' if kept != 1 else ''} kept in {self.store.where} for replay: "
            "fix the mapping and run again (each is mapped again at the end of every run and sent when it "
            f"maps to something other than what was refused; dropped after "
            f"{self.settings.park_max_age_days:g} days)"
        )
