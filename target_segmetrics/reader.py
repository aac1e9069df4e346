"""Reading Singer input: the SDK's reader, numbering lines so that bad input is named precisely.

Every problem with the input itself becomes an :class:`InputError` whose message says which line
and why (not JSON, not an object, no type, an empty stream name, a RECORD before its SCHEMA, a
SCHEMA that is not JSON Schema). The run stops there: nothing after it is read, and no STATE past
it is passed on. Unknown message types are skipped with a warning (the Singer spec grows).
"""

from __future__ import annotations

import decimal
import json
import logging
import sys
import typing as t
from collections import Counter

from singer_sdk.exceptions import InvalidJSONSchema, RecordsWithoutSchemaException
from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.singerlib.json import deserialize_json

logger = logging.getLogger("target-segmetrics")

STREAM_MESSAGES = {"SCHEMA", "RECORD", "ACTIVATE_VERSION", "BATCH"}
SNIPPET_CHARS = 60
INT_DIGITS = 4000
RECURSION_LIMIT = 5000


class InputError(Exception):
    """The Singer input is broken at a given line; the message says where and why."""


class RecordBeforeSchemaError(InputError, RecordsWithoutSchemaException):
    """A RECORD arrived for a stream whose SCHEMA has not been seen."""


class InvalidSchemaError(InputError, InvalidJSONSchema):
    """A SCHEMA message whose schema is not valid JSON Schema."""


def _parse_int(text: str) -> int | decimal.Decimal:
    """An integer; one too long for Python's int parsing stays a Decimal (the values refuse it later,
    naming the record and the field, instead of the whole line being "not valid JSON")."""
    return int(text) if len(text) <= INT_DIGITS else decimal.Decimal(text)


def _snippet(line: str) -> str:
    text = line.strip()
    return repr(text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3] + "...")


class NumberedSingerReader(SingerReader):
    """Reads Singer messages line by line, naming the line of anything it cannot take."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        # A record nested some hundreds deep is still a record (rejected with a reason, kept in the
        # rejects file), not "not valid JSON": leave room above Python's default of 1000 frames.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))

    def process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> Counter[str]:
        """Read every line and hand each message to its callback."""
        stats: Counter[str] = Counter()
        for number, line in enumerate(file_input or self.default_input, start=1):
            self.line_number = number
            if not line.strip():
                continue
            message = self._message(number, line)
            kind = message["type"]
            callback = callbacks.get(kind)
            if callback is None:
                logger.warning("Line %d: unknown Singer message type %r, skipped", number, kind)
                continue
            try:
                callback(message)
            except RecordsWithoutSchemaException:
                msg = (
                    f"Line {number}: a RECORD for stream {message.get('stream')!r} came before that stream's "
                    "SCHEMA; the tap's output is out of order (nothing after this line was read)"
                )
                raise RecordBeforeSchemaError(msg) from None
            except InvalidJSONSchema as exc:
                msg = f"Line {number}: the SCHEMA of stream {message.get('stream')!r} is not valid JSON Schema: {exc}"
                raise InvalidSchemaError(msg[:500]) from None
            except InvalidInputLine as exc:
                raise InputError(f"Line {number}: {str(exc)[:200]}") from None
            stats[kind] += 1
        return stats

    def _message(self, number: int, line: str) -> dict:
        try:
            message = deserialize_json(line, parse_int=_parse_int)
        except json.JSONDecodeError as exc:
            msg = f"Line {number}: not valid JSON ({exc.msg} at column {exc.colno}): {_snippet(line)}"
            raise InputError(msg) from None
        except (ValueError, RecursionError) as exc:
            raise InputError(f"Line {number}: not valid JSON ({type(exc).__name__})") from None
        if not isinstance(message, dict):
            msg = f"Line {number}: a Singer message is a JSON object, got {type(message).__name__}: {_snippet(line)}"
            raise InputError(msg)
        kind = message.get("type")
        if not isinstance(kind, str) or not kind:
            raise InputError(f"Line {number}: a Singer message needs a 'type' (SCHEMA, RECORD, STATE, ...)")
        if kind in STREAM_MESSAGES:
            stream = message.get("stream")
            if not isinstance(stream, str) or not stream.strip():
                raise InputError(f"Line {number}: a {kind} message needs a non-empty 'stream' name, got {stream!r}")
        if kind == "RECORD" and not isinstance(message.get("record"), dict):
            raise InputError(f"Line {number}: the RECORD for stream {message.get('stream')!r} has no 'record' object")
        return message
