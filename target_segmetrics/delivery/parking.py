"""What waits: lookup rows kept by key, and records parked until they can be sent.

A record that cannot be sent *yet* — its lookup found no row yet (the lookup stream may come later
in the run, or in a later run), or SegMetrics refused it only because it does not hold its contact
yet — is parked in the store instead of rejected. At the end of every run (:meth:`Parking.release`)
each parked record is mapped again with the current mapping and handed to the delivery when it
can go, ordered after everything earlier for the same contact; one parked longer than
``park_max_age_days`` goes to the rejects file with its reason. Parked records are durable in the
store, so STATE may pass them.
"""

from __future__ import annotations

import json
import time
import typing as t

from singer_sdk.singerlib.json import serialize_json

from target_segmetrics.errors import REFUSALS
from target_segmetrics.mapping.nodes import is_empty
from target_segmetrics.mapping.values import ValueProblem, key_text, storable_key

if t.TYPE_CHECKING:
    from target_segmetrics.delivery.delivery import Delivery
    from target_segmetrics.errors import RejectedError
    from target_segmetrics.mapping.compiler import LookupStream


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

    def rows(self, stream: str, key: str) -> list[dict]:
        """The rows of a lookup stream kept under a key (what lookup sources read)."""
        return self.delivery.store.rows(stream, key)

    def may_wait(self, stream: str) -> bool:
        """Whether a row of ``stream`` may still come in this run (for ``"wait": "run"``)."""
        return stream in self.delivery.settings.lookups and not self.input_ended

    def remember_row(self, stream: str, lookup: LookupStream, key: str, record: t.Mapping[str, t.Any]) -> None:
        """A row of a lookup stream: kept in the store under its key, not sent."""
        try:
            found = lookup.key.evaluate(record, self.delivery.context)
            one = found[0] if isinstance(found, list) and len(found) == 1 else found
            text = None if is_empty(found) else storable_key(key_text(one), "a lookup row")
        except ValueProblem as exc:
            self.delivery.reject(stream, key, record, None, [f"lookup.key: {exc}"], by="locally")
            return
        if text is None:
            self.delivery.reject(
                stream, key, record, None, ["lookup.key: missing: a lookup row needs its key"], by="locally"
            )
            return
        self.delivery.store.put_row(stream, text, key, serialize_json(record))
        self.delivery.count(stream, "remembered")

    def park(self, stream: str, obj: str, record: t.Mapping[str, t.Any], waiting: str) -> None:
        """A record that cannot be sent yet: kept in the store (durable before STATE passes it)."""
        self.delivery.store.park(stream, obj, serialize_json(record), waiting)
        self.delivery.count(stream, "parked")
        self.delivery.logger.debug("Parked record of stream '%s' (%s): waiting for %s", stream, obj, waiting)

    def release(self) -> None:
        """At the end of the input: every parked record is mapped again with the current mapping and
        sent when what it waited for is there; one parked too long goes to the rejects file."""
        self.input_ended = True  # a lookup that waits for the rest of the run only finds nothing now
        max_age = self.delivery.settings.park_max_age_days * 86400
        now = time.time()
        for stream, obj, text, waiting, parked_at in self.delivery.store.parked():
            mapping = self.delivery.settings.streams.get(stream)
            if mapping is None:
                continue  # its stream is not mapped now: it stays until it is (or the store is reset)
            record = json.loads(text)
            if now - parked_at > max_age:
                days = (now - parked_at) / 86400
                limit = self.delivery.settings.park_max_age_days
                reason = f"parked {days:.1f} days (park_max_age_days: {limit:g}), waiting for {waiting}"
                self.delivery.store.unpark(stream, obj)
                self.delivery.count(stream, "expired")
                self.delivery.reject(stream, obj, record, None, [reason], by="after waiting")
                continue
            mapped = mapping.map(record, self.delivery.context)
            still = sorted({p.waiting for p in mapped.problems if p.waiting})
            if still:
                self.delivery.store.still_waiting(stream, obj, ", ".join(still))
                continue
            if mapped.problems or mapped.skipped:
                self.delivery.store.unpark(stream, obj)
            if mapped.problems:
                self.delivery.reject(stream, obj, record, mapped, [str(p) for p in mapped.problems], by="locally")
            elif not mapped.skipped:
                self.delivery.deliver(stream, mapping.spec, obj, record, mapped, parked=True)

    def note(self) -> None:
        """For the summary: what stays parked, waiting for what, and where."""
        parked = self.delivery.store.parked()
        if not parked:
            return
        waits = sorted({waiting.split("[")[0] if "[" in waiting else "their contact" for *_, waiting, _ in parked})
        where = self.delivery.store.where  # never with the database password
        days = self.delivery.settings.park_max_age_days
        self.delivery.reporter.parked_note = (
            f"{len(parked)} record{'s' if len(parked) != 1 else ''} parked, waiting for {', '.join(waits)}: kept in "
            f"{where}, tried again at the end of each run (rejected after {days:g} days)"
        )
