"""Money: integer minor units with an ISO 4217 currency.

No float ever holds an amount.  ``Money.minor`` counts the currency's smallest unit (paise for
INR, cents for USD, whole yen for JPY); the currency's exponent says how many decimal places a
human-readable amount has.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

# Bounds of a PostgreSQL BIGINT / ClickHouse Int64: every amount must fit both.
INT64_MAX = 2**63 - 1

# ISO 4217 exponents of the currencies RizzPay accepts.  INR is the home currency; the others are
# for international cards.  Adding one here is the whole change needed to accept it.
CURRENCY_EXPONENTS: dict[str, int] = {
    "INR": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "SGD": 2,
    "AED": 2,
    "AUD": 2,
    "CAD": 2,
    "JPY": 0,
    "KWD": 3,
}

AmountMinor = Annotated[StrictInt, Field(gt=0, le=INT64_MAX)]


class UnknownCurrency(ValueError):
    """The currency code is not one RizzPay accepts."""


def check_currency(code: str) -> str:
    """Return ``code`` if it is an accepted ISO 4217 code, else raise :class:`UnknownCurrency`."""
    if code not in CURRENCY_EXPONENTS:
        raise UnknownCurrency(f"currency {code!r} is not supported")
    return code


class Money(BaseModel):
    """A positive amount in minor units of one currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    minor: AmountMinor
    currency: str

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        return check_currency(value)

    def major(self) -> Decimal:
        """The amount in major units, exactly (``Money(minor=12345, currency="INR")`` → 123.45)."""
        return Decimal(self.minor).scaleb(-CURRENCY_EXPONENTS[self.currency])

    def __str__(self) -> str:
        return f"{self.major():,} {self.currency}"


def format_minor(minor: int, currency: str) -> str:
    """Human-readable signed amount: ``format_minor(-12345, "INR")`` → ``-123.45 INR``."""
    exponent = CURRENCY_EXPONENTS[currency]
    return f"{Decimal(minor).scaleb(-exponent):,.{exponent}f} {currency}"
