"""Named mappings shipped with the target (``preset`` in a mapping entry).

``hubspot`` maps the ``contacts`` (contacts), ``deals`` (invoices), ``products`` (products) and
``list_memberships`` (tag events) streams of tap-hubspot; for contacts, both variants:

- MeltanoLabs (``meltano-tap-hubspot``): ``id`` plus HubSpot properties under ``properties``, all
  strings, dates like ``2024-02-14T16:05:12.381Z``;
- singer-io (``tap-hubspot``, the Meltano Hub default): the same nesting with typed values, dates
  like ``...12.381000Z`` and top-level ``property_<name>`` copies; its older releases wrap each
  property as ``{"value": ...}``.

Every HubSpot property is therefore read from the first of its possible places that has a value
(see :func:`hubspot_property`). With the SDK's flattening on, ``properties.email`` also finds a
flattened ``properties__email``.
"""

from __future__ import annotations

import typing as t


def hubspot_property(name: str, *transforms: str, **options: t.Any) -> dict[str, t.Any]:
    """A HubSpot contact property, wherever the tap variant puts it.

    ``properties.<name>`` (MeltanoLabs text, singer-io typed, or singer-io's older ``{"value": ...}``
    wrapper, which ``unwrap`` opens), else singer-io's top-level copy ``property_<name>``.
    """
    return {"path": [f"properties.{name}", f"property_{name}"], "transform": ["unwrap", *transforms], **options}


HUBSPOT_CONTACTS: dict[str, t.Any] = {
    "object": "contact",
    "fields": {
        # MeltanoLabs and singer-io (CRM v3) call the record id "id" (text); singer-io's v1 releases
        # "vid" (a number). Always sent as text, so switching tap variants never splits a contact.
        "contact_id": {"path": ["id", "vid", "canonical-vid"], "transform": "string"},
        "email": hubspot_property("email", "strip"),
        "first_name": hubspot_property("firstname"),
        "last_name": hubspot_property("lastname"),
        "date_created": [hubspot_property("createdate"), "createdAt"],
        "last_updated": [hubspot_property("lastmodifieddate"), "updatedAt"],
        "utm_source": hubspot_property("hs_analytics_source"),
        "utm_campaign": hubspot_property("hs_analytics_source_data_1"),
        "utm_content": hubspot_property("hs_analytics_source_data_2"),
        "referring_url": hubspot_property("hs_analytics_first_referrer"),
        "optin_url": hubspot_property("hs_analytics_first_url"),
    },
    "tags": [
        hubspot_property("lifecyclestage", format="Lifecycle: {}"),
        hubspot_property("hs_lead_status", format="Lead status: {}"),
    ],
    "tags_mode": "replace",
    "custom_fields": {
        "company": hubspot_property("company"),
        "phone": hubspot_property("phone"),
        "job_title": hubspot_property("jobtitle"),
        "city": hubspot_property("city"),
        "country": hubspot_property("country"),
    },
}

HUBSPOT_DEALS: dict[str, t.Any] = {
    # Closed-won deals become paid invoices (a deal is not an order until it is won). The contact
    # comes from the deal's own associations (singer-io: associations.associatedVids); MeltanoLabs'
    # deals carry none (its associations are a separate stream), so those deals are rejected with
    # "contact_id or email: missing" unless the entry maps the contact another way.
    "object": "invoice",
    "when": {
        "path": [
            "properties.hs_is_closed_won",
            "property_hs_is_closed_won",
            {"path": "properties.dealstage", "transform": "unwrap", "map": {"closedwon": True, "*": False}},
        ],
        "transform": ["unwrap", "boolean"],
    },
    "fields": {
        "id": {"path": ["id", "dealId"], "transform": "string"},
        "contact_id": {"path": "associations.associatedVids.0", "transform": "string"},
        "amount": hubspot_property("amount", "cents"),
        "paid": hubspot_property("amount", "cents"),
        "date_created": [hubspot_property("closedate"), hubspot_property("createdate"), "createdAt"],
    },
    "items": {
        # A deal without line items is one item: the deal itself.
        "fields": {
            "name": hubspot_property("dealname"),
            "product_id": {"path": ["id", "dealId"], "format": "hubspot-deal-{}"},
            "amount": hubspot_property("amount", "cents"),
        },
    },
}

HUBSPOT_PRODUCTS: dict[str, t.Any] = {
    "object": "product",
    "fields": {
        "id": {"path": ["id", "productId", "properties.hs_object_id"], "transform": ["unwrap", "string"]},
        "name": hubspot_property("name"),
    },
}

HUBSPOT_LIST_MEMBERSHIPS: dict[str, t.Any] = {
    # singer-io's list_memberships: one row per contact in a list -> the tag "HubSpot list <id>".
    # (List names are in the contact_lists stream; a membership row carries only the list id.)
    "object": "tags",
    "action": "add",
    "fields": {"contact_id": {"path": ["recordId", "vid"], "transform": "string"}},
    "tags": [
        {
            "tag": {
                "name": {"path": "listId", "format": "HubSpot list {}"},
                "date": "membershipTimestamp",
            }
        }
    ],
}

PRESETS: dict[str, dict[str, t.Any]] = {
    "hubspot/contacts": HUBSPOT_CONTACTS,
    "hubspot/deals": HUBSPOT_DEALS,
    "hubspot/products": HUBSPOT_PRODUCTS,
    "hubspot/list_memberships": HUBSPOT_LIST_MEMBERSHIPS,
}
"""``preset: "hubspot"`` picks ``hubspot/<stream name>``; ``"hubspot/deals"`` names one outright
(for a stream renamed by a stream map)."""
