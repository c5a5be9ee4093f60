"""The payment lifecycle: one pure, typed state machine (no I/O, no clock of its own).

``apply(state, command, now=...)`` returns the next :class:`PaymentState` and the lifecycle
events the step emits, or raises :class:`IllegalTransition` with a stable ``code``.  API routes
(capture, void, refund, disputes) and stream agents are thin shells around it; the ledger posts
the events it emits.

Statuses and the commands each accepts are data: :data:`TRANSITIONS` below is the whole
machine.  A command missing from a status's row is refused with :data:`REFUSALS` (or a more
precise :data:`REFUSAL_OVERRIDES` code); a command in the row is then checked against amounts
and deadlines, and the status it leads to must be one the row lists.

Money: every amount is an ``int`` in minor units (paise for INR) of the payment's currency; a
command's currency must equal the payment's.  Counters on :class:`PaymentState`:

* ``authorized_minor``: the hold the processor granted (0 before authorization, then the
  requested amount).
* ``captured_minor``: sum of captures.  ``released_minor``: the part of the hold given back
  uncaptured (void, expiry, the remainder of a final partial capture).  The hold still open is
  ``authorized - captured - released``; it is 0 once the capture is closed.
* ``refunded_minor``: sum of refunds.  ``disputed_minor``: the amount under the open dispute
  (0 when none is open).  ``chargeback_minor``: sum of lost disputes.

Invariants (:func:`check_invariants`), true after every step:

* ``0 <= captured + released <= authorized`` and ``authorized`` is 0 or the requested amount;
* ``refunded + chargeback + disputed <= captured``, so refunds never exceed captures and a
  chargeback never exceeds what was captured and not refunded;
* each counter equals the sum of the money events the payment emitted;
* the status agrees with the counters, and terminal statuses (no row in :data:`TRANSITIONS`)
  never change.

Rules decided here:

* Partial capture: ``Capture(final=False)`` leaves the rest of the hold capturable; a final
  capture, or captures reaching the authorized amount, close the capture and release the
  remainder (``payment.authorization_released``, reason ``final_capture``).  An authorization
  that expires after a partial capture releases the remainder (reason ``authorization_expired``)
  and the payment stays captured.
* Refunds are allowed once something is captured, also while more may still be captured, and
  never beyond ``captured - refunded - chargeback``.
* Refunds are refused while a dispute is open (``refund_during_dispute``): the disputed funds
  are already held for the network, and a refund on top could return the same money twice.
* Disputes come from the network after a capture: one open at a time, each at most
  ``captured - refunded - chargeback``.  Opening one on a payment whose capture is still open
  closes the capture first (reason ``dispute_opened``): a contested payment is not charged
  further.  A later dispute may follow a resolved one (pre-arbitration arrives as a new id).
* Void only before any capture (``void_after_capture``); it releases the whole hold.

Idempotency: every command has a ``key`` (its natural id, e.g. ``refund:rfd_…``, or its kind
for commands that happen once, e.g. ``void``).  Applying a command whose key was already applied
returns the state unchanged and the very same events; the same key with other parameters is
``idempotency_conflict``.  Event ids come from :func:`models.ids.derived_event_id`, so a replay
from scratch produces the same ids too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Literal, TypedDict, get_args

import orjson
from pydantic import TypeAdapter

from models.events import (
    ActionType,
    DeclineCode,
    LifecycleEvent,
    PaymentActionCompleted,
    PaymentActionRequired,
    PaymentAuthorizationReleased,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
    PaymentDisputeLost,
    PaymentDisputeOpened,
    PaymentDisputeWon,
    PaymentExpired,
    PaymentFailed,
    PaymentRefunded,
    PaymentRequested,
    PaymentVoided,
    ReleaseReason,
)
from models.ids import derived_event_id
from models.methods import MethodType
from models.money import CURRENCY_EXPONENTS, INT64_MAX, Money, format_minor

# --- limits ---------------------------------------------------------------------------------

# A payment's state (with the events of every applied command, for idempotent replies) is one
# record in a table; each applied command keeps roughly 0.5-1 KiB.  256 commands stay far below
# Kafka's default 1 MiB message and no real payment needs more (refunds are the only repeated
# command that grows without a natural bound).
OPERATIONS_PER_PAYMENT_MAX = 256

# Defaults used when a command names no deadline; connectors pass the provider's own.
# Card networks hold an online authorization about 7 days (Stripe uses 7).
AUTHORIZATION_VALIDITY_DEFAULT = timedelta(days=7)
AUTHORIZATION_VALIDITY_MAX = timedelta(days=31)  # extended authorizations last up to 30 days
ACTION_VALIDITY_DEFAULT: Mapping[ActionType, timedelta] = {
    "upi_collect": timedelta(minutes=10),
    "three_d_secure": timedelta(minutes=10),
    "netbanking_redirect": timedelta(minutes=15),
}
ACTION_VALIDITY_MAX = timedelta(days=1)
EVIDENCE_WINDOW_DEFAULT = timedelta(days=7)
EVIDENCE_WINDOW_MAX = timedelta(days=120)  # a generous bound on any network's window

REASON_LEN_MAX = 255  # PaymentFailed.reason

# A command's id field -> the pattern its value must match (the events' patterns).
_ID_PATTERNS: Mapping[str, re.Pattern[str]] = {
    field: re.compile(rf"^{prefix}_[a-z0-9]{{10,40}}$")
    for field, prefix in (
        ("action_id", "act"),
        ("capture_id", "cap"),
        ("refund_id", "rfd"),
        ("dispute_id", "dsp"),
    )
}


# --- statuses -------------------------------------------------------------------------------


class Status(StrEnum):
    CREATED = "created"  # requested; no decision yet
    REQUIRES_ACTION = "requires_action"  # waiting for the customer (UPI collect, 3DS, redirect)
    PROCESSING = "processing"  # customer acted; waiting for the processor's decision
    AUTHORIZED = "authorized"  # hold granted, nothing captured yet
    PARTIALLY_CAPTURED = "partially_captured"  # captured some, more may be captured
    CAPTURED = "captured"  # capture closed, nothing refunded
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"  # everything captured was refunded
    DISPUTED = "disputed"  # a dispute is open
    CHARGED_BACK = "charged_back"  # a dispute was lost (refunds of any remainder still allowed)
    VOIDED = "voided"
    DECLINED = "declined"
    FAILED = "failed"
    EXPIRED = "expired"


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authorize:
    """The processor granted the hold for the requested amount, valid until ``expires_at``
    (default: ``now`` + :data:`AUTHORIZATION_VALIDITY_DEFAULT`)."""

    kind: ClassVar[str] = "authorize"
    expires_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class RequireAction:
    """The customer must act (``action_type``) before ``expires_at`` (default per type)."""

    kind: ClassVar[str] = "require_action"
    action_id: str
    action_type: ActionType
    expires_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.action_id}"


@dataclass(frozen=True, slots=True)
class CompleteAction:
    """The customer completed the pending action ``action_id``."""

    kind: ClassVar[str] = "complete_action"
    action_id: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.action_id}"


@dataclass(frozen=True, slots=True)
class Decline:
    kind: ClassVar[str] = "decline"
    decline_code: DeclineCode

    @property
    def key(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class Fail:
    """The payment failed before authorization for a reason that is not a decline (timeouts,
    the processor's errors, a failed 3-D Secure challenge)."""

    kind: ClassVar[str] = "fail"
    reason: str

    @property
    def key(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class Capture:
    """Capture ``amount_minor`` of the hold.  ``final`` (the default, as with single-capture
    processors) closes the capture and releases any remainder."""

    kind: ClassVar[str] = "capture"
    capture_id: str
    amount_minor: int
    currency: str
    final: bool = True

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.capture_id}"


@dataclass(frozen=True, slots=True)
class Void:
    kind: ClassVar[str] = "void"

    @property
    def key(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class Refund:
    kind: ClassVar[str] = "refund"
    refund_id: str
    amount_minor: int
    currency: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.refund_id}"


@dataclass(frozen=True, slots=True)
class Expire:
    """A deadline passed: the pending action's, or the authorization's.  Refused before it."""

    kind: ClassVar[str] = "expire"

    @property
    def key(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class OpenDispute:
    """The network reports a dispute of ``amount_minor``; evidence is due by
    ``evidence_due_at`` (default: ``now`` + :data:`EVIDENCE_WINDOW_DEFAULT`)."""

    kind: ClassVar[str] = "open_dispute"
    dispute_id: str
    amount_minor: int
    currency: str
    evidence_due_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.dispute_id}"


@dataclass(frozen=True, slots=True)
class WinDispute:
    kind: ClassVar[str] = "win_dispute"
    dispute_id: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.dispute_id}"


@dataclass(frozen=True, slots=True)
class LoseDispute:
    """The merchant lost: the whole disputed amount is charged back."""

    kind: ClassVar[str] = "lose_dispute"
    dispute_id: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.dispute_id}"


Command = (
    Authorize
    | RequireAction
    | CompleteAction
    | Decline
    | Fail
    | Capture
    | Void
    | Refund
    | Expire
    | OpenDispute
    | WinDispute
    | LoseDispute
)
CommandType = type[Command]

# --- the machine, as data -------------------------------------------------------------------

S = Status

# status -> command -> statuses the command may lead to.  A status without commands is terminal.
TRANSITIONS: Mapping[Status, Mapping[CommandType, frozenset[Status]]] = {
    S.CREATED: {
        RequireAction: frozenset({S.REQUIRES_ACTION}),
        Authorize: frozenset({S.AUTHORIZED}),
        Decline: frozenset({S.DECLINED}),
        Fail: frozenset({S.FAILED}),
    },
    S.REQUIRES_ACTION: {
        CompleteAction: frozenset({S.PROCESSING}),
        Decline: frozenset({S.DECLINED}),  # e.g. the customer rejected the UPI collect
        Fail: frozenset({S.FAILED}),
        Expire: frozenset({S.EXPIRED}),  # not completed in time
    },
    S.PROCESSING: {
        RequireAction: frozenset({S.REQUIRES_ACTION}),  # a further step (an OTP after 3DS)
        Authorize: frozenset({S.AUTHORIZED}),
        Decline: frozenset({S.DECLINED}),
        Fail: frozenset({S.FAILED}),
    },
    S.AUTHORIZED: {
        Capture: frozenset({S.PARTIALLY_CAPTURED, S.CAPTURED}),
        Void: frozenset({S.VOIDED}),
        Expire: frozenset({S.EXPIRED}),  # not captured before the authorization expired
    },
    S.PARTIALLY_CAPTURED: {
        Capture: frozenset({S.PARTIALLY_CAPTURED, S.CAPTURED, S.PARTIALLY_REFUNDED}),
        Refund: frozenset({S.PARTIALLY_CAPTURED}),
        # the remainder is released; the captures stand
        Expire: frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
        OpenDispute: frozenset({S.DISPUTED}),  # closes the capture first
    },
    S.CAPTURED: {
        Refund: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
        OpenDispute: frozenset({S.DISPUTED}),
    },
    S.PARTIALLY_REFUNDED: {
        Refund: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
        OpenDispute: frozenset({S.DISPUTED}),
    },
    S.DISPUTED: {
        WinDispute: frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED, S.CHARGED_BACK}),
        LoseDispute: frozenset({S.CHARGED_BACK}),
    },
    S.CHARGED_BACK: {
        Refund: frozenset({S.CHARGED_BACK}),  # of what was not charged back
        OpenDispute: frozenset({S.DISPUTED}),
    },
    S.REFUNDED: {},
    S.VOIDED: {},
    S.DECLINED: {},
    S.FAILED: {},
    S.EXPIRED: {},
}

TERMINAL: frozenset[Status] = frozenset(s for s, row in TRANSITIONS.items() if not row)

# --- errors ---------------------------------------------------------------------------------

ErrorCode = Literal[
    # the command itself is malformed (HTTP 422)
    "invalid_amount",
    "invalid_id",
    "invalid_value",
    "invalid_deadline",
    "currency_mismatch",
    "idempotency_conflict",
    # the command does not fit the payment's state (HTTP 409)
    "payment_not_authorizable",
    "action_not_allowed",
    "action_not_pending",
    "action_expired",
    "payment_not_declinable",
    "payment_not_failable",
    "payment_not_capturable",
    "capture_exceeds_authorized",
    "authorization_expired",
    "payment_not_voidable",
    "void_after_capture",
    "payment_not_refundable",
    "refund_exceeds_captured",
    "refund_during_dispute",
    "payment_not_expirable",
    "not_yet_expired",
    "payment_not_disputable",
    "dispute_exceeds_available",
    "dispute_already_open",
    "dispute_not_open",
    "operation_limit_reached",
]

_MALFORMED: frozenset[ErrorCode] = frozenset(
    {
        "invalid_amount",
        "invalid_id",
        "invalid_value",
        "invalid_deadline",
        "currency_mismatch",
        "idempotency_conflict",
    }
)
# code -> the HTTP status the API answers with: 422 for a malformed command, 409 for one that
# does not fit the payment's current state.
ERROR_HTTP_STATUS: Mapping[ErrorCode, int] = {
    code: 422 if code in _MALFORMED else 409 for code in get_args(ErrorCode)
}

# The code for a command that the current status's row does not list...
REFUSALS: Mapping[CommandType, ErrorCode] = {
    Authorize: "payment_not_authorizable",
    RequireAction: "action_not_allowed",
    CompleteAction: "action_not_pending",
    Decline: "payment_not_declinable",
    Fail: "payment_not_failable",
    Capture: "payment_not_capturable",
    Void: "payment_not_voidable",
    Refund: "payment_not_refundable",
    Expire: "payment_not_expirable",
    OpenDispute: "payment_not_disputable",
    WinDispute: "dispute_not_open",
    LoseDispute: "dispute_not_open",
}
# ...unless a more precise one applies.
REFUSAL_OVERRIDES: Mapping[tuple[Status, CommandType], ErrorCode] = {
    (S.DISPUTED, Refund): "refund_during_dispute",
    (S.DISPUTED, OpenDispute): "dispute_already_open",
    **{
        (status, Void): "void_after_capture"
        for status in (
            S.PARTIALLY_CAPTURED,
            S.CAPTURED,
            S.PARTIALLY_REFUNDED,
            S.REFUNDED,
            S.DISPUTED,
            S.CHARGED_BACK,
        )
    },
}


class IllegalTransition(Exception):
    """A command the payment cannot accept.  ``code`` is stable (see :data:`ErrorCode`),
    ``message`` is for humans, ``http_status`` is 422 (malformed) or 409 (wrong state)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message
        self.http_status = ERROR_HTTP_STATUS[code]


class InvariantViolation(RuntimeError):
    """A state that must never exist.  A bug, not bad input: never caught to carry on."""


# --- state ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    """A command that was applied: its key, a canonical fingerprint of its parameters, and the
    events it emitted (returned again, unchanged, when the same command is applied again)."""

    key: str
    fingerprint: str
    events: tuple[LifecycleEvent, ...]


@dataclass(frozen=True, slots=True)
class PaymentState:
    """One payment's lifecycle state.  All amounts are minor units of ``currency``; see the
    module docstring for what each counter means and the invariants that bind them."""

    payment_id: str
    merchant_id: str
    currency: str
    amount_minor: int  # requested
    method_type: MethodType
    status: Status = Status.CREATED
    authorized_minor: int = 0
    captured_minor: int = 0
    released_minor: int = 0
    refunded_minor: int = 0
    disputed_minor: int = 0
    chargeback_minor: int = 0
    pending_action_id: str | None = None
    action_expires_at: datetime | None = None
    authorization_expires_at: datetime | None = None
    open_dispute_id: str | None = None
    evidence_due_at: datetime | None = None
    applied: tuple[Applied, ...] = ()

    @classmethod
    def from_request(cls, request: PaymentRequested) -> PaymentState:
        """The ``created`` state of a requested payment."""
        return cls.new(
            payment_id=request.payment_id,
            merchant_id=request.merchant_id,
            amount=request.amount,
            method_type=request.method.type,
        )

    @classmethod
    def new(
        cls, *, payment_id: str, merchant_id: str, amount: Money, method_type: MethodType
    ) -> PaymentState:
        """A ``created`` payment of ``amount``."""
        state = cls(
            payment_id=payment_id,
            merchant_id=merchant_id,
            currency=amount.currency,
            amount_minor=amount.minor,
            method_type=method_type,
        )
        check_invariants(state)
        return state

    @property
    def held_minor(self) -> int:
        """The part of the authorization that may still be captured (0 once closed)."""
        return self.authorized_minor - self.captured_minor - self.released_minor

    @property
    def capture_open(self) -> bool:
        return self.held_minor > 0

    @property
    def available_minor(self) -> int:
        """Captured money still with the merchant and not under dispute: the most a refund or
        a new dispute may take."""
        return (
            self.captured_minor - self.refunded_minor - self.chargeback_minor - self.disputed_minor
        )

    def applied_for(self, key: str) -> Applied | None:
        return next((a for a in self.applied if a.key == key), None)


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of :func:`apply`.  ``replayed`` is true when the command had already been
    applied: ``state`` is then the input state and ``events`` the ones emitted the first time."""

    state: PaymentState
    events: tuple[LifecycleEvent, ...]
    replayed: bool = False


# --- apply ----------------------------------------------------------------------------------


def apply(state: PaymentState, command: Command, *, now: datetime) -> Transition:
    """Apply ``command`` to ``state`` at ``now`` (timezone-aware; used as the events'
    ``occurred_at`` and against deadlines).

    Raises :class:`IllegalTransition` (the state is untouched: it is immutable) when the command
    is malformed, already used with other parameters, not allowed in the current status, or
    would break an invariant (a capture beyond the hold, a refund beyond what is available...).
    Raises :class:`ValueError` for a naive ``now``: that is a caller's bug, not a client's.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    _check_shape(command)
    fingerprint = _fingerprint(command)
    prior = state.applied_for(command.key)
    if prior is not None:
        if prior.fingerprint != fingerprint:
            raise IllegalTransition(
                "idempotency_conflict",
                f"{command.key} was already applied with other parameters ({prior.fingerprint})",
            )
        return Transition(state, prior.events, replayed=True)

    row = TRANSITIONS[state.status]
    allowed = row.get(type(command))
    if allowed is None:
        code = REFUSAL_OVERRIDES.get((state.status, type(command)), REFUSALS[type(command)])
        raise IllegalTransition(code, f"{command.kind} is not allowed: payment is {state.status}")
    if len(state.applied) >= OPERATIONS_PER_PAYMENT_MAX:
        raise IllegalTransition(
            "operation_limit_reached",
            f"payment already has {OPERATIONS_PER_PAYMENT_MAX} operations",
        )
    if isinstance(command, Capture | Refund | OpenDispute) and command.currency != state.currency:
        raise IllegalTransition(
            "currency_mismatch", f"payment is in {state.currency}, not {command.currency}"
        )

    after, events = _step(state, command, now)
    if after.status not in allowed:
        raise InvariantViolation(
            f"{command.kind} led {state.status} to {after.status}, not in {sorted(allowed)}"
        )
    after = replace(after, applied=(*state.applied, Applied(command.key, fingerprint, events)))
    check_invariants(after)
    check_step(state, after)
    return Transition(after, events)


class _Meta(TypedDict):
    """The fields every event of a step shares."""

    payment_id: str
    merchant_id: str
    occurred_at: datetime


Step = tuple[PaymentState, tuple[LifecycleEvent, ...]]
_NO_EVENTS: tuple[LifecycleEvent, ...] = ()


def _step(s: PaymentState, c: Command, now: datetime) -> Step:  # noqa: PLR0911 (one per kind)
    """The new state and events of a command the status allows; each handler still checks
    amounts, ids and deadlines against the state."""
    meta = _Meta(payment_id=s.payment_id, merchant_id=s.merchant_id, occurred_at=now)
    match c:
        case RequireAction():
            return _require_action(s, c, now, meta)
        case CompleteAction():
            return _complete_action(s, c, now, meta)
        case Authorize():
            return _authorize(s, c, now, meta)
        case Decline():
            declined = PaymentDeclined(
                event_id=_event_id(s, "payment.declined", ""),
                **meta,
                amount=_money(s, s.amount_minor),
                method_type=s.method_type,
                decline_code=c.decline_code,
            )
            return _closed(s, S.DECLINED), (declined,)
        case Fail():
            failed = PaymentFailed(
                event_id=_event_id(s, "payment.failed", ""), **meta, reason=c.reason
            )
            return _closed(s, S.FAILED), (failed,)
        case Capture():
            return _capture(s, c, now, meta)
        case Void():
            voided = PaymentVoided(
                event_id=_event_id(s, "payment.voided", ""),
                **meta,
                amount=_money(s, s.authorized_minor),
            )
            return _closed(s, S.VOIDED, released_minor=s.authorized_minor), (voided,)
        case Refund():
            return _refund(s, c, meta)
        case Expire():
            return _expire(s, c, now, meta)
        case OpenDispute():
            return _open_dispute(s, c, now, meta)
        case WinDispute() | LoseDispute():
            return _resolve_dispute(s, c, meta)


def _require_action(s: PaymentState, c: RequireAction, now: datetime, meta: _Meta) -> Step:
    default = ACTION_VALIDITY_DEFAULT[c.action_type]
    expires_at = _deadline(c.expires_at, now, default, ACTION_VALIDITY_MAX)
    event = PaymentActionRequired(
        event_id=_event_id(s, "payment.action_required", c.action_id),
        **meta,
        action_id=c.action_id,
        action_type=c.action_type,
        expires_at=expires_at,
    )
    after = replace(
        s, status=S.REQUIRES_ACTION, pending_action_id=c.action_id, action_expires_at=expires_at
    )
    return after, (event,)


def _complete_action(s: PaymentState, c: CompleteAction, now: datetime, meta: _Meta) -> Step:
    if c.action_id != s.pending_action_id:
        raise IllegalTransition(
            "action_not_pending", f"{c.action_id} is not the pending action {s.pending_action_id}"
        )
    assert s.action_expires_at is not None
    if now >= s.action_expires_at:
        raise IllegalTransition(
            "action_expired", f"the action expired at {s.action_expires_at.isoformat()}"
        )
    event = PaymentActionCompleted(
        event_id=_event_id(s, "payment.action_completed", c.action_id),
        **meta,
        action_id=c.action_id,
    )
    after = replace(s, status=S.PROCESSING, pending_action_id=None, action_expires_at=None)
    return after, (event,)


def _authorize(s: PaymentState, c: Authorize, now: datetime, meta: _Meta) -> Step:
    expires_at = _deadline(
        c.expires_at, now, AUTHORIZATION_VALIDITY_DEFAULT, AUTHORIZATION_VALIDITY_MAX
    )
    event = PaymentAuthorized(
        # The same id streams.authorization.process_requested gives its event for the payment.
        event_id=_event_id(s, "payment.authorized", ""),
        **meta,
        amount=_money(s, s.amount_minor),
        method_type=s.method_type,
    )
    after = replace(
        s,
        status=S.AUTHORIZED,
        authorized_minor=s.amount_minor,
        authorization_expires_at=expires_at,
    )
    return after, (event,)


def _capture(s: PaymentState, c: Capture, now: datetime, meta: _Meta) -> Step:
    assert s.authorization_expires_at is not None
    if now >= s.authorization_expires_at:
        raise IllegalTransition(
            "authorization_expired",
            f"the authorization expired at {s.authorization_expires_at.isoformat()}",
        )
    if c.amount_minor > s.held_minor:
        raise IllegalTransition(
            "capture_exceeds_authorized",
            f"{_fmt(s, c.amount_minor)} exceeds the capturable {_fmt(s, s.held_minor)}",
        )
    remainder = s.held_minor - c.amount_minor
    closes = c.final or remainder == 0
    captured = PaymentCaptured(
        event_id=_event_id(s, "payment.captured", c.capture_id),
        **meta,
        amount=_money(s, c.amount_minor),
        final=closes,  # true whenever no capture can follow, also when it reached the hold
    )
    after = replace(s, captured_minor=s.captured_minor + c.amount_minor)
    if closes and remainder > 0:
        after, released = _release(after, "final_capture", c.key, meta)
        return _settle(after), (captured, *released)
    return _settle(after), (captured,)


def _refund(s: PaymentState, c: Refund, meta: _Meta) -> Step:
    if c.amount_minor > s.available_minor:
        raise IllegalTransition(
            "refund_exceeds_captured",
            f"{_fmt(s, c.amount_minor)} exceeds the refundable {_fmt(s, s.available_minor)}"
            f" (captured {_fmt(s, s.captured_minor)}, refunded {_fmt(s, s.refunded_minor)},"
            f" charged back {_fmt(s, s.chargeback_minor)})",
        )
    event = PaymentRefunded(
        event_id=_event_id(s, "payment.refunded", c.refund_id),
        **meta,
        refund_id=c.refund_id,
        amount=_money(s, c.amount_minor),
    )
    return _settle(replace(s, refunded_minor=s.refunded_minor + c.amount_minor)), (event,)


def _expire(s: PaymentState, c: Expire, now: datetime, meta: _Meta) -> Step:
    waiting = s.status is S.REQUIRES_ACTION
    deadline = s.action_expires_at if waiting else s.authorization_expires_at
    assert deadline is not None
    if now < deadline:
        raise IllegalTransition(
            "not_yet_expired", f"the {s.status} payment expires at {deadline.isoformat()}"
        )
    expired = PaymentExpired(event_id=_event_id(s, "payment.expired", ""), **meta)
    if waiting:
        return _closed(s, S.EXPIRED), (expired,)
    after, released = _release(s, "authorization_expired", c.key, meta)
    if s.captured_minor == 0:
        return replace(after, status=S.EXPIRED), (*released, expired)
    # Partly captured: the captures stand, only the remainder of the hold goes back.
    return _settle(after), released


def _open_dispute(s: PaymentState, c: OpenDispute, now: datetime, meta: _Meta) -> Step:
    if c.amount_minor > s.available_minor:
        raise IllegalTransition(
            "dispute_exceeds_available",
            f"{_fmt(s, c.amount_minor)} exceeds the disputable {_fmt(s, s.available_minor)}",
        )
    due = _deadline(c.evidence_due_at, now, EVIDENCE_WINDOW_DEFAULT, EVIDENCE_WINDOW_MAX)
    after, released = s, _NO_EVENTS
    if s.capture_open:  # a contested payment is not charged further
        after, released = _release(s, "dispute_opened", c.key, meta)
    opened = PaymentDisputeOpened(
        event_id=_event_id(s, "payment.dispute_opened", c.dispute_id),
        **meta,
        dispute_id=c.dispute_id,
        amount=_money(s, c.amount_minor),
        evidence_due_at=due,
    )
    after = replace(
        after,
        status=S.DISPUTED,
        disputed_minor=c.amount_minor,
        open_dispute_id=c.dispute_id,
        evidence_due_at=due,
    )
    return after, (*released, opened)


def _resolve_dispute(s: PaymentState, c: WinDispute | LoseDispute, meta: _Meta) -> Step:
    if c.dispute_id != s.open_dispute_id:
        raise IllegalTransition(
            "dispute_not_open", f"{c.dispute_id} is not the open dispute {s.open_dispute_id}"
        )
    amount = _money(s, s.disputed_minor)
    outcome: LifecycleEvent
    if isinstance(c, LoseDispute):
        outcome = PaymentDisputeLost(
            event_id=_event_id(s, "payment.dispute_lost", c.dispute_id),
            **meta,
            dispute_id=c.dispute_id,
            amount=amount,
        )
        chargeback_minor = s.chargeback_minor + s.disputed_minor
    else:
        outcome = PaymentDisputeWon(
            event_id=_event_id(s, "payment.dispute_won", c.dispute_id),
            **meta,
            dispute_id=c.dispute_id,
            amount=amount,
        )
        chargeback_minor = s.chargeback_minor
    after = replace(
        s,
        disputed_minor=0,
        chargeback_minor=chargeback_minor,
        open_dispute_id=None,
        evidence_due_at=None,
    )
    return _settle(after), (outcome,)


def _event_id(s: PaymentState, event_type: str, step: str) -> str:
    return derived_event_id(s.payment_id, event_type, step)


def _money(s: PaymentState, minor: int) -> Money:
    return Money(minor=minor, currency=s.currency)


def _fmt(s: PaymentState, minor: int) -> str:
    return format_minor(minor, s.currency)


def _closed(s: PaymentState, status: Status, *, released_minor: int = 0) -> PaymentState:
    """``s`` in a terminal ``status``, its deadlines cleared."""
    return replace(
        s,
        status=status,
        released_minor=s.released_minor + released_minor,
        pending_action_id=None,
        action_expires_at=None,
        authorization_expires_at=None,
    )


def _release(
    s: PaymentState, reason: ReleaseReason, step: str, meta: _Meta
) -> tuple[PaymentState, tuple[LifecycleEvent, ...]]:
    """Close the capture: release what is still held."""
    held = s.held_minor
    event = PaymentAuthorizationReleased(
        event_id=_event_id(s, "payment.authorization_released", step),
        **meta,
        amount=_money(s, held),
        reason=reason,
    )
    closed = replace(s, released_minor=s.released_minor + held, authorization_expires_at=None)
    return closed, (event,)


def _settle(s: PaymentState) -> PaymentState:
    """``s`` with the status its counters imply (after authorization, outside void/expiry)."""
    if not s.capture_open:
        s = replace(s, authorization_expires_at=None)
    return replace(s, status=_status_after_authorization(s))


def _status_after_authorization(s: PaymentState) -> Status:
    if s.open_dispute_id is not None:
        return S.DISPUTED
    if s.capture_open:
        return S.PARTIALLY_CAPTURED if s.captured_minor else S.AUTHORIZED
    if s.chargeback_minor:
        return S.CHARGED_BACK
    if s.refunded_minor == s.captured_minor:
        return S.REFUNDED
    if s.refunded_minor:
        return S.PARTIALLY_REFUNDED
    return S.CAPTURED


def _deadline(
    given: datetime | None, now: datetime, default: timedelta, longest: timedelta
) -> datetime:
    if given is None:
        return now + default
    if not now < given <= now + longest:
        raise IllegalTransition(
            "invalid_deadline",
            f"{given.isoformat()} must be after now and at most {longest} later",
        )
    return given


# --- validation of a command's own fields ---------------------------------------------------


def _check_shape(c: Command) -> None:
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        if f.name == "amount_minor" and (type(value) is not int or not 0 < value <= INT64_MAX):
            raise IllegalTransition(
                "invalid_amount", f"amount must be a positive integer of minor units: {value!r}"
            )
        pattern = _ID_PATTERNS.get(f.name)
        if pattern is not None and not (isinstance(value, str) and pattern.match(value)):
            raise IllegalTransition("invalid_id", f"{f.name} {value!r} is malformed")
        if (
            f.name.endswith("_at")
            and value is not None
            and not (isinstance(value, datetime) and value.utcoffset() is not None)
        ):
            raise IllegalTransition("invalid_deadline", f"{f.name} must be timezone-aware")
    match c:
        case Capture() | Refund() | OpenDispute():
            if not isinstance(c.currency, str) or c.currency not in CURRENCY_EXPONENTS:
                raise IllegalTransition("currency_mismatch", f"unknown currency {c.currency!r}")
            if isinstance(c, Capture) and type(c.final) is not bool:
                raise IllegalTransition("invalid_value", f"final must be a bool: {c.final!r}")
        case Decline() if c.decline_code not in get_args(DeclineCode):
            raise IllegalTransition("invalid_value", f"unknown decline code {c.decline_code!r}")
        case Fail() if not (isinstance(c.reason, str) and 0 < len(c.reason) <= REASON_LEN_MAX):
            raise IllegalTransition("invalid_value", f"reason must be 1-{REASON_LEN_MAX} chars")
        case RequireAction() if c.action_type not in get_args(ActionType):
            raise IllegalTransition("invalid_value", f"unknown action type {c.action_type!r}")
        case _:
            pass


def _fingerprint(c: Command) -> str:
    """Canonical JSON of a command's kind and parameters (datetimes in UTC)."""
    fields: dict[str, object] = {"kind": c.kind}
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        fields[f.name] = value.astimezone(UTC) if isinstance(value, datetime) else value
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()


# --- invariants -----------------------------------------------------------------------------

_BEFORE_AUTHORIZATION = frozenset(
    {S.CREATED, S.REQUIRES_ACTION, S.PROCESSING, S.DECLINED, S.FAILED}
)


@dataclass(frozen=True, slots=True)
class MoneyTotals:
    """Sums of the money-moving lifecycle events of one payment, in minor units."""

    authorized: int = 0
    captured: int = 0
    released: int = 0  # payment.voided + payment.authorization_released
    refunded: int = 0
    dispute_opened: int = 0
    dispute_won: int = 0
    dispute_lost: int = 0


def money_totals(events: Iterable[LifecycleEvent]) -> MoneyTotals:
    """Sum the money events (what the ledger posts); the other events contribute nothing."""
    totals = dict.fromkeys((f.name for f in dataclasses.fields(MoneyTotals)), 0)
    for e in events:
        match e:
            case PaymentAuthorized():
                totals["authorized"] += e.amount.minor
            case PaymentCaptured():
                totals["captured"] += e.amount.minor
            case PaymentVoided() | PaymentAuthorizationReleased():
                totals["released"] += e.amount.minor
            case PaymentRefunded():
                totals["refunded"] += e.amount.minor
            case PaymentDisputeOpened():
                totals["dispute_opened"] += e.amount.minor
            case PaymentDisputeWon():
                totals["dispute_won"] += e.amount.minor
            case PaymentDisputeLost():
                totals["dispute_lost"] += e.amount.minor
            case _:
                pass
    return MoneyTotals(**totals)


def check_invariants(s: PaymentState) -> None:
    """Raise :class:`InvariantViolation` unless ``s`` is a state the machine may reach.

    Checks: counters are non-negative ints; ``captured + released <= authorized`` and
    ``authorized`` is 0 or the requested amount; ``refunded + chargeback + disputed <=
    captured``; each counter equals the sum of the applied commands' money events; the status
    agrees with the counters and with the pending action, authorization and dispute fields.
    """
    counters = {
        "amount": s.amount_minor,
        "authorized": s.authorized_minor,
        "captured": s.captured_minor,
        "released": s.released_minor,
        "refunded": s.refunded_minor,
        "disputed": s.disputed_minor,
        "chargeback": s.chargeback_minor,
    }
    facts: list[tuple[bool, str]] = [
        (all(type(v) is int and 0 <= v <= INT64_MAX for v in counters.values()), "counter range"),
        (s.amount_minor > 0, "requested amount > 0"),
        (s.authorized_minor in (0, s.amount_minor), "authorized is 0 or the requested amount"),
        (s.captured_minor + s.released_minor <= s.authorized_minor, "captured+released <= auth"),
        (
            s.refunded_minor + s.chargeback_minor + s.disputed_minor <= s.captured_minor,
            "refunded+chargeback+disputed <= captured",
        ),
        ((s.status is S.REQUIRES_ACTION) == (s.pending_action_id is not None), "pending action"),
        ((s.pending_action_id is None) == (s.action_expires_at is None), "action deadline"),
        ((s.status is S.DISPUTED) == (s.open_dispute_id is not None), "open dispute id"),
        ((s.open_dispute_id is None) == (s.disputed_minor == 0), "disputed amount"),
        ((s.open_dispute_id is None) == (s.evidence_due_at is None), "evidence due date"),
        ((s.authorization_expires_at is not None) == s.capture_open, "authorization deadline"),
        (len(s.applied) <= OPERATIONS_PER_PAYMENT_MAX, "operations limit"),
        (len({a.key for a in s.applied}) == len(s.applied), "applied keys unique"),
    ]
    if s.status in _BEFORE_AUTHORIZATION:
        facts.append((not any(list(counters.values())[1:]), "no money before authorization"))
    elif s.status in (S.VOIDED, S.EXPIRED):
        facts += [
            (s.captured_minor == 0, f"nothing captured when {s.status}"),
            (s.released_minor == s.authorized_minor, f"whole hold released when {s.status}"),
            (s.status is S.EXPIRED or s.authorized_minor > 0, "voided after authorization"),
        ]
    else:
        facts += [
            (s.authorized_minor > 0, f"authorized when {s.status}"),
            (s.status == _status_after_authorization(s), "status agrees with counters"),
        ]
    events = [e for a in s.applied for e in a.events]
    totals = money_totals(events)
    facts += [
        (totals.authorized == s.authorized_minor, "authorized = Σ payment.authorized"),
        (totals.captured == s.captured_minor, "captured = Σ payment.captured"),
        (totals.released == s.released_minor, "released = Σ voided + authorization_released"),
        (totals.refunded == s.refunded_minor, "refunded = Σ payment.refunded"),
        (totals.dispute_lost == s.chargeback_minor, "chargeback = Σ payment.dispute_lost"),
        (
            totals.dispute_opened - totals.dispute_won - totals.dispute_lost == s.disputed_minor,
            "disputed = Σ opened - won - lost",
        ),
        (len({e.event_id for e in events}) == len(events), "event ids unique"),
        (
            all(e.payment_id == s.payment_id and e.merchant_id == s.merchant_id for e in events),
            "events belong to the payment",
        ),
    ]
    broken = [what for ok, what in facts if not ok]
    if broken:
        raise InvariantViolation(f"{s.payment_id} ({s.status}): {', '.join(broken)}")


def check_step(before: PaymentState, after: PaymentState) -> None:
    """Raise :class:`InvariantViolation` unless ``after`` may follow ``before`` in one step:
    the same payment, a non-terminal ``before``, one more applied command, and no money
    counter other than ``disputed_minor`` decreasing."""
    same = [
        before.payment_id == after.payment_id,
        before.merchant_id == after.merchant_id,
        before.currency == after.currency,
        before.amount_minor == after.amount_minor,
        before.method_type == after.method_type,
    ]
    monotone = [
        before.authorized_minor <= after.authorized_minor,
        before.captured_minor <= after.captured_minor,
        before.released_minor <= after.released_minor,
        before.refunded_minor <= after.refunded_minor,
        before.chargeback_minor <= after.chargeback_minor,
    ]
    if not all(same):
        raise InvariantViolation("a step changed the payment's identity")
    if before.status in TERMINAL:
        raise InvariantViolation(f"a step left the terminal status {before.status}")
    if after.applied[:-1] != before.applied or len(after.applied) != len(before.applied) + 1:
        raise InvariantViolation("a step must append exactly one applied command")
    if not all(monotone):
        raise InvariantViolation("a money counter decreased")


# --- persistence ----------------------------------------------------------------------------

_STATE_JSON = TypeAdapter(PaymentState)


def state_to_json(state: PaymentState) -> bytes:
    """The state as JSON bytes, for a table or a database column."""
    return _STATE_JSON.dump_json(state)


def state_from_json(raw: bytes) -> PaymentState:
    """The state :func:`state_to_json` wrote; raises :class:`InvariantViolation` if the stored
    state is not one the machine can reach."""
    state = _STATE_JSON.validate_json(raw)
    check_invariants(state)
    return state
