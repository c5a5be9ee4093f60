"""A requested payment's first steps, decided in one pure function.

``decide`` takes a requested payment through the lifecycle state machine: authorize or decline
(``streams.authorization``), and for automatic capture capture it at once.  It returns the new
state, the lifecycle events to announce, and the journal entries to post.  Everything is derived
from the request (times included), so deciding a redelivered request again yields the very same
state, events and entry ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.events import (
    CaptureRequested,
    DisputeOpenRequested,
    DisputeResolveRequested,
    LifecycleEvent,
    PaymentCommand,
    PaymentRequested,
    RefundRequested,
    VoidRequested,
)
from streams.authorization import decline_code_for
from streams.ledger import FeeTerms, JournalEntry, entry_for
from streams.lifecycle import (
    Authorize,
    Capture,
    Command,
    Decline,
    Fail,
    LoseDispute,
    OpenDispute,
    PaymentState,
    Refund,
    RequireAction,
    Void,
    WinDispute,
    apply,
)

Verdict = Authorize | Decline | RequireAction | Fail
"""How a new payment's authorization ended: the lifecycle command that records it.  A
connector's answer maps onto one (``streams.connectors.base.lifecycle_decision``)."""


@dataclass(frozen=True, slots=True)
class Undecided:
    """No verdict yet: the processor's answer is pending (a bank transfer the customer has not
    sent) or unknown (no usable answer; the processor may hold the payment).  The payment is
    recorded ``created`` with no events and no postings; the processor poller
    (``streams.authorizer``) settles it later.  Never a reason to decide by the rules: that
    could authorize a payment the processor declines, or charge it twice."""

    reason: str


Outcome = Verdict | Undecided


@dataclass(frozen=True)
class Decided:
    request: PaymentRequested
    state: PaymentState
    events: tuple[LifecycleEvent, ...]
    entries: tuple[JournalEntry, ...]

    @property
    def payment_id(self) -> str:
        return self.request.payment_id


def capture_id_for(payment_id: str) -> str:
    """The id of a payment's automatic capture (``cap_`` + the payment id's 26 characters)."""
    return "cap_" + payment_id.removeprefix("pay_")


def rules_verdict(request: PaymentRequested) -> Verdict:
    """The verdict of RizzPay's own rules (method limits, test instruments), used when no
    processor is asked."""
    code = decline_code_for(request)
    return Authorize() if code is None else Decline(code)


def decide(
    request: PaymentRequested,
    fees: FeeTerms | None = None,
    verdict: Outcome | None = None,
    *,
    hold: bool = False,
) -> Decided:
    """Record ``request``'s authorization ``verdict`` (default: :func:`rules_verdict`), and
    capture it when it authorized, its capture mode is automatic and it is not held.

    ``fees`` prices the capture (see :func:`streams.ledger.entry_for`).  ``hold`` keeps an
    authorized payment uncaptured, say while a fraud analyst reviews it.  An
    :class:`Undecided` verdict records the payment ``created``, with no events.
    """
    now = request.occurred_at
    state = PaymentState.from_request(request)
    events: list[LifecycleEvent] = []
    if isinstance(verdict, Undecided):
        return Decided(request, state, (), ())
    if verdict is None:
        verdict = rules_verdict(request)
    step = apply(state, verdict, now=now)
    state = step.state
    events.extend(step.events)
    if isinstance(verdict, Authorize) and request.capture == "automatic" and not hold:
        amount = request.amount
        capture = Capture(capture_id_for(request.payment_id), amount.minor, amount.currency)
        step = apply(state, capture, now=now)
        state = step.state
        events.extend(step.events)
    entries = tuple(e for e in (entry_for(ev, fees) for ev in events) if e is not None)
    return Decided(request, state, tuple(events), entries)


# Keys of the lifecycle commands that decide a new payment (``decide`` and the processor
# poller apply only these before the merchant's own commands).
_DECISION_KINDS = ("authorize", "decline", "fail", "require_action:", "complete_action:", "expire")


def stored_decision(request: PaymentRequested, state: PaymentState) -> Decided:
    """The :class:`Decided` of a payment already recorded as ``state``: its decision's events
    as they were emitted (redelivered requests re-announce exactly those, never a new verdict),
    no entries (they were posted when it was recorded).

    A redelivered payment must not be authorized again: a processor may have settled it since
    (a UPI collect approved, a status poll), and a fresh verdict could disagree with the book
    of record.  Events of the automatic capture count as part of the decision."""
    auto_capture = f"capture:{capture_id_for(request.payment_id)}"
    events = tuple(
        e
        for a in state.applied
        if a.key.startswith(_DECISION_KINDS) or a.key == auto_capture
        for e in a.events
    )
    return Decided(request, state, events, ())


@dataclass(frozen=True)
class CommandPlan:
    """A merchant's request about an existing payment, as the lifecycle command it becomes."""

    payment_id: str
    command: Command


def to_lifecycle_command(event: PaymentCommand) -> Command:
    """The state-machine command a merchant's request asks for."""
    match event:
        case CaptureRequested():
            return Capture(event.capture_id, event.amount.minor, event.amount.currency, event.final)
        case VoidRequested():
            return Void()
        case RefundRequested():
            return Refund(event.refund_id, event.amount.minor, event.amount.currency)
        case DisputeOpenRequested():
            return OpenDispute(
                event.dispute_id, event.amount.minor, event.amount.currency, event.evidence_due_at
            )
        case DisputeResolveRequested(outcome="won"):
            return WinDispute(event.dispute_id)
        case DisputeResolveRequested():
            return LoseDispute(event.dispute_id)


def consume(event: PaymentRequested | PaymentCommand) -> Decided | CommandPlan:
    """What the payments agent does with each message of ``payments.requested``: decide a new
    payment, or plan a command on an existing one (applied to its stored state by
    :func:`apply_command`)."""
    if isinstance(event, PaymentRequested):
        return decide(event)
    return CommandPlan(event.payment_id, to_lifecycle_command(event))


@dataclass(frozen=True)
class Applied:
    """A command applied to a stored payment: its new state, the events and entries."""

    command_event: PaymentCommand
    state: PaymentState
    events: tuple[LifecycleEvent, ...]
    entries: tuple[JournalEntry, ...]
    replayed: bool


def apply_command(
    state: PaymentState, event: PaymentCommand, fees: FeeTerms | None = None
) -> Applied:
    """Apply a merchant's command to the payment's state, at the time the API accepted it.

    Raises :class:`streams.lifecycle.IllegalTransition` when the payment cannot accept it.
    Applying the same command again returns the first outcome with ``replayed=True``.
    """
    step = apply(state, to_lifecycle_command(event), now=event.occurred_at)
    entries = tuple(e for e in (entry_for(ev, fees) for ev in step.events) if e is not None)
    return Applied(event, step.state, step.events, entries, step.replayed)
