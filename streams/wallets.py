"""Wallet rules: balances, limits, overdraft and two-phase holds, as pure functions.

Every amount is an ``int`` of minor units (paise for INR).  A wallet is a liability of the
platform, so its ledger accounts are credit-normal: the ledger holds ``-balance`` on them.

Accounts per wallet (``<owner_type>:<owner_id>:<kind>:<currency>``):

* ``wallet``      what the holder can use now: ``balance − held`` (the available balance)
* ``wallet_held`` money earmarked by open holds

Merchant wallets therefore reuse the merchant namespace (``merchant:<id>:wallet:<cur>``);
customer wallets live under ``customer:<id>:…``.  Platform counterparts are
``platform:wallet_funding:<cur>`` (money received for loads, from a payment or a bank transfer)
and ``platform:wallet_payouts:<cur>`` (withdrawals owed to the holder's bank).

Operations and the entry each posts (``move(amount, credit → debit)``):

=============  ==============================================================================
load           funding → wallet (credit the wallet)
transfer/spend source wallet → destination wallet
payout         wallet → wallet_payouts
place hold     wallet → wallet_held of the same wallet
post hold (x)  wallet_held → destination (x), and wallet_held → wallet (amount − x) if partial
void / expire  wallet_held → wallet (the whole hold)
=============  ==============================================================================

``plan(op, wallets, hold, now)`` is the whole decision: it checks the rules and returns the
journal entry and the new wallet and hold states, or raises a :class:`WalletError` with a stable
``code``.  The store (``warehouse/wallet_store.py``) locks the rows, calls it and writes the result
in one transaction.

Limits: the RBI PPI master direction caps the outstanding balance of a full-KYC wallet at
₹2,00,000 and of a small (minimum-KYC) wallet at ₹10,000; both are configurable per wallet
(``balance_limit_minor``, ``None`` = no limit, the default for merchant wallets).  The limit is
checked on every credit (load, incoming transfer, posted hold) against the balance including
holds.  A debit (transfer, payout, hold) may take ``available`` down to ``-overdraft_limit_minor``
and no further; the overdraft limit is 0 unless the wallet is opened with one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Literal

from streams.ledger import JournalEntry, Posting, platform_account

# RBI PPI balance limits, in paise.
FULL_KYC_LIMIT_MINOR = 2_00_000_00  # ₹2,00,000
MIN_KYC_LIMIT_MINOR = 10_000_00  # ₹10,000

ENTRY_KIND_PREFIX = "wallet_"
FUNDING_KIND = "wallet_funding"
PAYOUTS_KIND = "wallet_payouts"

_OWNER_ID = re.compile(r"^[a-z0-9_]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Caller-chosen operation ids (idempotency keys): no ":", so they never collide with the
# ``expire:<hold_id>`` ids the expiry sweep derives.
_OP_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


# --- errors -------------------------------------------------------------------------------


class WalletError(Exception):
    """A refused wallet operation; ``code`` is stable and maps to a 4xx problem type."""

    code: ClassVar[str] = "wallet_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InsufficientFunds(WalletError):
    code = "insufficient_funds"


class WalletLimitExceeded(WalletError):
    code = "wallet_limit_exceeded"


class HoldNotFound(WalletError):
    code = "hold_not_found"


class HoldExpired(WalletError):
    code = "hold_expired"


class HoldAlreadySettled(WalletError):
    code = "hold_already_settled"


class IdempotencyConflict(WalletError):
    code = "idempotency_conflict"


class CurrencyMismatch(WalletError):
    code = "currency_mismatch"


class InvalidAmount(WalletError):
    code = "invalid_amount"


class WalletNotFound(WalletError):
    code = "wallet_not_found"


class InvalidOperation(WalletError):
    """A request that can never succeed as written (a transfer to the same wallet, a bad id)."""

    code = "invalid_operation"


# --- wallets and accounts -----------------------------------------------------------------


class OwnerType(StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"


class KycLevel(StrEnum):
    MIN = "min"  # minimum-detail (small) PPI
    FULL = "full"  # full-KYC PPI
    BUSINESS = "business"  # a merchant's wallet: no PPI balance limit


def default_balance_limit(kyc: KycLevel) -> int | None:
    """The RBI PPI balance limit in paise for ``kyc``; ``None`` for a merchant (no limit)."""
    return {
        KycLevel.MIN: MIN_KYC_LIMIT_MINOR,
        KycLevel.FULL: FULL_KYC_LIMIT_MINOR,
        KycLevel.BUSINESS: None,
    }[kyc]


def wallet_id_for(owner_type: OwnerType, owner_id: str, currency: str) -> str:
    """``<owner_type>:<owner_id>:<currency>``, e.g. ``customer:c_42:INR``."""
    if not _OWNER_ID.match(owner_id):
        raise InvalidOperation(f"owner id {owner_id!r} must match {_OWNER_ID.pattern}")
    if not _CURRENCY.match(currency):
        raise InvalidOperation(f"currency {currency!r} is not an ISO 4217 code")
    return f"{OwnerType(owner_type).value}:{owner_id}:{currency}"


def _split_wallet_id(wallet_id: str) -> tuple[str, str, str]:
    parts = wallet_id.split(":")
    if len(parts) != 3 or parts[0] not in {o.value for o in OwnerType}:
        raise InvalidOperation(f"not a wallet id: {wallet_id!r}")
    return parts[0], parts[1], parts[2]


def wallet_account(wallet_id: str) -> str:
    """Ledger account of the wallet's usable money (credit-normal)."""
    owner_type, owner_id, currency = _split_wallet_id(wallet_id)
    return f"{owner_type}:{owner_id}:wallet:{currency}"


def held_account(wallet_id: str) -> str:
    """Ledger account of the wallet's money earmarked by open holds (credit-normal)."""
    owner_type, owner_id, currency = _split_wallet_id(wallet_id)
    return f"{owner_type}:{owner_id}:wallet_held:{currency}"


@dataclass(frozen=True)
class WalletState:
    """A wallet's balances in minor units.

    ``balance_minor`` is the posted balance (holds included); ``held_minor`` the open holds;
    ``available_minor = balance_minor - held_minor``.  ``overdraft_limit_minor`` (≥ 0) is how far
    below zero ``available`` may go; ``balance_limit_minor`` caps ``balance`` (``None``: no cap).
    """

    wallet_id: str
    currency: str
    kyc_level: KycLevel
    balance_limit_minor: int | None
    overdraft_limit_minor: int = 0
    balance_minor: int = 0
    held_minor: int = 0

    @property
    def available_minor(self) -> int:
        return self.balance_minor - self.held_minor

    @property
    def owner_type(self) -> OwnerType:
        return OwnerType(_split_wallet_id(self.wallet_id)[0])

    @property
    def owner_id(self) -> str:
        return _split_wallet_id(self.wallet_id)[1]

    def can_debit(self, amount_minor: int) -> bool:
        """Whether ``amount_minor`` may leave ``available`` without passing the overdraft."""
        return self.available_minor - amount_minor >= -self.overdraft_limit_minor

    def can_credit(self, amount_minor: int) -> bool:
        """Whether ``amount_minor`` may arrive without passing the balance limit."""
        limit = self.balance_limit_minor
        return limit is None or self.balance_minor + amount_minor <= limit

    def debited(self, amount_minor: int) -> WalletState:
        self._require_debit(amount_minor)
        return replace(self, balance_minor=self.balance_minor - amount_minor)

    def credited(self, amount_minor: int) -> WalletState:
        if not self.can_credit(amount_minor):
            raise WalletLimitExceeded(
                f"wallet {self.wallet_id}: crediting {amount_minor} paise would make the balance "
                f"{self.balance_minor + amount_minor}, over its limit of "
                f"{self.balance_limit_minor}"
            )
        return replace(self, balance_minor=self.balance_minor + amount_minor)

    def holding(self, amount_minor: int) -> WalletState:
        self._require_debit(amount_minor)
        return replace(self, held_minor=self.held_minor + amount_minor)

    def _require_debit(self, amount_minor: int) -> None:
        if not self.can_debit(amount_minor):
            raise InsufficientFunds(
                f"wallet {self.wallet_id}: {amount_minor} paise requested, "
                f"{self.available_minor} available"
                + (
                    f" (overdraft up to {self.overdraft_limit_minor})"
                    if self.overdraft_limit_minor
                    else ""
                )
            )


class HoldStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(frozen=True)
class HoldState:
    """A two-phase hold of ``amount_minor`` on ``wallet_id``, to be posted to
    ``destination_wallet_id`` (``None``: paid out to the holder's bank) until ``expires_at``."""

    hold_id: str
    wallet_id: str
    destination_wallet_id: str | None
    amount_minor: int
    currency: str
    expires_at: datetime
    status: HoldStatus = HoldStatus.PENDING
    posted_minor: int = 0

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


# --- operations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Money into a wallet from a payment or bank transfer (``source`` names it)."""

    op_id: str
    wallet_id: str
    amount_minor: int
    currency: str
    source: str = "bank_transfer"
    kind: Literal["load"] = field(default="load", init=False)


@dataclass(frozen=True)
class Transfer:
    """Wallet to wallet; ``purpose="spend"`` for paying a merchant's wallet."""

    op_id: str
    from_wallet_id: str
    to_wallet_id: str
    amount_minor: int
    currency: str
    purpose: Literal["transfer", "spend"] = "transfer"
    kind: Literal["transfer"] = field(default="transfer", init=False)


@dataclass(frozen=True)
class Payout:
    """Withdrawal from a wallet to the holder's bank account."""

    op_id: str
    wallet_id: str
    amount_minor: int
    currency: str
    kind: Literal["payout"] = field(default="payout", init=False)


@dataclass(frozen=True)
class PlaceHold:
    """Earmark ``amount_minor`` for ``ttl_seconds``; the hold's id is the operation id."""

    op_id: str
    wallet_id: str
    amount_minor: int
    currency: str
    ttl_seconds: int
    destination_wallet_id: str | None = None
    kind: Literal["hold"] = field(default="hold", init=False)

    @property
    def hold_id(self) -> str:
        return self.op_id


@dataclass(frozen=True)
class PostHold:
    """Complete a hold for ``amount_minor`` (``None``: all of it); the rest is released."""

    op_id: str
    hold_id: str
    amount_minor: int | None = None
    kind: Literal["post_hold"] = field(default="post_hold", init=False)


@dataclass(frozen=True)
class VoidHold:
    op_id: str
    hold_id: str
    kind: Literal["void_hold"] = field(default="void_hold", init=False)


@dataclass(frozen=True)
class ExpireHold:
    """Release a hold whose deadline has passed; its operation id is derived from the hold."""

    hold_id: str
    kind: Literal["expire_hold"] = field(default="expire_hold", init=False)

    @property
    def op_id(self) -> str:
        return f"expire:{self.hold_id}"


Operation = Load | Transfer | Payout | PlaceHold | PostHold | VoidHold | ExpireHold
HoldOperation = PostHold | VoidHold | ExpireHold


def fingerprint(op: Operation) -> str:
    """SHA-256 of the operation's parameters: the same op id with another fingerprint is an
    :class:`IdempotencyConflict`."""
    body = json.dumps(asdict(op), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def entry_id_for(op_id: str) -> str:
    """The journal entry id of an operation: replaying it hits the primary key."""
    return f"wallet:{op_id}"


def wallets_of(op: Operation, hold: HoldState | None) -> list[str]:
    """Wallet ids the operation reads and writes, sorted (the order to lock them in)."""
    match op:
        case Load() | Payout():
            ids = {op.wallet_id}
        case PlaceHold():
            ids = {op.wallet_id}
            if op.destination_wallet_id is not None:
                ids.add(op.destination_wallet_id)
        case Transfer():
            ids = {op.from_wallet_id, op.to_wallet_id}
        case PostHold() | VoidHold() | ExpireHold():
            if hold is None:
                return []
            ids = {hold.wallet_id}
            if hold.destination_wallet_id is not None:
                ids.add(hold.destination_wallet_id)
    return sorted(ids)


@dataclass(frozen=True)
class Outcome:
    """What an accepted operation changes: its entry, the wallets after it, and the hold."""

    entry: JournalEntry
    wallets: dict[str, WalletState]
    hold: HoldState | None = None


class _Entry:
    def __init__(self, op: Operation, currency: str, merchant_id: str) -> None:
        self.entry_id = entry_id_for(op.op_id)
        self.op = op
        self.currency = currency
        self.merchant_id = merchant_id
        self.legs: list[tuple[str, int]] = []

    def move(self, amount_minor: int, credit: str, debit: str) -> None:
        if amount_minor > 0:
            self.legs.append((debit, amount_minor))
            self.legs.append((credit, -amount_minor))

    def build(self) -> JournalEntry:
        return JournalEntry(
            entry_id=self.entry_id,
            payment_id=self.op.op_id,
            merchant_id=self.merchant_id,
            kind=ENTRY_KIND_PREFIX + self.op.kind,
            currency=self.currency,
            postings=tuple(
                Posting(f"{self.entry_id}:{n}", account, amount)
                for n, (account, amount) in enumerate(self.legs)
            ),
        )


def _check_amount(amount_minor: object) -> int:
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise InvalidAmount(f"amount must be a positive integer of paise, got {amount_minor!r}")
    return amount_minor


def _wallet(wallets: Mapping[str, WalletState], wallet_id: str, currency: str) -> WalletState:
    state = wallets.get(wallet_id)
    if state is None:
        raise WalletNotFound(f"no wallet {wallet_id}")
    if state.currency != currency:
        raise CurrencyMismatch(f"wallet {wallet_id} holds {state.currency}, not {currency}")
    return state


def _merchant_of(*states: WalletState | None) -> str:
    return next(
        (s.owner_id for s in states if s is not None and s.owner_type is OwnerType.MERCHANT), ""
    )


def plan(
    op: Operation,
    wallets: Mapping[str, WalletState],
    hold: HoldState | None,
    now: datetime,
) -> Outcome:
    """Decide ``op`` against the current (locked) wallets and hold at ``now``.

    Raises a :class:`WalletError` subclass when the operation is refused; nothing it returns
    has been written anywhere.
    """
    if not isinstance(op, ExpireHold) and not _OP_ID.match(op.op_id):
        raise InvalidOperation(f"operation id {op.op_id!r} must match {_OP_ID.pattern}")
    match op:
        case Load():
            amount = _check_amount(op.amount_minor)
            w = _wallet(wallets, op.wallet_id, op.currency)
            e = _Entry(op, op.currency, _merchant_of(w))
            e.move(amount, credit=wallet_account(w.wallet_id), debit=_funding(op.currency))
            return Outcome(e.build(), {w.wallet_id: w.credited(amount)})
        case Transfer():
            amount = _check_amount(op.amount_minor)
            if op.from_wallet_id == op.to_wallet_id:
                raise InvalidOperation("a transfer needs two different wallets")
            src = _wallet(wallets, op.from_wallet_id, op.currency)
            dst = _wallet(wallets, op.to_wallet_id, op.currency)
            new_src, new_dst = src.debited(amount), dst.credited(amount)
            e = _Entry(op, op.currency, _merchant_of(dst, src))
            e.move(
                amount, credit=wallet_account(dst.wallet_id), debit=wallet_account(src.wallet_id)
            )
            return Outcome(e.build(), {src.wallet_id: new_src, dst.wallet_id: new_dst})
        case Payout():
            amount = _check_amount(op.amount_minor)
            w = _wallet(wallets, op.wallet_id, op.currency)
            new = w.debited(amount)
            e = _Entry(op, op.currency, _merchant_of(w))
            e.move(amount, credit=_payouts(op.currency), debit=wallet_account(w.wallet_id))
            return Outcome(e.build(), {w.wallet_id: new})
        case PlaceHold():
            return _place_hold(op, wallets, now)
        case PostHold() | VoidHold() | ExpireHold():
            return _settle_hold(op, wallets, hold, now)


def _funding(currency: str) -> str:
    return platform_account(FUNDING_KIND, currency)


def _payouts(currency: str) -> str:
    return platform_account(PAYOUTS_KIND, currency)


def _place_hold(op: PlaceHold, wallets: Mapping[str, WalletState], now: datetime) -> Outcome:
    amount = _check_amount(op.amount_minor)
    if not isinstance(op.ttl_seconds, int) or op.ttl_seconds <= 0:
        raise InvalidOperation(f"ttl_seconds must be a positive integer, got {op.ttl_seconds!r}")
    w = _wallet(wallets, op.wallet_id, op.currency)
    dst = None
    if op.destination_wallet_id is not None:
        if op.destination_wallet_id == op.wallet_id:
            raise InvalidOperation("a hold cannot be posted to its own wallet")
        dst = _wallet(wallets, op.destination_wallet_id, op.currency)
    new = w.holding(amount)
    e = _Entry(op, op.currency, _merchant_of(dst, w))
    e.move(amount, credit=held_account(w.wallet_id), debit=wallet_account(w.wallet_id))
    hold = HoldState(
        hold_id=op.hold_id,
        wallet_id=w.wallet_id,
        destination_wallet_id=op.destination_wallet_id,
        amount_minor=amount,
        currency=op.currency,
        expires_at=now + timedelta(seconds=op.ttl_seconds),
    )
    return Outcome(e.build(), {w.wallet_id: new}, hold)


def _settle_hold(
    op: HoldOperation,
    wallets: Mapping[str, WalletState],
    hold: HoldState | None,
    now: datetime,
) -> Outcome:
    if hold is None:
        raise HoldNotFound(f"no hold {op.hold_id}")
    if hold.status is HoldStatus.EXPIRED:
        raise HoldExpired(f"hold {hold.hold_id} expired at {hold.expires_at.isoformat()}")
    if hold.status is not HoldStatus.PENDING:
        raise HoldAlreadySettled(f"hold {hold.hold_id} is already {hold.status.value}")
    expired = hold.is_expired(now)
    if isinstance(op, ExpireHold):
        if not expired:
            raise InvalidOperation(f"hold {hold.hold_id} expires at {hold.expires_at}")
    elif expired:
        raise HoldExpired(f"hold {hold.hold_id} expired at {hold.expires_at.isoformat()}")
    src = _wallet(wallets, hold.wallet_id, hold.currency)
    released = replace(src, held_minor=src.held_minor - hold.amount_minor)
    held, usable = held_account(src.wallet_id), wallet_account(src.wallet_id)
    if not isinstance(op, PostHold):
        e = _Entry(op, hold.currency, _merchant_of(src))
        e.move(hold.amount_minor, credit=usable, debit=held)
        status = HoldStatus.VOIDED if isinstance(op, VoidHold) else HoldStatus.EXPIRED
        return Outcome(e.build(), {src.wallet_id: released}, replace(hold, status=status))
    amount = hold.amount_minor if op.amount_minor is None else _check_amount(op.amount_minor)
    if amount > hold.amount_minor:
        raise InvalidAmount(f"cannot post {amount} paise of a {hold.amount_minor} paise hold")
    changed = {src.wallet_id: replace(released, balance_minor=released.balance_minor - amount)}
    if hold.destination_wallet_id is None:
        dst_state, credit = None, _payouts(hold.currency)
    else:
        dst = _wallet(wallets, hold.destination_wallet_id, hold.currency)
        dst_state, credit = dst.credited(amount), wallet_account(dst.wallet_id)
        changed[dst.wallet_id] = dst_state
    e = _Entry(op, hold.currency, _merchant_of(dst_state, src))
    e.move(amount, credit=credit, debit=held)
    e.move(hold.amount_minor - amount, credit=usable, debit=held)
    return Outcome(e.build(), changed, replace(hold, status=HoldStatus.POSTED, posted_minor=amount))
