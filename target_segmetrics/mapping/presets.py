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
from dataclasses import dataclass, field

from target_segmetrics.mapping import formats
from target_segmetrics.mapping.paths import MappingConfigError


@dataclass(frozen=True)
class Preset:
    """A preset: its mapping entry (the generic grammar), and what only the preset understands."""

    entry: dict[str, t.Any]
    items_or_self: bool = False
    """An invoice whose items' path finds none is its own one item (a deal without line items)."""
    requires: tuple[tuple[tuple[str, ...], str], ...] = ()
    """Paths the stream's schema must declare one of, and why (else the run stops before its first record)."""
    options: tuple[str, ...] = ()
    """The preset's own options, written on its entry (``currency``)."""
    make: t.Callable[..., Preset] | None = field(default=None, repr=False)

    def made(self, options: dict[str, t.Any], where: str) -> Preset:
        """The preset made again with the options the entry sets."""
        assert self.make is not None
        return self.make(**{name: OPTION_CHECKS[name](value, f"{where}.{name}") for name, value in options.items()})


def as_preset(preset: Preset | dict[str, t.Any]) -> Preset:
    return preset if isinstance(preset, Preset) else Preset(preset)


def currency_code(value: t.Any, where: str) -> str:
    try:
        return formats.currency_code(value)
    except ValueError as exc:
        raise MappingConfigError(f"{where}: {exc}") from None


OPTION_CHECKS: dict[str, t.Callable[[t.Any, str], t.Any]] = {"currency": currency_code}
"""Every preset option and how its value is checked."""
PRESET_OPTION_NAMES = tuple(OPTION_CHECKS)


def hubspot_property(name: str, *transforms: str, **options: t.Any) -> dict[str, t.Any]:
    """A HubSpot contact property, wherever the tap variant puts it.

    ``properties.<name>`` (MeltanoLabs text, singer-io typed, or singer-io's older ``{"value": ...}``
    wrapper, which ``unwrap`` opens), else singer-io's top-level copy ``property_<name>``.
    """
    paths = [f"properties.{name}", f"property_{name}", f"properties.{name}.value", f"property_{name}.value"]
    return {"path": paths, "transform": ["unwrap", *transforms], **options}


LIFECYCLE_STAGES = {
    "subscriber": "Subscriber",
    "lead": "Lead",
    "marketingqualifiedlead": "Marketing Qualified Lead",
    "salesqualifiedlead": "Sales Qualified Lead",
    "opportunity": "Opportunity",
    "customer": "Customer",
    "evangelist": "Evangelist",
    "other": "Other",
}
"""HubSpot's default lifecycle stages by their labels in HubSpot (a custom stage: see :func:`labelled`)."""

LEAD_STATUSES = {
    "NEW": "New",
    "OPEN": "Open",
    "IN_PROGRESS": "In Progress",
    "OPEN_DEAL": "Open Deal",
    "UNQUALIFIED": "Unqualified",
    "ATTEMPTED_TO_CONTACT": "Attempted to Contact",
    "CONNECTED": "Connected",
    "BAD_TIMING": "Bad Timing",
}

SOURCE_CHANNELS = {
    "ORGANIC_SEARCH": "Organic Search",
    "PAID_SEARCH": "Paid Search",
    "EMAIL_MARKETING": "Email Marketing",
    "SOCIAL_MEDIA": "Organic Social",
    "REFERRALS": "Referrals",
    "OTHER_CAMPAIGNS": "Other Campaigns",
    "DIRECT_TRAFFIC": "Direct Traffic",
    "OFFLINE": "Offline Sources",
    "PAID_SOCIAL": "Paid Social",
    "AI_REFERRALS": "AI Referrals",
}
"""``hs_analytics_source`` (HubSpot's original source *channel*, not UTM data) by HubSpot's labels."""


def options(name: str) -> dict[str, t.Any]:
    """The options (``{"value", "label"}``) of a HubSpot property, from the MeltanoLabs ``properties``
    stream when it is listed (a lookup that waits for it until the end of the run)."""
    return {"lookup": "properties", "key": {"value": name}, "field": "options", "wait": "run"}


def labelled(name: str, defaults: dict[str, str], template: str) -> dict[str, t.Any]:
    """A property's value as a tag by its label: the portal's own label (custom stages included)
    where the tap emits the property definitions, else HubSpot's default label, else the value."""
    own = {"path": [options(name)], "where": {"field": "value", "is": hubspot_property(name)}, "field": "label"}
    return {"path": [own, hubspot_property(name, map=defaults)], "format": template}


def every_label(name: str, template: str) -> dict[str, t.Any]:
    """Every label of a property's options, as tags (for ``tags_remove``; the contact's own is kept)."""
    return {"path": [options(name)], "field": "label", "format": template}


def others(labels: dict[str, str], template: str) -> dict[str, t.Any]:
    """Per value, the tags of every other label (for ``tags_remove``); a custom value: all of them."""
    every = [template.replace("{}", label) for label in labels.values()]
    table: dict[str, t.Any] = {
        value: [tag for tag in every if tag != template.replace("{}", label)] for value, label in labels.items()
    }
    table["*"] = every
    return table


def utm(name: str) -> list[t.Any]:
    """A UTM parameter: the contact's own ``utm_<name>`` property, else the first page URL's query."""
    return [
        hubspot_property(f"utm_{name}", "strip"),
        hubspot_property("hs_analytics_first_url", f"url_param:utm_{name}"),
    ]


def list_tag(list_id: str, date: str) -> dict[str, t.Any]:
    """The tag of a HubSpot list, ``HubSpot list: <name>``: the name from the contact_lists stream
    (when it is listed, a record waits for it until the end of the run), else the list's id."""
    name = {"lookup": "contact_lists", "key": list_id, "field": "name", "wait": "run"}
    return {"name": {"path": [name, list_id], "format": "HubSpot list: {}"}, "date": date}


def form_tag(form_id: str, date: str) -> dict[str, t.Any]:
    """The tag of a HubSpot form submission, ``Form: <form name>``, dated when it was submitted: the
    name from the forms stream (waited for until the end of the run when listed); without the name no
    tag (a form's id means nothing to a person)."""
    name = {"lookup": "forms", "key": form_id, "field": "name", "wait": "run"}
    return {"name": {"path": [name], "format": "Form: {}"}, "date": date}


HUBSPOT_CONTACTS: dict[str, t.Any] = {
    "object": "contact",
    "fields": {
        # MeltanoLabs and singer-io (CRM v3) call the record id "id" (text); singer-io's v1 releases
        # "vid" (a number). Always sent as text, so switching tap variants never splits a contact.
        "contact_id": {"path": ["id", "vid", "canonical-vid"], "transform": "string"},
        "email": hubspot_property("email", "strip"),
        "first_name": hubspot_property("firstname"),
        "last_name": hubspot_property("lastname"),
        # Opt-in status: an email opt-out makes the contact inactive (never set: nothing is sent).
        "status": hubspot_property("hs_email_optout", "boolean", map={"true": "inactive", "false": "active"}),
        "date_created": [hubspot_property("createdate"), "createdAt"],
        "last_updated": [hubspot_property("lastmodifieddate"), "updatedAt"],
        # Real UTM parameters only: hs_analytics_source* is HubSpot's channel (a tag below), and its
        # drill-downs can hold a HubSpot user's email for contacts made by hand: never sent.
        "utm_source": utm("source"),
        "utm_medium": utm("medium"),
        "utm_campaign": utm("campaign"),
        "utm_content": utm("content"),
        "utm_term": utm("term"),
        "referring_url": hubspot_property("hs_analytics_first_referrer"),
        "optin_url": hubspot_property("hs_analytics_first_url"),
    },
    "tags": [
        labelled("lifecyclestage", LIFECYCLE_STAGES, "Lifecycle: {}"),
        labelled("hs_lead_status", LEAD_STATUSES, "Lead status: {}"),
        labelled("hs_analytics_source", SOURCE_CHANNELS, "Source: {}"),
        # singer-io 2.x/3.x: the contact's lists and form submissions come inline (newer taps: the
        # list_memberships and form_submissions streams).
        # (an entry with "is-member": false says the contact is not in the list).
        {
            "each": {"path": "list-memberships", "where": {"field": "is-member", "not_in": [False]}},
            "tag": list_tag("static-list-id", "timestamp"),
        },
        {"each": "form-submissions", "tag": form_tag("form-id", "timestamp")},
    ],
    # Tags are what all of a contact's streams say together: the record's tags are the contact's own
    # (a stage change replaces the old stage's tag), a list tag from list_memberships stays.
    "tags_mode": "own",
    # list_memberships and form_submissions come only from singer-io 4.x: contacts with the lists
    # inline (singer-io 2.x/3.x) or MeltanoLabs' (its replication key at the top) have none, so their
    # own record decides their tags, sent with them.
    "tags_elsewhere": {
        "list_memberships": ["list-memberships", "lastmodifieddate"],
        "form_submissions": ["form-submissions", "lastmodifieddate"],
    },
    # What the record says the contact is not, removed when the store does not know its tags: the
    # labels of the other stages; a stage or status cleared in HubSpot ("none", no stage) all of them.
    "tags_remove": [
        hubspot_property("lifecyclestage", map=others(LIFECYCLE_STAGES, "Lifecycle: {}"), default="none"),
        hubspot_property("hs_lead_status", map=others(LEAD_STATUSES, "Lead status: {}"), default="none"),
        every_label("lifecyclestage", "Lifecycle: {}"),
        every_label("hs_lead_status", "Lead status: {}"),
    ],
    "custom_fields": {
        "company": hubspot_property("company"),
        "phone": hubspot_property("phone"),
        "job_title": hubspot_property("jobtitle"),
        "city": hubspot_property("city"),
        "country": hubspot_property("country"),
    },
}


HOME_AMOUNTS = ("amount_in_home_currency", "hs_amount_in_home_currency")
"""A deal's amount in the portal's home currency, as HubSpot names it (older and newer)."""


def hubspot_deals(currency: str | None = None) -> Preset:
    """Deals -> invoices; ``currency``: the portal's home currency (the entry's ``currency`` option).

    An amount is sent as HubSpot's home-currency amount where the tap has it; otherwise the deal's
    own amount, only when its ``deal_currency_code`` is ``currency`` (or unset); a deal in another
    currency is refused with the reason, never sent as if converted.
    """
    home = [hubspot_property(name, "cents") for name in HOME_AMOUNTS]
    allowed = [currency] if currency else []
    otherwise = (
        f"the deal is in {{}}, not in {currency} (the currency set for the hubspot preset), and the tap gives no "
        "amount_in_home_currency: not sent as if converted"
        if currency
        else 'the deal is in {} and the tap gives no amount_in_home_currency: set "currency" in the deals entry '
        "to the portal's home currency to send the deals in it"
    )
    amount = [
        *home,
        hubspot_property(
            "amount",
            "cents",
            check={
                # a deal's currency, or (for an item) its line item's
                "source": [
                    hubspot_property("deal_currency_code", "strip", "upper"),
                    hubspot_property("hs_line_item_currency_code", "strip", "upper"),
                ],
                "in": allowed,
                "otherwise": otherwise,
            },
        ),
    ]
    pipeline = hubspot_property("pipeline", default="default")
    # MeltanoLabs: the deal's line items, through deal_line_item_associations (or the reverse stream),
    # when the tap emits them; each waits for them until the end of the run when they are listed.
    line_item_ids = [
        {"lookup": "deal_line_item_associations", "key": "id", "field": "to_id", "all": True, "wait": "run"},
        {"lookup": "line_item_deal_associations", "key": "id", "field": "from_id", "all": True, "wait": "run"},
    ]
    # Line items are in the deal's currency: they are the invoice's items only when that is the
    # currency the invoice is sent in (or the deal names none); a deal sent in its home-currency
    # amount is one item, the deal itself, in that amount.
    names_none = "-"  # what a deal that names no currency is compared as
    in_sent_currency = {
        "source": hubspot_property("deal_currency_code", "strip", "upper", default=names_none),
        "in": [*allowed, names_none],
    }
    line_items = {"lookup": "line_items", "key": line_item_ids, "all": True, "wait": "run", "when": in_sent_currency}
    currency_paths = [path for name in ("deal_currency_code", *HOME_AMOUNTS) for path in hubspot_property(name)["path"]]
    why = (
        "the deals carry neither deal_currency_code nor a home-currency amount (not selected in the tap's "
        "catalog?): a deal's currency cannot be known, and one in another currency would be sent as if in "
        "yours. Select the deals' deal_currency_code property"
    )
    entry = {
        # Closed-won deals become paid invoices (a deal is not an order until it is won).
        "object": "invoice",
        "when": {
            "path": [
                hubspot_property("hs_is_closed_won"),
                hubspot_property("dealstage", map={"closedwon": True, "*": False}),
            ],
            "transform": ["unwrap", "boolean"],
        },
        "fields": {
            "id": {"path": ["id", "dealId"], "transform": "string"},
            # singer-io: the deal's own associations; MeltanoLabs: the deal_contact_associations stream
            # (a lookup: a deal whose association has not arrived yet is parked, not rejected).
            "contact_id": [
                {"path": "associations.associatedVids.0", "transform": "string"},
                {"lookup": "deal_contact_associations", "key": "id", "field": "to_id", "transform": "string"},
            ],
            "amount": amount,
            "paid": amount,
            "date_created": [hubspot_property("closedate"), hubspot_property("createdate"), "createdAt"],
        },
        "items": {
            # The deal's line items, each its product's (HubSpot product id, as the products stream
            # sends them); a deal without line items is one item whose product is the deal's pipeline,
            # named after it (SegMetrics names a new product after its first item): a small stable set
            # of products, not one per deal.
            "path": [line_items],
            "fields": {
                "name": [
                    hubspot_property("name"),  # a line item
                    {**pipeline, "format": "HubSpot pipeline: {}", "when": hubspot_property("dealstage")},  # the deal
                ],
                "product_id": [
                    hubspot_property("hs_product_id", "string"),  # a line item of a product
                    hubspot_property("name", format="hubspot-line-item-{}"),  # a line item of its own
                    {**pipeline, "format": "hubspot-pipeline-{}"},  # the deal itself
                ],
                "amount": amount,
            },
        },
    }
    return Preset(
        entry, items_or_self=True, requires=((tuple(currency_paths), why),), options=("currency",), make=hubspot_deals
    )


HUBSPOT_DEALS = hubspot_deals()

HUBSPOT_PRODUCTS: dict[str, t.Any] = {
    "object": "product",
    "fields": {
        "id": {"path": ["id", "productId", "properties.hs_object_id"], "transform": ["unwrap", "string"]},
        "name": hubspot_property("name"),
    },
}

OPT_IN_STATUS: dict[str, t.Any] = {
    "path": "changes",
    "where": {"field": "changeType", "in": ["PORTAL_STATUS", "PORTAL_SPAM"]},
    "latest": "timestamp",
    "field": "change",
    "map": {"UNSUBSCRIBED": "inactive", "REPORTED_SPAM": "inactive", "SUBSCRIBED": "active", "*": None},
}
"""A subscription change's portal-wide email status (opted out of all email, or back in; a spam report
opts out) as SegMetrics' opt-in status, from the latest of its portal-wide changes (a spam report
comes with the unsubscribe it causes); a change of one subscription type only gives none."""

HUBSPOT_SUBSCRIPTION_CHANGES: dict[str, t.Any] = {
    # singer-io's subscription_changes: the contact's opt-in status, by the recipient's email. A change
    # that says nothing of it (one subscription type, a bounce) is skipped: nothing else is sent.
    "object": "contact",
    "when": OPT_IN_STATUS,
    "fields": {"email": {"path": "recipient", "transform": "strip"}, "status": OPT_IN_STATUS},
}

HUBSPOT_FORM_SUBMISSIONS: dict[str, t.Any] = {
    # singer-io 4.x's form_submissions: the tag "Form: <form name>", dated when it was submitted, on the
    # contact named by the submission's email field (a submission without one is skipped).
    "object": "tags",
    "action": "add",
    "when": {"path": "values", "where": {"field": "name", "in": ["email"]}, "field": "value"},
    "fields": {"email": {"path": "values", "where": {"field": "name", "in": ["email"]}, "field": "value"}},
    "tags": [{"tag": form_tag("formId", "submittedAt")}],
}

HUBSPOT_LIST_MEMBERSHIPS: dict[str, t.Any] = {
    # singer-io's list_memberships: one row per contact in a list -> the tag "HubSpot list: <name>",
    # the name from the contact_lists stream (a lookup source), else the list id.
    "object": "tags",
    "action": "add",
    "fields": {"contact_id": {"path": ["recordId", "vid"], "transform": "string"}},
    "tags": [{"tag": list_tag("listId", "membershipTimestamp")}],
}


def lookup(*key: str) -> dict[str, t.Any]:
    return {"lookup": {"key": list(key) if len(key) > 1 else key[0]}}


def ignore(why: str) -> dict[str, t.Any]:
    return {"ignore": why}


PRESETS: dict[str, Preset | dict[str, t.Any]] = {
    "hubspot/contacts": HUBSPOT_CONTACTS,
    "hubspot/deals": HUBSPOT_DEALS,
    "hubspot/products": HUBSPOT_PRODUCTS,
    "hubspot/list_memberships": HUBSPOT_LIST_MEMBERSHIPS,
    "hubspot/subscription_changes": HUBSPOT_SUBSCRIPTION_CHANGES,
    "hubspot/form_submissions": HUBSPOT_FORM_SUBMISSIONS,
    # Lookup sources: remembered by key (in the store), read by the mappings above.
    "hubspot/deal_contact_associations": lookup("from_id"),
    "hubspot/contact_lists": lookup("listId"),
    "hubspot/lists": lookup("listId"),
    "hubspot/owners": lookup("ownerId", "id"),
    "hubspot/companies": lookup("companyId", "id"),
    "hubspot/deal_pipelines": lookup("pipelineId", "id"),
    "hubspot/pipelines": lookup("pipelineId", "id"),
    "hubspot/deal_company_associations": lookup("from_id"),
    "hubspot/line_items": lookup("id"),
    "hubspot/deal_line_item_associations": lookup("from_id"),
    "hubspot/line_item_deal_associations": lookup("to_id"),
    "hubspot/forms": lookup("guid"),
    "hubspot/properties": lookup("name"),
    # What SegMetrics cannot hold: ignored, named in the run's INFO line with the reason.
    "hubspot/engagements": ignore("activities (calls, emails, meetings, notes) have no SegMetrics object"),
    "hubspot/email_events": ignore("email events have no SegMetrics object"),
    "hubspot/campaigns": ignore("email campaigns have no SegMetrics object"),
    "hubspot/workflows": ignore("workflows have no SegMetrics object"),
    "hubspot/tickets": ignore("tickets have no SegMetrics object"),
    "hubspot/contacts_by_company": ignore("contact-company links: SegMetrics has no companies"),
    "hubspot/deal_histories": ignore("deal history: the deals stream carries the current deal"),
}
"""``preset: "hubspot"`` picks ``hubspot/<stream name>``; ``"hubspot/deals"`` names one outright
(for a stream renamed by a stream map). A preset is a mapping entry, a lookup source
(``{"lookup": ...}``), or ignored: a stream of the family with no entry here is not sent, and the
run says so in one INFO line."""

UNKNOWN_WHY = "the preset has no mapping for a stream of this name"
"""Why a stream of a preset family that the family does not name is ignored."""
