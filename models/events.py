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


LifecycleEvent = Annotated[
    PaymentAuthorized
    | PaymentDeclined
    | PaymentCaptured
    | PaymentVoided
    | PaymentRefunded
    | PaymentFailed
    | PaymentExpired,
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
