"""Capture, void and refund: merchants' requests about an existing payment.

Each is accepted like a payment: idempotent per Idempotency-Key, published to the payment's own
topic and key (so the worker applies it after the payment's creation, in order), answered 202
once the broker acknowledged.  Before publishing, the request is tried against the payment's
stored lifecycle state, so an impossible request (refund above what was captured, void after
capture…) is refused at once with the state machine's stable code instead of failing later in
the stream.  The worker applies it again for real; a race between two requests is settled
there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.problems import Problem
from api.schemas import CaptureCreate, RefundCreate, VoidCreate, fingerprint_of
from models.events import (
    CaptureRequested,
    PaymentCaptured,
    PaymentCommand,
    RefundRequested,
    VoidRequested,
)
from models.ids import command_id_for, new_event_id
from models.money import Money
from streams.decisions import to_lifecycle_command
from streams.lifecycle import (
    ERROR_HTTP_STATUS,
    IllegalTransition,
    PaymentState,
    apply,
    state_from_json,
)
from warehouse.payments import get_payment

CommandBody = CaptureCreate | VoidCreate | RefundCreate


async def load_state(pool: Any, merchant_id: str, payment_id: str) -> PaymentState:
    """The payment's lifecycle state, or a 404 / 409 problem."""
    row = await get_payment(pool, payment_id)
    if row is None or row["merchant_id"] != merchant_id:
        raise Problem(
            404, "payment_not_found", "No such payment", f"payment {payment_id} not found"
        )
    if row["lifecycle"] is None:
        raise Problem(
            409,
            "payment_processing",
            "The payment is still being processed",
            "Retry once the payment shows its first decision",
            headers={"Retry-After": "1"},
        )
    return state_from_json(row["lifecycle"].encode())


def build_command(
    state: PaymentState, body: CommandBody, merchant_id: str, key: str, fingerprint: str
) -> tuple[PaymentCommand, dict[str, Any]]:
    """The command event to publish and the 202 view to answer with."""
    now = datetime.now(UTC)
    common: dict[str, Any] = {
        "event_id": new_event_id(),
        "payment_id": state.payment_id,
        "merchant_id": merchant_id,
        "occurred_at": now,
        "request_fingerprint": fingerprint,
    }
    view: dict[str, Any] = {"payment_id": state.payment_id, "status": "pending"}
    event: PaymentCommand
    match body:
        case CaptureCreate():
            capture_id = command_id_for("cap", merchant_id, key)
            amount = body.amount if body.amount is not None else _capture_amount(state, capture_id)
            if amount <= 0:
                raise _refusal("payment_not_capturable", "nothing is left to capture")
            money = Money(minor=amount, currency=state.currency)
            event = CaptureRequested(
                capture_id=capture_id, amount=money, final=body.final, **common
            )
            view |= {"id": capture_id, "object": "capture", "amount": amount, "final": body.final}
        case VoidCreate():
            event = VoidRequested(**common)
            view |= {"id": state.payment_id, "object": "void"}
        case RefundCreate():
            refund_id = command_id_for("rfd", merchant_id, key)
            money = Money(minor=body.amount, currency=state.currency)
            event = RefundRequested(refund_id=refund_id, amount=money, reason=body.reason, **common)
            view |= {"id": refund_id, "object": "refund", "amount": body.amount}
    if "amount" in view:
        view["currency"] = state.currency
    return event, view


def _capture_amount(state: PaymentState, capture_id: str) -> int:
    """What an amount-less capture takes: everything still held, or, when this very capture was
    already applied (a retry), what it took then."""
    prior = state.applied_for(f"capture:{capture_id}")
    if prior is not None:
        return next(e.amount.minor for e in prior.events if isinstance(e, PaymentCaptured))
    return state.held_minor


def check_against_state(state: PaymentState, event: PaymentCommand) -> bool:
    """Try the command on the stored state.  Returns True when the payment already applied this
    very command (a retry after Redis forgot the key); raises a problem when it cannot apply."""
    try:
        step = apply(state, to_lifecycle_command(event), now=event.occurred_at)
    except IllegalTransition as exc:
        raise _refusal(exc.code, exc.message) from exc
    return step.replayed


def _refusal(code: str, message: str) -> Problem:
    status = ERROR_HTTP_STATUS.get(code, 409)  # type: ignore[call-overload]
    if code == "idempotency_conflict":
        return Problem(
            422,
            "idempotency_key_reused",
            "Idempotency-Key already used for a different request",
            message,
        )
    return Problem(status, code, "The payment cannot do this now", message)


def command_fingerprint(route: str, payment_id: str, body: CommandBody) -> str:
    return fingerprint_of(route, payment_id, body)
