"""Amounts in each provider's unit, converted exactly (``Decimal`` and ``int``, never float).

RizzPay's unit is the currency's minor unit (``models.money``).  Razorpay and Stripe take
integers of the smallest unit too (paise for INR), with Stripe's rule for three-decimal
currencies; PayU and the bank APIs take a decimal string of rupees with exactly two places
(``"1234.50"``).  Every conversion round-trips; anything that would lose a paisa raises
:class:`AmountNotRepresentable`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from models.money import CURRENCY_EXPONENTS

# Stripe: amounts in three-decimal currencies must be multiples of 10 of the minor unit.
STRIPE_THREE_DECIMAL_STEP_MINOR = 10


class AmountNotRepresentable(ValueError):
    """The amount cannot be expressed exactly in the provider's unit."""


def _exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise AmountNotRepresentable(f"unknown currency {currency!r}") from None


def minor_to_decimal_string(amount_minor: int, currency: str) -> str:
    """``123450`` paise → ``"1234.50"``: major units with exactly the currency's decimals."""
    if type(amount_minor) is not int:
        raise AmountNotRepresentable(f"amount must be an int of minor units: {amount_minor!r}")
    exponent = _exponent(currency)
    value = Decimal(amount_minor).scaleb(-exponent)
    return f"{value:.{exponent}f}"


def decimal_string_to_minor(text: str, currency: str) -> int:
    """``"1234.50"`` → ``123450`` paise.  Refuses more decimals than the currency has, exponents,
    signs other than ``-``, NaN and infinities."""
    exponent = _exponent(currency)
    stripped = text.strip()
    if not stripped or any(c not in "0123456789.-" for c in stripped):
        raise AmountNotRepresentable(f"not a plain decimal amount: {text!r}")
    try:
        value = Decimal(stripped)
    except InvalidOperation:
        raise AmountNotRepresentable(f"not a decimal amount: {text!r}") from None
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise AmountNotRepresentable(f"{text!r} has more than {exponent} decimals")
    return int(scaled)


def to_payu_amount(amount_minor: int, currency: str) -> str:
    """PayU's ``amount``: rupees with two decimals.  PayU India settles INR only."""
    if currency != "INR":
        raise AmountNotRepresentable(f"PayU takes INR only, not {currency}")
    return minor_to_decimal_string(amount_minor, currency)


def from_payu_amount(text: str) -> int:
    """Paise of a PayU ``amount``/``amt`` string."""
    return decimal_string_to_minor(text, "INR")


def to_razorpay_amount(amount_minor: int, currency: str) -> int:
    """Razorpay's ``amount``: an integer of the smallest unit (paise).  RizzPay routes only INR
    to Razorpay."""
    if currency != "INR":
        raise AmountNotRepresentable(f"RizzPay routes only INR to Razorpay, not {currency}")
    if type(amount_minor) is not int:
        raise AmountNotRepresentable(f"amount must be an int of minor units: {amount_minor!r}")
    return amount_minor


def to_stripe_amount(amount_minor: int, currency: str) -> int:
    """Stripe's ``amount``: an integer of the smallest unit (cents; whole yen for JPY).  Stripe
    requires three-decimal currencies (KWD…) to end in 0."""
    exponent = _exponent(currency)
    if type(amount_minor) is not int:
        raise AmountNotRepresentable(f"amount must be an int of minor units: {amount_minor!r}")
    if exponent == 3 and amount_minor % STRIPE_THREE_DECIMAL_STEP_MINOR:
        raise AmountNotRepresentable(
            f"Stripe needs {currency} amounts in multiples of {STRIPE_THREE_DECIMAL_STEP_MINOR}"
        )
    return amount_minor


def to_bank_amount(amount_minor: int) -> str:
    """The bank APIs' ``amount``: rupees with two decimals, like PayU's."""
    return minor_to_decimal_string(amount_minor, "INR")


def from_bank_amount(text: str) -> int:
    """Paise of a bank API amount string."""
    return decimal_string_to_minor(text, "INR")
