"""What the sandbox holds, and how each import-API write changes it.

One :class:`IntegrationStore` per ``(account_id, integration_id)``; :class:`SandboxState` holds them
all behind one lock (the server mutates from its event-loop thread, tests read from theirs).

Data model (all snapshots are plain JSON-able copies):

* **Contacts** - a dict per contact: ``contact_id`` (as sent, ``None`` when only an email was ever
  sent), ``email``, ``status`` (``"active"`` on create), every other field last sent, plus
  ``tags`` and ``custom_fields``. Matching: ``contact_id`` compares as a string (``249`` and
  ``"249"`` are one contact); email compares trimmed and case-insensitively. Upsert by
  ``contact_id`` when sent, else by email (the oldest contact with that email). When a
  ``contact_id`` is sent that no contact has but a contact with the sent email exists, that
  contact is updated and takes the new ``contact_id``. Fields not sent are unchanged; ``tags``
  sent REPLACE the contact's tags; ``custom_fields`` are MERGED and a ``null`` value removes the
  field.
* **Tags** - each integration has a tag registry (id <-> name). A tag given by name gets the
  registered id, or a new one (``max id + 1``, from 1); an object ``{id, name}`` (re)binds that
  id and name. A contact's tags are held as ``[{"id": int, "name": str | None,
  "date": str | None}, ...]`` sorted by id and unique by id - ``name`` is the registry name
  (``None`` for an id never named) and ``date`` the date sent with the tag (``None`` when not sent;
  the live API would default it to "now", the sandbox keeps it ``None`` so state is comparable).
  ``tags/add`` is a union (a re-added tag keeps its date unless a new date is sent);
  ``tags/remove`` is a difference matched by id or name; unknown tags are ignored.
* **Invoices / subscriptions / products** - upsert by ``id`` (compared as a string): sent fields
  merged over held ones. Invoice items are replaced as a whole; each item holds its effective
  ``id`` (``<invoice id>-<n>`` when not sent). Unknown products referenced by invoice items (and
  subscriptions) are created with the item's (subscription's) name. A subscription created without
  ``quantity`` holds ``quantity: 1``.
* **Ad performance** - rows keyed by ``(ad id, date)``: ``{"ad": id, "date", "spend", "clicks"?,
  "impressions"?, "adcampaign"?: id, "adset"?: id}``; ad / ad set / campaign objects are
  registered (``ads``, ``adsets``, ``adcampaigns``) with names.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import validation as v

__all__ = ["IntegrationStore", "Result", "SandboxState", "contact_key", "email_key"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Result:
    """An HTTP answer: status and JSON payload."""

    status: int
    payload: JSON

    @classmethod
    def error(cls, status: int, *errors: str) -> Result:
        return cls(status, {"status": "error", "errors": list(errors)})


SUCCESS = Result(200, {"status": "success"})


def contact_key(value: Any) -> str:
    """Matching key of an id (contact, invoice, product, ...): its string form."""
    return str(value)


def email_key(value: str) -> str:
    return value.strip().lower()


@dataclass
class _Contact:
    seq: int
    fields: JSON
    tags: dict[int, str | None] = field(default_factory=dict)  # tag id -> date applied
    custom_fields: JSON = field(default_factory=dict)


class IntegrationStore:
    """Everything one custom integration holds. Not thread-safe on its own (see SandboxState)."""

    def __init__(self) -> None:
        self.contacts: dict[int, _Contact] = {}
        self._by_id: dict[str, int] = {}
        self._by_email: dict[str, list[int]] = {}
        self._next_seq = 1
        self.tag_names: dict[int, str | None] = {}
        self._tag_by_name: dict[str, int] = {}
        self._next_tag_id = 1
        self.invoices: dict[str, JSON] = {}
        self.subscriptions: dict[str, JSON] = {}
        self.products: dict[str, JSON] = {}
        self.ads: dict[str, JSON] = {}
        self.adsets: dict[str, JSON] = {}
        self.adcampaigns: dict[str, JSON] = {}
        self.ad_performance: dict[tuple[str, str], JSON] = {}

    # ------------------------------------------------------------------ lookups

    def _first_by_email(self, email: str) -> _Contact | None:
        seqs = self._by_email.get(email_key(email))
        return self.contacts[seqs[0]] if seqs else None

    def _by_contact_id(self, contact_id: Any) -> _Contact | None:
        seq = self._by_id.get(contact_key(contact_id))
        return self.contacts[seq] if seq is not None else None

    def has_contact_id(self, contact_id: Any) -> bool:
        return contact_key(contact_id) in self._by_id

    def find_contact(self, key: Any) -> _Contact | None:
        """By contact_id, else by email (oldest with it)."""
        found = self._by_contact_id(key)
        if found is None and isinstance(key, str):
            found = self._first_by_email(key)
        return found

    # ------------------------------------------------------------------ index upkeep

    def _index(self, contact: _Contact) -> None:
        cid = contact.fields.get("contact_id")
        if cid is not None:
            self._by_id[contact_key(cid)] = contact.seq
        email = contact.fields.get("email")
        if email is not None:
            seqs = self._by_email.setdefault(email_key(email), [])
            seqs.append(contact.seq)
            seqs.sort()

    def _unindex(self, contact: _Contact) -> None:
        cid = contact.fields.get("contact_id")
        if cid is not None and self._by_id.get(contact_key(cid)) == contact.seq:
            del self._by_id[contact_key(cid)]
        email = contact.fields.get("email")
        if email is not None:
            key = email_key(email)
            seqs = self._by_email.get(key, [])
            if contact.seq in seqs:
                seqs.remove(contact.seq)
            if not seqs:
                self._by_email.pop(key, None)

    # ------------------------------------------------------------------ tags

    def _register_tag_id(self, tag_id: int, name: str | None) -> None:
        if name is not None:
            old_name = self.tag_names.get(tag_id)
            if old_name is not None and old_name != name and self._tag_by_name.get(old_name) == tag_id:
                del self._tag_by_name[old_name]
            self.tag_names[tag_id] = name
            self._tag_by_name[name] = tag_id
        else:
            self.tag_names.setdefault(tag_id, None)
        self._next_tag_id = max(self._next_tag_id, tag_id + 1)

    def _resolve_tag(self, tag: Any) -> tuple[int, str | None]:
        """Tag spec -> (id, date), registering ids and names as needed."""
        if isinstance(tag, int):
            self._register_tag_id(tag, None)
            return tag, None
        if isinstance(tag, str):
            name, date = tag, None
            tag_id: int | None = None
        else:
            name, date, tag_id = tag.get("name"), tag.get("date"), tag.get("id")
        if tag_id is None:
            assert name is not None
            tag_id = self._tag_by_name.get(name)
            if tag_id is None:
                tag_id = self._next_tag_id
        self._register_tag_id(tag_id, name)
        return tag_id, date

    def _lookup_tag(self, tag: Any) -> int | None:
        """Tag spec -> id without registering anything (for removal)."""
        if isinstance(tag, int):
            return tag
        if isinstance(tag, str):
            return self._tag_by_name.get(tag)
        if tag.get("id") is not None:
            return int(tag["id"])
        return self._tag_by_name.get(tag["name"])

    def _tag_list(self, tags: dict[int, str | None]) -> list[JSON]:
        return [
            {"id": tag_id, "name": self.tag_names.get(tag_id), "date": date} for tag_id, date in sorted(tags.items())
        ]

    # ------------------------------------------------------------------ writes

    def upsert_contact(self, body: JSON) -> Result:
        cid, email = body.get("contact_id"), body.get("email")
        contact: _Contact | None = None
        if cid is not None:
            contact = self._by_contact_id(cid)
        if contact is None and email is not None:
            contact = self._first_by_email(email)
        if contact is None:
            contact = _Contact(self._next_seq, {"contact_id": None, "email": None, "status": "active"})
            self._next_seq += 1
            self.contacts[contact.seq] = contact
        else:
            self._unindex(contact)
        for key, value in body.items():
            if key == "tags":
                contact.tags = {}
                self._add_tags(contact, value)
            elif key == "custom_fields":
                self._merge_custom_fields(contact, value)
            else:
                contact.fields[key] = value
        self._index(contact)
        return SUCCESS

    def _add_tags(self, contact: _Contact, tags: list[Any]) -> None:
        for tag in tags:
            tag_id, date = self._resolve_tag(tag)
            if date is not None or tag_id not in contact.tags:
                contact.tags[tag_id] = date

    @staticmethod
    def _merge_custom_fields(contact: _Contact, custom_fields: JSON) -> None:
        for name, value in custom_fields.items():
            if value is None:
                contact.custom_fields.pop(name, None)
            else:
                contact.custom_fields[name] = value

    def _tag_target(self, body: JSON) -> _Contact | None:
        if body.get("contact_id") is not None:
            return self._by_contact_id(body["contact_id"])
        return self._first_by_email(body["email"])

    def add_tags(self, body: JSON) -> Result:
        contact = self._tag_target(body)
        if contact is None:
            return Result.error(404, "contact not found")
        self._add_tags(contact, body["tags"])
        return SUCCESS

    def remove_tags(self, body: JSON) -> Result:
        contact = self._tag_target(body)
        if contact is None:
            return Result.error(404, "contact not found")
        for tag in body["tags"]:
            tag_id = self._lookup_tag(tag)
            if tag_id is not None:
                contact.tags.pop(tag_id, None)
        return SUCCESS

    def _ensure_product(self, product_id: Any, name: str | None) -> None:
        key = contact_key(product_id)
        if key not in self.products:
            self.products[key] = {"id": product_id, "name": name}

    def upsert_invoice(self, body: JSON) -> Result:
        key = contact_key(body["id"])
        items = []
        for item, item_id in zip(body["items"], v.invoice_item_ids(body["id"], body["items"]), strict=True):
            stored = dict(item)
            stored.setdefault("id", item_id)
            items.append(stored)
            self._ensure_product(item["product_id"], item["name"])
        invoice = self.invoices.get(key, {})
        invoice.update(body)
        invoice["items"] = items
        self.invoices[key] = invoice
        return SUCCESS

    def upsert_subscription(self, body: JSON) -> Result:
        key = contact_key(body["id"])
        subscription = self.subscriptions.get(key)
        if subscription is None:
            subscription = {"quantity": 1}
            self.subscriptions[key] = subscription
        subscription.update(body)
        self._ensure_product(body["product_id"], body.get("name"))
        return SUCCESS

    def upsert_product(self, body: JSON) -> Result:
        key = contact_key(body["id"])
        product = self.products.setdefault(key, {})
        product.update(body)
        return SUCCESS

    def _register(self, registry: dict[str, JSON], value: Any) -> Any:
        """Register an id-or-object (ad, adset, adcampaign); returns its id."""
        if not isinstance(value, dict):
            registry.setdefault(contact_key(value), {"id": value, "name": None})
            return value
        entry = registry.setdefault(contact_key(value["id"]), {"id": value["id"], "name": None})
        for key, item in value.items():
            if key == "adcampaign":
                entry[key] = self._register(self.adcampaigns, item)
            elif key == "adset":
                entry[key] = self._register(self.adsets, item)
            else:
                entry[key] = item
        return value["id"]

    def upsert_ad_performance(self, body: JSON) -> Result:
        ad_id = self._register(self.ads, body["ad"])
        row_key = (contact_key(ad_id), body["date"])
        row = self.ad_performance.setdefault(row_key, {"ad": ad_id, "date": body["date"]})
        for key, value in body.items():
            if key == "adcampaign":
                row[key] = self._register(self.adcampaigns, value)
            elif key == "adset":
                row[key] = self._register(self.adsets, value)
            elif key != "ad":
                row[key] = value
        return SUCCESS

    def delete_contact(self, key: str) -> Result:
        contact = self._by_contact_id(key)
        if contact is not None:
            doomed = [contact]
            deleted_id = contact.fields["contact_id"]
        else:
            seqs = self._by_email.get(email_key(key), [])
            doomed = [self.contacts[seq] for seq in seqs]
            deleted_id = key
        if not doomed:
            return Result.error(404, "contact not found")
        for contact in doomed:
            self._unindex(contact)
            del self.contacts[contact.seq]
        return Result(200, {"id": deleted_id, "status": "success", "object": "contact", "deleted": True})

    def _delete(self, registry: dict[str, JSON], key: str, obj: str) -> Result:
        held = registry.pop(contact_key(key), None)
        if held is None:
            return Result.error(404, f"{obj} not found")
        return Result(200, {"id": held["id"], "status": "success", "object": obj, "deleted": True})

    def delete_invoice(self, key: str) -> Result:
        return self._delete(self.invoices, key, "invoice")

    def delete_subscription(self, key: str) -> Result:
        return self._delete(self.subscriptions, key, "subscription")

    # ------------------------------------------------------------------ snapshots

    def contact_snapshot(self, contact: _Contact) -> JSON:
        out = dict(contact.fields)
        out["tags"] = self._tag_list(contact.tags)
        out["custom_fields"] = dict(contact.custom_fields)
        return out

    def snapshot(self) -> JSON:
        return {
            "contacts": [self.contact_snapshot(c) for c in self.contacts.values()],
            "tags": [{"id": i, "name": n} for i, n in sorted(self.tag_names.items())],
            "invoices": copy.deepcopy(list(self.invoices.values())),
            "subscriptions": copy.deepcopy(list(self.subscriptions.values())),
            "products": copy.deepcopy(list(self.products.values())),
            "ad_performance": copy.deepcopy(list(self.ad_performance.values())),
            "ads": copy.deepcopy(list(self.ads.values())),
            "adsets": copy.deepcopy(list(self.adsets.values())),
            "adcampaigns": copy.deepcopy(list(self.adcampaigns.values())),
        }


class SandboxState:
    """All integrations of one account, behind one lock; dispatches validated writes."""

    def __init__(self, account_id: str, integration_ids: tuple[str, ...]) -> None:
        self.account_id = account_id
        self.integration_ids = tuple(integration_ids)
        self.lock = threading.Lock()
        self.stores: dict[str, IntegrationStore] = {}
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.stores = {i: IntegrationStore() for i in self.integration_ids}

    def store(self, integration_id: str | None) -> IntegrationStore:
        """The store of ``integration_id`` (default: the first configured). Caller holds lock."""
        if integration_id is None:
            integration_id = self.integration_ids[0]
        try:
            return self.stores[integration_id]
        except KeyError:
            raise KeyError(f"unknown integration {integration_id!r}") from None

    def post(self, integration_id: str, endpoint: str, body: JSON) -> Result:
        """Apply one POST ``endpoint`` with a JSON-object ``body``."""
        validator, apply_name, needs_contact = _POST_HANDLERS[endpoint]
        errors = validator(body)
        with self.lock:
            store = self.stores[integration_id]
            cid = body.get("contact_id")
            valid_cid = cid is not None and not v.check_id(cid, "contact_id")
            if needs_contact and valid_cid and not store.has_contact_id(cid):
                errors.append(f"contact_id '{cid}' does not exist")
            if errors:
                return Result(400, {"status": "error", "errors": errors})
            result: Result = getattr(store, apply_name)(body)
            return result

    def delete(self, integration_id: str, endpoint: str, key: str) -> Result:
        with self.lock:
            store = self.stores[integration_id]
            if endpoint == "contact":
                return store.delete_contact(key)
            if endpoint == "invoice":
                return store.delete_invoice(key)
            return store.delete_subscription(key)

    def snapshot(self) -> JSON:
        with self.lock:
            return {"accounts": {self.account_id: {"integrations": {i: s.snapshot() for i, s in self.stores.items()}}}}


_POST_HANDLERS: dict[str, tuple[Callable[[JSON], list[str]], str, bool]] = {
    "contact": (v.validate_contact, "upsert_contact", False),
    "tags/add": (v.validate_tag_change, "add_tags", False),
    "tags/remove": (v.validate_tag_change, "remove_tags", False),
    "invoice": (v.validate_invoice, "upsert_invoice", True),
    "subscription": (v.validate_subscription, "upsert_subscription", True),
    "product": (v.validate_product, "upsert_product", False),
    "ad/performance": (v.validate_ad_performance, "upsert_ad_performance", False),
}

POST_ENDPOINTS = frozenset(_POST_HANDLERS)
DELETE_ENDPOINTS = frozenset({"contact", "invoice", "subscription"})
