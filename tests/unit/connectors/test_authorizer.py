"""What processors' answers do to a payment (streams/authorizer.py) and how a recorded payment
is re-announced (streams/decisions.py): pure functions, no services."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from models.events import PaymentRequested
from models.ids import new_event_id, payment_id_for
from models.methods import BankTransferMethod, UpiMethod, WalletMethod
from models.money import Money
from streams.authorizer import (
    ConnectorAuthorizer,
    as_charged,
    commands_for,
    customer_action_of,
    method_limit_decline,
    verdict_for,
)
from streams.connectors.base import (
    Approved,
    BankTransferInstructions,
    Declined,
    Failed,
    NotFound,
    Pending,
    ProcessorError,
    RedirectAction,
    RequiresAction,
    UpiCollectAction,
    action_id_for,
)
from streams.connectors.routing import Unroutable
from streams.decisions import Undecided, decide, stored_decision
from streams.lifecycle import (
    Authorize,
    Capture,
    CompleteAction,
    Decline,
    Expire,
    Fail,
    PaymentState,
    RequireAction,
    Status,
    apply,
)
from streams.scoring import ScoredRequest
from streams.settings import WorkerSettings

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def requested(method: object = None, minor: int = 49_900) -> PaymentRequested:
    return PaymentRequested(
        event_id=new_event_id(),
        payment_id=payment_id_for("m_unit", f"k{minor}"),
        merchant_id="m_unit",
        occurred_at=T0,
        request_fingerprint="a" * 64,
        amount=Money(minor=minor, currency="INR"),
        method=method or UpiMethod(vpa="asha@okhdfc"),
    )


APPROVED = Approved("razorpay", "pay_RZP1", 49_900, "INR", captured=True, network_ref="123")
COLLECT = RequiresAction("razorpay", "pay_RZP1", UpiCollectAction("asha@okhdfc"))


def test_answers_become_verdicts() -> None:
    r = requested()
    assert verdict_for(r, APPROVED) == Authorize()
    declined = Declined("payu", "upi_timeout", "E502", "expired")
    assert verdict_for(r, declined) == Decline("upi_timeout")
    assert isinstance(verdict_for(r, Failed("stripe", "3ds failed", "auth_failed")), Fail)
    action = verdict_for(r, COLLECT)
    assert action == RequireAction(action_id_for("razorpay", "pay_RZP1"), "upi_collect", None)
    # Not decided yet, or unknown: never a verdict, so never authorized or charged twice.
    assert isinstance(verdict_for(r, Pending("bank_transfer", "va_1", "awaiting")), Undecided)
    unknown = ProcessorError("razorpay", "outcome_unknown", "no answer", True, True)
    assert isinstance(verdict_for(r, unknown), Undecided)
    assert isinstance(verdict_for(r, Unroutable("upi", "USD")), Fail)


def test_a_deadline_the_machine_refuses_falls_back_to_its_default() -> None:
    r = requested()
    past = RequiresAction("razorpay", "p", UpiCollectAction("a@b"), expires_at=T0 - timedelta(1))
    later = T0 + timedelta(minutes=5)
    soon = RequiresAction("razorpay", "p", UpiCollectAction("a@b"), expires_at=later)
    assert isinstance(past_verdict := verdict_for(r, past), RequireAction)
    assert past_verdict.expires_at is None
    assert isinstance(soon_verdict := verdict_for(r, soon), RequireAction)
    assert soon_verdict.expires_at == later
    # Every verdict the authorizer returns is one the state machine accepts.
    for result in (past, soon, APPROVED):
        decide(r, None, verdict_for(r, result))


def test_undecided_payments_are_recorded_created_with_nothing_posted() -> None:
    decided = decide(requested(), None, Undecided("bank_transfer: awaiting transfer"))
    assert decided.state.status is Status.CREATED
    assert decided.events == () and decided.entries == ()


def test_own_method_limits_decline_before_any_processor() -> None:
    assert method_limit_decline(requested(minor=1_00_000_01)) == Decline("amount_over_method_limit")
    assert method_limit_decline(requested(minor=1_00_000_00)) is None


def _waiting() -> PaymentState:
    r = requested()
    verdict = verdict_for(r, COLLECT)
    assert isinstance(verdict, RequireAction)
    return decide(r, None, verdict).state


def test_a_waiting_payment_settles_as_its_processor_says() -> None:
    state = _waiting()
    aid = state.pending_action_id
    assert aid is not None
    now = T0 + timedelta(seconds=30)
    assert commands_for(state, APPROVED, now) == [
        CompleteAction(aid),
        Authorize(),
        Capture(f"cap_{state.payment_id.removeprefix('pay_')}", 49_900, "INR"),
    ]
    held = Approved("razorpay", "pay_RZP1", 49_900, "INR", captured=False)
    assert commands_for(state, held, now) == [CompleteAction(aid), Authorize()]
    declined = Declined("razorpay", "insufficient_funds", "insufficient_funds", "no")
    assert commands_for(state, declined, now) == [Decline("insufficient_funds")]
    # Still waiting: nothing before our deadline, expiry after it.
    assert commands_for(state, COLLECT, now) == []
    assert state.action_expires_at is not None
    assert commands_for(state, COLLECT, state.action_expires_at) == [Expire()]
    # No answer, pending, not found: nothing changes (the money may still move).
    for nothing in (
        None,
        NotFound("razorpay", state.payment_id),
        Pending("razorpay", "p", "processing"),
        ProcessorError("razorpay", "timeout", "", True, True),
    ):
        assert commands_for(state, nothing, now) == []


def test_every_settling_sequence_is_legal_and_idempotent() -> None:
    state = _waiting()
    now = T0 + timedelta(seconds=30)
    for result in (APPROVED, Declined("payu", "bank_rejected", "E503", "no")):
        after = state
        for command in commands_for(state, result, now):
            after = apply(after, command, now=now).state
        again = after
        for command in commands_for(state, result, now):  # a repeated poll changes nothing
            step = apply(again, command, now=now)
            assert step.replayed
        assert after.status in (Status.CAPTURED, Status.DECLINED)


def test_a_created_payment_is_decided_by_the_poller_like_a_new_one() -> None:
    r = requested(BankTransferMethod(type="neft", ifsc="ICIC0004321", account_last4="4321"))
    state = decide(r, None, Undecided("awaiting transfer")).state
    transferred = Approved("bank_transfer", "RIZZ1", 49_900, "INR", captured=True)
    commands = commands_for(state, transferred, T0 + timedelta(minutes=1))
    assert [type(c) for c in commands] == [Authorize, Capture]
    rejected = Declined("bank_transfer", "bank_rejected", "BANK_REJECTED", "no")
    assert commands_for(state, rejected, T0) == [Decline("bank_rejected")]


def test_a_redelivered_payment_re_announces_its_recorded_decision() -> None:
    r = requested()
    verdict = verdict_for(r, COLLECT)
    assert isinstance(verdict, RequireAction)
    first = decide(r, None, verdict)
    # Later the poller settled it: approved and captured.
    state = first.state
    now = T0 + timedelta(seconds=40)
    for command in commands_for(state, APPROVED, now):
        state = apply(state, command, now=now).state
    replay = stored_decision(r, state)
    assert replay.state == state and replay.entries == ()
    assert [e.event_type for e in replay.events] == [
        "payment.action_required",
        "payment.action_completed",
        "payment.authorized",
        "payment.captured",
    ]
    assert replay.events[0] == first.events[0]  # the very same event, same id


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        (
            RequiresAction("razorpay", "p", RedirectAction("three_d_secure", "https://x/3ds")),
            "redirect",
        ),
        (COLLECT, "upi_collect"),
        (
            Pending(
                "bank_transfer",
                "RIZZ1",
                "awaiting transfer",
                BankTransferInstructions(
                    "RIZZ0001", "HDFC0000001", "RizzPay", 50_000_00, "INR", ("neft",)
                ),
            ),
            "bank_transfer",
        ),
    ],
)
def test_the_customers_next_step_is_kept(result: object, kind: str) -> None:
    action = customer_action_of(result)  # type: ignore[arg-type]
    assert action is not None and action["type"] == kind
    assert customer_action_of(APPROVED) is None


async def test_fraud_blocked_payments_never_reach_a_processor() -> None:
    async def no_database() -> asyncpg.Pool:
        raise AssertionError("nothing to charge, so nothing to register")

    authorizer = ConnectorAuthorizer({}, no_database)
    blocked = ScoredRequest.model_validate({**requested().model_dump(), "risk": "block"})
    wallet = requested(WalletMethod(wallet_id="wal_c0ffee01"))
    assert await authorizer.verdicts([blocked, wallet]) == {}


def test_a_payment_held_for_review_is_only_authorized_at_the_processor() -> None:
    review = ScoredRequest.model_validate({**requested().model_dump(), "risk": "review"})
    charged = as_charged(review)
    assert type(charged) is PaymentRequested and charged.capture == "manual"
    allowed = ScoredRequest.model_validate({**requested().model_dump(), "risk": "allow"})
    assert as_charged(allowed).capture == "automatic"


def test_workers_use_the_processors_once_their_urls_are_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith(("RIZZPAY_CONNECTORS_", "RIZZPAY_AUTHORIZER")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RIZZPAY_HOME", str(tmp_path))
    assert not WorkerSettings().uses_connectors  # nothing configured: the rules
    # `rizzpay stack up` writes the sandboxes' URLs to stack.env.
    (tmp_path / "stack.env").write_text("RIZZPAY_CONNECTORS_BANK_URL=http://127.0.0.1:18103\n")
    assert WorkerSettings().uses_connectors
    assert WorkerSettings().connectors.bank_url == "http://127.0.0.1:18103"
    assert not WorkerSettings(authorizer="rules").uses_connectors
