"""Settings: the schema users configure, a typed view of it built once, and the up-front checks.

- :data:`SCHEMA` is the target's settings schema (``--about``, Meltano's plugin definition);
- :class:`Settings` is the config as the code reads it: frozen, typed, every default in one place;
- :func:`load` checks everything that can be checked before the first request (API URL, key, every
  mapping entry) and reports every problem at once as the SDK's ``ConfigValidationError``;
- :meth:`Settings.route` says which compiled mapping a stream uses, or why it is skipped.
"""

from __future__ import annotations

import decimal
import difflib
import importlib.util
import json
import os
import typing as t
from dataclasses import dataclass, field, replace
from pathlib import Path

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from target_segmetrics.client import check_api_url
from target_segmetrics.compiler import (
    LookupStream,
    by_name,
    compile_entry,
    compile_lookup_stream,
    lookup_references,
)
from target_segmetrics.mapping import StreamMapping
from target_segmetrics.presets import PRESETS
from target_segmetrics.sources import MappingConfigError, schema_has_path
from target_segmetrics.store import database_url

DEFAULT_API_URL = "https://import.segmetrics.io/api/v1"


@dataclass(frozen=True)
class Settings:
    """The target's config, typed; the defaults here are the only ones (the schema shows them)."""

    account_id: str
    integration_id: str
    api_key: str = ""
    api_url: str = DEFAULT_API_URL
    mappings: t.Mapping[str, t.Any] = field(default_factory=dict)
    on_reject: str = "continue"
    on_unmapped_stream: str = "skip"
    rejects_path: str | None = None
    hard_delete: bool = False
    max_deletes_per_run: int | None = 1000
    skip_unchanged: bool = False
    state_db_path: str = ".target-segmetrics/sent.sqlite3"
    state_db_url: str | None = field(default=None, repr=False)
    """A PostgreSQL database for the store instead of the SQLite file (the password is a secret)."""
    full_resend: bool = False
    dry_run: bool = False
    dry_run_path: str | None = None
    summary_path: str | None = None
    progress_interval: float = 5.0
    request_timeout: float = 30
    max_concurrency: int = 16
    """16 in flight: ~160 records/s at a 100 ms round trip, 16x one-at-a-time, while staying polite to
    an API whose quota is not published (429s lower it further on their own)."""
    max_requests_per_second: float | None = None
    max_retries: int = 6
    batch_size_rows: int = 10000
    park_max_age_days: float = 30
    streams: t.Mapping[str, StreamMapping] = field(default_factory=dict, repr=False)
    """The compiled ``mappings``, per stream name."""
    lookups: t.Mapping[str, LookupStream] = field(default_factory=dict, repr=False)
    """The streams declared as lookup sources: remembered by key, not sent."""

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> Settings:
        """The typed view of a config the SDK has validated against :data:`SCHEMA` (unset: the default)."""

        def get(name: str, kind: t.Callable[[t.Any], t.Any]) -> t.Any:
            value = config.get(name)
            return getattr(_DEFAULTS, name) if value is None or value == "" else kind(value)

        return cls(
            account_id=str(config.get("account_id") or ""),
            integration_id=str(config.get("integration_id") or ""),
            api_key=str(config.get("api_key") or ""),
            api_url=get("api_url", str),
            mappings=dict(config.get("mappings") or {}),
            on_reject=get("on_reject", str),
            on_unmapped_stream=get("on_unmapped_stream", str),
            rejects_path=get("rejects_path", str),
            hard_delete=get("hard_delete", bool),
            # An explicit null switches the breaker off.
            max_deletes_per_run=(
                None
                if "max_deletes_per_run" in config and config["max_deletes_per_run"] is None
                else get("max_deletes_per_run", int)
            ),
            skip_unchanged=get("skip_unchanged", bool),
            state_db_path=get("state_db_path", str),
            state_db_url=get("state_db_url", str),
            full_resend=get("full_resend", bool),
            dry_run=get("dry_run", bool),
            dry_run_path=get("dry_run_path", str),
            summary_path=get("summary_path", str),
            progress_interval=get("progress_interval", float) or _DEFAULTS.progress_interval,
            request_timeout=get("request_timeout", float) or _DEFAULTS.request_timeout,
            max_concurrency=max(1, get("max_concurrency", int) or _DEFAULTS.max_concurrency),
            max_requests_per_second=get("max_requests_per_second", float) or None,
            max_retries=get("max_retries", int),
            batch_size_rows=get("batch_size_rows", int) or _DEFAULTS.batch_size_rows,
            park_max_age_days=get("park_max_age_days", float),
        )

    @property
    def destination(self) -> str:
        """Where the data goes (API URL, account, integration): what the store is keyed by."""
        return "|".join([self.api_url, self.account_id, self.integration_id])

    @property
    def fail_on_reject(self) -> bool:
        """``on_reject: fail``: the first rejected record stops the run."""
        return self.on_reject == "fail"

    def route(self, stream: str, schema: t.Mapping[str, t.Any]) -> Route:
        """Which mapping a stream uses, or why its records are skipped; with a warning to give once."""
        if stream in self.lookups:
            return Route(None, lookup=self.lookups[stream])
        if self.mappings:
            mapping = self.streams.get(stream)
            if mapping is None:
                return self._unmapped(
                    stream, f"is not listed in 'mappings' (listed: {', '.join(sorted(self.streams))})"
                )
            errors = [
                _unknown_path(stream, where, paths, schema)
                for where, paths in mapping.path_checks
                if not any(schema_has_path(schema, path) for path in paths)
            ]
            return Route(mapping, error="; ".join(errors) or None)
        mapping = by_name(stream, schema)
        if mapping is None:
            return self._unmapped(stream, "has no 'email' or 'contact_id' property and no entry in 'mappings'")
        return Route(mapping)

    def _unmapped(self, stream: str, why: str) -> Route:
        if self.on_unmapped_stream == "fail":
            return Route(None, error=f"stream '{stream}' {why}, and on_unmapped_stream is 'fail'")
        return Route(
            None,
            f"Stream '{stream}' {why}: its records are NOT sent (set on_unmapped_stream to 'fail' to stop instead)",
        )


@dataclass(frozen=True)
class Route:
    """A stream's compiled mapping (None: its records are skipped) and what to warn about once."""

    mapping: StreamMapping | None
    warning: str | None = None
    error: str | None = None
    """Why the stream cannot be sent as mapped (a path that names nothing): the run stops."""
    lookup: LookupStream | None = None
    """A lookup source: its rows are remembered, not sent."""


def _unknown_path(stream: str, where: str, paths: tuple[str, ...], schema: t.Mapping[str, t.Any]) -> str:
    """``where`` reads paths the stream's schema does not declare; with the closest declared one."""
    declared = declared_paths(schema)
    close = difflib.get_close_matches(paths[0], declared, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    named = " or ".join(repr(p) for p in paths)
    return f"{where} reads {named}, which stream '{stream}' does not declare{hint}"


def declared_paths(schema: t.Mapping[str, t.Any], prefix: str = "", depth: int = 4) -> list[str]:
    """Every dotted path a schema declares (objects followed a few levels deep)."""
    out: list[str] = []
    properties = schema.get("properties") if isinstance(schema, t.Mapping) else None
    for name, node in (properties or {}).items():
        path = f"{prefix}{name}"
        out.append(path)
        if depth > 1 and isinstance(node, t.Mapping):
            options = [node, *[o for o in node.get("anyOf", []) if isinstance(o, t.Mapping)]]
            for option in options:
                out += declared_paths(option, f"{path}.", depth - 1)
    return out


TEXT_SETTINGS = ("api_key", "account_id", "integration_id")
"""Typed as text (an id ``0042`` stays ``0042``, a key is never parsed as a number); a number written
in a JSON config is taken as its text."""
POSITIVE = (
    "request_timeout",
    "max_concurrency",
    "max_requests_per_second",
    "progress_interval",
    "batch_size_rows",
)
NOT_NEGATIVE = ("max_retries", "max_deletes_per_run", "park_max_age_days")
ENV_PREFIX = "TARGET_SEGMETRICS_"


def prepare(config: dict[str, t.Any], *, from_env: bool, known: t.Collection[str]) -> dict[str, t.Any]:
    """The config as given, made ready for the SDK's schema check without ever echoing a secret:
    numbers where text is meant become text, a key of another type is refused by name only, a
    setting in the environment that holds JSON must be valid JSON, and an unknown setting (a typo:
    ``mapping`` for ``mappings``) is named with what was probably meant. ``known``: every setting
    of the schema, the SDK's own included; names starting with ``_`` are left alone (comments)."""
    errors: list[str] = []
    prepared = dict(config)
    for name in sorted(prepared):
        if name not in known and not name.startswith("_"):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            errors.append(f"unknown setting {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    for name in TEXT_SETTINGS:
        value = prepared.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            prepared[name] = str(value)
        elif value is not None and not isinstance(value, str):
            errors.append(f"{name} must be text, got {_kind(value)}")
    if from_env:
        for name, prop in SCHEMA["properties"].items():
            raw = os.environ.get(ENV_PREFIX + name.upper())
            kinds = prop.get("type", [])
            if raw is None or not ({"object", "array"} & set(kinds if isinstance(kinds, list) else [kinds])):
                continue
            try:
                json.loads(raw)
            except json.JSONDecodeError as exc:
                errors.append(f"{ENV_PREFIX}{name.upper()} is not valid JSON ({exc.msg} at column {exc.colno})")
    if errors:
        raise ConfigValidationError("Config validation failed", errors=errors)
    return prepared


def _kind(value: t.Any) -> str:
    return {bool: "true/false", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _check_numbers(config: t.Mapping[str, t.Any], errors: list[str]) -> None:
    for name in (*POSITIVE, *NOT_NEGATIVE):
        value = config.get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
            continue
        if name in POSITIVE and value <= 0:
            errors.append(f"{name} must be more than 0, got {value}")
        elif name in NOT_NEGATIVE and value < 0:
            errors.append(f"{name} must be 0 or more, got {value}")


def _check_path(name: str, value: str | None, errors: list[str]) -> None:
    """A file the run will write: not a directory, and somewhere it can be created."""
    if not value:
        return
    path = Path(value)
    if path.is_dir():
        errors.append(f"{name} {value!r} is a directory: name a file in it")
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        errors.append(f"{name} {value!r} cannot be created: {str(ancestor)!r} is a file, not a directory")
    elif not os.access(ancestor, os.W_OK):
        errors.append(f"{name} {value!r} cannot be created: {str(ancestor)!r} is not writable (read-only?)")
    elif path.exists() and not os.access(path, os.W_OK):
        errors.append(f"{name} {value!r} is not writable")


def load(config: t.Mapping[str, t.Any]) -> Settings:
    """The settings, after every check that needs no request; all problems are reported together."""
    errors: list[str] = []
    _check_numbers(config, errors)
    if errors:
        raise ConfigValidationError("Config validation failed", errors=errors)
    settings = Settings.from_config(config)
    for name in ("rejects_path", "summary_path", "dry_run_path"):
        _check_path(name, getattr(settings, name), errors)
    if settings.state_db_url:
        try:
            database_url(settings.state_db_url)
        except ValueError as exc:
            errors.append(str(exc))
        else:
            if importlib.util.find_spec("psycopg") is None:
                errors.append(
                    "state_db_url needs psycopg 3, which is not installed: install target-segmetrics[postgres] "
                    "(pip_url: target-segmetrics[postgres])"
                )
    elif not settings.dry_run:
        _check_path("state_db_path", settings.state_db_path, errors)
    if problem := check_api_url(settings.api_url):
        errors.append(problem)
    key = config.get("api_key")
    if key is not None and (str(key) != str(key).strip() or any(ord(c) < 32 for c in str(key))):
        errors.append("api_key has spaces, a line break or control characters around or in it: copy it again")
    if not key and not settings.dry_run:
        errors.append(
            "api_key is required (or set dry_run to try a mapping without sending): the SegMetrics API key "
            "from the Account Settings page"
        )
    streams: dict[str, StreamMapping] = {}
    lookups: dict[str, LookupStream] = {}
    for stream, entry in settings.mappings.items():
        try:
            if isinstance(entry, dict) and "lookup" in entry:
                lookups[stream] = compile_lookup_stream(stream, entry)
            else:
                streams[stream] = compile_entry(stream, entry, PRESETS)
        except MappingConfigError as exc:
            errors.extend(exc.errors)
    for stream, entry in settings.mappings.items():
        if stream in lookups:
            continue
        for where, name in lookup_references(entry, f"mappings.{stream}"):
            if name in lookups:
                continue
            if name in settings.mappings:
                errors.append(
                    f'{where}: stream {name!r} is not a lookup source (its entry must be {{"lookup": {{"key": ...}}}})'
                )
            else:
                errors.append(
                    f"{where}: looks up stream {name!r}, which 'mappings' does not declare (add "
                    f'"{name}": {{"lookup": {{"key": <the key in each row>}}}})'
                )
    if errors:
        raise ConfigValidationError("Config validation failed", errors=errors)
    return replace(settings, streams=streams, lookups=lookups)


_DEFAULTS = Settings(account_id="", integration_id="")
"""Every default, read by the schema below and by :meth:`Settings.from_config`."""


SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        title="API key",
        description="SegMetrics API key (Account Settings). Sent as the Authorization header; never logged.",
    ),
    th.Property(
        "account_id",
        th.StringType,
        required=True,
        title="Account ID",
        description="SegMetrics account API id (Account Settings page).",
    ),
    th.Property(
        "integration_id",
        th.StringType,
        required=True,
        title="Integration ID",
        description="Id of the SegMetrics custom integration that receives the data.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        default=_DEFAULTS.api_url,
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
        default=_DEFAULTS.on_reject,
        allowed_values=["continue", "fail"],
        title="On reject",
        description=(
            "What a rejected record does to the run: 'continue' (log it, keep it in rejects_path, go on; "
            "exit 0) or 'fail' (stop at the first rejected record with exit code 1, before STATE "
            "passes it)."
        ),
    ),
    th.Property(
        "on_unmapped_stream",
        th.StringType,
        default=_DEFAULTS.on_unmapped_stream,
        allowed_values=["skip", "fail"],
        title="On unmapped stream",
        description=(
            "What a stream with no mapping does: 'skip' (its records are not sent; a warning, and the run "
            "summary lists it) or 'fail' (the run stops when its SCHEMA arrives, before anything of it is "
            "sent). With 'skip', Meltano's bookmark still moves past the skipped records."
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
        default=_DEFAULTS.hard_delete,
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
        default=_DEFAULTS.max_deletes_per_run,
        title="Max deletes per run",
        description=(
            "Circuit breaker: a run that would delete more objects than this stops (exit 1) before "
            "the next delete, so a tap that suddenly reports everything deleted cannot empty SegMetrics."
        ),
    ),
    th.Property(
        "skip_unchanged",
        th.BooleanType,
        default=_DEFAULTS.skip_unchanged,
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
        default=_DEFAULTS.state_db_path,
        title="Store of sent records",
        description=(
            "The target's store (SQLite): lookup rows, parked records and, with skip_unchanged, acknowledged "
            "digests. Losing it loses the parked records (they are not in SegMetrics yet) and the lookup rows "
            "from earlier runs. Not used when state_db_url is set."
        ),
    ),
    th.Property(
        "state_db_url",
        th.StringType,
        secret=True,
        title="Store in PostgreSQL",
        description=(
            "postgresql://user:password@host:5432/database: keep the store in PostgreSQL instead of the SQLite "
            "file at state_db_path (for containers whose disk is new every run, and pipelines sharing one "
            "store). Needs target-segmetrics[postgres]. The tables are created on first use. Unreachable: the "
            "run stops before sending anything. The password is never logged."
        ),
    ),
    th.Property(
        "full_resend",
        th.BooleanType,
        default=_DEFAULTS.full_resend,
        title="Full resend",
        description=(
            "With skip_unchanged: send every record this run (the store is updated). Use it after editing "
            "data in SegMetrics by hand, or when in doubt."
        ),
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=_DEFAULTS.dry_run,
        title="Dry run",
        description=(
            "Send nothing (no api_key needed): every request the target would make is written as a JSON "
            "line {method, path, body} to dry_run_path (default: the log). Mapping, validation and "
            "rejections behave exactly as in a real run; no STATE is printed (nothing landed)."
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
        default=_DEFAULTS.progress_interval,
        title="Progress interval",
        description="Seconds between progress lines per stream on long runs (a short run prints none).",
    ),
    th.Property(
        "request_timeout",
        th.NumberType,
        default=_DEFAULTS.request_timeout,
        title="Request timeout",
        description="Seconds to wait for SegMetrics to answer one request before retrying it.",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType,
        default=_DEFAULTS.max_concurrency,
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
        "park_max_age_days",
        th.NumberType,
        default=_DEFAULTS.park_max_age_days,
        title="Park max age (days)",
        description=(
            "A record that cannot be sent yet (its lookup found no row yet, or SegMetrics does not hold its "
            "contact yet) is parked in the store and tried again at the end of each run; after this many days "
            "it goes to rejects_path with its reason."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=_DEFAULTS.max_retries,
        title="Max retries",
        description=(
            "Retries of one request after 429, 5xx, timeouts or dropped connections (exponential "
            "backoff with jitter; Retry-After honoured). Past it the run stops."
        ),
    ),
).to_dict()
"""The settings schema (the SDK adds its own: batch_size_rows, add_record_metadata, stream maps...)."""
