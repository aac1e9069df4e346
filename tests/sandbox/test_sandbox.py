"""Tests of the strict local SegMetrics import-API stand-in (target_segmetrics.sandbox)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from target_segmetrics.sandbox import Faults, Sandbox

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"
AUTH = {"Authorization": KEY}


@pytest.fixture(scope="module")
def server() -> Iterator[Sandbox]:
    with Sandbox(api_key=KEY, account_id="acct1", integration_ids=("int1", "int2")) as sb:
        yield sb


@pytest.fixture
def sb(server: Sandbox) -> Sandbox:
    server.reset()
    server.set_latency(0)
    server.faults = None
    return server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


class Api:
    def __init__(self, sb: Sandbox, http: requests.Session, integration: str = "int1") -> None:
        self.url = sb.integration_url(integration)
        self.http = http

    def post(self, endpoint: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        return self.http.post(f"{self.url}/{endpoint}", json=body, headers=AUTH if headers is None else headers)

    def ok(self, endpoint: str, body: Any) -> None:
        reply = self.post(endpoint, body)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"status": "success"}

    def errors(self, endpoint: str, body: Any) -> list[str]:
        reply = self.post(endpoint, body)
        assert reply.status_code == 400, reply.text
        payload = reply.json()
        assert payload["status"] == "error"
        return list(payload["errors"])

    def delete(self, path: str) -> requests.Response:
        return self.http.delete(f"{self.url}/{path}", headers=AUTH)


@pytest.fixture
def api(sb: Sandbox, http: requests.Session) -> Api:
    return Api(sb, http)


def names(contact: dict[str, Any] | None) -> set[str | None]:
    assert contact is not None
    return {tag["name"] for tag in contact["tags"]}


# ----------------------------------------------------------------------------- routing and auth


def test_base_url_and_port(sb: Sandbox) -> None:
    assert sb.base_url == f"http://127.0.0.1:{sb.port}/api/v1"
    assert sb.port > 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "nope"}, {"Authorization": f"Bearer {KEY}"}])
def test_auth_rejected(sb: Sandbox, api: Api, headers: dict[str, str]) -> None:
    reply = api.post("contact", {"email": "a@example.com"}, headers=headers)
    assert reply.status_code == 401
    assert reply.json() == {"status": "error", "errors": ["invalid API key"]}
    assert sb.contacts() == []
    (entry,) = sb.requests_log()
    assert entry["auth_ok"] is False
    assert entry["path"] == "contact"
    assert KEY not in json.dumps(entry)  # the Authorization value is never recorded


def test_unknown_account_integration_endpoint_and_method(sb: Sandbox, http: requests.Session) -> None:
    body = {"email": "a@example.com"}
    reply = http.post(f"{sb.base_url}/other/int1/contact", json=body, headers=AUTH)
    assert reply.status_code == 404
    assert reply.json()["status"] == "error"
    reply = http.post(f"{sb.base_url}/acct1/nope/contact", json=body, headers=AUTH)
    assert reply.status_code == 404
    assert "nope" in reply.json()["errors"][0]
    assert http.post(f"{sb.base_url}/acct1/int1/contacts", json=body, headers=AUTH).status_code == 404
    assert http.post(f"{sb.base_url}/acct1/int1/product/5", json=body, headers=AUTH).status_code == 404
    assert http.post(f"{sb.url}/api/v3/acct1/int1/contact", json=body, headers=AUTH).status_code == 404
    reply = http.get(f"{sb.base_url}/acct1/int1/contact", headers=AUTH)
    assert reply.status_code == 405
    assert reply.headers["Allow"] == "POST"
    assert http.post(f"{sb.base_url}/acct1/int1/contact/5", json=body, headers=AUTH).status_code == 405
    assert http.delete(f"{sb.base_url}/acct1/int1/ad/performance", headers=AUTH).status_code == 405
    assert sb.contacts() == []


def test_body_must_be_a_json_object(sb: Sandbox, api: Api, http: requests.Session) -> None:
    url = f"{api.url}/contact"
    json_type = {**AUTH, "Content-Type": "application/json"}
    assert http.post(url, data=b"{not json", headers=json_type).status_code == 400
    assert http.post(url, data=b"", headers=json_type).status_code == 400
    assert api.post("contact", [{"email": "a@example.com"}]).status_code == 400
    reply = http.post(url, data=b'{"email": "a@example.com"}', headers={**AUTH, "Content-Type": "text/plain"})
    assert reply.status_code == 400
    assert "Content-Type" in reply.json()["errors"][0]
    reply = http.post(url, data=b'{"email": "a@example.com"}', headers={**json_type})
    assert reply.status_code == 200
    assert len(sb.contacts()) == 1


# ----------------------------------------------------------------------------- contacts


def test_contact_create_and_update_by_contact_id_then_email(sb: Sandbox, api: Api) -> None:
    api.ok(
        "contact",
        {"contact_id": 249, "email": "joey@bloggs.com", "first_name": "Joey", "geo_lat": "45.5", "geo_lon": -122.6},
    )
    contact = sb.contact(249)
    assert contact is not None
    assert contact["status"] == "active"
    assert contact["first_name"] == "Joey"
    assert contact["tags"] == []
    assert contact["custom_fields"] == {}
    # by contact_id (string and int compare alike): sent fields merged, others unchanged
    api.ok("contact", {"contact_id": "249", "last_name": "Bloggs", "status": "inactive"})
    contact = sb.contact("249")
    assert contact is not None
    assert (contact["first_name"], contact["last_name"], contact["status"]) == ("Joey", "Bloggs", "inactive")
    assert contact["email"] == "joey@bloggs.com"
    # by email only (case-insensitive), the contact keeps its id
    api.ok("contact", {"email": "Joey@Bloggs.com", "first_name": "Joseph"})
    (contact,) = sb.contacts()
    assert contact["contact_id"] == "249"
    assert contact["first_name"] == "Joseph"
    assert sb.contact("joey@bloggs.com") == contact
    # an email-only contact is created without a contact_id
    api.ok("contact", {"email": "new@example.com"})
    created = sb.contact("new@example.com")
    assert created is not None
    assert created["contact_id"] is None
    assert len(sb.contacts()) == 2
    assert sb.contact("nobody@example.com") is None


def test_email_match_gives_contact_the_new_id(sb: Sandbox, api: Api) -> None:
    api.ok("contact", {"contact_id": "old", "email": "a@example.com", "first_name": "A"})
    api.ok("contact", {"contact_id": "new", "email": "a@example.com", "last_name": "Z"})
    (contact,) = sb.contacts()
    assert contact["contact_id"] == "new"
    assert (contact["first_name"], contact["last_name"]) == ("A", "Z")
    assert sb.contact("old") is None
    assert sb.contact("new") == contact
    # a contact_id that exists wins over the email
    api.ok("contact", {"contact_id": "other", "email": "b@example.com"})
    api.ok("contact", {"contact_id": "new", "email": "b@example.com"})
    assert len(sb.contacts()) == 2
    contact_new = sb.contact("new")
    assert contact_new is not None
    assert contact_new["email"] == "b@example.com"


def test_tags_replace_add_remove(sb: Sandbox, api: Api) -> None:
    api.ok(
        "contact",
        {
            "contact_id": 1,
            "email": "a@example.com",
            "tags": ["Lead", 45, {"id": 3, "name": "New Lead", "date": "2018-10-02 16:15:00"}],
        },
    )
    contact = sb.contact(1)
    assert contact is not None
    assert {(t["id"], t["name"], t["date"]) for t in contact["tags"]} >= {(3, "New Lead", "2018-10-02 16:15:00")}
    assert names(contact) == {"Lead", None, "New Lead"}
    assert [t["id"] for t in contact["tags"]] == sorted(t["id"] for t in contact["tags"])
    # tags sent with a contact REPLACE; tags not sent leave them unchanged
    api.ok("contact", {"contact_id": 1, "tags": ["Customer", "Lead"]})
    assert names(sb.contact(1)) == {"Customer", "Lead"}
    api.ok("contact", {"contact_id": 1, "first_name": "A"})
    assert names(sb.contact(1)) == {"Customer", "Lead"}
    # the registry gives a name one id, so tags by id and by name dedupe
    lead_id = next(t["id"] for t in sb.tags() if t["name"] == "Lead")
    api.ok("tags/add", {"contact_id": 1, "tags": [lead_id, "VIP", {"name": "Lead"}]})
    assert names(sb.contact(1)) == {"Customer", "Lead", "VIP"}
    api.ok("tags/remove", {"email": "a@example.com", "tags": [lead_id, "Customer", "never-seen"]})
    assert names(sb.contact(1)) == {"VIP"}
    api.ok("contact", {"contact_id": 1, "tags": []})
    assert names(sb.contact(1)) == set()
    # contact must exist; tags required and non-empty
    reply = api.post("tags/add", {"contact_id": 99, "tags": ["x"]})
    assert reply.status_code == 404
    assert reply.json() == {"status": "error", "errors": ["contact not found"]}
    assert api.errors("tags/add", {"contact_id": 1, "tags": []}) == ["'tags' must not be empty"]
    assert api.errors("tags/remove", {"contact_id": 1}) == ["missing 'tags' field"]
    errors = api.errors("tags/add", {"contact_id": 1, "tags": ["", 1.5, {"date": "2020-01-01 00:00:00"}, True]})
    assert len(errors) == 4


def test_custom_fields_merge_and_null_removes(sb: Sandbox, api: Api) -> None:
    api.ok("contact", {"email": "a@example.com", "custom_fields": {"plan": "gold", "seats": 3, "vip": True}})
    api.ok("contact", {"email": "a@example.com", "custom_fields": {"seats": 4, "vip": None, "ltv": 12.5}})
    contact = sb.contact("a@example.com")
    assert contact is not None
    assert contact["custom_fields"] == {"plan": "gold", "seats": 4, "ltv": 12.5}
    errors = api.errors("contact", {"email": "a@example.com", "custom_fields": {"x": [1], "y": {"a": 1}}})
    assert errors == [
        "'custom_fields.x' must be a string, number, boolean or null",
        "'custom_fields.y' must be a string, number, boolean or null",
    ]
    assert api.errors("contact", {"email": "a@example.com", "custom_fields": ["x"]}) == [
        "'custom_fields' must be an object"
    ]


def test_contact_400_lists_every_problem(sb: Sandbox, api: Api) -> None:
    errors = api.errors(
        "contact",
        {"first_name": 5, "status": "gone", "date_created": "2018-10-02", "foo": 1, "geo_lat": "north"},
    )
    assert set(errors) == {
        "unknown field 'foo'",
        "missing 'email' or 'contact_id' field",
        "'first_name' must be a string",
        "'status' must be one of active, inactive",
        "'date_created' must be a date 'YYYY-MM-DD HH:MM:SS'",
        "'geo_lat' must be a number or a numeric string",
    }
    errors = api.errors("contact", {"contact_id": True, "email": "not-an-email", "last_updated": "2018-13-01 00:00:00"})
    assert len(errors) == 3
    assert api.errors("contact", {"email": "a@example.com", "first_name": None}) == [
        "'first_name' must not be null (omit the field instead)"
    ]
    assert sb.contacts() == []
    (first, *_rest) = sb.requests_log()
    assert first["status"] == 400
    assert first["body"]["foo"] == 1


# ----------------------------------------------------------------------------- orders, products, ads


def invoice(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "INV-1",
        "email": "a@example.com",
        "amount": 2500,
        "paid": 2500,
        "date_created": "2024-05-01 10:00:00",
        "items": [
            {"name": "Widget", "product_id": "P1", "amount": 2000},
            {"id": "custom", "name": "Gadget", "product_id": 7, "amount": 500, "subscription_id": "S1"},
            {"name": "Widget", "product_id": "P1", "amount": 0},
        ],
    }
    body.update(overrides)
    return body


def test_invoice_upsert_item_ids_and_products(sb: Sandbox, api: Api) -> None:
    api.ok("invoice", invoice())
    held = sb.invoice("INV-1")
    assert held is not None
    assert [item["id"] for item in held["items"]] == ["INV-1-1", "custom", "INV-1-3"]
    assert {(p["id"], p["name"]) for p in sb.products()} == {("P1", "Widget"), (7, "Gadget")}
    api.ok("invoice", invoice(paid=0, is_refunded=True, tax=100, items=[]))
    (held,) = sb.invoices()
    assert (held["paid"], held["is_refunded"], held["tax"], held["items"]) == (0, True, 100, [])
    # integer cents only; every problem listed
    errors = api.errors(
        "invoice",
        invoice(amount=25.0, paid=True, discount="1", date_created="2024-05-01", items=[{"amount": 1.5, "x": 1}]),
    )
    assert set(errors) == {
        "'amount' must be an integer (cents)",
        "'paid' must be an integer (cents)",
        "'discount' must be an integer (cents)",
        "'date_created' must be a date 'YYYY-MM-DD HH:MM:SS'",
        "unknown field 'items[0].x'",
        "missing 'items[0].name' field",
        "missing 'items[0].product_id' field",
        "'items[0].amount' must be an integer (cents)",
    }
    assert "missing 'id' field" in api.errors("invoice", {k: v for k, v in invoice().items() if k != "id"})


def test_invoice_contact_id_must_exist(sb: Sandbox, api: Api) -> None:
    errors = api.errors("invoice", invoice(contact_id="C9"))
    assert errors == ["contact_id 'C9' does not exist"]
    assert sb.invoices() == []
    api.ok("contact", {"contact_id": "C9", "email": "a@example.com"})
    api.ok("invoice", invoice(contact_id="C9"))
    assert len(sb.invoices()) == 1


def test_subscription_and_product(sb: Sandbox, api: Api) -> None:
    body: dict[str, Any] = {
        "id": "S1",
        "email": "a@example.com",
        "amount": 990,
        "product_id": "P9",
        "name": "Monthly",
        "start_date": "2024-01-01 00:00:00",
        "last_bill_date": "2024-05-01 00:00:00",
        "billing_cycle": "month",
        "frequency": 1,
    }
    api.ok("subscription", body)
    held = sb.subscription("S1")
    assert held is not None
    assert held["quantity"] == 1
    api.ok("subscription", {**body, "canceled_date": "2024-06-01 00:00:00", "quantity": 2})
    (held,) = sb.subscriptions()
    assert (held["quantity"], held["canceled_date"]) == (2, "2024-06-01 00:00:00")
    assert sb.product("P9") == {"id": "P9", "name": "Monthly"}
    errors = api.errors("subscription", {**body, "billing_cycle": "fortnight", "frequency": 0, "contact_id": 5})
    assert set(errors) == {
        "'billing_cycle' must be one of year, month, week, day",
        "'frequency' must be a positive integer",
        "contact_id '5' does not exist",
    }
    api.ok("product", {"id": "P9", "name": "Monthly plan"})
    api.ok("product", {"id": 10, "name": "Other"})
    assert sb.product("P9") == {"id": "P9", "name": "Monthly plan"}
    assert len(sb.products()) == 2
    assert set(api.errors("product", {"id": "P1", "price": 5})) == {"unknown field 'price'", "missing 'name' field"}


def test_ad_performance_upsert_by_ad_and_date(sb: Sandbox, api: Api) -> None:
    ad = {"id": "ad1", "name": "Ad", "adcampaign": {"id": "c1", "name": "Camp"}, "adset": "s1"}
    api.ok("ad/performance", {"ad": ad, "spend": 1234, "date": "2024-05-01", "clicks": 10})
    api.ok("ad/performance", {"ad": "ad1", "spend": 2000, "date": "2024-05-01", "impressions": 500})
    api.ok("ad/performance", {"ad": "ad1", "spend": 10, "date": "2024-05-02", "adset": {"id": "s1", "name": "Set"}})
    rows = sorted(sb.ad_performance(), key=lambda row: row["date"])
    assert rows[0] == {"ad": "ad1", "date": "2024-05-01", "spend": 2000, "clicks": 10, "impressions": 500}
    assert rows[1]["adset"] == "s1"
    state = sb.state()["accounts"]["acct1"]["integrations"]["int1"]
    assert state["ads"] == [{"id": "ad1", "name": "Ad", "adcampaign": "c1", "adset": "s1"}]
    assert state["adcampaigns"] == [{"id": "c1", "name": "Camp"}]
    assert state["adsets"] == [{"id": "s1", "name": "Set"}]
    errors = api.errors("ad/performance", {"ad": {"name": "x"}, "spend": 1.5, "date": "2024-05-01 00:00:00"})
    assert set(errors) == {
        "missing 'ad.id' field",
        "'spend' must be an integer (cents)",
        "'date' must be a date 'YYYY-MM-DD'",
    }


# ----------------------------------------------------------------------------- deletes


def test_deletes(sb: Sandbox, api: Api) -> None:
    api.ok("contact", {"contact_id": 1, "email": "dup@example.com"})
    api.ok("contact", {"contact_id": 2, "email": "two@example.com"})
    api.ok("contact", {"contact_id": 2, "email": "DUP@example.com"})  # matched by id: now two share the email
    assert len(sb.contacts()) == 2
    api.ok("contact", {"contact_id": "x/3", "email": "keep@example.com"})
    api.ok("invoice", invoice(contact_id=1))
    reply = api.delete("contact/dup%40example.com")
    assert reply.status_code == 200
    assert reply.json() == {"id": "dup@example.com", "status": "success", "object": "contact", "deleted": True}
    assert [c["contact_id"] for c in sb.contacts()] == ["x/3"]
    assert len(sb.invoices()) == 1  # invoices stay
    reply = api.delete("contact/x%2F3")
    assert reply.json() == {"id": "x/3", "status": "success", "object": "contact", "deleted": True}
    assert sb.contacts() == []
    reply = api.delete("contact/1")
    assert reply.status_code == 404
    assert reply.json() == {"status": "error", "errors": ["contact not found"]}
    reply = api.delete("invoice/INV-1")
    assert reply.json() == {"id": "INV-1", "status": "success", "object": "invoice", "deleted": True}
    assert api.delete("invoice/INV-1").status_code == 404
    assert api.delete("subscription/S1").json() == {"status": "error", "errors": ["subscription not found"]}
    assert [e["path"] for e in sb.requests_log()][-3:] == ["invoice/INV-1", "invoice/INV-1", "subscription/S1"]


def test_integrations_are_separate(sb: Sandbox, http: requests.Session) -> None:
    Api(sb, http, "int2").ok("contact", {"email": "a@example.com"})
    assert sb.contacts() == []
    assert len(sb.contacts("int2")) == 1


# ----------------------------------------------------------------------------- concurrency, control, faults


def test_peak_in_flight_with_latency(sb: Sandbox) -> None:
    sb.set_latency(100)
    url = f"{sb.integration_url()}/contact"
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def one(n: int) -> None:
        barrier.wait()
        statuses.append(requests.post(url, json={"email": f"u{n}@example.com"}, headers=AUTH, timeout=10).status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 20
    assert sb.peak_in_flight >= 10
    assert sb.request_count == 20
    assert sb.in_flight == 0
    assert len(sb.contacts()) == 20


def test_control_endpoints(sb: Sandbox, api: Api, http: requests.Session) -> None:
    api.ok("contact", {"email": "a@example.com"})
    state = http.get(f"{sb.url}/_sandbox/state").json()
    assert state["request_count"] == 1
    assert state["peak_in_flight"] == 1
    (contact,) = state["accounts"]["acct1"]["integrations"]["int1"]["contacts"]
    assert contact["email"] == "a@example.com"
    log = http.get(f"{sb.url}/_sandbox/requests").json()
    assert log == [
        {
            "method": "POST",
            "path": "contact",
            "status": 200,
            "body": {"email": "a@example.com"},
            "auth_ok": True,
            "account_id": "acct1",
            "integration_id": "int1",
            "fault": None,
        }
    ]
    reply = http.post(f"{sb.url}/_sandbox/config", json={"latency_ms": 5})
    assert reply.json()["latency_ms"] == 5
    assert http.post(f"{sb.url}/_sandbox/reset").json() == {"status": "success"}
    assert sb.contacts() == []
    assert sb.request_count == 0
    assert sb.requests_log() == []


def test_faults_scripted(sb: Sandbox, api: Api) -> None:
    faults = Faults(retry_after=2)
    sb.faults = faults
    faults.script(503, 429, "lost", "drop", "ok")
    reply = api.post("contact", {"email": "a@example.com"})
    assert reply.status_code == 503
    reply = api.post("contact", {"email": "a@example.com"})
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "2"
    assert sb.contacts() == []  # refused before the write
    with pytest.raises(requests.ConnectionError):
        api.post("contact", {"email": "lost@example.com"})
    assert sb.contact("lost@example.com") is not None  # applied, reply lost
    with pytest.raises(requests.ConnectionError):
        api.post("contact", {"email": "dropped@example.com"})
    assert sb.contact("dropped@example.com") is None
    api.ok("contact", {"email": "b@example.com"})
    assert [e["fault"] for e in sb.requests_log()] == ["status 503", "status 429", "lost", "drop", None]
    assert faults.counts == {"503": 1, "429": 1, "lost": 1, "drop": 1}


def test_cli_and_show(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "target_segmetrics.sandbox", "--port", "0", "--api-key", "demo-key"]
    cmd += ["--account-id", "demo", "--integration-id", "demo-int"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "sandbox CLI printed nothing"
        line = proc.stdout.readline()
        assert line.startswith("SegMetrics sandbox listening on http://127.0.0.1:")
        assert line.endswith("/api/v1 (account demo, integration demo-int)\n")
        base_url = line.split()[4]
        root = base_url.removesuffix("/api/v1")
        reply = requests.post(
            f"{base_url}/demo/demo-int/contact",
            json={"email": "demo@example.com", "tags": ["Demo"]},
            headers={"Authorization": "demo-key"},
            timeout=5,
        )
        assert reply.status_code == 200
        shown = subprocess.run(
            [sys.executable, "-m", "target_segmetrics.sandbox.show", "--url", root],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=15,
            check=True,
        )
        state = json.loads(shown.stdout)
        (contact,) = state["accounts"]["demo"]["integrations"]["demo-int"]["contacts"]
        assert contact["email"] == "demo@example.com"
        assert "\n  " in shown.stdout  # pretty-printed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
