"""Settlement (streams/settlement.py): cutoffs in IST, batch arithmetic on worked examples
computed by hand in the comments, the rolling reserve across days, negative nets carried
forward, the check against the ledger, UTRs and reports.

Units: every amount is paise (₹1 = 100), every rate basis points (190 bp = 1.90 %); rounding is
half up to the paisa.  The lines are what :func:`streams.ledger.entry_for` posts for real
lifecycle events, so the arithmetic here is the ledger's.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.ids import payment_id_for
from models.money import Money
from streams.fees import MdrSchedule
from streams.ledger import FeeTerms, JournalEntry, account_owner_kind, entry_for
from streams.lifecycle import (
    Authorize,
    Capture,
    Command,
    OpenDispute,
    PaymentState,
    Refund,
    apply,
)
from streams.settlement import (
    IST,
    SETTLED_KINDS,
    BatchReport,
    InstantSettlementRefused,
    InstantTerms,
    InvalidBankDetails,
    InvalidUtr,
    LedgerLine,
    LedgerView,
    PayoutAccount,
    ReserveHold,
    SettlementBatch,
    SettlementSchedule,
    batch_id_for,
    compute_batch,
    cutoff_for,
    decide_status,
    due_cutoff,
    ist_date,
    ist_midnight,
    mask_account_number,
    payout_completion_entry,
    payout_instruction_entry,
    render_csv,
    render_json,
    report_rows,
    settlement_created_event,
    settlement_date_for,
    settlement_entry,
    settlement_event,
    settlement_paid_event,
    validate_ifsc,
    validate_utr,
    verify_batch,
)

M = "kirana_mart"
MDR = MdrSchedule(default_bps=200, method_bps={"card": 190}, instant_settlement_bps=25)
# Merchant in Maharashtra (27), gateway in Karnataka (29): inter-state, so IGST 18 %.
TERMS = FeeTerms(MDR, "card", merchant_state="27", gateway_state="29")
T1 = SettlementSchedule()  # T+1, no reserve
BANK = PayoutAccount("Kirana Mart Pvt Ltd", "XXXXXXXX1234", "HDFC0001234")


def pid(name: str) -> str:
    """The payment id of test payment ``name`` (``pay_`` + 26 base32 characters)."""
    return payment_id_for(M, name)


def ist(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=IST)


class Traffic:
    """Payments taken through the real lifecycle; the postings their events make on the
    merchant's settled accounts become :class:`LedgerLine`s booked at the step's time."""

    def __init__(self, merchant_id: str = M, terms: FeeTerms = TERMS) -> None:
        self.merchant_id = merchant_id
        self.terms = terms
        self.states: dict[str, PaymentState] = {}
        self.entries: list[JournalEntry] = []

    def step(self, name: str, command: Command, at: datetime) -> list[LedgerLine]:
        pid = payment_id_for(self.merchant_id, name)
        if pid not in self.states:
            self.states[pid] = PaymentState.new(
                payment_id=pid,
                merchant_id=self.merchant_id,
                amount=Money(minor=10_000_000_00, currency="INR"),
                method_type="card",
            )
        result = apply(self.states[pid], command, now=at)
        self.states[pid] = result.state
        lines: list[LedgerLine] = []
        for event in result.events:
            entry = entry_for(event, self.terms)
            if entry is None:
                continue
            self.entries.append(entry)
            lines.extend(
                LedgerLine(
                    p.posting_id,
                    entry.entry_id,
                    entry.payment_id,
                    entry.kind,
                    p.account_id,
                    p.amount_minor,
                    at.astimezone(UTC),
                )
                for p in entry.postings
                if account_owner_kind(p.account_id)
                in {(self.merchant_id, k) for k in SETTLED_KINDS}
            )
        return lines

    def capture(self, name: str, amount: int, at: datetime) -> list[LedgerLine]:
        self.step(name, Authorize(), at)
        return self.step(name, Capture("cap_" + pid(name)[4:], amount, "INR", final=False), at)

    def refund(self, name: str, refund_id: str, amount: int, at: datetime) -> list[LedgerLine]:
        return self.step(name, Refund(refund_id, amount, "INR"), at)


def view_for(batch: SettlementBatch, **overrides: object) -> LedgerView:
    """The ledger view a faithful ledger would give for ``batch``."""
    sums: Counter[str] = Counter()
    entries: dict[str, set[str]] = {}
    for line in batch.lines:
        sums[line.account_kind] += line.amount_minor
        entries.setdefault(line.entry_id, set()).add(line.posting_id)
    fields: dict[str, object] = {
        "found": {line.posting_id: line for line in batch.lines},
        "account_sums": dict(sums),
        "entry_postings": {e: frozenset(ps) for e, ps in entries.items()},
        "payout_account": BANK,
    }
    fields.update(overrides)
    return LedgerView(**fields)  # type: ignore[arg-type]


def balances(entries: list[JournalEntry | None]) -> dict[tuple[str, str], int]:
    total: Counter[tuple[str, str]] = Counter()
    for entry in entries:
        for p in entry.postings if entry else ():
            total[account_owner_kind(p.account_id)] += p.amount_minor
    return {k: v for k, v in total.items() if v}


# ---------------------------------------------------------------------------------------------
# Cutoffs: RBI days are IST calendar days
# ---------------------------------------------------------------------------------------------


def test_t_plus_1_cutoff_is_midnight_ist_which_is_1830_utc_the_day_before() -> None:
    # The batch paid on 4 Nov covers everything booked before 00:00 IST on 4 Nov.
    assert cutoff_for(date(2026, 11, 4), T1) == datetime(2026, 11, 3, 18, 30, tzinfo=UTC)
    assert ist_midnight(date(2026, 11, 4)) == ist(2026, 11, 4)
    # T+2: the batch paid on 5 Nov covers up to the end of 3 Nov.
    assert cutoff_for(date(2026, 11, 5), SettlementSchedule(delay_days=2)) == ist(2026, 11, 4)


@pytest.mark.parametrize(
    ("booked_at", "paid_on"),
    [
        (ist(2026, 11, 3, 0, 0, 0), date(2026, 11, 4)),  # first instant of 3 Nov
        (ist(2026, 11, 3, 23, 59, 59, 999_999), date(2026, 11, 4)),  # last instant of 3 Nov
        (ist(2026, 11, 4, 0, 0, 0), date(2026, 11, 5)),  # 4 Nov: settles a day later
        # 20:00 UTC on 3 Nov is 01:30 IST on 4 Nov: a UTC-day bug would pay it on 4 Nov.
        (datetime(2026, 11, 3, 20, 0, tzinfo=UTC), date(2026, 11, 5)),
        # 18:29:59 UTC on 3 Nov is 23:59:59 IST on 3 Nov.
        (datetime(2026, 11, 3, 18, 29, 59, tzinfo=UTC), date(2026, 11, 4)),
    ],
)
def test_a_posting_booked_on_ist_day_d_is_paid_on_d_plus_1(
    booked_at: datetime, paid_on: date
) -> None:
    assert settlement_date_for(booked_at, T1) == paid_on
    # ...and it is exactly the batch of that day that covers it (booked_at < cutoff), not the
    # one before.
    assert booked_at < cutoff_for(paid_on, T1)
    assert not booked_at < cutoff_for(paid_on - timedelta(days=1), T1)


def test_due_cutoff_is_the_same_all_day_so_reruns_name_the_same_batch() -> None:
    cutoffs = {due_cutoff(ist(2026, 11, 4, h, 17), T1) for h in range(24)}
    assert cutoffs == {ist(2026, 11, 4)}
    assert due_cutoff(ist(2026, 11, 4, 10), T1) <= ist(2026, 11, 4, 10)
    assert ist_date(datetime(2026, 11, 3, 18, 30, tzinfo=UTC)) == date(2026, 11, 4)
    with pytest.raises(ValueError, match="timezone-aware"):
        ist_date(datetime(2026, 11, 3, 18, 30))  # noqa: DTZ001


def test_batch_ids_are_deterministic_per_merchant_currency_cutoff_and_kind() -> None:
    cutoff = ist(2026, 11, 4)
    assert batch_id_for(M, "INR", cutoff, instant=False) == "stl_kirana_mart_INR_20261103T183000Z"
    assert batch_id_for(M, "INR", cutoff, instant=True).startswith("sti_kirana_mart_INR_")
    assert (
        batch_id_for(M, "INR", cutoff + timedelta(microseconds=5), instant=False)
        == "stl_kirana_mart_INR_20261103T183000.000005Z"
    )


def test_compute_batch_refuses_lines_booked_at_or_after_the_cutoff() -> None:
    traffic = Traffic()
    lines = traffic.capture("pay_late", 1_000_00, ist(2026, 11, 4, 0, 0, 0))
    with pytest.raises(ValueError, match="after the cutoff"):
        compute_batch(
            merchant_id=M,
            currency="INR",
            cutoff=ist(2026, 11, 4),
            lines=lines,
            open_holds=(),
            schedule=T1,
        )


# ---------------------------------------------------------------------------------------------
# Batch arithmetic, worked examples
# ---------------------------------------------------------------------------------------------


def day_of_traffic() -> tuple[Traffic, list[LedgerLine]]:
    """3 Nov (IST), card at 190 bp, merchant 27 / gateway 29 (IGST 18 %):

    * pay_a captures ₹1,000.00 = 100000: fee half_up(100000 × 1.9 %) = 1900, IGST
      half_up(1900 × 18 %) = 342 → net 97758;
    * pay_b captures ₹2,499.99 = 249999: fee half_up(4749.981) = 4750, IGST half_up(855.0) =
      855 → net 244394;
    * pay_a refunds ₹200.00 = 20000 (fee retained: nothing comes back);
    * pay_b is disputed for ₹500.00 = 50000 (pending → reserve).
    """
    t = Traffic()
    lines = [
        *t.capture("pay_a", 100_000, ist(2026, 11, 3, 9, 15)),
        *t.capture("pay_b", 249_999, ist(2026, 11, 3, 11, 40)),
        *t.refund("pay_a", "rfd_a000000001", 20_000, ist(2026, 11, 3, 15, 5)),
        *t.step("pay_b", OpenDispute("dsp_b000000001", 50_000, "INR"), ist(2026, 11, 3, 22, 0)),
    ]
    return t, lines


def test_a_day_of_traffic_nets_to_the_paisa() -> None:
    _, lines = day_of_traffic()
    batch = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=cutoff_for(date(2026, 11, 4), T1),
        lines=lines,
        open_holds=(),
        schedule=T1,
    )
    assert batch is not None
    assert batch.batch_id == "stl_kirana_mart_INR_20261103T183000Z"
    assert batch.settlement_date == date(2026, 11, 4)
    # captured 100000 + 249999 = 349999; fees 1900 + 4750 = 6650; GST 342 + 855 = 1197;
    # base net = 349999 − 20000 − 50000 − 6650 − 1197 = 272152.
    t = batch.totals
    assert (t.captured_minor, t.refunds_minor, t.disputes_minor) == (349_999, 20_000, 50_000)
    assert (t.fees_minor, t.gst_minor, t.adjustments_minor) == (6_650, 1_197, 0)
    assert t.base_net_minor == 272_152
    assert batch.net_minor == 272_152
    # Line items, one per journal entry, oldest first.
    items = [
        (i.payment_id, i.line_type, i.gross_minor, i.fee_minor, i.gst_minor, i.net_minor)
        for i in batch.items
    ]
    assert items == [
        (pid("pay_a"), "capture", 100_000, 1_900, 342, 97_758),
        (pid("pay_b"), "capture", 249_999, 4_750, 855, 244_394),
        (pid("pay_a"), "refund", -20_000, 0, 0, -20_000),
        (pid("pay_b"), "dispute_hold", -50_000, 0, 0, -50_000),
    ]
    assert sum(i.net_minor for i in batch.items) == batch.net_minor
    assert verify_batch(batch, view_for(batch)) == ()
    assert decide_status(batch, ()) == "payout_pending"


def test_the_batch_entries_clear_the_merchant_accounts_into_available_then_the_bank() -> None:
    traffic, lines = day_of_traffic()
    batch = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=ist(2026, 11, 4),
        lines=lines,
        open_holds=(),
        schedule=T1,
    )
    assert batch is not None
    entry = settlement_entry(batch)
    instruction = payout_instruction_entry(batch)
    paid = payout_completion_entry(batch.batch_id, M, "INR", batch.net_minor)
    assert entry is not None and instruction is not None
    assert entry.entry_id == batch.batch_id and entry.kind == "settlement"
    assert instruction.entry_id == f"{batch.batch_id}.payout"
    assert paid.entry_id == f"{batch.batch_id}.paid"
    # The settlement entry alone: pending −(349999 − 50000) = −299999 cleared by +299999;
    # refunds 20000, fees 6650, GST 1197 cleared; available gets the net 272152.
    assert balances([entry]) == {
        (M, "pending"): 299_999,
        (M, "refunds"): -20_000,
        (M, "fees"): -6_650,
        (M, "gst_payable"): -1_197,
        (M, "available"): -272_152,
    }
    # With the day's own entries: the merchant's settled accounts are all back to zero, the
    # disputed 50000 stays in reserve, and after the payout the escrow paid out the net.
    after = balances([*traffic.entries, entry, instruction, paid])
    assert all(after.get((M, k), 0) == 0 for k in (*SETTLED_KINDS, "available"))
    assert after[(M, "reserve")] == -50_000
    assert ("platform", "settlement_payable") not in after
    assert after[("platform", "escrow_bank")] == -272_152


def test_instant_settlement_charges_its_fee_and_gst_on_the_amount_settled() -> None:
    """Merchant and gateway both in Karnataka (29): CGST 9 % + SGST 9 %.

    pay_i captures ₹10,000.00 = 1000000 at 190 bp: fee 19000, CGST = SGST = half_up(1710) =
    1710 → net 1000000 − 19000 − 3420 = 977580.  Instant fee at 25 bp on 977580 =
    half_up(2443.95) = 2444; CGST = SGST = half_up(219.96) = 220 → GST 440.
    Net paid = 977580 − 2444 − 440 = 974696."""
    terms = FeeTerms(MDR, "card", merchant_state="29", gateway_state="29")
    now = ist(2026, 11, 3, 16, 20, 5)
    lines = Traffic(terms=terms).capture("pay_i", 1_000_000, ist(2026, 11, 3, 16, 0))
    schedule = SettlementSchedule(instant_enabled=True)
    instant = InstantTerms(MDR, "29", "29")
    batch = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=now,
        lines=lines,
        open_holds=(),
        schedule=schedule,
        instant=instant,
    )
    assert batch is not None and batch.instant
    assert batch.batch_id == "sti_kirana_mart_INR_20261103T105005Z"
    assert batch.settlement_date == date(2026, 11, 3)
    assert batch.totals.base_net_minor == 977_580
    assert batch.instant_fee_minor == 2_444
    assert batch.instant_fee_gst is not None
    assert (batch.instant_fee_gst.cgst_minor, batch.instant_fee_gst.sgst_minor) == (220, 220)
    assert batch.net_minor == 974_696
    entry = settlement_entry(batch)
    assert balances([entry]) == {
        (M, "pending"): 1_000_000,
        (M, "fees"): -19_000,
        (M, "gst_payable"): -3_420,
        ("platform", "fee_income"): -2_444,
        ("platform", "gst_output_cgst"): -220,
        ("platform", "gst_output_sgst"): -220,
        (M, "available"): -974_696,
    }
    assert verify_batch(batch, view_for(batch)) == ()
    with pytest.raises(InstantSettlementRefused, match="not enabled"):
        compute_batch(
            merchant_id=M,
            currency="INR",
            cutoff=now,
            lines=lines,
            open_holds=(),
            schedule=T1,
            instant=instant,
        )


# ---------------------------------------------------------------------------------------------
# Rolling reserve across days
# ---------------------------------------------------------------------------------------------


def test_rolling_reserve_is_withheld_for_n_days_then_released_by_a_later_batch() -> None:
    """5 % (500 bp) held for 7 days, T+1, IGST merchant.

    Day 1 (booked 3 Nov, paid 4 Nov): capture 100000 → fee 1900, GST 342, base net 97758;
    withheld half_up(5 % × 100000) = 5000; paid 92758.  The hold releases at its cutoff + 7
    days = 11 Nov 00:00 IST.
    Days 2–7 (booked 4–9 Nov): one capture of 10000 each (fee 190, GST half_up(34.2) = 34,
    base 9776; withheld 500; paid 9276), no release.
    Day 8 (booked 10 Nov, paid 11 Nov — cutoff 11 Nov 00:00 IST): the same capture, and the
    day-1 hold of 5000 is released: 9776 − 500 + 5000 = 14276."""
    schedule = SettlementSchedule(rolling_reserve_bps=500, rolling_reserve_days=7)
    traffic = Traffic()
    holds: list[ReserveHold] = []
    nets = []
    for day in range(8):
        booked = ist(2026, 11, 3 + day, 12)
        amount = 100_000 if day == 0 else 10_000
        lines = traffic.capture(f"pay_r{day}", amount, booked)
        cutoff = cutoff_for(settlement_date_for(booked, schedule), schedule)
        batch = compute_batch(
            merchant_id=M,
            currency="INR",
            cutoff=cutoff,
            lines=lines,
            open_holds=holds,
            schedule=schedule,
        )
        assert batch is not None
        reserve_balance = sum(h.amount_minor for h in holds)
        assert (
            verify_batch(
                batch,
                view_for(batch, open_holds=tuple(holds), rolling_reserve_minor=reserve_balance),
            )
            == ()
        )
        released = {h.hold_id for h in batch.released_holds}
        holds = [h for h in holds if h.hold_id not in released]
        if batch.reserve_withheld_minor:
            assert batch.reserve_release_at == cutoff + timedelta(days=7)
            holds.append(
                ReserveHold(
                    batch.batch_id, batch.reserve_withheld_minor, cutoff, batch.reserve_release_at
                )
            )
        nets.append((batch.reserve_withheld_minor, batch.reserve_released_minor, batch.net_minor))
    assert nets[0] == (5_000, 0, 92_758)
    assert nets[1:7] == [(500, 0, 9_276)] * 6
    assert nets[7] == (500, 5_000, 14_276)
    # Still held after the eight batches: 5000 + 7 × 500 − 5000 = 3500.
    assert sum(h.amount_minor for h in holds) == 3_500


def test_a_release_alone_makes_a_batch_and_pays_the_reserve_back() -> None:
    hold = ReserveHold("stl_old", 7_500, ist(2026, 10, 27), ist(2026, 11, 3))
    batch = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=ist(2026, 11, 4),
        lines=[],
        open_holds=[hold],
        schedule=SettlementSchedule(rolling_reserve_bps=500, rolling_reserve_days=7),
    )
    assert batch is not None and batch.net_minor == 7_500
    assert balances([settlement_entry(batch)]) == {
        (M, "rolling_reserve"): 7_500,
        (M, "available"): -7_500,
    }
    # Nothing to settle and nothing due: no batch at all.
    assert (
        compute_batch(
            merchant_id=M,
            currency="INR",
            cutoff=ist(2026, 11, 2),
            lines=[],
            open_holds=[hold],
            schedule=T1,
        )
        is None
    )


def test_the_reserve_never_turns_a_batch_negative() -> None:
    """Capture 10000 (fee 190, GST 34 → 9776) and refund 9700 the same day: base net 76.
    5 % of the gross would be 500, capped at 76 → net 0, nothing to pay."""
    t = Traffic()
    lines = [
        *t.capture("pay_c", 10_000, ist(2026, 11, 3, 10)),
        *t.refund("pay_c", "rfd_c000000001", 9_700, ist(2026, 11, 3, 11)),
    ]
    batch = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=ist(2026, 11, 4),
        lines=lines,
        open_holds=(),
        schedule=SettlementSchedule(rolling_reserve_bps=500, rolling_reserve_days=7),
    )
    assert batch is not None
    assert (batch.totals.base_net_minor, batch.reserve_withheld_minor, batch.net_minor) == (
        76,
        76,
        0,
    )
    assert decide_status(batch, ()) == "settled"
    assert payout_instruction_entry(batch) is None


# ---------------------------------------------------------------------------------------------
# Negative net: carried forward
# ---------------------------------------------------------------------------------------------


def test_refunds_beyond_the_day_s_captures_carry_the_debt_forward() -> None:
    """Day 1 (3 Nov): pay_x captures 500000 → fee 9500, GST 1710, net 488790; settled 4 Nov.
    Day 2 (4 Nov): pay_x refunds 300000; pay_y captures 100000 (net 97758) → base net
    97758 − 300000 = −202242 < 0: carried forward, nothing posted, the lines stay unsettled;
    even the due reserve hold of 1000 is not released (−201242 would still be negative).
    Day 3 (5 Nov): pay_z captures 250000 → fee 4750, GST 855, net 244395.  The batch paid on
    6 Nov covers days 2 and 3: −202242 + 244395 = 42153, plus the hold 1000 → 43153."""
    t = Traffic()
    day1 = t.capture("pay_x", 500_000, ist(2026, 11, 3, 10))
    first = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=ist(2026, 11, 4),
        lines=day1,
        open_holds=(),
        schedule=T1,
    )
    assert first is not None and first.net_minor == 488_790
    hold = ReserveHold("stl_old", 1_000, ist(2026, 10, 1), ist(2026, 10, 8))
    day2 = [
        *t.refund("pay_x", "rfd_x000000001", 300_000, ist(2026, 11, 4, 9)),
        *t.capture("pay_y", 100_000, ist(2026, 11, 4, 18)),
    ]
    second = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=ist(2026, 11, 5),
        lines=day2,
        open_holds=[hold],
        schedule=T1,
    )
    assert second is not None
    assert second.totals.base_net_minor == -202_242
    assert second.net_minor == -202_242
    assert second.released_holds == () and second.reserve_withheld_minor == 0
    assert (
        verify_batch(second, view_for(second, open_holds=(hold,), rolling_reserve_minor=1_000))
        == ()
    )
    assert decide_status(second, ()) == "carried_forward"
    with pytest.raises(ValueError, match="negative"):
        payout_instruction_entry(second)
    day3 = t.capture("pay_z", 250_000, ist(2026, 11, 5, 12))
    third = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=ist(2026, 11, 6),
        lines=[*day2, *day3],
        open_holds=[hold],
        schedule=T1,
    )
    assert third is not None
    assert third.totals.base_net_minor == 42_153
    assert third.net_minor == 43_153
    assert decide_status(third, ()) == "payout_pending"


# ---------------------------------------------------------------------------------------------
# The check against the ledger
# ---------------------------------------------------------------------------------------------


def _batch() -> SettlementBatch:
    _, lines = day_of_traffic()
    batch = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=ist(2026, 11, 4),
        lines=lines,
        open_holds=(),
        schedule=T1,
    )
    assert batch is not None
    return batch


def test_a_line_that_differs_from_the_ledger_by_one_paisa_holds_the_batch() -> None:
    batch = _batch()
    faithful = view_for(batch)
    first_fee = next(i for i, line in enumerate(batch.lines) if line.account_kind == "fees")
    lines = list(batch.lines)
    lines[first_fee] = replace(lines[first_fee], amount_minor=lines[first_fee].amount_minor - 1)
    tampered = replace(batch, lines=tuple(lines))
    reasons = verify_batch(tampered, faithful)
    assert "fees: lines sum to 6649 paise, the ledger to 6650" in reasons
    assert any("not the sum of the lines" in r for r in reasons)
    assert any("differs from the ledger" in r for r in reasons)
    assert decide_status(tampered, reasons) == "held"


def test_other_mismatches_hold_the_batch_and_say_why() -> None:
    batch = _batch()
    fee_posting = next(line for line in batch.lines if line.account_kind == "fees")
    cases = {
        "hash chain: e1: entry or postings changed": view_for(
            batch, chain_problems=("e1: entry or postings changed",)
        ),
        f"posting {fee_posting.posting_id} was already settled by stl_other": view_for(
            batch, settled_by={fee_posting.posting_id: "stl_other"}
        ),
        f"posting {fee_posting.posting_id} is not in the ledger": view_for(
            batch,
            found={p.posting_id: p for p in batch.lines if p != fee_posting},
        ),
        "merchant kirana_mart has no payout bank account": view_for(batch, payout_account=None),
        "open reserve holds total 0 paise, the ledger's rolling reserve 100": view_for(
            batch, rolling_reserve_minor=100
        ),
    }
    for reason, view in cases.items():
        assert reason in verify_batch(batch, view), reason
    # A line left out of an entry the batch covers (the fee of a capture: overpaying).
    rest = tuple(p for p in batch.lines if p != fee_posting)
    recomputed = compute_batch(
        merchant_id=M, currency="INR", cutoff=batch.cutoff, lines=rest, open_holds=(), schedule=T1
    )
    assert recomputed is not None
    partial = replace(batch, lines=rest, totals=recomputed.totals)
    reasons = verify_batch(partial, view_for(batch, account_sums=view_for(partial).account_sums))
    assert any(f"covered in part: ['{fee_posting.posting_id}']" in r for r in reasons)


# ---------------------------------------------------------------------------------------------
# Bank details and UTRs
# ---------------------------------------------------------------------------------------------


def test_utrs_are_22_characters_with_a_real_date_between_instruction_and_today() -> None:
    on, today = date(2026, 11, 4), date(2026, 11, 5)
    assert validate_utr("HDFCR52026110412345678", instructed_on=on, today=today)
    assert validate_utr("SBINN02026110500000001", instructed_on=on, today=today)
    bad = {
        "HDFCR5202611041234567": "22-character",  # 21 characters
        "hdfcr52026110412345678": "22-character",  # lower case
        "HDFCX52026110412345678": "22-character",  # neither NEFT nor RTGS
        "HDFCR52026113112345678": "no real date",  # 31 November
        "HDFCR52026110312345678": "outside",  # before the instruction
        "HDFCR52026110612345678": "outside",  # in the future
    }
    for utr, message in bad.items():
        with pytest.raises(InvalidUtr, match=message):
            validate_utr(utr, instructed_on=on, today=today)


def test_account_numbers_are_masked_and_ifscs_checked() -> None:
    assert mask_account_number("50100123451234") == "XXXXXXXXXX1234"
    assert validate_ifsc("HDFC0001234") == "HDFC0001234"
    for bad in ("1234", "5010012345123456789", "5010a123451234"):
        with pytest.raises(InvalidBankDetails):
            mask_account_number(bad)
    for bad in ("HDFC1001234", "HDF00001234", "hdfc0001234"):
        with pytest.raises(InvalidBankDetails):
            validate_ifsc(bad)


# ---------------------------------------------------------------------------------------------
# Reports and the webhook event
# ---------------------------------------------------------------------------------------------


def _report(batch: SettlementBatch) -> BatchReport:
    return BatchReport(
        batch_id=batch.batch_id,
        merchant_id=batch.merchant_id,
        currency=batch.currency,
        cutoff=batch.cutoff,
        settlement_date=batch.settlement_date,
        instant=batch.instant,
        status="payout_pending",
        hold_reason=None,
        items=batch.items,
        totals=batch.totals,
        reserve_withheld_minor=batch.reserve_withheld_minor,
        reserve_released_minor=batch.reserve_released_minor,
        instant_fee_minor=batch.instant_fee_minor,
        instant_fee_gst_minor=batch.instant_fee_gst_minor,
        net_minor=batch.net_minor,
        updated_at=ist(2026, 11, 4, 10),
        payout_amount_minor=batch.net_minor,
        beneficiary="XXXXXXXX1234",
        ifsc="HDFC0001234",
    )


def test_reports_add_up_to_the_net_in_csv_and_json() -> None:
    # Day-of-traffic batch (net 272152) with a 5 % reserve (17500 of 349999 → half_up(17499.95))
    # and a released hold of 3000: 272152 − 17500 + 3000 = 257652.
    _, lines = day_of_traffic()
    hold = ReserveHold("stl_old", 3_000, ist(2026, 10, 20), ist(2026, 10, 27))
    batch = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=ist(2026, 11, 4),
        lines=lines,
        open_holds=[hold],
        schedule=SettlementSchedule(rolling_reserve_bps=500, rolling_reserve_days=7),
    )
    assert batch is not None
    assert (batch.reserve_withheld_minor, batch.net_minor) == (17_500, 257_652)
    report = _report(batch)
    rows = report_rows(report)
    assert [r.line_type for r in rows] == [
        "capture",
        "capture",
        "refund",
        "dispute_hold",
        "rolling_reserve_withheld",
        "rolling_reserve_released",
    ]
    assert all(
        r.net_minor == r.gross_minor - r.fee_minor - r.gst_minor - r.reserve_minor for r in rows
    )
    assert sum(r.net_minor for r in rows) == 257_652

    parsed = list(csv.DictReader(io.StringIO(render_csv(report))))
    *body, total = parsed
    assert total["type"] == "TOTAL"
    for column in ("gross_minor", "fee_minor", "gst_minor", "reserve_minor", "net_minor"):
        assert int(total[column]) == sum(int(r[column]) for r in body), column
    assert int(total["net_minor"]) == 257_652
    assert body[0]["payment_id"] == pid("pay_a") and body[0]["net_minor"] == "97758"

    document = json.loads(render_json(report))
    assert document["batch"]["net_minor"] == 257_652
    assert document["totals"]["net_minor"] == 257_652
    assert document["totals"]["fee_minor"] == sum(line["fee_minor"] for line in document["lines"])
    assert document["batch"]["payout"]["beneficiary"] == "XXXXXXXX1234"

    event = settlement_event(report)
    assert event["event_type"] == "settlement.payout_pending"
    assert event["event_id"] == f"evt_{batch.batch_id}_payout_pending"
    assert event["data"]["net_minor"] == 257_652
    json.dumps(event)  # serializable as it is

    # The topic events: created now, paid only once the bank's UTR is recorded.
    created = settlement_created_event(report)
    assert (created.event_type, created.event_id) == (
        "settlement.created",
        f"evt_{batch.batch_id}_created",
    )
    assert (created.net_minor, created.status, created.captured_minor) == (
        257_652,
        "payout_pending",
        batch.totals.captured_minor,
    )
    with pytest.raises(ValueError, match="not paid"):
        settlement_paid_event(report)
    utr = "HDFCN52026110412345678"
    paid = settlement_paid_event(
        replace(report, status="paid", utr=utr, paid_at=ist(2026, 11, 4, 15))
    )
    assert (paid.event_type, paid.utr, paid.amount_minor) == ("settlement.paid", utr, 257_652)
    assert paid.event_id == f"evt_{batch.batch_id}_paid"


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    captures=st.lists(st.integers(100, 5_00_000_00), min_size=0, max_size=6),
    refund_shares=st.lists(st.integers(0, 100), min_size=6, max_size=6),
    reserve_bps=st.sampled_from([0, 250, 1000]),
    due=st.lists(st.integers(1, 50_000_00), max_size=3),
)
def test_any_batch_balances_and_pays_exactly_what_its_lines_say(
    captures: list[int], refund_shares: list[int], reserve_bps: int, due: list[int]
) -> None:
    t = Traffic()
    lines: list[LedgerLine] = []
    at = ist(2026, 11, 3, 9)
    for n, amount in enumerate(captures):
        lines += t.capture(f"pay_p{n}", amount, at + timedelta(minutes=n))
        refund = amount * refund_shares[n] // 100
        if refund:
            lines += t.refund(
                f"pay_p{n}", f"rfd_p{n:010d}", refund, at + timedelta(hours=1, minutes=n)
            )
    holds = [
        ReserveHold(f"stl_h{n}", a, ist(2026, 10, 1), ist(2026, 10, 8)) for n, a in enumerate(due)
    ]
    schedule = SettlementSchedule(
        rolling_reserve_bps=reserve_bps, rolling_reserve_days=7 if reserve_bps else 0
    )
    batch = compute_batch(
        merchant_id=M,
        currency="INR",
        cutoff=ist(2026, 11, 4),
        lines=lines,
        open_holds=holds,
        schedule=schedule,
    )
    if not lines and not holds:
        assert batch is None
        return
    assert batch is not None
    assert sum(i.net_minor for i in batch.items) == -sum(line.amount_minor for line in lines)
    assert 0 <= batch.reserve_withheld_minor <= max(0, batch.totals.base_net_minor)
    view = view_for(batch, open_holds=tuple(holds), rolling_reserve_minor=sum(due))
    assert verify_batch(batch, view) == ()
    if batch.net_minor < 0:
        assert decide_status(batch, ()) == "carried_forward"
        return
    entries = [settlement_entry(batch), payout_instruction_entry(batch)]
    after = balances([*t.entries, *entries])
    # Every settled account is cleared; the reserve moved by exactly withheld − released;
    # settlement_payable holds the net.
    assert all(after.get((M, k), 0) == 0 for k in (*SETTLED_KINDS, "available"))
    assert -after.get((M, "rolling_reserve"), 0) == batch.reserve_withheld_minor - sum(due)
    assert -after.get(("platform", "settlement_payable"), 0) == batch.net_minor
