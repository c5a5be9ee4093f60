"""The payer's device and IP through the real pipeline: API → Kafka → scoring worker →
PostgreSQL.

Two customers pay from one phone: the second payment's scored features count the device
(velocity 2, new to that customer), and the first customer's next payment from it finds the
device known.  The raw device id and IP never appear on Kafka, in PostgreSQL or in Redis: only
their keyed tokens do.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from api.pii import device_tokens
from api.settings import ApiSettings
from models.config import ServiceEndpoints
from models.topics import PAYMENTS_REQUESTED, PAYMENTS_SCORED
from tests.conftest import Merchant, WorkerProcess, wait_for, worker_base_env
from tests.integration.kafka_helpers import read_topic, value_of

pytestmark = pytest.mark.integration

KEY = "device-signals-test-key-" + "0" * 16


@pytest.fixture
def api_settings(pg_dsn: str, topic_prefix: str) -> ApiSettings:
    """The shared fixture's settings, with a PII token key this test knows."""
    return ApiSettings(
        pg_dsn=pg_dsn,
        topic_prefix=topic_prefix,
        publish_timeout_ms=3000,
        pii_token_key=SecretStr(KEY),
    )


@pytest.fixture
def scoring_worker(pg_dsn: str, topic_prefix: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker that scores with no model and no rules (features only) and authorizes with
    RizzPay's own rules: no processor sandbox needed."""
    registry = tmp_path / "registry"
    registry.mkdir()
    env = worker_base_env(pg_dsn, topic_prefix) | {
        "RIZZPAY_AUTHORIZER": "rules",
        "RIZZPAY_FRAUD_REGISTRY": str(registry),
        "FAUST_DATADIR": str(tmp_path / "faust"),
    }
    process = WorkerProcess(env, tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


async def pay(
    api: httpx.AsyncClient, merchant: Merchant, customer: str, device: dict[str, str]
) -> str:
    body = {
        "amount": 450_00,
        "currency": "INR",
        "method": {"type": "upi", "vpa": f"{customer}@okhdfc"},
        "customer_id": customer,
        "device": device,
    }
    headers = {**merchant.headers, "Idempotency-Key": f"dev-{uuid.uuid4().hex}"}
    response = await api.post("/v1/payments", json=body, headers=headers)
    assert response.status_code == 202, response.text
    payment_id: str = response.json()["id"]
    return payment_id


async def features_of(pg: asyncpg.Pool, payment_id: str) -> dict[str, Any]:
    async def probe() -> str | None:
        text: str | None = await pg.fetchval(
            "SELECT features::text FROM fraud_scores WHERE payment_id = $1", payment_id
        )
        return text

    text = await wait_for(probe, timeout_s=120, what=f"{payment_id} scored")
    features: dict[str, Any] = json.loads(text)
    return features


async def every_row_as_text(pg: asyncpg.Pool) -> str:
    """Every row of every table of the test's database, as text."""
    tables = await pg.fetch(
        """SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name
           FROM information_schema.tables
           WHERE table_type = 'BASE TABLE'
             AND table_schema NOT IN ('pg_catalog', 'information_schema')"""
    )
    chunks: list[str] = []
    for table in tables:
        rows = await pg.fetch(f"SELECT t::text AS row FROM {table['name']} t")
        chunks.extend(r["row"] for r in rows)
    return "\n".join(chunks)


async def test_shared_device_counts_in_scored_features_and_raw_values_stay_out(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    topic_prefix: str,
    scoring_worker: WorkerProcess,
) -> None:
    # Unique raw values, so finding one anywhere can only mean this test's request leaked it.
    run = uuid.uuid4().hex
    phone = f"android-{run}"
    home = f"2001:0db8:{run[:4]}:{run[4:8]}:0000:0000:0000:00{run[8:10]}"
    other = f"2001:0db8:{run[:4]}:{run[4:8]}:0000:0000:0000:01{run[8:10]}"
    raw_values = [phone, home, other, *(str(ipaddress.ip_address(a)) for a in (home, other))]
    cust_a, cust_b = f"cust_a_{run[:8]}", f"cust_b_{run[:8]}"

    # One at a time, each scored before the next is sent: the features then see them in order.
    first = await pay(api, merchant, cust_a, {"id": phone, "ip": home})
    f1 = await features_of(pg, first)
    second = await pay(api, merchant, cust_b, {"id": phone, "ip": home})
    f2 = await features_of(pg, second)
    third = await pay(api, merchant, cust_a, {"id": phone, "ip": other})
    f3 = await features_of(pg, third)

    assert (f1["device_nb_tx_1h"], f1["ip_nb_tx_1h"]) == (1, 1)
    # Another customer on the same phone and network: the device and IP are counted across
    # customers (velocity), and the phone is new to this customer (novelty 1).
    assert (f2["device_nb_tx_1h"], f2["device_nb_tx_1d"], f2["ip_nb_tx_1h"]) == (2, 2, 2)
    assert f2["customer_device_nb_tx_30d"] == 1
    assert f2["device_sum_amount_1d"] == pytest.approx(900.0)
    # The first customer comes back on the phone from another network: a known device, a new IP.
    assert (f3["device_nb_tx_1h"], f3["customer_device_nb_tx_30d"]) == (3, 2)
    assert (f3["ip_nb_tx_1h"], f3["customer_ip_nb_tx_30d"]) == (1, 1)

    # The stored transaction carries exactly the tokens the intake's key gives.
    expected = device_tokens(KEY.encode(), phone, str(ipaddress.ip_address(home)))
    stored = json.loads(
        await pg.fetchval(
            "SELECT transaction::text FROM fraud_scores WHERE payment_id = $1", second
        )
    )
    assert (stored["device_id"], stored["ip"]) == (expected.device_id, expected.ip)

    # Kafka: the requests and the scored payments carry tokens, never the raw values.
    requested = [
        value_of(m) for m in read_topic(PAYMENTS_REQUESTED.full_name(topic_prefix), expect=3)
    ]
    scored = [value_of(m) for m in read_topic(PAYMENTS_SCORED.full_name(topic_prefix), expect=3)]
    assert len(requested) == 3 and len(scored) == 3
    for message in requested + scored:
        assert expected.device_id is not None and expected.device_id.encode() in message
        for raw in raw_values:
            assert raw.encode() not in message, "a raw device id or IP reached Kafka"

    # PostgreSQL: every row of every table the worker and the API wrote.
    everything = await every_row_as_text(pg)
    assert expected.device_id is not None and expected.device_id in everything  # rows were read
    for raw in raw_values:
        assert raw not in everything, "a raw device id or IP reached PostgreSQL"

    # Redis: the idempotency records of this merchant (fingerprints over tokens, views).
    client = aioredis.from_url(ServiceEndpoints().redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"idem:{merchant.merchant_id}:*")]
        assert len(keys) == 3
        stored_values = b"".join(v for v in await client.mget(keys) if isinstance(v, bytes))
    finally:
        await client.aclose()
    for raw in raw_values:
        assert raw.encode() not in stored_values, "a raw device id or IP reached Redis"
