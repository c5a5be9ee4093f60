"""Notification state in PostgreSQL (migration 0013): customers' contacts, the payments'
customers, and one claim row per (event, channel) so each notification goes out once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from models.events import PaymentRequested
from streams.notifications.messages import Contacts, Notification, PaymentInfo

__all__ = [
    "Claim",
    "claim",
    "contacts_for",
    "finish",
    "payment_info",
    "put_contacts",
    "record_payments",
]

_ERROR_CHARS_MAX = 500


async def record_payments(conn: asyncpg.Connection, requests: Sequence[PaymentRequested]) -> None:
    """Remember each requested payment's customer, method and description (idempotent)."""
    if not requests:
        return
    await conn.execute(
        """INSERT INTO notification_payments
               (payment_id, merchant_id, customer_id, method, description, requested_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                $6::timestamptz[])
           ON CONFLICT (payment_id) DO NOTHING""",
        [r.payment_id for r in requests],
        [r.merchant_id for r in requests],
        [r.customer_id for r in requests],
        [r.method.type for r in requests],
        [r.description for r in requests],
        [r.occurred_at for r in requests],
    )


async def payment_info(
    conn: asyncpg.Connection | asyncpg.Pool, payment_id: str
) -> PaymentInfo | None:
    row = await conn.fetchrow(
        """SELECT payment_id, merchant_id, customer_id, method, description
           FROM notification_payments WHERE payment_id = $1""",
        payment_id,
    )
    if row is None:
        return None
    return PaymentInfo(
        row["payment_id"], row["merchant_id"], row["customer_id"], row["method"], row["description"]
    )


async def contacts_for(
    conn: asyncpg.Connection | asyncpg.Pool, merchant_id: str, customer_id: str
) -> Contacts | None:
    row = await conn.fetchrow(
        """SELECT email, phone, push_platform, push_token FROM customer_contacts
           WHERE merchant_id = $1 AND customer_id = $2""",
        merchant_id,
        customer_id,
    )
    if row is None:
        return None
    return Contacts(row["email"], row["phone"], row["push_platform"], row["push_token"])


async def put_contacts(
    conn: asyncpg.Connection | asyncpg.Pool,
    merchant_id: str,
    customer_id: str,
    contacts: Contacts,
    *,
    now: datetime,
) -> None:
    """Set (replace) where the merchant's customer gets notifications."""
    await conn.execute(
        """INSERT INTO customer_contacts
               (merchant_id, customer_id, email, phone, push_platform, push_token, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (merchant_id, customer_id) DO UPDATE SET
               email = EXCLUDED.email, phone = EXCLUDED.phone,
               push_platform = EXCLUDED.push_platform, push_token = EXCLUDED.push_token,
               updated_at = EXCLUDED.updated_at""",
        merchant_id,
        customer_id,
        contacts.email,
        contacts.phone,
        contacts.push_platform,
        contacts.push_token,
        now,
    )


@dataclass(frozen=True)
class Claim:
    """Whether to send: ``new`` (first time), ``retry`` (an earlier send never finished, e.g.
    a crash) or ``done`` (already sent or given up: never again)."""

    state: Literal["new", "retry", "done"]


async def claim(
    conn: asyncpg.Connection | asyncpg.Pool, notification: Notification, *, now: datetime
) -> Claim:
    """Claim ``notification`` before sending it: the (event, channel) row is the idempotency
    record."""
    inserted = await conn.fetchval(
        """INSERT INTO notifications
               (notification_id, event_id, event_type, payment_id, merchant_id, channel,
                recipient, status, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'sending', $8)
           ON CONFLICT DO NOTHING RETURNING 1""",
        notification.notification_id,
        notification.event_id,
        notification.event_type,
        notification.payment_id,
        notification.merchant_id,
        notification.channel,
        notification.recipient,
        now,
    )
    if inserted is not None:
        return Claim("new")
    status = await conn.fetchval(
        "SELECT status FROM notifications WHERE event_id = $1 AND channel = $2",
        notification.event_id,
        notification.channel,
    )
    return Claim("retry" if status == "sending" else "done")


async def finish(
    conn: asyncpg.Connection | asyncpg.Pool,
    notification: Notification,
    *,
    attempts: int,
    provider_message_id: str | None,
    error: str | None,
    now: datetime,
) -> None:
    """Record the outcome: sent (with the provider's id) or failed (with the last error)."""
    sent = provider_message_id is not None
    await conn.execute(
        """UPDATE notifications
           SET status = $2, provider_message_id = $3, last_error = $4, sent_at = $5,
               attempts = attempts + $6
           WHERE notification_id = $1""",
        notification.notification_id,
        "sent" if sent else "failed",
        provider_message_id,
        None if error is None else error[:_ERROR_CHARS_MAX],
        now if sent else None,
        attempts,
    )
