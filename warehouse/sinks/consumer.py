"""The sink loop: Kafka → ClickHouse facts and the PostgreSQL event log, exactly-once in effect.

One confluent-kafka consumer reads ``payments.requested``, ``payments.lifecycle`` and
``payments.scored`` (registry names under the topic prefix) with auto-commit off.  Messages
are gathered into a batch until it holds ``batch_max_messages`` or ``batch_max_wait_s`` has
passed since its first message; then the batch is

1. decoded with the registry (a message that does not decode becomes a dead letter),
2. written to PostgreSQL (``payment_event_log``; natively also ``payment_metrics_minute``), in
   one transaction, ``ON CONFLICT DO NOTHING``,
3. written to ClickHouse (``payments``, ``payment_events``, ``fraud_scores``; ReplacingMergeTree
   on the event id),
4. followed by its dead letters, each acknowledged by the broker,

and only then are the consumer's positions committed, synchronously.  A crash anywhere before
the commit redelivers the batch, and writing it again changes nothing: at-least-once delivery
and idempotent writes give an exactly-once effect.  Transient failures (connections, timeouts)
are retried with backoff; anything else stops the sink without committing, for its supervisor
to restart it.

Consumer lag per assigned partition (end offset minus committed offset) is sampled every
``lag_interval_s`` into ``sink_lag_samples`` / ``sink_lag_current``; read it with
:func:`warehouse.sinks.postgres_sink.sink_lag`.

Between batches, every ``facts_interval_s``, the sink also copies ledger postings and settlement
batches from PostgreSQL into ClickHouse (``warehouse.sinks.ledger_facts``): this process owns
the embedded ClickHouse, so the copy runs here.  "Caught up" includes those copies.

For the same reason the sink runs the AML rules on their schedule (``warehouse.aml.schedule``;
leader-only across replicas), checked every ``aml_check_interval_s``; a sink that stops when
caught up first runs the open month once more over what it loaded.  A run takes seconds (a
month of facts); it runs beside the loop, not in it: an asyncio task whose rule queries go
through their own ClickHouse client in a worker thread (chDB allows any number of connections
to the one engine of a process and runs their queries in parallel; clickhouse-connect locks
per client), so the loop keeps consuming, writing and committing while the rules run.  One run
at a time; stopping the sink waits for a run in progress, so its ``aml_runs`` row is finished.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import clickhouse_connect
from clickhouse_connect.driver.exceptions import OperationalError
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from models.events import DeadLetter, DecodeError, encode
from models.topics import (
    PAYMENTS_DEADLETTER,
    PAYMENTS_LIFECYCLE,
    PAYMENTS_REQUESTED,
    PAYMENTS_SCORED,
    TopicSpec,
)
from streams.retry import TRANSIENT_ERRORS, retry_transient
from warehouse.aml.schedule import AmlSchedule, AmlScheduler
from warehouse.aml.settings import AmlSettings
from warehouse.migrate import CLICKHOUSE_DATABASE
from warehouse.sinks.clickhouse_sink import ClickHouseSink
from warehouse.sinks.ledger_facts import LedgerFactsCopier, copy_facts
from warehouse.sinks.postgres_sink import LagSample, PostgresSink
from warehouse.sinks.rows import SinkRows, rows_for

log = logging.getLogger("rizzpay.warehouse.sink")

CONSUMER_NAME = "warehouse.sink"
SOURCE_TOPICS: tuple[TopicSpec, ...] = (PAYMENTS_REQUESTED, PAYMENTS_LIFECYCLE, PAYMENTS_SCORED)
T = TypeVar("T")

# What the sink retries: the payments agent's transient errors, and a ClickHouse server away.
SINK_TRANSIENT_ERRORS = (*TRANSIENT_ERRORS, OperationalError)
# How long one consume call may block, so a stop request is seen within this many seconds.
_POLL_SLICE_S = 0.5
# Broker round trips for committed offsets and watermarks give up after this many seconds.
_KAFKA_TIMEOUT_S = 10.0


class DeadLetterNotDelivered(OSError):
    """The broker did not acknowledge a dead letter; the batch must not be committed yet."""


@dataclass(frozen=True)
class SinkSettings:
    """Where the sink reads and writes, and its batching rules.

    ``batch_max_messages`` (messages) and ``batch_max_wait_s`` (seconds since the batch's first
    message) bound a batch; ``lag_interval_s`` (seconds) is how often lag is sampled;
    ``maintenance_interval_s`` (seconds) how often native partitions are created ahead and
    expired ones dropped.  ``stop_when_caught_up`` ends the run once every assigned partition
    has lag 0 and the ledger facts are copied (backfills, tests).  ``facts_interval_s``
    (seconds) is how often ledger postings and settlement batches are copied from PostgreSQL;
    ``replay_facts`` starts those copies from the beginning.  ``aml`` (None: off) turns the
    AML schedule on; ``aml_schedule`` says what is due, checked every ``aml_check_interval_s``.
    """

    kafka_bootstrap: str
    pg_dsn: str
    clickhouse_dsn: str
    clickhouse_database: str = CLICKHOUSE_DATABASE
    topic_prefix: str = ""
    consumer_group: str | None = None
    batch_max_messages: int = 1000
    batch_max_wait_s: float = 1.0
    lag_interval_s: float = 5.0
    maintenance_interval_s: float = 3600.0
    retry_backoff_max_s: float = 5.0
    stop_when_caught_up: bool = False
    facts_interval_s: float = 5.0
    replay_facts: bool = False
    aml: AmlSettings | None = None
    aml_schedule: AmlSchedule = field(default_factory=AmlSchedule)
    aml_check_interval_s: float = 60.0

    def __post_init__(self) -> None:
        if self.batch_max_messages < 1 or self.batch_max_wait_s <= 0:
            raise ValueError("a batch needs at least one message and a positive time bound")

    @property
    def group_id(self) -> str:
        """The consumer group: ``<prefix>warehouse.sink`` unless set."""
        return self.consumer_group or f"{self.topic_prefix}{CONSUMER_NAME}"


@dataclass(frozen=True)
class Rejected:
    """A message the warehouse cannot record, with its stable reason code."""

    message: Message
    code: str
    reason: str


def decode_messages(
    messages: Sequence[Message], specs: dict[str, TopicSpec]
) -> tuple[list[tuple[Message, SinkRows]], list[Rejected]]:
    """Decode each message with its topic's registry entry and build its rows.  Messages that
    do not decode become :class:`Rejected` with the registry's stable code."""
    decoded: list[tuple[Message, SinkRows]] = []
    rejected: list[Rejected] = []
    for message in messages:
        spec = specs.get(message.topic() or "")
        raw = message.value()
        try:
            if spec is None:
                raise DecodeError("unknown_topic", f"{message.topic()} is not a source topic")
            if raw is None:
                raise DecodeError("invalid_json", "message has no value")
            event = spec.decode(raw)
        except DecodeError as exc:
            rejected.append(Rejected(message, exc.code, exc.reason))
            continue
        try:
            decoded.append((message, rows_for(event)))
        except TypeError as exc:
            rejected.append(Rejected(message, "not_recorded_by_warehouse", str(exc)))
    return decoded, rejected


def dead_letter_for(rejected: Rejected, *, failed_at: datetime) -> DeadLetter:
    message = rejected.message
    key = message.key()
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    return DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=key.decode("utf-8", "replace") if isinstance(key, bytes) else None,
        value=bytes(message.value() or b"").decode("utf-8", "replace"),
        error_code=rejected.code,
        reason=rejected.reason,
        consumer=CONSUMER_NAME,
        failed_at=failed_at,
    )


def kafka_lag(consumer: Consumer, group: str, now: datetime) -> list[LagSample]:
    """Lag of every partition assigned to ``consumer``: end offset (high watermark) minus the
    group's committed offset, or minus the low watermark where nothing is committed yet.

    Blocking.  The high watermark comes from the consumer's last fetch response (at most
    ``fetch.wait.max.ms`` old); the broker is asked only where that is not known yet, because
    a query waits behind the consumer's long-polling fetch (about 0.5 s per partition).
    """
    assigned = consumer.assignment()
    if not assigned:
        return []
    samples = []
    for tp in consumer.committed(assigned, timeout=_KAFKA_TIMEOUT_S):
        committed = tp.offset if tp.offset >= 0 else None
        where = TopicPartition(tp.topic, tp.partition)
        low, high = consumer.get_watermark_offsets(where, cached=True)
        if high < 0 or (committed is None and low < 0 < high):
            low, high = consumer.get_watermark_offsets(
                where, timeout=_KAFKA_TIMEOUT_S, cached=False
            )
        start = committed if committed is not None else max(low, 0)
        lag = max(0, high - start)
        samples.append(LagSample(now, group, tp.topic, tp.partition, committed, high, lag))
    return samples


class WarehouseSink:
    """The sink loop; :meth:`run` until :meth:`stop` (or caught up, if so configured)."""

    def __init__(
        self,
        settings: SinkSettings,
        *,
        clickhouse: ClickHouseSink,
        postgres: PostgresSink,
        consumer: Consumer | None = None,
        producer: Producer | None = None,
        facts: LedgerFactsCopier | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.clickhouse = clickhouse
        self.postgres = postgres
        self.facts = facts  # None: this sink copies no ledger facts
        self._clock = clock  # for the AML schedule
        self._aml: AmlScheduler | None = None  # built on first use, on its own connection
        self._aml_conn: asyncpg.Connection | None = None
        # The rules' own ClickHouse client: they query it from a worker thread while the loop
        # writes through ``clickhouse.client`` (one client must not serve two threads at once).
        self._aml_client: Any = None
        self._aml_task: asyncio.Task[None] | None = None  # the run in progress, if any
        self._last_aml = 0.0
        self.consumer = consumer or Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": settings.group_id,
                "client.id": CONSUMER_NAME,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
            },
            logger=logging.getLogger("rizzpay.kafka.consumer"),
        )
        self.producer = producer or Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            },
            logger=logging.getLogger("rizzpay.kafka.producer"),
        )
        prefix = settings.topic_prefix
        self._specs = {spec.full_name(prefix): spec for spec in SOURCE_TOPICS}
        self._deadletter_topic = PAYMENTS_DEADLETTER.full_name(prefix)
        self._stop = asyncio.Event()
        self._committed: dict[tuple[str, int], int] = {}
        self._last_lag = 0.0
        self._last_maintenance = 0.0
        self._last_facts = 0.0
        self.postings_copied = 0
        self.settlements_copied = 0
        self.written = 0  # events newly written to the event log by this run
        self.dead_lettered = 0

    @classmethod
    async def open(
        cls, settings: SinkSettings, *, clock: Callable[[], datetime] | None = None
    ) -> WarehouseSink:
        """Connect both stores (migrating the ClickHouse database) and build the sink."""
        postgres = await PostgresSink.connect(settings.pg_dsn)
        clickhouse = ClickHouseSink.connect(settings.clickhouse_dsn, settings.clickhouse_database)
        facts = LedgerFactsCopier(clickhouse.client, clickhouse.database)
        if settings.replay_facts:
            facts.reset()
        return cls(
            settings,
            clickhouse=clickhouse,
            postgres=postgres,
            facts=facts,
            clock=clock or (lambda: datetime.now(UTC)),
        )

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and leave the loop."""
        self._stop.set()

    async def run(self) -> None:
        """Consume, write and commit until stopped; then close the consumer (leaving the
        group) and both stores."""
        s = self.settings
        self.consumer.subscribe(list(self._specs), on_revoke=self._on_revoke)
        log.info("sink %s reading %s (%s)", s.group_id, list(self._specs), self.postgres.mode)
        try:
            await self._maintain()
            batch: list[Message] = []
            deadline = 0.0
            while not self._stop.is_set():
                wait_s = s.batch_max_wait_s if not batch else deadline - time.monotonic()
                got = await asyncio.to_thread(
                    self.consumer.consume,
                    s.batch_max_messages - len(batch),
                    max(0.0, min(wait_s, _POLL_SLICE_S)),
                )
                for message in got:
                    if self._is_error(message):
                        continue
                    if not batch:
                        deadline = time.monotonic() + s.batch_max_wait_s
                    batch.append(message)
                if batch and (len(batch) >= s.batch_max_messages or time.monotonic() >= deadline):
                    await self._flush(batch)
                    batch = []
                idle = not batch and not got
                if idle:
                    await self._commit()
                if idle and s.stop_when_caught_up and await self._caught_up():
                    break
                await self._between_batches()
            if batch:
                await self._flush(batch)
            await self._finish_aml()
            await self._sample_lag(force=True)
        finally:
            await self._settle_aml()
            await asyncio.to_thread(self.consumer.close)
            self.producer.flush(_KAFKA_TIMEOUT_S)
            if self._aml_conn is not None:
                await self._aml_conn.close()
            if self._aml_client is not None:
                self._aml_client.close()
            self.clickhouse.close()
            await self.postgres.close()
        log.info(
            "sink stopped: %d events written, %d dead-lettered", self.written, self.dead_lettered
        )

    async def _between_batches(self) -> None:
        """The periodic work: lag samples, ledger facts, the AML schedule, partitions."""
        s = self.settings
        await self._sample_lag()
        if time.monotonic() - self._last_facts >= s.facts_interval_s:
            await self._copy_facts()
        self._reap_aml()
        if self._aml_task is None and time.monotonic() - self._last_aml >= s.aml_check_interval_s:
            # Beside the loop: the next batches are consumed and committed while it runs.
            self._last_aml = time.monotonic()
            self._aml_task = asyncio.create_task(self._run_aml(), name="warehouse.sink.aml")
        if time.monotonic() - self._last_maintenance >= s.maintenance_interval_s:
            await self._maintain()

    def _is_error(self, message: Message) -> bool:
        err = message.error()
        if err is None:
            return False
        if err.fatal():
            raise KafkaException(err)
        log.warning("consumer error: %s", err)
        return True

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        # Whoever owns these partitions next starts from their committed offsets; any of their
        # messages still in our batch are written again by them, which changes nothing.
        self._committed.clear()

    async def _retry(self, action: Callable[[], Awaitable[T]], what: str) -> T:
        return await retry_transient(
            action,
            backoff_s_max=self.settings.retry_backoff_max_s,
            what=what,
            transient=SINK_TRANSIENT_ERRORS,
            give_up=self._stop.is_set,
        )

    async def _flush(self, batch: Sequence[Message]) -> None:
        decoded, rejected = decode_messages(batch, self._specs)
        unique: dict[str, tuple[Message, SinkRows]] = {}
        for message, rows in decoded:
            unique.setdefault(rows.event_id, (message, rows))
        refused = await self._write_postgres(list(unique.values()))
        rejected.extend(refused.values())
        kept = [rows for _, rows in unique.values() if rows.event_id not in refused]
        payments = [r.payments for r in kept if r.payments is not None]
        events = [r.payment_events for r in kept if r.payment_events is not None]
        scores = [r.fraud_scores for r in kept if r.fraud_scores is not None]

        async def write_clickhouse() -> None:
            self.clickhouse.write(payments, events, scores)

        await self._retry(write_clickhouse, "writing ClickHouse")
        if rejected:
            await self._retry(lambda: self._dead_letter(rejected), "sending dead letters")
        await self._commit()
        log.debug("flushed %d messages (%d rejected)", len(batch), len(rejected))

    async def _write_postgres(self, items: list[tuple[Message, SinkRows]]) -> dict[str, Rejected]:
        """Write the batch; if PostgreSQL refuses it for good, write event by event and return
        the refused ones by event id, so one bad event cannot hold back the rest."""
        try:
            self.written += await self._retry(
                lambda: self.postgres.write([rows.payment_event_log for _, rows in items]),
                "writing PostgreSQL",
            )
            return {}
        except asyncpg.PostgresError:
            log.exception("batch refused by PostgreSQL; writing one event at a time")
        refused: dict[str, Rejected] = {}
        for message, rows in items:
            row = rows.payment_event_log
            try:
                self.written += await self._retry(
                    lambda row=row: self.postgres.write([row]),  # type: ignore[misc]
                    "writing PostgreSQL",
                )
            except asyncpg.PostgresError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                refused[rows.event_id] = Rejected(message, "database_refused", reason)
        return refused

    async def _dead_letter(self, rejected: Sequence[Rejected]) -> None:
        now = datetime.now(UTC)
        failures: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err)

        for item in rejected:
            letter = dead_letter_for(item, failed_at=now)
            log.warning("dead-lettering %s: %s", letter.error_code, letter.reason)
            self.producer.produce(
                self._deadletter_topic,
                key=f"{letter.source_topic}/{letter.partition}/{letter.offset}".encode(),
                value=encode(letter),
                on_delivery=on_delivery,
            )
        left = await asyncio.to_thread(self.producer.flush, _KAFKA_TIMEOUT_S)
        if left or failures:
            raise DeadLetterNotDelivered(f"{left} undelivered, errors: {failures[:3]}")
        self.dead_lettered += len(rejected)

    async def _commit(self) -> None:
        """Commit the consumer's positions where they moved; only called with no batch in hand,
        so every position is of messages already durably written."""
        assigned = self.consumer.assignment()
        if not assigned:
            return
        moved = [
            tp
            for tp in self.consumer.position(assigned)
            if tp.offset >= 0 and self._committed.get((tp.topic, tp.partition), -1) < tp.offset
        ]
        if not moved:
            return
        try:
            await asyncio.to_thread(self.consumer.commit, offsets=moved, asynchronous=False)
        except KafkaException as exc:
            # A rebalance took the partitions away; their new owner redoes the batch.
            log.warning("commit failed (%s); the batch will be redelivered", exc)
            return
        for tp in moved:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    async def _lag(self) -> list[LagSample]:
        return await asyncio.to_thread(
            kafka_lag, self.consumer, self.settings.group_id, datetime.now(UTC)
        )

    async def _sample_lag(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_lag < self.settings.lag_interval_s:
            return
        self._last_lag = time.monotonic()
        samples = await self._lag()
        await self._retry(lambda: self.postgres.write_lag(samples), "writing lag samples")

    async def _caught_up(self) -> bool:
        samples = await self._lag()
        if not samples or any(s.lag for s in samples):
            return False
        await self._retry(lambda: self.postgres.write_lag(samples), "writing lag samples")
        self._last_lag = time.monotonic()
        await self._copy_facts()
        await self._finish_aml()
        await self._run_aml(month_to_date_now=True)
        return True

    async def _copy_facts(self) -> None:
        """Copy ledger postings and settlement batches until both are caught up."""
        self._last_facts = time.monotonic()
        facts = self.facts
        if facts is None:
            return
        postings, settlements = await self._retry(
            lambda: copy_facts(self.postgres.pool, facts), "copying ledger facts"
        )
        self.postings_copied += postings
        self.settlements_copied += settlements
        if postings or settlements:
            log.info("copied %d postings, %d settlement rows", postings, settlements)

    def _reap_aml(self) -> None:
        """Forget a finished AML run; an error it did not handle stops the sink, as it did when
        runs were awaited in the loop."""
        task = self._aml_task
        if task is not None and task.done():
            self._aml_task = None
            task.result()

    async def _finish_aml(self) -> None:
        """Wait for the AML run in progress, if any (raising what it raised)."""
        task, self._aml_task = self._aml_task, None
        if task is not None:
            await task

    async def _settle_aml(self) -> None:
        """On the way out after an error: let a run in progress finish (its thread cannot be
        cancelled, and its ``aml_runs`` row should be complete), logging what it raised."""
        try:
            await self._finish_aml()
        except Exception:
            log.exception("AML run failed while the sink was stopping")

    async def _run_aml(self, *, month_to_date_now: bool = False) -> None:
        """Run the AML rules that are due, if this sink has the schedule on and leads.  A lost
        scheduler connection drops leadership; the next check reconnects and competes again."""
        self._last_aml = time.monotonic()
        s = self.settings
        if s.aml is None:
            return
        try:
            if self._aml_client is None:
                self._aml_client = await asyncio.to_thread(
                    clickhouse_connect.get_client, dsn=s.clickhouse_dsn
                )
            if self._aml is None:
                self._aml_conn = await asyncpg.connect(s.pg_dsn)
                self._aml = AmlScheduler(
                    self._aml_conn,
                    self._aml_client,
                    self.clickhouse.database,
                    settings=s.aml,
                    schedule=s.aml_schedule,
                    clock=self._clock,
                )
            await self._aml.tick(month_to_date_now=month_to_date_now)
        except (*SINK_TRANSIENT_ERRORS, asyncpg.InterfaceError, asyncpg.PostgresError) as exc:
            # The AML schedule never stops the sink: payments keep flowing into the warehouse.
            log.warning("AML schedule stopped (%s); leadership released, retried later", exc)
            if self._aml_conn is not None:
                await self._aml_conn.close()
            self._aml, self._aml_conn = None, None

    async def _maintain(self) -> None:
        self._last_maintenance = time.monotonic()
        created, dropped = await self._retry(
            lambda: self.postgres.maintain(datetime.now(UTC).date()), "maintaining partitions"
        )
        if created or dropped:
            log.info("partitions created %s, dropped %s", created, dropped)


async def run_sink(settings: SinkSettings, *, stop: asyncio.Event | None = None) -> WarehouseSink:
    """Open a sink, run it until ``stop`` is set (or it is caught up, if configured), close it,
    and return it (for its counters)."""
    sink = await WarehouseSink.open(settings)
    watcher: asyncio.Task[Any] | None = None
    if stop is not None:

        async def watch() -> None:
            await stop.wait()
            sink.stop()

        watcher = asyncio.create_task(watch())
    try:
        await sink.run()
    finally:
        if watcher is not None:
            watcher.cancel()
    return sink
