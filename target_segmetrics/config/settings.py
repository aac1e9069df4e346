"""Settings: the schema users configure, a typed view of it built once, and the up-front checks.

- the settings schema itself (``--about``, Meltano's plugin definition) is in :mod:`schema`;
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

from singer_sdk.exceptions import ConfigValidationError

from target_segmetrics.config.files import check_files
from target_segmetrics.http.client import check_api_url
from target_segmetrics.mapping.checks import compile_mappings, schema_errors
from target_segmetrics.mapping.compiler import LookupStream, by_name
from target_segmetrics.mapping.mapping import StreamMapping
from target_segmetrics.mapping.tagsets import others_setting_tags
from target_segmetrics.reporting import similar_name
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
    state_db_timeout: float = 30
    """Seconds one call to the PostgreSQL store may take (connecting, a statement, a lock wait)."""
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
    ignored: t.Mapping[str, str] = field(default_factory=dict, repr=False)
    """Streams listed with a preset that maps nothing for them, and why (not sent, said once per run)."""

    @property
    def ignored_line(self) -> str | None:
        """The one INFO line naming the ignored streams and why, or None."""
        if not self.ignored:
            return None
        parts = [f"'{stream}' ({why})" for stream, why in sorted(self.ignored.items())]
        return "Not sent to SegMetrics, on purpose: " + "; ".join(parts)

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> Settings:
        """The typed view of a config the SDK has validated against the schema (unset: the default)."""

        def get(name: str, kind: t.Callable[[t.Any], t.Any]) -> t.Any:
            value = config.get(name)
            return getattr(DEFAULTS, name) if value is None or value == "" else kind(value)

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
            state_db_timeout=get("state_db_timeout", float) or DEFAULTS.state_db_timeout,
            full_resend=get("full_resend", bool),
            dry_run=get("dry_run", bool),
            dry_run_path=get("dry_run_path", str),
            summary_path=get("summary_path", str),
            progress_interval=get("progress_interval", float) or DEFAULTS.progress_interval,
            request_timeout=get("request_timeout", float) or DEFAULTS.request_timeout,
            max_concurrency=max(1, get("max_concurrency", int) or DEFAULTS.max_concurrency),
            max_requests_per_second=get("max_requests_per_second", float) or None,
            max_retries=get("max_retries", int),
            batch_size_rows=get("batch_size_rows", int) or DEFAULTS.batch_size_rows,
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
            lookup = self.lookups[stream]
            return Route(None, lookup=lookup, error=schema_errors(stream, lookup.path_checks, (), schema))
        if stream in self.ignored:
            return Route(None, ignored=self.ignored[stream])  # named in the run's one INFO line
        if self.mappings:
            mapping = self.streams.get(stream)
            if mapping is None:
                close = similar_name(stream, self.mappings)
                hint = f": did you mean the entry '{close}'? (mappings keys are stream names, exactly)" if close else ""
                return self._unmapped(
                    stream, f"is not listed in 'mappings' (listed: {', '.join(sorted(self.mappings))}){hint}"
                )
            if mapping.tags_mode == "own" and not others_setting_tags(stream, mapping, self.streams, schema):
                mapping = replace(mapping, tags_alone=True)  # its record alone decides its contacts' tags
            return Route(mapping, error=schema_errors(stream, mapping.path_checks, mapping.requires, schema))
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
    ignored: str | None = None
    """Not sent on purpose (``{"ignore": why}``, a preset's ignored stream): why."""


TEXT_SETTINGS = ("api_key", "account_id", "integration_id")
"""Typed as text (an id ``0042`` stays ``0042``, a key is never parsed as a number); a number written
in a JSON config is taken as its text."""
POSITIVE = (
    "request_timeout",
    "state_db_timeout",
    "max_concurrency",
    "max_requests_per_second",
    "progress_interval",
    "batch_size_rows",
)
NOT_NEGATIVE = ("max_retries", "max_deletes_per_run", "park_max_age_days")
ENV_PREFIX = "TARGET_SEGMETRICS_"


def prepare(config: dict[str, t.Any], *, from_env: bool, schema: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The config as given, made ready for the SDK's schema check without ever echoing a secret:
    numbers where text is meant become text, a key of another type is refused by name only, a
    setting in the environment that holds JSON must be valid JSON, and an unknown setting (a typo:
    ``mapping`` for ``mappings``) is named with what was probably meant. ``schema``: the settings
    schema, the SDK's own settings included; names starting with ``_`` are left alone (comments)."""
    known = set(schema["properties"])
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
        for name, prop in schema["properties"].items():
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
    streams, lookups, ignored = compile_mappings(settings.mappings, errors)
    if not errors:  # last: the directories a file needs are made (the run would make them anyway)
        outputs = ("rejects_path", "summary_path", "dry_run_path")
        check_files(
            settings, outputs if settings.state_db_url or settings.dry_run else (*outputs, "state_db_path"), errors
        )
    if errors:
        raise ConfigValidationError("Config validation failed", errors=errors)
    return replace(settings, streams=streams, lookups=lookups, ignored=ignored)


DEFAULTS = Settings(account_id="", integration_id="")
"""Every default, read by :mod:`schema` and by :meth:`Settings.from_config`."""
