"""Value conversion: every rule that turns a tap's value into one SegMetrics accepts, in one place.

A converter takes one value and returns it in plain JSON types (dates in SegMetrics'
``YYYY-MM-DD HH:MM:SS`` form, numbers written out where text is expected, ``Decimal`` to
``int``/``float``), or raises :class:`ValueProblem` saying why it cannot be sent, with the same rules
the import API applies, so that a value SegMetrics would refuse is never sent. The objects'
fields (``objects.py``) and the mapping's transforms (``sources.py``) both use these.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import typing as t

Converter = t.Callable[[t.Any], t.Any]
"""One value in, the value as sent out (or a :class:`ValueProblem`)."""

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# A number below this is read as epoch seconds, above it as epoch milliseconds
# (1e11 seconds is the year 5138; 1e11 milliseconds is March 1973).
_EPOCH_MS_THRESHOLD = 100_000_000_000
_EPOCH_DIGITS = re.compile(r"^-?\d{9,16}$")


class ValueProblem(ValueError):
    """A value that cannot be sent as it is; the message says why (no field name)."""


def to_segmetrics_datetime(value: t.Any) -> str:
    """Return ``value`` as ``YYYY-MM-DD HH:MM:SS`` in UTC, read as :func:`to_moment` reads it."""
    return to_moment(value).replace(tzinfo=None).strftime(DATE_FORMAT)


def to_moment(value: t.Any) -> dt.datetime:
    """Return ``value`` as a moment in UTC (an aware ``datetime``); a naive time is read as UTC.

    Accepts ``datetime``/``date`` objects (the SDK parses ``date-time`` properties), ISO 8601
    strings (``Z``, offsets, fractions, a space instead of ``T``, date only), compact dates
    (``20240115``), and epoch numbers (milliseconds; values below 1e11 are read as seconds), also as
    digit strings.
    """
    if isinstance(value, bool):
        raise ValueProblem(f"{value!r} is not a date")
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float, decimal.Decimal)):
        moment = _compact_date(str(value)) or _from_epoch(value)
    elif isinstance(value, str):
        text = value.strip()
        compact = _compact_date(text)
        if compact is not None:
            moment = compact
        elif _EPOCH_DIGITS.match(text):
            moment = _from_epoch(int(text))
        else:
            try:
                moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueProblem(f"{_short(value)} is not an ISO 8601 date or epoch milliseconds") from None
    else:
        raise ValueProblem(f"{_short(value)} is not a date")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def to_segmetrics_date(value: t.Any) -> str:
    """Return ``value`` as ``YYYY-MM-DD`` (UTC), from the same inputs as dates with a time."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", value.strip()):
        return value.strip()
    return to_segmetrics_datetime(value)[:10]


def _compact_date(text: str) -> dt.datetime | None:
    """``20240115`` is the 15th of January 2024, not a second in August 1970."""
    if len(text) == 8 and text.isdigit() and 1900 <= int(text[:4]) <= 2200:
        try:
            return dt.datetime.strptime(text, "%Y%m%d")
        except ValueError:
            return None
    return None


MAX_DIGITS = 40
"""The largest number taken is below 10**40 (an id, an amount, a count): a bigger one is refused, so
a hostile ``1e999999999`` never becomes a billion-digit integer."""


def _too_large(number: int | decimal.Decimal) -> bool:
    if isinstance(number, decimal.Decimal):
        return number.is_finite() and number != 0 and number.adjusted() >= MAX_DIGITS
    return abs(number) >= 10**MAX_DIGITS


def _sized(number: int, value: t.Any) -> int:
    if _too_large(number):
        raise ValueProblem(f"{_short(value)} is too large (more than {MAX_DIGITS} digits)")
    return number


def _from_epoch(number: float | decimal.Decimal) -> dt.datetime:
    if isinstance(number, (int, decimal.Decimal)) and (_too_large(number) or abs(number) >= 10**20):
        raise ValueProblem(f"{_short(number)} is out of range for an epoch timestamp")
    seconds = float(number)
    if abs(seconds) >= _EPOCH_MS_THRESHOLD:
        seconds /= 1000.0
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ValueProblem(f"{number} is out of range for an epoch timestamp") from None


def opened(value: t.Any) -> t.Any:
    """``value``, or the list or object the SDK's flattening wrote as JSON text in its place (past its
    max depth); :class:`ValueProblem` when such text is not JSON or nests too deep to read."""
    if type(value) is not str or value[:1] not in ("[", "{"):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        raise ValueProblem(
            f"expected a list or object, got text that is not JSON (or nests too deep): {_short(value)}"
        ) from None


def _short(value: t.Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_scalar(value: t.Any) -> t.Any:
    """Return a JSON-ready scalar: ``Decimal`` to int/float, dates to SegMetrics' format."""
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueProblem(f"{value} is not a finite number")
        if _too_large(value):
            raise ValueProblem(f"{_short(value)} is too large (more than {MAX_DIGITS} digits)")
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _sized(value, value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueProblem(f"{value} is not a number SegMetrics accepts")
    if isinstance(value, (dt.datetime, dt.date)):
        return to_segmetrics_datetime(value)
    return value


def checked_text(text: str) -> str:
    """Text that can travel as UTF-8 JSON (a lone surrogate from a broken tap cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueProblem(f"{_short(text)} holds a character that is not valid Unicode (at {exc.start})") from None
    return text


def unstorable(text: str) -> str | None:
    """Why the store cannot keep a row under ``text`` (None: it can): a lone surrogate is not UTF-8 (neither
    back end takes it) and PostgreSQL keeps no NUL. Both are refused on both back ends alike."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a character that is not valid Unicode (at {exc.start})"
    if "\x00" in text:
        return "holds a NUL character (\\x00)"
    return None


def storable_key(text: str, what: str) -> str:
    """``text`` if the store can keep ``what`` under it, else :class:`ValueProblem` saying why."""
    problem = unstorable(text)
    if problem is not None:
        raise ValueProblem(f"{_short(text)} {problem}: the store cannot keep {what} under it")
    return text


def escaped(text: str) -> str:
    """``text`` for a message or a log line: a lone surrogate and a NUL written as escapes (``\\ud800``,
    ``\\x00``), everything else as it is."""
    if unstorable(text) is None:
        return text
    return "".join(ascii(c)[1:-1] if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in text)


def as_text(value: t.Any) -> str:
    """A string field's value: strings as they are, numbers written out; nothing else."""
    if isinstance(value, str):
        return checked_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else _short(value)
        raise ValueProblem(f"expected text, got {kind}")
    number = json_scalar(value)
    return str(number)


def as_contact_id(value: t.Any) -> str | int:
    """A contact id is an integer or a string (numbers that are whole stay integers)."""
    if isinstance(value, bool):
        raise ValueProblem(f"{value!r} is not an id")
    if isinstance(value, int):
        return _sized(value, value)
    if isinstance(value, (float, decimal.Decimal)):
        number = json_scalar(value)
        if isinstance(number, int):
            return number
        raise ValueProblem(f"{_short(value)} is not a whole number")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueProblem("empty id")
        if "\x00" in text:
            raise ValueProblem(f"{_short(text)} holds a NUL character (\\x00): not an id")
        return checked_text(text)
    raise ValueProblem(f"expected an id (text or integer), got {_short(value)}")


def as_email(value: t.Any) -> str:
    """An email address: text with an ``@`` in it, trimmed of whitespace and of a byte order mark at either
    end (a CSV export's first cell starts with one); a NUL character or a byte order mark inside it is
    refused (no address holds one, and SegMetrics would keep it as part of the address)."""
    text = as_text(value).strip().strip("\ufeff").strip()
    if "\x00" in text:
        raise ValueProblem(f"{_short(text)} holds a NUL character (\\x00): not an email address")
    if "\ufeff" in text:
        raise ValueProblem(f"{_short(text)} holds a byte order mark (\\ufeff) inside it: not an email address")
    if "@" not in text or text.startswith("@") or text.endswith("@") or any(c.isspace() for c in text):
        raise ValueProblem(f"{_short(text)} is not an email address")
    return text


def as_status(value: t.Any) -> str:
    """``active`` or ``inactive`` (booleans are read as "is active")."""
    if isinstance(value, bool):
        return "active" if value else "inactive"
    text = as_text(value).strip().lower()
    if text not in ("active", "inactive"):
        raise ValueProblem(f"{_short(value)} is not one of active, inactive")
    return text


def as_tag(value: t.Any) -> str | int | dict[str, t.Any] | None:
    """One tag: a name (text), an id (integer) or ``{id, name, date}``; None when empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueProblem(f"{value!r} is not a tag (use a name, an id or an object)")
    if isinstance(value, str):
        name = checked_text(value.strip())
        return name or None
    if isinstance(value, int):
        return value
    if isinstance(value, (float, decimal.Decimal)):
        number = json_scalar(value)
        if isinstance(number, int):
            return number
        raise ValueProblem(f"{value} is not a tag id")
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"id", "name", "date"})
        if unknown:
            raise ValueProblem(f"a tag object may hold only id, name, date (not {', '.join(unknown)})")
        tag: dict[str, t.Any] = {}
        if value.get("id") is not None:
            tag["id"] = as_contact_id(value["id"])
        if value.get("name") not in (None, ""):
            tag["name"] = as_text(value["name"]).strip()
        if value.get("date") not in (None, ""):
            tag["date"] = to_segmetrics_datetime(value["date"])
        if "id" not in tag and not tag.get("name"):
            return None
        return tag
    raise ValueProblem(f"{_short(value)} is not a tag")


def tag_identity(tag: str | int | dict[str, t.Any]) -> tuple[str, str]:
    """What makes two tags the same tag (for dropping duplicates)."""
    if isinstance(tag, dict):
        return ("id", str(tag["id"])) if "id" in tag else ("name", str(tag["name"]).casefold())
    if isinstance(tag, int):
        return ("id", str(tag))
    return ("name", tag.casefold())


def as_custom_value(value: t.Any) -> t.Any:
    """A custom field's value: a scalar (text, number, boolean) or null (which removes it)."""
    if isinstance(value, str):
        return checked_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float, decimal.Decimal, dt.date)):
        return json_scalar(value)
    kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else _short(value)
    raise ValueProblem(f"a custom field holds one value (text, number, boolean), got {kind}")


def parse_decimal(
    value: t.Any,
    what: str,
    *,
    text: str | None = None,
    shown: t.Callable[[t.Any], str] = _short,
) -> decimal.Decimal:
    """A number or numeric text as a finite ``Decimal``; else ``<value> is not <what>``.

    Booleans, unparseable text and non-finite values (``NaN``, ``Infinity``) are refused. ``text`` is
    what to parse when the caller has cleaned the value up first (``units_to_cents`` drops thousands
    commas); ``shown`` writes the value into the message.
    """
    if isinstance(value, bool):
        raise ValueProblem(f"{shown(value)} is not {what}")
    try:
        number = decimal.Decimal(str(value).strip() if text is None else text)
    except decimal.InvalidOperation:
        raise ValueProblem(f"{shown(value)} is not {what}") from None
    if not number.is_finite():
        raise ValueProblem(f"{shown(value)} is not {what}")
    if _too_large(number):
        raise ValueProblem(f"{_short(value)} is too large (more than {MAX_DIGITS} digits)")
    return number


def as_cents(value: t.Any) -> int:
    """Money in integer cents. Whole numbers (or whole-number text) only; an amount in currency
    units needs the ``cents`` transform, and the message says so."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _sized(value, value)
    amount = parse_decimal(value, "an amount in cents")
    if amount != amount.to_integral_value():
        raise ValueProblem(
            f'{value} is not a whole number of cents (an amount in currency units needs "transform": "cents")'
        )
    return int(amount)


def as_count(value: t.Any) -> int:
    """A whole number of zero or more (clicks, impressions)."""
    number = as_whole(value)
    if number < 0:
        raise ValueProblem(f"{value} is negative")
    return number


def as_positive(value: t.Any) -> int:
    """A whole number of one or more (quantity, frequency)."""
    number = as_whole(value)
    if number < 1:
        raise ValueProblem(f"{value} is not 1 or more")
    return number


def as_whole(value: t.Any) -> int:
    """A whole number (also written as text or as 3.0)."""
    number = parse_decimal(value, "a whole number")
    if number != number.to_integral_value():
        raise ValueProblem(f"{_short(value)} is not a whole number")
    return int(number)


def as_boolean(value: t.Any) -> bool:
    """True or false (also written as text: true/false, yes/no, on/off, 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, decimal.Decimal)) and value in (0, 1):
        return value == 1
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "on"):
        return True
    if text in ("false", "0", "no", "n", "off"):
        return False
    raise ValueProblem(f"{_short(value)} is not true or false")


def as_billing_cycle(value: t.Any) -> str:
    """``year``, ``month``, ``week`` or ``day`` (plurals and -ly forms are read too)."""
    text = as_text(value).strip().lower()
    for cycle in ("year", "month", "week", "day"):
        if text in (cycle, f"{cycle}s", f"{cycle}ly") or (cycle == "day" and text == "daily"):
            return cycle
    raise ValueProblem(f"{_short(value)} is not one of year, month, week, day")


# --- transforms (a mapping's ``transform``) ---------------------------------------------------


def to_number(value: t.Any) -> int | float:
    """A number (also written as text) as an int or a float."""
    return t.cast("int | float", json_scalar(parse_decimal(value, "a number", shown=repr)))


def to_text(value: t.Any) -> str:
    """Any scalar as text; booleans as ``true``/``false`` (for the text transforms and ``format``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return as_text(value)


def unwrap(value: t.Any) -> t.Any:
    """``{"value": x, ...}`` becomes ``x`` (older tap-hubspot releases wrap every property so)."""
    if type(value) is dict and "value" in value:
        return value["value"]
    if type(value) is str and value.startswith('{"value"'):
        # The same wrapper as JSON text: what the SDK's flattening makes of it past its max depth.
        try:
            wrapper = opened(value)
        except ValueProblem:
            return value
        return wrapper["value"] if type(wrapper) is dict and "value" in wrapper else value
    return value


def key_text(value: t.Any) -> str:
    """How a value is looked up in a ``map``: the way a person writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, decimal.Decimal)):
        number = json_scalar(decimal.Decimal(str(value)))
        return str(number)
    if isinstance(value, str):
        return value.strip()
    return str(value)
