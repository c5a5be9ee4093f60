"""Facts copied from the PostgreSQL book of record into ClickHouse: ledger postings and
settlement batches (ClickHouse migration 0004).

Why from PostgreSQL and not from ``payments.lifecycle``: the ledger is the book of record, and
not every entry comes from a lifecycle event (wallet operations, settlement and payout entries),
while a capture's fee and GST postings depend on the merchant's fee terms at posting time.
Rebuilding postings from events with ``streams.ledger.entry_for`` would be a second ledger that
could disagree with the first; copying the first cannot.

**Ledger postings** are copied in ``ledger_chain.seq`` order.  The chain numbers every journal
entry at commit, one appender at a time (0002's advisory lock), so the sequence is gap-free and
in commit order: once entry *n* is visible, every entry before it is too, and a cursor on
``seq`` never skips a late commit.  Each step copies the postings of the next
``batch_entries`` entries, then records the cursor in ``sink_cursors``.  A crash between the
two copies those postings again; the table is ReplacingMergeTree keyed by ``posting_id``, so
nothing is counted twice (read with FINAL).

**Settlement batches** change state (``payout_pending → paid``), so they are copied by
``updated_at`` with the whole row, versioned by ``updated_at``: ClickHouse keeps the latest.
The cursor re-reads ``settlement_overlap`` before its position, so a batch whose transaction
committed a little after a later one is still seen (batch transactions are short).

:func:`copy_facts` is what the sink calls between Kafka batches: it owns the ClickHouse client
(one process per embedded data path), and PostgreSQL is read in a read-only transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

LEDGER_CURSOR = "postgres.ledger_chain"
SETTLEMENT_CURSOR = "postgres.settlement_batches"
POSTINGS_TABLE = "ledger_postings"
SETTLEMENTS_TABLE = "settlement_batches"
CURSORS_TABLE = "sink_cursors"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PostingFact:
    """ClickHouse ``ledger_postings``: one posting with its entry and account."""

    posting_id: str
    entry_id: str
    chain_seq: int
    entry_kind: str
    payment_id: str
    merchant_id: str
    account_id: str
    account_owner: str
    account_kind: str
    amount_minor: int  # signed minor units: debit positive, credit negative
    currency: str
    booked_at: datetime

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


SETTLEMENT_COLUMNS: tuple[str, ...] = (
    "batch_id",
    "merchant_id",
    "currency",
    "cutoff",
    "settlement_date",
    "instant",
    "status",
    "line_count",
    "captured_minor",
    "refunds_minor",
    "disputes_minor",
    "adjustments_minor",
    "fees_minor",
    "gst_minor",
    "reserve_withheld_minor",
    "reserve_released_minor",
    "instant_fee_minor",
    "instant_fee_gst_minor",
    "net_minor",
    "created_at",
    "updated_at",
)

_POSTINGS_SQL = """
SELECT p.posting_id, p.entry_id, c.seq, e.kind, coalesce(e.payment_id, ''),
       coalesce(e.merchant_id, ''), p.account_id, a.owner, a.kind, p.amount_minor,
       p.currency, p.created_at
  FROM ledger_chain c
  JOIN journal_entries e ON e.entry_id = c.entry_id
  JOIN postings p ON p.entry_id = c.entry_id
  JOIN ledger_accounts a ON a.account_id = p.account_id
 WHERE c.seq > $1 AND c.seq <= $2
 ORDER BY c.seq, p.posting_id"""


def posting_fact(row: Sequence[Any]) -> PostingFact:
    """The ClickHouse row of one ``_POSTINGS_SQL`` result row."""
    (pid, eid, seq, kind, payment, merchant, account, owner, account_kind, amount, cur, at) = row
    return PostingFact(
        pid,
        eid,
        int(seq),
        kind,
        payment,
        merchant,
        account,
        owner,
        account_kind,
        int(amount),
        str(cur).strip(),
        at,
    )


def _time_to_micros(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(microseconds=1)


def _micros_to_time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _settlement_value(column: str, value: Any) -> Any:
    # char(3) comes back padded from PostgreSQL only if shorter; strip to be sure.
    return str(value).strip() if column == "currency" else value


@dataclass(frozen=True)
class FactSettings:
    """How much one copy step takes: ``batch_entries`` journal entries (their postings) and
    ``batch_settlements`` batches; ``settlement_overlap`` how far back the settlement cursor
    re-reads."""

    batch_entries: int = 2_000
    batch_settlements: int = 1_000
    settlement_overlap: timedelta = timedelta(minutes=10)


class LedgerFactsCopier:
    """Copies postings and settlement batches from PostgreSQL into ClickHouse ``database``."""

    def __init__(self, client: Any, database: str, settings: FactSettings | None = None) -> None:
        self.client = client
        self.database = database
        self.settings = settings or FactSettings()

    # -- cursors ---------------------------------------------------------------------------

    def cursor(self, source: str) -> int:
        rows = self.client.query(
            f"SELECT position FROM {self.database}.{CURSORS_TABLE} FINAL "  # noqa: S608
            "WHERE source = {source:String}",
            parameters={"source": source},
        ).result_rows
        return int(rows[0][0]) if rows else 0

    def set_cursor(self, source: str, position: int) -> None:
        self.client.insert(
            f"{self.database}.{CURSORS_TABLE}",
            [[source, position, datetime.now(UTC)]],
            column_names=["source", "position", "updated_at"],
        )

    def reset(self) -> None:
        """Forget both cursors: the next copies start from the beginning (a replay)."""
        for source in (LEDGER_CURSOR, SETTLEMENT_CURSOR):
            self.set_cursor(source, 0)

    # -- postings --------------------------------------------------------------------------

    async def copy_postings_step(self, conn: asyncpg.Connection) -> int:
        """Copy the postings of the next entries after the cursor; returns how many postings
        were written (0: caught up)."""
        after = self.cursor(LEDGER_CURSOR)
        upto = after + self.settings.batch_entries
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            last = await conn.fetchval("SELECT max(seq) FROM ledger_chain")
            if last is None or last <= after:
                return 0
            upto = min(upto, int(last))
            rows = await conn.fetch(_POSTINGS_SQL, after, upto)
        facts = [posting_fact(tuple(r)) for r in rows]
        if facts:
            self.client.insert(
                f"{self.database}.{POSTINGS_TABLE}",
                [[getattr(f, c) for c in PostingFact.columns()] for f in facts],
                column_names=PostingFact.columns(),
            )
        self.set_cursor(LEDGER_CURSOR, upto)
        return len(facts)

    # -- settlements -----------------------------------------------------------------------

    async def copy_settlements(self, conn: asyncpg.Connection) -> int:
        """Copy settlement batches updated since the cursor (less the overlap), a page of
        ``batch_settlements`` at a time; returns how many rows were new past the old cursor
        (0: nothing had changed)."""
        position = self.cursor(SETTLEMENT_CURSOR)  # microseconds since the epoch
        since = max(_EPOCH, _micros_to_time(position) - self.settings.settlement_overlap)
        cols = ", ".join(SETTLEMENT_COLUMNS)
        after_at, after_id, fresh, newest = since, "", 0, position
        while True:
            rows = await conn.fetch(
                f"""SELECT {cols} FROM settlement_batches
                     WHERE (updated_at, batch_id) > ($1, $2)
                     ORDER BY updated_at, batch_id LIMIT $3""",  # noqa: S608
                after_at,
                after_id,
                self.settings.batch_settlements,
            )
            if not rows:
                break
            self.client.insert(
                f"{self.database}.{SETTLEMENTS_TABLE}",
                [[_settlement_value(c, r[c]) for c in SETTLEMENT_COLUMNS] for r in rows],
                column_names=list(SETTLEMENT_COLUMNS),
            )
            stamps = [_time_to_micros(r["updated_at"]) for r in rows]
            fresh += sum(1 for t in stamps if t > position)
            newest = max(newest, *stamps)
            after_at, after_id = rows[-1]["updated_at"], rows[-1]["batch_id"]
            if len(rows) < self.settings.batch_settlements:
                break
        if newest > position:
            self.set_cursor(SETTLEMENT_CURSOR, newest)
        return fresh

    async def copy_all(self, conn: asyncpg.Connection) -> tuple[int, int]:
        """Copy until both sources are caught up; returns (postings, settlement rows)."""
        postings = 0
        while n := await self.copy_postings_step(conn):
            postings += n
        settlements = await self.copy_settlements(conn)
        return postings, settlements

    def totals(self) -> dict[str, int]:
        """Sum of postings per account (minor units, FINAL), as ledger totals compare."""
        rows = self.client.query(
            f"SELECT account_id, sum(amount_minor) FROM {self.database}.{POSTINGS_TABLE} FINAL "  # noqa: S608
            "GROUP BY account_id"
        ).result_rows
        return {str(a): int(s) for a, s in rows}


async def copy_facts(pool: asyncpg.Pool, copier: LedgerFactsCopier) -> tuple[int, int]:
    """One round of copying from the pool's database; see :meth:`LedgerFactsCopier.copy_all`."""
    async with pool.acquire() as conn:
        return await copier.copy_all(conn)
