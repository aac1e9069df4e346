"""What waits: lookup rows kept by key, and records parked until they can be sent.

A record that cannot be sent *yet* — its lookup found no row yet (the lookup stream may come later
in the run, or in a later run), or SegMetrics refused it only because it does not hold its contact
yet — is parked in the store instead of rejected. At the end of every run (:meth:`Parking.release`)
each parked record is mapped again with the current mapping and handed to the delivery when it
can go, ordered after everything earlier for the same contact; one parked longer than
``park_max_age_days`` goes to the rejects file with its reason. Parked records are durable in the
store, so STATE may pass them.

Newest wins. A parked record is one version of its object; any newer record of the same stream and key
(sent, parked, rejected, skipped or deleted, in this run or a later one) supersedes it, and a sender
parks a record SegMetrics refused only if no newer version was handed over meanwhile. A newer record of
another stream naming the same object (an unsubscribe by email while the contact waits for a list's
name) is newer for the fields it sent: the release leaves them out, and a delete drops the release. A
release acts only on the version it read (see ``store/parked.py``).
"""

from __future__ import annotations

import json
import threading
import time
import typing as t
from dataclasses import dataclass

from singer_sdk.singerlib.json import serialize_json

from target_segmetrics.delivery.maybe import MaybeSet
from target_segmetrics.delivery.replay import kept_key
from target_segmetrics.errors import REFUSALS
from target_segmetrics.mapping.nodes import Context, is_empty
from target_segmetrics.mapping.values import ValueProblem, key_text, storable_key

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from target_segmetrics.config.settings import Settings
    from target_segmetrics.errors import RejectedError
    from target_segmetrics.mapping.compiler import LookupStream
    from target_segmetrics.mapping.mapping import StreamMapping
    from target_segmetrics.mapping.wire import Mapped
    from target_segmetrics.store.store import Store


def contact_missing(endpoint: str, exc: RejectedError) -> bool:
    """SegMetrics refused only because it does not hold the contact yet."""
    if endpoint.startswith("tags/"):
        return exc.status == 404
    if endpoint not in ("invoice", "subscription") or exc.status not in REFUSALS:
        return False
    return any("contact" in e.lower() and ("not exist" in e or "not found" in e) for e in exc.errors)


def contact_of(payload: t.Mapping[str, t.Any]) -> str:
    return ", ".join(f"{name} {payload[name]}" for name in ("contact_id", "email") if payload.get(name)) or "?"


@dataclass(frozen=True)
class Hands:
    """What records that wait (parked, kept for replay) are handed back to: the delivery's counters,
    its rejections and its sends, and how a stream is mapped in this run. Handed in, never reached for."""

    count: Callable[..., None]
    """``(stream, what, n=1)``: add to a stream's counter."""
    reject: Callable[..., None]
    """``(stream, key, record, mapped, reasons, *, by)``: report a record not sent (and keep it for replay)."""
    deliver: Callable[..., None]
    """``(stream, spec, key, record, mapped, *, parked=, replayed=)``: send a mapped record."""
    mapping_of: Callable[..., StreamMapping | None]
    """``(stream, *, routed=False)``: how a stream's records are mapped in this run."""
    park: Callable[..., None] = lambda *_args, **_kw: None
    """``(stream, key, record, waiting)``: park a record (for the replay: the parking's own)."""


@dataclass(frozen=True)
class Versions:
    """Which version of its object a record on its way is: the parked one read (released), the kept one
    read (replayed), and its place among the records this run handed over."""

    parked: int | None = None
    replayed: int | None = None
    version: int = 0


class Parking:
    """Lookup rows and parked records of one run, kept in the delivery's store."""

    def __init__(self, store: Store, settings: Settings, logger: logging.Logger, hands: Hands) -> None:
        self.store = store
        self.settings = settings
        self.logger = logger
        self.hands = hands
        self.context = Context(lookups=self, count=hands.count)
        """What mappings read besides the record: lookup rows (this object), the counters."""
        self.input_ended = False
        self._lock = threading.Lock()
        # Versions: the order in which this run handed records over, on the parked records' clock (a
        # record sent after one was parked has a later version than the parked one's seq).
        self._version = store.parked_records.stamp
        self._started = self._version()  # a parked record with an earlier seq was parked by an earlier run
        self._sending: dict[tuple[str, str], int] = {}  # (stream, key) -> newest version a sender holds
        # What may be parked, in fixed memory however many records wait (read on first use):
        self._keys: MaybeSet | None = None  # hash((stream, object)) of every parked record
        self._names = MaybeSet()  # hash(identity) of what parked records name
        self._sent: dict[int, list[tuple[int, frozenset[str]]]] = {}  # identity -> (version, fields) sent

    @property
    def keys(self) -> MaybeSet:
        if self._keys is None:
            self._keys = MaybeSet()
            self.store.parked_records.objects(self._keys.add, self._names.add)
        return self._keys

    def rows(self, stream: str, key: str) -> list[dict]:
        """The rows of a lookup stream kept under a key (what lookup sources read)."""
        return self.store.rows(stream, key)

    def digest(self, stream: str, key: str) -> str:
        """What :meth:`rows` finds under ``key`` now, digested (recognising an unchanged record)."""
        return self.store.lookups.digest(stream, key)

    def may_wait(self, stream: str) -> bool:
        """Whether a row of ``stream`` may still come in this run (for ``"wait": "run"``)."""
        return stream in self.settings.lookups and not self.input_ended

    def remember_row(
        self, stream: str, lookup: LookupStream, key: str, record: t.Mapping[str, t.Any], *, keyed: bool = True
    ) -> None:
        """A row of a lookup stream: kept in the store under its key, not sent. A stream without key
        properties keeps one row per lookup key, the newest (never one per input line)."""
        try:
            found = lookup.key.evaluate(record, self.context)
            one = found[0] if isinstance(found, list) and len(found) == 1 else found
            text = None if is_empty(found) else storable_key(key_text(one), "a lookup row")
        except ValueProblem as exc:
            self.hands.reject(stream, key, record, None, [f"lookup.key: {exc}"], by="locally")
            return
        if text is None:
            self.hands.reject(
                stream, key, record, None, ["lookup.key: missing: a lookup row needs its key"], by="locally"
            )
            return
        self.store.put_row(stream, text, key if keyed else text, serialize_json(record))
        self.hands.count(stream, "remembered")

    # --- versions ---------------------------------------------------------------------------------

    def newer(self, stream: str, key: str) -> None:
        """A record of ``stream`` and ``key`` was handed over (reader thread): what was parked for it
        before, and what a sender still holds of it, is superseded."""
        with self._lock:
            if (stream, key) in self._sending:
                self._sending[(stream, key)] = self._version()
            if hash((stream, key)) in self.keys:  # may be parked (a false yes deletes nothing)
                self.store.supersede(stream, key)

    def sending(self, stream: str, key: str, mapped: Mapped) -> int:
        """A record goes to a sender (reader thread): its version, and the fields it sets on an object
        a parked record names (newer than that record for them)."""
        with self._lock:
            version = self._version()
            self._sending[(stream, key)] = version
            if not self._names.empty and (mapped.repeatable or mapped.delete):  # a tag event sets no field
                fields = frozenset(("*",) if mapped.delete else mapped.payload)
                for identity in self._own(stream, mapped):
                    if (h := hash(identity)) in self._names:
                        self._sent.setdefault(h, []).append((version, fields))
            return version

    def sent(self, stream: str, key: str, version: int) -> None:
        """A sender is done with a version (landed, rejected or parked)."""
        with self._lock:
            if self._sending.get((stream, key)) == version:
                del self._sending[(stream, key)]

    # --- parking ----------------------------------------------------------------------------------

    def park(
        self, stream: str, key: str, record: t.Mapping[str, t.Any], waiting: str, mapped: Mapped | None = None
    ) -> None:
        """A record that cannot be sent yet: kept in the store (durable before STATE passes it)."""
        with self._lock:
            self._park(stream, key, record, waiting, mapped)

    def park_refused(
        self, stream: str, key: str, record: t.Mapping[str, t.Any], waiting: str, mapped: Mapped, *, version: int
    ) -> bool:
        """SegMetrics refused a record for want of its contact (a sender): parked, unless a newer version
        of it was handed over meanwhile (that one decides). True when parked."""
        with self._lock:
            if self._sending.get((stream, key)) != version:
                return False
            self._park(stream, key, record, waiting, mapped)
            return True

    def _park(self, stream: str, key: str, record: t.Mapping[str, t.Any], waiting: str, mapped: Mapped | None) -> None:
        text = serialize_json(record)
        obj = kept_key(key, text)  # a record with no key: by what it holds, never by its input line
        names = self._own(stream, mapped) if mapped is not None else ()
        self.store.park(stream, obj, text, waiting, json.dumps(names, ensure_ascii=False))
        self.keys.add(hash((stream, obj)))
        for identity in names:
            self._names.add(hash(identity))
        self.hands.count(stream, "parked")
        self.logger.debug("Parked record of stream '%s' (%s): waiting for %s", stream, obj, waiting)

    def _own(self, stream: str, mapped: Mapped) -> tuple[tuple[str, str, str], ...]:
        """What names the record's own object (an invoice's contact is another object)."""
        mapping = self.hands.mapping_of(stream)
        assert mapping is not None  # a record of it was parked or sent
        spec = mapping.spec
        family = spec.family or spec.name
        return tuple(identity for identity in mapped.identities if identity[0] == family)

    def _newer_fields(self, stream: str, obj: str, mapped: Mapped, seq: int) -> frozenset[str]:
        """What records sent after the version ``seq`` was parked set on its object (``*``: deleted it);
        parked by an earlier run: every record sent this run."""
        since = seq if seq >= self._started else 0
        own = self._own(stream, mapped)
        with self._lock:
            sent = [fields for i in own for v, fields in self._sent.get(hash(i), ()) if v > since]
        fields = {name for names in sent for name in names}
        return frozenset(fields - {identity[1] for identity in own})

    # --- the end of the input ---------------------------------------------------------------------

    def wait_for_contact(
        self, stream: str, key: str, record: t.Mapping[str, t.Any], mapped: Mapped, versions: Versions
    ) -> bool:
        """SegMetrics refused the record only because it does not hold its contact yet (a sender): parked,
        on disk before the record counts as landed (STATE may pass it), unless a newer version of it was
        handed over meanwhile; one released from the store keeps its place and its age. True when it was
        parked now (one replayed is then no longer to be kept for replay)."""
        waiting = f"its contact ({contact_of(mapped.payload)}) in SegMetrics"
        if versions.parked is not None:
            self.store.still_waiting(stream, key, versions.parked, waiting)
            return False
        if not self.park_refused(stream, key, record, waiting, mapped, version=versions.version):
            return False
        self.store.write_parked()
        return True

    def release(self) -> None:
        """At the end of the input: every parked record is mapped again with the current mapping and
        sent when what it waited for is there; one parked too long goes to the rejects file."""
        self.input_ended = True  # a lookup that waits for the rest of the run only finds nothing now
        for page in self.store.parked():
            for row in page:
                self._release(*row)

    def _release(self, stream: str, obj: str, text: str, waiting: str, parked_at: float, seq: int) -> None:  # noqa: PLR0917
        mapping = self.hands.mapping_of(stream)
        if mapping is None:
            return  # its stream is not mapped now: it stays until it is (or the store is reset)
        record = json.loads(text)
        age, limit = time.time() - parked_at, self.settings.park_max_age_days
        if age > limit * 86400:
            reason = f"parked {age / 86400:.1f} days (park_max_age_days: {limit:g}), waiting for {waiting}"
            self.store.unpark(stream, obj, seq)
            self.hands.count(stream, "expired")
            self.hands.reject(stream, obj, record, None, [reason], by="after waiting")
            return
        mapped = mapping.map(record, self.context)
        still = sorted({p.waiting for p in mapped.problems if p.waiting})
        if still:
            self.store.still_waiting(stream, obj, seq, ", ".join(still))
            return
        newer = self._newer_fields(stream, obj, mapped, seq) if not (mapped.problems or mapped.skipped) else frozenset()
        if mapping.spec.name == "tags":  # a tag event sets no field of its contact: only a delete drops it
            newer &= {"*"}
        if mapped.problems or mapped.skipped or "*" in newer:
            self.store.unpark(stream, obj, seq)  # wrong now, not to be sent, or deleted since
        if mapped.problems:
            self.hands.reject(stream, obj, record, mapped, [str(p) for p in mapped.problems], by="locally")
        elif not mapped.skipped and "*" not in newer:
            self.hands.deliver(stream, mapping.spec, obj, record, mapped.without(newer), parked=seq)

    def note(self) -> str | None:
        """For the summary: what stays parked, waiting for what, and where."""
        count, waiting = self.store.parked_records.count()
        if not count:
            return None
        waits = sorted({w.split("[")[0] if "[" in w else "their contact" for w in waiting})
        where = self.store.where  # never with the database password
        days = self.settings.park_max_age_days
        return (
            f"{count} record{'s' if count != 1 else ''} parked, waiting for {', '.join(waits)}: kept in "
            f"{where}, tried again at the end of each run (rejected after {days:g} days)"
        )
