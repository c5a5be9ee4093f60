"""Amounts in each provider's unit: exact, round-tripping, and refusing what would lose a paisa."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.money import INT64_MAX
from streams.connectors.amounts import (
    AmountNotRepresentable,
    decimal_string_to_minor,
    from_bank_amount,
    from_payu_amount,
    minor_to_decimal_string,
    to_bank_amount,
    to_payu_amount,
    to_razorpay_amount,
    to_stripe_amount,
)


@pytest.mark.parametrize(
    ("minor", "text"),
    [
        (1, "0.01"),
        (10, "0.10"),
        (100, "1.00"),
        (123450, "1234.50"),
        (2_00_000_00, "200000.00"),
        (INT64_MAX, "92233720368547758.07"),  # float would print 9.223372036854776e16
    ],
)
def test_payu_amounts_are_rupees_with_two_decimals(minor: int, text: str) -> None:
    assert to_payu_amount(minor, "INR") == text
    assert from_payu_amount(text) == minor
    assert to_bank_amount(minor) == text
    assert from_bank_amount(text) == minor


@given(st.integers(min_value=1, max_value=INT64_MAX))
def test_rupee_strings_round_trip_exactly(minor: int) -> None:
    assert from_payu_amount(to_payu_amount(minor, "INR")) == minor


@pytest.mark.parametrize(
    ("currency", "minor", "text"),
    [("JPY", 500, "500"), ("KWD", 1234, "1.234"), ("USD", 5, "0.05")],
)
def test_decimal_strings_follow_the_currency_exponent(currency: str, minor: int, text: str) -> None:
    assert minor_to_decimal_string(minor, currency) == text
    assert decimal_string_to_minor(text, currency) == minor


@pytest.mark.parametrize("text", ["1.001", "1e3", "NaN", "inf", "1,000.00", "", " ", "₹10", "0x10"])
def test_strings_that_are_not_exact_paise_are_refused(text: str) -> None:
    with pytest.raises(AmountNotRepresentable):
        from_payu_amount(text)


def test_integer_providers_take_minor_units_unchanged() -> None:
    assert to_razorpay_amount(123450, "INR") == 123450
    assert to_stripe_amount(999, "USD") == 999
    assert to_stripe_amount(500, "JPY") == 500  # zero-decimal: yen are the minor unit


def test_stripe_three_decimal_currencies_need_a_trailing_zero() -> None:
    assert to_stripe_amount(1230, "KWD") == 1230
    with pytest.raises(AmountNotRepresentable):
        to_stripe_amount(1234, "KWD")


@pytest.mark.parametrize(
    "call",
    [
        lambda: to_payu_amount(100, "USD"),
        lambda: to_razorpay_amount(100, "USD"),
        lambda: to_stripe_amount(100, "XYZ"),
        lambda: to_payu_amount(1.5, "INR"),  # type: ignore[arg-type]
        lambda: to_razorpay_amount(True, "INR"),
    ],
)
def test_wrong_currencies_and_non_integers_are_refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(AmountNotRepresentable):
        call()
