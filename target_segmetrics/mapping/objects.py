"""What each SegMetrics object needs: endpoint, fields, keys, and how it is deleted.

Each object lists its fields with the converter (from ``values.py``) that checks a value and
normalises it for the API, so a payload SegMetrics would refuse is never sent.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from target_segmetrics.mapping.values import (
    Converter,
    as_billing_cycle,
    as_boolean,
    as_cents,
    as_contact_id,
    as_count,
    as_email,
    as_positive,
    as_status,
    as_text,
    to_segmetrics_date,
    to_segmetrics_datetime,
)


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
