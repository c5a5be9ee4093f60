"""What a merchant may read of the book of record: balances, journal entries page by page, and
settlement batches.  Plain queries; the API shapes them."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

# Balances are reported with each account's normal side positive: what RizzPay owes the
# merchant (credit-normal) or what the merchant has been charged (debit-normal).
CREDIT_NORMAL = frozenset({"authorized", "pending", "reserve", "rolling_reserve", "available"})
DEBIT_NORMAL = frozenset({"refunds", "fees", "gst_payable"})

PAGE_SIZE_MAX = 100


class BadCursor(ValueError):
    """A pagination cursor this API did not issue."""


@dataclass(frozen=True)
class Balance:
    kind: str
    currency: str
    amount_minor: int


async def merchant_balances(pool: asyncpg.Pool, merchant_id: str) -> list[Balance]:
    """Every ledger account of the merchant with its balance, normal side positive."""
    rows = await pool.fetch(
        """SELECT a.kind, a.currency, coalesce(sum(p.amount_minor), 0) AS balance
             FROM ledger_accounts a LEFT JOIN postings p USING (account_id)
            WHERE a.owner = $1 GROUP BY a.kind, a.currency ORDER BY a.currency, a.kind""",
        merchant_id,
    )
    return [
        Balance(
            r["kind"],
            r["currency"].strip(),
            -int(r["balance"]) if r["kind"] in CREDIT_NORMAL else int(r["balance"]),
        )
        for r in rows
    ]


def encode_cursor(created_at: datetime, entry_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at.isoformat(), entry_id])).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, entry_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created_at), str(entry_id)
    except (ValueError, TypeError) as exc:
        raise BadCursor(cursor) from exc


async def journal_page(
    pool: asyncpg.Pool, merchant_id: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` of the merchant's journal entries, oldest first, after ``cursor``, each
    with its postings; and the cursor of the next page (``None`` on the last page).

    Keyset pagination on (created_at, entry_id): stable while new entries are appended."""
    after = decode_cursor(cursor) if cursor else None
    rows = await pool.fetch(
        """SELECT e.entry_id, e.payment_id, e.kind, e.currency, e.created_at,
                  json_agg(json_build_object('posting_id', p.posting_id,
                                             'account_id', p.account_id,
                                             'amount_minor', p.amount_minor)
                           ORDER BY p.posting_id)::text AS postings
             FROM journal_entries e JOIN postings p USING (entry_id)
            WHERE e.merchant_id = $1
              AND ($2::timestamptz IS NULL OR (e.created_at, e.entry_id) > ($2, $3))
            GROUP BY e.entry_id
            ORDER BY e.created_at, e.entry_id
            LIMIT $4""",
        merchant_id,
        after[0] if after else None,
        after[1] if after else "",
        limit + 1,
    )
    page = [
        {
            "id": r["entry_id"],
            "object": "journal_entry",
            "payment_id": r["payment_id"],
            "kind": r["kind"],
            "currency": r["currency"].strip(),
            "created_at": r["created_at"].isoformat(),
            "postings": orjson.loads(r["postings"]),
        }
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return page, encode_cursor(last["created_at"], last["entry_id"]) if last else None


async def settlement_batches(pool: asyncpg.Pool, merchant_id: str) -> list[dict[str, Any]]:
    """The merchant's settlement batches, newest cutoff first."""
    rows = await pool.fetch(
        """SELECT batch_id, currency, cutoff, settlement_date, instant, status, hold_reason,
                  captured_minor, refunds_minor, disputes_minor, fees_minor, gst_minor,
                  reserve_withheld_minor, reserve_released_minor, net_minor
             FROM settlement_batches WHERE merchant_id = $1 ORDER BY cutoff DESC, batch_id""",
        merchant_id,
    )
    return [_batch(r) for r in rows]


def _batch(r: asyncpg.Record) -> dict[str, Any]:
    view = dict(r)
    view["id"] = view.pop("batch_id")
    view["object"] = "settlement"
    view["currency"] = view["currency"].strip()
    view["cutoff"] = view["cutoff"].isoformat()
    view["settlement_date"] = view["settlement_date"].isoformat()
    return view


async def settlement_lines(
    pool: asyncpg.Pool, merchant_id: str, batch_id: str
) -> list[dict[str, Any]] | None:
    """The line items of one of the merchant's batches, or ``None`` if it has no such batch."""
    owner = await pool.fetchval(
        "SELECT merchant_id FROM settlement_batches WHERE batch_id = $1", batch_id
    )
    if owner != merchant_id:
        return None
    rows = await pool.fetch(
        """SELECT posting_id, entry_id, payment_id, entry_kind, account_id, amount_minor,
                  booked_at, settled
             FROM settlement_lines WHERE batch_id = $1 ORDER BY booked_at, posting_id""",
        batch_id,
    )
    return [
        {
            "posting_id": r["posting_id"],
            "entry_id": r["entry_id"],
            "payment_id": r["payment_id"],
            "kind": r["entry_kind"],
            "account_id": r["account_id"],
            "amount_minor": r["amount_minor"],
            "booked_at": r["booked_at"].isoformat(),
            "settled": r["settled"],
        }
        for r in rows
    ]
