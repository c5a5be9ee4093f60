"""Wallets in PostgreSQL: each operation checked and posted in one transaction.

``execute(conn, op, now=...)`` is the one place wallet money moves.  In a single transaction it

1. claims the operation id in ``wallet_operations`` (a replay with the same parameters returns
   ``replayed=True`` and changes nothing; other parameters raise ``IdempotencyConflict``; a
   concurrent duplicate waits on the primary key and then sees the first one's row),
2. locks the hold (for hold operations) and then the wallets it touches, in wallet id order,
   with ``SELECT … FOR UPDATE``, so two debits of the same wallet run one after the other,
3. decides with :func:`streams.wallets.plan` (pure; raises a typed ``WalletError``),
4. posts the journal entry and writes the new wallet balances and hold state.

A refused operation raises before anything is written, and the transaction rolls back: nothing
is posted and the operation id stays free.  ``now`` is the caller's clock (hold deadlines).

``reconcile`` compares the ``wallets`` table (or any other real-time view of the balances, such
as a stream processor's table) with the ledger's postings, account by account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from streams.wallets import (
    ExpireHold,
    HoldAlreadySettled,
    HoldExpired,
    HoldState,
    HoldStatus,
    IdempotencyConflict,
    InvalidOperation,
    KycLevel,
    Operation,
    OwnerType,
    PlaceHold,
    PostHold,
    VoidHold,
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
from warehouse.payments import post_entries


@dataclass(frozen=True)
class OperationResult:
    op_id: str
    entry_id: str
    replayed: bool  # True: this operation id was already applied; nothing changed now


_WALLET_COLUMNS = """wallet_id, currency, kyc_level, balance_limit_minor, overdraft_limit_minor,
                     balance_minor, held_minor"""


def _wallet(r: asyncpg.Record) -> WalletState:
    return WalletState(
        wallet_id=r["wallet_id"],
        currency=r["currency"],
        kyc_level=KycLevel(r["kyc_level"]),
        balance_limit_minor=r["balance_limit_minor"],
        overdraft_limit_minor=r["overdraft_limit_minor"],
        balance_minor=r["balance_minor"],
        held_minor=r["held_minor"],
    )


def _hold(r: asyncpg.Record) -> HoldState:
    return HoldState(
        hold_id=r["hold_id"],
        wallet_id=r["wallet_id"],
        destination_wallet_id=r["destination_wallet_id"],
        amount_minor=r["amount_minor"],
        currency=r["currency"],
        expires_at=r["expires_at"],
        status=HoldStatus(r["status"]),
        posted_minor=r["posted_minor"],
    )


async def open_wallet(
    conn: asyncpg.Connection | asyncpg.Pool,
    owner_type: OwnerType,
    owner_id: str,
    currency: str = "INR",
    *,
    kyc_level: KycLevel | None = None,
    balance_limit_minor: int | None = None,
    overdraft_limit_minor: int = 0,
) -> WalletState:
    """Open (or find) the wallet of ``owner_type``/``owner_id`` in ``currency``.

    ``kyc_level`` defaults to ``full`` for customers and ``business`` for merchants;
    ``balance_limit_minor`` (paise) defaults to that level's RBI limit (``None`` for business);
    ``overdraft_limit_minor`` (paise, ≥ 0) is how far below zero ``available`` may go.
    Opening the same wallet again with the same terms returns it; other terms raise
    ``IdempotencyConflict`` (changing a wallet's terms is a separate, audited operation).
    """
    wallet_id = wallet_id_for(owner_type, owner_id, currency)
    if kyc_level is None:
        kyc_level = KycLevel.FULL if owner_type is OwnerType.CUSTOMER else KycLevel.BUSINESS
    if balance_limit_minor is None:
        balance_limit_minor = default_balance_limit(kyc_level)
    if overdraft_limit_minor < 0 or (balance_limit_minor is not None and balance_limit_minor < 0):
        raise InvalidOperation("limits are non-negative paise")
    await conn.execute(
        """INSERT INTO wallets (wallet_id, currency, kyc_level, balance_limit_minor,
                                overdraft_limit_minor)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (wallet_id) DO NOTHING""",
        wallet_id,
        currency,
        kyc_level.value,
        balance_limit_minor,
        overdraft_limit_minor,
    )
    state = await get_wallet(conn, wallet_id)
    assert state is not None
    terms = (state.kyc_level, state.balance_limit_minor, state.overdraft_limit_minor)
    if terms != (kyc_level, balance_limit_minor, overdraft_limit_minor):
        raise IdempotencyConflict(f"wallet {wallet_id} exists with other terms {terms}")
    return state


async def get_wallet(conn: asyncpg.Connection | asyncpg.Pool, wallet_id: str) -> WalletState | None:
    """The wallet's current balances (paise), or ``None``."""
    row = await conn.fetchrow(
        f"SELECT {_WALLET_COLUMNS} FROM wallets WHERE wallet_id = $1",  # noqa: S608
        wallet_id,
    )
    return None if row is None else _wallet(row)


async def get_hold(conn: asyncpg.Connection | asyncpg.Pool, hold_id: str) -> HoldState | None:
    row = await conn.fetchrow("SELECT * FROM wallet_holds WHERE hold_id = $1", hold_id)
    return None if row is None else _hold(row)


async def execute(conn: asyncpg.Connection, op: Operation, *, now: datetime) -> OperationResult:
    """Apply ``op`` at ``now`` (an aware datetime from the caller's clock) exactly once.

    Raises a ``streams.wallets.WalletError`` (nothing written) when refused.
    """
    async with conn.transaction():
        return await _execute(conn, op, now)


async def _execute(conn: asyncpg.Connection, op: Operation, now: datetime) -> OperationResult:
    entry_id = entry_id_for(op.op_id)
    digest = fingerprint(op)
    claimed = await conn.fetchval(
        """INSERT INTO wallet_operations (op_id, kind, fingerprint, entry_id, applied_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (op_id) DO NOTHING RETURNING op_id""",
        op.op_id,
        op.kind,
        digest,
        entry_id,
        now,
    )
    if claimed is None:
        seen = await conn.fetchval(
            "SELECT fingerprint FROM wallet_operations WHERE op_id = $1", op.op_id
        )
        if seen != digest:
            raise IdempotencyConflict(
                f"operation {op.op_id} was already applied with different parameters"
            )
        return OperationResult(op.op_id, entry_id, replayed=True)
    hold: HoldState | None = None
    if isinstance(op, PostHold | VoidHold | ExpireHold):
        row = await conn.fetchrow(
            "SELECT * FROM wallet_holds WHERE hold_id = $1 FOR UPDATE", op.hold_id
        )
        hold = None if row is None else _hold(row)
    ids = wallets_of(op, hold)
    rows = await conn.fetch(
        f"""SELECT {_WALLET_COLUMNS} FROM wallets WHERE wallet_id = ANY($1::text[])
             ORDER BY wallet_id FOR UPDATE""",  # noqa: S608
        ids,
    )
    wallets = {r["wallet_id"]: _wallet(r) for r in rows}
    outcome = plan(op, wallets, hold, now)
    await post_entries(conn, [outcome.entry])
    await conn.executemany(
        """UPDATE wallets SET balance_minor = $2, held_minor = $3, updated_at = $4
            WHERE wallet_id = $1""",
        [(w.wallet_id, w.balance_minor, w.held_minor, now) for w in outcome.wallets.values()],
    )
    if isinstance(op, PlaceHold):
        h = outcome.hold
        assert h is not None
        await conn.execute(
            """INSERT INTO wallet_holds (hold_id, wallet_id, destination_wallet_id, amount_minor,
                   currency, status, created_at, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            h.hold_id,
            h.wallet_id,
            h.destination_wallet_id,
            h.amount_minor,
            h.currency,
            h.status.value,
            now,
            h.expires_at,
        )
    elif outcome.hold is not None:
        await conn.execute(
            """UPDATE wallet_holds SET status = $2, posted_minor = $3, settled_at = $4
                WHERE hold_id = $1""",
            outcome.hold.hold_id,
            outcome.hold.status.value,
            outcome.hold.posted_minor,
            now,
        )
    return OperationResult(op.op_id, entry_id, replayed=False)


async def expire_holds(
    conn: asyncpg.Connection, *, now: datetime, limit: int = 1000
) -> list[OperationResult]:
    """Release every pending hold whose deadline is at or before ``now`` (one transaction per
    hold, so a long sweep never holds many wallet locks).  A hold posted or voided meanwhile is
    skipped.  Returns the expiries applied now."""
    ids = await conn.fetch(
        """SELECT hold_id FROM wallet_holds WHERE status = 'pending' AND expires_at <= $1
            ORDER BY expires_at, hold_id LIMIT $2""",
        now,
        limit,
    )
    done: list[OperationResult] = []
    for r in ids:
        try:
            result = await execute(conn, ExpireHold(r["hold_id"]), now=now)
        except (HoldAlreadySettled, HoldExpired):
            continue
        if not result.replayed:
            done.append(result)
    return done


@dataclass(frozen=True)
class TableBalance:
    """A real-time view's balances of one wallet, in paise."""

    balance_minor: int
    held_minor: int


@dataclass(frozen=True)
class WalletDifference:
    """One account where the balance view and the ledger disagree (paise, holder's sign:
    positive = money the platform owes the holder)."""

    wallet_id: str | None  # None: a ledger wallet account with no wallet at all
    account_id: str
    table_minor: int
    ledger_minor: int

    @property
    def difference_minor(self) -> int:
        return self.table_minor - self.ledger_minor


async def reconcile(
    conn: asyncpg.Connection | asyncpg.Pool,
    table: Mapping[str, TableBalance] | None = None,
) -> list[WalletDifference]:
    """Every wallet account whose balance in ``table`` (default: the ``wallets`` table) differs
    from the sum of its ledger postings, plus wallet accounts the ledger has and the table does
    not.  Per wallet: ``wallet`` account = ``balance − held`` and ``wallet_held`` = ``held``.
    Empty means the two agree to the paisa."""
    if table is None:
        rows = await conn.fetch("SELECT wallet_id, balance_minor, held_minor FROM wallets")
        table = {r["wallet_id"]: TableBalance(r["balance_minor"], r["held_minor"]) for r in rows}
    ledger_rows = await conn.fetch(
        """SELECT a.account_id, coalesce(-sum(p.amount_minor), 0) AS balance
             FROM ledger_accounts a LEFT JOIN postings p USING (account_id)
            WHERE a.kind IN ('wallet', 'wallet_held') AND a.owner <> 'platform'
            GROUP BY a.account_id"""
    )
    ledger = {r["account_id"]: int(r["balance"]) for r in ledger_rows}
    expected: dict[str, tuple[str | None, int]] = {}
    for wallet_id, t in table.items():
        expected[wallet_account(wallet_id)] = (wallet_id, t.balance_minor - t.held_minor)
        expected[held_account(wallet_id)] = (wallet_id, t.held_minor)
    out: list[WalletDifference] = []
    for account_id in sorted(set(expected) | set(ledger)):
        owner, table_minor = expected.get(account_id, (None, 0))
        ledger_minor = ledger.get(account_id, 0)
        if table_minor != ledger_minor:
            out.append(WalletDifference(owner, account_id, table_minor, ledger_minor))
    return out
