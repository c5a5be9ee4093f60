"""Settlement in PostgreSQL: read a merchant's unsettled ledger lines up to a cutoff, check the
batch :mod:`streams.settlement` computes from them against the ledger, record it, post its
entries through :func:`warehouse.payments.post_entries`, instruct and complete payouts.

Amounts are ``int`` paise (signed where they are postings).  Every function takes "now" from
its caller (an injected clock), never from the machine; ``journal_entries.created_at`` is the
database's own clock, and it alone decides which cutoff a posting falls before.

Exactly once:

* a batch's id is derived from (merchant, currency, cutoff), so a re-run at the same cutoff finds
  the recorded batch and changes nothing (a ``held`` batch is re-evaluated instead: that is how
  an operator retries it once the cause is fixed);
* a posting is settled by at most one batch (``settlement_lines`` partial unique index), and the
  entries a batch posts carry ids derived from the batch id;
* one merchant's settlement runs under a transaction-scoped advisory lock, so two runners do
  not race for the same merchant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from streams.fees import MdrSchedule
from streams.ledger import merchant_account
from streams.settlement import (
    SETTLED_KINDS,
    SETTLEMENT_ENTRY_KIND,
    BatchReport,
    BatchStatus,
    InstantTerms,
    LedgerLine,
    LedgerView,
    LineItem,
    PayoutAccount,
    ReserveHold,
    SettlementBatch,
    SettlementSchedule,
    Totals,
    batch_id_for,
    compute_batch,
    cutoff_for,
    decide_status,
    due_cutoff,
    ist_date,
    line_items,
    mask_account_number,
    payout_completion_entry,
    payout_instruction_entry,
    settlement_entry,
    validate_ifsc,
    validate_utr,
    verify_batch,
)
from warehouse.payments import post_entries

__all__ = [
    "BatchOutcome",
    "MerchantSettlementConfig",
    "PayoutOutcome",
    "PlatformTerms",
    "SettlementError",
    "complete_payout",
    "configure_merchant",
    "ledger_view",
    "load_report",
    "merchant_config",
    "open_reserve_holds",
    "prepare_batch",
    "record_batch",
    "run_settlement",
    "settle_merchant",
    "unsettled_lines",
]

# Statuses a re-run leaves alone (a held batch is re-evaluated).
_FINAL: frozenset[str] = frozenset(
    {"carried_forward", "superseded", "settled", "payout_pending", "paid"}
)


class SettlementError(Exception):
    """A settlement request that cannot be carried out: an unknown merchant or batch, a payout
    that is not pending, a wrong amount, a bad or reused UTR, a cutoff in the future.  The
    message says which; nothing was written."""


@dataclass(frozen=True)
class PlatformTerms:
    """The gateway's side: its GST state and the MDR schedule of merchants without their own
    (both from the worker's settings, read once at the entry point)."""

    gateway_state: str
    default_mdr: MdrSchedule


@dataclass(frozen=True)
class MerchantSettlementConfig:
    merchant_id: str
    state_code: str
    schedule: SettlementSchedule
    payout_account: PayoutAccount | None
    mdr: MdrSchedule | None  # None: the platform default


@dataclass(frozen=True)
class BatchOutcome:
    """What a settlement run did for one batch: ``changed`` is False when the batch was already
    recorded and the run left it alone."""

    batch_id: str
    merchant_id: str
    status: BatchStatus
    net_minor: int
    line_count: int
    reasons: tuple[str, ...]
    changed: bool


@dataclass(frozen=True)
class PayoutOutcome:
    batch_id: str
    amount_minor: int
    utr: str
    changed: bool  # False: this UTR had already completed this payout


def _lock_key(merchant_id: str) -> str:
    return f"settlement:{merchant_id}"


async def _lock_merchant(conn: asyncpg.Connection, merchant_id: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _lock_key(merchant_id)
    )


# --------------------------------------------------------------------------------------------
# Merchant configuration
# --------------------------------------------------------------------------------------------


async def merchant_config(conn: asyncpg.Connection, merchant_id: str) -> MerchantSettlementConfig:
    """The merchant's GST state, MDR schedule, settlement schedule (default: T+1, no reserve,
    no instant) and payout account.  Raises :class:`SettlementError` for an unknown merchant."""
    row = await conn.fetchrow(
        """SELECT m.state_code, m.mdr_schedule::text AS mdr, s.schedule::text AS schedule,
                  s.holder_name, s.account_masked, s.ifsc
             FROM merchants m LEFT JOIN merchant_settlement_profiles s USING (merchant_id)
            WHERE m.merchant_id = $1""",
        merchant_id,
    )
    if row is None:
        raise SettlementError(f"unknown merchant {merchant_id!r}")
    account = (
        None
        if row["account_masked"] is None
        else PayoutAccount(row["holder_name"], row["account_masked"], row["ifsc"])
    )
    return MerchantSettlementConfig(
        merchant_id=merchant_id,
        state_code=row["state_code"],
        schedule=SettlementSchedule()
        if row["schedule"] is None
        else SettlementSchedule.model_validate_json(row["schedule"]),
        payout_account=account,
        mdr=None if row["mdr"] is None else MdrSchedule.model_validate_json(row["mdr"]),
    )


async def configure_merchant(
    conn: asyncpg.Connection,
    merchant_id: str,
    *,
    now: datetime,
    schedule: SettlementSchedule | None = None,
    holder_name: str | None = None,
    account_number: str | None = None,
    ifsc: str | None = None,
) -> MerchantSettlementConfig:
    """Set the merchant's settlement schedule and/or payout account (holder, account number —
    stored masked — and IFSC, all three together).  What is not given is kept."""
    bank = (holder_name, account_number, ifsc)
    if any(v is not None for v in bank) and not all(v for v in bank):
        raise SettlementError("a payout account needs holder name, account number and IFSC")
    masked = None if account_number is None else mask_account_number(account_number)
    if ifsc is not None:
        validate_ifsc(ifsc)
    current = await merchant_config(conn, merchant_id)
    await conn.execute(
        """INSERT INTO merchant_settlement_profiles AS old
               (merchant_id, schedule, holder_name, account_masked, ifsc, updated_at)
           VALUES ($1, $2::jsonb, $3, $4, $5, $6)
           ON CONFLICT (merchant_id) DO UPDATE SET
               schedule = EXCLUDED.schedule,
               holder_name = coalesce(EXCLUDED.holder_name, old.holder_name),
               account_masked = coalesce(EXCLUDED.account_masked, old.account_masked),
               ifsc = coalesce(EXCLUDED.ifsc, old.ifsc),
               updated_at = EXCLUDED.updated_at""",
        merchant_id,
        (schedule or current.schedule).model_dump_json(),
        holder_name,
        masked,
        ifsc,
        now,
    )
    return await merchant_config(conn, merchant_id)


# --------------------------------------------------------------------------------------------
# Reading the ledger
# --------------------------------------------------------------------------------------------


def _settled_accounts(merchant_id: str, currency: str) -> list[str]:
    return [merchant_account(merchant_id, kind, currency) for kind in SETTLED_KINDS]


def _line(r: asyncpg.Record) -> LedgerLine:
    return LedgerLine(
        posting_id=r["posting_id"],
        entry_id=r["entry_id"],
        payment_id=r["payment_id"],
        entry_kind=r["entry_kind"],
        account_id=r["account_id"],
        amount_minor=int(r["amount_minor"]),
        booked_at=r["booked_at"],
    )


_LINE_COLUMNS = """p.posting_id, p.entry_id, e.payment_id, e.kind AS entry_kind, p.account_id,
                   p.amount_minor, e.created_at AS booked_at"""


async def unsettled_lines(
    conn: asyncpg.Connection, merchant_id: str, currency: str, cutoff: datetime
) -> list[LedgerLine]:
    """Every posting on the merchant's ``pending``, ``refunds``, ``fees`` and ``gst_payable``
    accounts in ``currency`` whose entry was booked before ``cutoff`` and that no batch has
    settled (settlement entries themselves excluded), oldest first."""
    rows = await conn.fetch(
        f"""SELECT {_LINE_COLUMNS}
              FROM postings p JOIN journal_entries e USING (entry_id)
             WHERE p.account_id = ANY($1::text[]) AND e.created_at < $2
               AND e.kind <> $3
               AND NOT EXISTS (SELECT 1 FROM settlement_lines s
                                WHERE s.posting_id = p.posting_id AND s.settled)
             ORDER BY e.created_at, p.entry_id, p.posting_id""",  # noqa: S608
        _settled_accounts(merchant_id, currency),
        cutoff,
        SETTLEMENT_ENTRY_KIND,
    )
    return [_line(r) for r in rows]


async def open_reserve_holds(
    conn: asyncpg.Connection, merchant_id: str, currency: str
) -> list[ReserveHold]:
    """The merchant's rolling-reserve holds not yet released."""
    rows = await conn.fetch(
        """SELECT hold_id, amount_minor, held_at, release_at FROM settlement_reserve_holds
            WHERE merchant_id = $1 AND currency = $2 AND released_by IS NULL
            ORDER BY hold_id""",
        merchant_id,
        currency,
    )
    return [
        ReserveHold(r["hold_id"], int(r["amount_minor"]), r["held_at"], r["release_at"])
        for r in rows
    ]


async def ledger_view(conn: asyncpg.Connection, batch: SettlementBatch) -> LedgerView:
    """What the ledger says about ``batch`` (see :class:`streams.settlement.LedgerView`), read
    independently of how the batch was computed."""
    ids = [line.posting_id for line in batch.lines]
    entries = sorted({line.entry_id for line in batch.lines})
    found = await conn.fetch(
        f"""SELECT {_LINE_COLUMNS} FROM postings p JOIN journal_entries e USING (entry_id)
             WHERE p.posting_id = ANY($1::text[])""",  # noqa: S608
        ids,
    )
    sums = await conn.fetch(
        """SELECT a.kind, sum(p.amount_minor) AS total
             FROM postings p JOIN ledger_accounts a USING (account_id)
            WHERE p.posting_id = ANY($1::text[]) GROUP BY a.kind""",
        ids,
    )
    whole = await conn.fetch(
        """SELECT entry_id, array_agg(posting_id) AS postings FROM postings
            WHERE entry_id = ANY($1::text[]) AND account_id = ANY($2::text[])
            GROUP BY entry_id""",
        entries,
        _settled_accounts(batch.merchant_id, batch.currency),
    )
    settled_by = await conn.fetch(
        """SELECT posting_id, batch_id FROM settlement_lines
            WHERE settled AND posting_id = ANY($1::text[]) AND batch_id <> $2""",
        ids,
        batch.batch_id,
    )
    chain = await conn.fetch(
        """SELECT u.entry_id, CASE WHEN c.entry_id IS NULL THEN 'entry not in the chain'
                                   ELSE 'entry or postings changed' END AS problem
             FROM unnest($1::text[]) AS u (entry_id)
             LEFT JOIN ledger_chain c ON c.entry_id = u.entry_id
            WHERE c.entry_id IS NULL
               OR ledger_entry_digest(c.entry_id, c.prev_hash) IS DISTINCT FROM c.entry_hash
            ORDER BY u.entry_id""",
        entries,
    )
    reserve = await conn.fetchval(
        "SELECT coalesce(-sum(amount_minor), 0) FROM postings WHERE account_id = $1",
        merchant_account(batch.merchant_id, "rolling_reserve", batch.currency),
    )
    config = await merchant_config(conn, batch.merchant_id)
    return LedgerView(
        found={r["posting_id"]: _line(r) for r in found},
        account_sums={r["kind"]: int(r["total"]) for r in sums},
        entry_postings={r["entry_id"]: frozenset(r["postings"]) for r in whole},
        settled_by={r["posting_id"]: r["batch_id"] for r in settled_by},
        chain_problems=tuple(f"{r['entry_id']}: {r['problem']}" for r in chain),
        open_holds=tuple(await open_reserve_holds(conn, batch.merchant_id, batch.currency)),
        rolling_reserve_minor=int(reserve),
        payout_account=config.payout_account,
    )


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def _resolve_cutoff(
    schedule: SettlementSchedule,
    *,
    now: datetime,
    cutoff: datetime | None,
    settlement_date: date | None,
    instant: bool,
) -> datetime:
    if instant:
        resolved = now
    elif cutoff is not None:
        resolved = cutoff
    elif settlement_date is not None:
        resolved = cutoff_for(settlement_date, schedule)
    else:
        resolved = due_cutoff(now, schedule)
    if resolved.tzinfo is None:
        raise SettlementError(f"cutoff {resolved.isoformat()} has no time zone")
    if resolved > now:
        raise SettlementError(f"cutoff {resolved.isoformat()} is after now ({now.isoformat()})")
    return resolved


async def prepare_batch(
    conn: asyncpg.Connection,
    merchant_id: str,
    *,
    now: datetime,
    terms: PlatformTerms,
    cutoff: datetime | None = None,
    settlement_date: date | None = None,
    currency: str = "INR",
    instant: bool = False,
) -> SettlementBatch | None:
    """Compute (not record) the merchant's batch.  The cutoff is ``cutoff`` if given, else that
    of ``settlement_date`` under the merchant's schedule, else the one due on ``now``'s IST day;
    an instant batch's cutoff is ``now``.  ``None`` when there is nothing to settle.  Raises
    :class:`SettlementError` for a cutoff after ``now`` or instant settlement refused."""
    config = await merchant_config(conn, merchant_id)
    resolved = _resolve_cutoff(
        config.schedule, now=now, cutoff=cutoff, settlement_date=settlement_date, instant=instant
    )
    lines = await unsettled_lines(conn, merchant_id, currency, resolved)
    holds = await open_reserve_holds(conn, merchant_id, currency)
    instant_terms = (
        InstantTerms(config.mdr or terms.default_mdr, config.state_code, terms.gateway_state)
        if instant
        else None
    )
    try:
        return compute_batch(
            merchant_id=merchant_id,
            currency=currency,
            cutoff=resolved,
            lines=lines,
            open_holds=holds,
            schedule=config.schedule,
            instant=instant_terms,
        )
    except ValueError as exc:
        raise SettlementError(str(exc)) from exc


async def settle_merchant(
    conn: asyncpg.Connection,
    merchant_id: str,
    *,
    now: datetime,
    terms: PlatformTerms,
    cutoff: datetime | None = None,
    settlement_date: date | None = None,
    currency: str = "INR",
    instant: bool = False,
) -> BatchOutcome | None:
    """Settle one merchant at one cutoff (resolved as in :func:`prepare_batch`), in one
    transaction under the merchant's lock: a batch already recorded at that cutoff is returned
    as it is (``changed=False``); a held one is re-evaluated; otherwise the batch is computed,
    checked against the ledger and recorded (:func:`record_batch`).  ``None``: nothing to
    settle."""
    async with conn.transaction():
        await _lock_merchant(conn, merchant_id)
        config = await merchant_config(conn, merchant_id)
        resolved = _resolve_cutoff(
            config.schedule,
            now=now,
            cutoff=cutoff,
            settlement_date=settlement_date,
            instant=instant,
        )
        batch_id = batch_id_for(merchant_id, currency, resolved, instant=instant)
        existing = await conn.fetchrow(
            "SELECT * FROM settlement_batches WHERE batch_id = $1 FOR UPDATE", batch_id
        )
        if existing is not None and existing["status"] in _FINAL:
            return _outcome_of(existing, changed=False)
        batch = await prepare_batch(
            conn,
            merchant_id,
            now=now,
            terms=terms,
            cutoff=resolved,
            currency=currency,
            instant=instant,
        )
        if batch is not None:
            return await record_batch(conn, batch, now=now)
        if existing is None:
            return None
        # A held batch whose lines a later batch has since settled.
        row = await conn.fetchrow(
            """UPDATE settlement_batches SET status = 'superseded', hold_reason = NULL,
                      updated_at = $2 WHERE batch_id = $1 RETURNING *""",
            batch_id,
            now,
        )
        return _outcome_of(row, changed=True)


def _outcome_of(row: asyncpg.Record, *, changed: bool) -> BatchOutcome:
    reason = row["hold_reason"]
    return BatchOutcome(
        batch_id=row["batch_id"],
        merchant_id=row["merchant_id"],
        status=row["status"],
        net_minor=int(row["net_minor"]),
        line_count=row["line_count"],
        reasons=() if reason is None else tuple(reason.split("\n")),
        changed=changed,
    )


async def record_batch(
    conn: asyncpg.Connection, batch: SettlementBatch, *, now: datetime
) -> BatchOutcome:
    """Check ``batch`` against the ledger (:func:`streams.settlement.verify_batch`) and record
    it: ``held`` (with every reason) or ``carried_forward`` records the batch and its lines as
    unsettled evidence and posts nothing; otherwise its lines are marked settled, its
    settlement entry and payout instruction are posted, its reserve hold recorded and the holds
    it releases marked released.  Call within a transaction (:func:`settle_merchant` does); a
    batch already recorded other than ``held`` is refused by the database."""
    async with conn.transaction():
        await _lock_merchant(conn, batch.merchant_id)
        view = await ledger_view(conn, batch)
        reasons = verify_batch(batch, view)
        status = decide_status(batch, reasons)
        released = status in ("settled", "payout_pending")
        entry = settlement_entry(batch) if released else None
        instruction = payout_instruction_entry(batch) if status == "payout_pending" else None
        posted = [e for e in (entry, instruction) if e is not None]
        if posted:
            await post_entries(conn, posted)
        entry_id = None if entry is None else entry.entry_id
        await _write_batch(conn, batch, status, reasons, entry_id=entry_id, now=now)
        await _write_lines(conn, batch, settled=released)
        if released:
            await _write_reserve(conn, batch)
        if instruction is not None:
            account = view.payout_account
            assert account is not None  # verify_batch holds a payable batch without one
            await conn.execute(
                """INSERT INTO settlement_payouts (batch_id, amount_minor, currency, holder_name,
                       beneficiary, ifsc, instruction_entry_id, instructed_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                batch.batch_id,
                batch.net_minor,
                batch.currency,
                account.holder_name,
                account.account_masked,
                account.ifsc,
                instruction.entry_id,
                now,
            )
    return BatchOutcome(
        batch_id=batch.batch_id,
        merchant_id=batch.merchant_id,
        status=status,
        net_minor=batch.net_minor,
        line_count=len(batch.items),
        reasons=reasons,
        changed=True,
    )


async def _write_batch(
    conn: asyncpg.Connection,
    batch: SettlementBatch,
    status: BatchStatus,
    reasons: Sequence[str],
    *,
    entry_id: str | None,
    now: datetime,
) -> None:
    t = batch.totals
    # An existing row can only be a held batch (settle_merchant returns final ones untouched;
    # the trigger refuses rewriting them).
    await conn.execute(
        """INSERT INTO settlement_batches (batch_id, merchant_id, currency, cutoff,
               settlement_date, instant, status, hold_reason, line_count, captured_minor,
               refunds_minor, disputes_minor, adjustments_minor, fees_minor, gst_minor,
               reserve_withheld_minor, reserve_released_minor, instant_fee_minor,
               instant_fee_gst_minor, net_minor, entry_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19, $20, $21, $22, $22)
           ON CONFLICT (batch_id) DO UPDATE SET
               status = EXCLUDED.status, hold_reason = EXCLUDED.hold_reason,
               line_count = EXCLUDED.line_count, captured_minor = EXCLUDED.captured_minor,
               refunds_minor = EXCLUDED.refunds_minor, disputes_minor = EXCLUDED.disputes_minor,
               adjustments_minor = EXCLUDED.adjustments_minor, fees_minor = EXCLUDED.fees_minor,
               gst_minor = EXCLUDED.gst_minor,
               reserve_withheld_minor = EXCLUDED.reserve_withheld_minor,
               reserve_released_minor = EXCLUDED.reserve_released_minor,
               instant_fee_minor = EXCLUDED.instant_fee_minor,
               instant_fee_gst_minor = EXCLUDED.instant_fee_gst_minor,
               net_minor = EXCLUDED.net_minor, entry_id = EXCLUDED.entry_id,
               updated_at = EXCLUDED.updated_at""",
        batch.batch_id,
        batch.merchant_id,
        batch.currency,
        batch.cutoff,
        batch.settlement_date,
        batch.instant,
        status,
        "\n".join(reasons) if reasons else None,
        len(batch.items),
        t.captured_minor,
        t.refunds_minor,
        t.disputes_minor,
        t.adjustments_minor,
        t.fees_minor,
        t.gst_minor,
        batch.reserve_withheld_minor,
        batch.reserve_released_minor,
        batch.instant_fee_minor,
        batch.instant_fee_gst_minor,
        batch.net_minor,
        entry_id,
        now,
    )


async def _write_lines(conn: asyncpg.Connection, batch: SettlementBatch, *, settled: bool) -> None:
    # Evidence of an earlier held attempt of this batch is replaced by this attempt's lines.
    await conn.execute(
        "DELETE FROM settlement_lines WHERE batch_id = $1 AND NOT settled", batch.batch_id
    )
    lines = batch.lines
    # Lines naming postings, entries or accounts that do not exist (a tampered batch, which is
    # held with that reason) cannot be kept as evidence; the joins leave them out.
    await conn.execute(
        """INSERT INTO settlement_lines (batch_id, posting_id, entry_id, payment_id, entry_kind,
               account_id, amount_minor, booked_at, settled)
           SELECT $1, u.posting_id, u.entry_id, u.payment_id, u.entry_kind, u.account_id,
                  u.amount_minor, u.booked_at, $9
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::bigint[], $8::timestamptz[])
                  AS u (posting_id, entry_id, payment_id, entry_kind, account_id, amount_minor,
                        booked_at)
             JOIN postings p ON p.posting_id = u.posting_id
             JOIN journal_entries e ON e.entry_id = u.entry_id
             JOIN ledger_accounts a ON a.account_id = u.account_id
            WHERE u.amount_minor <> 0""",
        batch.batch_id,
        [line.posting_id for line in lines],
        [line.entry_id for line in lines],
        [line.payment_id for line in lines],
        [line.entry_kind for line in lines],
        [line.account_id for line in lines],
        [line.amount_minor for line in lines],
        [line.booked_at for line in lines],
        settled,
    )


async def _write_reserve(conn: asyncpg.Connection, batch: SettlementBatch) -> None:
    if batch.reserve_withheld_minor:
        assert batch.reserve_release_at is not None
        await conn.execute(
            """INSERT INTO settlement_reserve_holds (hold_id, merchant_id, currency, amount_minor,
                   held_at, release_at) VALUES ($1, $2, $3, $4, $5, $6)""",
            batch.batch_id,
            batch.merchant_id,
            batch.currency,
            batch.reserve_withheld_minor,
            batch.cutoff,
            batch.reserve_release_at,
        )
    if batch.released_holds:
        ids = [h.hold_id for h in batch.released_holds]
        done = await conn.fetch(
            """UPDATE settlement_reserve_holds SET released_by = $2
                WHERE hold_id = ANY($1::text[]) AND released_by IS NULL RETURNING hold_id""",
            ids,
            batch.batch_id,
        )
        if len(done) != len(ids):  # verify_batch saw them open under the merchant's lock
            raise SettlementError(f"reserve holds {ids} were released concurrently")


async def run_settlement(
    conn: asyncpg.Connection,
    *,
    now: datetime,
    terms: PlatformTerms,
    merchant_ids: Sequence[str] | None = None,
    cutoff: datetime | None = None,
    settlement_date: date | None = None,
    currency: str = "INR",
    instant: bool = False,
) -> list[BatchOutcome]:
    """Settle every merchant (or ``merchant_ids``) that has postings on its settled accounts or
    open reserve holds in ``currency``: one transaction per merchant (see
    :func:`settle_merchant`).  Merchants with nothing to settle are left out of the result."""
    if merchant_ids is None:
        rows = await conn.fetch(
            """SELECT DISTINCT a.owner FROM ledger_accounts a
                 JOIN merchants m ON m.merchant_id = a.owner
                WHERE a.currency = $1 AND a.kind = ANY($2::text[])
                ORDER BY a.owner""",
            currency,
            [*SETTLED_KINDS, "rolling_reserve"],
        )
        merchant_ids = [r["owner"] for r in rows]
    outcomes = []
    for merchant_id in merchant_ids:
        outcome = await settle_merchant(
            conn,
            merchant_id,
            now=now,
            terms=terms,
            cutoff=cutoff,
            settlement_date=settlement_date,
            currency=currency,
            instant=instant,
        )
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


# --------------------------------------------------------------------------------------------
# Payouts
# --------------------------------------------------------------------------------------------


async def complete_payout(
    conn: asyncpg.Connection,
    batch_id: str,
    utr: str,
    *,
    now: datetime,
    amount_minor: int | None = None,
) -> PayoutOutcome:
    """Record that the bank paid batch ``batch_id``'s payout under ``utr``: posts
    ``settlement_payable`` → ``escrow_bank`` and marks the batch ``paid``.  Completing again
    with the same UTR changes nothing.  ``amount_minor``, when given (the amount on the bank
    statement), must equal the instructed amount.  Raises :class:`SettlementError` for an
    unknown batch, a batch with no pending payout, a wrong amount, or a UTR that is malformed,
    misdated or already used for another payout."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """SELECT b.merchant_id, b.status, b.hold_reason, b.currency, p.amount_minor,
                      p.utr, p.instructed_at
                 FROM settlement_batches b LEFT JOIN settlement_payouts p USING (batch_id)
                WHERE b.batch_id = $1 FOR UPDATE OF b""",
            batch_id,
        )
        if row is None:
            raise SettlementError(f"unknown settlement batch {batch_id!r}")
        if row["status"] == "paid":
            if row["utr"] != utr:
                raise SettlementError(f"batch {batch_id} was already paid under UTR {row['utr']}")
            return PayoutOutcome(batch_id, int(row["amount_minor"]), utr, changed=False)
        if row["status"] != "payout_pending":
            why = f" ({row['hold_reason']})" if row["hold_reason"] else ""
            raise SettlementError(
                f"batch {batch_id} is {row['status']}{why}: no payout to complete"
            )
        amount = int(row["amount_minor"])
        if amount_minor is not None and amount_minor != amount:
            raise SettlementError(
                f"batch {batch_id} pays {amount} paise, the completion says {amount_minor}"
            )
        try:
            validate_utr(utr, instructed_on=ist_date(row["instructed_at"]), today=ist_date(now))
        except ValueError as exc:
            raise SettlementError(str(exc)) from exc
        used = await conn.fetchval("SELECT batch_id FROM settlement_payouts WHERE utr = $1", utr)
        if used is not None:
            raise SettlementError(f"UTR {utr} already completed the payout of {used}")
        entry = payout_completion_entry(batch_id, row["merchant_id"], row["currency"], amount)
        await post_entries(conn, [entry])
        await conn.execute(
            """UPDATE settlement_payouts SET utr = $2, completion_entry_id = $3, completed_at = $4
                WHERE batch_id = $1""",
            batch_id,
            utr,
            entry.entry_id,
            now,
        )
        await conn.execute(
            "UPDATE settlement_batches SET status = 'paid', updated_at = $2 WHERE batch_id = $1",
            batch_id,
            now,
        )
    return PayoutOutcome(batch_id, amount, utr, changed=True)


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


async def load_report(conn: asyncpg.Connection, batch_id: str) -> BatchReport:
    """The recorded batch with its line items (settled lines, or a held/carried-forward
    attempt's evidence) and payout.  Raises :class:`SettlementError` for an unknown batch."""
    row = await conn.fetchrow(
        """SELECT b.*, p.amount_minor AS payout_minor, p.beneficiary, p.ifsc, p.utr,
                  p.completed_at
             FROM settlement_batches b LEFT JOIN settlement_payouts p USING (batch_id)
            WHERE b.batch_id = $1""",
        batch_id,
    )
    if row is None:
        raise SettlementError(f"unknown settlement batch {batch_id!r}")
    lines = await conn.fetch(
        """SELECT posting_id, entry_id, payment_id, entry_kind, account_id, amount_minor,
                  booked_at
             FROM settlement_lines WHERE batch_id = $1""",
        batch_id,
    )
    items: tuple[LineItem, ...] = line_items(_line(r) for r in lines)
    return BatchReport(
        batch_id=batch_id,
        merchant_id=row["merchant_id"],
        currency=row["currency"].strip(),
        cutoff=row["cutoff"],
        settlement_date=row["settlement_date"],
        instant=row["instant"],
        status=row["status"],
        hold_reason=row["hold_reason"],
        items=items,
        totals=Totals(
            int(row["captured_minor"]),
            int(row["refunds_minor"]),
            int(row["disputes_minor"]),
            int(row["adjustments_minor"]),
            int(row["fees_minor"]),
            int(row["gst_minor"]),
        ),
        reserve_withheld_minor=int(row["reserve_withheld_minor"]),
        reserve_released_minor=int(row["reserve_released_minor"]),
        instant_fee_minor=int(row["instant_fee_minor"]),
        instant_fee_gst_minor=int(row["instant_fee_gst_minor"]),
        net_minor=int(row["net_minor"]),
        updated_at=row["updated_at"],
        payout_amount_minor=None if row["payout_minor"] is None else int(row["payout_minor"]),
        beneficiary=row["beneficiary"],
        ifsc=row["ifsc"],
        utr=row["utr"],
        paid_at=row["completed_at"],
    )
