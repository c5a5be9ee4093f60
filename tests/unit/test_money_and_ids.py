from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from models.ids import derived_event_id, payment_id_for
from models.money import INT64_MAX, Money, format_minor


def test_payment_id_is_determined_by_merchant_and_key() -> None:
    assert payment_id_for("m1", "k1") == payment_id_for("m1", "k1")
    assert payment_id_for("m1", "k1") != payment_id_for("m2", "k1")
    assert payment_id_for("m1", "k1") != payment_id_for("m1", "k2")
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert payment_id_for("ab", "c") != payment_id_for("a", "bc")


def test_derived_event_ids_differ_by_step() -> None:
    pid = payment_id_for("m1", "k1")
    assert derived_event_id(pid, "payment.refunded", "r1") != derived_event_id(
        pid, "payment.refunded", "r2"
    )


def test_money_is_exact_in_major_units() -> None:
    assert Money(minor=12345, currency="INR").major() == Decimal("123.45")
    assert Money(minor=12345, currency="JPY").major() == Decimal("12345")
    assert Money(minor=12345, currency="KWD").major() == Decimal("12.345")
    assert format_minor(-1_00_000_01, "INR") == "-100,000.01 INR"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"minor": 0, "currency": "INR"},
        {"minor": 1.5, "currency": "INR"},
        {"minor": INT64_MAX + 1, "currency": "INR"},
        {"minor": 100, "currency": "ABC"},
    ],
)
def test_money_refuses_what_is_not_money(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Money.model_validate(kwargs)
