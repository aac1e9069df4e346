"""A contact's tag requests, decided when it is sent: only what a change needs, side by side.

A contact stream with ``tags_mode: own`` whose contacts other streams tag too (``mapping/tagsets.py``)
maps each record to its upsert, ``tags/remove`` of what the record says the contact is not, and
``tags/add`` of its own tags: what makes SegMetrics right whatever it held. With ``skip_unchanged``
the store remembers, per contact, the own tags SegMetrics acknowledged (``store/tags.py``); when it
knows them, the upsert is followed only by the difference: ``tags/remove`` of the tags it gave before
and no longer gives (a custom stage's too), ``tags/add`` of the new or re-dated ones; nothing when
they are the same. The two tag requests touch different tags, so they go side by side.

Decided on the sender, once every earlier record of the contact has landed (the dispatcher keeps
their order): what the store knows is what SegMetrics acknowledged up to this record. Before a
request changes tags the store remembers (a difference, a ``tags/remove`` event, a contact sent with
``tags`` that replace them, a delete), the contact is forgotten on disk first, so a run cut off in
between costs requests next time, never a wrong tag.
"""

from __future__ import annotations

import typing as t
from concurrent.futures import ThreadPoolExecutor

from target_segmetrics.errors import RejectedError
from target_segmetrics.mapping.objects import TAG_EVENTS
from target_segmetrics.mapping.values import tag_identity
from target_segmetrics.mapping.wire import Request

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from target_segmetrics.http.client import SegMetricsClient
    from target_segmetrics.mapping.objects import ObjectSpec
    from target_segmetrics.mapping.wire import Mapped
    from target_segmetrics.store.tags import ContactTags

Step = tuple[Request, ...]
"""Requests sent side by side; the steps of a record one after the other."""


def contact_key(match: t.Mapping[str, t.Any]) -> str:
    """How the store names a contact: ``contact_id=<id>``, else ``email=<email>``."""
    if match.get("contact_id") not in (None, ""):
        return f"contact_id={str(match['contact_id']).strip()}"
    return f"email={str(match.get('email') or '').strip().casefold()}"


def difference(known: list[t.Any], tags: list[t.Any], match: dict[str, t.Any]) -> list[Request]:
    """From the own tags SegMetrics holds to ``tags``: what to remove, what to add (or re-date)."""
    before = {tag_identity(tag): tag for tag in known}
    now = {tag_identity(tag): tag for tag in tags}
    gone = [_without_date(tag) for identity, tag in before.items() if identity not in now]
    added = [tag for identity, tag in now.items() if before.get(identity) != tag]
    requests = []
    if gone:
        requests.append(Request("POST", "tags/remove", {**match, "tags": gone}))
    if added:
        requests.append(Request("POST", "tags/add", {**match, "tags": added}))
    return requests


def _without_date(tag: t.Any) -> t.Any:
    return {k: v for k, v in tag.items() if k in ("id", "name")} if isinstance(tag, dict) else tag


def _email(mapped: Mapped) -> str | None:
    email = mapped.payload.get("email")
    return str(email).strip().casefold() if email else None


class TagPlans:
    """The steps of each record's requests, and what the store learns once they landed."""

    def __init__(self, memory: ContactTags | None, *, read: bool = True) -> None:
        self.memory = memory
        """None: nothing is remembered (``skip_unchanged`` off, a dry run)."""
        self.read = read
        """False (``full_resend``): what the store knows is not used, only updated."""

    def steps(self, spec: ObjectSpec, mapped: Mapped) -> list[Step]:
        """The record's requests in steps (on the sender, in the contact's order)."""
        own = mapped.own_tags
        memory = self.memory
        if own is None:
            if memory is not None and self._replaces_tags(spec, mapped):
                memory.forget_now(contact_key(mapped.payload), _email(mapped))
            return [(request,) for request in mapped.requests]
        upsert, tag_requests = mapped.requests[0], tuple(mapped.requests[1:])
        known = memory.known(contact_key(own.match), own.stream) if memory is not None and self.read else None
        if known is not None:
            tag_requests = tuple(difference(known, own.tags, own.match))
            if tag_requests:
                memory.forget_now(contact_key(own.match), None)  # type: ignore[union-attr]
        return [(upsert,), tag_requests] if tag_requests else [(upsert,)]

    @staticmethod
    def _replaces_tags(spec: ObjectSpec, mapped: Mapped) -> bool:
        """A request that may take away tags the store remembers: a ``tags/remove`` event, a contact sent
        with ``tags`` (they replace its tags), a contact delete."""
        if spec is TAG_EVENTS:
            return any(request.endpoint == "tags/remove" for request in mapped.requests)
        return (spec.family or spec.name) == "contact" and (mapped.delete or "tags" in mapped.payload)

    def landed(self, mapped: Mapped) -> None:
        """Every request of the record was acknowledged: its own tags are what SegMetrics holds."""
        own = mapped.own_tags
        if self.memory is not None and own is not None:
            self.memory.remember(contact_key(own.match), own.stream, _email(mapped), own.tags)

    def refused(self, mapped: Mapped) -> None:
        """A request of the record was refused or failed: what SegMetrics holds is not known."""
        own = mapped.own_tags
        if self.memory is not None and own is not None:
            self.memory.forget_now(contact_key(own.match), None)


class SideBySide:
    """Sends the requests of one step at once (the first on the caller's thread); every request still
    passes the client's gate, so no more than ``max_concurrency`` are in flight."""

    def __init__(self, workers: int) -> None:
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None

    def send(
        self,
        client: SegMetricsClient,
        step: Step,
        on_try: Callable[[], None],
        on_retry: Callable[..., None],
    ) -> list[tuple[Request, RejectedError]]:
        """Send a step; the requests SegMetrics refused, with its answer (fatal errors raise)."""

        def one(request: Request) -> tuple[Request, RejectedError] | None:
            try:
                client.send(request, on_try=on_try, on_retry=on_retry)
            except RejectedError as exc:
                return request, exc
            return None

        if len(step) == 1:
            outcome = one(step[0])
            return [outcome] if outcome else []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="segmetrics-tags")
        others = [self._pool.submit(one, request) for request in step[1:]]
        outcomes = [one(step[0])]
        outcomes += [future.result() for future in others]
        return [outcome for outcome in outcomes if outcome is not None]

    def close(self, *, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
