"""A batch of postings changes each table key once: the same balances and live-view totals as
applying the postings one by one, with one changelog record per key instead of one per posting
(streams/balances.py, ``BalancesProcessor.apply``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from models.events import LedgerPosted, PaymentCaptured
from models.money import Money
from streams.balances import (
    BalancesProcessor,
    Event,
    _BatchWrites,
    apply_delta,
    ist_day,
    posting_delta,
    postings_for,
    totals_from_json,
    totals_to_json,
    view_contribution,
)
from streams.fees import MdrSchedule
from streams.ledger import FeeTerms, entry_for
from streams.settlement import add_totals

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
TERMS = FeeTerms(MdrSchedule(default_bps=200), "card", merchant_state="27", gateway_state="29")


class CountingTable(dict[str, Any]):
    """A Faust table's dict behaviour (a missing key reads as ``{}``), counting the writes: each
    write of a real table is one changelog record."""

    writes = 0

    def __missing__(self, key: str) -> Any:
        return {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        super().__setitem__(key, value)


class FakeEvent:
    """Stands in for a Faust event: only made the current event while a key is written."""


def burst(n: int) -> list[LedgerPosted]:
    """The postings of ``n`` captures by one merchant, read from lifecycle partition 0."""
    out: list[LedgerPosted] = []
    for i in range(n):
        event = PaymentCaptured(
            event_id=f"evt_{i:024d}",
            payment_id=f"pay_{i:026d}",
            merchant_id="m_shop",
            occurred_at=AT,
            amount=Money(minor=1_000_00 + i, currency="INR"),
        )
        entry = entry_for(event, TERMS)
        assert entry is not None
        out += postings_for(event, entry, partition=0, offset=i)
    return out


def one_by_one(postings: list[LedgerPosted]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tables after applying each posting on its own, as before batching."""
    balances: dict[str, Any] = {}
    view: dict[str, Any] = {}
    for posted in postings:
        new = apply_delta(balances.get(posted.account_id), posting_delta(posted))
        if new is None:
            continue
        balances[posted.account_id] = new
        contribution = view_contribution(posted)
        if contribution is not None:
            key = f"{posted.account_id}|{ist_day(posted.occurred_at).isoformat()}"
            current = view.get(key, {})
            total = add_totals(totals_from_json(current), contribution)
            view[key] = totals_to_json(total) | {"postings": int(current.get("postings", 0)) + 1}
    return balances, view


def test_a_batch_writes_each_key_once_with_the_same_result() -> None:
    postings = burst(50)
    resent = postings[:30]  # a re-send after a crash, in the same batch
    balances_table, view_table = CountingTable(), CountingTable()
    balances, view = _BatchWrites(balances_table), _BatchWrites(view_table)
    applied = 0
    for posted in [*postings, *resent]:
        event = cast(Event, FakeEvent())
        new, _ = BalancesProcessor._apply_one(posted, event, balances, view)
        applied += new
    assert balances_table.writes == view_table.writes == 0  # nothing written mid-batch
    balances.write_back()
    view.write_back()

    expected_balances, expected_view = one_by_one([*postings, *resent])
    assert applied == len(postings)
    assert dict(balances_table) == expected_balances
    assert {k: totals_from_json(v) for k, v in view_table.items()} == {
        k: totals_from_json(v) for k, v in expected_view.items()
    }
    assert all(view_table[k]["postings"] == v["postings"] for k, v in expected_view.items())
    # One changelog record per account (and per account-day), not one per posting.
    accounts = {p.account_id for p in postings}
    assert balances_table.writes == len(accounts) < len(postings)
    assert view_table.writes == len(expected_view)
