"""Named mappings shipped with the target (``preset`` in a mapping entry).

``hubspot`` maps the contacts stream of both tap-hubspot variants:

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

PRESETS: dict[str, dict[str, t.Any]] = {
    "hubspot": HUBSPOT_CONTACTS,
}
