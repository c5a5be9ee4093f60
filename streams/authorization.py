"""Authorization decisions: a requested payment in, an authorized or declined event out.

Pure functions only; the Faust agent in ``streams.payments`` is a thin shell around them.  The
rules here are the simple first set (method limits, the sandbox's test instruments); fraud scores
and processor connectors replace the test instruments in later work.
"""

from __future__ import annotations

from collections.abc import Mapping

from models.events import DeclineCode, PaymentAuthorized, PaymentDeclined, PaymentRequested
from models.ids import derived_event_id
from models.methods import CardMethod, MethodType, UpiMethod

# Per-transaction ceilings in paise.  UPI: NPCI's general P2M limit of ₹1 lakh.  IMPS: ₹5 lakh.
# Wallet: RBI's full-KYC PPI limit of ₹2 lakh.  Methods absent here have no ceiling of their own.
METHOD_LIMIT_MINOR_INR: Mapping[MethodType, int] = {
    "upi": 1_00_000_00,
    "imps": 5_00_000_00,
    "wallet": 2_00_000_00,
}

# Test instruments, as card networks' sandboxes publish them: the last four digits choose the
# outcome.  Anything else authorizes.
CARD_TEST_DECLINES: Mapping[str, DeclineCode] = {
    "0002": "do_not_honor",
    "9995": "insufficient_funds",
    "0069": "expired_card",
}


def decline_code_for(request: PaymentRequested) -> DeclineCode | None:
    """Why ``request`` is declined, or ``None`` when it authorizes."""
    method = request.method
    limit = METHOD_LIMIT_MINOR_INR.get(method.type)
    if request.amount.currency == "INR" and limit is not None and request.amount.minor > limit:
        return "amount_over_method_limit"
    if isinstance(method, CardMethod):
        return CARD_TEST_DECLINES.get(method.last4)
    if isinstance(method, UpiMethod) and method.vpa.startswith("invalid"):
        return "invalid_vpa"
    return None


def process_requested(request: PaymentRequested) -> PaymentAuthorized | PaymentDeclined:
    """Decide ``request``.  The outcome's event id is derived from the payment, so deciding the
    same request twice (a redelivery) yields the very same event."""
    code = decline_code_for(request)
    common = {
        "payment_id": request.payment_id,
        "merchant_id": request.merchant_id,
        "occurred_at": request.occurred_at,
        "amount": request.amount,
        "method_type": request.method.type,
    }
    if code is None:
        return PaymentAuthorized(
            event_id=derived_event_id(request.payment_id, "payment.authorized"), **common
        )
    return PaymentDeclined(
        event_id=derived_event_id(request.payment_id, "payment.declined"),
        decline_code=code,
        **common,
    )
