"""Late debits, end to end: a UPI collect times out, the payment is declined, and the remitter
bank confirms the debit afterwards (the sandbox's ``late…`` VPAs).  The worker's late-debit watch
must find it, record the failed transaction the RBI turnaround report reads, and reverse the
debit at the processor exactly once, without touching RizzPay's books for the payment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from streams.connectors.base import Approved
from streams.settlement import ist_date
from tests.conftest import Merchant, WorkerProcess, wait_for
from tests.integration.test_processor_payments import Sandboxes, becomes, create, processors
from warehouse.late_debits import record_late_debit
from warehouse.processor_store import awaiting_from_rows
from warehouse.reports.framework import run_report
from warehouse.reports.kinds import report_kinds

pytestmark = pytest.mark.integration

__all__ = ["processors"]  # the fixture, imported for this module's tests

WATCH_TIMEOUT_S = 60.0


async def failed_transaction(pg: asyncpg.Pool, payment_id: str) -> dict[str, Any] | None:
    row = await pg.fetchrow("SELECT * FROM failed_transactions WHERE txn_id = $1", payment_id)
    return None if row is None else dict(row)


async def test_a_debit_confirmed_after_the_timeout_is_recorded_and_reversed_once(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    worker: WorkerProcess,
    processors: Sandboxes,
) -> None:
    late = await create(
        api, merchant, {"type": "upi", "vpa": "late.confirm@okhdfc"}, amount=1_234_56
    )
    plain = await create(api, merchant, {"type": "upi", "vpa": "timeout.user@ybl"}, amount=2_000_00)
    # Both collects time out: both payments end declined, nothing posted for either.
    assert await becomes(pg, late, {"declined"}, worker) == ("declined", "upi_timeout")
    assert await becomes(pg, plain, {"declined"}, worker) == ("declined", "upi_timeout")
    ended_at = datetime.now(UTC)

    async def reversed_row() -> dict[str, Any] | None:
        row = await failed_transaction(pg, late)
        return row if row is not None and row["reversed_at"] is not None else None

    row = await wait_for(
        reversed_row,
        timeout_s=WATCH_TIMEOUT_S,
        what=f"{late} recorded and reversed\n{worker.log_tail()}",
    )
    # The failed transaction the RBI report reads: the debit the bank confirmed, on the UPI
    # merchant-payment channel, dated no later than the payment itself.
    assert (row["payment_id"], row["merchant_id"], row["channel"]) == (
        late,
        merchant.merchant_id,
        "upi_merchant",
    )
    assert (row["amount_minor"], row["currency"]) == (1_234_56, "INR")
    assert row["debited_at"] <= ended_at <= row["reversed_at"]

    # The reversal: one refund of the whole debit at the processor that took it, done.
    ops = await pg.fetch(
        "SELECT kind, status, amount_minor, provider_operation_ref, operation_id"
        " FROM processor_operations WHERE payment_id = $1",
        late,
    )
    assert [(o["kind"], o["status"], o["amount_minor"]) for o in ops] == [
        ("refund", "done", 1_234_56)
    ]
    assert row["reversal_ref"] == ops[0]["provider_operation_ref"]
    # The processor's books: charged once, and all of it refunded.
    [entry] = await processors.entries({late})
    assert (entry["charged"], entry["captured_minor"], entry["refunded_minor"]) == (
        True,
        1_234_56,
        1_234_56,
    )

    # The books never took the money: the payment stays declined with no ledger entries.
    assert await pg.fetchval("SELECT status FROM payments WHERE payment_id = $1", late) == (
        "declined"
    )
    assert (
        await pg.fetchval("SELECT count(*) FROM journal_entries WHERE payment_id = $1", late) == 0
    )

    # The collect that simply timed out was asked about after it ended, and is not a debit.
    polled = await pg.fetchval(
        "SELECT polled_at FROM processor_attempts WHERE payment_id = $1", plain
    )
    assert polled is not None and polled >= ended_at
    assert await failed_transaction(pg, plain) is None

    # The RBI turnaround report for the day lists it, reversed within T+5, nothing owed.
    day = ist_date(row["debited_at"]).isoformat()
    async with pg.acquire() as conn:
        outcome = await run_report(
            conn, report_kinds(gateway_state="29")["rbi_tat"], day, now=datetime.now(UTC)
        )
    assert outcome.status == "published", outcome.quality.to_json()
    doc = json.loads(outcome.outputs[f"rbi-{day}.json"])
    [listed] = [f for f in doc["failed_transactions"] if f["txn_id"] == late]
    assert (listed["state"], listed["compensation_minor"]) == ("reversed_on_time", 0)

    # Found again (another poll, another poller): nothing is recorded or queued twice.
    [item] = awaiting_from_rows(
        await pg.fetch(
            """SELECT p.payment_id, a.request::text AS request, a.provider,
                      p.lifecycle::text AS lifecycle
                 FROM payments p JOIN processor_attempts a USING (payment_id)
                WHERE p.payment_id = $1""",
            late,
        )
    )
    again = Approved("razorpay", entry["provider_ref"], 1_234_56, "INR", captured=True)
    assert await record_late_debit(pg, item, again, now=datetime.now(UTC)) is None
    assert (
        await pg.fetchval("SELECT count(*) FROM processor_operations WHERE payment_id = $1", late)
        == 1
    )
