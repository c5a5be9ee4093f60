"""Versioned, frozen event models: the contract of every topic.

Every event carries ``event_type`` and ``schema_version`` (together they select the model),
a unique ``event_id``, the ``payment_id`` it belongs to (the Kafka key) and the UTC time it
occurred.  A change that is not backwards compatible gets a new ``schema_version`` and a new
model class; the old one stays until no producer writes it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from models.methods import MethodType, PaymentMethod
from models.money import Money

_FROZEN = ConfigDict(frozen=True, extra="forbid")

DeclineCode = Literal[
    "do_not_honor",
    "insufficient_funds",
    "expired_card",
    "invalid_vpa",
    "amount_over_method_limit",
    "merchant_not_active",
    "risk_blocked",
    # Processor declines (streams/connectors): the customer's bank or UPI app said no.
    "upi_timeout",  # the UPI collect request was not approved before it expired
    "bank_rejected",  # the customer's bank rejected a netbanking payment or a transfer
    "amount_below_method_minimum",  # e.g. an RTGS transfer below ₹2 lakh
]


class _Event(BaseModel):
    model_config = _FROZEN
    event_id: str = Field(pattern=r"^evt_[a-z0-9]{20,40}$")
    payment_id: str = Field(pattern=r"^pay_[a-z0-9]{26}$")
    merchant_id: str = Field(min_length=1, max_length=64)
    occurred_at: AwareDatetime


class PaymentRequested(_Event):
    """A merchant asked for a payment; the API published it after validating the request."""

    event_type: Literal["payment.requested"] = "payment.requested"
    schema_version: Literal[1] = 1
    # sha256 (hex) of the canonical request body: a reused payment_id with another fingerprint is
    # an Idempotency-Key reused for a different request.
    request_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    amount: Money
    method: PaymentMethod
    customer_id: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=255)
    capture: Literal["automatic", "manual"] = "automatic"


class CaptureRequested(_Event):
    """The merchant asked to capture ``amount`` of an authorized payment (the API fills in
    what is still held when the request names no amount).  ``capture_id`` is derived from the
    merchant's Idempotency-Key."""

    event_type: Literal["payment.capture_requested"] = "payment.capture_requested"
    schema_version: Literal[1] = 1
    request_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    capture_id: str = Field(pattern=r"^cap_[a-z0-9]{10,40}$")
    amount: Money
    final: bool = True


class VoidRequested(_Event):
    """The merchant asked to cancel an authorization before any capture."""

    event_type: Literal["payment.void_requested"] = "payment.void_requested"
    schema_version: Literal[1] = 1
    request_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")


class RefundRequested(_Event):
    """The merchant asked to refund ``amount`` of a captured payment."""

    event_type: Literal["payment.refund_requested"] = "payment.refund_requested"
    schema_version: Literal[1] = 1
    request_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    refund_id: str = Field(pattern=r"^rfd_[a-z0-9]{10,40}$")
    amount: Money
    reason: str | None = Field(default=None, max_length=255)


# What a merchant can ask of an existing payment, carried on the same topic (and key) as the
# payment's creation, so the worker sees them in order.
PaymentCommand = CaptureRequested | VoidRequested | RefundRequested


class PaymentAuthorized(_Event):
    event_type: Literal["payment.authorized"] = "payment.authorized"
    schema_version: Literal[1] = 1
    amount: Money
    method_type: MethodType


class PaymentDeclined(_Event):
    event_type: Literal["payment.declined"] = "payment.declined"
    schema_version: Literal[1] = 1
    amount: Money
    method_type: MethodType
    decline_code: DeclineCode


class PaymentCaptured(_Event):
    event_type: Literal["payment.captured"] = "payment.captured"
    schema_version: Literal[1] = 1
    amount: Money
    final: bool = True


class PaymentVoided(_Event):
    event_type: Literal["payment.voided"] = "payment.voided"
    schema_version: Literal[1] = 1
    amount: Money


class PaymentRefunded(_Event):
    event_type: Literal["payment.refunded"] = "payment.refunded"
    schema_version: Literal[1] = 1
    refund_id: str = Field(pattern=r"^rfd_[a-z0-9]{10,40}$")
    amount: Money


class PaymentFailed(_Event):
    event_type: Literal["payment.failed"] = "payment.failed"
    schema_version: Literal[1] = 1
    reason: str = Field(max_length=255)


class PaymentExpired(_Event):
    event_type: Literal["payment.expired"] = "payment.expired"
    schema_version: Literal[1] = 1


ActionType = Literal["upi_collect", "three_d_secure", "netbanking_redirect"]

# Why an uncaptured remainder of an authorization was released (see PaymentAuthorizationReleased).
ReleaseReason = Literal["final_capture", "authorization_expired", "dispute_opened"]


class PaymentActionRequired(_Event):
    """The customer must act before ``expires_at``: approve a UPI collect request, pass 3-D
    Secure, or finish a netbanking redirect.  Moves no money."""

    event_type: Literal["payment.action_required"] = "payment.action_required"
    schema_version: Literal[1] = 1
    action_id: str = Field(pattern=r"^act_[a-z0-9]{10,40}$")
    action_type: ActionType
    expires_at: AwareDatetime


class PaymentActionCompleted(_Event):
    """The customer completed the pending action; the processor's decision follows.  Moves no
    money."""

    event_type: Literal["payment.action_completed"] = "payment.action_completed"
    schema_version: Literal[1] = 1
    action_id: str = Field(pattern=r"^act_[a-z0-9]{10,40}$")


class PaymentAuthorizationReleased(_Event):
    """``amount`` of the authorization hold is released without being captured: the remainder
    after a final partial capture, an authorization that expired, or the remainder when a
    dispute closes an open capture.  A void releases the whole hold through
    ``payment.voided`` instead, never through this event."""

    event_type: Literal["payment.authorization_released"] = "payment.authorization_released"
    schema_version: Literal[1] = 1
    amount: Money
    reason: ReleaseReason


class PaymentDisputeOpened(_Event):
    """The cardholder disputes ``amount`` of a captured payment; the merchant may submit
    evidence until ``evidence_due_at``."""

    event_type: Literal["payment.dispute_opened"] = "payment.dispute_opened"
    schema_version: Literal[1] = 1
    dispute_id: str = Field(pattern=r"^dsp_[a-z0-9]{10,40}$")
    amount: Money
    evidence_due_at: AwareDatetime


class PaymentDisputeWon(_Event):
    """The merchant won the dispute: the disputed ``amount`` stays with the merchant."""

    event_type: Literal["payment.dispute_won"] = "payment.dispute_won"
    schema_version: Literal[1] = 1
    dispute_id: str = Field(pattern=r"^dsp_[a-z0-9]{10,40}$")
    amount: Money


class PaymentDisputeLost(_Event):
    """The merchant lost the dispute: a chargeback, the disputed ``amount`` leaves the
    merchant and returns to the cardholder."""

    event_type: Literal["payment.dispute_lost"] = "payment.dispute_lost"
    schema_version: Literal[1] = 1
    dispute_id: str = Field(pattern=r"^dsp_[a-z0-9]{10,40}$")
    amount: Money


LifecycleEvent = Annotated[
    PaymentAuthorized
    | PaymentDeclined
    | PaymentCaptured
    | PaymentVoided
    | PaymentRefunded
    | PaymentFailed
    | PaymentExpired
    | PaymentActionRequired
    | PaymentActionCompleted
    | PaymentAuthorizationReleased
    | PaymentDisputeOpened
    | PaymentDisputeWon
    | PaymentDisputeLost,
    Field(discriminator="event_type"),
]


class DeadLetter(BaseModel):
    """A message a consumer could not process, with why, so nothing is dropped silently."""

    model_config = _FROZEN
    event_type: Literal["deadletter"] = "deadletter"
    schema_version: Literal[1] = 1
    source_topic: str
    partition: int
    offset: int
    key: str | None
    value: str  # the original bytes, decoded as UTF-8 with replacement
    error_code: str
    reason: str
    consumer: str
    failed_at: AwareDatetime


class DecodeError(ValueError):
    """Bytes on a topic that are not a valid event of that topic's schemas."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def encode(event: BaseModel) -> bytes:
    """Serialize an event to the JSON bytes that go on Kafka."""
    return orjson.dumps(event.model_dump(mode="json"))
