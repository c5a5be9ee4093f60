"""Property-based: random sequences of lifecycle commands (legal, illegal, malformed, repeated,
and with the clock moving) never reach an illegal state, and the money the emitted events move
always reconciles with the payment's counters.

Hypothesis drives :class:`LifecycleMachine`: after every step the invariants hold; at the end,
replaying the accepted commands from the start rebuilds the same state and the same events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from models.events import (
    ActionType,
    LifecycleEvent,
    PaymentAuthorizationReleased,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDisputeLost,
    PaymentDisputeOpened,
    PaymentDisputeWon,
    PaymentRefunded,
    PaymentVoided,
    encode,
)
from models.ids import payment_id_for
from models.methods import MethodType
from models.money import Money
from models.topics import PAYMENTS_LIFECYCLE
from streams.ledger import entry_for
from streams.lifecycle import (
    ERROR_HTTP_STATUS,
    TERMINAL,
    Authorize,
    Capture,
    Command,
    CompleteAction,
    Decline,
    Expire,
    Fail,
    IllegalTransition,
    LoseDispute,
    OpenDispute,
    PaymentState,
    Refund,
    RequireAction,
    Status,
    Transition,
    Void,
    WinDispute,
    apply,
    check_invariants,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

# Small id pools, so that the same id comes back: as a duplicate, or with other parameters.
ACTION_IDS = st.sampled_from([f"act_{n:010d}" for n in range(3)])
CAPTURE_IDS = st.sampled_from([f"cap_{n:010d}" for n in range(4)])
REFUND_IDS = st.sampled_from([f"rfd_{n:010d}" for n in range(5)] + ["rfd_BAD"])
DISPUTE_IDS = st.sampled_from([f"dsp_{n:010d}" for n in range(3)])
CURRENCIES = st.sampled_from(["INR", "INR", "INR", "INR", "USD"])
# Steps of the clock around the deadlines: actions (10-15 min), authorizations (7 days).
TICKS = st.sampled_from(
    [
        timedelta(seconds=1),
        timedelta(minutes=11),
        timedelta(minutes=16),
        timedelta(days=3),
        timedelta(days=8),
    ]
)

MoneyEvent = (
    PaymentAuthorized
    | PaymentCaptured
    | PaymentVoided
    | PaymentAuthorizationReleased
    | PaymentRefunded
    | PaymentDisputeOpened
    | PaymentDisputeWon
    | PaymentDisputeLost
)

REQUESTED_AMOUNTS = st.one_of(st.integers(1, 3), st.integers(1, 10**9))
METHOD_TYPES = st.sampled_from(get_args(MethodType))

MALFORMED = {"invalid_amount", "invalid_id", "invalid_value", "invalid_deadline"}


def amounts(state: PaymentState) -> st.SearchStrategy[int]:
    """Amounts near every boundary of ``state``, invalid ones included, and arbitrary ones."""
    edges = {
        state.held_minor,
        state.available_minor,
        state.captured_minor,
        state.authorized_minor,
        state.amount_minor,
    }
    near = sorted({e + d for e in edges for d in (-1, 0, 1)} | {-1, 0, 1})
    return st.one_of(st.sampled_from(near), st.integers(1, state.amount_minor))


KINDS = st.sampled_from(
    ["authorize", "require", "complete", "capture", "refund", "expire", "open", "win", "lose"]
)
ACTION_TYPES = st.sampled_from(get_args(ActionType))
DEADLINES_DAYS = st.sampled_from([None, 1, 0, 40])


def any_command(data: st.DataObject, state: PaymentState, now: datetime) -> Command:
    """A command of any kind, legal in ``state`` or not, some malformed."""
    kind = data.draw(KINDS)
    days = data.draw(DEADLINES_DAYS)
    deadline = None if days is None else now + timedelta(days=days)
    if kind == "authorize":
        return Authorize(deadline)
    if kind == "require":
        return RequireAction(data.draw(ACTION_IDS), data.draw(ACTION_TYPES), deadline)
    if kind == "complete":
        return CompleteAction(data.draw(ACTION_IDS))
    if kind == "expire":
        return Expire()
    if kind in ("win", "lose"):
        dispute_id = data.draw(DISPUTE_IDS)
        return WinDispute(dispute_id) if kind == "win" else LoseDispute(dispute_id)
    amount, currency = data.draw(amounts(state)), data.draw(CURRENCIES)
    if kind == "capture":
        return Capture(data.draw(CAPTURE_IDS), amount, currency, data.draw(st.booleans()))
    if kind == "refund":
        return Refund(data.draw(REFUND_IDS), amount, currency)
    return OpenDispute(data.draw(DISPUTE_IDS), amount, currency, deadline)


class LifecycleMachine(RuleBasedStateMachine):
    """The system under test is :func:`apply`; the model is the list of events it emitted."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.payments = 0
        self.initial: PaymentState | None = None
        self.state: PaymentState | None = None
        self.accepted: list[tuple[Command, datetime]] = []
        self.events: list[LifecycleEvent] = []
        self.events_by_key: dict[str, tuple[LifecycleEvent, ...]] = {}
        self.terminal: Status | None = None

    @initialize(amount=REQUESTED_AMOUNTS, method_type=METHOD_TYPES)
    def start(self, amount: int, method_type: MethodType) -> None:
        self.payments += 1
        self.initial = self.state = PaymentState.new(
            payment_id=payment_id_for("prop_shop", f"k{self.payments}"),
            merchant_id="prop_shop",
            amount=Money(minor=amount, currency="INR"),
            method_type=method_type,
        )
        self.accepted, self.events, self.events_by_key = [], [], {}
        self.terminal = None

    @precondition(lambda self: self.terminal is not None)
    @rule(amount=REQUESTED_AMOUNTS, method_type=METHOD_TYPES)
    def next_payment(self, amount: int, method_type: MethodType) -> None:
        """Nothing more can happen to a terminal payment: check it, and start another one."""
        self.check_replay()
        self.start(amount, method_type)

    @property
    def s(self) -> PaymentState:
        assert self.state is not None
        return self.state

    def do(self, command: Command) -> Transition | None:
        """Apply ``command`` and check the outcome; the transition, or None if refused."""
        before = self.s
        # What a refund may take, from the events alone (independently of the state's counters).
        refundable = self.total(PaymentCaptured) - self.total(PaymentRefunded)
        refundable -= self.total(PaymentDisputeLost)
        try:
            t = apply(before, command, now=self.now)
        except IllegalTransition as error:
            assert error.code in ERROR_HTTP_STATUS and error.message
            if command.key in self.events_by_key:  # a known id: only a conflict or malformed
                assert error.code in MALFORMED | {"idempotency_conflict", "currency_mismatch"}
            if isinstance(command, Refund) and error.code == "refund_exceeds_captured":
                assert command.amount_minor > refundable
            assert self.state is before  # nothing to undo: states are immutable
            return None
        if t.replayed:
            assert t.state is before
            assert t.events == self.events_by_key[command.key]
            return t
        assert command.key not in self.events_by_key
        assert before.status not in TERMINAL
        assert t.events, "every accepted command tells the world"
        if isinstance(command, Refund):
            assert command.amount_minor <= refundable
        for event in t.events:
            assert PAYMENTS_LIFECYCLE.decode(encode(event)) == event
            entry_for(event)  # the ledger's consumer accepts every event
        self.events_by_key[command.key] = t.events
        self.events.extend(t.events)
        self.accepted.append((command, self.now))
        self.state = t.state
        if t.state.status in TERMINAL:
            self.terminal = t.state.status
        return t

    def total(self, *kinds: type[MoneyEvent]) -> int:
        """The sum of the amounts of the emitted events of ``kinds``, in minor units."""
        return sum(e.amount.minor for e in self.events if isinstance(e, kinds))

    # --- rules ----------------------------------------------------------------------------

    @rule(delta=TICKS)
    def tick(self, delta: timedelta) -> None:
        self.now += delta

    @rule(offset=st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(seconds=-1)]))
    def tick_to_deadline(self, offset: timedelta) -> None:
        """Move the clock to just before, at or after the payment's next deadline."""
        s = self.s
        deadline = s.action_expires_at or s.authorization_expires_at or s.evidence_due_at
        if deadline is not None and deadline + offset > self.now:
            self.now = deadline + offset

    @rule(data=st.data())
    def anything(self, data: st.DataObject) -> None:
        """Any command, legal or not, with ids from small pools (so ids come back, as
        duplicates or with other parameters) and amounts around the payment's boundaries."""
        self.do(any_command(data, self.s, self.now))

    @rule(
        gate=st.integers(0, 3),
        command=st.sampled_from(
            [
                Decline("do_not_honor"),
                Decline("bogus"),  # type: ignore[arg-type]
                Fail("processor timeout"),
                Fail(""),
                Void(),
            ]
        ),
    )
    def end_early(self, gate: int, command: Command) -> None:
        """Declines, failures and voids, one time in four: each ends the payment, and at the
        rate of the other rules most runs would end before reaching a capture."""
        if gate == 3:  # not 0: Hypothesis favours the simplest value
            self.do(command)

    @rule(data=st.data(), steps=st.integers(1, 6))
    def advance(self, data: st.DataObject, steps: int) -> None:
        """Up to ``steps`` steps a real payment would take next, with valid parameters and
        fresh ids: random commands alone rarely get far past a capture."""
        for _ in range(steps):
            self.advance_once(data)

    def advance_once(self, data: st.DataObject) -> None:
        s, fresh = self.s, f"{100 + len(self.accepted):010d}"
        options: list[Command] = []  # repeated entries make the likelier outcomes likelier
        if s.status in (Status.CREATED, Status.PROCESSING):
            options += [Authorize()] * 4 + [RequireAction(f"act_{fresh}", "three_d_secure")] * 2
            options += [Decline("do_not_honor"), Fail("bank unavailable")]
        if s.pending_action_id is not None:
            options += [CompleteAction(s.pending_action_id)] * 4
            options += [Decline("invalid_vpa"), Fail("3-D Secure failed")]
        if s.status is Status.AUTHORIZED:
            options.append(Void())
        if s.capture_open:
            amount = data.draw(st.one_of(st.integers(1, s.held_minor), st.just(s.held_minor)))
            final = data.draw(st.booleans())
            options += [Capture(f"cap_{fresh}", amount, "INR", final)] * 2
        deadline = s.action_expires_at or s.authorization_expires_at
        if deadline is not None and self.now >= deadline:
            options += [Expire()] * 3
        if s.available_minor > 0 and s.status is not Status.DISPUTED:
            limit = s.available_minor
            amount = data.draw(st.one_of(st.integers(1, limit), st.just(limit)))
            options += [Refund(f"rfd_{fresh}", amount, "INR")] * 2
            options.append(OpenDispute(f"dsp_{fresh}", amount, "INR"))
        if s.open_dispute_id is not None:
            options += [WinDispute(s.open_dispute_id), LoseDispute(s.open_dispute_id)]
        if options:
            self.do(data.draw(st.sampled_from(options)))

    @precondition(lambda self: self.accepted)
    @rule(data=st.data())
    def repeat(self, data: st.DataObject) -> None:
        """Redeliver an accepted command, later: the same events, nothing changes."""
        command, _ = data.draw(st.sampled_from(self.accepted))
        before = self.s
        t = self.do(command)
        assert t is not None and t.replayed
        assert self.state is before

    # --- what must always hold ------------------------------------------------------------

    @invariant()
    def no_illegal_state(self) -> None:
        if self.state is None:
            return
        check_invariants(self.state)
        if self.terminal is not None:
            assert self.state.status is self.terminal

    @invariant()
    def money_reconciles(self) -> None:
        if self.state is None:
            return
        s = self.state
        authorized = self.total(PaymentAuthorized)
        captured = self.total(PaymentCaptured)
        released = self.total(PaymentVoided, PaymentAuthorizationReleased)
        refunded = self.total(PaymentRefunded)
        lost = self.total(PaymentDisputeLost)
        open_disputes = self.total(PaymentDisputeOpened) - self.total(PaymentDisputeWon) - lost
        # Refunds never exceed captures; chargebacks only take what was not refunded.
        assert 0 <= refunded <= captured
        assert refunded + lost + open_disputes <= captured
        # The hold splits exactly into captured, released and still capturable.
        assert authorized == captured + released + s.held_minor
        assert (s.authorized_minor, s.captured_minor, s.released_minor) == (
            authorized,
            captured,
            released,
        )
        assert (s.refunded_minor, s.chargeback_minor, s.disputed_minor) == (
            refunded,
            lost,
            open_disputes,
        )
        assert len({e.event_id for e in self.events}) == len(self.events)

    def teardown(self) -> None:
        if self.initial is not None:
            self.check_replay()

    def check_replay(self) -> None:
        """Replaying the accepted commands from the start rebuilds the same state and events."""
        assert self.initial is not None
        state = self.initial
        events: list[LifecycleEvent] = []
        for command, at in self.accepted:
            t = apply(state, command, now=at)
            state, events = t.state, [*events, *t.events]
        assert state == self.state
        assert events == self.events


LifecycleMachine.TestCase.settings = settings(
    max_examples=250,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = LifecycleMachine.TestCase
