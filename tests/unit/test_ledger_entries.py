"""What each lifecycle event posts, on worked examples, and that a whole lifecycle nets out."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from models.events import PaymentRequested
from models.ids import new_event_id, payment_id_for
from models.methods import CardMethod
from models.money import Money
from models.topics import PAYMENTS_LIFECYCLE
from streams.fees import MdrSchedule
from streams.ledger import FeeTerms, JournalEntry, account_owner_kind, entry_for
from streams.lifecycle import (
    Authorize,
    Capture,
    LoseDispute,
    OpenDispute,
    PaymentState,
    Refund,
    WinDispute,
    apply,
)

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
SCHEDULE = MdrSchedule(default_bps=200, method_bps={"card": 190})
# Merchant in Maharashtra (27), gateway in Karnataka (29): inter-state, so IGST.
TERMS = FeeTerms(SCHEDULE, "card", merchant_state="27", gateway_state="29")


def balances(entries: list[JournalEntry]) -> dict[tuple[str, str], int]:
    """Signed balance per (owner, kind) over the entries: debit positive, credit negative."""
    total: Counter[tuple[str, str]] = Counter()
    for entry in entries:
        assert sum(p.amount_minor for p in entry.postings) == 0
        for p in entry.postings:
            total[account_owner_kind(p.account_id)] += p.amount_minor
    return {account: minor for account, minor in total.items() if minor != 0}


def run(commands: list[object]) -> list[JournalEntry]:
    request = PaymentRequested(
        event_id=new_event_id(),
        payment_id=payment_id_for("kirana_mart", "order-77"),
        merchant_id="kirana_mart",
        occurred_at=NOW,
        request_fingerprint="f" * 64,
        amount=Money(minor=1_000_00, currency="INR"),
        method=CardMethod(token="tok_card_0001", bin="411111", last4="4242", network="visa"),
    )
    state = PaymentState.from_request(request)
    entries = []
    for i, command in enumerate(commands):
        step = apply(state, command, now=NOW + timedelta(minutes=i))  # type: ignore[arg-type]
        state = step.state
        for event in step.events:
            entry = entry_for(event, TERMS)
            if entry is not None:
                entries.append(entry)
    return entries


def test_capture_books_receivable_fee_and_igst_worked_example() -> None:
    # ₹1,000.00 card at 190 bps: fee ₹19.00; IGST 18% = ₹3.42 (inter-state); net ₹977.58.
    entries = run([Authorize(), Capture("cap_0000000001", 1_000_00, "INR", final=True)])
    assert [e.kind for e in entries] == ["authorization", "capture"]
    assert balances(entries) == {
        ("platform", "processor_receivable"): 1_000_00,
        ("kirana_mart", "pending"): -1_000_00,
        ("kirana_mart", "fees"): 19_00,
        ("platform", "fee_income"): -19_00,
        ("kirana_mart", "gst_payable"): 3_42,
        ("platform", "gst_output_igst"): -3_42,
    }  # the hold is fully released: authorized and authorization_holds net to zero


def test_intra_state_capture_splits_cgst_and_sgst() -> None:
    # Both in Karnataka (29): CGST 9% = ₹1.71 and SGST 9% = ₹1.71 on the ₹19.00 fee.
    terms = FeeTerms(SCHEDULE, "card", merchant_state="29", gateway_state="29")
    event_entry = entry_for_capture_with(terms)
    legs = {account_owner_kind(p.account_id): p.amount_minor for p in event_entry.postings}
    assert legs[("platform", "gst_output_cgst")] == -1_71
    assert legs[("platform", "gst_output_sgst")] == -1_71
    assert ("platform", "gst_output_igst") not in legs


def entry_for_capture_with(terms: FeeTerms) -> JournalEntry:
    state = PaymentState.new(
        payment_id=payment_id_for("kirana_mart", "order-78"),
        merchant_id="kirana_mart",
        amount=Money(minor=1_000_00, currency="INR"),
        method_type="card",
    )
    state = apply(state, Authorize(), now=NOW).state
    events = apply(state, Capture("cap_0000000001", 1_000_00, "INR"), now=NOW).events
    entry = entry_for(events[0], terms)
    assert entry is not None
    return entry


def test_partial_capture_releases_the_rest_of_the_hold() -> None:
    entries = run([Authorize(), Capture("cap_0000000001", 600_00, "INR", final=True)])
    assert [e.kind for e in entries] == ["authorization", "capture", "release"]
    b = balances(entries)
    assert ("kirana_mart", "authorized") not in b and ("platform", "authorization_holds") not in b
    assert b[("kirana_mart", "pending")] == -600_00


def test_refunds_and_a_lost_dispute_leave_the_receivable_exact() -> None:
    entries = run(
        [
            Authorize(),
            Capture("cap_0000000001", 1_000_00, "INR", final=True),
            Refund("rfd_0000000001", 250_00, "INR"),
            OpenDispute("dsp_0000000001", 300_00, "INR"),
            LoseDispute("dsp_0000000001"),
        ]
    )
    b = balances(entries)
    # Processors owe captured − refunded − chargebacks.
    assert b[("platform", "processor_receivable")] == 1_000_00 - 250_00 - 300_00
    assert b[("kirana_mart", "refunds")] == 250_00
    # Pending lost the disputed amount to the reserve, and the reserve paid the chargeback.
    assert b[("kirana_mart", "pending")] == -(1_000_00 - 300_00)
    assert ("kirana_mart", "reserve") not in b


def test_a_won_dispute_returns_the_money_to_pending() -> None:
    entries = run(
        [
            Authorize(),
            Capture("cap_0000000001", 1_000_00, "INR", final=True),
            OpenDispute("dsp_0000000001", 400_00, "INR"),
            WinDispute("dsp_0000000001"),
        ]
    )
    b = balances(entries)
    assert b[("kirana_mart", "pending")] == -1_000_00
    assert ("kirana_mart", "reserve") not in b


def test_entry_ids_are_event_ids_so_replays_collide() -> None:
    first = run([Authorize(), Capture("cap_0000000001", 1_000_00, "INR")])
    again = run([Authorize(), Capture("cap_0000000001", 1_000_00, "INR")])
    assert [e.entry_id for e in first] == [e.entry_id for e in again]
    assert len({p.posting_id for e in first for p in e.postings}) == sum(
        len(e.postings) for e in first
    )


@pytest.mark.parametrize("event_type", ["payment.declined", "payment.expired", "payment.failed"])
def test_events_that_move_no_money_post_nothing(event_type: str) -> None:
    path = next(p for p in PAYMENTS_LIFECYCLE.examples() if p.name.startswith(event_type))
    assert entry_for(PAYMENTS_LIFECYCLE.decode(path.read_bytes()), TERMS) is None
