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


def hubspot_property(name: str) -> list[str]:
    """The places a HubSpot contact property can be, in the order they are tried."""
    return [
        f"properties.{name}.value",  # singer-io, older releases: {"value": ..., "timestamp": ...}
        f"properties.{name}",  # MeltanoLabs (text) and singer-io (typed)
        f"property_{name}.value",
        f"property_{name}",  # singer-io's top-level copies
    ]


def _hs(name: str, **options: t.Any) -> t.Any:  # noqa: ANN401
    paths = hubspot_property(name)
    return {"path": paths, **options} if options else paths


HUBSPOT_CONTACTS: dict[str, t.Any] = {
    "object": "contact",
    "fields": {
        # MeltanoLabs and singer-io (CRM v3) call the record id "id"; singer-io's v1 releases "vid".
        "contact_id": ["id", "vid", "canonical-vid", *hubspot_property("hs_object_id")],
        "email": _hs("email", transform="strip"),
        "first_name": _hs("firstname"),
        "last_name": _hs("lastname"),
        "date_created": [*hubspot_property("createdate"), "createdAt"],
        "last_updated": [*hubspot_property("lastmodifieddate"), "updatedAt"],
        "utm_source": _hs("hs_analytics_source"),
        "utm_campaign": _hs("hs_analytics_source_data_1"),
        "utm_content": _hs("hs_analytics_source_data_2"),
        "referring_url": _hs("hs_analytics_first_referrer"),
        "optin_url": _hs("hs_analytics_first_url"),
    },
    "tags": [
        _hs("lifecyclestage", format="Lifecycle: {}"),
        _hs("hs_lead_status", format="Lead status: {}"),
    ],
    "tags_mode": "replace",
    "custom_fields": {
        "company": _hs("company"),
        "phone": _hs("phone"),
        "job_title": _hs("jobtitle"),
        "city": _hs("city"),
        "country": _hs("country"),
    },
}

PRESETS: dict[str, dict[str, t.Any]] = {
    "hubspot": HUBSPOT_CONTACTS,
}
