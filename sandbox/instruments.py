"""The sandboxes' deterministic test instruments: which card, VPA, bank page action or bank
account produces which outcome.  Every provider sandbox uses this one table, so a test
instrument means the same at Razorpay, PayU and Stripe (docs/connectors.md shows it).

Cards: the last four digits choose the outcome (as in ``streams.authorization``); any other
Luhn-valid card of a known network approves.  UPI: the VPA's local part (before ``@``) starts
with the selector.  Bank transfers: the remitter account's last four digits.  Netbanking: the
customer's choice on the bank's page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from streams.connectors.cards import bin_info, luhn_valid

# RTGS is for ₹2 lakh and above (RBI); IMPS per-transaction ceiling ₹5 lakh (NPCI).
RTGS_MIN_MINOR = 2_00_000_00
IMPS_MAX_MINOR = 5_00_000_00

Outcome = Literal[
    "approve",
    "do_not_honor",
    "insufficient_funds",
    "expired_card",
    "invalid_vpa",
    "upi_timeout",
    "upi_late_success",
    "bank_rejected",
    "three_d_secure",
    "invalid_number",
]

CARD_LAST4_OUTCOMES: Mapping[str, Outcome] = {
    "0002": "do_not_honor",
    "9995": "insufficient_funds",
    "0069": "expired_card",
    "3184": "three_d_secure",  # 3-D Secure challenge, then approve (or fail authentication)
}

# Ready-made Luhn-valid test cards (PAN → what it does); BIN picks the network.
TEST_CARDS: Mapping[str, str] = {
    "4111111111111111": "Visa, approves",
    "5555555555554444": "Mastercard, approves",
    "6521111111111110": "RuPay, approves",
    "378282246310005": "Amex, approves",
    "36227206271667": "Diners, approves",
    "4000000000000002": "Visa, declines: do_not_honor",
    "4000000000009995": "Visa, declines: insufficient_funds",
    "4000000000000069": "Visa, declines: expired_card",
    "4000002760003184": "Visa, 3-D Secure challenge",
}

UPI_PREFIX_OUTCOMES: tuple[tuple[str, Outcome], ...] = (
    ("invalid", "invalid_vpa"),  # refused when the collect request is created
    ("timeout", "upi_timeout"),  # never approved: expires after upi_expiry_ms
    # Reported expired after upi_expiry_ms, then the remitter bank's debit is confirmed after
    # SandboxSettings.upi_late_success_ms (NPCI's "deemed success" after a timeout): the
    # customer was debited for a payment the gateway already saw fail.
    ("late", "upi_late_success"),
    ("nofunds", "insufficient_funds"),  # approved, then the remitter bank declines
    ("reject", "bank_rejected"),  # the remitter bank rejects
)

ACCOUNT_LAST4_OUTCOMES: Mapping[str, Outcome] = {
    "0002": "bank_rejected",
    "9995": "insufficient_funds",
}


def card_outcome(pan: str) -> Outcome:
    """What the sandbox does with a card: ``invalid_number`` unless the PAN is Luhn-valid, of a
    known network and of that network's length."""
    info = bin_info(pan)
    if info is None or len(pan) not in info.pan_lengths or not luhn_valid(pan):
        return "invalid_number"
    return CARD_LAST4_OUTCOMES.get(pan[-4:], "approve")


def upi_outcome(vpa: str) -> Outcome:
    """What happens to a collect request sent to ``vpa``."""
    local, sep, handle = vpa.partition("@")
    if not sep or not local or not handle:
        return "invalid_vpa"
    lowered = local.lower()
    for prefix, outcome in UPI_PREFIX_OUTCOMES:
        if lowered.startswith(prefix):
            return outcome
    return "approve"


def account_outcome(account_number: str) -> Outcome:
    """What the remitter's bank does with a transfer from ``account_number``."""
    return ACCOUNT_LAST4_OUTCOMES.get(account_number[-4:], "approve")
