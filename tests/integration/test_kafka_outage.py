"""Kafka down: nothing is accepted, the client is told to retry; Kafka back: the same request
with the same key succeeds, and the payment is posted exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest

from deploy.stack import load_settings, start_kafka, stop_kafka
from tests.conftest import wait_for
from tests.integration.ledger_checks import assert_ledger_invariants

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BODY = {"amount": 75_000, "currency": "INR", "method": {"type": "netbanking", "bank_code": "HDFC"}}


async def test_kafka_down_is_503_and_the_retry_succeeds_once(api, merchant, pg, worker) -> None:
    headers = {**merchant.headers, "Idempotency-Key": "outage-1"}
    warm = await api.post("/v1/payments", json=BODY, headers={**headers, "Idempotency-Key": "w"})
    assert warm.status_code == 202  # the producer is connected before the outage

    settings = load_settings()
    stop_kafka(settings)
    try:
        started = time.monotonic()
        down = await api.post("/v1/payments", json=BODY, headers=headers)
        waited_s = time.monotonic() - started
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert down.json()["code"] == "broker_unavailable"
        assert int(down.headers["Retry-After"]) > 0
        assert waited_s < 10  # publish_timeout_ms is 3 s in tests: the client is not left hanging
        shown = await api.get(f"/v1/payments/{warm.json()['id']}", headers=merchant.headers)
        assert shown.status_code == 200
    finally:
        await asyncio.to_thread(start_kafka, settings)

    # A worker that lost its broker may exit (Faust fails fast); its supervisor restarts it.
    worker.ensure_running()
    retry = await api.post("/v1/payments", json=BODY, headers=headers)
    assert retry.status_code == 202
    again = await api.post("/v1/payments", json=BODY, headers=headers)
    assert again.json() == retry.json()

    async def both_recorded() -> bool:
        count: int = await pg.fetchval("SELECT count(*) FROM payments")
        return count == 2

    await wait_for(both_recorded, timeout_s=120, what=f"both payments\n{worker.log_tail()}")
    await asyncio.sleep(2)  # anything duplicated would land now
    rows = await pg.fetch("SELECT payment_id, status FROM payments ORDER BY payment_id")
    assert sorted(r["payment_id"] for r in rows) == sorted([warm.json()["id"], retry.json()["id"]])
    await assert_ledger_invariants(pg)
