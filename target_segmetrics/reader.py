"""Reading Singer input: the SDK's reader, numbering lines so that bad input is named precisely.

Every problem with the input itself becomes an :class:`InputError` whose message says which line
and why (not JSON, not an object, no type, an empty stream name, a RECORD before its SCHEMA, a
SCHEMA that is not JSON Schema). The run stops there: nothing after it is read, and no STATE past
it is passed on. Unknown message types are skipped with a warning (the Singer spec grows).

A STATE's ``value`` is kept as the very text it had on the input line (:class:`StateText`, checked to
be JSON but not kept as Python objects): its numbers (a float, an integer of any length), escapes and
spacing go back out unchanged, and a large STATE costs one reading, not objects to compare and write.
"""

from __future__ import annotations

import decimal
import json
import logging
import re
import sys
import typing as t
from collections import Counter

from singer_sdk.exceptions import InvalidJSONSchema, RecordsWithoutSchemaException
from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.singerlib.json import deserialize_json

from target_segmetrics.errors import InputError, InvalidSchemaError, RecordBeforeSchemaError

logger = logging.getLogger("target-segmetrics")

STREAM_MESSAGES = {"SCHEMA", "RECORD", "ACTIVATE_VERSION", "BATCH"}
SNIPPET_CHARS = 60
INT_DIGITS = 4000
RECURSION_LIMIT = 5000
_SPACE = re.compile(r"[ \t\n\r]*")


def _parse_int(text: str) -> int | decimal.Decimal:
    """An integer; one too long for Python's int parsing stays a Decimal (the values refuse it later,
    naming the record and the field, instead of the whole line being "not valid JSON")."""
    return int(text) if len(text) <= INT_DIGITS else decimal.Decimal(text)


def _skip(line: str, at: int) -> int:
    """Past any JSON whitespace from ``at``."""
    found = _SPACE.match(line, at)
    return found.end() if found else at


_DECODER = json.JSONDecoder(parse_float=decimal.Decimal, parse_int=_parse_int)
_CHECKER = json.JSONDecoder(parse_float=len, parse_int=len)
"""Checks that a STATE's value is JSON: its numbers are not made into numbers (only its text is kept)."""


class StateText(str):
    """The exact JSON text of a STATE message's ``value`` (not null: that is read as None)."""

    __slots__ = ()


def _state(line: str) -> dict | None:
    """A line holding one JSON object, read member by member, its ``value`` kept as its text
    (:class:`StateText`; the last one, as JSON's own reading keeps it); None when the line is not
    such an object (the ordinary reading then names what is wrong)."""
    scan = _DECODER.raw_decode
    message: dict = {}
    try:
        at = _skip(line, 0)
        if line[at : at + 1] != "{":
            return None
        at = _skip(line, at + 1)
        if line[at : at + 1] == "}":
            at += 1
        else:
            while True:
                if line[at : at + 1] != '"':
                    return None
                key, at = scan(line, at)
                at = _skip(line, at)
                if line[at : at + 1] != ":":
                    return None
                start = _skip(line, at + 1)
                if key == "value":
                    at = _CHECKER.raw_decode(line, start)[1]
                    text = line[start:at]
                    message[key] = None if text == "null" else StateText(text)
                else:
                    message[key], at = scan(line, start)
                at = _skip(line, at)
                if line[at : at + 1] == ",":
                    at = _skip(line, at + 1)
                    continue
                if line[at : at + 1] != "}":
                    return None
                at += 1
                break
        if _skip(line, at) != len(line):
            return None
    except (ValueError, RecursionError):
        return None
    return message


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
        if '"STATE"' in line:  # read so that its value's text is kept (a RECORD is read the plain way)
            found = _state(line)
            if found is not None and found.get("type") == "STATE":
                return found
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
