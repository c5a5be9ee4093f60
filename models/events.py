"""Versioned, frozen event models: the contract of every topic.

Every event carries ``event_type`` and ``schema_version`` (together they select the model),
a unique ``event_id``, the ``payment_id`` it belongs to (the Kafka key) and the UTC time it
occurred.  A change that is not backwards compatible gets a new ``schema_version`` and a new
model class; the old one stays until no producer writes it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

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
    # The payer's device and IP as keyed tokens (api/pii.py), never the raw values; None when
    # the request named none (and on every message written before they existed).
    device_id: str | None = Field(default=None, pattern=r"^dev_[0-9a-f]{32}$")
    ip: str | None = Field(default=None, pattern=r"^ip_[0-9a-f]{32}$")


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


DisputeOutcome = Literal["won", "lost"]


class DisputeOpenRequested(_Event):
    """The card network (through the processor, or an operator keying its notice in) reports a
    dispute of ``amount`` on a captured payment.  ``dispute_id`` is derived from the processor's
    own dispute reference, so the same notice received twice names the same dispute.
    ``evidence_due_at`` defaults to seven days after ``occurred_at``."""

    event_type: Literal["payment.dispute_open_requested"] = "payment.dispute_open_requested"
    schema_version: Literal[1] = 1
    request_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    dispute_id: str = Field(pattern=r"^dsp_[a-z0-9]{10,40}$")
    processor_dispute_id: str = Field(min_length=1, max_length=64)
    amount: Money
    evidence_due_at: AwareDatetime | None = None
    # The network's reason, as the processor names it (e.g. "fraudulent", "not_received").
    reason: str | None = Field(default=None, max_length=64)


class DisputeResolveRequested(_Event):
    """The network decided the open dispute ``dispute_id``: ``won`` (the money stays with the
    merchant) or ``lost`` (a chargeback)."""

    event_type: Literal["payment.dispute_resolve_requested"] = "payment.dispute_resolve_requested"
    schema_version: Literal[1] = 1
    request_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    dispute_id: str = Field(pattern=r"^dsp_[a-z0-9]{10,40}$")
    outcome: DisputeOutcome


# What can be asked of an existing payment, carried on the same topic (and key) as the
# payment's creation, so the worker sees them in order: the merchant's capture, void and refund,
# and the network's dispute notices.
PaymentCommand = (
    CaptureRequested
    | VoidRequested
    | RefundRequested
    | DisputeOpenRequested
    | DisputeResolveRequested
)


RiskDecision = Literal["allow", "review", "block"]


class ShadowScore(BaseModel):
    """The challenger model's score of a payment, scored in shadow: logged, never acted on.
    ``score`` is None when the challenger failed, and ``error`` says why."""

    model_config = _FROZEN
    model_version: str = Field(min_length=1, max_length=32)
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    error: str | None = Field(default=None, max_length=1000)


class PaymentScored(_Event):
    """Fraud scoring's verdict on a requested payment, published to ``payments.scored`` for
    authorization: the request itself plus the champion's score, the rules that hit and the
    decision (allow / review / block).  ``event_id`` is derived from the payment, so scoring the
    same request again (a redelivery) yields the same event.

    ``score`` and ``model_version`` are None when no champion model is deployed (rules only).
    ``features`` are the values the rules and models read, in their units (docs/fraud.md).
    ``shadow`` is the challenger's score: for analysts, never for the decision.
    """

    event_type: Literal["payment.scored"] = "payment.scored"
    schema_version: Literal[1] = 1
    request: PaymentRequested
    decision: RiskDecision
    # The deciding rule, "score>=block", "score>=review", or "" when nothing hit.
    reason: str = Field(max_length=255)
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    model_version: str | None = Field(default=None, max_length=32)
    rule_hits: tuple[str, ...] = ()
    ruleset_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    features: dict[str, int | float]
    shadow: ShadowScore | None = None
    scored_at: AwareDatetime


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


class LedgerPosted(_Event):
    """One posting of a lifecycle event's journal entry, re-keyed by its ledger account for the
    real-time balances (``streams.balances``).  ``event_id`` is the lifecycle event's (the
    entry's) id; ``source_partition``/``source_offset`` name the ``payments.lifecycle`` message it
    came from and ``posting_index`` its place in the entry, so a re-sent posting is recognised.
    ``amount_minor`` is signed (debit positive), as in the ledger."""

    event_type: Literal["ledger.posted"] = "ledger.posted"
    schema_version: Literal[1] = 1
    entry_kind: str = Field(min_length=1, max_length=64)
    posting_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=200)
    amount_minor: StrictInt
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    source_partition: StrictInt = Field(ge=0)
    source_offset: StrictInt = Field(ge=0)
    posting_index: StrictInt = Field(ge=0)


class _SettlementEvent(BaseModel):
    """A settlement batch as its webhook announces it (amounts in paise).  ``event_id`` is
    derived from the batch and the event type, so a re-sent event is deduplicated by receivers."""

    model_config = _FROZEN
    event_id: str = Field(pattern=r"^evt_st[li]_[A-Za-z0-9_.]{1,200}$")
    batch_id: str = Field(pattern=r"^st[li]_[A-Za-z0-9_.]{1,200}$")
    merchant_id: str = Field(min_length=1, max_length=64)
    occurred_at: AwareDatetime
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    settlement_date: date
    cutoff: AwareDatetime
    instant: bool
    status: str = Field(max_length=32)
    captured_minor: StrictInt
    refunds_minor: StrictInt
    fees_minor: StrictInt
    gst_minor: StrictInt
    net_minor: StrictInt


class SettlementCreated(_SettlementEvent):
    """A settlement batch was produced at its cutoff (``status`` says whether it pays out, was
    carried forward or is held)."""

    event_type: Literal["settlement.created"] = "settlement.created"
    schema_version: Literal[1] = 1


class SettlementPaid(_SettlementEvent):
    """The bank paid the batch's payout of ``amount_minor`` under ``utr``."""

    event_type: Literal["settlement.paid"] = "settlement.paid"
    schema_version: Literal[1] = 1
    amount_minor: StrictInt = Field(gt=0)
    utr: str = Field(pattern=r"^[A-Z]{4}[NR][A-Z0-9][0-9]{16}$")


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
