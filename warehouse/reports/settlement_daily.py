"""Daily settlement report for finance: one IST settlement day's batches, their line items,
fees, GST, rolling reserve, payouts with UTRs, and a reconciliation of every batch figure with
the ledger postings it claims to have made, to the paisa (docs/reports.md).

Period: an IST day D (``2026-11-04``).  The report covers the batches whose settlement date is D
(``settlement_batches.settlement_date``, scheduled and instant), and every payout completed during
D whatever its batch's date.  It is a snapshot **as of the end of D** (00:00 IST of D+1): a
payout's UTR completed later is not shown as paid (the report of the day it arrived shows it),
so re-running a past day gives the same file as long as the recorded rows did not change.

Reconciliation, per released batch (``settled``, ``payout_pending``, ``paid``): each figure of
the batch row against the postings of its own journal entries, read separately:

===================  ==========================================  ============================
component            batch side                                  ledger side
===================  ==========================================  ============================
gross                captured − refunds − disputes + adjustments  settlement entry: pending +
                                                                 refunds postings
fees / gst           fees_minor / gst_minor                      −(merchant fees / gst_payable)
reserve_net          withheld − released                         −(merchant rolling_reserve)
instant_fee / _gst   instant_fee_minor / instant_fee_gst_minor   −(platform fee_income /
                                                                 gst_output_*)
net                  net_minor                                   −(merchant available)
payout_instructed    payout amount                               −(platform settlement_payable)
                                                                 in the instruction entry
payout_paid          payout amount (once paid by the end of D)   −(platform escrow_bank) in
                                                                 the completion entry
===================  ==========================================  ============================

and each line against the posting it names (same amount, booked before the batch's cutoff).
The data-quality suite requires every pair equal; a difference blocks publication.

Amounts are ``int`` paise in JSON and CSV (``*_minor`` columns, like ``rizzpay settlement
report``), instants UTC ISO 8601.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from models.money import CURRENCY_EXPONENTS
from streams.settlement import IST
from warehouse.reports.framework import ReportInputs, day_window
from warehouse.reports.quality import Expectation, Suite, TableSpec, epoch_us

__all__ = [
    "RELEASED",
    "build_settlement_report",
    "load_settlement_inputs",
    "settlement_suite",
]

RELEASED = frozenset({"settled", "payout_pending", "paid"})
"""Statuses whose batch posted its settlement entry (and so must match the ledger)."""

_UTR_REGEX = r"^[A-Z]{4}[NR][A-Z0-9][0-9]{16}$"
_CUTOFF_LOOKBACK = timedelta(days=31)

BATCH_COLUMNS = (
    "batch_id",
    "merchant_id",
    "currency",
    "cutoff_us",
    "settlement_date",
    "instant",
    "status",
    "hold_reason",
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
    "entry_id",
)
LINE_COLUMNS = (
    "line_id",
    "batch_id",
    "posting_id",
    "entry_id",
    "payment_id",
    "entry_kind",
    "account_kind",
    "amount_minor",
    "ledger_amount_minor",
    "booked_at_us",
    "cutoff_margin_us",
    "settled",
)
PAYOUT_COLUMNS = (
    "batch_id",
    "merchant_id",
    "currency",
    "amount_minor",
    "holder_name",
    "beneficiary",
    "ifsc",
    "instructed_at_us",
    "utr",
    "completed_at_us",
    "in_period_batch",
)
RECON_COLUMNS = ("check_id", "batch_id", "component", "batch_minor", "ledger_minor")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _us(value: datetime | None) -> int | None:
    return None if value is None else epoch_us(value)


async def load_settlement_inputs(
    conn: asyncpg.Connection, period: str, params: Mapping[str, Any]
) -> ReportInputs:
    """Read day ``period``'s batches, lines, payouts and the postings of their entries (call
    inside one REPEATABLE READ transaction; the framework does)."""
    day = date.fromisoformat(period)
    start, end = day_window(day)
    batches = await conn.fetch(
        """SELECT * FROM settlement_batches
            WHERE settlement_date = $1 AND created_at < $2 ORDER BY batch_id""",
        day,
        end,
    )
    batch_ids = [r["batch_id"] for r in batches]
    payouts = await conn.fetch(
        """SELECT p.*, b.merchant_id FROM settlement_payouts p JOIN settlement_batches b
               USING (batch_id)
            WHERE (p.batch_id = ANY($1::text[]) AND p.instructed_at < $3)
               OR (p.completed_at >= $2 AND p.completed_at < $3)
            ORDER BY p.batch_id""",
        batch_ids,
        start,
        end,
    )
    lines = await conn.fetch(
        """SELECT l.batch_id, l.posting_id, l.entry_id, l.payment_id, l.entry_kind,
                  a.kind AS account_kind, l.amount_minor, p.amount_minor AS ledger_amount_minor,
                  e.created_at AS ledger_booked_at, l.settled
             FROM settlement_lines l
             LEFT JOIN postings p ON p.posting_id = l.posting_id
             LEFT JOIN journal_entries e ON e.entry_id = p.entry_id
             LEFT JOIN ledger_accounts a ON a.account_id = l.account_id
            WHERE l.batch_id = ANY($1::text[])
            ORDER BY l.batch_id, l.booked_at, l.posting_id""",
        batch_ids,
    )
    paid_in_period = {
        r["batch_id"] for r in payouts if r["completed_at"] and r["completed_at"] < end
    }
    entry_ids: set[str] = set()
    for b in batches:
        if b["entry_id"]:
            entry_ids.add(b["entry_id"])
    for p in payouts:
        entry_ids.add(p["instruction_entry_id"])
        if p["batch_id"] in paid_in_period and p["completion_entry_id"]:
            entry_ids.add(p["completion_entry_id"])
    postings = await conn.fetch(
        """SELECT p.entry_id, a.owner, a.kind, sum(p.amount_minor) AS amount
             FROM postings p JOIN ledger_accounts a USING (account_id)
            WHERE p.entry_id = ANY($1::text[])
            GROUP BY p.entry_id, a.owner, a.kind ORDER BY 1, 2, 3""",
        sorted(entry_ids),
    )
    by_entry: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for r in postings:
        by_entry[r["entry_id"]][(r["owner"], r["kind"])] = int(r["amount"])

    cutoffs = {r["batch_id"]: r["cutoff"] for r in batches}
    batch_rows = []
    for r in batches:
        status = r["status"]
        if status == "paid" and r["batch_id"] not in paid_in_period:
            status = "payout_pending"  # as of the end of the day; the UTR came later
        batch_rows.append(
            {
                "batch_id": r["batch_id"],
                "merchant_id": r["merchant_id"],
                "currency": r["currency"].strip(),
                "cutoff_us": epoch_us(r["cutoff"]),
                "settlement_date": r["settlement_date"].isoformat(),
                "instant": r["instant"],
                "status": status,
                "hold_reason": r["hold_reason"],
                "line_count": r["line_count"],
                **{c: int(r[c]) for c in BATCH_COLUMNS if c.endswith("_minor")},
                "entry_id": r["entry_id"],
            }
        )
    line_rows = [
        {
            "line_id": f"{r['batch_id']}/{r['posting_id']}",
            "batch_id": r["batch_id"],
            "posting_id": r["posting_id"],
            "entry_id": r["entry_id"],
            "payment_id": r["payment_id"],
            "entry_kind": r["entry_kind"],
            "account_kind": r["account_kind"],
            "amount_minor": int(r["amount_minor"]),
            "ledger_amount_minor": None
            if r["ledger_amount_minor"] is None
            else int(r["ledger_amount_minor"]),
            "booked_at_us": _us(r["ledger_booked_at"]),
            "cutoff_margin_us": None
            if r["ledger_booked_at"] is None
            else epoch_us(cutoffs[r["batch_id"]]) - epoch_us(r["ledger_booked_at"]),
            "settled": r["settled"],
        }
        for r in lines
    ]
    payout_rows = []
    for r in payouts:
        paid = r["batch_id"] in paid_in_period
        payout_rows.append(
            {
                "batch_id": r["batch_id"],
                "merchant_id": r["merchant_id"],
                "currency": r["currency"].strip(),
                "amount_minor": int(r["amount_minor"]),
                "holder_name": r["holder_name"],
                "beneficiary": r["beneficiary"],
                "ifsc": r["ifsc"],
                "instructed_at_us": epoch_us(r["instructed_at"]),
                "utr": r["utr"] if paid else None,
                "completed_at_us": _us(r["completed_at"]) if paid else None,
                "in_period_batch": r["batch_id"] in cutoffs,
                "_instruction_entry_id": r["instruction_entry_id"],
                "_completion_entry_id": r["completion_entry_id"] if paid else None,
            }
        )
    recon = reconciliation_rows(batch_rows, payout_rows, by_entry)
    for p in payout_rows:
        del p["_instruction_entry_id"], p["_completion_entry_id"]
    return ReportInputs(
        tables={
            "batches": batch_rows,
            "lines": line_rows,
            "payouts": payout_rows,
            "reconciliation": recon,
        }
    )


def reconciliation_rows(
    batches: Sequence[Mapping[str, Any]],
    payouts: Sequence[Mapping[str, Any]],
    postings: Mapping[str, Mapping[tuple[str, str], int]],
) -> list[dict[str, Any]]:
    """Batch figures against the postings of the batches' entries (see the module docstring).
    ``postings``: entry id → (owner, account kind) → signed sum.  Pure."""
    rows: list[dict[str, Any]] = []

    def add(batch_id: str, component: str, batch_minor: int, ledger_minor: int) -> None:
        rows.append(
            {
                "check_id": f"{batch_id}:{component}",
                "batch_id": batch_id,
                "component": component,
                "batch_minor": batch_minor,
                "ledger_minor": ledger_minor,
            }
        )

    for b in batches:
        if b["status"] not in RELEASED:
            continue
        m = b["merchant_id"]
        legs = postings.get(b["entry_id"] or "", {})

        def leg(owner: str, kind: str, legs: Mapping[tuple[str, str], int] = legs) -> int:
            return legs.get((owner, kind), 0)

        bid = b["batch_id"]
        gross = (
            b["captured_minor"] - b["refunds_minor"] - b["disputes_minor"] + b["adjustments_minor"]
        )
        add(bid, "gross", gross, leg(m, "pending") + leg(m, "refunds"))
        add(bid, "fees", b["fees_minor"], -leg(m, "fees"))
        add(bid, "gst", b["gst_minor"], -leg(m, "gst_payable"))
        add(
            bid,
            "reserve_net",
            b["reserve_withheld_minor"] - b["reserve_released_minor"],
            -leg(m, "rolling_reserve"),
        )
        add(bid, "instant_fee", b["instant_fee_minor"], -leg("platform", "fee_income"))
        add(
            bid,
            "instant_fee_gst",
            b["instant_fee_gst_minor"],
            -sum(leg("platform", f"gst_output_{k}") for k in ("cgst", "sgst", "igst")),
        )
        add(bid, "net", b["net_minor"], -leg(m, "available"))
    for p in payouts:
        bid = p["batch_id"]
        instruction = postings.get(p["_instruction_entry_id"], {})
        add(
            bid,
            "payout_instructed",
            p["amount_minor"],
            -instruction.get(("platform", "settlement_payable"), 0),
        )
        if p["_completion_entry_id"]:
            completion = postings.get(p["_completion_entry_id"], {})
            add(
                bid,
                "payout_paid",
                p["amount_minor"],
                -completion.get(("platform", "escrow_bank"), 0),
            )
    return rows


# --------------------------------------------------------------------------------------------
# Data quality
# --------------------------------------------------------------------------------------------


def settlement_suite(period: str) -> Suite:
    """What must hold before day ``period``'s report is published."""
    start, end = day_window(date.fromisoformat(period))
    # Only figures that cannot be negative by construction: fees, GST, refunds and disputes can
    # net below zero in a batch holding only fee reversals or dispute releases.
    non_negative = [
        Expectation("batches", "between", c, "cannot be negative", min_value=0)
        for c in (
            "captured_minor",
            "reserve_withheld_minor",
            "reserve_released_minor",
            "instant_fee_minor",
            "instant_fee_gst_minor",
            "line_count",
        )
    ]
    currencies = tuple(sorted(CURRENCY_EXPONENTS))
    return Suite(
        name="settlement_daily",
        tables={
            "batches": TableSpec(BATCH_COLUMNS, "batch_id"),
            "lines": TableSpec(LINE_COLUMNS, "line_id"),
            "payouts": TableSpec(PAYOUT_COLUMNS, "batch_id"),
            "reconciliation": TableSpec(RECON_COLUMNS, "check_id"),
        },
        expectations=(
            Expectation("batches", "unique", "batch_id", "one row per batch"),
            Expectation(
                "batches", "in_set", "currency", "ISO 4217, accepted", value_set=currencies
            ),
            *non_negative,
            Expectation(
                "batches",
                "between",
                "cutoff_us",
                "a day's batches have cutoffs within the month before the day ends",
                min_value=epoch_us(start - _CUTOFF_LOOKBACK),
                max_value=epoch_us(end),
            ),
            Expectation("lines", "unique", "line_id", "a posting appears once per batch"),
            Expectation(
                "lines", "not_null", "ledger_amount_minor", "every line names a real posting"
            ),
            Expectation(
                "lines",
                "pair_equal",
                "amount_minor",
                "a line's amount is its ledger posting's, to the paisa",
                column_b="ledger_amount_minor",
            ),
            Expectation(
                "lines",
                "between",
                "cutoff_margin_us",
                "a line was booked before its batch's cutoff",
                min_value=1,
            ),
            Expectation("payouts", "unique", "batch_id", "one payout per batch"),
            Expectation("payouts", "between", "amount_minor", "payouts are positive", min_value=1),
            Expectation(
                "payouts",
                "regex",
                "utr",
                "UTR: bank, N/R, channel, date, 8 digits",
                regex=_UTR_REGEX,
            ),
            Expectation(
                "payouts", "in_set", "currency", "ISO 4217, accepted", value_set=currencies
            ),
            Expectation("reconciliation", "unique", "check_id", "one check per figure"),
            Expectation(
                "reconciliation",
                "pair_equal",
                "batch_minor",
                "batch figure equals its ledger postings to the paisa",
                column_b="ledger_minor",
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


def _csv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return out.getvalue().encode()


def _readable(row: Mapping[str, Any]) -> dict[str, Any]:
    """``*_us`` instants as ISO strings named without the suffix (``cutoff``, ``booked_at``)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("_us") and key != "cutoff_margin_us":
            out[key.removesuffix("_us")] = _iso(value)
        elif key != "cutoff_margin_us":
            out[key] = value
    return out


def build_settlement_report(
    period: str, inputs: ReportInputs, params: Mapping[str, Any]
) -> dict[str, bytes]:
    """``settlement-<day>.json`` (summary, batches with their lines, payouts, reconciliation)
    and one CSV each for batches, lines, payouts and the reconciliation.  Pure."""
    t = inputs.tables
    batches = [_readable(b) for b in t["batches"]]
    lines = [_readable(x) for x in t["lines"]]
    payouts = [_readable(p) for p in t["payouts"]]
    recon = [
        {**r, "difference_minor": r["batch_minor"] - r["ledger_minor"]} for r in t["reconciliation"]
    ]
    lines_by_batch: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        lines_by_batch[line["batch_id"]].append(line)
    released = [b for b in batches if b["status"] in RELEASED]
    by_status: dict[str, int] = defaultdict(int)
    for b in batches:
        by_status[b["status"]] += 1
    paid = [p for p in payouts if p["utr"]]
    summary = {
        "batches": len(batches),
        "batches_by_status": dict(sorted(by_status.items())),
        "released": {
            c: sum(int(b[c]) for b in released) for c in BATCH_COLUMNS if c.endswith("_minor")
        },
        "payouts_instructed_minor": sum(
            int(p["amount_minor"]) for p in payouts if p["in_period_batch"]
        ),
        "payouts_paid_in_day_minor": sum(int(p["amount_minor"]) for p in paid),
        "payouts_paid_in_day": len(paid),
        "reconciliation_checks": len(recon),
        "reconciliation_difference_minor": sum(abs(r["difference_minor"]) for r in recon),
        "reconciled": all(r["difference_minor"] == 0 for r in recon),
    }
    document = {
        "report": "settlement_daily",
        "settlement_date": period,
        "as_of": _iso(epoch_us(day_window(date.fromisoformat(period))[1])),
        "timezone": str(IST),
        "units": "amounts in minor units (paise for INR); instants UTC",
        "summary": summary,
        "batches": [{**b, "lines": lines_by_batch.get(b["batch_id"], [])} for b in batches],
        "payouts": payouts,
        "reconciliation": recon,
    }
    stem = f"settlement-{period}"
    readable_batch_cols = [c.removesuffix("_us") for c in BATCH_COLUMNS]
    readable_line_cols = [c.removesuffix("_us") for c in LINE_COLUMNS if c != "cutoff_margin_us"]
    readable_payout_cols = [c.removesuffix("_us") for c in PAYOUT_COLUMNS]
    return {
        f"{stem}.json": (json.dumps(document, sort_keys=True, indent=2) + "\n").encode(),
        f"{stem}-batches.csv": _csv(readable_batch_cols, batches),
        f"{stem}-lines.csv": _csv(readable_line_cols, lines),
        f"{stem}-payouts.csv": _csv(readable_payout_cols, payouts),
        f"{stem}-reconciliation.csv": _csv((*RECON_COLUMNS, "difference_minor"), recon),
    }
