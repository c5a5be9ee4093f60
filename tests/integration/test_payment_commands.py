"""Manual capture, partial captures, refunds and voids through the API and the worker: the
payment's state, the refusals a merchant sees at once, idempotency, and the ledger."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Merchant, wait_for
from tests.integration.ledger_checks import assert_ledger_invariants

pytestmark = pytest.mark.integration

CARD = {"type": "card", "token": "tok_visa_0042", "bin": "411111", "last4": "4242"}


async def post(
    api: httpx.AsyncClient, merchant: Merchant, path: str, key: str, body: dict[str, Any]
) -> httpx.Response:
    headers = {**merchant.headers, "Idempotency-Key": key}
    return await api.post(path, json=body, headers=headers)


async def status_becomes(pg: asyncpg.Pool, payment_id: str, status: str) -> None:
    async def probe() -> bool:
        row = await pg.fetchrow("SELECT status FROM payments WHERE payment_id = $1", payment_id)
        return row is not None and row["status"] == status

    await wait_for(probe, timeout_s=60, what=f"{payment_id} to become {status}")


async def test_manual_capture_partial_captures_and_refunds(api, merchant, pg, worker) -> None:
    # An international card: its processor (Stripe-shaped) captures in parts; the INR card
    # processors capture once and whole, so there a capture in parts is refused up front
    # (tests/integration/test_processor_operations.py).
    created = await post(
        api,
        merchant,
        "/v1/payments",
        "order-9",
        {"amount": 10_000_00, "currency": "USD", "method": CARD, "capture": "manual"},
    )
    pid = created.json()["id"]
    await status_becomes(pg, pid, "authorized")

    # Nothing captured yet: a refund is refused at once, with the state machine's code.
    early = await post(api, merchant, f"/v1/payments/{pid}/refunds", "r-0", {"amount": 100})
    assert early.status_code == 409 and early.json()["code"] == "payment_not_refundable"

    first = await post(
        api, merchant, f"/v1/payments/{pid}/capture", "c-1", {"amount": 4_000_00, "final": False}
    )
    assert first.status_code == 202
    assert (first.json()["object"], first.json()["amount"]) == ("capture", 4_000_00)
    await status_becomes(pg, pid, "partially_captured")
    too_much = await post(api, merchant, f"/v1/payments/{pid}/capture", "c-2", {"amount": 7_000_00})
    assert too_much.status_code == 409 and too_much.json()["code"] == "capture_exceeds_authorized"
    rest = await post(api, merchant, f"/v1/payments/{pid}/capture", "c-3", {})
    assert rest.status_code == 202 and rest.json()["amount"] == 6_000_00
    await status_becomes(pg, pid, "captured")

    void = await post(api, merchant, f"/v1/payments/{pid}/void", "v-1", {})
    assert void.status_code == 409 and void.json()["code"] in {
        "void_after_capture",
        "payment_not_voidable",
    }
    refund = await post(api, merchant, f"/v1/payments/{pid}/refunds", "r-1", {"amount": 2_500_00})
    assert refund.status_code == 202 and refund.json()["object"] == "refund"
    again = await post(api, merchant, f"/v1/payments/{pid}/refunds", "r-1", {"amount": 2_500_00})
    assert again.json() == refund.json() and again.headers["Idempotent-Replayed"] == "true"
    other = await post(api, merchant, f"/v1/payments/{pid}/refunds", "r-1", {"amount": 1})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    await status_becomes(pg, pid, "partially_refunded")
    over = await post(api, merchant, f"/v1/payments/{pid}/refunds", "r-2", {"amount": 7_500_01})
    assert over.status_code == 409 and over.json()["code"] == "refund_exceeds_captured"
    last = await post(api, merchant, f"/v1/payments/{pid}/refunds", "r-3", {"amount": 7_500_00})
    assert last.status_code == 202
    await status_becomes(pg, pid, "refunded")

    shown = (await api.get(f"/v1/payments/{pid}", headers=merchant.headers)).json()
    assert shown["status"] == "refunded"
    kinds = [
        r["kind"]
        for r in await pg.fetch(
            "SELECT kind FROM journal_entries WHERE payment_id = $1 ORDER BY created_at", pid
        )
    ]
    assert kinds == ["authorization", "capture", "capture", "refund", "refund"]
    await assert_ledger_invariants(pg)


async def test_void_releases_the_whole_hold(api, merchant, pg, worker) -> None:
    body = {"amount": 3_333_33, "currency": "INR", "method": CARD, "capture": "manual"}
    pid = (await post(api, merchant, "/v1/payments", "order-10", body)).json()["id"]
    await status_becomes(pg, pid, "authorized")
    void = await post(api, merchant, f"/v1/payments/{pid}/void", "v-1", {})
    assert void.status_code == 202
    await status_becomes(pg, pid, "voided")
    held = await pg.fetchval(
        """SELECT coalesce(sum(po.amount_minor), 0) FROM postings po
             JOIN ledger_accounts a USING (account_id) WHERE a.kind = 'authorized'"""
    )
    assert held == 0
    late = await post(api, merchant, f"/v1/payments/{pid}/capture", "c-1", {})
    assert late.status_code == 409
    unknown = await post(api, merchant, "/v1/payments/pay_nosuchpaymentxxxxxxxxxxxxx/void", "v", {})
    assert unknown.status_code == 404 and unknown.json()["code"] == "payment_not_found"
    await assert_ledger_invariants(pg)
