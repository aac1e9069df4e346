"""Strict request-body validation for the SegMetrics sandbox.

Every validator returns a list of human-readable problems (empty = valid). Bodies are checked
completely, so a 400 answer lists EVERY problem, not just the first one.

Rules shared by all endpoints (see /work/shared/reference/segmetrics-import-api.md):

* unknown fields are rejected (``unknown field 'foo'``) - this catches target mapping bugs;
* ``null`` is rejected for every field except custom-field values (``'x' must not be null``):
  the target should omit a field it has no value for;
* integer money fields (cents) reject floats, numeric strings and booleans;
* datetimes are ``YYYY-MM-DD HH:MM:SS``; the ad-performance ``date`` is ``YYYY-MM-DD``;
* ids (contact, invoice, product, ...) are non-empty strings or integers (not booleans).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

__all__ = [
    "Checker",
    "validate_ad_performance",
    "validate_contact",
    "validate_invoice",
    "validate_product",
    "validate_subscription",
    "validate_tag_change",
]

Checker = Callable[[Any, str], list[str]]

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")

CONTACT_STATUSES = ("active", "inactive")
BILLING_CYCLES = ("year", "month", "week", "day")


def is_int(value: Any) -> bool:
    """True for a JSON integer (``bool`` is not an integer here)."""
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- scalar checkers


def check_string(value: Any, name: str) -> list[str]:
    return [] if isinstance(value, str) else [f"'{name}' must be a string"]


def check_nonempty_string(value: Any, name: str) -> list[str]:
    if isinstance(value, str) and value.strip():
        return []
    return [f"'{name}' must be a non-empty string"]


def check_id(value: Any, name: str) -> list[str]:
    if is_int(value) or (isinstance(value, str) and value.strip()):
        return []
    return [f"'{name}' must be a non-empty string or an integer"]


def check_email(value: Any, name: str) -> list[str]:
    if isinstance(value, str) and _EMAIL_RE.fullmatch(value.strip()):
        return []
    return [f"'{name}' must be an email address (containing '@')"]


def check_datetime(value: Any, name: str) -> list[str]:
    if isinstance(value, str) and _DATETIME_RE.fullmatch(value):
        try:
            datetime.strptime(value, DATETIME_FORMAT)
        except ValueError:
            pass
        else:
            return []
    return [f"'{name}' must be a date 'YYYY-MM-DD HH:MM:SS'"]


def check_date(value: Any, name: str) -> list[str]:
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            datetime.strptime(value, DATE_FORMAT)
        except ValueError:
            pass
        else:
            return []
    return [f"'{name}' must be a date 'YYYY-MM-DD'"]


def check_cents(value: Any, name: str) -> list[str]:
    return [] if is_int(value) else [f"'{name}' must be an integer (cents)"]


def check_count(value: Any, name: str) -> list[str]:
    if is_int(value) and value >= 0:
        return []
    return [f"'{name}' must be a non-negative integer"]


def check_positive_int(value: Any, name: str) -> list[str]:
    if is_int(value) and value > 0:
        return []
    return [f"'{name}' must be a positive integer"]


def check_bool(value: Any, name: str) -> list[str]:
    return [] if isinstance(value, bool) else [f"'{name}' must be a boolean"]


def check_enum(*allowed: str) -> Checker:
    def check(value: Any, name: str) -> list[str]:
        if isinstance(value, str) and value in allowed:
            return []
        return [f"'{name}' must be one of {', '.join(allowed)}"]

    return check


def check_geo(value: Any, name: str) -> list[str]:
    """A latitude/longitude: a number or a numeric string (the docs' example sends strings)."""
    number: float | None = None
    if is_int(value) or isinstance(value, float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is not None and math.isfinite(number):
        return []
    return [f"'{name}' must be a number or a numeric string"]


def check_custom_fields(value: Any, name: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"'{name}' must be an object"]
    errors: list[str] = []
    for key, item in value.items():
        if not key.strip():
            errors.append(f"'{name}' must not contain an empty field name")
        elif item is not None and not isinstance(item, (str, int, float)):
            errors.append(f"'{name}.{key}' must be a string, number, boolean or null")
        elif isinstance(item, float) and not math.isfinite(item):
            errors.append(f"'{name}.{key}' must be a finite number")
    return errors


# --------------------------------------------------------------------------- objects


def validate_object(
    body: Mapping[str, Any],
    spec: Mapping[str, Checker],
    required: tuple[str, ...] = (),
    *,
    contact_ref: bool = False,
    prefix: str = "",
) -> list[str]:
    """Check ``body`` against ``spec`` (field -> checker).

    ``contact_ref``: one of ``contact_id`` / ``email`` is required. ``prefix`` is prepended to
    field names in messages (``items[0].``) for nested objects.
    """
    errors = [f"unknown field '{prefix}{key}'" for key in body if key not in spec]
    if contact_ref and "contact_id" not in body and "email" not in body:
        errors.append(f"missing '{prefix}email' or '{prefix}contact_id' field")
    errors.extend(f"missing '{prefix}{key}' field" for key in required if key not in body)
    for key, value in body.items():
        checker = spec.get(key)
        if checker is None:
            continue
        if value is None:
            errors.append(f"'{prefix}{key}' must not be null (omit the field instead)")
        else:
            errors.extend(checker(value, prefix + key))
    return errors


def _object_or_id(spec: Mapping[str, Checker], what: str) -> Checker:
    """A checker accepting either an id or an object ``spec`` (which requires ``id``)."""

    def check(value: Any, name: str) -> list[str]:
        if isinstance(value, dict):
            return validate_object(value, spec, ("id",), prefix=name + ".")
        if check_id(value, name):
            return [f"'{name}' must be {what} id (string or integer) or an object with 'id'"]
        return []

    return check


TAG_OBJECT_SPEC: dict[str, Checker] = {
    "id": lambda v, n: [] if is_int(v) else [f"'{n}' must be an integer"],
    "name": check_nonempty_string,
    "date": check_datetime,
}


def check_tags(value: Any, name: str) -> list[str]:
    """A list of tag ids (int), tag names (non-empty str) or ``{id?, name?, date?}`` objects."""
    if not isinstance(value, list):
        return [f"'{name}' must be a list"]
    errors: list[str] = []
    for index, tag in enumerate(value):
        path = f"{name}[{index}]"
        if is_int(tag):
            continue
        if isinstance(tag, str):
            if not tag.strip():
                errors.append(f"'{path}' must not be an empty tag name")
            continue
        if isinstance(tag, dict):
            if "id" not in tag and "name" not in tag:
                errors.append(f"'{path}' must have 'id' and/or 'name'")
            errors.extend(validate_object(tag, TAG_OBJECT_SPEC, prefix=path + "."))
            continue
        errors.append(f"'{path}' must be a tag id (integer), a tag name (string) or an object with 'id' and/or 'name'")
    return errors


def check_nonempty_tags(value: Any, name: str) -> list[str]:
    errors = check_tags(value, name)
    if not errors and not value:
        errors.append(f"'{name}' must not be empty")
    return errors


ITEM_SPEC: dict[str, Checker] = {
    "id": check_id,
    "name": check_nonempty_string,
    "product_id": check_id,
    "amount": check_cents,
    "subscription_id": check_id,
}
ITEM_REQUIRED = ("name", "product_id", "amount")


def check_items(value: Any, name: str) -> list[str]:
    if not isinstance(value, list):
        return [f"'{name}' must be a list"]
    errors: list[str] = []
    for index, item in enumerate(value):
        path = f"{name}[{index}]"
        if not isinstance(item, dict):
            errors.append(f"'{path}' must be an object")
            continue
        errors.extend(validate_object(item, ITEM_SPEC, ITEM_REQUIRED, prefix=path + "."))
    return errors


ADCAMPAIGN_SPEC: dict[str, Checker] = {"id": check_id, "name": check_string}
check_adcampaign = _object_or_id(ADCAMPAIGN_SPEC, "an ad campaign")
ADSET_SPEC: dict[str, Checker] = {
    "id": check_id,
    "name": check_string,
    "adcampaign": check_adcampaign,
}
check_adset = _object_or_id(ADSET_SPEC, "an ad set")
AD_SPEC: dict[str, Checker] = {
    "id": check_id,
    "name": check_string,
    "adcampaign": check_adcampaign,
    "adset": check_adset,
}
check_ad = _object_or_id(AD_SPEC, "an ad")


# --------------------------------------------------------------------------- endpoints

CONTACT_SPEC: dict[str, Checker] = {
    "contact_id": check_id,
    "email": check_email,
    "first_name": check_string,
    "last_name": check_string,
    "status": check_enum(*CONTACT_STATUSES),
    "date_created": check_datetime,
    "last_updated": check_datetime,
    "utm_source": check_string,
    "utm_medium": check_string,
    "utm_campaign": check_string,
    "utm_content": check_string,
    "utm_term": check_string,
    "referring_url": check_string,
    "optin_url": check_string,
    "ip_address": check_string,
    "affiliate_id": check_id,
    "geo_lat": check_geo,
    "geo_lon": check_geo,
    "tags": check_tags,
    "custom_fields": check_custom_fields,
}

TAG_CHANGE_SPEC: dict[str, Checker] = {
    "contact_id": check_id,
    "email": check_email,
    "tags": check_nonempty_tags,
}

INVOICE_SPEC: dict[str, Checker] = {
    "id": check_id,
    "contact_id": check_id,
    "email": check_email,
    "amount": check_cents,
    "paid": check_cents,
    "date_created": check_datetime,
    "items": check_items,
    "is_refunded": check_bool,
    "discount": check_cents,
    "tax": check_cents,
    "shipping": check_cents,
}
INVOICE_REQUIRED = ("id", "amount", "paid", "date_created", "items")

SUBSCRIPTION_SPEC: dict[str, Checker] = {
    "id": check_id,
    "contact_id": check_id,
    "email": check_email,
    "amount": check_cents,
    "product_id": check_id,
    "name": check_nonempty_string,
    "quantity": check_positive_int,
    "start_date": check_datetime,
    "last_bill_date": check_datetime,
    "trial_end_date": check_datetime,
    "end_date": check_datetime,
    "canceled_date": check_datetime,
    "billing_cycle": check_enum(*BILLING_CYCLES),
    "frequency": check_positive_int,
}
SUBSCRIPTION_REQUIRED = (
    "id",
    "amount",
    "product_id",
    "start_date",
    "last_bill_date",
    "billing_cycle",
    "frequency",
)

PRODUCT_SPEC: dict[str, Checker] = {"id": check_id, "name": check_nonempty_string}
PRODUCT_REQUIRED = ("id", "name")

AD_PERFORMANCE_SPEC: dict[str, Checker] = {
    "ad": check_ad,
    "spend": check_cents,
    "date": check_date,
    "clicks": check_count,
    "impressions": check_count,
    "adcampaign": check_adcampaign,
    "adset": check_adset,
}
AD_PERFORMANCE_REQUIRED = ("ad", "spend", "date")


def validate_contact(body: Mapping[str, Any]) -> list[str]:
    return validate_object(body, CONTACT_SPEC, contact_ref=True)


def validate_tag_change(body: Mapping[str, Any]) -> list[str]:
    return validate_object(body, TAG_CHANGE_SPEC, ("tags",), contact_ref=True)


def invoice_item_ids(invoice_id: Any, items: list[Any]) -> list[str]:
    """The effective item ids: the sent ``id`` or ``<invoice id>-<n>`` (n from 1)."""
    return [
        str(item["id"]) if isinstance(item, dict) and "id" in item else f"{invoice_id}-{n}"
        for n, item in enumerate(items, start=1)
    ]


def validate_invoice(body: Mapping[str, Any]) -> list[str]:
    errors = validate_object(body, INVOICE_SPEC, INVOICE_REQUIRED, contact_ref=True)
    items = body.get("items")
    if not errors and isinstance(items, list):
        seen: set[str] = set()
        for item_id in invoice_item_ids(body["id"], items):
            if item_id in seen:
                errors.append(f"duplicate item id '{item_id}'")
            seen.add(item_id)
    return errors


def validate_subscription(body: Mapping[str, Any]) -> list[str]:
    return validate_object(body, SUBSCRIPTION_SPEC, SUBSCRIPTION_REQUIRED, contact_ref=True)


def validate_product(body: Mapping[str, Any]) -> list[str]:
    return validate_object(body, PRODUCT_SPEC, PRODUCT_REQUIRED)


def validate_ad_performance(body: Mapping[str, Any]) -> list[str]:
    return validate_object(body, AD_PERFORMANCE_SPEC, AD_PERFORMANCE_REQUIRED)
