"""Which processor operation each merchant command stands for (``operation_of``): the amount and
finality the books applied, our id, and none for replays or commands no processor takes part in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from models.events import CaptureRequested, PaymentRequested, RefundRequested, VoidRequested
from streams.decisions import apply_command, decide
from streams.lifecycle import Authorize, PaymentState
from warehouse.processor_operations import Operation, operation_of

EXAMPLES = Path(__file__).resolve().parents[2] / "models" / "examples" / "payments.requested"


def example(name: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads((EXAMPLES / f"payment.{name}.v1.json").read_bytes())
    return {**body, **changes}


def held(amount_minor: int = 10_000_00) -> PaymentState:
    request = PaymentRequested.model_validate(
        example("requested", amount={"minor": amount_minor, "currency": "INR"}, capture="manual")
    )
    return decide(request, None, Authorize()).state


def capture(capture_id: str, amount_minor: int, *, final: bool) -> CaptureRequested:
    return CaptureRequested.model_validate(
        example(
            "capture_requested",
            capture_id=capture_id,
            amount={"minor": amount_minor, "currency": "INR"},
            final=final,
        )
    )


def test_captures_in_parts_then_refund() -> None:
    state = held()
    first = apply_command(state, capture("cap_first000001", 4_000_00, final=False))
    assert operation_of(first) == Operation(
        state.payment_id, "cap_first000001", "capture", 4_000_00, "INR", final=False
    )
    # Capturing exactly what is left closes the hold even when the merchant did not say final.
    rest = apply_command(first.state, capture("cap_rest00000001", 6_000_00, final=False))
    assert operation_of(rest) == Operation(
        state.payment_id, "cap_rest00000001", "capture", 6_000_00, "INR", final=True
    )
    refund = RefundRequested.model_validate(
        example(
            "refund_requested",
            refund_id="rfd_part00000001",
            amount={"minor": 2_500_00, "currency": "INR"},
        )
    )
    refunded = apply_command(rest.state, refund)
    assert operation_of(refunded) == Operation(
        state.payment_id, "rfd_part00000001", "refund", 2_500_00, "INR"
    )
    # A redelivered command changes nothing, so nothing is sent again.
    assert operation_of(apply_command(refunded.state, refund)) is None


def test_void_is_once_per_payment() -> None:
    state = held()
    voided = apply_command(state, VoidRequested.model_validate(example("void_requested")))
    assert operation_of(voided) == Operation(state.payment_id, "void", "void", 0, "INR")
