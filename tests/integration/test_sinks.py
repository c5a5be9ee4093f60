"""The warehouse sink against the real Kafka, PostgreSQL (native partitions: no TimescaleDB
here) and an embedded ClickHouse owned by the sink's own process.

The sink runs as ``rizzpay warehouse sink --stop-when-caught-up`` in a subprocess with a chDB
path under tmp_path (one engine per process: the pytest process may already hold another
path); ClickHouse is read afterwards by ``rizzpay warehouse query``, once the sink has exited.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from pydantic import BaseModel

from models.config import REPO_ROOT, ServiceEndpoints
from models.events import (
    DeadLetter,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
    PaymentExpired,
    PaymentFailed,
    PaymentRefunded,
    PaymentRequested,
    RefundRequested,
    encode,
)
from models.ids import derived_event_id, new_event_id, payment_id_for
from models.methods import CardMethod, NetbankingMethod, UpiMethod
from models.money import Money
from models.topics import PAYMENTS_DEADLETTER, PAYMENTS_LIFECYCLE, PAYMENTS_REQUESTED
from tests.integration.kafka_helpers import read_topic, value_of
from warehouse.sinks.clickhouse_sink import ClickHouseSink
from warehouse.sinks.consumer import SOURCE_TOPICS, SinkSettings, WarehouseSink
from warehouse.sinks.postgres_sink import LagSample, PostgresSink, sink_lag
from warehouse.sinks.rows import PaymentEventRow, PaymentRow, payment_event_log_row
from warehouse.timeseries import (
    EVENT_LOG,
    Mode,
    add_months,
    detect_mode,
    drop_expired_partitions,
    existing_partitions,
    month_start,
    months_from,
    partition_name,
    refresh_rollups,
)

pytestmark = pytest.mark.integration

PAYMENTS = 300
MERCHANTS = ("m_sink_a", "m_sink_b", "m_sink_c")
METHODS = (
    UpiMethod(vpa="asha.k@okhdfc"),
    CardMethod(token="tok_visa_4242", bin="411111", last4="4242", network="visa"),
    NetbankingMethod(bank_code="HDFC"),
)


def _traffic(now: datetime) -> tuple[list[BaseModel], list[BaseModel]]:
    """The events of PAYMENTS payments for payments.requested (the requests, then refund
    commands) and payments.lifecycle.  The first ten payments are six months old (a month whose
    partition the sink must create on demand)."""
    rng = random.Random(7)
    old = datetime.combine(add_months(month_start(now.date()), -6), datetime.min.time(), UTC)
    requested: list[BaseModel] = []
    commands: list[BaseModel] = []  # on payments.requested too, after every payment
    lifecycle: list[BaseModel] = []
    for i in range(PAYMENTS):
        merchant = MERCHANTS[i % len(MERCHANTS)]
        method = METHODS[i % len(METHODS)]
        at = (old + timedelta(days=3, minutes=i)) if i < 10 else now - timedelta(seconds=7 * i)
        money = Money(minor=rng.randint(100, 5_00_000_00), currency="INR")
        pid = payment_id_for(merchant, f"sink-{uuid.uuid4().hex}")
        common: dict[str, Any] = {"payment_id": pid, "merchant_id": merchant}
        requested.append(
            PaymentRequested(
                event_id=new_event_id(),
                occurred_at=at,
                request_fingerprint=hashlib.sha256(pid.encode()).hexdigest(),
                amount=money,
                method=method,
                customer_id=f"cust_{i % 40}" if i % 5 else None,
                **common,
            )
        )

        def eid(kind: str, pid: str = pid) -> str:
            return derived_event_id(pid, kind)

        later = at + timedelta(seconds=2)
        match i % 4:
            case 0 | 2:
                lifecycle.append(
                    PaymentAuthorized(
                        event_id=eid("authorized"), occurred_at=later, amount=money,
                        method_type=method.type, **common,
                    )
                )  # fmt: skip
                lifecycle.append(
                    PaymentCaptured(
                        event_id=eid("captured"), occurred_at=later, amount=money, **common
                    )
                )
                if i % 4 == 2:  # the merchant asks for a refund, and it is made
                    refund = Money(minor=max(1, money.minor // 3), currency="INR")
                    refund_id = f"rfd_{uuid.uuid4().hex[:20]}"
                    commands.append(
                        RefundRequested(
                            event_id=new_event_id(), occurred_at=later, amount=refund,
                            refund_id=refund_id, request_fingerprint="c" * 64, **common,
                        )
                    )  # fmt: skip
                    lifecycle.append(
                        PaymentRefunded(
                            event_id=eid("refunded"), occurred_at=later, amount=refund,
                            refund_id=refund_id, **common,
                        )
                    )  # fmt: skip
            case 1:
                lifecycle.append(
                    PaymentDeclined(
                        event_id=eid("declined"), occurred_at=later, amount=money,
                        method_type=method.type, decline_code="insufficient_funds", **common,
                    )
                )  # fmt: skip
            case _:
                cls = PaymentFailed if i % 8 == 3 else PaymentExpired
                extra = {"reason": "processor timeout"} if cls is PaymentFailed else {}
                lifecycle.append(
                    cls(event_id=eid(cls.__name__), occurred_at=later, **common, **extra)
                )
    return requested + commands, lifecycle


def _produce(prefix: str, requested: list[BaseModel], lifecycle: list[BaseModel]) -> None:
    producer = Producer(
        {"bootstrap.servers": ServiceEndpoints().kafka_bootstrap, "enable.idempotence": True}
    )
    for spec, events in ((PAYMENTS_REQUESTED, requested), (PAYMENTS_LIFECYCLE, lifecycle)):
        for event in events:
            key = event.payment_id.encode()  # type: ignore[attr-defined]
            producer.produce(spec.full_name(prefix), key=key, value=encode(event))
    # At-least-once producers send some events twice: the warehouse records them once.
    for event in requested[:5] + lifecycle[:5]:
        spec = PAYMENTS_REQUESTED if isinstance(event, PaymentRequested) else PAYMENTS_LIFECYCLE
        producer.produce(spec.full_name(prefix), key=b"dup", value=encode(event))
    # Two messages the warehouse cannot record: bytes that are not JSON, and a requested event
    # on the lifecycle topic.
    producer.produce(PAYMENTS_REQUESTED.full_name(prefix), key=b"garbage", value=b"{not json")
    producer.produce(PAYMENTS_LIFECYCLE.full_name(prefix), key=b"wrong", value=encode(requested[0]))
    assert producer.flush(30) == 0


def _env(pg_dsn: str, prefix: str, ch_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIZZPAY_")}
    env.update(
        RIZZPAY_PG_DSN=pg_dsn,
        RIZZPAY_TOPIC_PREFIX=prefix,
        RIZZPAY_KAFKA_BOOTSTRAP=ServiceEndpoints().kafka_bootstrap,
        RIZZPAY_CLICKHOUSE_DSN=f"chdb://{ch_path}",
    )
    return env


def _rizzpay(env: dict[str, str], *args: str, timeout_s: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, f"rizzpay {' '.join(args)} failed:\n{done.stderr[-4000:]}"
    return done.stdout


def _sink(env: dict[str, str], group: str, batch_max_messages: int = 1000) -> str:
    return _rizzpay(
        env,
        *("warehouse", "sink", "--stop-when-caught-up", "--group", group),
        *("--batch-max-wait-ms", "200", "--lag-interval-s", "0.5", "--log-level", "warning"),
        *("--batch-max-messages", str(batch_max_messages)),
    )


def _clickhouse(env: dict[str, str]) -> dict[str, tuple[int, int]]:
    sql = """
        SELECT 'payments' AS t, count() AS n, sum(amount_minor) AS amount
          FROM rizzpay.payments FINAL
        UNION ALL
        SELECT concat('events:', event_type), count(), sum(amount_minor)
          FROM rizzpay.payment_events FINAL GROUP BY event_type
        UNION ALL
        SELECT 'customers', uniqExact(customer_id), 0 FROM rizzpay.payments FINAL
         WHERE customer_id != ''
        UNION ALL
        SELECT 'old', count(), sum(amount_minor) FROM rizzpay.payments FINAL
         WHERE requested_at < now64(6) - INTERVAL 30 DAY
    """
    lines = _rizzpay(env, "warehouse", "query", sql).splitlines()
    rows = [json.loads(line) for line in lines]
    return {r["t"]: (int(r["n"]), int(r["amount"])) for r in rows}


def _expected(requested: list[BaseModel], lifecycle: list[BaseModel]) -> dict[str, Any]:
    by_type: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    for event in requested + lifecycle:
        row = payment_event_log_row(event)  # type: ignore[arg-type]
        by_type[row.event_type] += 1
        amounts[row.event_type] += row.amount_minor or 0
    clickhouse = {"payments": (by_type["payment.requested"], amounts["payment.requested"])}
    for event_type, n in by_type.items():
        if event_type != "payment.requested":
            clickhouse[f"events:{event_type}"] = (n, amounts[event_type])
    customers = {e.customer_id for e in requested if isinstance(e, PaymentRequested)} - {None}
    clickhouse["customers"] = (len(customers), 0)
    old = [e for e in requested[:10] if isinstance(e, PaymentRequested)]  # six months back
    clickhouse["old"] = (len(old), sum(e.amount.minor for e in old))
    return {"by_type": by_type, "amounts": amounts, "clickhouse": clickhouse}


async def _postgres_state(conn: asyncpg.Connection) -> dict[str, Any]:
    log = await conn.fetch(
        """SELECT event_type, count(*) AS n, coalesce(sum(amount_minor), 0)::bigint AS amount
             FROM payment_event_log GROUP BY event_type"""
    )
    rollup = await conn.fetch(
        """SELECT event_type, sum(events)::bigint AS n,
                  coalesce(sum(amount_minor), 0)::bigint AS amount
             FROM payment_metrics_minute GROUP BY event_type"""
    )
    snapshot = await conn.fetchval(
        """SELECT md5(string_agg(event_id || loaded_at::text, ',' ORDER BY event_id))
             FROM payment_event_log"""
    )
    minute_rows = await conn.fetch("SELECT * FROM payment_metrics_minute ORDER BY 1, 2, 3, 4")
    return {
        "log": {r["event_type"]: (r["n"], r["amount"]) for r in log},
        "rollup": {r["event_type"]: (r["n"], r["amount"]) for r in rollup},
        "snapshot": snapshot,
        "minutes": [tuple(r) for r in minute_rows],
    }


async def test_sink_loads_both_stores_idempotently_with_dead_letters_and_lag(
    pg_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    requested, lifecycle = _traffic(now)
    _produce(topic_prefix, requested, lifecycle)
    expected = _expected(requested, lifecycle)
    env = _env(pg_dsn, topic_prefix, tmp_path / "ch")

    first_group = f"{topic_prefix}warehouse.sink"
    out = _sink(env, first_group)
    assert f"written {len(requested) + len(lifecycle)}, dead-lettered 2" in out

    conn = await asyncpg.connect(pg_dsn)
    try:
        first = await _postgres_state(conn)
        want = {t: (n, expected["amounts"][t]) for t, n in expected["by_type"].items()}
        assert first["log"] == want
        assert first["rollup"] == want  # the per-minute rollup adds up to the log
        hourly = await conn.fetchval("SELECT sum(events)::bigint FROM payment_metrics_hour")
        assert hourly == sum(expected["by_type"].values())
        # The six-month-old events got a partition of their own, made by the sink.
        old_month = add_months(month_start(now.date()), -6)
        assert old_month in await existing_partitions(conn, EVENT_LOG)
        # Rebuilding the rollup from the log changes nothing: the sink kept it exact.
        await refresh_rollups(conn, now - timedelta(days=400), now + timedelta(minutes=1))
        assert (await _postgres_state(conn))["minutes"] == first["minutes"]
        lags = await sink_lag(conn, first_group)
        assert len(lags) == sum(t.partitions for t in SOURCE_TOPICS)
        assert set(lags.values()) == {0}
        samples = await conn.fetchval(
            "SELECT count(*) FROM sink_lag_samples WHERE consumer_group = $1", first_group
        )
        assert samples >= len(lags)
    finally:
        await conn.close()

    assert _clickhouse(env) == expected["clickhouse"]

    letters = [
        DeadLetter.model_validate_json(value_of(m))
        for m in read_topic(PAYMENTS_DEADLETTER.full_name(topic_prefix), expect=2, timeout_s=20)
    ]
    assert sorted((d.error_code, d.source_topic) for d in letters) == [
        ("invalid_json", PAYMENTS_REQUESTED.full_name(topic_prefix)),
        ("unknown_event_type", PAYMENTS_LIFECYCLE.full_name(topic_prefix)),
    ]
    assert {d.consumer for d in letters} == {"warehouse.sink"}
    assert {d.key for d in letters} == {"garbage", "wrong"}

    # Replay everything from offset 0 under a new consumer group, in smaller batches: nothing
    # changes anywhere.
    out = _sink(env, f"{topic_prefix}warehouse.replay", batch_max_messages=100)
    assert "written 0, dead-lettered 2" in out
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await _postgres_state(conn) == first
    finally:
        await conn.close()
    assert _clickhouse(env) == expected["clickhouse"]


async def test_native_partitions_rollup_and_retention_on_the_local_postgres(pg_dsn: str) -> None:
    sink = await PostgresSink.connect(pg_dsn)
    try:
        assert sink.mode is Mode.NATIVE  # Debian's PostgreSQL 15 has no TimescaleDB
        async with sink.pool.acquire() as conn:
            assert await detect_mode(conn) is Mode.NATIVE
            today = datetime.now(UTC).date()
            have = await existing_partitions(conn, EVENT_LOG)
            assert set(months_from(today, -1, 5)) <= have  # made by the migration

        old = datetime(2019, 1, 31, 23, 59, 30, tzinfo=UTC)
        requested, lifecycle = _traffic(datetime.now(UTC))
        rows = [
            payment_event_log_row(e.model_copy(update={"occurred_at": old}))  # type: ignore[arg-type]
            for e in (requested[20], lifecycle[20], lifecycle[21])
        ]
        assert await sink.write(rows) == 3
        assert await sink.write(rows) == 0  # a retried batch inserts nothing
        async with sink.pool.acquire() as conn:
            assert date(2019, 1, 1) in await existing_partitions(conn, EVENT_LOG)
            minute = await conn.fetch(
                "SELECT bucket, events, amount_minor FROM payment_metrics_minute"
            )
            assert sum(r["events"] for r in minute) == 3
            assert {r["bucket"] for r in minute} == {old.replace(second=0)}
            # Retention drops the 2019 partition and nothing recent.
            dropped = await drop_expired_partitions(conn, today)
            assert partition_name(EVENT_LOG, date(2019, 1, 1)) in dropped
            assert all(not n.endswith(today.strftime("%Y%m")) for n in dropped)
            assert await conn.fetchval("SELECT count(*) FROM payment_event_log") == 0
            # The rollup outlives the raw rows, as a continuous aggregate would.
            assert await conn.fetchval("SELECT sum(events) FROM payment_metrics_minute") == 3

        at = datetime.now(UTC)
        await sink.write_lag(
            [
                LagSample(at, "g", "t.payments", 0, None, 5, 5),
                LagSample(at, "g", "t.payments", 1, 7, 7, 0),
            ]
        )
        await sink.write_lag([LagSample(at + timedelta(seconds=1), "g", "t.payments", 0, 5, 5, 0)])
        async with sink.pool.acquire() as conn:
            assert await sink_lag(conn, "g") == {"t.payments[0]": 0, "t.payments[1]": 0}
            assert await conn.fetchval("SELECT count(*) FROM sink_lag_samples") == 3
    finally:
        await sink.close()


class _FlakyClickHouse(ClickHouseSink):
    """Records what it is given; refuses its ``fail_on``-th write for good."""

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__(client=None, database="unused")
        self.fail_on = fail_on
        self.calls = 0
        self.event_ids: set[str] = set()

    def write(
        self,
        payments: Sequence[PaymentRow],
        events: Sequence[PaymentEventRow],
        scores: Sequence[object] = (),
    ) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("ClickHouse refused the batch")
        self.event_ids |= {r.event_id for r in payments} | {r.event_id for r in events}

    def close(self) -> None:
        pass


def _committed(group: str, topics: list[str]) -> int:
    """Messages the group has committed past, over all partitions of ``topics``."""
    consumer = Consumer(
        {"bootstrap.servers": ServiceEndpoints().kafka_bootstrap, "group.id": group}
    )
    try:
        wanted = [
            TopicPartition(t, p) for t in topics for p in range(PAYMENTS_REQUESTED.partitions)
        ]
        return sum(max(tp.offset, 0) for tp in consumer.committed(wanted, timeout=10))
    finally:
        consumer.close()


async def test_offsets_are_committed_only_after_the_batch_is_written(
    pg_dsn: str, topic_prefix: str
) -> None:
    requested, lifecycle = _traffic(datetime.now(UTC))
    _produce(topic_prefix, requested, lifecycle)
    settings = SinkSettings(
        kafka_bootstrap=ServiceEndpoints().kafka_bootstrap,
        pg_dsn=pg_dsn,
        clickhouse_dsn="unused://",
        topic_prefix=topic_prefix,
        batch_max_messages=200,
        batch_max_wait_s=5.0,
        lag_interval_s=0.5,
        stop_when_caught_up=True,
    )
    topics = [
        PAYMENTS_REQUESTED.full_name(topic_prefix),
        PAYMENTS_LIFECYCLE.full_name(topic_prefix),
    ]

    flaky = _FlakyClickHouse(fail_on=2)
    sink = WarehouseSink(settings, clickhouse=flaky, postgres=await PostgresSink.connect(pg_dsn))
    with pytest.raises(RuntimeError, match="refused"):
        await sink.run()
    # The first batch was written and committed; the second reached PostgreSQL but not
    # ClickHouse, so its offsets were not committed.
    assert _committed(settings.group_id, topics) == 200

    healthy = _FlakyClickHouse()
    sink = WarehouseSink(settings, clickhouse=healthy, postgres=await PostgresSink.connect(pg_dsn))
    await sink.run()
    assert _committed(settings.group_id, topics) == len(requested) + len(lifecycle) + 12
    every = {e.event_id for e in requested + lifecycle}  # type: ignore[attr-defined]
    assert flaky.event_ids | healthy.event_ids == every
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM payment_event_log") == len(every)
    finally:
        await conn.close()
