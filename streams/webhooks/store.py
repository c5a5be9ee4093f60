"""Merchant webhooks in PostgreSQL: endpoints, the delivery outbox and the dead-letter store.

Tables (``warehouse/migrations/postgres/0006_webhooks.sql``):

``webhook_endpoints``
    Several per merchant.  Each has a URL (checked with
    :func:`streams.webhooks.address_guard.check_url` when it is registered, and again by the
    delivery engine before every attempt), an event-type filter (event types, or ``["*"]``),
    a ``whsec_...`` secret plus, during rotation, the previous secret until it expires, and an
    ``enabled`` flag with a ``disabled_reason``.
``webhook_deliveries``
    The outbox: one row per (lifecycle event, matching endpoint).  :func:`enqueue` writes them;
    the delivery id is derived from (event id, endpoint id), so enqueueing an event twice adds
    nothing.  ``payment_seq`` orders a payment's events: the engine attempts a delivery only
    when every earlier delivery of the same payment to the same endpoint is delivered or dead.
    Rows with ``status = 'dead'`` are the dead-letter store (:func:`list_dead_letters`,
    :func:`replay`).

Clocks are injected (``now``: a timezone-aware ``datetime``); nothing here reads the wall
clock.  ``conn`` is an asyncpg connection (or pool, for single statements).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, get_args

import asyncpg
import orjson

from models.events import LifecycleEvent
from streams.webhooks.address_guard import Resolver, check_url
from streams.webhooks.signing import generate_secret, secret_key

__all__ = [
    "ALL_EVENT_TYPES",
    "DEFAULT_ROTATION_OVERLAP_S",
    "DeadReason",
    "Delivery",
    "DeliveryNotFound",
    "DeliveryStatus",
    "Endpoint",
    "EndpointDisabled",
    "EndpointNotFound",
    "UnknownEventType",
    "create_endpoint",
    "delete_endpoint",
    "delivery_id_for",
    "disable_endpoint",
    "enable_endpoint",
    "enqueue",
    "event_body",
    "get_delivery",
    "get_endpoint",
    "list_dead_letters",
    "list_endpoints",
    "replay",
    "rotate_secret",
    "update_endpoint",
]

DeliveryStatus = Literal["pending", "delivered", "dead"]
#: ``retries_exhausted``: the schedule ran out; ``endpoint_gone``: this delivery got a 410;
#: ``endpoint_disabled``: another delivery's 410 (or the merchant) disabled the endpoint.
DeadReason = Literal["retries_exhausted", "endpoint_gone", "endpoint_disabled"]

WILDCARD: Final = "*"
#: How long (seconds) the old secret keeps signing after a rotation: 24 h.
DEFAULT_ROTATION_OVERLAP_S: Final = 24 * 3600.0


def _lifecycle_event_types() -> frozenset[str]:
    union = get_args(LifecycleEvent)[0]  # Annotated[Union[...], Field(...)] -> Union[...]
    types: set[str] = set()
    for model in get_args(union):
        default = model.model_fields["event_type"].default
        assert isinstance(default, str)
        types.add(default)
    return frozenset(types)


#: Every lifecycle event type an endpoint can subscribe to.
ALL_EVENT_TYPES: Final = _lifecycle_event_types()


class UnknownEventType(ValueError):
    """An event-type filter names a type that is not a lifecycle event type."""

    code: Final = "unknown_event_type"


class EndpointNotFound(LookupError):
    """No endpoint with that id (for that merchant)."""

    code: Final = "endpoint_not_found"


class EndpointDisabled(RuntimeError):
    """The endpoint is disabled; enable it before replaying its deliveries."""

    code: Final = "endpoint_disabled"


class DeliveryNotFound(LookupError):
    """No delivery with that id (for that merchant)."""

    code: Final = "delivery_not_found"


@dataclass(frozen=True)
class Endpoint:
    """A merchant's webhook endpoint.  ``event_types`` is ``("*",)`` for every type."""

    endpoint_id: str
    merchant_id: str
    url: str
    event_types: tuple[str, ...]
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign a request sent at ``now``: the current one, and the previous
        one while its rotation overlap lasts."""
        secrets = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret is not None and expires is not None and now < expires:
            secrets.append(self.previous_secret)
        return secrets

    def wants(self, event_type: str) -> bool:
        """Whether the filter lets ``event_type`` through."""
        return WILDCARD in self.event_types or event_type in self.event_types


@dataclass(frozen=True)
class Delivery:
    """One event for one endpoint.  ``status == "dead"`` rows are the dead letters."""

    delivery_id: str
    endpoint_id: str
    merchant_id: str
    event_id: str
    event_type: str
    payment_id: str
    payment_seq: int
    body: bytes
    status: DeliveryStatus
    attempts: int
    first_attempt_at: datetime | None
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None
    dead_reason: str | None
    replays: int
    created_at: datetime


_ENDPOINT_COLUMNS: Final = """endpoint_id, merchant_id, url, event_types, secret,
    previous_secret, previous_secret_expires_at, enabled, disabled_reason, disabled_at,
    created_at"""

DELIVERY_COLUMNS: Final = """delivery_id, endpoint_id, merchant_id, event_id, event_type,
    payment_id, payment_seq, body, status, attempts, first_attempt_at, next_attempt_at,
    last_attempt_at, last_status, last_error, delivered_at, dead_at, dead_reason, replays,
    created_at"""


def endpoint_from_record(r: asyncpg.Record) -> Endpoint:
    """An :class:`Endpoint` from a row with the ``webhook_endpoints`` columns."""
    return Endpoint(
        endpoint_id=r["endpoint_id"],
        merchant_id=r["merchant_id"],
        url=r["url"],
        event_types=tuple(r["event_types"]),
        secret=r["secret"],
        previous_secret=r["previous_secret"],
        previous_secret_expires_at=r["previous_secret_expires_at"],
        enabled=r["enabled"],
        disabled_reason=r["disabled_reason"],
        disabled_at=r["disabled_at"],
        created_at=r["created_at"],
    )


def delivery_from_record(r: asyncpg.Record) -> Delivery:
    """A :class:`Delivery` from a row with the ``webhook_deliveries`` columns."""
    return Delivery(
        delivery_id=r["delivery_id"],
        endpoint_id=r["endpoint_id"],
        merchant_id=r["merchant_id"],
        event_id=r["event_id"],
        event_type=r["event_type"],
        payment_id=r["payment_id"],
        payment_seq=r["payment_seq"],
        body=bytes(r["body"]),
        status=r["status"],
        attempts=r["attempts"],
        first_attempt_at=r["first_attempt_at"],
        next_attempt_at=r["next_attempt_at"],
        last_attempt_at=r["last_attempt_at"],
        last_status=r["last_status"],
        last_error=r["last_error"],
        delivered_at=r["delivered_at"],
        dead_at=r["dead_at"],
        dead_reason=r["dead_reason"],
        replays=r["replays"],
        created_at=r["created_at"],
    )


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _normalize_event_types(event_types: Sequence[str]) -> list[str]:
    if isinstance(event_types, str):
        raise TypeError("event_types is a sequence of event types (or ['*']), not one string")
    chosen = list(dict.fromkeys(event_types))
    if not chosen:
        raise UnknownEventType("an endpoint subscribes to at least one event type (or '*')")
    if WILDCARD in chosen:
        if len(chosen) > 1:
            raise UnknownEventType("'*' already means every event type; list nothing else")
        return chosen
    unknown = sorted(set(chosen) - ALL_EVENT_TYPES)
    if unknown:
        raise UnknownEventType(f"not lifecycle event types: {', '.join(unknown)}")
    return sorted(chosen)


async def create_endpoint(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    merchant_id: str,
    url: str,
    event_types: Sequence[str],
    resolver: Resolver,
    now: datetime,
    allow_loopback: bool = False,
    secret: str | None = None,
) -> Endpoint:
    """Register an endpoint for ``merchant_id`` and return it (with its secret).

    ``url`` must pass :func:`check_url` (raises ``UnsafeWebhookUrl``); ``allow_loopback`` is
    the development setting that also admits loopback targets.  ``event_types`` lists lifecycle
    event types, or is ``["*"]`` (raises :class:`UnknownEventType`).  ``secret`` defaults to a
    new random ``whsec_`` secret (raises ``InvalidWebhookSecret`` if one given is malformed).
    """
    _require_aware(now, "now")
    check_url(url, resolver=resolver, allow_loopback=allow_loopback)
    types = _normalize_event_types(event_types)
    secret = generate_secret() if secret is None else secret
    secret_key(secret)  # validates the format
    endpoint_id = "we_" + uuid.uuid4().hex
    row = await conn.fetchrow(
        f"""INSERT INTO webhook_endpoints
                (endpoint_id, merchant_id, url, event_types, secret, created_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            RETURNING {_ENDPOINT_COLUMNS}""",  # noqa: S608 -- a constant column list
        endpoint_id,
        merchant_id,
        url,
        types,
        secret,
        now,
    )
    return endpoint_from_record(row)


async def get_endpoint(
    conn: asyncpg.Connection | asyncpg.Pool, endpoint_id: str, *, merchant_id: str | None = None
) -> Endpoint:
    """The endpoint ``endpoint_id``, or :class:`EndpointNotFound`.  With ``merchant_id`` (the
    merchant's own reads), only that merchant's endpoints that are not deleted."""
    row = await conn.fetchrow(
        f"""SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints
            WHERE endpoint_id = $1
              AND ($2::text IS NULL OR (merchant_id = $2 AND deleted_at IS NULL))""",  # noqa: S608 -- a constant column list
        endpoint_id,
        merchant_id,
    )
    if row is None:
        raise EndpointNotFound(endpoint_id)
    return endpoint_from_record(row)


async def list_endpoints(
    conn: asyncpg.Connection | asyncpg.Pool, merchant_id: str
) -> list[Endpoint]:
    """The merchant's endpoints, oldest first, enabled or not (deleted ones are left out)."""
    rows = await conn.fetch(
        f"""SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints
            WHERE merchant_id = $1 AND deleted_at IS NULL
            ORDER BY created_at, endpoint_id""",  # noqa: S608 -- a constant column list
        merchant_id,
    )
    return [endpoint_from_record(r) for r in rows]


async def rotate_secret(
    conn: asyncpg.Connection | asyncpg.Pool,
    endpoint_id: str,
    *,
    now: datetime,
    overlap_s: float = DEFAULT_ROTATION_OVERLAP_S,
    new_secret: str | None = None,
) -> Endpoint:
    """Give the endpoint a new secret; the old one keeps signing for ``overlap_s`` seconds, so
    requests carry two signatures meanwhile and the merchant can switch without a gap."""
    _require_aware(now, "now")
    if overlap_s < 0:
        raise ValueError("overlap_s must not be negative")
    new_secret = generate_secret() if new_secret is None else new_secret
    secret_key(new_secret)
    row = await conn.fetchrow(
        f"""UPDATE webhook_endpoints
            SET previous_secret = secret, previous_secret_expires_at = $2, secret = $3
            WHERE endpoint_id = $1
            RETURNING {_ENDPOINT_COLUMNS}""",  # noqa: S608 -- a constant column list
        endpoint_id,
        now + timedelta(seconds=overlap_s),
        new_secret,
    )
    if row is None:
        raise EndpointNotFound(endpoint_id)
    return endpoint_from_record(row)


async def disable_endpoint(
    conn: asyncpg.Connection, endpoint_id: str, *, reason: str, now: datetime
) -> int:
    """Disable the endpoint and dead-letter its pending deliveries (``endpoint_disabled``).

    Deliveries that a delivery worker holds right now are skipped (no waiting, so no deadlock
    with that worker); the engine dead-letters them when it next claims them.  Returns how
    many deliveries were dead-lettered.  Raises :class:`EndpointNotFound`.
    """
    _require_aware(now, "now")
    async with conn.transaction():
        found = await conn.fetchval(
            """UPDATE webhook_endpoints
               SET enabled = false, disabled_reason = $2, disabled_at = $3
               WHERE endpoint_id = $1 RETURNING 1""",
            endpoint_id,
            reason,
            now,
        )
        if found is None:
            raise EndpointNotFound(endpoint_id)
        status: str = await conn.execute(
            """UPDATE webhook_deliveries
               SET status = 'dead', dead_reason = 'endpoint_disabled', dead_at = $2
               WHERE delivery_id IN (
                   SELECT delivery_id FROM webhook_deliveries
                   WHERE endpoint_id = $1 AND status = 'pending'
                   FOR UPDATE SKIP LOCKED)""",
            endpoint_id,
            now,
        )
    return int(status.rsplit(" ", 1)[-1])


async def enable_endpoint(
    conn: asyncpg.Connection | asyncpg.Pool,
    endpoint_id: str,
    *,
    resolver: Resolver,
    allow_loopback: bool = False,
) -> Endpoint:
    """Enable a disabled endpoint again (its URL is checked again first).  Dead letters stay
    dead until replayed."""
    endpoint = await get_endpoint(conn, endpoint_id)
    check_url(endpoint.url, resolver=resolver, allow_loopback=allow_loopback)
    row = await conn.fetchrow(
        f"""UPDATE webhook_endpoints
            SET enabled = true, disabled_reason = NULL, disabled_at = NULL
            WHERE endpoint_id = $1 AND deleted_at IS NULL
            RETURNING {_ENDPOINT_COLUMNS}""",  # noqa: S608 -- a constant column list
        endpoint_id,
    )
    if row is None:  # deleted: never enabled again
        raise EndpointNotFound(endpoint_id)
    return endpoint_from_record(row)


async def update_endpoint(
    conn: asyncpg.Connection | asyncpg.Pool,
    endpoint_id: str,
    *,
    merchant_id: str,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    resolver: Resolver,
    allow_loopback: bool = False,
) -> Endpoint:
    """Change the URL and/or the event-type filter of the merchant's endpoint.

    A new URL is checked like a new endpoint's (``UnsafeWebhookUrl``); new types like
    :func:`create_endpoint`'s (:class:`UnknownEventType`).  Deliveries already queued keep
    going to the endpoint (to its new URL); the new filter applies to events enqueued from now
    on.  Raises :class:`EndpointNotFound`.
    """
    if url is not None:
        check_url(url, resolver=resolver, allow_loopback=allow_loopback)
    types = None if event_types is None else _normalize_event_types(event_types)
    row = await conn.fetchrow(
        f"""UPDATE webhook_endpoints
            SET url = coalesce($3, url), event_types = coalesce($4, event_types)
            WHERE endpoint_id = $1 AND merchant_id = $2 AND deleted_at IS NULL
            RETURNING {_ENDPOINT_COLUMNS}""",  # noqa: S608 -- a constant column list
        endpoint_id,
        merchant_id,
        url,
        types,
    )
    if row is None:
        raise EndpointNotFound(endpoint_id)
    return endpoint_from_record(row)


#: ``disabled_reason`` of an endpoint the merchant deleted.
DELETED_REASON: Final = "deleted"


async def delete_endpoint(
    conn: asyncpg.Connection, endpoint_id: str, *, merchant_id: str, now: datetime
) -> int:
    """Delete the merchant's endpoint: it is disabled for good and hidden from the merchant's
    reads; its queued deliveries are dead-lettered (``endpoint_disabled``) and, like its
    delivery history, kept for audit.  Returns how many deliveries were dead-lettered.
    Raises :class:`EndpointNotFound` (also when it is already deleted)."""
    _require_aware(now, "now")
    async with conn.transaction():
        found = await conn.fetchval(
            """UPDATE webhook_endpoints
               SET deleted_at = $3, enabled = false, disabled_reason = $4, disabled_at = $3
               WHERE endpoint_id = $1 AND merchant_id = $2 AND deleted_at IS NULL
               RETURNING 1""",
            endpoint_id,
            merchant_id,
            now,
            DELETED_REASON,
        )
        if found is None:
            raise EndpointNotFound(endpoint_id)
        # Dead-letters the queue (the endpoint row is already disabled, so this only repeats it).
        return await disable_endpoint(conn, endpoint_id, reason=DELETED_REASON, now=now)


def delivery_id_for(event_id: str, endpoint_id: str) -> str:
    """The delivery id of ``event_id`` for ``endpoint_id``: ``whd_`` + 32 hex digits of SHA-256."""
    digest = hashlib.sha256(f"webhook-delivery\x1f{event_id}\x1f{endpoint_id}".encode())
    return "whd_" + digest.hexdigest()[:32]


def event_body(event: LifecycleEvent) -> bytes:
    """The JSON body sent for ``event``: ``{"type", "timestamp", "data"}`` (Standard Webhooks'
    recommended shape), ``data`` being the event itself; the same bytes on every attempt."""
    payload: dict[str, Any] = {
        "type": event.event_type,
        "timestamp": event.occurred_at.isoformat(),
        "data": event.model_dump(mode="json"),
    }
    return orjson.dumps(payload)


async def enqueue(conn: asyncpg.Connection, event: LifecycleEvent, *, now: datetime) -> int:
    """Queue ``event`` for every enabled endpoint of its merchant whose filter matches.

    One delivery per endpoint, due at ``now``; the payment's next sequence number orders it
    after the payment's earlier events.  Enqueueing an event that is already queued (a replayed
    Kafka message) adds nothing.  Runs in a transaction (a savepoint inside the caller's).
    Returns how many deliveries were added.
    """
    _require_aware(now, "now")
    async with conn.transaction():
        already = await conn.fetchval(
            "SELECT 1 FROM webhook_deliveries WHERE event_id = $1 LIMIT 1", event.event_id
        )
        if already is not None:
            return 0
        rows = await conn.fetch(
            """SELECT endpoint_id FROM webhook_endpoints
               WHERE merchant_id = $1 AND enabled
                 AND ('*' = ANY (event_types) OR $2 = ANY (event_types))
               ORDER BY endpoint_id""",
            event.merchant_id,
            event.event_type,
        )
        if not rows:
            return 0
        # The row lock on the payment's counter serializes concurrent enqueues of one payment.
        seq = await conn.fetchval(
            """INSERT INTO webhook_payment_sequences (payment_id, last_seq) VALUES ($1, 1)
               ON CONFLICT (payment_id)
               DO UPDATE SET last_seq = webhook_payment_sequences.last_seq + 1
               RETURNING last_seq""",
            event.payment_id,
        )
        body = event_body(event)
        added = 0
        for row in rows:
            endpoint_id = row["endpoint_id"]
            inserted = await conn.fetchval(
                """INSERT INTO webhook_deliveries
                       (delivery_id, endpoint_id, merchant_id, event_id, event_type, payment_id,
                        payment_seq, body, status, next_attempt_at, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9)
                   ON CONFLICT DO NOTHING RETURNING 1""",
                delivery_id_for(event.event_id, endpoint_id),
                endpoint_id,
                event.merchant_id,
                event.event_id,
                event.event_type,
                event.payment_id,
                seq,
                body,
                now,
            )
            added += inserted is not None
        return added


async def get_delivery(
    conn: asyncpg.Connection | asyncpg.Pool, delivery_id: str, *, merchant_id: str | None = None
) -> Delivery:
    """The delivery ``delivery_id`` (of ``merchant_id`` if given), or :class:`DeliveryNotFound`."""
    row = await conn.fetchrow(
        f"""SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
            WHERE delivery_id = $1 AND ($2::text IS NULL OR merchant_id = $2)""",  # noqa: S608 -- a constant column list
        delivery_id,
        merchant_id,
    )
    if row is None:
        raise DeliveryNotFound(delivery_id)
    return delivery_from_record(row)


async def list_dead_letters(
    conn: asyncpg.Connection | asyncpg.Pool,
    merchant_id: str,
    *,
    endpoint_id: str | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """The merchant's dead letters (optionally of one endpoint), most recent first."""
    if not 1 <= limit <= 1000:
        raise ValueError("limit must be between 1 and 1000")
    rows = await conn.fetch(
        f"""SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
            WHERE merchant_id = $1 AND status = 'dead'
              AND ($2::text IS NULL OR endpoint_id = $2)
            ORDER BY dead_at DESC, delivery_id
            LIMIT $3""",  # noqa: S608 -- a constant column list
        merchant_id,
        endpoint_id,
        limit,
    )
    return [delivery_from_record(r) for r in rows]


async def replay(
    conn: asyncpg.Connection,
    delivery_id: str,
    *,
    now: datetime,
    merchant_id: str | None = None,
) -> bool:
    """Put a dead delivery back in the queue, due at ``now``, with its attempts reset.

    Idempotent: replaying a delivery that is already pending (replayed before) or delivered
    changes nothing and returns ``False``; ``True`` means it was re-queued now.  Raises
    :class:`DeliveryNotFound` (also for another merchant's delivery when ``merchant_id`` is
    given) and :class:`EndpointDisabled` if its endpoint is disabled (enable it first).
    """
    _require_aware(now, "now")
    async with conn.transaction():
        row = await conn.fetchrow(
            """SELECT d.status, e.enabled FROM webhook_deliveries d
               JOIN webhook_endpoints e USING (endpoint_id)
               WHERE d.delivery_id = $1 AND ($2::text IS NULL OR d.merchant_id = $2)
               FOR UPDATE OF d""",
            delivery_id,
            merchant_id,
        )
        if row is None:
            raise DeliveryNotFound(delivery_id)
        if row["status"] != "dead":
            return False
        if not row["enabled"]:
            raise EndpointDisabled(f"the endpoint of {delivery_id} is disabled")
        await conn.execute(
            """UPDATE webhook_deliveries
               SET status = 'pending', attempts = 0, first_attempt_at = NULL,
                   next_attempt_at = $2, dead_at = NULL, dead_reason = NULL,
                   replays = replays + 1
               WHERE delivery_id = $1""",
            delivery_id,
            now,
        )
    return True
