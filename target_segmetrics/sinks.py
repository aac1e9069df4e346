"""The sink: one per stream; maps and checks each record, then hands it to the delivery.

    reader -> **sink (map, check)** -> delivery (order, send) -> client -> checkpoints -> stdout

Each step is one small method, as in the SDK's own sinks: :meth:`get_validator` (schema checks
that name the field), :meth:`preprocess_record` (key properties present), :meth:`record_key` (how
a record is named in messages), :meth:`process_record` (map and check, reject what cannot be
sent, hand the rest to the delivery), :meth:`process_delete` (``hard_delete``),
:meth:`process_batch` (a drain waits until the stream's records have landed).
"""

from __future__ import annotations

import json
import typing as t

import fastjsonschema
import jsonschema
from singer_sdk import metrics
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator, JSONSchemaValidator
from typing_extensions import override

from target_segmetrics.errors import InputError, MappingError
from target_segmetrics.mapping.transcript import fingerprint
from target_segmetrics.mapping.values import ValueProblem, escaped, storable_key
from target_segmetrics.reporting_reasons import said_once

if t.TYPE_CHECKING:
    from singer_sdk.target_base import Target

    from target_segmetrics.config.settings import Settings
    from target_segmetrics.delivery.delivery import Delivery
    from target_segmetrics.delivery.unchanged import Seen
    from target_segmetrics.mapping.wire import Mapped

MAX_REASON_CHARS = 300


class _FieldNamingValidator(JSONSchemaValidator):
    """The SDK's validator, with the failing field's path in the message."""

    @override
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

    @override
    def __init__(self, schema: dict) -> None:
        super().__init__(schema)
        self._check = fastjsonschema.compile(schema, use_formats=False, use_default=False)

    @override
    def validate(self, record: dict) -> None:
        try:
            self._check(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            where = (exc.name or "data").removeprefix("data").lstrip(".") or "(record)"
            message = exc.message.removeprefix(exc.name or "").strip()
            if len(message) > MAX_REASON_CHARS:
                message = message[: MAX_REASON_CHARS - 3] + "..."
            raise InvalidRecord(f"{where}: does not match the stream's schema: {message}", record) from exc


class _Unlogged(metrics.Counter):
    """A counter that logs nothing: the run's ``record_count`` metric counts records landed instead
    (the reporter's), not records read."""

    @override
    def _pop(self) -> None:
        self.value = 0


class _Untimed(metrics.Timer):
    """A timer that logs nothing: sending is asynchronous, so a batch's processing time means nothing."""

    @override
    def __exit__(self, *exc_info: object) -> None:
        return None


class SegMetricsSink(BatchSink):
    """Maps a stream's records onto SegMetrics objects and hands them to the delivery."""

    MAX_SIZE_DEFAULT = 10000

    @override
    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
        *,
        delivery: Delivery,
        settings: Settings,
    ) -> None:
        self.delivery = delivery
        self.settings = settings
        self._input_problem: str | None = None
        self._seen: Seen | None = None  # the record being read, as it came (skip_unchanged)
        self._recognised = False  # ... and known unchanged: neither checked nor mapped again
        super().__init__(target, stream_name, schema, key_properties)
        route = settings.route(stream_name, self.original_schema)
        if route.error:
            raise MappingError(f"Stopping before any record of stream '{stream_name}' is sent: {route.error}")
        if route.warning:
            delivery.warn_once(stream_name, route.warning)
        self.mapping = route.mapping
        self.lookup = route.lookup
        if route.ignored is not None:
            delivery.reporter.ignore(stream_name, route.ignored)
        delivery.describe(
            stream_name,
            self.mapping.spec.name if self.mapping else "lookup rows" if self.lookup else None,
            self.mapping,
        )
        # skip_unchanged: a record of a keyed stream is first looked for as it came (delivery/unchanged.py),
        # by its key properties as they came: not one that is parsed (a date-time's text would change), nor
        # the SDK's metadata (left out of the record as it came)
        properties = self.original_schema.get("properties") or {}
        checks = (self.validate_schema, self.validate_field_string_format, str(self.datetime_error_treatment))
        self._fingerprint = (
            fingerprint(stream_name, self.original_schema, self.key_properties, settings.mappings, checks)
            if self.mapping is not None
            and self.key_properties
            and delivery.unchanged.enabled
            and not any(
                name.startswith("_sdc_") or "format" in json.dumps(properties.get(name)) for name in self.key_properties
            )
            else None
        )

    # --- the SDK's metrics: records landed are counted by the reporter -----------------------

    @override
    def get_sink_record_counter(self) -> metrics.Counter:
        return _Unlogged(metrics.Metric.RECORD_COUNT, {metrics.Tag.STREAM: self.stream_name})

    @override
    def get_batch_processing_timer(self) -> metrics.Timer:
        return _Untimed(metrics.Metric.BATCH_PROCESSING_TIME, {metrics.Tag.STREAM: self.stream_name})

    # --- checks before mapping: problems become rejections, not crashes ----------------------

    @property
    @override
    def include_sdc_metadata_properties(self) -> bool:
        """Keep ``_sdc_deleted_at`` on the record: it is what ``hard_delete`` reads."""
        return True

    @override
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

    @override
    def _validate_and_parse(self, record: dict) -> dict:
        # Private, no public seam: the SDK logs a traceback and raises (the run crashes) on an invalid
        # record or an unreadable date; here either one rejects that record only. First, a record that
        # is unchanged is known so as it came: it was checked when it landed, with this very schema.
        self._input_problem = None
        self._seen = self._as_it_came(record)
        self._recognised = self._seen is not None and self.delivery.recognised(self._seen)
        if self._recognised:
            return record
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

    @override
    def preprocess_record(self, record: dict, context: dict) -> dict:
        """A record without its key properties is rejected (the SDK would stop the run), and so is one whose
        key the store could not keep it under (a lone surrogate, a NUL): it may have to wait or be kept."""
        missing = [name for name in self.key_properties if name not in record]
        if missing:
            if self._input_problem is None:
                self._input_problem = f"{', '.join(missing)}: key property missing from the record"
            record = {**record, **dict.fromkeys(missing)}
        for name in self.key_properties:
            value = record[name]
            if self._input_problem is None and isinstance(value, str):
                try:
                    storable_key(value, "a record")
                except ValueProblem as exc:
                    self._input_problem = f"{name}: {exc}"
        return record

    # --- per record ----------------------------------------------------------------------------

    def record_key(self, record: t.Mapping[str, t.Any], mapped: Mapped | None = None) -> str:
        """How a record is named in messages: its key properties, else its SegMetrics key."""
        parts = [f"{name}={escaped(str(record[name]))}" for name in self.key_properties if record.get(name) is not None]
        if parts:
            return ", ".join(parts)
        if mapped is not None and mapped.object_key:
            return mapped.object_key
        return f"line {self.delivery.line_number()}"

    @override
    def process_record(self, record: dict, context: dict) -> None:
        """Map one record; reject it if it cannot be sent, else hand it to the delivery."""
        delivery = self.delivery
        delivery.count(self.stream_name, "received")
        if self._recognised:  # unchanged (counted so): nothing more to do
            return
        deleted_at = record.get("_sdc_deleted_at")
        for name in [name for name in record if name.startswith("_sdc_")]:
            del record[name]
        if self.lookup is not None:
            if self._input_problem is not None:
                self.reject(record, None, [self._input_problem])
            else:
                key = self.record_key(record)
                delivery.parking.remember_row(
                    self.stream_name, self.lookup, key, record, keyed=bool(self.key_properties)
                )
            return
        if self.mapping is None:
            delivery.count(self.stream_name, "skipped")
            return
        if self._input_problem is not None:
            self.reject(record, None, [self._input_problem])
            return
        if deleted_at and self.settings.hard_delete:
            self.process_delete(record)
            return
        seen = self._seen
        mapped = self.mapping.map(record, delivery.context if seen is None else seen.transcript.context)
        delivery.judge(self.stream_name, rejected=self._hand_over(record, mapped, seen))

    def _as_it_came(self, record: dict) -> Seen | None:
        """The record as it came (but the SDK's ``_sdc_`` metadata), to recognise it unchanged before it is
        checked and mapped: ``skip_unchanged``, a stream with key properties, each one in the record, and
        not a delete (``hard_delete``)."""
        if self._fingerprint is None or any(record.get(name) is None for name in self.key_properties):
            return None
        if "_sdc_deleted_at" in record and record["_sdc_deleted_at"] and self.settings.hard_delete:
            return None
        data = {name: value for name, value in record.items() if not name.startswith("_sdc_")}
        return self.delivery.unchanged.seen(
            self.stream_name, self._fingerprint, self.record_key(data), data, self.delivery.context
        )

    def _hand_over(self, record: dict, mapped: Mapped, seen: Seen | None = None) -> bool:
        """A mapped record: rejected (True), or parked, skipped or handed to the delivery. Any earlier
        rejection of its object kept for replay is superseded first, before the record is handed on,
        so SegMetrics refusing this very record (on a sender) keeps it after that, never before."""
        assert self.mapping is not None
        delivery = self.delivery
        key = self.record_key(record, mapped)
        delivery.handed(self.stream_name, key)  # newest wins: it supersedes what waits for its object
        waiting = sorted({p.waiting for p in mapped.problems if p.waiting})
        if waiting:  # not wrong, only early: kept in the store until what it waits for is there
            delivery.parking.park(self.stream_name, key, record, ", ".join(waiting), mapped)
        elif mapped.problems:
            self.reject(record, mapped, said_once(mapped.problems))
            return True
        elif mapped.skipped:
            delivery.reporter.skip(self.stream_name, mapped.skipped)
            self.logger.debug("Skipped record (%s): %s", key, mapped.skipped)
        else:
            delivery.deliver(self.stream_name, self.mapping.spec, key, record, mapped, seen=seen)
        return False

    def process_delete(self, record: dict) -> None:
        """A record the tap reports deleted, with ``hard_delete``: delete the object in SegMetrics."""
        assert self.mapping is not None
        spec = self.mapping.spec
        if not spec.delete_by:
            self.delivery.reporter.skip(self.stream_name, f"a deleted {spec.name}: SegMetrics cannot delete it")
            self.delivery.warn_once(
                f"delete:{self.stream_name}",
                f"Stream '{self.stream_name}' reports deleted records, but SegMetrics cannot delete a "
                f"{spec.name}: they are skipped",
            )
            return
        mapped = self.mapping.map_delete(record, self.delivery.context)
        self.delivery.handed(self.stream_name, self.record_key(record, mapped))
        if mapped.problems:
            self.reject(record, mapped, said_once(mapped.problems))
            return
        self.delivery.count_delete(self.stream_name)
        self.delivery.deliver(self.stream_name, spec, self.record_key(record, mapped), record, mapped)

    def reject(self, record: t.Mapping[str, t.Any], mapped: Mapped | None, reasons: list[str]) -> None:
        """A record that cannot be sent as it is: reported (and ``on_reject`` applied)."""
        self.delivery.reject(self.stream_name, self.record_key(record, mapped), record, mapped, reasons, by="locally")

    # --- batches -------------------------------------------------------------------------------

    @override
    def process_batch_files(self, encoding: t.Any, files: t.Sequence[str]) -> None:
        """BATCH messages (records in files) are not supported: say so instead of dropping them."""
        msg = (
            f"Line {self.delivery.line_number()}: a BATCH message for stream '{self.stream_name}'; this target "
            "takes RECORD messages only (turn off the tap's batch mode)"
        )
        raise InputError(msg)

    @override
    def process_batch(self, context: dict) -> None:
        """Drain: wait until every record of this stream handed over so far has landed."""
        self.delivery.wait(self.stream_name)
