"""Random sequences of authorize, capture, void, refund, dispute, chargeback and replay, posted
to the real PostgreSQL schema and checked after every step against a simple reference model:
every entry balances, the hash chain verifies, and every account holds exactly what the model
says, to the paisa."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from models.money import Money
from streams.fees import MdrSchedule
from streams.ledger import FeeTerms, account_owner_kind, entry_for
from streams.lifecycle import (
    Authorize,
    Capture,
    Command,
    IllegalTransition,
    LoseDispute,
    OpenDispute,
    PaymentState,
    Refund,
    Void,
    WinDispute,
    apply,
)
from tests.integration.pg_machine import PgStateMachine
from warehouse.payments import post_entries

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
TERMS = FeeTerms(
    MdrSchedule(default_bps=200, method_bps={"card": 190}),
    "card",
    merchant_state="27",
    gateway_state="29",
)


@dataclass
class Model:
    """The reference: what each account must hold, kept with plain arithmetic."""

    amount: int
    hold: int = 0
    captured: int = 0
    refunded: int = 0
    disputed: int = 0
    chargeback: int = 0
    fees: int = 0
    gst: int = 0
    authorized: bool = False
    dispute_id: str | None = None
    history: list[Command] = field(default_factory=list)


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


# Commands accepted across all runs, by kind: evidence that the runs went deep enough.
ACCEPTED: Counter[str] = Counter()


class LedgerMachine(PgStateMachine):
    payments = Bundle("payments")

    def __init__(self) -> None:
        super().__init__()
        self.states: dict[str, PaymentState] = {}
        self.models: dict[str, Model] = {}
        self.clock = T0

    def _apply(self, pid: str, command: Command) -> bool:
        """Apply to the state machine and post what it emits; False if it was refused."""
        self.clock += timedelta(minutes=1)
        try:
            step = apply(self.states[pid], command, now=self.clock)
        except IllegalTransition:
            return False
        self.states[pid] = step.state
        entries = [e for e in (entry_for(ev, TERMS) for ev in step.events) if e is not None]

        async def post() -> None:
            async with self.conn.transaction():
                await post_entries(self.conn, entries)

        self._run(post())
        if not step.replayed:
            self.models[pid].history.append(command)
            ACCEPTED[command.kind] += 1
        return True

    # A few payments taken deep beat many shallow ones.
    @precondition(lambda self: len(self.models) < 3)
    @rule(target=payments, amount=st.integers(min_value=100, max_value=5_00_000_00))
    def new_payment(self, amount: int) -> str:
        pid = "pay_" + uuid.uuid4().hex[:26]
        self.states[pid] = PaymentState.new(
            payment_id=pid,
            merchant_id="m_" + pid[4:20],
            amount=Money(minor=amount, currency="INR"),
            method_type="card",
        )
        self.models[pid] = Model(amount)
        return pid

    @rule(pid=payments)
    def authorize(self, pid: str) -> None:
        m = self.models[pid]
        if self._apply(pid, Authorize()) and not m.authorized:
            m.authorized, m.hold = True, m.amount

    @rule(pid=payments, share=st.integers(1, 100), final=st.booleans())
    def capture(self, pid: str, share: int, final: bool) -> None:
        m = self.models[pid]
        amount = max(1, m.hold * share // 100)
        if self._apply(pid, Capture(_id("cap"), amount, "INR", final=final)):
            fee = TERMS.breakdown(amount)
            m.hold -= amount
            m.captured += amount
            m.fees += fee.fee_minor
            m.gst += fee.gst_total_minor
            if final:
                m.hold = 0

    @rule(pid=payments)
    def void(self, pid: str) -> None:
        if self._apply(pid, Void()):
            self.models[pid].hold = 0

    @rule(pid=payments, share=st.integers(1, 100))
    def refund(self, pid: str, share: int) -> None:
        m = self.models[pid]
        amount = max(1, (m.captured - m.refunded - m.chargeback) * share // 100)
        if self._apply(pid, Refund(_id("rfd"), amount, "INR")):
            m.refunded += amount

    @rule(pid=payments, share=st.integers(1, 100))
    def open_dispute(self, pid: str, share: int) -> None:
        m = self.models[pid]
        amount = max(1, (m.captured - m.refunded - m.chargeback) * share // 100)
        dispute_id = _id("dsp")
        if self._apply(pid, OpenDispute(dispute_id, amount, "INR")):
            m.disputed, m.dispute_id, m.hold = amount, dispute_id, 0

    @rule(pid=payments, won=st.booleans())
    def resolve_dispute(self, pid: str, won: bool) -> None:
        m = self.models[pid]
        if m.dispute_id is None:
            return
        command = WinDispute(m.dispute_id) if won else LoseDispute(m.dispute_id)
        if self._apply(pid, command):
            if not won:
                m.chargeback += m.disputed
            m.disputed, m.dispute_id = 0, None

    @rule(pid=payments, data=st.data())
    def replay(self, pid: str, data: st.DataObject) -> None:
        """A redelivered command: the same events again, nothing posted twice."""
        history = self.models[pid].history
        if history:
            assert self._apply(pid, data.draw(st.sampled_from(history)))

    def _balances(self) -> Counter[tuple[str, str]]:
        rows = self._run(
            self.conn.fetch(
                """SELECT po.account_id, sum(po.amount_minor) AS balance
                     FROM postings po JOIN journal_entries e USING (entry_id)
                    WHERE e.payment_id = ANY($1::text[]) GROUP BY po.account_id""",
                list(self.models),
            )
        )
        out: Counter[tuple[str, str]] = Counter()
        for r in rows:
            owner, kind = account_owner_kind(r["account_id"])
            out[(owner, kind)] += int(r["balance"])
        return out

    @invariant()
    def books_match_the_model(self) -> None:
        if not self.models:
            return
        balances = self._balances()
        expected: Counter[tuple[str, str]] = Counter()
        for pid, m in self.models.items():
            merchant = self.states[pid].merchant_id
            assert 0 <= m.refunded + m.chargeback <= m.captured <= m.amount
            expected[(merchant, "authorized")] = -m.hold
            expected[(merchant, "pending")] = -(m.captured - m.disputed - m.chargeback)
            expected[(merchant, "reserve")] = -m.disputed
            expected[(merchant, "refunds")] = m.refunded
            expected[(merchant, "fees")] = m.fees
            expected[(merchant, "gst_payable")] = m.gst
            expected[("platform", "authorization_holds")] += m.hold
            expected[("platform", "processor_receivable")] += m.captured - m.refunded - m.chargeback
            expected[("platform", "fee_income")] -= m.fees
        gst_output = sum(v for (o, k), v in balances.items() if k.startswith("gst_output"))
        assert gst_output == -sum(m.gst for m in self.models.values())
        nonzero = {k: v for k, v in expected.items() if v != 0}
        actual = {k: v for k, v in balances.items() if v != 0 and not k[1].startswith("gst_out")}
        assert actual == nonzero

    @invariant()
    def every_entry_balances(self) -> None:
        unbalanced = self._run(
            self.conn.fetch(
                """SELECT po.entry_id FROM postings po JOIN journal_entries e USING (entry_id)
                    WHERE e.payment_id = ANY($1::text[])
                    GROUP BY po.entry_id, po.currency HAVING sum(po.amount_minor) <> 0""",
                list(self.models),
            )
        )
        assert unbalanced == []


def test_ledger_against_a_reference_model(pg_dsn: str) -> None:
    LedgerMachine.dsn = pg_dsn
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=80,
            stateful_step_count=40,
            deadline=None,
            # Fixed exploration, so the coverage assertion below cannot flake; change the
            # machine and this run changes with it.
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    # The runs must have reached the interesting places, or the test proves little.
    assert {"capture", "refund", "open_dispute", "win_dispute", "lose_dispute", "void"} <= set(
        ACCEPTED
    ), ACCEPTED
