"""Payment state and ledger postings in PostgreSQL: the worker's writes and the API's reads.

``apply_decisions`` is the one place a decided payment reaches the book of record.  It runs a
whole batch in one transaction and is idempotent: a payment already recorded is not recorded
again, and a journal entry already posted is not posted again, so redelivered messages (after a
crash, a rebalance, a replay) change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from models.events import PaymentCommand, PaymentDeclined
from streams.decisions import Applied, Decided, apply_command
from streams.fees import MdrSchedule
from streams.ledger import FeeTerms, JournalEntry, account_owner_kind
from streams.lifecycle import IllegalTransition, state_from_json, state_to_json
from streams.settlement import PAYOUT_INSTRUCTION_KIND, PAYOUT_KIND, SETTLEMENT_ENTRY_KIND
from warehouse.processor_operations import record_operations
from warehouse.refund_fees import with_fee_reversals


@dataclass(frozen=True)
class BatchResult:
    recorded: list[Decided]  # new payments, recorded now
    replayed: list[Decided]  # already recorded with the same request: nothing changed
    conflicts: list[Decided]  # payment id taken by a different request: refused


@dataclass(frozen=True)
class MerchantProfile:
    merchant_id: str
    state_code: str
    mdr_schedule: MdrSchedule | None  # None: the platform default


async def merchant_profiles(
    conn: asyncpg.Connection | asyncpg.Pool, merchant_ids: Sequence[str]
) -> dict[str, MerchantProfile]:
    """GST state and MDR schedule of each known merchant among ``merchant_ids``."""
    rows = await conn.fetch(
        """SELECT merchant_id, state_code, mdr_schedule::text AS mdr_schedule
             FROM merchants WHERE merchant_id = ANY($1::text[])""",
        list(set(merchant_ids)),
    )
    return {
        r["merchant_id"]: MerchantProfile(
            r["merchant_id"],
            r["state_code"],
            None
            if r["mdr_schedule"] is None
            else MdrSchedule.model_validate_json(r["mdr_schedule"]),
        )
        for r in rows
    }


async def apply_decisions(conn: asyncpg.Connection, batch: Sequence[Decided]) -> BatchResult:
    """Record decided payments and post their journal entries, exactly once per payment.

    One transaction: a payment whose row already exists is not recorded again and its entries
    are not posted again (they also carry deterministic ids with primary keys).
    """
    # One decision per payment id within the batch: a duplicate message is a replay.
    unique: dict[str, Decided] = {}
    in_batch_dupes: list[Decided] = []
    for item in batch:
        pid = item.request.payment_id
        if pid in unique:
            in_batch_dupes.append(item)
        else:
            unique[pid] = item
    items = list(unique.values())
    async with conn.transaction():
        inserted = await conn.fetch(
            """INSERT INTO payments (payment_id, merchant_id, request_fingerprint, amount_minor,
                   currency, method, status, decline_code, requested_at, last_event_id,
                   lifecycle, card_network)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                   $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[],
                   $11::jsonb[], $12::text[])
               ON CONFLICT (payment_id) DO NOTHING
               RETURNING payment_id""",
            [i.request.payment_id for i in items],
            [i.request.merchant_id for i in items],
            [i.request.request_fingerprint for i in items],
            [i.request.amount.minor for i in items],
            [i.request.amount.currency for i in items],
            [i.request.method.type for i in items],
            [i.state.status.value for i in items],
            [_decline_code(i) for i in items],
            [i.request.occurred_at for i in items],
            # An undecided payment (no events yet) names the request that created it.
            [i.events[-1].event_id if i.events else i.request.event_id for i in items],
            [state_to_json(i.state).decode() for i in items],
            [getattr(i.request.method, "network", None) for i in items],
        )
        new_ids = {r["payment_id"] for r in inserted}
        recorded = [i for i in items if i.request.payment_id in new_ids]
        seen = [i for i in items if i.request.payment_id not in new_ids] + in_batch_dupes
        replayed, conflicts = await _split_seen(conn, seen)
        entries = [e for i in recorded for e in i.entries]
        if entries:
            await post_entries(conn, entries)
        if conflicts:
            await conn.executemany(
                """INSERT INTO payment_conflicts (event_id, payment_id, request_fingerprint)
                   VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
                [
                    (c.request.event_id, c.request.payment_id, c.request.request_fingerprint)
                    for c in conflicts
                ],
            )
    return BatchResult(recorded, replayed, conflicts)


def _decline_code(item: Decided) -> str | None:
    return next((e.decline_code for e in item.events if isinstance(e, PaymentDeclined)), None)


async def _split_seen(
    conn: asyncpg.Connection, seen: list[Decided]
) -> tuple[list[Decided], list[Decided]]:
    if not seen:
        return [], []
    rows = await conn.fetch(
        "SELECT payment_id, request_fingerprint FROM payments WHERE payment_id = ANY($1::text[])",
        [s.request.payment_id for s in seen],
    )
    fingerprints = {r["payment_id"]: r["request_fingerprint"] for r in rows}
    replayed: list[Decided] = []
    conflicts: list[Decided] = []
    for item in seen:
        same = fingerprints.get(item.request.payment_id) == item.request.request_fingerprint
        (replayed if same else conflicts).append(item)
    return replayed, conflicts


async def post_entries(conn: asyncpg.Connection, entries: Sequence[JournalEntry]) -> None:
    """Insert journal entries with their postings (and any new accounts); an entry or posting
    that already exists is skipped, so posting the same entries again changes nothing.  Call
    inside a transaction: the database checks balance and chains the entries at commit."""
    postings = [(e, p) for e in entries for p in e.postings]
    accounts = {p.account_id: (*account_owner_kind(p.account_id), e.currency) for e, p in postings}
    await conn.executemany(
        """INSERT INTO ledger_accounts (account_id, owner, kind, currency)
           VALUES ($1, $2, $3, $4) ON CONFLICT (account_id) DO NOTHING""",
        [(account, *rest) for account, rest in accounts.items()],
    )
    await conn.execute(
        """INSERT INTO journal_entries (entry_id, payment_id, merchant_id, kind, currency)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
           ON CONFLICT (entry_id) DO NOTHING""",
        [e.entry_id for e in entries],
        [e.payment_id for e in entries],
        [e.merchant_id or None for e in entries],  # a customer's wallet entry has no merchant
        [e.kind for e in entries],
        [e.currency for e in entries],
    )
    await conn.execute(
        """INSERT INTO postings (posting_id, entry_id, account_id, amount_minor, currency)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
           ON CONFLICT (posting_id) DO NOTHING""",
        [p.posting_id for _, p in postings],
        [e.entry_id for e, _ in postings],
        [p.account_id for _, p in postings],
        [p.amount_minor for _, p in postings],
        [e.currency for e, _ in postings],
    )


async def get_payment(pool: asyncpg.Pool, payment_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        """SELECT payment_id, merchant_id, request_fingerprint, status, amount_minor, currency,
                  method, decline_code, requested_at, updated_at, lifecycle::text AS lifecycle
             FROM payments WHERE payment_id = $1""",
        payment_id,
    )
    return row


@dataclass(frozen=True)
class MerchantTotals:
    """One merchant's payments and what the ledger holds for them, in minor units."""

    merchant_id: str
    currency: str
    captured_count: int
    captured_minor: int  # gross captured, from the payments
    declined_count: int
    pending_minor: int  # ledger: owed to the merchant before fees (credit-normal, positive)
    fees_minor: int  # ledger: MDR charged
    gst_minor: int  # ledger: GST charged on the MDR

    @property
    def net_minor(self) -> int:
        return self.pending_minor - self.fees_minor - self.gst_minor


# Journal entries that settle and pay out merchants' balances, rather than record payments.
SETTLEMENT_KINDS = (SETTLEMENT_ENTRY_KIND, PAYOUT_INSTRUCTION_KIND, PAYOUT_KIND)

# Statuses whose payment has had money captured.
CAPTURED_STATUSES = (
    "partially_captured",
    "captured",
    "partially_refunded",
    "refunded",
    "disputed",
    "charged_back",
)


async def merchant_totals(
    pool: asyncpg.Pool, payment_ids: Sequence[str] | None = None
) -> list[MerchantTotals]:
    """Per merchant and currency: payments captured and declined, and what the ledger's
    pending, fees and GST accounts received for those payments (settlement entries, which move
    those balances on, are left out).  ``payment_ids`` limits both to those payments."""
    rows = await pool.fetch(
        """WITH p AS (
               SELECT merchant_id, currency,
                      count(*) FILTER (WHERE status = ANY($2::text[])) AS captured_count,
                      coalesce(sum(amount_minor) FILTER (WHERE status = ANY($2::text[])), 0)
                          AS captured_minor,
                      count(*) FILTER (WHERE status = 'declined') AS declined_count
                 FROM payments
                WHERE $1::text[] IS NULL OR payment_id = ANY($1::text[])
                GROUP BY merchant_id, currency),
           l AS (
               SELECT a.owner AS merchant_id, a.currency,
                      coalesce(-sum(po.amount_minor) FILTER (WHERE a.kind = 'pending'), 0)
                          AS pending_minor,
                      coalesce(sum(po.amount_minor) FILTER (WHERE a.kind = 'fees'), 0)
                          AS fees_minor,
                      coalesce(sum(po.amount_minor) FILTER (WHERE a.kind = 'gst_payable'), 0)
                          AS gst_minor
                 FROM journal_entries e
                 JOIN postings po USING (entry_id)
                 JOIN ledger_accounts a USING (account_id)
                WHERE a.owner <> 'platform' AND e.kind <> ALL($3::text[])
                  AND ($1::text[] IS NULL OR e.payment_id = ANY($1::text[]))
                GROUP BY a.owner, a.currency)
           SELECT p.*, coalesce(l.pending_minor, 0) AS pending_minor,
                  coalesce(l.fees_minor, 0) AS fees_minor, coalesce(l.gst_minor, 0) AS gst_minor
             FROM p LEFT JOIN l USING (merchant_id, currency)
            ORDER BY captured_minor DESC""",
        None if payment_ids is None else list(payment_ids),
        list(CAPTURED_STATUSES),
        list(SETTLEMENT_KINDS),
    )
    return [
        MerchantTotals(
            r["merchant_id"],
            r["currency"].strip(),
            r["captured_count"],
            int(r["captured_minor"]),
            r["declined_count"],
            int(r["pending_minor"]),
            int(r["fees_minor"]),
            int(r["gst_minor"]),
        )
        for r in rows
    ]


async def decline_counts(pool: asyncpg.Pool, payment_ids: Sequence[str]) -> dict[str, int]:
    rows = await pool.fetch(
        """SELECT decline_code, count(*) AS n FROM payments
            WHERE status = 'declined' AND payment_id = ANY($1::text[])
            GROUP BY decline_code ORDER BY n DESC""",
        list(payment_ids),
    )
    return {r["decline_code"]: r["n"] for r in rows}


async def status_counts(pool: asyncpg.Pool, payment_ids: Sequence[str]) -> dict[str, int]:
    """How many of ``payment_ids`` are in each lifecycle status, most first."""
    rows = await pool.fetch(
        """SELECT status, count(*) AS n FROM payments WHERE payment_id = ANY($1::text[])
            GROUP BY status ORDER BY n DESC, status""",
        list(payment_ids),
    )
    return {r["status"]: r["n"] for r in rows}


async def count_recorded(pool: asyncpg.Pool, payment_ids: Sequence[str]) -> int:
    n: int = await pool.fetchval(
        "SELECT count(*) FROM payments WHERE payment_id = ANY($1::text[])", list(payment_ids)
    )
    return n


@dataclass(frozen=True)
class CommandRefused:
    """A command the payment could not accept, with the state machine's stable code."""

    command: PaymentCommand
    code: str
    reason: str


async def apply_commands(
    conn: asyncpg.Connection,
    commands: Sequence[PaymentCommand],
    fee_terms: Callable[[str, str, str | None], FeeTerms | None],
) -> tuple[list[Applied], list[CommandRefused]]:
    """Apply merchants' commands (capture, void, refund) to stored payments, in order, in one
    transaction: lock the payments, run the state machine, store the new states, post the
    entries and queue each payment's processor operation (``warehouse.processor_operations``).
    A command already applied comes back ``replayed`` and posts nothing new.

    ``fee_terms(merchant_id, method, card_network)`` prices captures.
    """
    applied: list[Applied] = []
    refused: list[CommandRefused] = []
    terms_of: dict[str, FeeTerms | None] = {}
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT payment_id, merchant_id, method, card_network, lifecycle::text AS lifecycle
                 FROM payments WHERE payment_id = ANY($1::text[]) ORDER BY payment_id
                  FOR UPDATE""",
            list({c.payment_id for c in commands}),
        )
        stored = {r["payment_id"]: r for r in rows}
        states = {
            pid: state_from_json(r["lifecycle"].encode())
            for pid, r in stored.items()
            if r["lifecycle"] is not None
        }
        for command in commands:
            row = stored.get(command.payment_id)
            state = states.get(command.payment_id)
            if row is None or state is None or row["merchant_id"] != command.merchant_id:
                refused.append(CommandRefused(command, "unknown_payment", "no such payment"))
                continue
            terms = fee_terms(row["merchant_id"], row["method"], row["card_network"])
            terms_of[command.payment_id] = terms
            try:
                outcome = apply_command(state, command, terms)
            except IllegalTransition as exc:
                refused.append(CommandRefused(command, exc.code, exc.message))
                continue
            states[command.payment_id] = outcome.state
            applied.append(outcome)
        changed = [a for a in applied if not a.replayed]
        if changed:
            latest = {a.state.payment_id: a for a in changed}
            await conn.executemany(
                """UPDATE payments SET status = $2, lifecycle = $3::jsonb, last_event_id = $4,
                          updated_at = clock_timestamp()
                    WHERE payment_id = $1""",
                [
                    (
                        pid,
                        a.state.status.value,
                        state_to_json(a.state).decode(),
                        a.events[-1].event_id if a.events else a.command_event.event_id,
                    )
                    for pid, a in latest.items()
                ],
            )
            # Refunds give back their share of the fee and GST, as the captures charged it.
            entries = await with_fee_reversals(
                conn, [(a.state, a.entries) for a in changed], lambda s: terms_of[s.payment_id]
            )
            if entries:
                await post_entries(conn, entries)
            # The processor holding the payment must be told too: in this same transaction,
            # so the books never change without the operation being queued for it.
            await record_operations(conn, changed)
    return applied, refused
