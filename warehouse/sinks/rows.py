"""Pure row builders: one decoded event in, the rows of each warehouse table out.

One function per target table:

* :func:`payments_row` — ClickHouse ``payments``, from ``payment.requested``.
* :func:`payment_events_row` — ClickHouse ``payment_events``, from every other event about a
  payment: the lifecycle events, and the merchant's commands (``payment.capture_requested``,
  ``payment.void_requested``, ``payment.refund_requested``) that share ``payments.requested``.
* :func:`fraud_score_row` — ClickHouse ``fraud_scores``, from ``payment.scored``.
* :func:`payment_event_log_row` — PostgreSQL ``payment_event_log``, from every event.

:func:`rows_for` routes any event of ``payments.requested``, ``payments.lifecycle`` or
``payments.scored`` to the builders that apply (the merchants' commands that fraud scoring
passes on to ``payments.scored`` keep their event ids, so reading them twice adds nothing).
Amounts are ``int`` minor units of the currency (paise for INR), as on the event; nothing here
is ever a float but a fraud score, which is a probability.  Timestamps stay timezone-aware (UTC
on the wire).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeGuard

from pydantic import BaseModel

from models.events import (
    CaptureRequested,
    DisputeOpenRequested,
    DisputeResolveRequested,
    LifecycleEvent,
    PaymentActionCompleted,
    PaymentActionRequired,
    PaymentAuthorizationReleased,
    PaymentAuthorized,
    PaymentCommand,
    PaymentDeclined,
    PaymentDisputeLost,
    PaymentDisputeOpened,
    PaymentDisputeWon,
    PaymentFailed,
    PaymentRefunded,
    PaymentRequested,
    PaymentScored,
    RefundRequested,
    encode,
)
from models.methods import (
    BankTransferMethod,
    CardMethod,
    NetbankingMethod,
    UpiMethod,
    WalletMethod,
)
from models.money import Money
from models.topics import PAYMENTS_LIFECYCLE, PAYMENTS_REQUESTED

LIFECYCLE_MODELS: tuple[type[BaseModel], ...] = PAYMENTS_LIFECYCLE.schemas
# A merchant's request about an existing payment, on ``payments.requested``.
COMMAND_MODELS: tuple[type[BaseModel], ...] = tuple(
    m for m in PAYMENTS_REQUESTED.schemas if m is not PaymentRequested
)
# Everything ``payment_events`` records.
FactModel = LifecycleEvent | PaymentCommand
SinkEvent = PaymentRequested | FactModel | PaymentScored


class _Row:
    """A row of one table: its dataclass fields are the table's columns, in order."""

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.columns())


@dataclass(frozen=True)
class PaymentRow(_Row):
    """ClickHouse ``payments``: one payment as requested.  Strings the event lacks are ''."""

    event_id: str
    payment_id: str
    merchant_id: str
    customer_id: str
    amount_minor: int  # minor units of ``currency``
    currency: str
    method: str
    card_network: str
    card_bin: str
    bank_code: str
    upi_flow: str
    instrument_ref: str  # card:<token>, vpa:<vpa>, wallet:<id>, or '' (links customers for AML)
    device_id: str  # the payer's device token (dev_…, api/pii.py) or '' (links customers for AML)
    capture: str
    request_fingerprint: str
    requested_at: datetime


@dataclass(frozen=True)
class PaymentEventRow(_Row):
    """ClickHouse ``payment_events``: one lifecycle event or payment command.  An event without
    an amount has ``amount_minor`` 0 and ``currency`` ''; strings the event lacks are ''."""

    event_id: str
    event_type: str
    payment_id: str
    merchant_id: str
    amount_minor: int  # minor units of ``currency``
    currency: str
    method: str
    decline_code: str
    ref_id: str
    reason: str
    occurred_at: datetime


@dataclass(frozen=True)
class FraudScoreRow(_Row):
    """ClickHouse ``fraud_scores``: one scoring verdict.  ``score`` is a probability (not
    money); ``features_json`` is the features as JSON text, so paise sums stay integers."""

    event_id: str
    payment_id: str
    merchant_id: str
    customer_id: str
    amount_minor: int  # minor units of ``currency``, as requested
    currency: str
    method: str
    decision: str
    reason: str
    score: float | None
    model_version: str
    rule_hits: list[str]
    ruleset_sha256: str
    shadow_model_version: str
    shadow_score: float | None
    features_json: str
    scored_at: datetime


@dataclass(frozen=True)
class EventLogRow(_Row):
    """PostgreSQL ``payment_event_log``: any event, with its full JSON ``payload``.  Columns
    the event lacks are None (SQL NULL); ``amount_minor`` and ``currency`` are both None for an
    event that moves no money."""

    event_id: str
    occurred_at: datetime
    event_type: str
    schema_version: int
    payment_id: str
    merchant_id: str
    amount_minor: int | None  # minor units of ``currency``
    currency: str | None
    method: str | None
    decline_code: str | None
    payload: str


@dataclass(frozen=True)
class SinkRows:
    """Every row one event becomes."""

    event_id: str
    payment_id: str
    payments: PaymentRow | None
    payment_events: PaymentEventRow | None
    payment_event_log: EventLogRow
    fraud_scores: FraudScoreRow | None = None


def is_fact(event: object) -> TypeGuard[FactModel]:
    """Whether ``event`` becomes a ``payment_events`` row."""
    return isinstance(event, LIFECYCLE_MODELS + COMMAND_MODELS)


def payments_row(event: PaymentRequested) -> PaymentRow:
    """The ClickHouse ``payments`` row of a ``payment.requested`` event."""
    method = event.method
    network = bin_ = bank = flow = instrument = ""
    if isinstance(method, CardMethod):
        network, bin_ = method.network or "", method.bin
        instrument = f"card:{method.token}"  # a token, never a PAN
    elif isinstance(method, UpiMethod):
        flow = method.flow
        instrument = f"vpa:{method.vpa.lower()}"  # VPAs are case-insensitive
    elif isinstance(method, WalletMethod):
        instrument = f"wallet:{method.wallet_id}"
    elif isinstance(method, NetbankingMethod):
        bank = method.bank_code
    elif isinstance(method, BankTransferMethod):
        bank = method.ifsc[:4]  # an IFSC's first four letters name the bank
    return PaymentRow(
        event_id=event.event_id,
        payment_id=event.payment_id,
        merchant_id=event.merchant_id,
        customer_id=event.customer_id or "",
        amount_minor=event.amount.minor,
        currency=event.amount.currency,
        method=method.type,
        card_network=network,
        card_bin=bin_,
        bank_code=bank,
        upi_flow=flow,
        instrument_ref=instrument,
        device_id=event.device_id or "",
        capture=event.capture,
        request_fingerprint=event.request_fingerprint,
        requested_at=event.occurred_at,
    )


def fraud_score_row(event: PaymentScored) -> FraudScoreRow:
    """The ClickHouse ``fraud_scores`` row of a ``payment.scored`` event."""
    request = event.request
    shadow = event.shadow
    return FraudScoreRow(
        event_id=event.event_id,
        payment_id=event.payment_id,
        merchant_id=event.merchant_id,
        customer_id=request.customer_id or "",
        amount_minor=request.amount.minor,
        currency=request.amount.currency,
        method=request.method.type,
        decision=event.decision,
        reason=event.reason,
        score=event.score,
        model_version=event.model_version or "",
        rule_hits=list(event.rule_hits),
        ruleset_sha256=event.ruleset_sha256,
        shadow_model_version=shadow.model_version if shadow else "",
        shadow_score=shadow.score if shadow else None,
        features_json=json.dumps(event.features, sort_keys=True),
        scored_at=event.scored_at,
    )


def _amount(event: SinkEvent) -> Money | None:
    amount = getattr(event, "amount", None)
    return amount if isinstance(amount, Money) else None


def _method(event: SinkEvent) -> str | None:
    if isinstance(event, PaymentRequested):
        return event.method.type
    if isinstance(event, PaymentAuthorized | PaymentDeclined):
        return event.method_type
    return None


def _ref_id(event: FactModel) -> str:
    if isinstance(event, PaymentRefunded | RefundRequested):
        return event.refund_id
    if isinstance(event, CaptureRequested):
        return event.capture_id
    if isinstance(
        event,
        PaymentDisputeOpened
        | PaymentDisputeWon
        | PaymentDisputeLost
        | DisputeOpenRequested
        | DisputeResolveRequested,
    ):
        return event.dispute_id
    if isinstance(event, PaymentActionRequired | PaymentActionCompleted):
        return event.action_id
    return ""


def _reason(event: FactModel) -> str:
    if isinstance(event, PaymentFailed | PaymentAuthorizationReleased):
        return event.reason
    if isinstance(event, RefundRequested):
        return event.reason or ""
    return ""


def payment_events_row(event: FactModel) -> PaymentEventRow:
    """The ClickHouse ``payment_events`` row of a lifecycle event or payment command."""
    amount = _amount(event)
    return PaymentEventRow(
        event_id=event.event_id,
        event_type=event.event_type,
        payment_id=event.payment_id,
        merchant_id=event.merchant_id,
        amount_minor=amount.minor if amount else 0,
        currency=amount.currency if amount else "",
        method=_method(event) or "",
        decline_code=event.decline_code if isinstance(event, PaymentDeclined) else "",
        ref_id=_ref_id(event),
        reason=_reason(event),
        occurred_at=event.occurred_at,
    )


def payment_event_log_row(event: SinkEvent) -> EventLogRow:
    """The PostgreSQL ``payment_event_log`` row of any payment event."""
    amount = _amount(event)
    return EventLogRow(
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        event_type=event.event_type,
        schema_version=event.schema_version,
        payment_id=event.payment_id,
        merchant_id=event.merchant_id,
        amount_minor=amount.minor if amount else None,
        currency=amount.currency if amount else None,
        method=_method(event),
        decline_code=event.decline_code if isinstance(event, PaymentDeclined) else None,
        payload=encode(event).decode(),
    )


def rows_for(event: BaseModel) -> SinkRows:
    """Every warehouse row of one decoded event of ``payments.requested``,
    ``payments.lifecycle`` or ``payments.scored``.  Raises ``TypeError`` for any other model."""
    if isinstance(event, PaymentRequested):
        return SinkRows(
            event_id=event.event_id,
            payment_id=event.payment_id,
            payments=payments_row(event),
            payment_events=None,
            payment_event_log=payment_event_log_row(event),
        )
    if isinstance(event, PaymentScored):
        return SinkRows(
            event_id=event.event_id,
            payment_id=event.payment_id,
            payments=None,
            payment_events=None,
            payment_event_log=payment_event_log_row(event),
            fraud_scores=fraud_score_row(event),
        )
    if is_fact(event):
        return SinkRows(
            event_id=event.event_id,
            payment_id=event.payment_id,
            payments=None,
            payment_events=payment_events_row(event),
            payment_event_log=payment_event_log_row(event),
        )
    raise TypeError(f"{type(event).__name__} is not a payment event the warehouse records")
