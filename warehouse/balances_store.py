"""PostgreSQL side of the real-time balances (``streams.balances``): posted entries for the
routing agent, the live settlement view's projection, and ledger balances for the
reconciliation.  Amounts are signed ``int`` paise as in the ledger (debit positive) unless a
name says otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg

from streams.ledger import JournalEntry, Posting
from streams.settlement import Totals

__all__ = [
    "LiveDay",
    "LiveRow",
    "ledger_balances",
    "live_days",
    "posted_entries",
    "upsert_live_rows",
]


def _posting_number(posting_id: str) -> int:
    # Posting ids are "<entry id>:<n>" (streams.ledger, streams.settlement).
    return int(posting_id.rpartition(":")[2])


async def posted_entries(
    conn: asyncpg.Connection | asyncpg.Pool, entry_ids: Sequence[str]
) -> dict[str, JournalEntry]:
    """The journal entries among ``entry_ids`` that are in the ledger, with their postings in
    posting order.  An id with no entry is absent from the result."""
    rows = await conn.fetch(
        """SELECT e.entry_id, e.payment_id, e.merchant_id, e.kind, e.currency,
                  p.posting_id, p.account_id, p.amount_minor
             FROM journal_entries e JOIN postings p USING (entry_id)
            WHERE e.entry_id = ANY($1::text[])""",
        list(entry_ids),
    )
    grouped: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        grouped.setdefault(r["entry_id"], []).append(r)
    out = {}
    for entry_id, group in grouped.items():
        group.sort(key=lambda r: _posting_number(r["posting_id"]))
        first = group[0]
        out[entry_id] = JournalEntry(
            entry_id=entry_id,
            payment_id=first["payment_id"],
            merchant_id=first["merchant_id"] or "",
            kind=first["kind"],
            currency=first["currency"].strip(),
            postings=tuple(
                Posting(r["posting_id"], r["account_id"], int(r["amount_minor"])) for r in group
            ),
        )
    return out


@dataclass(frozen=True)
class LiveRow:
    """One window of the live settlement view: a merchant settled account on one IST day."""

    account_id: str
    merchant_id: str
    currency: str
    day: date
    totals: Totals
    postings: int


async def upsert_live_rows(
    conn: asyncpg.Connection | asyncpg.Pool, rows: Sequence[LiveRow]
) -> None:
    """Write the windows' absolute values; a row already holding at least as many postings is
    left alone (a stale write after a rebalance never replaces a newer one)."""
    await conn.execute(
        """INSERT INTO settlement_live AS old (account_id, merchant_id, currency, booked_day,
               captured_minor, refunds_minor, disputes_minor, adjustments_minor, fees_minor,
               gst_minor, postings)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::bigint[],
                                $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[],
                                $10::bigint[], $11::bigint[])
           ON CONFLICT (account_id, booked_day) DO UPDATE SET
               captured_minor = EXCLUDED.captured_minor, refunds_minor = EXCLUDED.refunds_minor,
               disputes_minor = EXCLUDED.disputes_minor,
               adjustments_minor = EXCLUDED.adjustments_minor,
               fees_minor = EXCLUDED.fees_minor, gst_minor = EXCLUDED.gst_minor,
               postings = EXCLUDED.postings, updated_at = clock_timestamp()
            WHERE old.postings < EXCLUDED.postings""",
        [r.account_id for r in rows],
        [r.merchant_id for r in rows],
        [r.currency for r in rows],
        [r.day for r in rows],
        [r.totals.captured_minor for r in rows],
        [r.totals.refunds_minor for r in rows],
        [r.totals.disputes_minor for r in rows],
        [r.totals.adjustments_minor for r in rows],
        [r.totals.fees_minor for r in rows],
        [r.totals.gst_minor for r in rows],
        [r.postings for r in rows],
    )


@dataclass(frozen=True)
class LiveDay:
    """A merchant's live settlement totals for one IST day and currency (paise)."""

    merchant_id: str
    currency: str
    day: date
    totals: Totals
    postings: int


async def live_days(
    conn: asyncpg.Connection | asyncpg.Pool, merchant_id: str, day: date
) -> list[LiveDay]:
    """The merchant's live view for ``day``, one per currency (empty: nothing booked)."""
    rows = await conn.fetch(
        """SELECT currency, sum(captured_minor) AS captured, sum(refunds_minor) AS refunds,
                  sum(disputes_minor) AS disputes, sum(adjustments_minor) AS adjustments,
                  sum(fees_minor) AS fees, sum(gst_minor) AS gst, sum(postings) AS postings
             FROM settlement_live WHERE merchant_id = $1 AND booked_day = $2
            GROUP BY currency ORDER BY currency""",
        merchant_id,
        day,
    )
    return [
        LiveDay(
            merchant_id,
            r["currency"].strip(),
            day,
            Totals(
                int(r["captured"]),
                int(r["refunds"]),
                int(r["disputes"]),
                int(r["adjustments"]),
                int(r["fees"]),
                int(r["gst"]),
            ),
            int(r["postings"]),
        )
        for r in rows
    ]


async def ledger_balances(
    conn: asyncpg.Connection | asyncpg.Pool, entry_kinds: Sequence[str]
) -> dict[str, int]:
    """Per account, the sum of its postings in entries of ``entry_kinds`` (signed paise)."""
    rows = await conn.fetch(
        """SELECT p.account_id, sum(p.amount_minor) AS balance
             FROM postings p JOIN journal_entries e USING (entry_id)
            WHERE e.kind = ANY($1::text[])
            GROUP BY p.account_id""",
        list(entry_kinds),
    )
    return {r["account_id"]: int(r["balance"]) for r in rows}
