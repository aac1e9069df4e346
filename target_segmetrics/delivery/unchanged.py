"""``skip_unchanged``: a record SegMetrics already holds exactly is not sent again.

The store keeps, per object, a digest of the requests SegMetrics acknowledged (``store/digests.py``).
On the reader, a repeatable record (not a delete, not a tag event) whose digest is the one stored is
skipped, unless something in this run already touched its object (sent, queued, deleted, tagged):
a digest stands for what SegMetrics held before this run, so once the run touched the object only
sending is right. On the senders, what landed is remembered, and a delete forgets the object.
What a contact's own tags need is decided beside it, in ``tags.py``.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Hashable, Iterable

    from target_segmetrics.mapping.objects import ObjectSpec
    from target_segmetrics.mapping.wire import Mapped
    from target_segmetrics.store.store import Store


class Unchanged:
    """What the store says SegMetrics holds, per object: read on the reader, written as records land."""

    def __init__(self, store: Store, *, enabled: bool) -> None:
        self.store = store
        self.enabled = enabled
        """``skip_unchanged`` (never in a dry run): off, nothing is skipped nor remembered."""
        self._touched: set[int] = set()  # objects this run has sent something to (reader thread only)

    def skips(self, spec: ObjectSpec, mapped: Mapped, keys: Iterable[Hashable]) -> bool:
        """Whether SegMetrics already holds exactly this record (reader thread); a record that is sent
        marks its object touched for the rest of the run."""
        if not self.enabled:
            return False
        touched = [hash(key) for key in keys]
        if (
            mapped.repeatable
            and mapped.object_key
            and not any(h in self._touched for h in touched)
            and self.store.unchanged(spec.name, mapped.object_key, mapped.digest)
        ):
            return True
        self._touched.update(touched)
        return False

    def landed(self, spec: ObjectSpec, mapped: Mapped) -> None:
        """SegMetrics acknowledged every request of the record (a sender): remembered, or forgotten
        for a delete."""
        if not self.enabled or not mapped.object_key:
            return
        email = mapped.payload.get("email")
        email = str(email).strip().casefold() if email else None
        if mapped.delete:
            self.store.forget(spec.name, mapped.object_key, email)
        elif mapped.repeatable:
            self.store.remember(spec.name, mapped.object_key, email, mapped.digest)
