"""The target's settings schema: what ``--about`` shows and Meltano's plugin definitions list.

Every default comes from :class:`target_segmetrics.config.settings.Settings` (one place); the SDK adds its
own settings (stream maps, flattening, ...) to this schema when it validates a config.
"""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from target_segmetrics.config.settings import DEFAULTS

SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        title="API key",
        description=(
            "Required unless dry_run. SegMetrics API key (Account Settings). Sent as the Authorization header; "
            "never logged."
        ),
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
        default=DEFAULTS.api_url,
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
        default=DEFAULTS.on_reject,
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
        default=DEFAULTS.on_unmapped_stream,
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
        default=DEFAULTS.hard_delete,
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
        default=DEFAULTS.max_deletes_per_run,
        title="Max deletes per run",
        description=(
            "Circuit breaker: a run that would delete more objects than this stops (exit 1) before "
            "the next delete, so a tap that suddenly reports everything deleted cannot empty SegMetrics."
        ),
    ),
    th.Property(
        "skip_unchanged",
        th.BooleanType,
        default=DEFAULTS.skip_unchanged,
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
        default=DEFAULTS.state_db_path,
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
        "state_db_timeout",
        th.NumberType,
        default=DEFAULTS.state_db_timeout,
        title="Store timeout",
        description=(
            "With state_db_url: seconds one call to the PostgreSQL store may take (connecting, a statement, a "
            "lock wait; a server that does not answer at all is given up 3 s later). Past it the run stops "
            "with one line (exit 1); the STATE printed covers only what the store kept."
        ),
    ),
    th.Property(
        "full_resend",
        th.BooleanType,
        default=DEFAULTS.full_resend,
        title="Full resend",
        description=(
            "With skip_unchanged: send every record this run (the store is updated). Use it after editing "
            "data in SegMetrics by hand, or when in doubt."
        ),
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=DEFAULTS.dry_run,
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
        default=DEFAULTS.progress_interval,
        title="Progress interval",
        description="Seconds between progress lines per stream on long runs (a short run prints none).",
    ),
    th.Property(
        "request_timeout",
        th.NumberType,
        default=DEFAULTS.request_timeout,
        title="Request timeout",
        description="Seconds to wait for SegMetrics to answer one request before retrying it.",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType,
        default=DEFAULTS.max_concurrency,
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
        default=DEFAULTS.park_max_age_days,
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
        default=DEFAULTS.max_retries,
        title="Max retries",
        description=(
            "Retries of one request after 429, 5xx, timeouts or dropped connections (exponential "
            "backoff with jitter; Retry-After honoured). Past it the run stops."
        ),
    ),
    th.Property(
        "batch_size_rows",
        th.IntegerType,
        default=DEFAULTS.batch_size_rows,
        title="Batch size rows",
        description=(
            "Records per batch. Records are sent as they arrive; at a batch's end the target waits until the "
            "batch has landed, and STATE is passed on at the latest every this many acknowledged records. "
            "Keep it well above max_concurrency."
        ),
    ),
    th.Property(
        "load_method",
        th.StringType,
        default="upsert",
        allowed_values=["upsert"],
        title="Load method",
        description=(
            "Always 'upsert': every record is an upsert keyed by the object's id (contact_id or email, invoice "
            "or subscription id, ...); nothing is appended twice or overwritten wholesale."
        ),
    ),
).to_dict()
"""The settings schema (the SDK adds its own: add_record_metadata, validate_records, stream maps...)."""
