"""What each SegMetrics object needs: endpoint, fields, and local validation.

Every payload is checked here before it is sent, with the same rules the import API applies,
so that a payload SegMetrics would refuse is never sent. Values are also normalised here into
plain JSON types (dates in SegMetrics' ``YYYY-MM-DD HH:MM:SS`` form, numbers for strings where a
string is expected, ``Decimal`` to ``int``/``float``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import typing as t
from dataclasses import dataclass, field

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# A number below this is read as epoch seconds, above it as epoch milliseconds
# (1e11 seconds is the year 5138; 1e11 milliseconds is March 1973).
_EPOCH_MS_THRESHOLD = 100_000_000_000
_EPOCH_DIGITS = re.compile(r"^-?\d{9,16}$")


class ValueProblem(ValueError):
    """A value that cannot be sent as it is; the message says why (no field name)."""


def to_segmetrics_datetime(value: t.Any) -> str:
    """Return ``value`` as ``YYYY-MM-DD HH:MM:SS`` in UTC.

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
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.strftime(DATE_FORMAT)


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


def _from_epoch(number: float | decimal.Decimal) -> dt.datetime:
    seconds = float(number)
    if abs(seconds) >= _EPOCH_MS_THRESHOLD:
        seconds /= 1000.0
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ValueProblem(f"{number} is out of range for an epoch timestamp") from None


def _short(value: t.Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_scalar(value: t.Any) -> t.Any:
    """Return a JSON-ready scalar: ``Decimal`` to int/float, dates to SegMetrics' format."""
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueProblem(f"{value} is not a finite number")
        return int(value) if value == value.to_integral_value() else float(value)
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
        return value
    if isinstance(value, (float, decimal.Decimal)):
        number = json_scalar(value)
        if isinstance(number, int):
            return number
        raise ValueProblem(f"{value} is not a whole number")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueProblem("empty id")
        return checked_text(text)
    raise ValueProblem(f"expected an id (text or integer), got {_short(value)}")


def as_email(value: t.Any) -> str:
    """An email address: trimmed text with an ``@`` in it."""
    text = as_text(value).strip()
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
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, (float, decimal.Decimal, dt.date)):
        return json_scalar(value)
    kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else _short(value)
    raise ValueProblem(f"a custom field holds one value (text, number, boolean), got {kind}")


def as_cents(value: t.Any) -> int:
    """Money in integer cents. Whole numbers (or whole-number text) only; an amount in currency
    units needs the ``cents`` transform, and the message says so."""
    if isinstance(value, bool):
        raise ValueProblem(f"{value!r} is not an amount in cents")
    if isinstance(value, int):
        return value
    try:
        amount = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise ValueProblem(f"{_short(value)} is not an amount in cents") from None
    if not amount.is_finite():
        raise ValueProblem(f"{_short(value)} is not an amount in cents")
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
    if isinstance(value, bool):
        raise ValueProblem(f"{value!r} is not a whole number")
    try:
        number = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise ValueProblem(f"{_short(value)} is not a whole number") from None
    if not number.is_finite() or number != number.to_integral_value():
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


Converter = t.Callable[[t.Any], t.Any]


@dataclass(frozen=True)
class ObjectSpec:
    """One kind of SegMetrics object: where it is sent and what its payload may hold."""

    name: str
    endpoint: str
    fields: dict[str, Converter]
    one_of: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    has_tags: bool = False
    has_custom_fields: bool = False
    key_fields: tuple[str, ...] = field(default=())
    item_fields: dict[str, Converter] = field(default_factory=dict)
    """Fields of each entry of ``items`` (invoices)."""
    item_required: tuple[str, ...] = ()
    delete_by: tuple[str, ...] = ()
    """Fields that name the object in ``DELETE <endpoint>/<value>`` (first present wins); empty: no delete."""
    key_together: bool = False
    """The key fields name the object together (ad + date), not each on its own."""
    family: str = ""
    """Objects of one family are the same thing in SegMetrics (a tag event changes a contact)."""
    compose: t.Callable[[dict[str, t.Any]], dict[str, t.Any]] | None = None
    """Turns the mapped fields into the API's shape, where they differ."""
    links_contact: bool = False
    """It names a contact (contact_id or email) that SegMetrics must hold: invoices, subscriptions."""

    def identities(self, payload: dict[str, t.Any]) -> tuple[tuple[str, str, str], ...]:
        """Every way SegMetrics may match this payload to a held object (for ordering sends).

        A contact is matched by ``contact_id`` and also by ``email`` (the email-match rule), so both
        count: two records sharing either one are applied in input order.
        """
        if self.key_together:
            values = [str(payload.get(name, "")).strip() for name in self.key_fields]
            return ((self.name, "+".join(self.key_fields), "|".join(values)),) if all(values) else ()
        out = []
        for name in self.key_fields:
            value = payload.get(name)
            if value not in (None, ""):
                text = str(value).strip()
                out.append((self.family or self.name, name, text.casefold() if name == "email" else text))
        if self.links_contact:
            # An invoice or subscription needs its contact: it is ordered with that contact's records
            # (after the record that creates it, before a delete of it).
            for name in ("contact_id", "email"):
                value = payload.get(name)
                if value not in (None, ""):
                    text = str(value).strip()
                    out.append(("contact", name, text.casefold() if name == "email" else text))
        return tuple(out)

    def key_of(self, payload: dict[str, t.Any]) -> str | None:
        """A short human-readable key for the object (``contact_id=7`` / ``email=a@b.c``)."""
        for name in self.key_fields:
            if payload.get(name) not in (None, ""):
                return f"{name}={payload[name]}"
        return None


CONTACT = ObjectSpec(
    name="contact",
    endpoint="contact",
    fields={
        "contact_id": as_contact_id,
        "email": as_email,
        "first_name": as_text,
        "last_name": as_text,
        "status": as_status,
        "date_created": to_segmetrics_datetime,
        "last_updated": to_segmetrics_datetime,
        "utm_source": as_text,
        "utm_medium": as_text,
        "utm_campaign": as_text,
        "utm_content": as_text,
        "utm_term": as_text,
        "referring_url": as_text,
        "optin_url": as_text,
        "ip_address": as_text,
        "affiliate_id": as_text,
        "geo_lat": as_text,
        "geo_lon": as_text,
    },
    one_of=("contact_id", "email"),
    has_tags=True,
    has_custom_fields=True,
    key_fields=("contact_id", "email"),
    delete_by=("contact_id", "email"),
)

_CONTACT_LINK: dict[str, Converter] = {"contact_id": as_contact_id, "email": as_email}

INVOICE = ObjectSpec(
    name="invoice",
    endpoint="invoice",
    fields={
        "id": as_contact_id,
        **_CONTACT_LINK,
        "amount": as_cents,
        "paid": as_cents,
        "date_created": to_segmetrics_datetime,
        "is_refunded": as_boolean,
        "discount": as_cents,
        "tax": as_cents,
        "shipping": as_cents,
    },
    one_of=("contact_id", "email"),
    required=("id", "amount", "paid", "date_created"),
    key_fields=("id",),
    links_contact=True,
    item_fields={
        "id": as_contact_id,
        "name": as_text,
        "product_id": as_contact_id,
        "amount": as_cents,
        "subscription_id": as_contact_id,
    },
    item_required=("name", "product_id", "amount"),
    delete_by=("id",),
)

SUBSCRIPTION = ObjectSpec(
    name="subscription",
    endpoint="subscription",
    fields={
        "id": as_contact_id,
        **_CONTACT_LINK,
        "amount": as_cents,
        "product_id": as_contact_id,
        "start_date": to_segmetrics_datetime,
        "last_bill_date": to_segmetrics_datetime,
        "billing_cycle": as_billing_cycle,
        "frequency": as_positive,
        "name": as_text,
        "quantity": as_positive,
        "trial_end_date": to_segmetrics_datetime,
        "end_date": to_segmetrics_datetime,
        "canceled_date": to_segmetrics_datetime,
    },
    one_of=("contact_id", "email"),
    required=("id", "amount", "product_id", "start_date", "last_bill_date", "billing_cycle", "frequency"),
    key_fields=("id",),
    links_contact=True,
    delete_by=("id",),
)

PRODUCT = ObjectSpec(
    name="product",
    endpoint="product",
    fields={"id": as_contact_id, "name": as_text},
    required=("id", "name"),
    key_fields=("id",),
)


def compose_ad_performance(payload: dict[str, t.Any]) -> dict[str, t.Any]:
    """Flat mapped fields to the API's shape: names turn ids into ``{id, name}`` objects."""
    out: dict[str, t.Any] = {n: payload[n] for n in ("date", "spend", "clicks", "impressions") if n in payload}
    campaign = payload.get("adcampaign")
    if campaign is not None:
        out["adcampaign"] = (
            {"id": campaign, "name": payload["adcampaign_name"]} if "adcampaign_name" in payload else campaign
        )
    adset = payload.get("adset")
    if adset is not None:
        out["adset"] = (
            {"id": adset, "name": payload["adset_name"], **({"adcampaign": campaign} if campaign is not None else {})}
            if "adset_name" in payload
            else adset
        )
    ad = payload.get("ad")
    if ad is not None:
        out["ad"] = {"id": ad, "name": payload["ad_name"]} if "ad_name" in payload else ad
    return out


AD_PERFORMANCE = ObjectSpec(
    name="ad_performance",
    endpoint="ad/performance",
    fields={
        "ad": as_contact_id,
        "ad_name": as_text,
        "date": to_segmetrics_date,
        "spend": as_cents,
        "clicks": as_count,
        "impressions": as_count,
        "adcampaign": as_contact_id,
        "adcampaign_name": as_text,
        "adset": as_contact_id,
        "adset_name": as_text,
    },
    required=("ad", "date", "spend"),
    key_fields=("ad", "date"),
    key_together=True,
    compose=compose_ad_performance,
)

TAG_EVENTS = ObjectSpec(
    name="tags",
    endpoint="tags/add",
    fields=dict(_CONTACT_LINK),
    one_of=("contact_id", "email"),
    has_tags=True,
    key_fields=("contact_id", "email"),
    family="contact",
)

OBJECTS: dict[str, ObjectSpec] = {
    spec.name: spec for spec in (CONTACT, INVOICE, SUBSCRIPTION, PRODUCT, AD_PERFORMANCE, TAG_EVENTS)
}
