"""Merchants' captures, voids and refunds reach the processor that holds the payment: API →
Kafka → worker (books + outbox) → operation sender → sandbox.  The sandboxes' own ledgers are
the processors' books: each operation must arrive there exactly once, also when the sender
sends it again because its answer was never recorded."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Merchant, WorkerProcess, wait_for
from tests.integration.ledger_checks import assert_ledger_invariants
from tests.sandboxes import Listing

pytestmark = pytest.mark.integration

TIMEOUT_S = 60.0


def card(last4: str = "4242") -> dict[str, str]:
    return {"type": "card", "token": f"tok_{uuid.uuid4().hex[:12]}", "bin": "411111",
            "last4": last4}  # fmt: skip


async def post(
    api: httpx.AsyncClient, merchant: Merchant, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    headers = {**merchant.headers, "Idempotency-Key": uuid.uuid4().hex}
    response = await api.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201, 202), response.text
    answer: dict[str, Any] = response.json()
    return answer


async def becomes(pg: asyncpg.Pool, pid: str, status: str, worker: WorkerProcess) -> None:
    async def probe() -> bool:
        found = await pg.fetchval("SELECT status FROM payments WHERE payment_id = $1", pid)
        return bool(found == status)

    await wait_for(probe, timeout_s=TIMEOUT_S, what=f"{pid} {status}\n{worker.log_tail()}")


async def operations(pg: asyncpg.Pool, pid: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pg.fetch(
        """SELECT operation_id, kind, provider, amount_minor, final, status,
                  provider_operation_ref, refusal_code
             FROM processor_operations WHERE payment_id = $1 ORDER BY seq""",
        pid,
    )
    return rows


async def all_ended(pg: asyncpg.Pool, pid: str, n: int, worker: WorkerProcess) -> list[Any]:
    async def probe() -> list[asyncpg.Record] | None:
        rows = await operations(pg, pid)
        return rows if len(rows) == n and all(r["status"] != "pending" for r in rows) else None

    found: list[Any] = await wait_for(
        probe, timeout_s=TIMEOUT_S, what=f"{n} operations of {pid}\n{worker.log_tail()}"
    )
    return found


async def at_processor(listing: Listing, pid: str) -> dict[str, Any]:
    """The sandbox ledger's entry for ``pid`` (exactly one processor holds it)."""
    found: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=10.0) as client:
        for s in listing.values():
            response = await client.get(f"{s['admin_url']}/__sandbox/ledger")
            found += [e for e in response.json()["entries"] if e["merchant_reference"] == pid]
    assert len(found) == 1, found
    return found[0]


async def resend(pg: asyncpg.Pool, pid: str, operation_id: str) -> None:
    """What a crash between sending and recording leaves: the operation pending and due."""
    await pg.execute(
        """UPDATE processor_operations
              SET status = 'pending', provider_operation_ref = NULL, next_attempt_at = now()
            WHERE payment_id = $1 AND operation_id = $2""",
        pid,
        operation_id,
    )


async def test_captures_in_parts_refunds_and_void_reach_stripe_once(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    worker: WorkerProcess,
    processor_sandboxes: Listing,
) -> None:
    body = {"amount": 100_00, "currency": "USD", "method": card(), "capture": "manual"}
    pid = (await post(api, merchant, "/v1/payments", body))["id"]
    await becomes(pg, pid, "authorized", worker)
    held = await at_processor(processor_sandboxes, pid)
    assert (held["provider"], held["status"], held["captured_minor"]) == (
        "stripe", "requires_capture", 0)  # fmt: skip

    await post(api, merchant, f"/v1/payments/{pid}/capture", {"amount": 40_00, "final": False})
    await becomes(pg, pid, "partially_captured", worker)
    await post(api, merchant, f"/v1/payments/{pid}/capture", {})  # the remaining 60.00
    await becomes(pg, pid, "captured", worker)
    await post(api, merchant, f"/v1/payments/{pid}/refunds", {"amount": 15_00})
    await post(api, merchant, f"/v1/payments/{pid}/refunds", {"amount": 25_00})
    await becomes(pg, pid, "partially_refunded", worker)

    ops = await all_ended(pg, pid, 4, worker)
    assert [(o["kind"], o["amount_minor"], o["final"], o["status"]) for o in ops] == [
        ("capture", 40_00, False, "done"),
        ("capture", 60_00, True, "done"),
        ("refund", 15_00, True, "done"),
        ("refund", 25_00, True, "done"),
    ]
    assert all(o["provider"] == "stripe" and o["provider_operation_ref"] for o in ops)
    books = await at_processor(processor_sandboxes, pid)
    assert (books["status"], books["captured_minor"], books["captures"]) == ("succeeded", 100_00, 2)
    assert (books["refunded_minor"], books["refunds"]) == (40_00, 2)

    # Sent, then the worker died before recording: sent again, the processor does it once.
    await resend(pg, pid, ops[0]["operation_id"])
    await resend(pg, pid, ops[3]["operation_id"])
    again = await all_ended(pg, pid, 4, worker)
    assert [o["status"] for o in again] == ["done"] * 4
    refs = [o["provider_operation_ref"] for o in ops]
    assert [o["provider_operation_ref"] for o in again] == refs
    assert await at_processor(processor_sandboxes, pid) == books

    body = {"amount": 33_33, "currency": "USD", "method": card(), "capture": "manual"}
    voided = (await post(api, merchant, "/v1/payments", body))["id"]
    await becomes(pg, voided, "authorized", worker)
    await post(api, merchant, f"/v1/payments/{voided}/void", {})
    await becomes(pg, voided, "voided", worker)
    [void] = await all_ended(pg, voided, 1, worker)
    assert (void["kind"], void["status"]) == ("void", "done")
    released = await at_processor(processor_sandboxes, voided)
    assert (released["status"], released["captured_minor"]) == ("canceled", 0)

    await assert_ledger_invariants(pg)


async def test_refunds_reach_razorpay_once_and_refusals_stay_visible(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    worker: WorkerProcess,
    processor_sandboxes: Listing,
) -> None:
    body = {"amount": 499_00, "currency": "INR", "method": card()}
    pid = (await post(api, merchant, "/v1/payments", body))["id"]
    await becomes(pg, pid, "captured", worker)
    await post(api, merchant, f"/v1/payments/{pid}/refunds", {"amount": 100_00})
    await post(api, merchant, f"/v1/payments/{pid}/refunds", {"amount": 50_00})
    ops = await all_ended(pg, pid, 2, worker)
    assert [(o["provider"], o["status"]) for o in ops] == [("razorpay", "done")] * 2
    await resend(pg, pid, ops[1]["operation_id"])  # Razorpay would refund again: we look first
    await all_ended(pg, pid, 2, worker)
    books = await at_processor(processor_sandboxes, pid)
    assert (books["captured_minor"], books["refunded_minor"]) == (499_00, 150_00)

    # Razorpay captures a hold once and whole: the API refuses a capture in parts up front, so
    # the books never take what the processor cannot do; the whole capture goes through.
    body = {"amount": 200_00, "currency": "INR", "method": card(), "capture": "manual"}
    held = (await post(api, merchant, "/v1/payments", body))["id"]
    await becomes(pg, held, "authorized", worker)
    refused = await api.post(
        f"/v1/payments/{held}/capture",
        json={"amount": 50_00, "final": False},
        headers={**merchant.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "partial_capture_not_supported"
    await post(api, merchant, f"/v1/payments/{held}/capture", {})
    await becomes(pg, held, "captured", worker)
    [done] = await all_ended(pg, held, 1, worker)
    assert (done["kind"], done["status"], done["amount_minor"]) == ("capture", "done", 200_00)
    assert (await at_processor(processor_sandboxes, held))["captured_minor"] == 200_00

    # The wallet moves RizzPay's own money: no processor, no operation.
    body = {"amount": 99_00, "currency": "INR", "method": {"type": "wallet",
            "wallet_id": "wal_c0ffee01"}}  # fmt: skip
    wallet = (await post(api, merchant, "/v1/payments", body))["id"]
    await becomes(pg, wallet, "captured", worker)
    await post(api, merchant, f"/v1/payments/{wallet}/refunds", {"amount": 10_00})
    await becomes(pg, wallet, "partially_refunded", worker)
    assert await operations(pg, wallet) == []

    await assert_ledger_invariants(pg)
