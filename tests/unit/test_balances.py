"""The pure parts of the real-time balances: which postings a lifecycle event routes, how a
posting changes its account once and only once, what it adds to the live settlement view (the
same as the batch), debit decisions, and the reconciliation's differences."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import orjson
import pytest

from models.events import LedgerPosted, PaymentCaptured, PaymentRefunded
from models.money import Money
from streams import ledger
from streams.balances import (
    LIFECYCLE_ENTRY_KINDS,
    ChangelogRecord,
    EntryMismatch,
    apply_delta,
    available_minor,
    changelog_key,
    check_posted,
    debit_check,
    differences,
    ist_day,
    posting_delta,
    postings_for,
    table_balances,
    view_contribution,
)
from streams.fees import MdrSchedule
from streams.ledger import FeeTerms, JournalEntry, Posting, entry_for, merchant_account
from streams.settlement import (
    LedgerLine,
    Totals,
    add_totals,
    line_items,
    posting_totals,
    totals_of,
)

PAY = "pay_" + "a" * 26
AT = datetime(2026, 11, 26, 18, 29, 59, tzinfo=UTC)  # 23:59:59 IST on 26 November
TERMS = FeeTerms(MdrSchedule(default_bps=200), "card", merchant_state="27", gateway_state="29")


def captured(amount: int = 1_000_00, n: int = 1) -> PaymentCaptured:
    return PaymentCaptured(
        event_id=f"evt_{'c' * 19}{n}",
        payment_id=PAY,
        merchant_id="m_shop",
        occurred_at=AT,
        amount=Money(minor=amount, currency="INR"),
    )


def refunded(amount: int) -> PaymentRefunded:
    return PaymentRefunded(
        event_id=f"evt_{'r' * 20}",
        payment_id=PAY,
        merchant_id="m_shop",
        occurred_at=AT,
        refund_id="rfd_0000000001",
        amount=Money(minor=amount, currency="INR"),
    )


def test_the_posted_capture_is_routed_whole_fee_and_gst_legs_included() -> None:
    event = captured()
    posted = entry_for(event, TERMS)
    assert posted is not None
    assert check_posted(event, posted) is posted
    out = postings_for(event, posted, partition=4, offset=77)
    assert [(p.account_id, p.amount_minor) for p in out] == [
        (p.account_id, p.amount_minor) for p in posted.postings
    ]
    assert sum(p.amount_minor for p in out) == 0
    # IGST (merchant in 27, gateway in 29): 2 % fee of ₹1,000 is ₹20, GST ₹3.60.
    fees = merchant_account("m_shop", "fees", "INR")
    assert sum(p.amount_minor for p in out if p.account_id == fees) == 20_00
    assert {(p.source_partition, p.source_offset) for p in out} == {(4, 77)}
    assert [p.posting_index for p in out] == list(range(len(out)))


def test_a_missing_or_different_posted_entry_is_refused() -> None:
    event = captured()
    with pytest.raises(EntryMismatch) as missing:
        check_posted(event, None)
    assert missing.value.code == "entry_not_posted"
    posted = entry_for(event, TERMS)
    assert posted is not None
    # Another amount on the pending leg: not the entry this event determines.
    legs = [Posting(p.posting_id, p.account_id, p.amount_minor) for p in posted.postings]
    tampered = JournalEntry(
        posted.entry_id,
        posted.payment_id,
        posted.merchant_id,
        posted.kind,
        posted.currency,
        (
            Posting(legs[0].posting_id, legs[0].account_id, legs[0].amount_minor + 1),
            Posting(legs[1].posting_id, legs[1].account_id, legs[1].amount_minor - 1),
            *legs[2:],
        ),
    )
    with pytest.raises(EntryMismatch) as wrong:
        check_posted(event, tampered)
    assert wrong.value.code == "entry_mismatch"


def test_a_posting_is_applied_once_however_often_it_is_delivered() -> None:
    event = captured()
    posted = entry_for(event, TERMS)
    assert posted is not None
    first = postings_for(event, posted, partition=1, offset=10)
    again = postings_for(event, posted, partition=1, offset=10)  # a re-send after a crash
    later = postings_for(
        captured(500_00, n=2),
        entry_for(captured(500_00, n=2), TERMS) or posted,
        partition=1,
        offset=11,
    )
    pending = merchant_account("m_shop", "pending", "INR")
    state: dict[str, object] | None = None
    for message in [*first, *again, *first, *later, *again]:
        if message.account_id != pending:
            continue
        new = apply_delta(state, posting_delta(message))
        if new is not None:
            state = new
    assert state is not None
    assert state["balance_minor"] == -1_500_00  # credit-normal: owed to the merchant
    assert state["postings"] == 2
    assert available_minor(pending, -1_500_00) == 1_500_00


def posted_capture(amount: int, n: int, *, partition: int, offset: int) -> list[LedgerPosted]:
    event = captured(amount, n)
    entry = entry_for(event, TERMS)
    assert entry is not None
    return list(postings_for(event, entry, partition=partition, offset=offset))


def test_marks_are_per_source_partition() -> None:
    a = posted_capture(1_000_00, 1, partition=0, offset=900)
    b = posted_capture(200_00, 3, partition=5, offset=1)
    state = apply_delta(None, posting_delta(a[0]))
    assert state is not None
    # A lower offset from another lifecycle partition is new, not a re-send.
    assert apply_delta(state, posting_delta(b[0])) is not None
    # The same lower offset from the first partition is a re-send.
    assert apply_delta(state, posting_delta(a[0])) is None


def test_live_view_adds_up_to_the_batch_totals() -> None:
    """Totals are linear in postings: adding each posting's contribution equals the batch's
    totals of the same lines, for random captures, refunds and disputes."""
    rng = random.Random(7)
    lines: list[LedgerLine] = []
    view = Totals()
    kinds = ["capture", "refund", "dispute_hold", "dispute_release", "chargeback", "fix"]
    for n in range(200):
        entry_kind = rng.choice(kinds)
        account_kind = rng.choice(["pending", "refunds", "fees", "gst_payable"])
        amount = rng.randint(-50_000, 50_000) or 1
        account = merchant_account("m_shop", account_kind, "INR")
        lines.append(LedgerLine(f"e{n}:0", f"e{n}", PAY, entry_kind, account, amount, AT))
        view = add_totals(view, posting_totals(entry_kind, account_kind, amount))
    assert view == totals_of(line_items(lines))


def test_only_merchant_settled_accounts_feed_the_view() -> None:
    event = captured()
    posted = entry_for(event, TERMS)
    assert posted is not None
    out = postings_for(event, posted, partition=0, offset=0)
    total = Totals()
    for p in out:
        c = view_contribution(p)
        if c is not None:
            assert p.account_id.startswith("merchant:m_shop:")
            total = add_totals(total, c)
    assert total == Totals(captured_minor=1_000_00, fees_minor=20_00, gst_minor=3_60)
    assert total.base_net_minor == 1_000_00 - 20_00 - 3_60


def test_the_view_window_is_the_ist_day() -> None:
    # 18:29:59 UTC is still 26 November in India; 18:30:00 UTC is 27 November.
    assert ist_day(AT) == date(2026, 11, 26)
    one_second_later = datetime(2026, 11, 26, 18, 30, tzinfo=UTC)
    assert ist_day(one_second_later) == date(2026, 11, 27)


@pytest.mark.parametrize(
    ("available", "amount", "overdraft", "allowed", "shortfall"),
    [
        (10_000, 10_000, 0, True, 0),  # down to exactly zero
        (10_000, 10_001, 0, False, 1),  # one paisa below zero
        (10_000, 15_000, 5_000, True, 0),  # into the overdraft, to its limit
        (10_000, 15_001, 5_000, False, 1),
        (-2_000, 1, 0, False, 2_001),  # already negative
    ],
)
def test_a_debit_never_goes_below_zero_unless_overdraft_allows(
    available: int, amount: int, overdraft: int, allowed: bool, shortfall: int
) -> None:
    check = debit_check(available, amount, overdraft_limit_minor=overdraft)
    assert (check.allowed, check.shortfall_minor) == (allowed, shortfall)


def test_debit_check_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        debit_check(100, 0)
    with pytest.raises(ValueError):
        debit_check(100, 10, overdraft_limit_minor=-1)


def test_differences_list_every_account_on_either_side() -> None:
    table = {"a": 100, "b": -50, "c": 0}
    ledger = {"a": 100, "b": -40, "d": 7}
    found = differences(table, ledger)
    assert [(d.account_id, d.table_minor, d.ledger_minor, d.delta_minor) for d in found] == [
        ("b", -50, -40, -10),
        ("d", 0, 7, -7),
    ]
    assert differences(ledger, ledger) == []


def test_table_balances_read_the_latest_record_and_honour_tombstones() -> None:
    key_a, key_b = changelog_key("merchant:m:pending:INR"), changelog_key("platform:x:INR")
    changelog = {
        key_a: ChangelogRecord(2, 9, orjson.dumps({"balance_minor": -500, "marks": {}})),
        key_b: ChangelogRecord(3, 4, None),
    }
    assert table_balances(changelog) == {"merchant:m:pending:INR": -500}


def test_lifecycle_entry_kinds_are_the_ledgers() -> None:
    assert set(LIFECYCLE_ENTRY_KINDS) == set(ledger._KINDS.values())
    # A refund is one of them; wallet and settlement entries are not.
    refund = entry_for(refunded(100_00))
    assert refund is not None and refund.kind in LIFECYCLE_ENTRY_KINDS
