"""``skip_unchanged``: a record SegMetrics already holds exactly is not sent again.

The store keeps, per object, a digest of the requests SegMetrics acknowledged (``store/digests.py``).
On the reader, a repeatable record (not a delete, not a tag event) whose digest is the one stored is
skipped, unless something in this run already touched its object (sent, queued, deleted, tagged):
a digest stands for what SegMetrics held before this run, so once the run touched the object only
sending is right. On the senders, what landed is remembered, and a delete forgets the object.
What a contact's own tags need is decided beside it, in ``tags.py``.

Most records of an incremental run are unchanged, and mapping one costs more than everything else done
with it. So a record of a stream with key properties is first looked for as it came (:class:`Seen`: its
digest with its mapping's fingerprint): when the store has it so, what its mapping read besides it gives
the same answers now (``mapping/transcript.py``), its object is untouched in this run, and SegMetrics
still holds what it made, it is unchanged without being mapped. Anything else maps it, as above.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

from target_segmetrics.mapping.transcript import Transcript, record_digest, still_holds

if t.TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable

    from target_segmetrics.mapping.nodes import Context
    from target_segmetrics.mapping.objects import ObjectSpec
    from target_segmetrics.mapping.wire import Mapped
    from target_segmetrics.store.store import Store


@dataclass(frozen=True)
class Seen:
    """A record as it came: its stream and key (for messages and the store), its digest after its
    stream's fingerprint, and the transcript its mapping writes (map it with ``transcript.context``)."""

    stream: str
    key: str
    digest: str
    transcript: Transcript


class Unchanged:
    """What the store says SegMetrics holds, per object: read on the reader, written as records land."""

    def __init__(self, store: Store, *, enabled: bool) -> None:
        self.store = store
        self.enabled = enabled
        """``skip_unchanged`` (never in a dry run): off, nothing is skipped nor remembered."""
        self._touched: set[int] = set()  # objects this run has sent something to (reader thread only)

    def seen(
        self, stream: str, fingerprint: bytes, key: str, record: t.Mapping[str, t.Any], ctx: Context
    ) -> Seen | None:
        """The record as it came, to be recognised (``ctx``: what its mapping reads); None when off."""
        if not self.enabled:
            return None
        return Seen(stream, key, record_digest(fingerprint, record), Transcript(ctx))

    def recognises(
        self, seen: Seen, linked: Callable[[tuple[Hashable, ...]], tuple[Hashable, ...]], ctx: Context
    ) -> bool:
        """Whether the record is unchanged, known without mapping it (reader thread): the store has it as it
        came, its object (``linked``: with what the input tied to it) is untouched in this run, and what its
        mapping read gives the same answers from ``ctx`` now."""
        found = self.store.recognised(seen.stream, seen.key, seen.digest)
        if found is None:
            return False
        transcript, identities = found
        keys = linked(tuple(tuple(identity) for identity in json.loads(identities)))
        return not self._touched_any(hash(key) for key in keys) and still_holds(transcript, ctx)

    def skips(self, spec: ObjectSpec, mapped: Mapped, keys: Iterable[Hashable], seen: Seen | None = None) -> bool:
        """Whether SegMetrics already holds exactly this record (reader thread); a record that is sent
        marks its object touched for the rest of the run. A record skipped is known as it came from then on."""
        if not self.enabled:
            return False
        touched = [hash(key) for key in keys]
        if (
            mapped.repeatable
            and mapped.object_key
            and not self._touched_any(touched)
            and self.store.unchanged(spec.name, mapped.object_key, mapped.digest)
        ):
            self._remember_seen(spec, mapped, seen)
            return True
        self._touched.update(touched)
        return False

    def landed(self, spec: ObjectSpec, mapped: Mapped, seen: Seen | None = None) -> None:
        """SegMetrics acknowledged every request of the record (a sender): remembered (with the record as
        it came, when ``seen``), or forgotten for a delete."""
        if not self.enabled or not mapped.object_key:
            return
        email = mapped.payload.get("email")
        email = str(email).strip().casefold() if email else None
        if mapped.delete:
            self.store.forget(spec.name, mapped.object_key, email)
        elif mapped.repeatable:
            self.store.remember(spec.name, mapped.object_key, email, mapped.digest)
            self._remember_seen(spec, mapped, seen)

    def _touched_any(self, hashes: Iterable[int]) -> bool:
        """Whether this run already sent something to any of these objects (their keys' hashes)."""
        return any(h in self._touched for h in hashes)

    def _remember_seen(self, spec: ObjectSpec, mapped: Mapped, seen: Seen | None) -> None:
        if seen is None or not mapped.object_key:
            return
        made = {
            "transcript": seen.transcript.text,
            "kind": spec.name,
            "object": mapped.object_key,
            "identities": json.dumps(mapped.identities),
            "made": mapped.digest,
        }
        self.store.remember_record(seen.stream, seen.key, seen.digest, made)
