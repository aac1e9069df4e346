"""Money and dates as people write them: currency symbols and codes, ISO 4217 minor units, strptime formats."""

from __future__ import annotations

import re

import pytest

from target_segmetrics.mapping.compiler import compile_entry
from target_segmetrics.mapping.paths import MappingConfigError
from target_segmetrics.mapping.presets import PRESETS
from target_segmetrics.mapping.sources import TRANSFORMS, compile_source
from target_segmetrics.mapping.values import ValueProblem
from target_segmetrics.reporting_reasons import said_once

CENTS = TRANSFORMS["cents"]


@pytest.mark.parametrize(
    ("written", "minor"),
    [
        ("$1,299.00", 129900),
        ("1.299,00 €", 129900),
        ("1 299,00 €", 129900),
        ("12,50 €", 1250),
        ("USD 12.00", 1200),
        ("12.00 usd", 1200),
        ("¥1,500", 1500),  # yen have no minor unit
        ("JPY 1500", 1500),
        ("KWD 1.250", 1250),  # fils: thousandths
        ("-$5.00", -500),
        ("$-5.00", -500),
        ("1,500.005", 150001),
        ("19.99", 1999),
    ],
)
def test_cents_reads_money_as_people_write_it(written, minor):
    assert CENTS(written) == minor


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("1.299 €", "may be a decimal point or thousands"),
        ("1,299 €", "may be a decimal point or thousands"),
        ("1,50", "a comma only separates thousands"),
        ("$1,2,3", "thousands go by three"),
        ("€12.00 USD", "is not an amount"),
        ("twelve", "is not an amount"),
    ],
)
def test_cents_refuses_money_that_reads_two_ways(written, message):
    with pytest.raises(ValueProblem, match=message):
        CENTS(written)


def test_an_entrys_currency_sets_the_minor_unit_and_refuses_another_currency():
    entry = {
        "object": "subscription",
        "currency": "jpy",
        "fields": {"id": "id", "email": "email", "amount": {"path": "amount", "transform": "cents"}},
    }
    mapping = compile_entry("orders", entry, PRESETS)
    sent = mapping.map({"id": "1", "email": "a@example.com", "amount": "1500"})
    assert sent.payload["amount"] == 1500
    refused = mapping.map({"id": "2", "email": "a@example.com", "amount": "12,50 €"})
    assert [str(p) for p in refused.problems if p.field == "amount"] == [
        "amount: '12,50 €' is in EUR, not in JPY (the entry's currency): not converted"
    ]


def test_a_currency_that_is_not_a_code_stops_the_config():
    entry = {"object": "subscription", "currency": "yens", "fields": {"id": "id", "email": "email"}}
    with pytest.raises(
        MappingConfigError, match=re.escape('mappings.orders.currency: must be a currency code such as "USD"')
    ):
        compile_entry("orders", entry, PRESETS)


def test_date_in_a_known_format():
    us = compile_source({"path": "d", "transform": "date:%m/%d/%Y"}, "t")
    assert us({"d": "03/05/2024"}) == "2024-03-05"
    words = compile_source({"path": "d", "transform": "date:%d %B %Y"}, "t")
    assert words({"d": "5 March 2024"}) == "2024-03-05"
    timed = compile_source({"path": "d", "transform": "date:%d.%m.%Y %H:%M"}, "t")
    assert timed({"d": "05.03.2024 13:30"}) == "2024-03-05 13:30:00"
    with pytest.raises(ValueProblem, match="'5 March 2024' is not a date in the format '%m/%d/%Y'"):
        us({"d": "5 March 2024"})


@pytest.mark.parametrize(
    ("transform", "message"), [("date:dd/mm/yyyy", "no strptime directive"), ("cents:dollars", "currency code")]
)
def test_a_malformed_made_transform_stops_the_config(transform, message):
    with pytest.raises(MappingConfigError, match=message):
        compile_source({"path": "d", "transform": transform}, "t")


def deal(**properties) -> dict:
    """A won deal without line items as HubSpot sends one (every deal has its stage)."""
    base = {
        "hs_is_closed_won": True,
        "dealstage": "closedwon",
        "closedate": "2024-01-05T00:00:00Z",
        "dealname": "Big deal",
    }
    return {"id": "9", "associations": {"associatedVids": [7]}, "properties": base | properties}


def test_the_hubspot_presets_currency_sends_yen_as_they_are():
    mapping = compile_entry("deals", {"preset": "hubspot", "currency": "JPY"}, PRESETS)
    sent = mapping.map(deal(amount="1500", deal_currency_code="JPY"))
    assert not sent.problems
    assert (sent.payload["amount"], sent.payload["paid"], sent.payload["items"][0]["amount"]) == (1500, 1500, 1500)
    usd = compile_entry("deals", {"preset": "hubspot", "currency": "USD"}, PRESETS).map(deal(amount="1500"))
    assert usd.payload["amount"] == 150000


def test_a_reason_common_to_several_fields_is_said_once():
    mapping = compile_entry("deals", {"preset": "hubspot", "currency": "USD"}, PRESETS)
    refused = mapping.map(deal(amount="1500", deal_currency_code="EUR"))
    reasons = said_once(refused.problems)
    assert len(reasons) == 1
    assert reasons[0].startswith("amount, paid, items[0].amount: the deal is in 'EUR', not in USD")
