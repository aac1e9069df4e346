"""The wire model: what a mapped record becomes, and the API calls that carry it.

A :class:`Mapped` record holds the :class:`Request` s to make in order, or the :class:`Problem` s
that say why it cannot be sent. The mapping builds them; the client sends them; the store and the
sinks remember and report them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import typing as t
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Problem:
    """Why a record cannot be sent: which field and what is wrong with it."""

    field: str
    reason: str
    waiting: str | None = None
    """Not wrong, only early: what it waits for (a lookup row): the record is parked, not rejected."""

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True)
class Request:
    """One API call: method, endpoint relative to the integration, JSON body."""

    method: str
    endpoint: str
    body: dict[str, t.Any] | None

    @functools.cached_property
    def data(self) -> bytes | None:
        """The body as sent (UTF-8 JSON), serialised once: for the wire and for the store's digest."""
        if self.body is None:
            return None
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class OwnTags:
    """A contact's own tags (``tags_mode: own``, shared with other streams): the tags its record gives,
    the stream they are the own tags of, and how ``tags/add`` names the contact. The requests after the
    upsert (``tags/remove`` of what the record says it is not, ``tags/add`` of its tags) are what is sent
    when the store does not know the contact's tags; when it does, only the difference is."""

    stream: str
    tags: list[t.Any]
    match: dict[str, t.Any]


@dataclass
class Mapped:
    """A record mapped for SegMetrics: the requests to make in order, or why it cannot be."""

    object_key: str | None
    identities: tuple[tuple[str, str, str], ...] = ()
    requests: list[Request] = field(default_factory=list)
    payload: dict[str, t.Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    skipped: str | None = None
    """Why nothing is sent for this record although nothing is wrong with it (``when``, no tags)."""
    delete: bool = False
    own_tags: OwnTags | None = None
    """``tags_mode: own`` with tags other streams set too: the tag requests are decided when sent."""

    @functools.cached_property
    def digest(self) -> str:
        """Exactly the requests the record makes (method, endpoint, body as sent), digested: what the
        store remembers once SegMetrics acknowledged it (``skip_unchanged``). Read once it is mapped."""
        digest = hashlib.blake2b(digest_size=16)
        for request in self.requests:
            digest.update(f"{request.method} {request.endpoint}\n".encode())
            digest.update(request.data or b"")
            digest.update(b"\n")
        return digest.hexdigest()

    @property
    def repeatable(self) -> bool:
        """Whether sending it twice changes nothing: not a delete, not a tag event (``object: tags``).

        A contact with ``tags_mode: add`` (upsert, then ``tags/remove`` and ``tags/add`` of tags computed
        from the record alone) is: the same record leaves the contact the same."""
        return not self.delete and not (self.requests and self.requests[0].endpoint.startswith("tags/"))

    def without(self, names: t.AbstractSet[str]) -> Mapped:
        """The same record without the fields ``names`` in its upsert (newer records set them), so
        SegMetrics keeps what they said; the record itself when there are none."""
        if not names:
            return self
        payload = {name: value for name, value in self.payload.items() if name not in names}
        requests = [Request(r.method, r.endpoint, payload) if r.body is self.payload else r for r in self.requests]
        return replace(self, payload=payload, requests=requests)
