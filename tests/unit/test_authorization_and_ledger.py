from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.events import PaymentAuthorized, PaymentDeclined, PaymentRequested
from models.ids import new_event_id, payment_id_for
from models.methods import CardMethod, NetbankingMethod, UpiMethod
from models.money import Money
from streams.authorization import process_requested
from streams.ledger import JournalEntry, Posting, UnbalancedEntry, account_owner_kind, entry_for


def request(minor: int, method: CardMethod | UpiMethod | NetbankingMethod) -> PaymentRequested:
    return PaymentRequested(
        event_id=new_event_id(),
        payment_id=payment_id_for("shop_one", f"k{minor}{method.type}"),
        merchant_id="shop_one",
        occurred_at=datetime(2026, 1, 5, 10, tzinfo=UTC),
        request_fingerprint="c" * 64,
        amount=Money(minor=minor, currency="INR"),
        method=method,
    )


def card(last4: str) -> CardMethod:
    return CardMethod(token="tok_test_card", bin="411111", last4=last4)


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (request(10_000, card("4242")), None),
        (request(10_000, card("0002")), "do_not_honor"),
        (request(10_000, card("9995")), "insufficient_funds"),
        (request(1_00_000_00, UpiMethod(vpa="ab@okaxis")), None),
        (request(1_00_000_01, UpiMethod(vpa="ab@okaxis")), "amount_over_method_limit"),
        (request(500, UpiMethod(vpa="invalid.user@okaxis")), "invalid_vpa"),
        (request(10_00_000_00, NetbankingMethod(bank_code="HDFC")), None),
    ],
)
def test_authorization_rules(req: PaymentRequested, code: str | None) -> None:
    outcome = process_requested(req)
    if code is None:
        assert isinstance(outcome, PaymentAuthorized)
    else:
        assert isinstance(outcome, PaymentDeclined) and outcome.decline_code == code
    # Deciding a redelivered request gives the very same event.
    assert process_requested(req) == outcome


def test_authorized_payment_posts_a_balanced_entry_declined_posts_none() -> None:
    ok = process_requested(request(149_900, card("4242")))
    entry = entry_for(ok)
    assert entry is not None
    assert sum(p.amount_minor for p in entry.postings) == 0
    by_owner = {account_owner_kind(p.account_id): p.amount_minor for p in entry.postings}
    assert by_owner == {
        ("platform", "authorization_holds"): 149_900,
        ("shop_one", "authorized"): -149_900,
    }
    assert entry_for(process_requested(request(149_900, card("0002")))) is None


def test_unbalanced_entry_cannot_be_built() -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry(
            "e1", "p", "m", "authorization", "INR", (Posting("a", "x", 5), Posting("b", "y", -4))
        )
