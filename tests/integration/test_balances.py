"""Real-time balances and the live settlement view with a real worker: payments, captures and
refunds through the API; the streaming ``balances`` table (read from its changelog, the state a
restarted worker recovers) equals the PostgreSQL ledger account by account, also after the
worker is SIGKILLed and restarted and after both topics are replayed from the start; a
corrupted table or ledger is reported with every difference; and the live view of today equals
the batch computed at today's cutoff."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from cli.ledger import reconcile
from cli.main import main
from models.config import ServiceEndpoints
from models.topics import LEDGER_POSTINGS, PAYMENTS_LIFECYCLE
from streams.balances import (
    Difference,
    changelog_key,
    changelog_topic,
    read_changelog,
    table_balances,
)
from streams.ledger import JournalEntry, Posting, merchant_account, platform_account
from streams.settings import WorkerSettings
from streams.settlement import ist_date, ist_midnight
from tests.conftest import Merchant, WorkerProcess, wait_for
from tests.integration.ledger_checks import assert_ledger_invariants
from warehouse.payments import post_entries
from warehouse.settlement_store import PlatformTerms, prepare_batch

pytestmark = pytest.mark.integration

# Cards the processor sandboxes approve at once (UPI collect and netbanking wait for the
# customer, which is not what this test is about); RuPay is zero-MDR, the others pay MDR.
METHODS: list[dict[str, Any]] = [
    {"type": "card", "token": "tok_visa_0001", "bin": "411111", "last4": "4242"},
    {"type": "card", "token": "tok_mc_0001", "bin": "555555", "last4": "4444"},
    {"type": "card", "token": "tok_rupay_0001", "bin": "652111", "last4": "1110"},
    {"type": "card", "token": "tok_visa_0005", "bin": "411111", "last4": "1111"},
]


async def post(
    api: httpx.AsyncClient, merchant: Merchant, path: str, key: str, body: dict[str, Any]
) -> httpx.Response:
    response = await api.post(path, json=body, headers={**merchant.headers, "Idempotency-Key": key})
    assert response.status_code in (201, 202), response.text
    return response


async def statuses_become(pg: asyncpg.Pool, wanted: dict[str, str]) -> None:
    async def probe() -> bool:
        rows = await pg.fetch(
            "SELECT payment_id, status FROM payments WHERE payment_id = ANY($1::text[])",
            list(wanted),
        )
        return {r["payment_id"]: r["status"] for r in rows} == wanted

    await wait_for(probe, timeout_s=90, what=f"payments to reach {wanted}")


def worker_settings(pg_dsn: str, topic_prefix: str) -> WorkerSettings:
    return WorkerSettings(pg_dsn=pg_dsn, topic_prefix=topic_prefix)


async def wait_reconciled(settings: WorkerSettings, pg: asyncpg.Pool) -> None:
    """Wait until the table agrees with the ledger (the worker catches up)."""
    del pg

    last: list[Difference] = []

    async def probe() -> bool:
        last[:] = await reconcile(settings, settle_s=0)
        return not last

    try:
        await wait_for(probe, timeout_s=90, interval_s=1.0, what="table to equal the ledger")
    except pytest.fail.Exception:
        pytest.fail(f"table and ledger still differ: {last}")


async def table_now(settings: WorkerSettings) -> dict[str, int]:
    changelog = await asyncio.to_thread(
        read_changelog, settings.kafka_bootstrap, changelog_topic(settings)
    )
    return table_balances(changelog)


def _partitions(consumer: Consumer, topics: list[str]) -> list[TopicPartition]:
    metadata = consumer.list_topics(timeout=10).topics
    return [TopicPartition(t, p) for t in topics for p in metadata[t].partitions]


def rewind(group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Commit offset 0 on every partition of ``topics`` for the (stopped) ``group``; returns
    each partition's end offset."""
    consumer = Consumer(
        {"bootstrap.servers": ServiceEndpoints().kafka_bootstrap, "group.id": group}
    )
    try:
        parts = _partitions(consumer, topics)
        ends = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1]
            for tp in parts
        }
        for attempt in range(60):  # the group empties once the stopped worker has left it
            try:
                consumer.commit(
                    offsets=[TopicPartition(tp.topic, tp.partition, 0) for tp in parts],
                    asynchronous=False,
                )
                break
            except KafkaException:
                if attempt == 59:
                    raise
                time.sleep(1)
        return ends
    finally:
        consumer.close()


def committed(group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """The group's committed offset per partition (0 when none was committed)."""
    consumer = Consumer(
        {"bootstrap.servers": ServiceEndpoints().kafka_bootstrap, "group.id": group}
    )
    try:
        parts = consumer.committed(_partitions(consumer, topics), timeout=10)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in parts}
    finally:
        consumer.close()


async def traffic(api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool, tag: str) -> int:
    """Four automatic captures, one manual payment captured later (whole: INR card processors
    capture once), a partial and a full refund; returns the captured total minus refunds
    (paise)."""
    wanted: dict[str, str] = {}
    amounts = [1_234_56, 99_99, 45_000_00, 2_500_00]
    ids = []
    for n, (method, amount) in enumerate(zip(METHODS, amounts, strict=True)):
        body = {"amount": amount, "currency": "INR", "method": method}
        ids.append((await post(api, merchant, "/v1/payments", f"{tag}-p{n}", body)).json()["id"])
    manual = {"amount": 8_000_00, "currency": "INR", "method": METHODS[0], "capture": "manual"}
    mid = (await post(api, merchant, "/v1/payments", f"{tag}-m", manual)).json()["id"]
    wanted |= {pid: "captured" for pid in ids} | {mid: "authorized"}
    await statuses_become(pg, wanted)
    await post(api, merchant, f"/v1/payments/{mid}/capture", f"{tag}-c1", {})
    await post(api, merchant, f"/v1/payments/{ids[0]}/refunds", f"{tag}-r1", {"amount": 234_56})
    await post(api, merchant, f"/v1/payments/{ids[2]}/refunds", f"{tag}-r2", {"amount": 45_000_00})
    wanted |= {mid: "captured", ids[0]: "partially_refunded", ids[2]: "refunded"}
    await statuses_become(pg, wanted)
    return sum(amounts) + 8_000_00 - 234_56 - 45_000_00


async def test_table_balances_equal_the_ledger_and_differences_are_listed(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    pg_dsn: str,
    topic_prefix: str,
    worker: WorkerProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = worker_settings(pg_dsn, topic_prefix)
    net_captured = await traffic(api, merchant, pg, "a")
    await wait_reconciled(settings, pg)
    pending = merchant_account(merchant.merchant_id, "pending", "INR")
    refunds = merchant_account(merchant.merchant_id, "refunds", "INR")
    table = await table_now(settings)
    # Credit-normal pending holds minus the captures; refunds hold the refunds (debit).
    assert -table[pending] - table[refunds] == net_captured
    await assert_ledger_invariants(pg)

    # SIGKILL the worker, send more while it is down, restart it: the tables recover from their
    # changelogs, redelivered and re-emitted events are not counted twice.
    worker.kill()
    await asyncio.sleep(1)
    worker.start()
    more = await traffic(api, merchant, pg, "b")
    await wait_reconciled(settings, pg)
    table = await table_now(settings)
    assert -table[pending] - table[refunds] == net_captured + more

    # Replay both topics from the start (the worker's consumer group rewound to offset 0):
    # every event and posting is delivered again, and no balance changes.
    worker.stop()
    group = f"{topic_prefix}{settings.app_id}"
    topics = [
        PAYMENTS_LIFECYCLE.full_name(topic_prefix),
        LEDGER_POSTINGS.full_name(topic_prefix),
    ]
    ends = await asyncio.to_thread(rewind, group, topics)
    worker.start()

    async def replayed() -> bool:
        return await asyncio.to_thread(committed, group, topics) == ends

    await wait_for(replayed, timeout_s=90, interval_s=1.0, what="the replay to finish")
    await wait_reconciled(settings, pg)
    assert await table_now(settings) == table

    # The command: agreement exits 0.
    monkeypatch.setenv("RIZZPAY_PG_DSN", pg_dsn)
    monkeypatch.setenv("RIZZPAY_TOPIC_PREFIX", topic_prefix)
    assert await asyncio.to_thread(main, ["ledger", "reconcile", "--settle-s", "0"]) == 0

    # Corrupt the table side: a changelog record with 123.45 too much on pending.
    worker.stop()
    producer = Producer(
        {
            "bootstrap.servers": ServiceEndpoints().kafka_bootstrap,
            "partitioner": "murmur2_random",
        }
    )
    bogus = {"balance_minor": table[pending] + 123_45, "postings": 1, "marks": {}}
    changelog = await asyncio.to_thread(
        read_changelog, settings.kafka_bootstrap, changelog_topic(settings)
    )
    key = changelog_key(pending)
    producer.produce(
        changelog_topic(settings),
        key=key,
        value=orjson.dumps(bogus),
        partition=changelog[key].partition,  # after the key's latest record
    )
    assert producer.flush(10) == 0

    # And the ledger side: a balanced refund-kind entry the stream never saw.
    async with pg.acquire() as conn, conn.transaction():
        await post_entries(
            conn,
            [
                JournalEntry(
                    entry_id="evt_manualcorruption000000001",
                    payment_id="pay_manualcorruption00000000000",
                    merchant_id=merchant.merchant_id,
                    kind="refund",
                    currency="INR",
                    postings=(
                        Posting("evt_manualcorruption000000001:0", refunds, 500),
                        Posting(
                            "evt_manualcorruption000000001:1",
                            platform_account("processor_receivable", "INR"),
                            -500,
                        ),
                    ),
                )
            ],
        )
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["ledger", "reconcile", "--settle-s", "0"]) == 3
    listed = {row["account"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(listed) == {pending, refunds, platform_account("processor_receivable", "INR")}
    assert listed[pending]["delta_minor"] == 123_45
    assert listed[refunds]["delta_minor"] == -500
    assert listed[refunds]["ledger_minor"] == table[refunds] + 500
    assert listed[platform_account("processor_receivable", "INR")]["delta_minor"] == 500


async def test_live_settlement_view_equals_the_batch_at_cutoff(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    pg_dsn: str,
    topic_prefix: str,
    worker: WorkerProcess,
) -> None:
    settings = worker_settings(pg_dsn, topic_prefix)
    await traffic(api, merchant, pg, "d")
    await wait_reconciled(settings, pg)
    today = ist_date(datetime.now(UTC))
    # The batch paid tomorrow (T+1) covers today; computed at its cutoff with an injected clock.
    cutoff = ist_midnight(today + timedelta(days=1))
    async with pg.acquire() as conn:
        batch = await prepare_batch(
            conn,
            merchant.merchant_id,
            now=cutoff + timedelta(seconds=1),
            terms=PlatformTerms(settings.gateway_state_code, settings.default_mdr),
            settlement_date=today + timedelta(days=1),
        )
    assert batch is not None and batch.totals.captured_minor > 0
    assert batch.totals.refunds_minor > 0 and batch.totals.fees_minor > 0

    async def live() -> dict[str, Any] | None:
        response = await api.get(
            "/v1/settlements/live", params={"day": today.isoformat()}, headers=merchant.headers
        )
        assert response.status_code == 200, response.text
        rows = response.json()["data"]
        if not rows or rows[0]["captured"] != batch.totals.captured_minor:
            return None
        if rows[0]["refunds"] != batch.totals.refunds_minor:
            return None
        return dict(rows[0])

    row = await wait_for(live, timeout_s=60, what="the live view to catch up")
    t = batch.totals
    assert (row["captured"], row["refunds"], row["disputes"], row["adjustments"]) == (
        t.captured_minor,
        t.refunds_minor,
        t.disputes_minor,
        t.adjustments_minor,
    )
    assert (row["fees"], row["gst"], row["net"]) == (t.fees_minor, t.gst_minor, t.base_net_minor)

    bad = await api.get("/v1/settlements/live", params={"day": "26-11"}, headers=merchant.headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_day"
