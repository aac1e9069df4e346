"""What may be parked, in fixed memory: an object once parked is always found (its newer record must
supersede it), and one never parked is almost never taken for parked (that costs a statement only)."""

from __future__ import annotations

from target_segmetrics.delivery.maybe import MaybeSet


def test_every_object_added_is_found_and_almost_no_other_one():
    parked = MaybeSet()
    assert hash(("invoices", "id=1")) not in parked
    for i in range(100_000):
        parked.add(hash(("invoices", f"id={i}")))
    assert all(hash(("invoices", f"id={i}")) in parked for i in range(100_000))
    false_yes = sum(hash(("invoices", f"id={i}")) in parked for i in range(100_000, 200_000))
    assert false_yes <= 20  # about 0.5 expected
