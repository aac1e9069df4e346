"""The number converters share one parser and keep their own messages (unit tests, no HTTP)."""

from __future__ import annotations

import decimal

import pytest

from target_segmetrics.mapping.sources import TRANSFORMS
from target_segmetrics.mapping.values import ValueProblem, as_cents, as_whole

CENTS = TRANSFORMS["cents"]
NUMBER = TRANSFORMS["number"]


@pytest.mark.parametrize(
    ("convert", "value", "message"),
    [
        (CENTS, True, "True is not an amount"),
        (CENTS, "NaN", "'NaN' is not an amount"),
        (CENTS, "twelve", "'twelve' is not an amount"),
        (CENTS, "1,50", "'1,50' is not an amount (a comma only separates thousands: 1,500.00)"),
        (NUMBER, False, "False is not a number"),
        (NUMBER, float("inf"), "inf is not a number"),
        (NUMBER, "1.2.3", "'1.2.3' is not a number"),
        (as_cents, True, "True is not an amount in cents"),
        (as_cents, decimal.Decimal("-Infinity"), "Decimal('-Infinity') is not an amount in cents"),
        (
            as_cents,
            "12.5",
            '12.5 is not a whole number of cents (an amount in currency units needs "transform": "cents")',
        ),
        (as_whole, True, "True is not a whole number"),
        (as_whole, "nan", "'nan' is not a whole number"),
        (as_whole, "2.5", "'2.5' is not a whole number"),
        # the transforms write the whole value out, the field converters shorten a long one
        (CENTS, "9" * 70 + "x", repr("9" * 70 + "x") + " is not an amount"),
        (as_whole, "9" * 70 + "x", repr("9" * 70 + "x")[:57] + "... is not a whole number"),
    ],
)
def test_refused_numbers_say_why(convert, value, message):
    with pytest.raises(ValueProblem) as exc:
        convert(value)
    assert str(exc.value) == message


def test_accepted_numbers():
    assert CENTS("1,500.005") == 150001
    assert CENTS(19.99) == 1999
    assert NUMBER(" 3.0 ") == 3
    assert NUMBER("2.5") == 2.5
    assert as_cents("1200") == 1200
    assert as_cents(7) == 7
    assert as_whole("3.0") == 3
