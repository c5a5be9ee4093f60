"""The local stack, against the real services: each one answers and does its job.

``stack_up`` is called first, so the module works whether or not ``rizzpay stack up`` ran before
(it is a no-op when everything is already healthy).  Stopping and restarting the whole stack
is deliberately not tested here: it is slow, and checked by hand.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # the admin package re-exports it without __all__

from deploy.stack import StackSettings, load_settings, stack_up, status

pytestmark = pytest.mark.integration

KAFKA_ROUND_TRIP_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def settings() -> StackSettings:
    """Settings of a running stack; ``pg_dsn`` carries the generated password after ``up``."""
    loaded = load_settings()
    stack_up(loaded)
    return loaded


@pytest.fixture
def fresh_topic(settings: StackSettings) -> Iterator[str]:
    """A topic no other test has used, deleted afterwards (auto-creation is off)."""
    name = f"{settings.topic_prefix}stack-test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(
        timeout=KAFKA_ROUND_TRIP_TIMEOUT_S
    )
    yield name
    admin.delete_topics([name])[name].result(timeout=KAFKA_ROUND_TRIP_TIMEOUT_S)


def test_status_reports_every_service_up(settings: StackSettings) -> None:
    rows = {row.name: row for row in status(settings)}
    assert set(rows) == {"kafka", "postgres", "redis", "sandbox", "clickhouse"}
    for name in ("kafka", "postgres", "redis", "sandbox"):
        assert rows[name].state == "up", rows[name]
        if rows[name].managed:
            assert rows[name].pid is not None, rows[name]
    assert rows["clickhouse"].up
    assert "***" in rows["postgres"].endpoint or urlsplit(settings.pg_dsn).password is None


def test_kafka_produces_and_consumes_on_a_fresh_topic(
    settings: StackSettings, fresh_topic: str
) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "enable.idempotence": True}
    )
    key, value = b"pay_stack_test", uuid.uuid4().bytes
    producer.produce(fresh_topic, key=key, value=value)
    assert producer.flush(KAFKA_ROUND_TRIP_TIMEOUT_S) == 0, "broker did not acknowledge"

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"stack-test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([fresh_topic])
        deadline = time.monotonic() + KAFKA_ROUND_TRIP_TIMEOUT_S
        received = None
        while received is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            assert error is None or error.code() == KafkaError._PARTITION_EOF, error
            if error is None:
                received = message
        assert received is not None, "no message consumed within the timeout"
        assert received.key() == key
        assert received.value() == value
    finally:
        consumer.close()


async def test_postgres_accepts_the_generated_password(settings: StackSettings) -> None:
    if settings.stack_manage_postgres:
        assert urlsplit(settings.pg_dsn).password, "managed PostgreSQL needs a generated password"
    conn = await asyncpg.connect(settings.pg_dsn, timeout=10)
    try:
        row = await conn.fetchrow(
            "SELECT current_user AS who, rolcreatedb AS can_create_db"
            " FROM pg_roles WHERE rolname = current_user"
        )
        assert row is not None
        assert row["can_create_db"], "tests create a database per test; the role needs CREATEDB"
        assert await conn.fetchval("SELECT 6 * 7") == 42
    finally:
        await conn.close()


def test_redis_answers_ping(settings: StackSettings) -> None:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        assert client.ping()
    finally:
        client.close()


def test_second_up_is_a_no_op(settings: StackSettings) -> None:
    before = {row.name: row.pid for row in status(settings)}
    rows = stack_up(settings)
    for row in rows:
        if row.name != "clickhouse":
            assert row.detail == "already running", row
        assert row.pid == before[row.name], f"{row.name} was restarted"
