"""Many requests in flight, order kept per SegMetrics object, STATE checkpointed as records land.

:class:`Dispatcher` runs each record's requests on a pool of worker threads. A record names the
SegMetrics objects it touches (its *keys*: ``contact_id`` and ``email`` for a contact, because the
API matches on either); a record waits for every earlier record that shares a key, so records for
one object are applied in input order while records for different objects go in parallel. At most
``window`` records are pending at once: the reader blocks beyond that, so memory stays flat
however long the input is.

:class:`Checkpoints` numbers every record that is sent and remembers where each STATE message
arrived. A STATE is passed on once every record received before it has been acknowledged (or
rejected and reported), at most every ``interval`` seconds or every ``every`` records, and at the
end. A record that never landed (abandoned after a fatal error or a signal) holds back every STATE
after it for good.
"""

from __future__ import annotations

import threading
import time
import typing as t
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor

if t.TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable


class _Op:
    __slots__ = ("dependents", "done", "family", "fn", "group", "keys", "on_done", "waiting")

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


class Dispatcher:
    """Runs work items concurrently, in input order per key, with a bounded backlog."""

    def __init__(self, workers: int, window: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="segmetrics-send")
        self._window = threading.Semaphore(max(1, window))
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._tails: dict[Hashable, _Op] = {}
        self._families: dict[str, set[_Op]] = {}
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
    ) -> None:
        """Queue ``fn`` after every earlier item sharing one of ``keys``; blocks while the window is full.

        ``family`` names the kind of object the item writes; ``after_family`` makes it wait for every
        earlier item of that family (an invoice naming a contact_id waits for all contacts before it).
        ``on_done(ok)`` is called when it has run (``ok`` False when it raised or was abandoned).
        """
        self.raise_fatal()
        self._window.acquire()
        op = _Op(group, tuple(dict.fromkeys(keys)), fn, on_done)
        op.family = family
        with self._lock:
            for key in op.keys:
                tail = self._tails.get(key)
                if tail is not None and not tail.done and op not in tail.dependents:
                    tail.dependents.append(op)
                    op.waiting += 1
                self._tails[key] = op
            if after_family is not None:
                for earlier in self._families.get(after_family, ()):
                    if not earlier.done and op not in earlier.dependents:
                        earlier.dependents.append(op)
                        op.waiting += 1
            if family is not None:
                self._families.setdefault(family, set()).add(op)
            self._pending[group] += 1
            ready = op.waiting == 0
        if ready:
            self._executor.submit(self._run, op)

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
                for key in op.keys:
                    if self._tails.get(key) is op:
                        del self._tails[key]
                if op.family is not None:
                    self._families[op.family].discard(op)
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

    def wait(self, group: str | None = None) -> None:
        """Block until every item (of ``group``, or of all groups) has run; raise a fatal error."""
        with self._lock:
            while (self._pending[group] if group is not None else sum(self._pending.values())) > 0:
                self._settled.wait(0.5)
        self.raise_fatal()

    def stop(self) -> None:
        """Start nothing more: queued items are abandoned (reported not ok); running ones go on."""
        self.stopping = True

    def wait_running(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running items to finish; True when none is left."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._running > 0:
                left = deadline - time.monotonic()
                if left <= 0:
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


class Checkpoints:
    """Which STATE may be passed on: the latest one whose earlier records have all landed."""

    def __init__(
        self,
        write: Callable[[dict], None],
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
        self._states: deque[tuple[int, dict]] = deque()  # (records before it, STATE)
        self._eligible: dict | None = None
        self._written: dict | None = None
        self._since = 0
        self._last_write = time.monotonic()

    def ticket(self) -> int:
        """Number the next record that will be sent."""
        with self._lock:
            number = self._next
            self._next += 1
            return number

    def state(self, value: dict) -> None:
        """A STATE message arrived after every record numbered so far."""
        with self._lock:
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
        if self._eligible is None or self._eligible == self._written:
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
