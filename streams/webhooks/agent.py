"""The webhook agent and delivery loop: ``payments.lifecycle`` in, signed HTTP requests out.

Two parts run in every worker:

* the **enqueue agent** reads ``payments.lifecycle`` in batches and, in one PostgreSQL
  transaction per batch, writes each event into the outbox for every subscribed endpoint of its
  merchant (:func:`streams.webhooks.store.enqueue`: the delivery id is derived from the event id
  and the endpoint id, so a redelivered message adds nothing).  Concurrency is 1: ``enqueue``
  numbers a payment's events in the order it sees them, and that number is the order the
  endpoint receives them in, so the partition's order must be kept (faust-streaming #606 too).
  A message that does not decode goes to ``payments.deadletter``; transient database errors are
  retried here, never raised (Faust would acknowledge the batch and lose it).
* the **delivery loop**, a timer, runs :func:`streams.webhooks.delivery.deliver_due` every
  ``poll_interval_s``: each due delivery is signed, sent, and retried on the schedule, a 410
  disables its endpoint, exhausted ones are dead-lettered.  Several workers share the outbox
  safely (``FOR UPDATE SKIP LOCKED``), and a payment's next event waits for the earlier one.

The wall clock and the system resolver are read here, at the edge; everything below takes them
as arguments.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import faust
import httpx
from faust.types import EventT

from models.events import DeadLetter, DecodeError, LifecycleEvent, encode
from models.topics import PAYMENTS_DEADLETTER, PAYMENTS_LIFECYCLE
from streams.app import batch_agent, raw_topic
from streams.deadletters import dead_letter_key, dead_letter_of
from streams.retry import LazyPool, retry_transient
from streams.settings import WorkerSettings
from streams.webhooks.address_guard import system_resolver
from streams.webhooks.delivery import AttemptResult, deliver_due, new_http_client
from streams.webhooks.store import enqueue

__all__ = ["CONSUMER_NAME", "WebhookProcessor", "decode_lifecycle", "decode_pairs", "install"]

log = logging.getLogger("rizzpay.streams.webhooks")

CONSUMER_NAME = "webhooks.enqueue"
Event = EventT[bytes]


@dataclass(frozen=True)
class Undecodable:
    """A ``payments.lifecycle`` message a consumer cannot process (not a lifecycle event, or
    refused by the database), with a stable code for its dead letter."""

    event: Event
    code: str
    reason: str


def decode_pairs(
    events: Sequence[Event],
) -> tuple[list[tuple[Event, LifecycleEvent]], list[Undecodable]]:
    """Decode a batch of ``payments.lifecycle`` messages, keeping their order and each event's
    message (to dead-letter it if it cannot be applied)."""
    decoded: list[tuple[Event, LifecycleEvent]] = []
    bad: list[Undecodable] = []
    for event in events:
        raw = event.value
        try:
            if not isinstance(raw, bytes):
                raise DecodeError("invalid_json", "message has no value")
            decoded.append((event, PAYMENTS_LIFECYCLE.decode(raw)))  # type: ignore[arg-type]
        except DecodeError as exc:
            bad.append(Undecodable(event, exc.code, exc.reason))
    return decoded, bad


def decode_lifecycle(events: Sequence[Event]) -> tuple[list[LifecycleEvent], list[Undecodable]]:
    """Decode a batch of ``payments.lifecycle`` messages, keeping their order."""
    pairs, bad = decode_pairs(events)
    return [event for _, event in pairs], bad


def dead_letter(bad: Undecodable, *, consumer: str, failed_at: datetime) -> DeadLetter:
    """The ``payments.deadletter`` record of a message a lifecycle consumer could not read."""
    return dead_letter_of(bad.event, bad.code, bad.reason, consumer=consumer, failed_at=failed_at)


class WebhookProcessor:
    """Holds the agent's connections: ``handle`` enqueues a batch, ``deliver`` runs one pass."""

    def __init__(self, app: faust.App, settings: WorkerSettings) -> None:
        self.settings = settings
        self.webhooks = settings.webhooks
        self.schedule = self.webhooks.schedule()
        self.deadletter = raw_topic(app, PAYMENTS_DEADLETTER, settings.topic_prefix)
        self.rng = random.SystemRandom()
        self._pg = LazyPool(
            self.settings.pg_dsn,
            # One connection for the enqueue agent, one per parallel sender.
            max_size=self.webhooks.concurrency + 1,
            backoff_s_max=self.settings.retry_backoff_s_max,
        )
        self._http: httpx.AsyncClient | None = None

    async def pool(self) -> asyncpg.Pool:
        return await self._pg.get()

    async def handle(self, events: Sequence[Event]) -> int:
        """Enqueue a batch for delivery; returns how many deliveries were added."""
        decoded, bad = decode_pairs(events)
        added = 0
        if decoded:
            try:
                added = await self._enqueue([e for _, e in decoded])
            except asyncpg.PostgresError:
                # A permanent refusal must not hold back (or silently drop) the rest: enqueue
                # one event at a time and dead-letter the ones PostgreSQL refuses.
                log.exception("webhook batch refused by PostgreSQL; enqueueing one at a time")
                added = 0
                for message, event in decoded:
                    try:
                        added += await self._enqueue([event])
                    except asyncpg.PostgresError as exc:
                        reason = f"{type(exc).__name__}: {exc}"
                        bad.append(Undecodable(message, "database_refused", reason))
        if bad:
            await self._dead_letter(bad)
        return added

    async def _enqueue(self, decoded: Sequence[LifecycleEvent]) -> int:
        """Enqueue events in one transaction, retrying transient failures."""
        pool = await self.pool()

        async def run() -> int:
            now = datetime.now(UTC)
            async with pool.acquire() as conn, conn.transaction():
                total = 0
                for event in decoded:
                    total += await enqueue(conn, event, now=now)
                return total

        return await retry_transient(
            run, backoff_s_max=self.settings.retry_backoff_s_max, what="enqueueing webhooks"
        )

    async def _dead_letter(self, bad: Sequence[Undecodable]) -> None:
        now = datetime.now(UTC)
        pending: list[Awaitable[Any]] = []
        for item in bad:
            letter = dead_letter(item, consumer=CONSUMER_NAME, failed_at=now)
            log.warning("dead-lettering %s: %s", letter.error_code, letter.reason)
            pending.append(
                await self.deadletter.send(
                    key=dead_letter_key(letter),
                    value=encode(letter),
                )
            )
        await asyncio.gather(*pending)

    async def deliver(self) -> list[AttemptResult]:
        """One delivery pass over everything due now."""
        if self._http is None:
            self._http = new_http_client()
        pool = await self.pool()
        return await deliver_due(
            pool,
            now=datetime.now(UTC),
            rng=self.rng,
            http_client=self._http,
            resolver=system_resolver,
            schedule=self.schedule,
            allow_loopback=self.webhooks.allow_loopback,
            timeout_s=self.webhooks.timeout_s,
            concurrency=self.webhooks.concurrency,
            limit=self.webhooks.pass_limit,
        )


def install(app: faust.App, settings: WorkerSettings) -> WebhookProcessor:
    """Register the enqueue agent and the delivery timer on ``app``."""
    processor = WebhookProcessor(app, settings)
    lifecycle = raw_topic(app, PAYMENTS_LIFECYCLE, settings.topic_prefix)

    async def enqueue_webhooks(events: Sequence[Event]) -> None:
        added = await processor.handle(events)
        log.debug("webhooks: %d deliveries queued from %d events", added, len(events))

    batch_agent(
        app,
        lifecycle,
        name=CONSUMER_NAME,
        batch_size_max=settings.batch_size_max,
        batch_wait_s=settings.batch_wait_s,
        handle=enqueue_webhooks,
    )

    @app.timer(interval=settings.webhooks.poll_interval_s, name="webhooks.deliver")  # type: ignore[untyped-decorator]
    async def deliver_webhooks() -> None:
        try:
            results = await processor.deliver()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The outbox keeps every delivery; the next tick tries again.
            log.warning("webhook delivery pass failed (%s); retrying next tick", exc)
            return
        for result in results:
            if result.outcome == "dead":
                log.warning(
                    "webhook %s to %s dead-lettered: %s",
                    result.event_id,
                    result.endpoint_id,
                    result.dead_reason,
                )

    return processor
