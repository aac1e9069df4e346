"""TargetSegMetrics: the SDK shell. Settings checked up front, one sink per stream, clean stops.

    reader -> sink (map, check) -> delivery (order, send) -> client -> checkpoints -> stdout

This module only connects the SDK to the parts that do the work: :mod:`settings` (schema, typed
config, up-front checks), :mod:`reader` (numbered input), :mod:`sinks` (map and check), and
:mod:`delivery` (everything after: sending, order, STATE, the summary, and the two ways a run ends).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import signal
import sys
import threading
import typing as t
from pathlib import Path

import click
from singer_sdk.helpers.capabilities import TargetCapabilities
from singer_sdk.target_base import Target
from typing_extensions import override

from target_segmetrics.config import settings as settings_module
from target_segmetrics.config.schema import SCHEMA
from target_segmetrics.delivery.delivery import STOP_GRACE_SECONDS, Delivery
from target_segmetrics.errors import FatalError, InputError, StoreUnavailableError
from target_segmetrics.http.client import redact
from target_segmetrics.reader import NumberedSingerReader
from target_segmetrics.sinks import SegMetricsSink

if t.TYPE_CHECKING:
    from pathlib import PurePath
    from types import FrameType

    from singer_sdk.sinks import Sink


class _Quieter(logging.Filter):
    """The SDK's INFO lines that tell a user of this target nothing, lowered to DEBUG: the env var
    line of every run, and the reader's line, which comes before anything has landed."""

    LOWERED = ("Skipping parse of env var settings", "Reader '%s' completed processing")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith(self.LOWERED):
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _quiet(logger: logging.Logger) -> None:
    if not any(isinstance(existing, _Quieter) for existing in logger.filters):
        logger.addFilter(_Quieter())


class TargetSegMetrics(Target):
    """Singer target that upserts any tap's records into a SegMetrics custom integration."""

    name = "target-segmetrics"
    default_sink_class = SegMetricsSink
    message_reader_class = NumberedSingerReader
    capabilities: t.ClassVar[list] = [*Target.capabilities, TargetCapabilities.HARD_DELETE]
    config_jsonschema = SCHEMA
    running: t.ClassVar[TargetSegMetrics | None] = None
    """The target that :meth:`invoke` made (to end it cleanly when reading fails)."""

    @override
    def __init__(
        self,
        *,
        config: dict | PurePath | str | list[PurePath | str] | None = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        setup_mapper: bool = True,
        message_reader: t.Any = None,
    ) -> None:
        if isinstance(config, dict):
            schema = copy.deepcopy(type(self).config_jsonschema)
            type(self).append_builtin_config(schema)  # the SDK's own settings are known settings too
            config = settings_module.prepare(config, from_env=parse_env_config, schema=schema)
        _quiet(logging.getLogger(self.name))  # the SDK's logger of this plugin, before it logs
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
            message_reader=message_reader,
        )
        self.settings = settings_module.load(self.config)
        if self.settings.ignored_line:
            self.logger.info(self.settings.ignored_line)
        try:
            self.delivery = Delivery(
                self.settings, self.logger, line_number=lambda: getattr(self.message_reader, "line_number", 0)
            )
        except StoreUnavailableError as exc:  # before anything was read or sent: one line, exit 1
            self.logger.error("%s", exc)  # noqa: TRY400 - a traceback would say nothing more
            sys.stderr.flush()
            sys.exit(1)
        if not self.settings.dry_run and not self.settings.state_db_url:
            keep_out_of_git(Path(self.settings.state_db_path).parent)
        self._interrupted: int | None = None
        type(self).running = self
        if threading.current_thread() is threading.main_thread():
            # Our own handler replaces the SDK's (which drains everything and exits 0).
            signal.signal(signal.SIGINT, self.interrupt)
            signal.signal(signal.SIGTERM, self.interrupt)

    # --- the config files, read before anything else ---------------------------------------------

    @classmethod
    @override
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> t.Any:
        """``--config`` files: a missing, unreadable or malformed one is one line naming it, exit 1."""
        for path in value:
            problem = None if path == "ENV" else config_file_problem(path)
            if problem:
                cls.logger.error("%s; nothing was read or sent", problem)
                ctx.exit(1)
        return super().cb_config(ctx, param, value)

    # --- sinks get the delivery handed to them --------------------------------------------------

    @override
    def get_sink_class(self, stream_name: str) -> type[Sink]:
        """Every stream's sink, given the run's settings and delivery (with SDK 0.55+:
        ``create_sink`` returns ``SegMetricsSink(self, ..., delivery=..., settings=...)``)."""
        return t.cast("type[Sink]", functools.partial(SegMetricsSink, delivery=self.delivery, settings=self.settings))

    # --- STATE: passed on once everything before it landed ------------------------------------

    @override
    def _process_state_message(self, message_dict: dict) -> None:
        # Private, no public seam: the SDK holds STATE until every sink drains; the delivery passes
        # each STATE on as soon as every record received before it has landed.
        if "value" not in message_dict:
            raise InputError(f"Line {self.delivery.line_number()}: a STATE message needs a 'value'")
        if message_dict["value"] is None:  # no bookmark at all: passing it on would only hide the last one
            self.delivery.warn_once(
                "null STATE",
                f"Line {self.delivery.line_number()}: a STATE whose value is null was not passed on (it holds no "
                "bookmark); the STATE before it stays the one passed on (any later null STATE is skipped too)",
            )
            return
        self.delivery.state(message_dict["value"])  # as the text it came as (reader.StateText), when it did

    # --- the run: to the end of input, or stopped -----------------------------------------------

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        file_input: t.IO[str] | None = None,
    ) -> None:
        """Run the target as the SDK does, ending any failure with one clear line and its exit code."""
        cls.running = None
        try:
            super().invoke(about=about, about_format=about_format, config=config, file_input=file_input)
        except Exception as exc:
            target = cls.running
            if target is None:  # before the target existed (the SDK's own config errors and the like)
                raise
            target.fail(exc)
        except Interrupted as exc:
            if cls.running is None:
                raise
            name = signal.Signals(exc.signum).name
            cls.running.stop(
                f"Stopped by {name}: nothing more was sent; the last STATE printed covers only what SegMetrics "
                "acknowledged",
                128 + exc.signum,
            )

    def fail(self, exc: Exception) -> t.NoReturn:
        """Stop the run for an error: one line saying what to fix, exit code 1."""
        if isinstance(exc, FatalError):
            self.stop(str(exc), 1)
        self.logger.debug("Unexpected error", exc_info=exc)
        self.stop(
            f"Unexpected error ({type(exc).__name__}): {redact(str(exc), self.settings.api_key)[:300]}"
            " - run with LOGLEVEL=debug for the traceback",
            1,
        )

    @override
    def process_endofpipe(self) -> None:
        """Drain everything (STATE goes out once all is acknowledged), then summarise."""
        lines = getattr(self.message_reader, "line_number", 0)
        in_flight = self.delivery.in_flight
        records = f"{in_flight} record{'' if in_flight == 1 else 's'}"
        if self.settings.dry_run:
            waiting = f"writing down the requests of {records} (dry run)" if in_flight else "dry run: nothing is sent"
        else:
            waiting = (
                f"waiting for {records} in flight to land"
                if in_flight
                else "waiting for nothing: every record sent has landed"
            )
        self.logger.info("Read %d lines of input; %s", lines, waiting)
        super().process_endofpipe()  # on an error or a signal, stop() takes over from here
        self.delivery.close()

    def interrupt(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: the reader unwinds and :meth:`stop` ends the run. Meltano forwards the
        signals the OS also delivers to the whole group: a second one changes nothing."""
        if self._interrupted is not None:
            return
        self._interrupted = signum
        raise Interrupted(signum)

    def stop(self, reason: str, code: int) -> t.NoReturn:
        """End the run early through :meth:`Delivery.stop`, then exit with ``code``. Stopped by a signal,
        running requests get :data:`SIGNAL_GRACE_SECONDS`; a second signal abandons them at once."""
        hurry = threading.Event()
        if threading.current_thread() is threading.main_thread():
            # A second Ctrl-C while stopping must not interrupt the stop itself: it only ends the wait.
            signal.signal(signal.SIGINT, lambda _signum, _frame: hurry.set())
            signal.signal(signal.SIGTERM, lambda _signum, _frame: hurry.set())
        grace = SIGNAL_GRACE_SECONDS if code > 128 else STOP_GRACE_SECONDS  # a signal: someone is waiting
        finished = self.delivery.stop(reason, grace, hurry)
        sys.stdout.flush()
        sys.stderr.flush()
        if not finished:
            # A request still retrying is abandoned: it was never acknowledged, so no STATE claims
            # it. Do not wait for its thread at interpreter exit.
            logging.shutdown()
            os._exit(code)
        sys.exit(code)


STORE_DIRECTORY = ".target-segmetrics"
"""The default store's folder (``state_db_path``'s default), in the Meltano project."""


def keep_out_of_git(folder: Path) -> None:
    """The store's default folder holds lookup rows (owners' emails...) and parked records: a
    ``.gitignore`` in it keeps it out of the project's repository, as caches of other tools do."""
    ignore = folder / ".gitignore"
    if folder.name != STORE_DIRECTORY or ignore.exists():
        return
    with contextlib.suppress(OSError):  # a read-only project: the README's advice still holds
        folder.mkdir(exist_ok=True)  # the store would make it at its first write
        ignore.write_text(
            "# Written by target-segmetrics: its store (lookup rows with emails, parked records) is not for git.\n*\n",
            encoding="utf-8",
        )


def config_file_problem(path: str) -> str | None:
    """What is wrong with the config file at ``path`` (named, with the JSON error's line and column), or None."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"Config file '{path}' does not exist"
    except IsADirectoryError:
        return f"Config file '{path}' is a directory, not a JSON file"
    except UnicodeDecodeError as exc:
        return f"Config file '{path}' is not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        return f"Config file '{path}' cannot be read: {exc.strerror or type(exc).__name__}"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"Config file '{path}' is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if not isinstance(config, dict):
        return f"Config file '{path}' holds a JSON {type(config).__name__}, not an object of settings"
    return None


SIGNAL_GRACE_SECONDS = 2.0
"""After SIGINT/SIGTERM, how long running requests may take to finish before they are abandoned."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
