"""The notification agents: receipts and failure notices, driven by ``payments.lifecycle``.

* ``notifications.payments`` reads ``payments.requested`` and remembers each payment's
  customer (lifecycle events do not carry it).
* ``notifications.send`` reads ``payments.lifecycle``; for each event that notifies
  (:mod:`streams.notifications.messages`) it looks up the customer's contacts and sends on every
  channel the customer has and RizzPay has configured.

Once per event and channel: a claim row (event id, channel) is written before the provider is
called and marked ``sent`` or ``failed`` after, so a redelivered event sends nothing again.  A
crash between the provider's answer and the mark resends once (at-least-once), with the same
message id (SMTP ``Message-ID``, APNs ``apns-id``) so the duplicate is recognisable.
Transient provider failures are retried ``attempts_max`` times, then the notification is
``failed``: a receipt must not hold up the payments behind it.  Concurrency 1 (faust #606); the
notifications of one batch are sent concurrently instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import asyncpg
import faust
import httpx

from models.events import (
    DecodeError,
    LifecycleEvent,
    PaymentCaptured,
    PaymentDeclined,
    PaymentFailed,
    PaymentRefunded,
    PaymentRequested,
    encode,
)
from models.topics import PAYMENTS_DEADLETTER, PAYMENTS_LIFECYCLE, PAYMENTS_REQUESTED
from streams.app import batch_agent, raw_topic
from streams.deadletters import dead_letter_key
from streams.notifications.messages import Notification, PaymentInfo, notifications_for
from streams.notifications.providers import Sender, SendError, senders_for
from streams.notifications.settings import NotificationSettings
from streams.notifications.store import (
    claim,
    contacts_for,
    finish,
    payment_info,
    record_payments,
)
from streams.retry import LazyPool, retry_transient
from streams.settings import WorkerSettings
from streams.webhooks.agent import (
    Event,
    Undecodable,
    dead_letter,
    decode_lifecycle,
    decode_pairs,
)

__all__ = ["NotificationProcessor", "install"]

log = logging.getLogger("rizzpay.streams.notifications")

PAYMENTS_CONSUMER: Final = "notifications.payments"
SEND_CONSUMER: Final = "notifications.send"
NOTIFYING: Final = (PaymentCaptured, PaymentRefunded, PaymentDeclined, PaymentFailed)
#: At most this many provider calls at once from one batch.
PARALLEL_SENDS_MAX: Final = 16
_POLL_S: Final = 0.2


class NotificationProcessor:
    """Holds the agents' connections; ``record`` and ``notify`` handle one batch each."""

    def __init__(
        self,
        settings: WorkerSettings,
        notifications: NotificationSettings,
        *,
        senders: dict[str, Sender] | None = None,
        deadletter: faust.TopicT | None = None,
    ) -> None:
        self.settings = settings
        self.config = notifications
        self.http = httpx.AsyncClient(trust_env=False, timeout=notifications.timeout_s)
        self.senders = senders if senders is not None else senders_for(notifications, self.http)
        self.deadletter = deadletter
        self._pg = LazyPool(
            self.settings.pg_dsn,
            max_size=4,
            backoff_s_max=self.settings.retry_backoff_s_max,
        )
        self._parallel = asyncio.Semaphore(PARALLEL_SENDS_MAX)

    async def pool(self) -> asyncpg.Pool:
        return await self._pg.get()

    async def close(self) -> None:
        await self.http.aclose()
        await self._pg.close()

    async def record(self, requests: Sequence[PaymentRequested]) -> None:
        """Remember the customers of requested payments."""
        pool = await self.pool()

        async def run() -> None:
            async with pool.acquire() as conn:
                await record_payments(conn, requests)

        await retry_transient(
            run, backoff_s_max=self.settings.retry_backoff_s_max, what="recording payments"
        )

    async def _payment(self, payment_id: str) -> PaymentInfo | None:
        """The payment's customer record, waiting a little: the other agent may lag behind."""
        pool = await self.pool()
        deadline = time.monotonic() + self.config.payment_wait_s
        while True:
            found = await retry_transient(
                lambda: payment_info(pool, payment_id),
                backoff_s_max=self.settings.retry_backoff_s_max,
                what="reading a payment's customer",
            )
            if found is not None or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(_POLL_S)

    async def notify(
        self, events: Sequence[LifecycleEvent]
    ) -> tuple[list[Notification], list[LifecycleEvent]]:
        """Send what ``events`` notify.  Returns the notifications sent now (repeats of earlier
        ones are skipped) and the events whose payment was never recorded (to dead-letter).
        A provider's failure raises nothing: it is recorded on the notification."""
        unknown: list[LifecycleEvent] = []
        wanted = [e for e in events if isinstance(e, NOTIFYING)]
        sent: list[Notification] = []
        pool = await self.pool()
        planned: list[Notification] = []
        for event in wanted:
            payment = await self._payment(event.payment_id)
            if payment is None:
                unknown.append(event)
                continue
            if payment.customer_id is None:
                continue
            contacts = await contacts_for(pool, payment.merchant_id, payment.customer_id)
            planned.extend(
                n for n in notifications_for(event, payment, contacts) if n.channel in self.senders
            )
        results = await asyncio.gather(*(self._deliver(n) for n in planned))
        sent.extend(n for n, ok in zip(planned, results, strict=True) if ok)
        return sent, unknown

    async def _deliver(self, notification: Notification) -> bool:
        async with self._parallel:
            pool = await self.pool()
            claimed = await retry_transient(
                lambda: claim(pool, notification, now=datetime.now(UTC)),
                backoff_s_max=self.settings.retry_backoff_s_max,
                what="claiming a notification",
            )
            if claimed.state == "done":
                return False
            sender = self.senders[notification.channel]
            provider_id: str | None = None
            error: str | None = None
            attempts = 0
            while attempts < self.config.attempts_max:
                attempts += 1
                try:
                    provider_id = await sender.send(notification)
                    error = None
                    break
                except SendError as exc:
                    error = str(exc)
                    if not exc.transient:
                        break
                    await asyncio.sleep(min(0.5 * 2 ** (attempts - 1), 5.0))
            if provider_id is None:
                log.warning(
                    "%s notification %s failed: %s",
                    notification.channel,
                    notification.notification_id,
                    error,
                )
            await retry_transient(
                lambda: finish(
                    pool,
                    notification,
                    attempts=attempts,
                    provider_message_id=provider_id,
                    error=error,
                    now=datetime.now(UTC),
                ),
                backoff_s_max=self.settings.retry_backoff_s_max,
                what="recording a notification",
            )
            return provider_id is not None

    async def dead_letter_events(
        self, events: Sequence[Event], which: Sequence[LifecycleEvent], code: str, reason: str
    ) -> None:
        """Dead-letter the messages (of ``events``) that carry the lifecycle events ``which``."""
        if not which or self.deadletter is None:
            return
        ids = {e.event_id for e in which}
        pairs, _ = decode_pairs(events)
        now = datetime.now(UTC)
        for message, event in pairs:
            if event.event_id not in ids:
                continue
            letter = dead_letter(
                Undecodable(message, code, reason), consumer=SEND_CONSUMER, failed_at=now
            )
            log.warning("dead-lettering %s: %s", code, reason)
            await self.deadletter.send(
                key=dead_letter_key(letter),
                value=encode(letter),
            )


def _requests(events: Sequence[Event]) -> list[PaymentRequested]:
    """The payment creations of a ``payments.requested`` batch (commands and undecodable
    messages are the payments agent's to handle and dead-letter)."""
    found: list[PaymentRequested] = []
    for event in events:
        raw = event.value
        if not isinstance(raw, bytes):
            continue
        try:
            decoded = PAYMENTS_REQUESTED.decode(raw)
        except DecodeError:
            continue
        if isinstance(decoded, PaymentRequested):
            found.append(decoded)
    return found


def install(app: faust.App, settings: WorkerSettings) -> NotificationProcessor | None:
    """Register the notification agents, if any channel is configured."""
    config = settings.notifications
    if not config.any_channel:
        return None
    deadletter = raw_topic(app, PAYMENTS_DEADLETTER, settings.topic_prefix)
    processor = NotificationProcessor(settings, config, deadletter=deadletter)
    requested = raw_topic(app, PAYMENTS_REQUESTED, settings.topic_prefix)
    lifecycle = raw_topic(app, PAYMENTS_LIFECYCLE, settings.topic_prefix)

    async def remember_customers(events: Sequence[Event]) -> None:
        await processor.record(_requests(events))

    batch_agent(
        app,
        requested,
        name=PAYMENTS_CONSUMER,
        batch_size_max=settings.batch_size_max,
        batch_wait_s=settings.batch_wait_s,
        handle=remember_customers,
    )

    async def send_notifications(events: Sequence[Event]) -> None:
        decoded, _undecodable = decode_lifecycle(events)  # the webhook agent dead-letters
        try:
            sent, unknown = await processor.notify(decoded)
        except asyncpg.PostgresError as exc:
            # Permanent (transient errors are retried inside): keep the evidence.
            log.exception("notifications refused by PostgreSQL")
            reason = f"{type(exc).__name__}: {exc}"
            notifying = [e for e in decoded if isinstance(e, NOTIFYING)]
            await processor.dead_letter_events(events, notifying, "database_refused", reason)
            return
        await processor.dead_letter_events(
            events, unknown, "unknown_payment", "no payment.requested seen for it"
        )
        log.debug("notifications: %d sent for %d events", len(sent), len(decoded))

    batch_agent(
        app,
        lifecycle,
        name=SEND_CONSUMER,
        batch_size_max=settings.batch_size_max,
        batch_wait_s=settings.batch_wait_s,
        handle=send_notifications,
    )

    return processor
