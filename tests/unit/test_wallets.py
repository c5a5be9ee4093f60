"""Wallet rules without a database: limits, overdraft, hold transitions, entries, idempotency
fingerprints."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.ledger import JournalEntry, account_owner_kind
from streams.wallets import (
    FULL_KYC_LIMIT_MINOR,
    MIN_KYC_LIMIT_MINOR,
    CurrencyMismatch,
    ExpireHold,
    HoldAlreadySettled,
    HoldExpired,
    HoldNotFound,
    HoldState,
    HoldStatus,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidOperation,
    KycLevel,
    Load,
    OwnerType,
    Payout,
    PlaceHold,
    PostHold,
    Transfer,
    VoidHold,
    WalletError,
    WalletLimitExceeded,
    WalletNotFound,
    WalletState,
    default_balance_limit,
    entry_id_for,
    fingerprint,
    held_account,
    plan,
    wallet_account,
    wallet_id_for,
    wallets_of,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ALICE = wallet_id_for(OwnerType.CUSTOMER, "alice", "INR")
BOB = wallet_id_for(OwnerType.CUSTOMER, "bob", "INR")
SHOP = wallet_id_for(OwnerType.MERCHANT, "m_shop", "INR")


def customer(
    wallet_id: str = ALICE,
    balance: int = 0,
    *,
    kyc: KycLevel = KycLevel.FULL,
    overdraft_limit_minor: int = 0,
) -> WalletState:
    return WalletState(
        wallet_id,
        "INR",
        kyc,
        default_balance_limit(kyc),
        overdraft_limit_minor=overdraft_limit_minor,
        balance_minor=balance,
    )


def merchant(balance: int = 0) -> WalletState:
    return WalletState(SHOP, "INR", KycLevel.BUSINESS, None, balance_minor=balance)


def books(entry: JournalEntry) -> Counter[str]:
    out: Counter[str] = Counter()
    for p in entry.postings:
        out[p.account_id] += p.amount_minor
    return out


def test_ids_and_accounts() -> None:
    assert ALICE == "customer:alice:INR"
    assert wallet_account(ALICE) == "customer:alice:wallet:INR"
    assert held_account(SHOP) == "merchant:m_shop:wallet_held:INR"
    # Merchant wallet accounts parse with the ledger's own helper; customer ones with ours.
    assert account_owner_kind(wallet_account(SHOP)) == ("m_shop", "wallet")
    assert account_owner_kind(held_account(ALICE)) == ("customer:alice", "wallet_held")
    assert account_owner_kind("platform:wallet_funding:INR") == (
        "platform",
        "wallet_funding",
    )
    with pytest.raises(InvalidOperation):
        wallet_id_for(OwnerType.CUSTOMER, "Bad:Id", "INR")
    with pytest.raises(InvalidOperation):
        wallet_account("nope")


def test_rbi_limits_in_paise() -> None:
    assert FULL_KYC_LIMIT_MINOR == 200_000 * 100
    assert MIN_KYC_LIMIT_MINOR == 10_000 * 100
    assert default_balance_limit(KycLevel.BUSINESS) is None


def test_load_posts_funding_to_wallet() -> None:
    out = plan(Load("op1", ALICE, 500_00, "INR"), {ALICE: customer()}, None, NOW)
    assert out.wallets[ALICE].balance_minor == 500_00
    assert books(out.entry) == {
        "platform:wallet_funding:INR": 500_00,
        wallet_account(ALICE): -500_00,
    }
    assert out.entry.entry_id == entry_id_for("op1") == "wallet:op1"
    assert out.entry.kind == "wallet_load"


def test_load_up_to_the_limit_and_not_a_paisa_more() -> None:
    w = customer(balance=FULL_KYC_LIMIT_MINOR - 100)
    assert plan(Load("a", ALICE, 100, "INR"), {ALICE: w}, None, NOW).wallets[
        ALICE
    ].balance_minor == (FULL_KYC_LIMIT_MINOR)
    with pytest.raises(WalletLimitExceeded) as err:
        plan(Load("b", ALICE, 101, "INR"), {ALICE: w}, None, NOW)
    assert err.value.code == "wallet_limit_exceeded"


def test_min_kyc_limit_and_merchant_unlimited() -> None:
    small = customer(kyc=KycLevel.MIN)
    with pytest.raises(WalletLimitExceeded):
        plan(Load("a", ALICE, MIN_KYC_LIMIT_MINOR + 1, "INR"), {ALICE: small}, None, NOW)
    big = plan(Load("b", SHOP, 10 * FULL_KYC_LIMIT_MINOR, "INR"), {SHOP: merchant()}, None, NOW)
    assert big.wallets[SHOP].balance_minor == 10 * FULL_KYC_LIMIT_MINOR


def test_limit_applies_to_incoming_transfers_too() -> None:
    wallets = {ALICE: customer(balance=1000), BOB: customer(BOB, balance=FULL_KYC_LIMIT_MINOR)}
    with pytest.raises(WalletLimitExceeded):
        plan(Transfer("t", ALICE, BOB, 1, "INR"), wallets, None, NOW)


def test_transfer_moves_money_and_refuses_beyond_available() -> None:
    wallets = {ALICE: customer(balance=1000), SHOP: merchant()}
    out = plan(Transfer("t", ALICE, SHOP, 1000, "INR", purpose="spend"), wallets, None, NOW)
    assert out.wallets[ALICE].balance_minor == 0
    assert out.wallets[SHOP].balance_minor == 1000
    assert books(out.entry) == {wallet_account(ALICE): 1000, wallet_account(SHOP): -1000}
    assert out.entry.merchant_id == "m_shop"
    with pytest.raises(InsufficientFunds) as err:
        plan(Transfer("t2", ALICE, SHOP, 1001, "INR"), wallets, None, NOW)
    assert err.value.code == "insufficient_funds"


def test_overdraft_allows_exactly_its_limit() -> None:
    w = customer(balance=100, overdraft_limit_minor=500)
    out = plan(Payout("p", ALICE, 600, "INR"), {ALICE: w}, None, NOW)
    assert out.wallets[ALICE].available_minor == -500
    assert books(out.entry) == {wallet_account(ALICE): 600, "platform:wallet_payouts:INR": -600}
    with pytest.raises(InsufficientFunds):
        plan(Payout("p", ALICE, 601, "INR"), {ALICE: w}, None, NOW)


def test_holds_reduce_available_not_balance() -> None:
    w = customer(balance=1000)
    out = plan(PlaceHold("h", ALICE, 700, "INR", ttl_seconds=60), {ALICE: w}, None, NOW)
    after = out.wallets[ALICE]
    assert (after.balance_minor, after.held_minor, after.available_minor) == (1000, 700, 300)
    assert out.hold is not None and out.hold.expires_at == NOW + timedelta(seconds=60)
    assert books(out.entry) == {wallet_account(ALICE): 700, held_account(ALICE): -700}
    with pytest.raises(InsufficientFunds):
        plan(Transfer("t", ALICE, BOB, 301, "INR"), {ALICE: after, BOB: customer(BOB)}, None, NOW)
    with pytest.raises(InsufficientFunds):
        plan(PlaceHold("h2", ALICE, 301, "INR", 60), {ALICE: after}, None, NOW)


def _held(
    amount: int = 700, destination: str | None = SHOP
) -> tuple[dict[str, WalletState], HoldState]:
    wallets = {ALICE: customer(balance=1000), SHOP: merchant(), BOB: customer(BOB)}
    out = plan(
        PlaceHold("h", ALICE, amount, "INR", 60, destination_wallet_id=destination),
        wallets,
        None,
        NOW,
    )
    assert out.hold is not None
    return {**wallets, **out.wallets}, out.hold


def test_partial_post_pays_part_and_releases_the_rest() -> None:
    wallets, hold = _held()
    out = plan(PostHold("p", "h", 400), wallets, hold, NOW)
    assert out.hold is not None
    assert (out.hold.status, out.hold.posted_minor) == (HoldStatus.POSTED, 400)
    a, s = out.wallets[ALICE], out.wallets[SHOP]
    assert (a.balance_minor, a.held_minor, a.available_minor) == (600, 0, 600)
    assert s.balance_minor == 400
    assert books(out.entry) == {
        held_account(ALICE): 700,
        wallet_account(SHOP): -400,
        wallet_account(ALICE): -300,
    }


def test_full_post_to_bank_and_void_and_expire() -> None:
    wallets, hold = _held(destination=None)
    full = plan(PostHold("p", "h"), wallets, hold, NOW)
    assert full.wallets[ALICE].balance_minor == 300
    assert books(full.entry) == {held_account(ALICE): 700, "platform:wallet_payouts:INR": -700}
    void = plan(VoidHold("v", "h"), wallets, hold, NOW)
    assert void.hold is not None and void.hold.status is HoldStatus.VOIDED
    assert void.wallets[ALICE].available_minor == 1000
    later = NOW + timedelta(seconds=60)
    exp = plan(ExpireHold("h"), wallets, hold, later)
    assert exp.hold is not None and exp.hold.status is HoldStatus.EXPIRED
    assert exp.entry.entry_id == "wallet:expire:h"
    with pytest.raises(InvalidOperation):
        plan(ExpireHold("h"), wallets, hold, later - timedelta(microseconds=1))


def test_hold_transitions_refused() -> None:
    wallets, hold = _held()
    with pytest.raises(HoldNotFound):
        plan(PostHold("p", "nope"), wallets, None, NOW)
    with pytest.raises(InvalidAmount):
        plan(PostHold("p", "h", 701), wallets, hold, NOW)
    with pytest.raises(InvalidAmount):
        plan(PostHold("p", "h", 0), wallets, hold, NOW)
    at_deadline = NOW + timedelta(seconds=60)
    with pytest.raises(HoldExpired):
        plan(PostHold("p", "h"), wallets, hold, at_deadline)
    with pytest.raises(HoldExpired):
        plan(VoidHold("v", "h"), wallets, hold, at_deadline)
    for status, error in [
        (HoldStatus.POSTED, HoldAlreadySettled),
        (HoldStatus.VOIDED, HoldAlreadySettled),
        (HoldStatus.EXPIRED, HoldExpired),
    ]:
        settled = HoldState(**{**hold.__dict__, "status": status})
        for op in (PostHold("p", "h"), VoidHold("v", "h"), ExpireHold("h")):
            with pytest.raises(error):
                plan(op, wallets, settled, at_deadline)


def test_posting_a_hold_respects_the_destination_limit() -> None:
    wallets, hold = _held(destination=BOB)
    wallets[BOB] = customer(BOB, balance=FULL_KYC_LIMIT_MINOR)
    with pytest.raises(WalletLimitExceeded):
        plan(PostHold("p", "h"), wallets, hold, NOW)


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, "100"])
def test_invalid_amounts(amount: object) -> None:
    with pytest.raises(InvalidAmount) as err:
        plan(Load("x", ALICE, amount, "INR"), {ALICE: customer()}, None, NOW)  # type: ignore[arg-type]
    assert err.value.code == "invalid_amount"


def test_currency_and_wallet_checks() -> None:
    with pytest.raises(CurrencyMismatch) as err:
        plan(Load("x", ALICE, 1, "USD"), {ALICE: customer()}, None, NOW)
    assert err.value.code == "currency_mismatch"
    with pytest.raises(WalletNotFound):
        plan(Load("x", BOB, 1, "INR"), {ALICE: customer()}, None, NOW)
    with pytest.raises(InvalidOperation):
        plan(Transfer("x", ALICE, ALICE, 1, "INR"), {ALICE: customer(balance=5)}, None, NOW)
    with pytest.raises(InvalidOperation):
        plan(Load("expire:h", ALICE, 1, "INR"), {ALICE: customer()}, None, NOW)


def test_fingerprint_identifies_parameters() -> None:
    a = Transfer("t1", ALICE, BOB, 100, "INR")
    assert fingerprint(a) == fingerprint(Transfer("t1", ALICE, BOB, 100, "INR"))
    assert fingerprint(a) != fingerprint(Transfer("t1", ALICE, BOB, 101, "INR"))
    assert fingerprint(a) != fingerprint(Transfer("t1", ALICE, BOB, 100, "INR", purpose="spend"))
    assert fingerprint(Payout("x", ALICE, 1, "INR")) != fingerprint(Load("x", ALICE, 1, "INR"))
    assert fingerprint(ExpireHold("h")) == fingerprint(ExpireHold("h"))


def test_error_codes_are_stable() -> None:
    codes = {cls.code for cls in WalletError.__subclasses__()}
    assert {
        "insufficient_funds",
        "wallet_limit_exceeded",
        "hold_not_found",
        "hold_expired",
        "hold_already_settled",
        "idempotency_conflict",
        "currency_mismatch",
        "invalid_amount",
    } <= codes
    assert IdempotencyConflict("x").code == "idempotency_conflict"


def test_wallets_to_lock_are_sorted() -> None:
    assert wallets_of(Transfer("t", SHOP, ALICE, 1, "INR"), None) == sorted([SHOP, ALICE])
    _, hold = _held()
    assert wallets_of(PostHold("p", "h"), hold) == sorted([ALICE, SHOP])
    assert wallets_of(VoidHold("v", "h"), None) == []


@given(
    balance=st.integers(0, 10**9),
    overdraft=st.integers(0, 10**6),
    amount=st.integers(1, 2 * 10**9),
)
def test_debits_never_pass_the_overdraft(balance: int, overdraft: int, amount: int) -> None:
    w = customer(balance=balance, overdraft_limit_minor=overdraft)
    try:
        out = plan(Payout("p", ALICE, amount, "INR"), {ALICE: w}, None, NOW)
    except InsufficientFunds:
        assert amount > balance + overdraft
    else:
        assert out.wallets[ALICE].available_minor >= -overdraft
        assert amount <= balance + overdraft
        assert sum(p.amount_minor for p in out.entry.postings) == 0
