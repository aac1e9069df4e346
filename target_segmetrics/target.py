"""TargetSegMetrics: settings, mappings checked up front, one sink per stream, clean stops."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import typing as t

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import TargetCapabilities
from singer_sdk.plugin_base import PluginBase, _ConfigInput
from singer_sdk.target_base import Target

from target_segmetrics.client import DryRunClient, FatalError, SegMetricsClient, check_api_url, redact
from target_segmetrics.compiler import by_name, compile_entry
from target_segmetrics.dispatch import Checkpoints, Dispatcher
from target_segmetrics.mapping import StreamMapping
from target_segmetrics.presets import PRESETS
from target_segmetrics.reader import InputError, NumberedSingerReader
from target_segmetrics.reporting import Reporter
from target_segmetrics.sinks import RecordRejectedError, SegMetricsSink
from target_segmetrics.sources import MappingConfigError, schema_has_path
from target_segmetrics.store import SentStore

if t.TYPE_CHECKING:
    from pathlib import PurePath
    from types import FrameType

DEFAULT_API_URL = "https://import.segmetrics.io/api/v1"
DEFAULT_CONCURRENCY = 16
"""16 in flight: ~160 records/s at a 100 ms round trip, 16x one-at-a-time, while staying polite to an
API whose quota is not published (429s lower it further on their own)."""
DEFAULT_MAX_DELETES = 1000
DEFAULT_STATE_DB = ".target-segmetrics/sent.sqlite3"
DEFAULT_PROGRESS_SECONDS = 5.0
STATE_INTERVAL_SECONDS = 1.0
STOP_GRACE_SECONDS = 10.0
"""After a signal or a fatal error, how long running requests may take to finish."""


def _id_type() -> th.CustomType:
    """Text or a number (users write ids either way); a new instance per property."""
    return th.CustomType({"type": ["string", "integer"]})


class TargetSegMetrics(Target):
    """Singer target that upserts any tap's records into a SegMetrics custom integration."""

    name = "target-segmetrics"
    default_sink_class = SegMetricsSink
    message_reader_class = NumberedSingerReader
    capabilities: t.ClassVar[list] = [*Target.capabilities, TargetCapabilities.HARD_DELETE]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.CustomType({"type": ["string", "integer"]}),
            secret=True,
            title="API key",
            description="SegMetrics API key (Account Settings). Sent as the Authorization header; never logged.",
        ),
        th.Property(
            "account_id",
            _id_type(),
            required=True,
            title="Account ID",
            description="SegMetrics account API id (Account Settings page).",
        ),
        th.Property(
            "integration_id",
            _id_type(),
            required=True,
            title="Integration ID",
            description="Id of the SegMetrics custom integration that receives the data.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            default=DEFAULT_API_URL,
            title="API URL",
            description=(
                "Base URL of the import API; requests go to {api_url}/{account_id}/{integration_id}/{endpoint}. "
                "Must be https:// (plain http:// only for a loopback address such as the local sandbox)."
            ),
        ),
        th.Property(
            "mappings",
            th.ObjectType(additional_properties=True),
            title="Mappings",
            description=(
                "Per stream name: which SegMetrics object it feeds and where each field comes from "
                "(object, preset, fields, tags, tags_mode, custom_fields). Without it, streams with an "
                "email or contact_id property are sent as contacts by property name."
            ),
        ),
        th.Property(
            "on_reject",
            th.StringType,
            default="continue",
            allowed_values=["continue", "fail"],
            title="On reject",
            description=(
                "What a rejected record does to the run: 'continue' (log it, keep it in rejects_path, go on; "
                "exit 0) or 'fail' (stop at the first rejected record with exit code 1, before STATE "
                "passes it)."
            ),
        ),
        th.Property(
            "rejects_path",
            th.StringType,
            title="Rejects file",
            description=(
                "File that receives every rejected record as one JSON line (stream, key, reasons, record, "
                "payload). Appended to."
            ),
        ),
        th.Property(
            "hard_delete",
            th.BooleanType,
            default=False,
            title="Hard delete",
            description=(
                "Delete from SegMetrics the objects whose record the tap marks deleted (_sdc_deleted_at): "
                "contacts (by contact_id, else email), invoices and subscriptions (by id). Off: such "
                "records are upserted like any other."
            ),
        ),
        th.Property(
            "max_deletes_per_run",
            th.IntegerType,
            default=DEFAULT_MAX_DELETES,
            title="Max deletes per run",
            description=(
                "Circuit breaker: a run that would delete more objects than this stops (exit 1) before "
                "the next delete, so a tap that suddenly reports everything deleted cannot empty SegMetrics."
            ),
        ),
        th.Property(
            "skip_unchanged",
            th.BooleanType,
            default=False,
            title="Skip unchanged",
            description=(
                "Remember (in state_db_path) a digest of what SegMetrics acknowledged per object, and do not "
                "send a record whose mapped payload is the same again; it counts as 'unchanged'. Off by "
                "default: the store lives on the machine that runs the target, and a skipped record cannot "
                "repair data edited by hand in SegMetrics."
            ),
        ),
        th.Property(
            "state_db_path",
            th.StringType,
            default=DEFAULT_STATE_DB,
            title="Store of sent records",
            description="With skip_unchanged: the SQLite file of acknowledged digests. Losing it costs a full resend.",
        ),
        th.Property(
            "full_resend",
            th.BooleanType,
            default=False,
            title="Full resend",
            description=(
                "With skip_unchanged: send every record this run (the store is updated). Use it after editing "
                "data in SegMetrics by hand, or when in doubt."
            ),
        ),
        th.Property(
            "dry_run",
            th.BooleanType,
            default=False,
            title="Dry run",
            description=(
                "Send nothing (no api_key needed): every request the target would make is written as a JSON "
                "line {method, path, body} to dry_run_path (default: the log). Mapping, validation and "
                "rejections behave exactly as in a real run."
            ),
        ),
        th.Property(
            "dry_run_path",
            th.StringType,
            title="Dry run file",
            description="With dry_run: the file the would-be requests are written to (appended). Default: the log.",
        ),
        th.Property(
            "summary_path",
            th.StringType,
            title="Summary file",
            description=(
                "Also write the run summary as JSON here (per stream: object, received, requests, upserted, "
                "deleted, rejected, skipped, retries, throttled, elapsed, rate), for orchestrators and alerting."
            ),
        ),
        th.Property(
            "progress_interval",
            th.NumberType,
            default=DEFAULT_PROGRESS_SECONDS,
            title="Progress interval",
            description="Seconds between progress lines per stream on long runs (a short run prints none).",
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=30,
            title="Request timeout",
            description="Seconds to wait for SegMetrics to answer one request before retrying it.",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType,
            default=DEFAULT_CONCURRENCY,
            title="Max concurrency",
            description=(
                "Requests in flight at once, across all streams (SegMetrics has no bulk endpoint: one "
                "request per object). Lowered automatically while SegMetrics answers 429."
            ),
        ),
        th.Property(
            "max_requests_per_second",
            th.NumberType,
            title="Max requests per second",
            description="Optional cap on requests started per second, for an account with a known quota.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType,
            default=6,
            title="Max retries",
            description=(
                "Retries of one request after 429, 5xx, timeouts or dropped connections (exponential "
                "backoff with jitter; Retry-After honoured). Past it the run stops."
            ),
        ),
    ).to_dict()

    def __init__(
        self,
        *,
        config: dict | PurePath | str | list[PurePath | str] | None = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        setup_mapper: bool = True,
        message_reader: t.Any = None,
    ) -> None:
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
            message_reader=message_reader,
        )
        self._mappings = self._compile_mappings()
        self._warned_streams: set[str] = set()
        self._deletes = 0
        self._deletes_lock = threading.Lock()
        self.reporter = Reporter(self.logger, self.config.get("rejects_path"))
        self._client: SegMetricsClient | DryRunClient | None = None
        self._store = self._open_store()
        self._dispatcher: Dispatcher | None = None
        self.checkpoints = Checkpoints(
            self._write_state_message,
            interval=STATE_INTERVAL_SECONDS,
            every=int(self.config.get("batch_size_rows") or SegMetricsSink.MAX_SIZE_DEFAULT),
        )
        self._ticker = threading.Thread(target=self._tick, name="segmetrics-state", daemon=True)
        self._stopping = threading.Event()
        self._ticker.start()

    # --- config checked before any request ------------------------------------------------------

    def _compile_mappings(self) -> dict[str, StreamMapping]:
        errors: list[str] = []
        api_url = self.config.get("api_url") or DEFAULT_API_URL
        if problem := check_api_url(api_url):
            errors.append(problem)
        key = self.config.get("api_key")
        if key is not None and (str(key) != str(key).strip() or any(ord(c) < 32 for c in str(key))):
            errors.append("api_key has spaces, a line break or control characters around or in it: copy it again")
        if not key and not self.config.get("dry_run"):
            errors.append(
                "api_key is required (or set dry_run to try a mapping without sending): the SegMetrics API key "
                "from the Account Settings page"
            )
        mappings = self.config.get("mappings") or {}
        compiled: dict[str, StreamMapping] = {}
        for stream, entry in mappings.items():
            try:
                compiled[stream] = compile_entry(stream, entry, PRESETS)
            except MappingConfigError as exc:
                errors.extend(exc.errors)
        if errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return compiled

    @property
    def client(self) -> SegMetricsClient | DryRunClient:
        """The API client, made on first use (so a run with nothing to send needs no connection)."""
        if self._client is None and self.config.get("dry_run"):
            self._client = DryRunClient(self.config.get("dry_run_path"), self.logger)
        if self._client is None:
            self._client = SegMetricsClient(
                api_url=self.config.get("api_url") or DEFAULT_API_URL,
                account_id=str(self.config["account_id"]),
                integration_id=str(self.config["integration_id"]),
                api_key=str(self.config.get("api_key") or ""),
                timeout=float(self.config.get("request_timeout") or 30),
                max_retries=int(self.config.get("max_retries", 6)),
                max_concurrency=self.max_concurrency,
                max_requests_per_second=self.config.get("max_requests_per_second"),
                logger=self.logger,
            )
        return self._client

    def _open_store(self) -> SentStore | None:
        if not self.config.get("skip_unchanged") or self.config.get("dry_run"):
            return None
        scope = "|".join(
            [
                str(self.config.get("api_url") or DEFAULT_API_URL),
                str(self.config["account_id"]),
                str(self.config["integration_id"]),
            ]
        )
        return SentStore(
            str(self.config.get("state_db_path") or DEFAULT_STATE_DB),
            scope,
            self.logger,
            full_resend=bool(self.config.get("full_resend")),
        )

    @property
    def store(self) -> SentStore | None:
        """The store of acknowledged digests (``skip_unchanged``), or None."""
        return self._store

    @property
    def line_number(self) -> int:
        """The input line being processed (for messages about a record with no key)."""
        return getattr(self.message_reader, "line_number", 0)

    @property
    def max_concurrency(self) -> int:
        """Requests in flight at once (the ``max_concurrency`` setting)."""
        return max(1, int(self.config.get("max_concurrency") or DEFAULT_CONCURRENCY))

    @property
    def dispatcher(self) -> Dispatcher:
        """Runs every stream's sends on ``max_concurrency`` workers, in order per object."""
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(workers=self.max_concurrency, window=max(64, 8 * self.max_concurrency))
        return self._dispatcher

    # --- STATE: passed on once everything before it landed ------------------------------------

    def _process_state_message(self, message_dict: dict) -> None:
        # Not the SDK's way (STATE only when every sink drains): checkpoints pass each STATE on as
        # soon as every record received before it has landed.
        self._assert_line_requires(message_dict, requires={"value"})
        self.checkpoints.state(message_dict["value"])

    def _tick(self) -> None:
        interval = float(self.config.get("progress_interval") or DEFAULT_PROGRESS_SECONDS)
        next_progress = time.monotonic() + interval
        while not self._stopping.wait(STATE_INTERVAL_SECONDS / 2):
            self.checkpoints.tick()
            if time.monotonic() >= next_progress:
                next_progress += interval
                self.reporter.progress()

    _stdout_lock = threading.Lock()

    def _write_state_message(self, state: dict) -> None:
        with self._stdout_lock:
            super()._write_state_message(state)

    # --- which streams go where -------------------------------------------------------------------

    def mapping_for(self, stream: str, schema: t.Mapping[str, t.Any]) -> StreamMapping | None:
        """The compiled mapping of a stream, or None (with one warning) when it is skipped."""
        if self.config.get("mappings"):
            mapping = self._mappings.get(stream)
            if mapping is None:
                self.warn_once(
                    stream,
                    f"Stream '{stream}' is not listed in 'mappings': its records are skipped "
                    f"(listed: {', '.join(sorted(self._mappings))})",
                )
                return None
            self._warn_unknown_paths(mapping, schema)
            return mapping
        mapping = by_name(stream, schema)
        if mapping is None:
            self.warn_once(
                stream,
                f"Stream '{stream}' has no 'email' or 'contact_id' property and no entry in 'mappings': "
                "its records are skipped",
            )
        return mapping

    def warn_once(self, topic: str, message: str) -> None:
        """Log ``message`` as a warning the first time ``topic`` comes up."""
        if topic not in self._warned_streams:
            self._warned_streams.add(topic)
            self.logger.warning(message)

    def count_delete(self, stream: str) -> None:
        """One more delete this run; past ``max_deletes_per_run`` the run stops."""
        limit = self.config.get("max_deletes_per_run", DEFAULT_MAX_DELETES)
        with self._deletes_lock:
            self._deletes += 1
            if limit is not None and self._deletes > limit:
                msg = (
                    f"Stopping before delete number {self._deletes} (stream '{stream}'): this run would delete more "
                    f"than max_deletes_per_run ({limit}) objects from SegMetrics. If the tap really reports that "
                    "many deletions, raise max_deletes_per_run; nothing past this point was sent"
                )
                raise DeleteLimitError(msg)

    def _warn_unknown_paths(self, mapping: StreamMapping, schema: t.Mapping[str, t.Any]) -> None:
        unknown = [path for path in mapping.source_paths if not schema_has_path(schema, path)]
        if unknown and mapping.stream not in self._warned_streams:
            self._warned_streams.add(mapping.stream)
            self.logger.warning(
                "Mapping for stream '%s' reads %s, which the stream's schema does not declare; "
                "a path that names nothing sends nothing",
                mapping.stream,
                ", ".join(repr(p) for p in unknown),
            )

    # --- end of run, clean stops ------------------------------------------------------------------

    def process_endofpipe(self) -> None:
        """Drain everything (STATE goes out once all is acknowledged), then summarise."""
        super().process_endofpipe()  # on an error or a signal, stop() takes over from here
        self.checkpoints.flush()
        self._stopping.set()
        if self._dispatcher is not None:
            self._dispatcher.close()
        if self._store is not None:
            self._store.close()
        self.reporter.close()
        if self._client is not None:
            self._client.close()
        self.reporter.summary(self.config.get("summary_path"))

    # --- stopping: signals and fatal errors -----------------------------------------------------

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        # The SDK drains everything and exits 0; here the reader thread unwinds and
        # :meth:`stop` finishes what is in flight, passes on only what landed, and exits non-zero.
        raise Interrupted(signum)

    def stop(self, reason: str, code: int) -> t.NoReturn:
        """End the run early: start nothing new, let running requests finish (briefly), pass on
        the STATE of what landed, summarise, and exit with ``code``."""
        if threading.current_thread() is threading.main_thread():
            # A second Ctrl-C while stopping must not interrupt the stop itself.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.logger.error("%s", reason)
        if self._client is not None:
            self._client.throttle.close(FatalError("the run is stopping"))  # waiting senders give up
        dispatcher = self._dispatcher
        finished = True
        if dispatcher is not None:
            dispatcher.stop()
            finished = dispatcher.wait_running(STOP_GRACE_SECONDS)
        with contextlib.suppress(OSError):  # stdout is gone: nothing more can be passed on
            self.checkpoints.flush()
        self._stopping.set()
        if self._store is not None:
            self._store.close()
        self.reporter.close()
        self.reporter.summary(self.config.get("summary_path"))
        sys.stdout.flush()
        sys.stderr.flush()
        if not finished:
            # A request still retrying is abandoned: it was never acknowledged, so no STATE claims
            # it. Do not wait for its thread at interpreter exit.
            logging.shutdown()
            os._exit(code)
        if dispatcher is not None:
            dispatcher.close(wait=False)
        sys.exit(code)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        file_input: t.IO[str] | None = None,
    ) -> None:
        """Run the target (as the SDK's ``Target.invoke``), ending any failure with one clear line."""
        PluginBase.invoke.__func__(cls, about=about, about_format=about_format)  # type: ignore[attr-defined]
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        target = cls(config=config.config, validate_config=True, parse_env_config=config.parse_env)
        try:
            target.listen(file_input)
        except Interrupted as exc:
            name = signal.Signals(exc.signum).name
            target.stop(
                f"Stopped by {name}: running requests were finished, nothing more was sent; the last STATE "
                "printed covers only what SegMetrics acknowledged",
                128 + exc.signum,
            )
        except (FatalError, RecordRejectedError, InputError) as exc:
            target.stop(str(exc), 1)
        except Exception as exc:
            cls.logger.debug("Unexpected error", exc_info=True)
            target.stop(
                f"Unexpected error ({type(exc).__name__}): {redact(str(exc), target.config.get('api_key'))[:300]}"
                " - run with LOGLEVEL=debug for the traceback",
                1,
            )


class DeleteLimitError(FatalError):
    """The run would delete more than ``max_deletes_per_run`` objects."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
