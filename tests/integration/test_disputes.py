"""Disputes through the API and a real worker: the network's notice opens a dispute on a
captured payment, the merchant sees it and submits evidence, and the outcome (won or lost)
moves the money in the ledger; impossible notices are refused at once."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from api.settings import ApiSettings
from models.config import ServiceEndpoints
from tests.conftest import Merchant, WorkerProcess, wait_for
from tests.integration.ledger_checks import assert_ledger_invariants

pytestmark = pytest.mark.integration

CARD = {"type": "card", "token": "tok_visa_0042", "bin": "411111", "last4": "4242"}
OPERATOR_TOKEN = "op-token-for-tests-only"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def api_settings(endpoints: ServiceEndpoints, pg_dsn: str, topic_prefix: str) -> ApiSettings:
    return ApiSettings(
        pg_dsn=pg_dsn,
        topic_prefix=topic_prefix,
        publish_timeout_ms=3000,
        operator_token=OPERATOR_TOKEN,
    )


async def status_becomes(pg: asyncpg.Pool, payment_id: str, status: str) -> None:
    async def probe() -> bool:
        found = await pg.fetchval("SELECT status FROM payments WHERE payment_id = $1", payment_id)
        return bool(found == status)

    await wait_for(probe, timeout_s=60, what=f"{payment_id} to become {status}")


async def captured_payment(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool, key: str, **extra: Any
) -> str:
    created = await api.post(
        "/v1/payments",
        json={"amount": 8_000_00, "currency": "INR", "method": CARD, **extra},
        headers={**merchant.headers, "Idempotency-Key": key},
    )
    assert created.status_code == 202, created.text
    payment_id: str = created.json()["id"]
    await status_becomes(pg, payment_id, "authorized" if extra else "captured")
    return payment_id


async def notice(
    api: httpx.AsyncClient, path: str, key: str, body: dict[str, Any]
) -> httpx.Response:
    return await api.post(
        f"/v1/operator/payments/{path}", json=body, headers={**OPERATOR, "Idempotency-Key": key}
    )


async def entry_kinds(pg: asyncpg.Pool, payment_id: str) -> list[str]:
    rows = await pg.fetch(
        "SELECT kind FROM journal_entries WHERE payment_id = $1 ORDER BY created_at", payment_id
    )
    return [r["kind"] for r in rows]


async def test_lost_dispute_with_evidence_becomes_a_chargeback(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool, worker: WorkerProcess
) -> None:
    pid = await captured_payment(api, merchant, pg, "order-1")
    body = {"processor_dispute_id": "rzp_disp_A1", "amount": 3_000_00, "reason": "fraudulent"}
    opened = await notice(api, f"{pid}/disputes", "n-1", body)
    assert opened.status_code == 202, opened.text
    dispute_id = opened.json()["id"]
    assert dispute_id.startswith("dsp_") and opened.json()["amount"] == 3_000_00
    again = await notice(api, f"{pid}/disputes", "n-1", body)
    assert again.json() == opened.json() and again.headers["Idempotent-Replayed"] == "true"
    await status_becomes(pg, pid, "disputed")

    # The same notice under another key names the same dispute: nothing new.
    resent = await notice(api, f"{pid}/disputes", "n-1-resent", body)
    assert resent.status_code == 202 and resent.json()["id"] == dispute_id
    # A refund while the dispute is open is refused with the state machine's code.
    refund = await api.post(
        f"/v1/payments/{pid}/refunds",
        json={"amount": 100},
        headers={**merchant.headers, "Idempotency-Key": "r-1"},
    )
    assert refund.status_code == 409 and refund.json()["code"] == "refund_during_dispute"

    listed = (await api.get(f"/v1/payments/{pid}/disputes", headers=merchant.headers)).json()
    [shown] = listed["data"]
    assert (shown["id"], shown["status"], shown["amount"]) == (dispute_id, "open", 3_000_00)
    assert shown["evidence"] is None and shown["evidence_due_at"]

    evidence_path = f"/v1/payments/{pid}/disputes/{dispute_id}/evidence"
    evidence = {"product_description": "2 kg basmati rice", "shipping_tracking_number": "DL1"}
    submitted = await api.post(evidence_path, json=evidence, headers=merchant.headers)
    assert submitted.status_code == 201, submitted.text
    replay = await api.post(evidence_path, json=evidence, headers=merchant.headers)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    changed = await api.post(
        evidence_path, json={"refund_policy": "none"}, headers=merchant.headers
    )
    assert changed.status_code == 409 and changed.json()["code"] == "evidence_already_submitted"
    empty = await api.post(evidence_path, json={}, headers=merchant.headers)
    assert empty.status_code == 422 and empty.json()["code"] == "evidence_empty"

    lost = await notice(api, f"{pid}/disputes/{dispute_id}/resolve", "n-2", {"outcome": "lost"})
    assert lost.status_code == 202, lost.text
    await status_becomes(pg, pid, "charged_back")
    won_too = await notice(api, f"{pid}/disputes/{dispute_id}/resolve", "n-3", {"outcome": "won"})
    assert won_too.status_code == 409 and won_too.json()["code"] == "dispute_not_open"

    kinds = await entry_kinds(pg, pid)
    assert kinds.count("dispute_hold") == 1 and kinds.count("chargeback") == 1
    await assert_ledger_invariants(pg)
    shown = (await api.get(f"/v1/payments/{pid}/disputes", headers=merchant.headers)).json()
    assert shown["data"][0]["status"] == "lost"
    assert shown["data"][0]["evidence"]["evidence"] == evidence


async def test_won_dispute_gives_the_money_back_to_the_merchant(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool, worker: WorkerProcess
) -> None:
    pid = await captured_payment(api, merchant, pg, "order-2")
    opened = await notice(
        api, f"{pid}/disputes", "w-1", {"processor_dispute_id": "rzp_disp_B1", "amount": 8_000_00}
    )
    assert opened.status_code == 202, opened.text
    await status_becomes(pg, pid, "disputed")
    won = await notice(
        api, f"{pid}/disputes/{opened.json()['id']}/resolve", "w-2", {"outcome": "won"}
    )
    assert won.status_code == 202
    await status_becomes(pg, pid, "captured")
    kinds = await entry_kinds(pg, pid)
    assert kinds.count("dispute_hold") == 1 and kinds.count("dispute_release") == 1
    assert "chargeback" not in kinds
    await assert_ledger_invariants(pg)


async def test_impossible_or_unauthenticated_notices_are_refused(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool, worker: WorkerProcess
) -> None:
    held = await captured_payment(api, merchant, pg, "order-3", capture="manual")
    body = {"processor_dispute_id": "rzp_disp_C1", "amount": 100_00}
    not_captured = await notice(api, f"{held}/disputes", "x-1", body)
    assert not_captured.status_code == 409
    assert not_captured.json()["code"] == "payment_not_disputable"

    pid = await captured_payment(api, merchant, pg, "order-4")
    too_much = await notice(
        api, f"{pid}/disputes", "x-2", {"processor_dispute_id": "rzp_disp_C2", "amount": 8_000_01}
    )
    assert too_much.status_code == 409 and too_much.json()["code"] == "dispute_exceeds_available"
    unknown = await notice(api, "pay_aaaaaaaaaaaaaaaaaaaaaaaaaa/disputes", "x-3", body)
    assert unknown.status_code == 404 and unknown.json()["code"] == "payment_not_found"

    as_merchant = await api.post(
        f"/v1/operator/payments/{pid}/disputes",
        json=body,
        headers={**merchant.headers, "Idempotency-Key": "x-4"},
    )
    assert as_merchant.status_code == 401
    assert as_merchant.json()["code"] == "invalid_operator_token"
    no_key = await api.post(f"/v1/operator/payments/{pid}/disputes", json=body, headers=OPERATOR)
    assert no_key.status_code == 400 and no_key.json()["code"] == "missing_idempotency_key"
    float_amount = await notice(
        api, f"{pid}/disputes", "x-5", {"processor_dispute_id": "d", "amount": 1.5}
    )
    assert float_amount.status_code == 422
    no_dispute = await api.post(
        f"/v1/payments/{pid}/disputes/dsp_nonexistent00/evidence",
        json={"uncategorized_text": "x"},
        headers=merchant.headers,
    )
    assert no_dispute.status_code == 404 and no_dispute.json()["code"] == "dispute_not_found"
    assert await pg.fetchval("SELECT status FROM payments WHERE payment_id = $1", pid) == (
        "captured"
    )
