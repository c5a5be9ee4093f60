"""Daily RBI compliance report: merchant settlement within T+1, and reversals of failed
transactions within RBI's turnaround times with the compensation owed when late
(docs/reports.md).

Period: an IST day D; the report is a snapshot **as of the end of D** (00:00 IST of D+1).

**Settlement T+1** (RBI Payment Aggregator Directions: settlement with merchants through the
escrow account no later than T+1; /work/shared/FACTS.md "India").  T is the IST day a capture
was booked; it must be *paid* (payout completed with a UTR) by the end of T+1.  Rows: every
capture due on D (T = D−1), every capture paid on D after its due day, and every capture still
unpaid past its due day (booked up to :data:`SETTLEMENT_LOOKBACK_DAYS` before D).  A capture
held back by a rolling reserve, a held or carried-forward batch, or a merchant on a longer
schedule still counts: the report states why (the batch status) so compliance can judge it.

**Failed transactions** (RBI circular DPSS.CO.PD No.629/02.01.014/2019-20, 20 Sep 2019,
"Harmonisation of TAT and customer compensation for failed transactions"): a customer debited
for a transaction that failed must get the money back by T + n days (n per channel,
:data:`REVERSAL_TAT`), or is owed ₹100 for every day of delay beyond T + n.  T is the IST day of
the debit, R the IST day the reversal reached the customer.  Days late = R − (T + n) (as of D
while outstanding, so the figure is what has accrued so far).  Compensation = max(0, days late)
× ₹100, in paise.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import asyncpg

from models.money import CURRENCY_EXPONENTS
from streams.settlement import IST
from warehouse.reports.framework import ReportInputs, day_window
from warehouse.reports.quality import Expectation, Suite, TableSpec, epoch_us

__all__ = [
    "COMPENSATION_PER_DAY_MINOR",
    "REVERSAL_TAT",
    "SETTLEMENT_LOOKBACK_DAYS",
    "SETTLEMENT_TAT_DAYS",
    "ReversalRule",
    "build_rbi_report",
    "load_rbi_inputs",
    "rbi_suite",
    "record_failed_transaction",
    "record_reversal",
    "reversal_status",
    "settlement_status",
]

SETTLEMENT_TAT_DAYS = 1
"""RBI: payment aggregators settle with merchants T+1 (FACTS.md: "RBI: payment aggregators
settle through an escrow account, T+1 (PA Directions 2025)")."""

COMPENSATION_PER_DAY_MINOR = 100_00
"""₹100 per day of delay beyond the turnaround time, for every channel of the circular
(FACTS.md: "UPI/IMPS auto-reversal by T+1, then ₹100 per day compensation")."""

SETTLEMENT_LOOKBACK_DAYS = 30
"""How far back unpaid captures are listed (a longer backlog is an incident, not a report)."""

FAILED_LOOKBACK_DAYS = 90
"""How far back outstanding failed transactions are listed (debit older than this: incident)."""


@dataclass(frozen=True)
class ReversalRule:
    """A channel's turnaround: reversal by T + ``tat_days``, then ``compensation_per_day_minor``
    for each day late.  ``source`` says where the figure comes from."""

    tat_days: int
    compensation_per_day_minor: int
    incident: str
    source: str


_FACTS = "FACTS.md (RBI circular of 20 Sep 2019)"
_CIRCULAR = (
    "RBI circular DPSS.CO.PD No.629/02.01.014/2019-20 annex (secondary: press reproductions of "
    "its table; not in FACTS.md, confirm against the circular)"
)

REVERSAL_TAT: Mapping[str, ReversalRule] = {
    "upi": ReversalRule(
        1, COMPENSATION_PER_DAY_MINOR, "UPI transfer: debited, beneficiary not credited", _FACTS
    ),
    "imps": ReversalRule(
        1, COMPENSATION_PER_DAY_MINOR, "IMPS: debited, beneficiary not credited", _FACTS
    ),
    "upi_merchant": ReversalRule(
        5,
        COMPENSATION_PER_DAY_MINOR,
        "UPI payment to merchant: debited, confirmation not received at merchant",
        _CIRCULAR,
    ),
    "card_not_present": ReversalRule(
        5,
        COMPENSATION_PER_DAY_MINOR,
        "Card not present (e-commerce): debited, confirmation not received at merchant",
        _CIRCULAR,
    ),
    "card_present": ReversalRule(
        5,
        COMPENSATION_PER_DAY_MINOR,
        "Card present (PoS): debited, charge-slip not generated",
        _CIRCULAR,
    ),
    "card_to_card": ReversalRule(
        1, COMPENSATION_PER_DAY_MINOR, "Card to card transfer: beneficiary not credited", _CIRCULAR
    ),
}
"""The channels the circular covers that a gateway carries.  Netbanking and NEFT/RTGS are not in
the circular's table: such failures are listed as ``not_covered`` with no compensation."""

SettlementState = Literal["paid_on_time", "paid_late", "unpaid_overdue", "not_due"]
ReversalState = Literal["reversed_on_time", "reversed_late", "within_tat", "overdue", "not_covered"]


# --------------------------------------------------------------------------------------------
# Pure rules
# --------------------------------------------------------------------------------------------


def settlement_status(
    booked_day: date, paid_day: date | None, as_of_day: date
) -> tuple[SettlementState, date, int]:
    """(state, due day, days late) of a capture booked on IST day ``booked_day`` (T), paid on
    ``paid_day`` (``None``: not paid by the end of ``as_of_day``).  Due: the end of T + 1.

    Paid: ``paid_on_time`` or ``paid_late`` with days late = paid day − due day.  Unpaid at the
    end of the due day or later: ``unpaid_overdue`` (the deadline is missed) with the days
    elapsed since the due day (0 on the due day itself); before that, ``not_due``."""
    due = booked_day + timedelta(days=SETTLEMENT_TAT_DAYS)
    if paid_day is not None:
        late = max(0, (paid_day - due).days)
        return ("paid_late" if late else "paid_on_time"), due, late
    if as_of_day < due:
        return "not_due", due, 0
    return "unpaid_overdue", due, (as_of_day - due).days


def reversal_status(
    channel: str, debited_day: date, reversed_day: date | None, as_of_day: date
) -> tuple[ReversalState, date | None, int, int]:
    """(state, deadline, days late, compensation in paise) of a failed transaction debited on
    IST day ``debited_day`` (T), reversed on ``reversed_day`` (R; ``None``: outstanding at the
    end of ``as_of_day``).  Deadline = the end of day T + n.  Reversed: days late = R −
    deadline.  Outstanding at the end of the deadline day or later: ``overdue`` with the days
    elapsed beyond the deadline so far (compensation accrued to date; 0 on the deadline day
    itself, ₹100 more for each day after).  Compensation = days late × the channel's daily
    amount, in paise."""
    rule = REVERSAL_TAT.get(channel)
    if rule is None:
        return "not_covered", None, 0, 0
    deadline = debited_day + timedelta(days=rule.tat_days)
    if reversed_day is not None:
        late = max(0, (reversed_day - deadline).days)
        state: ReversalState = "reversed_late" if late else "reversed_on_time"
    elif as_of_day < deadline:
        state, late = "within_tat", 0
    else:
        state, late = "overdue", (as_of_day - deadline).days
    return state, deadline, late, late * rule.compensation_per_day_minor


# --------------------------------------------------------------------------------------------
# Recording failed transactions (connectors or operations)
# --------------------------------------------------------------------------------------------


async def record_failed_transaction(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    txn_id: str,
    merchant_id: str,
    channel: str,
    amount_minor: int,
    currency: str,
    debited_at: datetime,
    now: datetime,
    payment_id: str | None = None,
    reversal_operation_id: str | None = None,
) -> bool:
    """Record a debit that must be reversed; ``False`` if ``txn_id`` was already recorded (a
    retry changes nothing).  ``reversal_operation_id``: the processor operation queued to
    reverse it, which marks the row reversed when done (``warehouse.late_debits``).  Raises
    ``ValueError`` for an unknown channel or a non-positive amount."""
    if channel not in REVERSAL_TAT and channel not in ("netbanking", "neft", "rtgs", "wallet"):
        raise ValueError(f"unknown channel {channel!r}")
    if amount_minor <= 0:
        raise ValueError("amount_minor must be positive")
    status = await conn.execute(
        """INSERT INTO failed_transactions (txn_id, payment_id, merchant_id, channel,
               amount_minor, currency, debited_at, recorded_at, reversal_operation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (txn_id) DO NOTHING""",
        txn_id,
        payment_id,
        merchant_id,
        channel,
        amount_minor,
        currency,
        debited_at,
        now,
        reversal_operation_id,
    )
    return bool(status.endswith(" 1"))


async def record_reversal(
    conn: asyncpg.Connection | asyncpg.Pool, txn_id: str, *, reversed_at: datetime, reference: str
) -> bool:
    """Record that ``txn_id``'s debit was reversed at ``reversed_at``; ``False`` if it already
    was (the first reversal stands)."""
    status = await conn.execute(
        """UPDATE failed_transactions SET reversed_at = $2, reversal_ref = $3
            WHERE txn_id = $1 AND reversed_at IS NULL""",
        txn_id,
        reversed_at,
        reference,
    )
    return bool(status.endswith(" 1"))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

CAPTURE_COLUMNS = (
    "posting_id",
    "entry_id",
    "payment_id",
    "merchant_id",
    "currency",
    "amount_minor",
    "booked_at_us",
    "batch_id",
    "batch_status",
    "utr",
    "paid_at_us",
)
FAILED_COLUMNS = (
    "txn_id",
    "payment_id",
    "merchant_id",
    "channel",
    "amount_minor",
    "currency",
    "debited_at_us",
    "reversed_at_us",
    "reversal_margin_us",
    "reversal_ref",
)


def _ist_day(us: int | None) -> date | None:
    if us is None:
        return None
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).astimezone(IST).date()


async def load_rbi_inputs(
    conn: asyncpg.Connection, period: str, params: Mapping[str, Any]
) -> ReportInputs:
    """Captures due, paid late or unpaid as of day ``period``, and the failed transactions to
    report (debited up to the end of the day: reversed that day, outstanding, or debited that
    day)."""
    day = date.fromisoformat(period)
    start, end = day_window(day)
    since, _ = day_window(day - timedelta(days=SETTLEMENT_LOOKBACK_DAYS))
    due_start, due_end = day_window(day - timedelta(days=SETTLEMENT_TAT_DAYS))
    captures = await conn.fetch(
        """SELECT p.posting_id, p.entry_id, e.payment_id, a.owner AS merchant_id, p.currency,
                  -p.amount_minor AS amount_minor, e.created_at AS booked_at,
                  l.batch_id, b.status AS batch_status,
                  CASE WHEN o.completed_at < $2 THEN o.utr END AS utr,
                  CASE WHEN o.completed_at < $2 THEN o.completed_at END AS paid_at
             FROM postings p
             JOIN journal_entries e USING (entry_id)
             JOIN ledger_accounts a ON a.account_id = p.account_id
             -- The batch that settled the posting, else the latest attempt (held, carried
             -- forward) so the report says why it is unpaid.
             LEFT JOIN LATERAL (
                  SELECT s.batch_id FROM settlement_lines s WHERE s.posting_id = p.posting_id
                   ORDER BY s.settled DESC, s.batch_id DESC LIMIT 1) l ON true
             LEFT JOIN settlement_batches b ON b.batch_id = l.batch_id
             LEFT JOIN settlement_payouts o ON o.batch_id = l.batch_id
            WHERE e.kind = 'capture' AND a.kind = 'pending' AND a.account_id LIKE 'merchant:%'
              AND e.created_at >= $1 AND e.created_at < $4
              AND (   (e.created_at >= $3)
                   OR (o.completed_at IS NULL OR o.completed_at >= $2)
                   OR (o.completed_at >= $5))
            ORDER BY e.created_at, p.posting_id""",
        since,
        end,
        due_start,
        due_end,
        start,
    )
    failed_since, _ = day_window(day - timedelta(days=FAILED_LOOKBACK_DAYS))
    failed = await conn.fetch(
        """SELECT txn_id, payment_id, merchant_id, channel, amount_minor, currency, debited_at,
                  CASE WHEN reversed_at < $2 THEN reversed_at END AS reversed_at,
                  CASE WHEN reversed_at < $2 THEN reversal_ref END AS reversal_ref
             FROM failed_transactions
            WHERE debited_at >= $3 AND debited_at < $2
              AND (reversed_at IS NULL OR reversed_at >= $1 OR debited_at >= $1)
            ORDER BY debited_at, txn_id""",
        start,
        end,
        failed_since,
    )
    capture_rows = [
        {
            "posting_id": r["posting_id"],
            "entry_id": r["entry_id"],
            "payment_id": r["payment_id"],
            "merchant_id": r["merchant_id"],
            "currency": r["currency"].strip(),
            "amount_minor": int(r["amount_minor"]),
            "booked_at_us": epoch_us(r["booked_at"]),
            "batch_id": r["batch_id"],
            "batch_status": r["batch_status"],
            "utr": r["utr"],
            "paid_at_us": None if r["paid_at"] is None else epoch_us(r["paid_at"]),
        }
        for r in captures
    ]
    failed_rows = []
    for r in failed:
        reversed_us = None if r["reversed_at"] is None else epoch_us(r["reversed_at"])
        debited_us = epoch_us(r["debited_at"])
        failed_rows.append(
            {
                "txn_id": r["txn_id"],
                "payment_id": r["payment_id"],
                "merchant_id": r["merchant_id"],
                "channel": r["channel"],
                "amount_minor": int(r["amount_minor"]),
                "currency": r["currency"].strip(),
                "debited_at_us": debited_us,
                "reversed_at_us": reversed_us,
                "reversal_margin_us": None if reversed_us is None else reversed_us - debited_us,
                "reversal_ref": r["reversal_ref"],
            }
        )
    return ReportInputs(tables={"captures": capture_rows, "failed_transactions": failed_rows})


# --------------------------------------------------------------------------------------------
# Data quality
# --------------------------------------------------------------------------------------------


def rbi_suite(period: str) -> Suite:
    _start, end = day_window(date.fromisoformat(period))
    currencies = tuple(sorted(CURRENCY_EXPONENTS))
    channels = tuple(sorted({*REVERSAL_TAT, "netbanking", "neft", "rtgs", "wallet"}))
    return Suite(
        name="rbi_tat_daily",
        tables={
            "captures": TableSpec(CAPTURE_COLUMNS, "posting_id"),
            "failed_transactions": TableSpec(FAILED_COLUMNS, "txn_id"),
        },
        expectations=(
            Expectation("captures", "unique", "posting_id", "a capture is counted once"),
            Expectation(
                "captures", "between", "amount_minor", "captures are positive", min_value=1
            ),
            Expectation(
                "captures", "in_set", "currency", "ISO 4217, accepted", value_set=currencies
            ),
            Expectation(
                "captures",
                "between",
                "booked_at_us",
                "captures were booked before the end of the day",
                max_value=epoch_us(end) - 1,
            ),
            Expectation("failed_transactions", "unique", "txn_id", "one row per transaction"),
            Expectation(
                "failed_transactions", "between", "amount_minor", "debits are positive", min_value=1
            ),
            Expectation(
                "failed_transactions",
                "in_set",
                "currency",
                "ISO 4217, accepted",
                value_set=currencies,
            ),
            Expectation(
                "failed_transactions",
                "in_set",
                "channel",
                "a channel the TAT table knows",
                value_set=channels,
            ),
            Expectation(
                "failed_transactions",
                "between",
                "debited_at_us",
                "debits before the end of the day",
                max_value=epoch_us(end) - 1,
            ),
            Expectation(
                "failed_transactions",
                "between",
                "reversal_margin_us",
                "a reversal comes after its debit",
                min_value=0,
            ),
        ),
    )


# --------------------------------------------------------------------------------------------
# Building (pure)
# --------------------------------------------------------------------------------------------


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat()


def _csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue().encode()


_SETTLEMENT_OUT = (
    "posting_id",
    "payment_id",
    "merchant_id",
    "currency",
    "amount_minor",
    "booked_at",
    "t_day",
    "due_day",
    "paid_day",
    "days_late",
    "state",
    "batch_id",
    "batch_status",
    "utr",
)
_FAILED_OUT = (
    "txn_id",
    "payment_id",
    "merchant_id",
    "channel",
    "amount_minor",
    "currency",
    "debited_at",
    "t_day",
    "tat_days",
    "deadline_day",
    "reversed_at",
    "r_day",
    "days_late",
    "state",
    "compensation_minor",
    "reversal_ref",
)


def build_rbi_report(
    period: str, inputs: ReportInputs, params: Mapping[str, Any]
) -> dict[str, bytes]:
    """``rbi-<day>.json`` (summary, the TAT table used, both sections) and one CSV per section.
    Pure."""
    day = date.fromisoformat(period)
    settlement = []
    for c in inputs.tables["captures"]:
        t_day = _ist_day(c["booked_at_us"])
        assert t_day is not None
        paid_day = _ist_day(c["paid_at_us"])
        state, due, late = settlement_status(t_day, paid_day, day)
        if state == "paid_on_time" and day not in (paid_day, due):
            continue  # paid on time on an earlier day: nothing to report today
        settlement.append(
            {
                "posting_id": c["posting_id"],
                "payment_id": c["payment_id"],
                "merchant_id": c["merchant_id"],
                "currency": c["currency"],
                "amount_minor": c["amount_minor"],
                "booked_at": _iso(c["booked_at_us"]),
                "t_day": t_day.isoformat(),
                "due_day": due.isoformat(),
                "paid_day": None if paid_day is None else paid_day.isoformat(),
                "days_late": late,
                "state": state,
                "batch_id": c["batch_id"],
                "batch_status": c["batch_status"],
                "utr": c["utr"],
            }
        )
    failed = []
    for f in inputs.tables["failed_transactions"]:
        t_day = _ist_day(f["debited_at_us"])
        assert t_day is not None
        r_day = _ist_day(f["reversed_at_us"])
        state_r, deadline, late, owed = reversal_status(f["channel"], t_day, r_day, day)
        rule = REVERSAL_TAT.get(f["channel"])
        failed.append(
            {
                "txn_id": f["txn_id"],
                "payment_id": f["payment_id"],
                "merchant_id": f["merchant_id"],
                "channel": f["channel"],
                "amount_minor": f["amount_minor"],
                "currency": f["currency"],
                "debited_at": _iso(f["debited_at_us"]),
                "t_day": t_day.isoformat(),
                "tat_days": None if rule is None else rule.tat_days,
                "deadline_day": None if deadline is None else deadline.isoformat(),
                "reversed_at": _iso(f["reversed_at_us"]),
                "r_day": None if r_day is None else r_day.isoformat(),
                "days_late": late,
                "state": state_r,
                "compensation_minor": owed,
                "reversal_ref": f["reversal_ref"],
            }
        )

    def count(rows: Sequence[Mapping[str, Any]], state: str) -> int:
        return sum(1 for r in rows if r["state"] == state)

    summary = {
        "settlement": {
            s: count(settlement, s) for s in ("paid_on_time", "paid_late", "unpaid_overdue")
        },
        "settlement_compliant": not any(
            r["state"] in ("paid_late", "unpaid_overdue") for r in settlement
        ),
        "failed_transactions": {
            s: count(failed, s)
            for s in ("reversed_on_time", "reversed_late", "within_tat", "overdue", "not_covered")
        },
        "compensation_owed_minor": sum(int(r["compensation_minor"]) for r in failed),
        "compensation_currency": "INR",
    }
    document = {
        "report": "rbi_tat_daily",
        "day": period,
        "as_of": _iso(epoch_us(day_window(day)[1])),
        "units": "amounts in minor units (paise for INR); days are IST calendar days",
        "rules": {
            "settlement_tat_days": SETTLEMENT_TAT_DAYS,
            "reversal_tat": {
                ch: {
                    "tat_days": r.tat_days,
                    "compensation_per_day_minor": r.compensation_per_day_minor,
                    "incident": r.incident,
                    "source": r.source,
                }
                for ch, r in sorted(REVERSAL_TAT.items())
            },
        },
        "summary": summary,
        "settlement_t1": settlement,
        "failed_transactions": failed,
    }
    stem = f"rbi-{period}"
    return {
        f"{stem}.json": (json.dumps(document, sort_keys=True, indent=2) + "\n").encode(),
        f"{stem}-settlement-t1.csv": _csv(settlement, _SETTLEMENT_OUT),
        f"{stem}-failed-transactions.csv": _csv(failed, _FAILED_OUT),
    }
