"""Refunds give back the refunded share of the fee and its GST: worked examples, written out.

Policy (docs/fees.md, "Refunds"): under ``proportional`` (the default) the cumulative fee given
back after refunds totalling ``R`` of a capture ``C`` is ``half_up(fee × R / C)``, GST is
recomputed on that fee component by component, and the refund that completes the capture gives
back exactly what remains.  Refunds are allocated to captures first in, first out.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from models.money import Money
from streams.fees import InvalidRefund, MdrSchedule, breakdown_for
from streams.ledger import (
    CAPTURE_KIND,
    FeeTerms,
    JournalEntry,
    account_owner_kind,
    charged_by,
    complete_refund_entries,
    entry_for,
    refund_fee_reversal,
)
from streams.lifecycle import (
    Authorize,
    Capture,
    Command,
    LoseDispute,
    OpenDispute,
    PaymentState,
    Refund,
    apply,
)

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
M = "kirana_mart"
CARD_190 = MdrSchedule(default_bps=200, method_bps={"card": 190})
INTER = FeeTerms(CARD_190, "card", merchant_state="27", gateway_state="29")  # IGST


def run(
    amount_minor: int, commands: list[Command], terms: FeeTerms
) -> tuple[list[JournalEntry], PaymentState]:
    """Apply ``commands`` to a new card payment and post what each step emits, refunds
    completed with their reversal (charges read back from the capture entries)."""
    state = PaymentState.new(
        payment_id="pay_" + "a" * 26,
        merchant_id=M,
        amount=Money(minor=amount_minor, currency="INR"),
        method_type="card",
    )
    posted: list[JournalEntry] = []
    for i, command in enumerate(commands):
        step = apply(state, command, now=NOW + timedelta(minutes=i))
        state = step.state
        entries = [e for e in (entry_for(ev, terms) for ev in step.events) if e is not None]
        charged = {
            e.entry_id: charged_by(e, terms.merchant_state, terms.gateway_state)
            for e in posted
            if e.kind == CAPTURE_KIND
        }
        posted.extend(complete_refund_entries(state, entries, terms, charged))
    return posted, state


def legs(entry: JournalEntry) -> dict[tuple[str, str], int]:
    out: Counter[tuple[str, str]] = Counter()
    for p in entry.postings:
        out[account_owner_kind(p.account_id)] += p.amount_minor
    return dict(out)


def balances(entries: list[JournalEntry]) -> dict[tuple[str, str], int]:
    total: Counter[tuple[str, str]] = Counter()
    for e in entries:
        assert sum(p.amount_minor for p in e.postings) == 0
        for key, value in legs(e).items():
            total[key] += value
    return {k: v for k, v in total.items() if v}


def merchant_net(entries: list[JournalEntry]) -> int:
    """What the merchant is owed: −(pending + reserve) − refunds − fees − GST payable."""
    b = balances(entries)
    return -sum(b.get((M, k), 0) for k in ("pending", "reserve", "refunds", "fees", "gst_payable"))


def test_three_thirds_and_a_paisa_give_back_fee_and_igst_exactly() -> None:
    # ₹1,000.00 at 190 bp, inter-state: fee ₹19.00, IGST ₹3.42.  Refunds ₹333.33, ₹333.33,
    # ₹333.33, ₹0.01.  Cumulative targets: half_up(1900 × 33333/100000) = 633 (IGST 113.94 →
    # 114); 66666 → 1266.654 → 1267 (IGST 228.06 → 228); 99999 → 1899.981 → 1900 (IGST 342);
    # the last paisa completes the capture and has nothing left to give back.
    refunds: list[Command] = [Refund(f"rfd_000000000{n}", 333_33, "INR") for n in range(3)]
    entries, _ = run(
        1_000_00,
        [
            Authorize(),
            Capture("cap_0000000001", 1_000_00, "INR"),
            *refunds,
            Refund("rfd_0000000009", 1, "INR"),
        ],
        INTER,
    )
    kinds = [e.kind for e in entries]
    assert kinds == ["authorization", "capture", "refund", "refund", "refund", "refund"]
    given_back = [
        (-legs(e).get((M, "fees"), 0), -legs(e).get((M, "gst_payable"), 0)) for e in entries[2:]
    ]
    assert given_back == [(633, 114), (634, 114), (633, 114), (0, 0)]
    assert legs(entries[2]) == {
        (M, "refunds"): 333_33,
        ("platform", "processor_receivable"): -333_33,
        ("platform", "fee_income"): 633,
        (M, "fees"): -633,
        ("platform", "gst_output_igst"): 114,
        (M, "gst_payable"): -114,
    }
    # Everything refunded: fee, GST and the receivable all back to zero, refunds = captured.
    assert balances(entries) == {(M, "refunds"): 1_000_00, (M, "pending"): -1_000_00}
    assert merchant_net(entries) == 0


def test_intra_state_half_and_half_worked_example() -> None:
    # ₹1,100.00 at 175 bp = fee ₹19.25, merchant and gateway both in 29: CGST = SGST =
    # half_up(173.25) = 173.  Half refunded: fee half_up(962.5) = 963, CGST/SGST on 963 =
    # half_up(86.67) = 87 each.  The rest: fee 962, CGST/SGST 173 − 87 = 86 each (9 % of 962
    # would be 87: the remainder rule gives back exactly what was charged, no more).
    terms = FeeTerms(MdrSchedule(default_bps=175), "card", merchant_state="29", gateway_state="29")
    entries, _ = run(
        1_100_00,
        [
            Authorize(),
            Capture("cap_0000000001", 1_100_00, "INR"),
            Refund("rfd_0000000001", 550_00, "INR"),
            Refund("rfd_0000000002", 550_00, "INR"),
        ],
        terms,
    )
    capture, first, second = entries[1], entries[2], entries[3]
    assert (legs(capture)[(M, "fees")], legs(capture)[("platform", "gst_output_cgst")]) == (
        1925,
        -173,
    )
    assert legs(first)[(M, "fees")] == -963
    assert legs(first)[("platform", "gst_output_cgst")] == 87
    assert legs(first)[("platform", "gst_output_sgst")] == 87
    assert legs(second)[(M, "fees")] == -962
    assert legs(second)[("platform", "gst_output_cgst")] == 86
    assert legs(second)[("platform", "gst_output_sgst")] == 86
    assert merchant_net(entries) == 0


def test_a_refund_spanning_two_partial_captures_is_allocated_first_in_first_out() -> None:
    # Captures ₹400 (fee 760, IGST 136.8 → 137) and ₹600 (fee 1140, IGST 205.2 → 205).
    # Refund ₹500: all of the first capture (760 + 137 back) and ₹100 of the second
    # (half_up(1140 × 100 / 600) = 190, IGST half_up(34.2) = 34): 950 and 171 in all.  The
    # last ₹500 completes the second capture: 950 and 171 again — 1,900 and 342 in total.
    entries, state = run(
        1_000_00,
        [
            Authorize(),
            Capture("cap_0000000001", 400_00, "INR", final=False),
            Capture("cap_0000000002", 600_00, "INR"),
            Refund("rfd_0000000001", 500_00, "INR"),
            Refund("rfd_0000000002", 500_00, "INR"),
        ],
        INTER,
    )
    charged = [legs(e) for e in entries if e.kind == "capture"]
    assert [(c[(M, "fees")], c[(M, "gst_payable")]) for c in charged] == [(760, 137), (1140, 205)]
    refunds = [legs(e) for e in entries if e.kind == "refund"]
    assert [(-r[(M, "fees")], -r[(M, "gst_payable")]) for r in refunds] == [(950, 171), (950, 171)]
    assert state.refunded_minor == state.captured_minor == 1_000_00
    assert merchant_net(entries) == 0


def test_partial_refund_leaves_merchant_with_captures_minus_refunds_fees_and_gst() -> None:
    entries, _ = run(
        2_500_00,
        [
            Authorize(),
            Capture("cap_0000000001", 2_500_00, "INR"),
            Refund("rfd_0000000001", 1_000_00, "INR"),
        ],
        INTER,
    )
    # Charged: fee half_up(2500_00 × 1.9 %) = 4750, IGST 855.  Back for 40 %: fee 1900, IGST
    # 342.  Left: fee 2850, IGST 513.  Net: 250000 − 100000 − 2850 − 513 = 146637.
    b = balances(entries)
    assert (b[(M, "fees")], b[(M, "gst_payable")]) == (2850, 513)
    assert merchant_net(entries) == 2_500_00 - 1_000_00 - 2850 - 513 == 1_466_37


def test_retained_policy_gives_nothing_back() -> None:
    terms = FeeTerms(
        MdrSchedule(default_bps=200, method_bps={"card": 190}, fee_on_refund="retained"),
        "card",
        merchant_state="27",
        gateway_state="29",
    )
    entries, _ = run(
        1_000_00,
        [
            Authorize(),
            Capture("cap_0000000001", 1_000_00, "INR"),
            Refund("rfd_0000000001", 1_000_00, "INR"),
        ],
        terms,
    )
    assert legs(entries[-1]) == {
        (M, "refunds"): 1_000_00,
        ("platform", "processor_receivable"): -1_000_00,
    }
    assert merchant_net(entries) == -(19_00 + 3_42)  # the fee and its GST stay charged


def test_the_reversal_follows_what_was_charged_not_todays_schedule() -> None:
    entries, state = run(1_000_00, [Authorize(), Capture("cap_0000000001", 1_000_00, "INR")], INTER)
    capture = entries[-1]
    # The merchant's rate went up to 250 bp after the capture; the refund still gives back
    # the 190 bp fee that was charged.
    dearer = FeeTerms(MdrSchedule(default_bps=250), "card", merchant_state="27", gateway_state="29")
    step = apply(state, Refund("rfd_0000000001", 1_000_00, "INR"), now=NOW + timedelta(hours=1))
    (refund,) = [e for e in (entry_for(ev, dearer) for ev in step.events) if e is not None]
    charged = {capture.entry_id: charged_by(capture, "27", "29")}
    (done,) = complete_refund_entries(step.state, [refund], dearer, charged)
    assert (-legs(done)[(M, "fees")], -legs(done)[(M, "gst_payable")]) == (19_00, 3_42)


def test_a_chargeback_keeps_the_fee() -> None:
    entries, _ = run(
        1_000_00,
        [
            Authorize(),
            Capture("cap_0000000001", 1_000_00, "INR"),
            OpenDispute("dsp_0000000001", 1_000_00, "INR"),
            LoseDispute("dsp_0000000001"),
        ],
        INTER,
    )
    b = balances(entries)
    assert (b[(M, "fees")], b[(M, "gst_payable")]) == (19_00, 3_42)
    assert (M, "pending") not in b and (M, "reserve") not in b
    assert merchant_net(entries) == -(19_00 + 3_42)


def test_refund_fee_reversal_refuses_more_than_captured_and_is_empty_when_retained() -> None:
    charged = breakdown_for(CARD_190, 1_000_00, "card", merchant_state="27", gateway_state="29")
    with pytest.raises(InvalidRefund):
        refund_fee_reversal("proportional", [charged], 1, refunded_before_minor=1_000_00)
    with pytest.raises(InvalidRefund):
        refund_fee_reversal("proportional", [charged], 0)
    assert refund_fee_reversal("retained", [charged], 500_00) == ()
