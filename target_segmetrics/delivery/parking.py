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

from singer_sdk.singerlib.json import serialize_json

from target_segmetrics.delivery.maybe import MaybeSet
from target_segmetrics.delivery.replay import kept_key
from target_segmetrics.errors import REFUSALS
from target_segmetrics.mapping.nodes import is_empty
from target_segmetrics.mapping.values import ValueProblem, key_text

if t.TYPE_CHECKING:
    from target_segmetrics.delivery.delivery import Delivery
    from target_segmetrics.errors import RejectedError
    from target_segmetrics.mapping.compiler import LookupStream
    from target_segmetrics.mapping.wire import Mapped


def contact_missing(endpoint: str, exc: RejectedError) -> bool:
    """SegMetrics refused only because it does not hold the contact yet."""
    if endpoint.startswith("tags/"):
        return exc.status == 404
    if endpoint not in ("invoice", "subscription") or exc.status not in REFUSALS:
        return False
    return any("contact" in e.lower() and ("not exist" in e or "not found" in e) for e in exc.errors)


def contact_of(payload: t.Mapping[str, t.Any]) -> str:
    return ", ".join(f"{name} {payload[name]}" for name in ("contact_id", "email") if payload.get(name)) or "?"


class Parking:
    """Lookup rows and parked records of one run, kept in the delivery's store."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.input_ended = False
        self._lock = threading.Lock()
        # Versions: the order in which this run handed records over, on the parked records' clock (a
        # record sent after one was parked has a later version than the parked one's seq).
        self._version = delivery.store.parked_records.stamp
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
            self.delivery.store.parked_records.objects(self._keys.add, self._names.add)
        return self._keys

    def rows(self, stream: str, key: str) -> list[dict]:
        """The rows of a lookup stream kept under a key (what lookup sources read)."""
        return self.delivery.store.rows(stream, key)

    def may_wait(self, stream: str) -> bool:
        """Whether a row of ``stream`` may still come in this run (for ``"wait": "run"``)."""
        return stream in self.delivery.settings.lookups and not self.input_ended

    def remember_row(
        self, stream: str, lookup: LookupStream, key: str, record: t.Mapping[str, t.Any], *, keyed: bool = True
    ) -> None:
        """A row of a lookup stream: kept in the store under its key, not sent. A stream without key
        properties keeps one row per lookup key, the newest (never one per input line)."""
        try:
            found = lookup.key.evaluate(record, self.delivery.context)
        except ValueProblem as exc:
            self.delivery.reject(stream, key, record, None, [f"lookup.key: {exc}"], by="locally")
            return
        if is_empty(found):
            self.delivery.reject(
                stream, key, record, None, ["lookup.key: missing: a lookup row needs its key"], by="locally"
            )
            return
        text = key_text(found[0] if isinstance(found, list) and len(found) == 1 else found)
        self.delivery.store.put_row(stream, text, key if keyed else text, serialize_json(record))
        self.delivery.count(stream, "remembered")

    # --- versions ---------------------------------------------------------------------------------

    def newer(self, stream: str, key: str) -> None:
        """A record of ``stream`` and ``key`` was handed over (reader thread): what was parked for it
        before, and what a sender still holds of it, is superseded."""
        with self._lock:
            if (stream, key) in self._sending:
                self._sending[(stream, key)] = self._version()
            if hash((stream, key)) in self.keys:  # may be parked (a false yes deletes nothing)
                self.delivery.store.supersede(stream, key)

    def sending(self, stream: str, key: str, mapped: Mapped) -> int:
        """A record goes to a sender (reader thread): its version, and the fields it sets on an object
        a parked record names (newer than that record for them)."""
        with self._lock:
            version = self._version()
            self._sending[(stream, key)] = version
            if not self._names.empty:
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
        self.delivery.store.park(stream, obj, text, waiting, json.dumps(names, ensure_ascii=False))
        self.keys.add(hash((stream, obj)))
        for identity in names:
            self._names.add(hash(identity))
        self.delivery.count(stream, "parked")
        self.delivery.logger.debug("Parked record of stream '%s' (%s): waiting for %s", stream, obj, waiting)

    def _own(self, stream: str, mapped: Mapped) -> tuple[tuple[str, str, str], ...]:
        """What names the record's own object (an invoice's contact is another object)."""
        spec = self.delivery.settings.streams[stream].spec
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

    def release(self) -> None:
        """At the end of the input: every parked record is mapped again with the current mapping and
        sent when what it waited for is there; one parked too long goes to the rejects file."""
        self.input_ended = True  # a lookup that waits for the rest of the run only finds nothing now
        for page in self.delivery.store.parked():
            for row in page:
                self._release(*row)

    def _release(self, stream: str, obj: str, text: str, waiting: str, parked_at: float, seq: int) -> None:  # noqa: PLR0917
        delivery = self.delivery
        mapping = delivery.settings.streams.get(stream)
        if mapping is None:
            return  # its stream is not mapped now: it stays until it is (or the store is reset)
        record = json.loads(text)
        age, limit = time.time() - parked_at, delivery.settings.park_max_age_days
        if age > limit * 86400:
            reason = f"parked {age / 86400:.1f} days (park_max_age_days: {limit:g}), waiting for {waiting}"
            delivery.store.unpark(stream, obj, seq)
            delivery.count(stream, "expired")
            delivery.reject(stream, obj, record, None, [reason], by="after waiting")
            return
        mapped = mapping.map(record, delivery.context)
        still = sorted({p.waiting for p in mapped.problems if p.waiting})
        if still:
            delivery.store.still_waiting(stream, obj, seq, ", ".join(still))
            return
        newer = self._newer_fields(stream, obj, mapped, seq) if not (mapped.problems or mapped.skipped) else frozenset()
        if mapping.spec.name == "tags":  # a tag event sets no field of its contact: only a delete drops it
            newer &= {"*"}
        if mapped.problems or mapped.skipped or "*" in newer:
            delivery.store.unpark(stream, obj, seq)  # wrong now, not to be sent, or deleted since
        if mapped.problems:
            delivery.reject(stream, obj, record, mapped, [str(p) for p in mapped.problems], by="locally")
        elif not mapped.skipped and "*" not in newer:
            delivery.deliver(stream, mapping.spec, obj, record, mapped.without(newer), parked=seq)

    def note(self) -> None:
        """For the summary: what stays parked, waiting for what, and where."""
        count, waiting = self.delivery.store.parked_records.count()
        if not count:
            return
        waits = sorted({w.split("[")[0] if "[" in w else "their contact" for w in waiting})
        where = self.delivery.store.where  # never with the database password
        days = self.delivery.settings.park_max_age_days
        self.delivery.reporter.parked_note = (
            f"{count} record{'s' if count != 1 else ''} parked, waiting for {', '.join(waits)}: kept in "
            f"{where}, tried again at the end of each run (rejected after {days:g} days)"
        )
