"""The payment lifecycle state machine: every transition, and every refusal by its code."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest

from models.events import (
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
    encode,
)
from models.ids import derived_event_id, new_event_id, payment_id_for
from models.methods import CardMethod
from models.money import Money
from models.topics import PAYMENTS_LIFECYCLE
from streams.authorization import process_requested
from streams.ledger import entry_for
from streams.lifecycle import (
    ERROR_HTTP_STATUS,
    OPERATIONS_PER_PAYMENT_MAX,
    REFUSAL_OVERRIDES,
    REFUSALS,
    TERMINAL,
    TRANSITIONS,
    Authorize,
    Capture,
    Command,
    CompleteAction,
    Decline,
    ErrorCode,
    Expire,
    Fail,
    IllegalTransition,
    InvariantViolation,
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
    state_from_json,
    state_to_json,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
AMOUNT = 10_000  # ₹100.00
ACT = "act_0000000001"
DSP = "dsp_0000000001"


def cap(n: int, amount: int, *, final: bool = True, currency: str = "INR") -> Capture:
    return Capture(f"cap_{n:010d}", amount, currency, final)


def rfd(n: int, amount: int, currency: str = "INR") -> Refund:
    return Refund(f"rfd_{n:010d}", amount, currency)


def dispute(amount: int, dispute_id: str = DSP, **kw: Any) -> OpenDispute:
    return OpenDispute(dispute_id, amount, "INR", **kw)


def new_payment(amount: int = AMOUNT) -> PaymentState:
    return PaymentState.new(
        payment_id=payment_id_for("shop_one", f"key-{amount}"),
        merchant_id="shop_one",
        amount=Money(minor=amount, currency="INR"),
        method_type="card",
    )


def run(state: PaymentState, *commands: Command, now: datetime = T0) -> Transition:
    """Apply ``commands`` in order; the last transition."""
    transition = Transition(state, ())
    for command in commands:
        transition = apply(transition.state, command, now=now)
    return transition


def refused(state: PaymentState, command: Command, now: datetime = T0) -> IllegalTransition:
    with pytest.raises(IllegalTransition) as info:
        apply(state, command, now=now)
    assert info.value.message
    assert info.value.http_status == ERROR_HTTP_STATUS[info.value.code]
    return info.value


def authorized(amount: int = AMOUNT) -> PaymentState:
    return run(new_payment(amount), Authorize()).state


def captured(amount: int = AMOUNT) -> PaymentState:
    return run(authorized(amount), cap(1, amount)).state


def declined() -> PaymentState:
    return run(new_payment(), Decline("do_not_honor")).state


def types(t: Transition) -> list[type]:
    return [type(e) for e in t.events]


# --- the table -----------------------------------------------------------------------------


def test_the_table_covers_every_status_and_its_terminal_statuses_are_the_expected_ones() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert {
        Status.REFUNDED,
        Status.VOIDED,
        Status.DECLINED,
        Status.FAILED,
        Status.EXPIRED,
    } == TERMINAL
    for row in TRANSITIONS.values():
        for targets in row.values():
            assert targets <= set(Status)


def test_every_error_code_has_an_http_status_and_every_refusal_is_a_known_code() -> None:
    codes = set(get_args(ErrorCode))
    assert set(ERROR_HTTP_STATUS) == codes
    assert set(REFUSALS.values()) | set(REFUSAL_OVERRIDES.values()) <= codes
    assert set(REFUSALS) == set(get_args(Command))
    assert ERROR_HTTP_STATUS["invalid_amount"] == 422
    assert ERROR_HTTP_STATUS["refund_exceeds_captured"] == 409


# --- happy paths -------------------------------------------------------------------------


def test_authorize_then_full_capture() -> None:
    t = run(new_payment(), Authorize())
    assert t.state.status is Status.AUTHORIZED
    assert t.state.authorized_minor == AMOUNT
    assert t.state.authorization_expires_at == T0 + timedelta(days=7)
    assert types(t) == [PaymentAuthorized]
    t = apply(t.state, cap(1, AMOUNT), now=T0)
    assert t.state.status is Status.CAPTURED
    assert (t.state.captured_minor, t.state.released_minor, t.state.held_minor) == (AMOUNT, 0, 0)
    [event] = t.events
    assert isinstance(event, PaymentCaptured) and event.final and event.amount.minor == AMOUNT


def test_partial_captures_then_a_final_one_releases_the_remainder() -> None:
    t = run(authorized(), cap(1, 3_000, final=False))
    assert t.state.status is Status.PARTIALLY_CAPTURED
    assert t.state.held_minor == 7_000
    t = apply(t.state, cap(2, 2_000, final=False), now=T0)
    assert (t.state.status, t.state.captured_minor) == (Status.PARTIALLY_CAPTURED, 5_000)
    t = apply(t.state, cap(3, 1_000, final=True), now=T0)
    assert t.state.status is Status.CAPTURED
    captured_event, released = t.events
    assert isinstance(captured_event, PaymentCaptured) and captured_event.final
    assert isinstance(released, PaymentAuthorizationReleased)
    assert (released.amount.minor, released.reason) == (4_000, "final_capture")
    assert (t.state.captured_minor, t.state.released_minor, t.state.held_minor) == (6_000, 4_000, 0)
    assert refused(t.state, cap(4, 1)).code == "payment_not_capturable"


def test_non_final_captures_reaching_the_hold_close_it_without_a_release() -> None:
    t = run(authorized(), cap(1, 6_000, final=False), cap(2, 4_000, final=False))
    assert t.state.status is Status.CAPTURED
    [event] = t.events
    assert isinstance(event, PaymentCaptured) and event.final  # no capture can follow
    assert t.state.released_minor == 0


def test_upi_collect_completes_then_authorizes() -> None:
    t = run(new_payment(), RequireAction(ACT, "upi_collect"))
    assert t.state.status is Status.REQUIRES_ACTION
    [required] = t.events
    assert isinstance(required, PaymentActionRequired)
    assert required.expires_at == T0 + timedelta(minutes=10)
    t = apply(t.state, CompleteAction(ACT), now=T0 + timedelta(minutes=2))
    assert t.state.status is Status.PROCESSING and types(t) == [PaymentActionCompleted]
    assert t.state.pending_action_id is None
    t = apply(t.state, Authorize(), now=T0 + timedelta(minutes=2))
    assert t.state.status is Status.AUTHORIZED


def test_a_second_action_after_the_first_one_completed() -> None:
    second = "act_0000000002"
    t = run(
        new_payment(),
        RequireAction(ACT, "three_d_secure"),
        CompleteAction(ACT),
        RequireAction(second, "netbanking_redirect", T0 + timedelta(minutes=5)),
    )
    assert (t.state.status, t.state.pending_action_id) == (Status.REQUIRES_ACTION, second)
    assert t.state.action_expires_at == T0 + timedelta(minutes=5)


@pytest.mark.parametrize("before", [(), (RequireAction(ACT, "upi_collect"),)])
def test_decline_and_fail_before_authorization(before: tuple[Command, ...]) -> None:
    start = run(new_payment(), *before).state
    t = apply(start, Decline("invalid_vpa"), now=T0)
    assert t.state.status is Status.DECLINED
    [declined] = t.events
    assert isinstance(declined, PaymentDeclined) and declined.decline_code == "invalid_vpa"
    assert t.state.pending_action_id is None
    t = apply(start, Fail("3-D Secure challenge failed"), now=T0)
    assert t.state.status is Status.FAILED and types(t) == [PaymentFailed]


def test_void_releases_the_whole_hold() -> None:
    t = run(authorized(), Void())
    assert t.state.status is Status.VOIDED
    [voided] = t.events
    assert isinstance(voided, PaymentVoided) and voided.amount.minor == AMOUNT
    assert (t.state.released_minor, t.state.held_minor) == (AMOUNT, 0)


def test_partial_and_repeated_refunds_up_to_the_captured_amount() -> None:
    t = run(captured(), rfd(1, 2_500))
    assert t.state.status is Status.PARTIALLY_REFUNDED
    [refund] = t.events
    assert isinstance(refund, PaymentRefunded) and refund.refund_id == "rfd_0000000001"
    t = apply(t.state, rfd(2, 2_500), now=T0)
    assert (t.state.status, t.state.refunded_minor) == (Status.PARTIALLY_REFUNDED, 5_000)
    error = refused(t.state, rfd(3, 5_001))
    assert error.code == "refund_exceeds_captured"
    t = apply(t.state, rfd(3, 5_000), now=T0)
    assert (t.state.status, t.state.refunded_minor) == (Status.REFUNDED, AMOUNT)
    assert refused(t.state, rfd(4, 1)).code == "payment_not_refundable"


def test_refund_while_more_may_be_captured_then_the_final_capture() -> None:
    t = run(authorized(), cap(1, 4_000, final=False), rfd(1, 4_000))
    assert t.state.status is Status.PARTIALLY_CAPTURED  # the capture is still open
    assert refused(t.state, rfd(2, 1)).code == "refund_exceeds_captured"
    t = apply(t.state, cap(2, 1_000), now=T0)
    assert t.state.status is Status.PARTIALLY_REFUNDED
    assert (t.state.captured_minor, t.state.refunded_minor, t.state.released_minor) == (
        5_000,
        4_000,
        5_000,
    )


def test_an_authorization_expires_only_after_its_deadline_and_releases_the_hold() -> None:
    state = authorized()
    deadline = T0 + timedelta(days=7)
    assert refused(state, Expire(), now=deadline - timedelta(seconds=1)).code == "not_yet_expired"
    assert refused(state, cap(1, 1), now=deadline).code == "authorization_expired"
    t = apply(state, Expire(), now=deadline)
    assert t.state.status is Status.EXPIRED
    released, expired = t.events
    assert isinstance(released, PaymentAuthorizationReleased) and isinstance(
        expired, PaymentExpired
    )
    assert (released.amount.minor, released.reason) == (AMOUNT, "authorization_expired")


def test_expiry_after_a_partial_capture_keeps_the_capture() -> None:
    state = run(authorized(), cap(1, 3_000, final=False)).state
    t = apply(state, Expire(), now=T0 + timedelta(days=8))
    assert t.state.status is Status.CAPTURED  # not expired: money was captured
    [released] = t.events
    assert isinstance(released, PaymentAuthorizationReleased)
    assert released.amount.minor == 7_000


def test_an_action_not_completed_in_time_expires() -> None:
    state = run(new_payment(), RequireAction(ACT, "three_d_secure")).state
    late = T0 + timedelta(minutes=10)
    assert refused(state, Expire(), now=late - timedelta(seconds=1)).code == "not_yet_expired"
    assert refused(state, CompleteAction(ACT), now=late).code == "action_expired"
    t = apply(state, Expire(), now=late)
    assert t.state.status is Status.EXPIRED and types(t) == [PaymentExpired]
    assert t.state.authorized_minor == 0


def test_dispute_won_returns_to_the_status_before_it() -> None:
    state = run(captured(), rfd(1, 1_000)).state
    t = apply(state, dispute(9_000), now=T0)
    assert t.state.status is Status.DISPUTED
    [opened] = t.events
    assert isinstance(opened, PaymentDisputeOpened)
    assert opened.evidence_due_at == T0 + timedelta(days=7)
    assert t.state.disputed_minor == 9_000
    t = apply(t.state, WinDispute(DSP), now=T0 + timedelta(days=20))
    assert t.state.status is Status.PARTIALLY_REFUNDED
    assert (t.state.disputed_minor, t.state.chargeback_minor) == (0, 0)
    [won] = t.events
    assert isinstance(won, PaymentDisputeWon) and won.amount.minor == 9_000


def test_dispute_lost_is_a_chargeback_and_the_rest_stays_refundable() -> None:
    t = run(captured(), dispute(6_000, evidence_due_at=T0 + timedelta(days=10)), LoseDispute(DSP))
    assert t.state.status is Status.CHARGED_BACK
    assert (t.state.chargeback_minor, t.state.disputed_minor) == (6_000, 0)
    [lost] = t.events
    assert isinstance(lost, PaymentDisputeLost) and lost.amount.minor == 6_000
    assert refused(t.state, rfd(1, 4_001)).code == "refund_exceeds_captured"
    t = apply(t.state, rfd(1, 4_000), now=T0)
    assert t.state.status is Status.CHARGED_BACK
    assert t.state.refunded_minor + t.state.chargeback_minor == t.state.captured_minor
    assert refused(t.state, dispute(1, "dsp_0000000002")).code == "dispute_exceeds_available"


def test_a_dispute_on_an_open_capture_closes_it_first() -> None:
    state = run(authorized(), cap(1, 3_000, final=False)).state
    t = apply(state, dispute(3_000), now=T0)
    released, opened = t.events
    assert isinstance(released, PaymentAuthorizationReleased)
    assert (released.amount.minor, released.reason) == (7_000, "dispute_opened")
    assert isinstance(opened, PaymentDisputeOpened)
    assert not t.state.capture_open
    t = apply(t.state, WinDispute(DSP), now=T0)
    assert t.state.status is Status.CAPTURED
    assert refused(t.state, cap(2, 1)).code == "payment_not_capturable"


def test_a_later_dispute_may_follow_a_won_one() -> None:
    t = run(captured(), dispute(5_000), WinDispute(DSP), dispute(AMOUNT, "dsp_0000000002"))
    assert (t.state.status, t.state.open_dispute_id) == (Status.DISPUTED, "dsp_0000000002")


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "command", "code"),
    [
        (new_payment, cap(1, 1), "payment_not_capturable"),
        (new_payment, Void(), "payment_not_voidable"),
        (new_payment, rfd(1, 1), "payment_not_refundable"),
        (new_payment, Expire(), "payment_not_expirable"),
        (new_payment, dispute(1), "payment_not_disputable"),
        (new_payment, WinDispute(DSP), "dispute_not_open"),
        (new_payment, LoseDispute(DSP), "dispute_not_open"),
        (new_payment, CompleteAction(ACT), "action_not_pending"),
        (authorized, Decline("do_not_honor"), "payment_not_declinable"),
        (authorized, Fail("late"), "payment_not_failable"),
        (authorized, RequireAction(ACT, "three_d_secure"), "action_not_allowed"),
        (authorized, rfd(1, 1), "payment_not_refundable"),
        (authorized, dispute(1), "payment_not_disputable"),
        (authorized, cap(1, AMOUNT + 1), "capture_exceeds_authorized"),
        (captured, Void(), "void_after_capture"),
        (captured, cap(2, 1), "payment_not_capturable"),
        (declined, Authorize(), "payment_not_authorizable"),
        (declined, RequireAction(ACT, "upi_collect"), "action_not_allowed"),
        (captured, dispute(AMOUNT + 1), "dispute_exceeds_available"),
        (captured, WinDispute(DSP), "dispute_not_open"),
        (captured, Expire(), "payment_not_expirable"),
    ],
)
def test_illegal_transitions_are_refused_by_code(
    start: Any, command: Command, code: ErrorCode
) -> None:
    assert refused(start(), command).code == code


def test_void_after_a_partial_capture_is_refused() -> None:
    state = run(authorized(), cap(1, 1, final=False)).state
    assert refused(state, Void()).code == "void_after_capture"


def test_refunds_and_second_disputes_are_refused_while_a_dispute_is_open() -> None:
    state = run(captured(), dispute(1_000)).state
    assert refused(state, rfd(1, 1)).code == "refund_during_dispute"
    assert refused(state, dispute(1, "dsp_0000000002")).code == "dispute_already_open"
    assert refused(state, LoseDispute("dsp_0000000002")).code == "dispute_not_open"
    assert refused(state, Void()).code == "void_after_capture"


def test_complete_action_must_name_the_pending_action() -> None:
    state = run(new_payment(), RequireAction(ACT, "upi_collect")).state
    assert refused(state, CompleteAction("act_0000000009")).code == "action_not_pending"


@pytest.mark.parametrize(
    "command",
    [
        cap(1, 0),
        cap(1, -5),
        cap(1, True),
        cap(1, 2**63),
        Capture("cap_0000000001", 1.5, "INR"),  # type: ignore[arg-type]
        rfd(1, 0),
        dispute(-1),
    ],
)
def test_amounts_must_be_positive_integers(command: Command) -> None:
    assert refused(captured(), command).code == "invalid_amount"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (Capture("c1", 1, "INR"), "invalid_id"),
        (Refund("rfd_UPPER00000", 1, "INR"), "invalid_id"),
        (OpenDispute("dispute-1", 1, "INR"), "invalid_id"),
        (cap(1, 100, currency="USD"), "currency_mismatch"),
        (rfd(1, 100, currency="XYZ"), "currency_mismatch"),
        (Capture("cap_0000000001", 1, "INR", 1), "invalid_value"),  # type: ignore[arg-type]
        (Decline("because"), "invalid_value"),  # type: ignore[arg-type]
        (Fail(""), "invalid_value"),
        (Fail("x" * 256), "invalid_value"),
        (RequireAction(ACT, "telepathy"), "invalid_value"),  # type: ignore[arg-type]
        (Authorize(datetime(2026, 3, 9)), "invalid_deadline"),  # noqa: DTZ001 (naive on purpose)
    ],
)
def test_malformed_commands_are_422(command: Command, code: ErrorCode) -> None:
    state = authorized() if isinstance(command, Capture) else new_payment()
    error = refused(state, command)
    assert (error.code, error.http_status) == (code, 422)


@pytest.mark.parametrize(
    "command",
    [
        Authorize(T0),
        Authorize(T0 + timedelta(days=32)),
        RequireAction(ACT, "upi_collect", T0 - timedelta(minutes=1)),
        RequireAction(ACT, "upi_collect", T0 + timedelta(days=2)),
    ],
)
def test_deadlines_must_lie_ahead_within_their_limit(command: Command) -> None:
    assert refused(new_payment(), command).code == "invalid_deadline"


def test_evidence_due_date_in_the_past_is_refused() -> None:
    command = dispute(1, evidence_due_at=T0 - timedelta(days=1))
    assert refused(captured(), command).code == "invalid_deadline"


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        apply(new_payment(), Authorize(), now=datetime(2026, 1, 1))  # noqa: DTZ001


ANY_COMMANDS: list[Command] = [
    Authorize(),
    RequireAction("act_0000000077", "upi_collect"),
    CompleteAction(ACT),
    Decline("do_not_honor"),
    Fail("x"),
    cap(9, 1),
    Void(),
    rfd(9, 1),
    Expire(),
    dispute(1, "dsp_0000000099"),
    WinDispute(DSP),
    LoseDispute(DSP),
]


def terminal_payments() -> list[PaymentState]:
    late = T0 + timedelta(days=30)
    return [
        run(captured(), rfd(1, AMOUNT)).state,
        run(authorized(), Void()).state,
        run(new_payment(), Decline("do_not_honor")).state,
        run(new_payment(), Fail("processor timeout")).state,
        run(authorized(), Expire(), now=late).state,
    ]


@pytest.mark.parametrize("state", terminal_payments(), ids=lambda s: str(s.status))
def test_terminal_statuses_refuse_every_new_command(state: PaymentState) -> None:
    assert state.status in TERMINAL
    later = T0 + timedelta(days=40)
    for command in ANY_COMMANDS:
        # Refused, or the very command that got it here again: a replay that changes nothing.
        try:
            t = apply(state, command, now=later)
        except IllegalTransition:
            continue
        assert t.replayed and t.state is state


def test_operation_limit() -> None:
    state = captured(amount=1_000)  # two operations so far
    for n in range(OPERATIONS_PER_PAYMENT_MAX - 2):
        state = apply(state, rfd(n, 1), now=T0).state
    assert len(state.applied) == OPERATIONS_PER_PAYMENT_MAX
    assert refused(state, rfd(999, 1)).code == "operation_limit_reached"


# --- idempotency ------------------------------------------------------------------------------


def test_applying_a_command_again_returns_the_same_events_and_changes_nothing() -> None:
    state = run(captured(), rfd(1, 1_000)).state
    first = apply(state, rfd(2, 500), now=T0)
    again = apply(first.state, rfd(2, 500), now=T0 + timedelta(days=3))
    assert again.replayed and not first.replayed
    assert again.state is first.state
    assert again.events == first.events
    # Even an earlier command, and after its deadline would have passed.
    replay = apply(first.state, cap(1, AMOUNT), now=T0 + timedelta(days=60))
    assert replay.replayed and replay.state is first.state
    assert isinstance(replay.events[0], PaymentCaptured)


def test_the_same_id_with_other_parameters_is_a_conflict() -> None:
    state = run(captured(), rfd(1, 1_000)).state
    assert refused(state, rfd(1, 999)).code == "idempotency_conflict"
    assert refused(declined(), Decline("insufficient_funds")).code == "idempotency_conflict"
    assert refused(authorized(), Authorize(T0 + timedelta(days=1))).code == "idempotency_conflict"


def test_equal_deadlines_in_other_time_zones_are_the_same_command() -> None:
    ist = datetime(2026, 3, 5, 15, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    state = run(new_payment(), Authorize(ist)).state
    assert apply(state, Authorize(ist.astimezone(UTC)), now=T0).replayed


def test_event_ids_are_derived_from_the_payment_and_step() -> None:
    state = authorized()
    t = apply(state, cap(1, 2_000, final=False), now=T0)
    assert t.events[0].event_id == derived_event_id(
        state.payment_id, "payment.captured", "cap_0000000001"
    )
    # A replay from scratch at another time yields the same ids.
    again = run(new_payment(), Authorize(), cap(1, 2_000, final=False), now=T0 + timedelta(1))
    assert [e.event_id for e in again.events] == [e.event_id for e in t.events]


def test_authorized_event_id_matches_the_authorization_agents() -> None:
    request = PaymentRequested(
        event_id=new_event_id(),
        payment_id=payment_id_for("shop_one", "k-agent"),
        merchant_id="shop_one",
        occurred_at=T0,
        request_fingerprint="a" * 64,
        amount=Money(minor=AMOUNT, currency="INR"),
        method=CardMethod(token="tok_test_card", bin="411111", last4="4242"),
    )
    t = apply(PaymentState.from_request(request), Authorize(), now=T0)
    assert t.events[0].event_id == process_requested(request).event_id


# --- contracts --------------------------------------------------------------------------------


def test_every_emitted_event_is_a_lifecycle_topic_event_the_ledger_accepts() -> None:
    journeys: list[list[Command]] = [
        [RequireAction(ACT, "upi_collect"), CompleteAction(ACT), Authorize()],
        [Authorize(), cap(1, 4_000, final=False), rfd(1, 100), dispute(1_000), LoseDispute(DSP)],
        [Authorize(), cap(1, 4_000), dispute(1_000), WinDispute(DSP)],
        [Authorize(), Void()],
        [Decline("expired_card")],
        [Fail("processor 5xx")],
    ]
    seen: set[str] = set()
    for journey in journeys:
        state = new_payment()
        for command in journey:
            for event in apply(state, command, now=T0).events:
                decoded = PAYMENTS_LIFECYCLE.decode(encode(event))
                assert decoded == event
                entry_for(decoded)
                seen.add(event.event_type)
            state = apply(state, command, now=T0).state
    assert len(seen) == 12


def test_state_round_trips_through_json_and_a_tampered_one_is_refused() -> None:
    state = run(authorized(), cap(1, 3_000, final=False), rfd(1, 500), dispute(2_000)).state
    assert state_from_json(state_to_json(state)) == state
    tampered = state_to_json(state).replace(b'"refunded_minor":500', b'"refunded_minor":5000')
    with pytest.raises(InvariantViolation):
        state_from_json(tampered)


def test_invariants_catch_impossible_states() -> None:
    state = captured()
    check_invariants(state)
    for broken in [
        dataclasses.replace(state, refunded_minor=AMOUNT + 1),
        dataclasses.replace(state, status=Status.REFUNDED),
        dataclasses.replace(state, chargeback_minor=1),  # no payment.dispute_lost says so
        dataclasses.replace(state, status=Status.DISPUTED),
        dataclasses.replace(new_payment(), captured_minor=1),
    ]:
        with pytest.raises(InvariantViolation):
            check_invariants(broken)


def test_state_is_immutable() -> None:
    state = new_payment()
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.captured_minor = 5  # type: ignore[misc]
