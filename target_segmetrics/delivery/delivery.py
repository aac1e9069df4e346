"""Delivery: from a mapped record to SegMetrics' acknowledgement and the STATE that it allows.

    reader -> sink (map, check) -> delivery (order, send) -> client -> checkpoints -> stdout

Every sink hands its records to the one :class:`Delivery` of the run, which owns what they share:
the API client, the dispatcher (concurrent sends, input order per object), the checkpoints (STATE
passed on once everything before it landed), the store (what SegMetrics already holds:
``unchanged.py``, ``tags.py``; what waits: ``parking.py``, ``replay.py``), the reporter (counts,
rejections, progress, summary) and the delete budget. A run ends one of two ways, each one method:
:meth:`Delivery.close` at the end of the input (everything lands, then the summary),
:meth:`Delivery.stop` on a signal or a fatal error (nothing new starts, running requests get a few
seconds, the STATE of what landed is passed on, then the summary).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
import typing as t
from dataclasses import dataclass

from target_segmetrics.delivery.breaker import Breaker
from target_segmetrics.delivery.dispatch import Checkpoints, Dispatcher, Links, no_state, write_state
from target_segmetrics.delivery.parking import Hands, Parking, Versions, contact_missing
from target_segmetrics.delivery.rejections import RejectionBreaker
from target_segmetrics.delivery.replay import Replay
from target_segmetrics.delivery.tags import SideBySide, TagPlans
from target_segmetrics.delivery.unchanged import Seen, Unchanged
from target_segmetrics.errors import DeleteLimitError, FatalError, RecordRejectedError, StdoutClosedError
from target_segmetrics.http.client import SegMetricsClient, integration_url
from target_segmetrics.http.dryrun import DryRunTransport
from target_segmetrics.reporting import Reporter
from target_segmetrics.store.store import Store

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from target_segmetrics.config.settings import Settings
    from target_segmetrics.mapping.mapping import StreamMapping
    from target_segmetrics.mapping.objects import ObjectSpec
    from target_segmetrics.mapping.wire import Mapped

STATE_INTERVAL_SECONDS = 1.0
"""STATE is passed on at most this often (and at the latest every ``batch_size_rows`` records)."""
STOP_GRACE_SECONDS = 10.0
"""After a signal or a fatal error, how long running requests may take to finish."""
STORE_STOP_SECONDS = 2.0
"""After that, how long the store's last writes may take (a store frozen or gone is then given up)."""


@dataclass(frozen=True)
class _Parcel:
    """One record on its way: its number (for STATE), stream, object, key for messages, record, mapping."""

    number: int
    stream: str
    spec: ObjectSpec
    key: str
    record: t.Mapping[str, t.Any]
    mapped: Mapped
    parked: int | None = None
    """Released from the store (the version read): that version leaves the store once it lands."""
    replayed: int | None = None
    """Kept for replay (the version read): that version leaves the store once it lands."""
    version: int = 0
    """Which record of its stream and key this is (a newer one supersedes it, see ``parking.py``)."""
    seen: Seen | None = None
    """The record as it came (``skip_unchanged``): remembered so once it lands."""

    @property
    def versions(self) -> Versions:
        return Versions(parked=self.parked, replayed=self.replayed, version=self.version)


class Delivery:
    """Sends mapped records concurrently, in order per object, and passes STATE on as they land."""

    def __init__(
        self,
        settings: Settings,
        logger: logging.Logger,
        *,
        line_number: Callable[[], int] = lambda: 0,
        write: Callable[[object], None] = write_state,
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.line_number = line_number
        """The input line being read (for messages about a record with no key)."""
        self.reporter = Reporter(
            logger, settings.rejects_path, dry_run=settings.dry_run, mapping_keys=settings.mappings
        )
        if settings.dry_run:
            logger.warning(
                "Dry run (nothing is sent to SegMetrics): no STATE is passed on (a bookmark must not move past "
                "data that was never sent). Under Meltano, also run with `meltano run --no-state-update`"
            )
            write = no_state
        self.checkpoints = Checkpoints(write, interval=STATE_INTERVAL_SECONDS, every=settings.batch_size_rows)
        self.store = Store.of(settings, logger)  # a database that cannot be reached stops the run here
        skip = settings.skip_unchanged and not settings.dry_run
        self.unchanged = Unchanged(self.store, enabled=skip)  # what SegMetrics holds already (unchanged.py)
        # With skip_unchanged: only the tag requests a contact's change needs (delivery/tags.py).
        self.tag_plans = TagPlans(self.store.tags if skip else None, read=not settings.full_resend)
        self._side_by_side = SideBySide(settings.max_concurrency)
        self._client: SegMetricsClient | None = None
        self._client_lock = threading.Lock()
        self._dispatcher: Dispatcher | None = None
        self._links = Links()  # what the input tied together: contact ids and their emails
        self._routed: dict[str, StreamMapping] = {}
        self.breaker = Breaker(self.checkpoints)
        hands = Hands(count=self.count, reject=self.reject, deliver=self.deliver, mapping_of=self.mapping_of)
        self.parking = Parking(self.store, settings, logger, hands)
        self.context = self.parking.context
        """What mappings read besides the record: lookup rows through the parking, the counters."""
        self.replay = Replay(
            self.store, settings, logger, dataclasses.replace(hands, park=self.parking.park), self.context
        )
        self.rejections = RejectionBreaker(self.checkpoints, self.reporter.reasons)
        self._integration_verified = False  # any answer but a 404 proves the integration exists
        self._verify_lock = threading.Lock()
        self._deletes = 0
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._ended = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="segmetrics-state", daemon=True)
        self._ticker.start()

    # --- what it owns, made on first use ----------------------------------------------------------

    @property
    def client(self) -> SegMetricsClient:
        """The API client, made on first use (a run with nothing to send opens no connection)."""
        with self._client_lock:  # workers ask for it at once on the first burst: one client, one throttle
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> SegMetricsClient:
        settings = self.settings
        where = integration_url(settings.api_url, settings.account_id, settings.integration_id)
        return SegMetricsClient(
            api_url=settings.api_url,
            account_id=settings.account_id,
            integration_id=settings.integration_id,
            api_key=settings.api_key,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
            max_concurrency=settings.max_concurrency,
            max_requests_per_second=settings.max_requests_per_second,
            logger=self.logger,
            transport=DryRunTransport(where, settings.dry_run_path, self.logger) if settings.dry_run else None,
        )

    @property
    def dispatcher(self) -> Dispatcher:
        """Runs every stream's sends on as many workers as the client may have requests in flight
        (``max_concurrency``, or fewer under the open-file limit), in order per object."""
        if self._dispatcher is None:
            workers = self.client.throttle.max_concurrency
            self._dispatcher = Dispatcher(workers=workers, window=max(64, 8 * workers))
        return self._dispatcher

    # --- what sinks tell it -------------------------------------------------------------------

    def describe(self, stream: str, object_name: str | None, mapping: StreamMapping | None = None) -> None:
        """A stream feeds this SegMetrics object (None: its records are skipped), mapped so in this run."""
        self.reporter.describe(stream, object_name)
        if mapping is not None:
            self._routed[stream] = mapping

    def mapping_of(self, stream: str, *, routed: bool = False) -> StreamMapping | None:
        """How a stream's records are mapped: as routed in this run (its schema seen), else (unless
        ``routed``) as configured."""
        return self._routed.get(stream) or (None if routed else self.settings.streams.get(stream))

    def count(self, stream: str, what: str, n: int = 1) -> None:
        """Add to a stream's counter (see :class:`Reporter`); a mapped stream this run never read: named."""
        if stream not in self.reporter.objects and (mapping := self.mapping_of(stream)) is not None:
            self.reporter.describe(stream, mapping.spec.name)
        self.reporter.count(stream, what, n)

    def warn_once(self, topic: str, message: str) -> None:
        """Log ``message`` as a warning the first time ``topic`` comes up."""
        with self._lock:
            if topic in self._warned:
                return
            self._warned.add(topic)
        self.logger.warning(message)

    def state(self, value: object) -> None:
        """A STATE message arrived (its value, or the JSON text of it): passed on once every record received
        before it has landed (what the store keeps for the records before it, lookup rows and parked records,
        is on disk first)."""
        self.store.commit()
        self.store.rejected.write()
        self.checkpoints.state(value)

    # --- what waits: lookup rows and parked records ------------------------------------------------

    def handed(self, stream: str, key: str) -> None:
        """A record of ``stream`` and ``key`` came (any outcome): it supersedes what waits for that object,
        parked or kept for replay."""
        self.parking.newer(stream, key)
        self.replay.superseded(stream, key)

    def recognised(self, seen: Seen) -> bool:
        """Whether a record is unchanged, known before it is mapped (``unchanged.py``): then it is done."""
        if not self.unchanged.recognises(seen, self._links.expand, self.context):
            return False
        self.handed(seen.stream, seen.key)
        self.count(seen.stream, "unchanged")
        self.judge(seen.stream, rejected=False)
        return True

    def reject(
        self,
        stream: str,
        key: str,
        record: t.Mapping[str, t.Any],
        mapped: Mapped | None,
        reasons: list[str],
        *,
        by: str,
    ) -> None:
        """Report a record that was not (or could not be) sent, keep it for replay (rejected locally by its
        mapping, or by SegMetrics with a 4xx), then apply ``on_reject``."""
        if mapped is not None and not mapped.delete and (by.startswith(("locally", "by SegMetrics (HTTP 4"))):
            self.replay.keep(stream, key, record, mapped, reasons, by=by)
        self.reporter.reject(
            stream=stream,
            key=key,
            reasons=reasons,
            record=record,
            payload=mapped.payload if mapped is not None else None,
            by=by,
        )
        if self.settings.fail_on_reject:
            msg = (
                f"Stopping (on_reject is 'fail'): record of stream '{stream}' ({key}) was rejected "
                f"{by}: {'; '.join(reasons)}"
            )
            raise RecordRejectedError(msg)

    def judge(self, stream: str, *, rejected: bool) -> None:
        """A record of ``stream`` was mapped (and rejected, or not): a stream whose first records are
        nearly all rejected stops the run (see ``rejections.py``)."""
        self.rejections.mapped(stream, rejected=rejected, where=self.store.where)

    def count_delete(self, stream: str) -> None:
        """One more delete this run; past ``max_deletes_per_run`` the run stops."""
        limit = self.settings.max_deletes_per_run
        with self._lock:
            self._deletes += 1
            number = self._deletes
        if limit is not None and number > limit:
            msg = (
                f"Stopping before delete number {number} (stream '{stream}'): this run would delete more "
                f"than max_deletes_per_run ({limit}) objects from SegMetrics. If the tap really reports that "
                "many deletions, raise max_deletes_per_run; nothing past this point was sent"
            )
            raise DeleteLimitError(msg)

    # --- order and send ---------------------------------------------------------------------------

    def deliver(
        self,
        stream: str,
        spec: ObjectSpec,
        key: str,
        record: t.Mapping[str, t.Any],
        mapped: Mapped,
        *,
        parked: int | None = None,
        replayed: int | None = None,
        seen: Seen | None = None,
    ) -> None:
        """Send a mapped record (or skip it, when SegMetrics already holds exactly this)."""
        keys = self._links.expand(mapped.identities)
        if self.unchanged.skips(spec, mapped, keys, seen):
            self.count(stream, "unchanged")
            if replayed is not None:  # SegMetrics holds exactly this already
                self.replay.landed(stream, key, replayed, count=False)
            if parked is not None:  # SegMetrics holds exactly what it waited to send: it waits no more
                self.store.unpark(stream, key, parked)
            return
        version = self.parking.sending(stream, key, mapped) if parked is None else 0
        number = self.checkpoints.ticket()
        parcel = _Parcel(number, stream, spec, key, record, mapped, parked, replayed, version, seen)
        self.dispatcher.submit(
            stream,
            keys,
            functools.partial(self._send, parcel),
            functools.partial(self._landed, number),
            family=spec.family or spec.name,
            # An invoice or subscription naming a contact_id: every contact before it lands first.
            after_family="contact" if spec.links_contact and "contact_id" in mapped.payload else None,
            # A contact delete: nothing of any contact passes it, either way (what the input tied to
            # it may have landed and be forgotten by the dispatcher already).
            barrier=mapped.delete and (spec.family or spec.name) == "contact",
        )

    def _send(self, parcel: _Parcel) -> None:
        """One record's requests in order, on a worker; a refusal rejects the record (fatal errors raise)."""
        try:
            self._send_requests(parcel)
        finally:
            self.parking.sent(parcel.stream, parcel.key, parcel.version)

    def _send_requests(self, parcel: _Parcel) -> None:
        number, stream, spec, key = parcel.number, parcel.stream, parcel.spec, parcel.key
        record, mapped = parcel.record, parcel.mapped
        client = self.client
        # Every try is counted as it goes out, every retry as it starts: a request that finally
        # fails (401, retries exhausted) shows in the summary too.
        on_try = functools.partial(self.count, stream, "requests")
        on_retry = functools.partial(self.reporter.retry, stream)
        for step in self.tag_plans.steps(spec, mapped):
            refused = self._side_by_side.send(client, step, on_try, on_retry)
            if refused:
                self.tag_plans.refused(mapped)
            for request, exc in refused:
                if exc.status == 404:
                    self._verify_integration()  # a wrong integration_id stops the run here
                if request.method == "DELETE" and exc.status == 404:
                    continue  # already gone: done
                if contact_missing(request.endpoint, exc):
                    # SegMetrics does not hold its contact yet: not wrong, only early (the contact may come
                    # later in this run, or in a later one): parked, tried again at the end of each run.
                    parked_now = self.parking.wait_for_contact(stream, key, record, mapped, parcel.versions)
                    if parked_now and parcel.replayed is not None:  # parked (on disk): no longer kept for replay
                        self.replay.landed(stream, key, parcel.replayed, count=False)
                        self.store.rejected.write()
                    self.breaker.answered(number, refused=False)
                    return
                reasons = [f"{request.endpoint}: {error}" for error in exc.errors]
                if parcel.parked is not None:
                    self.store.unpark(stream, key, parcel.parked)
                self.breaker.answered(number, refused=exc.status != 404)
                self.reject(stream, key, record, mapped, reasons, by=f"by SegMetrics (HTTP {exc.status})")
                return
            self._integration_verified = True
        self.count(stream, "deleted" if mapped.delete else "upserted")
        if parcel.parked is not None:
            self.store.unpark(stream, key, parcel.parked)
            self.count(stream, "released")
        if parcel.replayed is not None:
            self.replay.landed(stream, key, parcel.replayed)
        self.unchanged.landed(spec, mapped, parcel.seen)
        self.tag_plans.landed(mapped)
        self.breaker.answered(number, refused=False)

    def _verify_integration(self) -> None:
        """Before a 404 counts as a missing contact or an object already gone: the integration exists."""
        with self._verify_lock:
            if not self._integration_verified:
                self.client.verify_integration()  # raises NotFoundError when it does not
                self._integration_verified = True

    def _landed(self, number: int, ok: bool) -> None:
        """A record was acknowledged (or rejected and reported): STATE may pass it, unless the breaker
        holds its rejection for now."""
        if not self.breaker.holds(number):
            self.checkpoints.landed(number, ok)

    @property
    def in_flight(self) -> int:
        """Records on their way: handed over, not yet acknowledged or rejected."""
        return self._dispatcher.pending if self._dispatcher is not None else 0

    def wait(self, stream: str) -> None:
        """Block until every record of ``stream`` handed over so far has landed (a sink's drain)."""
        if self._dispatcher is not None:
            self._dispatcher.wait(stream)

    # --- the two ends of a run ------------------------------------------------------------------

    def close(self) -> None:
        """End of input: wait until everything landed, send what was parked and can go now, pass the
        last STATE on, summarise."""
        if self._dispatcher is not None:
            self._dispatcher.wait()
        self.parking.release()
        self.replay.release()
        if self._dispatcher is not None:
            self._dispatcher.wait()
            self._dispatcher.close()
        self._side_by_side.close()
        self.rejections.close()
        self.breaker.close()
        self.store.commit()  # the last writes: a store failing now stops the run (exit 1)
        self.store.rejected.write()
        self._finish()

    def stop(self, reason: str, grace: float = STOP_GRACE_SECONDS, give_up: threading.Event | None = None) -> bool:
        """End the run early: start nothing new, let running requests finish (``grace`` seconds, until
        ``give_up`` is set), pass on the STATE of what landed, summarise. True when none was left running."""
        if self._client is not None:
            self._client.throttle.close(FatalError("the run is stopping"))  # waiting senders give up
        self.store.hurry(grace + STORE_STOP_SECONDS)  # whatever the store does, the stop ends in seconds
        finished = True
        if self._dispatcher is not None:
            self._dispatcher.stop()
            finished = self._dispatcher.wait_running(grace, give_up)
            if finished:
                self._dispatcher.close(wait=False)
        self._side_by_side.close(wait=finished)
        if not finished:
            when = "at a second signal" if give_up is not None and give_up.is_set() else f"after {grace:g}s"
            reason += f" (requests still running {when} were abandoned: never acknowledged, so no STATE claims them)"
        self.logger.error("%s", reason)
        self._finish(reason)
        return finished

    def _finish(self, reason: str | None = None) -> None:
        with contextlib.suppress(OSError, StdoutClosedError):  # stdout is gone: nothing more can be passed on
            self.checkpoints.flush()
        self._ended.set()
        self.store.finish(self._parked_note, self._replay_note, reason=reason)  # never raises: the summary comes
        self.reporter.close()
        if self._client is not None:
            self._client.close()
        self.reporter.summary(self.settings.summary_path)

    def _parked_note(self) -> None:
        self.reporter.parked_note = self.parking.note()

    def _replay_note(self) -> None:
        if note := self.replay.note():
            self.reporter.notes.append(note)

    def _tick(self) -> None:
        """Now and then: pass on a STATE that became eligible, and print progress."""
        interval = self.settings.progress_interval
        next_progress = time.monotonic() + interval
        while not self._ended.wait(STATE_INTERVAL_SECONDS / 2):
            try:
                self.checkpoints.tick()
            except FatalError as exc:  # stdout closed: the reader stops the run at its next record
                if self._dispatcher is not None and self._dispatcher.fatal is None:
                    self._dispatcher.fatal = exc
                return
            if time.monotonic() >= next_progress:
                next_progress += interval
                self.reporter.progress()
