"""The sink: one per stream; maps each record and sends it to SegMetrics.

Each step is one small method, as in the SDK's own sinks: :meth:`record_key` (how a record is
named in messages), :meth:`process_record` (map and check, reject what cannot be sent),
:meth:`submit` (hand it to the dispatcher: concurrent, in input order per object),
:meth:`process_batch` (a drain waits for the stream's records to land), :meth:`send` (one record's
requests, on a worker thread).
"""

from __future__ import annotations

import functools
import typing as t

import fastjsonschema
import jsonschema
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator, JSONSchemaValidator

from target_segmetrics.client import RejectedError
from target_segmetrics.reader import InputError
from target_segmetrics.store import digest_of

if t.TYPE_CHECKING:
    from singer_sdk.target_base import Target

    from target_segmetrics.mapping import StreamMapping
    from target_segmetrics.target import TargetSegMetrics
    from target_segmetrics.wire import Mapped

MAX_REASON_CHARS = 300


class RecordRejectedError(Exception):
    """Raised with ``on_reject: fail``: a record was rejected, so the run stops."""


class _FieldNamingValidator(JSONSchemaValidator):
    """The SDK's validator, with the failing field's path in the message."""

    def validate(self, record: dict) -> None:
        try:
            self.validator.validate(record)
        except jsonschema.ValidationError as exc:
            where = ".".join(str(part) for part in exc.absolute_path) or "(record)"
            message = exc.message
            if len(message) > MAX_REASON_CHARS:
                message = message[: MAX_REASON_CHARS - 3] + "..."
            raise InvalidRecord(f"{where}: does not match the stream's schema: {message}", record) from exc


class _CompiledValidator(BaseJSONSchemaValidator):
    """The same checks compiled to Python with fastjsonschema (some 40x faster per record)."""

    def __init__(self, schema: dict) -> None:
        super().__init__(schema)
        self._check = fastjsonschema.compile(schema, use_formats=False, use_default=False)

    def validate(self, record: dict) -> None:
        try:
            self._check(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            where = (exc.name or "data").removeprefix("data").lstrip(".") or "(record)"
            message = exc.message.removeprefix(exc.name or "").strip()
            if len(message) > MAX_REASON_CHARS:
                message = message[: MAX_REASON_CHARS - 3] + "..."
            raise InvalidRecord(f"{where}: does not match the stream's schema: {message}", record) from exc


class SegMetricsSink(BatchSink):
    """Maps a stream's records onto SegMetrics objects and upserts them."""

    MAX_SIZE_DEFAULT = 10000

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        self.segmetrics = t.cast("TargetSegMetrics", target)
        self._input_problem: str | None = None
        self._deleted_at: t.Any = None
        super().__init__(target, stream_name, schema, key_properties)
        self.mapping: StreamMapping | None = self.segmetrics.mapping_for(stream_name, self.schema)
        self.segmetrics.reporter.describe(stream_name, self.mapping.spec.name if self.mapping else None)

    # --- validation: problems become rejections, not crashes --------------------------------

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """The SDK's schema validation (``validate_records``), compiled, naming the field that fails.

        A schema fastjsonschema cannot compile falls back to the SDK's own validator (which also
        reports a schema that is not valid JSON Schema).
        """
        if not self.validate_schema:
            return None
        try:
            return _CompiledValidator(self.schema)
        except (fastjsonschema.JsonSchemaDefinitionException, TypeError, ValueError, KeyError):
            return _FieldNamingValidator(self.schema, validate_formats=self.validate_field_string_format)

    def _validate_and_parse(self, record: dict) -> dict:
        # The SDK logs a traceback and raises on an invalid record; here it is a rejection.
        self._input_problem = None
        if self._validator is not None:
            try:
                self._validator.validate(record)
            except InvalidRecord as exc:
                self._input_problem = str(getattr(exc, "error_message", exc))
        try:
            self._parse_timestamps_in_record(record=record, schema=self.schema, treatment=self.datetime_error_treatment)
        except (ValueError, TypeError) as exc:
            self._input_problem = self._input_problem or str(exc)
        return record

    def _singer_validate_message(self, record: dict) -> None:
        missing = [name for name in self.key_properties if name not in record]
        if missing and self._input_problem is None:
            self._input_problem = f"{', '.join(missing)}: key property missing from the record"

    # --- per record ----------------------------------------------------------------------------

    def record_key(self, record: t.Mapping[str, t.Any], mapped: Mapped | None = None) -> str:
        """How a record is named in messages: its key properties, else its SegMetrics key."""
        parts = [f"{name}={record[name]}" for name in self.key_properties if record.get(name) is not None]
        if parts:
            return ", ".join(parts)
        if mapped is not None and mapped.object_key:
            return mapped.object_key
        return f"line {self.segmetrics.line_number}"

    def process_record(self, record: dict, context: dict) -> None:
        """Map one record; reject it if it cannot be sent, else queue it for the batch."""
        reporter = self.segmetrics.reporter
        reporter.count(self.stream_name, "received")
        if self.mapping is None:
            reporter.count(self.stream_name, "skipped")
            return
        if self._input_problem is not None:
            self.reject(record, None, [self._input_problem], by="locally")
            return
        deleted_at, self._deleted_at = record.get("_sdc_deleted_at") or self._deleted_at, None
        if deleted_at and self.config.get("hard_delete"):
            self.process_delete(record)
            return
        mapped = self.mapping.map(record)
        if mapped.problems:
            self.reject(record, mapped, [str(p) for p in mapped.problems], by="locally")
            return
        if mapped.skipped:
            reporter.count(self.stream_name, "skipped")
            self.logger.debug("Skipped record (%s): %s", self.record_key(record, mapped), mapped.skipped)
            return
        store = self.segmetrics.store
        if store is not None and mapped.repeatable and mapped.object_key:
            mapped.digest = digest_of(mapped)
            if store.unchanged(self.mapping.spec.name, mapped.object_key, mapped.digest):
                reporter.count(self.stream_name, "unchanged")
                return
        self.submit(self.record_key(record, mapped), record, mapped)

    def process_delete(self, record: dict) -> None:
        """A record the tap reports deleted, with ``hard_delete``: delete the object in SegMetrics."""
        assert self.mapping is not None
        spec = self.mapping.spec
        if not spec.delete_by:
            self.segmetrics.reporter.count(self.stream_name, "skipped")
            self.segmetrics.warn_once(
                f"delete:{self.stream_name}",
                f"Stream '{self.stream_name}' reports deleted records, but SegMetrics cannot delete a "
                f"{spec.name}: they are skipped",
            )
            return
        mapped = self.mapping.map_delete(record)
        if mapped.problems:
            self.reject(record, mapped, [str(p) for p in mapped.problems], by="locally")
            return
        self.segmetrics.count_delete(self.stream_name)
        self.submit(self.record_key(record, mapped), record, mapped)

    def _remove_sdc_metadata_from_record(self, record: dict) -> None:
        # The SDK strips _sdc_* before the sink sees the record; keep the deletion mark.
        self._deleted_at = record.get("_sdc_deleted_at")
        super()._remove_sdc_metadata_from_record(record)

    def reject(
        self,
        record: t.Mapping[str, t.Any],
        mapped: Mapped | None,
        reasons: list[str],
        *,
        by: str,
        key: str | None = None,
    ) -> None:
        """Report a record that was not (or could not be) sent, then apply ``on_reject``."""
        key = key or self.record_key(record, mapped)
        self.segmetrics.reporter.reject(
            stream=self.stream_name,
            key=key,
            reasons=reasons,
            record=record,
            payload=mapped.payload if mapped is not None else None,
            by=by,
        )
        if self.config.get("on_reject", "continue") == "fail":
            msg = (
                f"Stopping (on_reject is 'fail'): record of stream '{self.stream_name}' ({key}) was rejected "
                f"{by}: {'; '.join(reasons)}"
            )
            raise RecordRejectedError(msg)

    # --- sending -------------------------------------------------------------------------------

    def submit(self, key: str, record: t.Mapping[str, t.Any], mapped: Mapped) -> None:
        """Hand the record to the dispatcher: sent concurrently, in input order per object."""
        checkpoints = self.segmetrics.checkpoints
        number = checkpoints.ticket()
        spec = self.mapping.spec if self.mapping is not None else None
        self.segmetrics.dispatcher.submit(
            self.stream_name,
            mapped.identities,
            functools.partial(self.send, key, record, mapped),
            functools.partial(checkpoints.landed, number),
            family=(spec.family or spec.name) if spec is not None else None,
            # An invoice or subscription naming a contact_id: every contact before it lands first.
            after_family="contact" if mapped.needs_contact else None,
        )

    def process_batch_files(self, encoding: t.Any, files: t.Sequence[str]) -> None:
        """BATCH messages (records in files) are not supported: say so instead of dropping them."""
        msg = (
            f"Line {self.segmetrics.line_number}: a BATCH message for stream '{self.stream_name}'; this target "
            "takes RECORD messages only (turn off the tap's batch mode)"
        )
        raise InputError(msg)

    def process_batch(self, context: dict) -> None:
        """Drain: wait until every record of this stream handed over so far has landed."""
        self.segmetrics.dispatcher.wait(self.stream_name)

    def send(self, key: str, record: t.Mapping[str, t.Any], mapped: Mapped) -> None:
        """Make one record's requests in order; a refusal rejects the record (fatal errors raise)."""
        reporter = self.segmetrics.reporter
        client = self.segmetrics.client
        for request in mapped.requests:
            try:
                answer = client.send(request)
            except RejectedError as exc:
                if request.method == "DELETE" and exc.status == 404:
                    reporter.count(self.stream_name, "requests")
                    continue  # already gone: done
                reasons = [f"{request.endpoint}: {error}" for error in exc.errors]
                self.reject(record, mapped, reasons, by=f"by SegMetrics (HTTP {exc.status})", key=key)
                return
            reporter.count(self.stream_name, "requests")
            if answer.tries > 1:
                reporter.count(self.stream_name, "retries", answer.tries - 1)
            if answer.throttled:
                reporter.count(self.stream_name, "throttled", answer.throttled)
        reporter.count(self.stream_name, "deleted" if mapped.delete else "upserted")
        self.remember(mapped)

    def remember(self, mapped: Mapped) -> None:
        """With ``skip_unchanged``: note what SegMetrics acknowledged (a delete forgets the object)."""
        store = self.segmetrics.store
        if store is None or self.mapping is None or not mapped.object_key:
            return
        email = mapped.payload.get("email")
        email = str(email).strip().casefold() if email else None
        if mapped.delete:
            store.forget(self.mapping.spec.name, mapped.object_key, email)
        elif mapped.digest is not None:
            store.remember(self.mapping.spec.name, mapped.object_key, email, mapped.digest)
