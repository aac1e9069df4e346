"""Many requests in flight, order kept per SegMetrics object, STATE checkpointed as records land.

:class:`Dispatcher` runs each record's requests on a pool of worker threads. A record names the
SegMetrics objects it touches (its *keys*: ``contact_id`` and ``email`` for a contact, because the
API matches on either; an invoice's id and the contact it names). Keys that pending records share
are one *identity*: contact 1 seen with ``a@x`` and later ``a@x`` seen alone are one contact, even
for a record that carries only the id. Records of one identity are applied one after the other in
input order; records of different identities go in parallel. Keys are remembered while any of
their records is pending; for contacts, what ties an id to an email is remembered for the whole
run (:class:`Links`, about 200 bytes per contact: the caller adds what it knows to the keys).
A contact delete is a barrier: it waits for every earlier contact record, and every later one
waits for it. At most ``window`` records are pending at once: the reader blocks beyond that, so memory stays flat
however long the input is.

:class:`Checkpoints` numbers every record that is sent and remembers where each STATE message
arrived. A STATE is passed on once every record received before it has been acknowledged (or
rejected and reported), at most every ``interval`` seconds or every ``every`` records, and at the
end. A record that never landed (abandoned after a fatal error or a signal) holds back every STATE
after it for good.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import typing as t
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor

from singer_sdk.singerlib.json import serialize_json

from target_segmetrics.errors import FatalError
from target_segmetrics.reader import StateText

if t.TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable


class Links:
    """Which keys the input has tied together this run (union-find over the keys' hashes).

    Only keys of the ``families`` given (contacts: ``contact_id`` and ``email``) are linked; a key
    that was never tied to another costs nothing. Two different keys with one hash are tied by
    mistake: that only orders more records one after the other, never fewer.
    """

    def __init__(self, families: Iterable[str] = ("contact",)) -> None:
        self._families = frozenset(families)
        self._parent: dict[int, int] = {}

    def _root(self, node: int) -> int:
        parent = self._parent
        root = node
        while root in parent:
            root = parent[root]
        while node != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def expand(self, keys: tuple[Hashable, ...]) -> tuple[Hashable, ...]:
        """``keys`` tied together, plus what stands for everything tied to them before and now."""
        linked = [hash(key) for key in keys if isinstance(key, tuple) and key and key[0] in self._families]
        if not linked:
            return keys
        before = {self._root(node) for node in linked}
        now = min(before)
        for root in before:
            if root != now:
                self._parent[root] = now
        return (*keys, *(("linked", root) for root in before))


class _Identity:
    """Keys that pending records tied together, and the latest record (the tail) to wait for."""

    __slots__ = ("keys", "merged_into", "pending", "tail")

    def __init__(self) -> None:
        self.keys: set[Hashable] = set()
        self.tail: _Op | None = None
        self.pending = 0
        self.merged_into: _Identity | None = None

    def root(self) -> _Identity:
        identity = self
        while identity.merged_into is not None:
            identity = identity.merged_into
        return identity


class _Op:
    __slots__ = ("dependents", "done", "family", "fn", "group", "identity", "keys", "on_done", "waiting")

    def __init__(
        self,
        group: str,
        keys: tuple[Hashable, ...],
        fn: Callable[[], None],
        on_done: Callable[[bool], None],
    ) -> None:
        self.group = group
        self.keys = keys
        self.fn = fn
        self.on_done = on_done
        self.waiting = 0
        self.dependents: list[_Op] = []
        self.done = False
        self.family: str | None = None
        self.identity: _Identity | None = None


class Dispatcher:
    """Runs work items concurrently, in input order per key, with a bounded backlog."""

    def __init__(self, workers: int, window: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="segmetrics-send")
        self._window = threading.Semaphore(max(1, window))
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._identities: dict[Hashable, _Identity] = {}
        self._families: dict[str, set[_Op]] = {}
        self._barriers: dict[str, _Op] = {}
        self._pending: Counter[str] = Counter()
        self._running = 0
        self.fatal: BaseException | None = None
        self.stopping = False

    def submit(
        self,
        group: str,
        keys: Iterable[Hashable],
        fn: Callable[[], None],
        on_done: Callable[[bool], None],
        *,
        family: str | None = None,
        after_family: str | None = None,
        barrier: bool = False,
    ) -> None:
        """Queue ``fn`` after every earlier item of the same identity; blocks while the window is full.

        ``family`` names the kind of object the item writes; ``after_family`` makes it wait for every
        earlier item of that family (an invoice naming a contact_id waits for all contacts before it);
        ``barrier`` makes it wait for every earlier item of its family, and every later one wait for
        it. ``on_done(ok)`` is called when it has run (``ok`` False when it raised or was abandoned).
        """
        self.raise_fatal()
        self._window.acquire()
        op = _Op(group, tuple(dict.fromkeys(keys)), fn, on_done)
        op.family = family
        with self._lock:
            if op.keys:
                identity, tails = self._join(op.keys)
                for tail in tails:
                    self._wait_for(op, tail)
                identity.tail = op
                identity.pending += 1
                op.identity = identity
            waits_for_family = after_family or (family if barrier else None)
            if waits_for_family is not None:
                for earlier in list(self._families.get(waits_for_family, ())):
                    self._wait_for(op, earlier)
            if family is not None:
                fence = self._barriers.get(family)
                if fence is not None:
                    self._wait_for(op, fence)
                if barrier:
                    self._barriers[family] = op
                self._families.setdefault(family, set()).add(op)
            self._pending[group] += 1
            ready = op.waiting == 0
        if ready:
            self._executor.submit(self._run, op)

    def _join(self, keys: tuple[Hashable, ...]) -> tuple[_Identity, list[_Op]]:
        """The identity of these keys (the pending identities they touch, merged) and the tails
        a new record of it waits for. Called under the lock."""
        found: list[_Identity] = []
        for key in keys:
            touched = self._identities.get(key)
            if touched is not None and touched not in found:
                found.append(touched)
        if not found:
            found.append(_Identity())
        found.sort(key=lambda i: len(i.keys), reverse=True)
        identity, others = found[0], found[1:]
        tails = [i.tail for i in found if i.tail is not None]
        for other in others:
            for key in other.keys:
                self._identities[key] = identity
            identity.keys |= other.keys
            identity.pending += other.pending
            other.merged_into = identity
            other.keys = set()
            other.tail = None
        for key in keys:
            if key not in identity.keys:
                identity.keys.add(key)
                self._identities[key] = identity
        return identity, tails

    @staticmethod
    def _wait_for(op: _Op, earlier: _Op) -> None:
        if not earlier.done and op not in earlier.dependents:
            earlier.dependents.append(op)
            op.waiting += 1

    def _run(self, op: _Op) -> None:
        ok = False
        try:
            with self._lock:
                go = self.fatal is None and not self.stopping
                if go:
                    self._running += 1
            if go:
                try:
                    op.fn()
                    ok = True
                finally:
                    with self._lock:
                        self._running -= 1
        except BaseException as exc:
            with self._lock:
                if self.fatal is None:
                    self.fatal = exc
        finally:
            with self._lock:
                op.done = True
                if op.identity is not None:
                    identity = op.identity.root()
                    op.identity = None  # no cycle op <-> identity: the record is freed at once, not by the GC
                    identity.pending -= 1
                    if identity.pending == 0:  # nothing of it is pending: forget what tied it together
                        for key in identity.keys:
                            self._identities.pop(key, None)
                        identity.tail = None
                if op.family is not None:
                    self._families[op.family].discard(op)
                    if self._barriers.get(op.family) is op:
                        del self._barriers[op.family]
                ready = []
                for dependent in op.dependents:
                    dependent.waiting -= 1
                    if dependent.waiting == 0:
                        ready.append(dependent)
                op.dependents.clear()
            try:
                op.on_done(ok)
            except BaseException as exc:  # e.g. STATE could not be written: the reader stops the run
                with self._lock:
                    if self.fatal is None:
                        self.fatal = exc
            finally:
                with self._lock:
                    self._pending[op.group] -= 1
                    self._settled.notify_all()
                self._window.release()
                for dependent in ready:
                    self._executor.submit(self._run, dependent)

    @property
    def pending(self) -> int:
        """Items handed over that have not finished running."""
        with self._lock:
            return sum(self._pending.values())

    def wait(self, group: str | None = None) -> None:
        """Block until every item (of ``group``, or of all groups) has run; raise a fatal error."""
        with self._lock:
            while (self._pending[group] if group is not None else sum(self._pending.values())) > 0:
                self._settled.wait(0.5)
        self.raise_fatal()

    def stop(self) -> None:
        """Start nothing more: queued items are abandoned (reported not ok); running ones go on."""
        self.stopping = True

    def wait_running(self, timeout: float, give_up: threading.Event | None = None) -> bool:
        """Wait up to ``timeout`` seconds (until ``give_up`` is set) for running items to finish; True
        when none is left."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._running > 0:
                left = deadline - time.monotonic()
                if left <= 0 or (give_up is not None and give_up.is_set()):
                    return False
                self._settled.wait(min(left, 0.2))
        return True

    def raise_fatal(self) -> None:
        """Raise the first error a worker hit, in the caller's thread."""
        if self.fatal is not None:
            raise self.fatal

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers (``wait``: let started items finish first)."""
        self._executor.shutdown(wait=wait, cancel_futures=not wait)


_NOTHING = object()
"""No STATE (yet): not ``None``, which a STATE's value may be."""


class StdoutClosedError(FatalError):
    """Whatever read the target's stdout has gone: no STATE can be passed on."""


def write_state(state: object) -> None:
    """Print one STATE value (the checkpoints call this one at a time): the input's own text of it as it
    is, anything else as JSON."""
    try:
        sys.stdout.write((state if isinstance(state, StateText) else serialize_json(state)) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError) as exc:  # ValueError: stdout already closed in this process
        # Nothing more can be written there; point it at /dev/null so the exit does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        msg = (
            "stdout was closed (the program reading the target's output ended): no STATE can be passed on, so "
            "the run stops; the last STATE it read covers only what SegMetrics acknowledged"
        )
        raise StdoutClosedError(msg) from exc


def no_state(state: object) -> None:
    """A dry run passes no STATE on."""


class Checkpoints:
    """Which STATE may be passed on: the latest one whose earlier records have all landed."""

    def __init__(
        self,
        write: Callable[[object], None],
        *,
        interval: float = 1.0,
        every: int = 1000,
    ) -> None:
        self._write = write
        self._interval = interval
        self._every = max(1, every)
        self._lock = threading.Lock()
        self._next = 0  # number given to the next record sent
        self._low = 0  # every record numbered below this has landed
        self._landed: set[int] = set()  # landed records numbered above _low
        self._states: deque[tuple[int, object]] = deque()  # (records before it, STATE)
        self._last_arrived: object = _NOTHING
        self._eligible: object = _NOTHING
        self._written: object = _NOTHING  # compared by identity: one == per STATE message, at arrival
        self._since = 0
        self._last_write = time.monotonic()

    def ticket(self) -> int:
        """Number the next record that will be sent."""
        with self._lock:
            number = self._next
            self._next += 1
            return number

    def state(self, value: object) -> None:
        """A STATE message arrived after every record numbered so far."""
        with self._lock:
            if self._last_arrived is not _NOTHING and value == self._last_arrived:
                return  # the same STATE again: passing the first one on says it all
            self._last_arrived = value
            self._states.append((self._next, value))
            self._advance()

    def landed(self, number: int, ok: bool) -> None:
        """Record ``number`` was acknowledged (or rejected and reported) when ``ok``."""
        with self._lock:
            if not ok:
                return  # it never landed: _low stays below it, so no STATE after it is passed on
            self._landed.add(number)
            while self._low in self._landed:
                self._landed.remove(self._low)
                self._low += 1
                self._since += 1
            self._advance()

    def flush(self) -> None:
        """Pass on the latest eligible STATE now (end of input, drain)."""
        with self._lock:
            self._advance(force=True)

    def _advance(self, *, force: bool = False) -> None:
        while self._states and self._states[0][0] <= self._low:
            self._eligible = self._states.popleft()[1]
        if self._eligible is _NOTHING or self._eligible is self._written:
            return
        now = time.monotonic()
        if force or self._since >= self._every or now - self._last_write >= self._interval:
            self._write(self._eligible)  # may raise (a closed stdout): then it was not written
            self._written = self._eligible
            self._since = 0
            self._last_write = now

    def tick(self) -> None:
        """Called now and then: passes on a STATE that became eligible with no record landing since."""
        with self._lock:
            self._advance()
