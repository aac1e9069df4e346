"""What one record's mapping read besides the record: so an unchanged record is recognised before it is mapped.

A mapping is a function of the record, of the mapping itself (its config, the stream's schema, this code:
:func:`fingerprint`) and of what it reads through its :class:`~.nodes.Context`: the rows of a lookup key,
whether a lookup stream may still come in this run, and the counters it adds to. A :class:`Transcript`
is such a context that notes each of these as the mapping asks. Asked again of another context
(:func:`still_holds`), when every answer is the same, the same record's mapping would ask the same
questions in the same order (each one follows from the record and the answers before it) and so make
exactly the same requests: ``skip_unchanged`` need not map it again to know its digest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import typing as t
from importlib import metadata
from pathlib import Path

from target_segmetrics.mapping.nodes import Context

if t.TYPE_CHECKING:
    from target_segmetrics.mapping.nodes import Lookups

Call = tuple[t.Any, ...]
"""``("rows", stream, key, digest)``, ``("wait", stream, answer)`` or ``("count", stream, what)``."""


class Transcript:
    """A context that passes every question on to ``inner`` and notes it with its answer."""

    def __init__(self, inner: Context) -> None:
        self.inner = inner
        self.calls: list[Call] = []
        self.context = Context(lookups=self, count=self.count)
        """What the mapping is given."""

    def rows(self, stream: str, key: str) -> list[dict]:
        lookups = self.inner.lookups
        if lookups is None:
            self.calls.append(("rows", stream, key, None))
            return []
        rows = lookups.rows(stream, key)
        self.calls.append(("rows", stream, key, lookups.digest(stream, key)))
        return rows

    def may_wait(self, stream: str) -> bool:
        answer = self.inner.lookups is not None and self.inner.lookups.may_wait(stream)
        self.calls.append(("wait", stream, answer))
        return answer

    def digest(self, stream: str, key: str) -> str | None:
        return self.inner.lookups.digest(stream, key) if self.inner.lookups is not None else None

    def count(self, stream: str, what: str) -> None:
        self.calls.append(("count", stream, what))
        if self.inner.count is not None:
            self.inner.count(stream, what)

    @property
    def text(self) -> str:
        """The questions and answers, as the store keeps them."""
        return json.dumps(self.calls, separators=(",", ":"))  # ASCII: any text a store can keep


def still_holds(text: str, ctx: Context) -> bool:
    """Whether every question of a transcript (:attr:`Transcript.text`) gets the same answer from ``ctx``
    now; if so, what the mapping counted is counted again, as mapping the record would."""
    calls = json.loads(text)
    lookups: Lookups | None = ctx.lookups
    for call in calls:
        if call[0] == "rows":
            if (lookups.digest(call[1], call[2]) if lookups is not None else None) != call[3]:
                return False
        elif call[0] == "wait" and (lookups is not None and lookups.may_wait(call[1])) != call[2]:
            return False
    if ctx.count is not None:
        for call in calls:
            if call[0] == "count":
                ctx.count(call[1], call[2])
    return True


@functools.cache
def _code() -> str:
    """This target's code (but the sandbox's), the SDK's version and Python's, digested: another version maps
    anew (it may check, parse or map otherwise)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{sys.version}|singer-sdk {metadata.version('singer-sdk')}".encode())
    package = Path(__file__).resolve().parent.parent
    for path in sorted(package.rglob("*.py")):
        if "sandbox" not in path.relative_to(package).parts:
            digest.update(path.relative_to(package).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(
    stream: str, schema: t.Mapping[str, t.Any], keys: t.Sequence[str], mappings: t.Any, checks: t.Sequence[t.Any]
) -> bytes:
    """What a stream's records are checked and mapped with besides themselves and what the mapping reads: the
    code (this target's, the SDK's version, Python's), every mapping entry (how one stream is mapped can depend
    on the others), the stream's schema and key, and how its records are checked (``checks``: the SDK's
    ``validate_records`` and the like; a record known unchanged is not checked again)."""
    text = json.dumps([_code(), stream, schema, list(keys), mappings, list(checks)], sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def record_digest(prefix: bytes, record: t.Mapping[str, t.Any]) -> str:
    """A record as it came (its keys in their order, each value with its type), after its stream's
    :func:`fingerprint`."""
    digest = hashlib.blake2b(prefix, digest_size=16)
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=_typed)
    digest.update(text.encode("utf-8", "surrogatepass"))  # a lone surrogate too (the mapping rejects it)
    return digest.hexdigest()


def _typed(value: t.Any) -> str:
    """A value JSON has no type for (a parsed date-time, a Decimal): its type and text."""
    return f"\x00{type(value).__name__}:{value.isoformat() if hasattr(value, 'isoformat') else value}"
