"""The webhook delivery engine: send what is due from the outbox, record what happened.

:func:`deliver_due` runs ``concurrency`` workers against a connection pool.  Each worker, in a
transaction of its own, claims one due delivery (``FOR UPDATE SKIP LOCKED``, so several engines
can share the outbox), makes one attempt and records the outcome before it commits; if the
process dies mid-attempt the lock goes with it and the delivery is sent again later (at least
once: receivers dedupe by ``webhook-id``).  A delivery is due when it is pending, its
``next_attempt_at`` has come, and no earlier delivery of the same payment to the same endpoint
is still pending: so per payment, events reach an endpoint in order, and one that is being
retried holds back the ones after it.

One attempt:

1. ``check_url`` again, right before sending (DNS rebinding): a URL that now resolves to a
   private address is not sent to; the attempt counts as failed with no response.
2. Connect to an address that check returned -- the name is not resolved twice -- sending the
   original host in ``Host`` and as the TLS server name, redirects not followed.
3. POST the stored body with the Standard Webhooks headers (signed with the current secret and,
   during a rotation, the previous one), with a timeout of ``timeout_s`` seconds in all.
4. :func:`streams.webhooks.schedule.classify_response` decides: a 2xx is delivered; a 410
   disables the endpoint (this delivery is dead-lettered as ``endpoint_gone``, the endpoint's
   other pending ones as ``endpoint_disabled``); anything else is retried on the schedule; when
   the schedule is exhausted the delivery is dead-lettered as ``retries_exhausted``.

The clock (``now``), random numbers (``rng``, for jitter), DNS (``resolver``) and HTTP client
are injected; tests use ``RetrySchedule.compressed`` and step ``now`` forward.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from datetime import datetime
from ipaddress import IPv6Address
from typing import Final, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from streams.webhooks.address_guard import IPAddress, Resolver, UnsafeWebhookUrl, check_url
from streams.webhooks.schedule import (
    DEFAULT_SCHEDULE,
    Delivered,
    DisableEndpoint,
    GiveUp,
    RetryAt,
    RetrySchedule,
    classify_response,
)
from streams.webhooks.signing import webhook_headers
from streams.webhooks.store import (
    DELIVERY_COLUMNS,
    DeadReason,
    Delivery,
    delivery_from_record,
    disable_endpoint,
    get_endpoint,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "USER_AGENT",
    "AttemptResult",
    "deliver_due",
    "new_http_client",
]

#: The longest one attempt may take, connecting included (seconds).
DEFAULT_TIMEOUT_S: Final = 10.0
USER_AGENT: Final = "RizzPay-Webhooks/1"
#: ``disabled_reason`` of an endpoint that answered 410 Gone.
GONE_REASON: Final = "gone"
_MAX_ERROR_CHARS: Final = 500

_CLAIM_SQL: Final = f"""
    SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
    WHERE d.status = 'pending'
      AND (d.next_attempt_at <= $1
           OR NOT EXISTS (SELECT 1 FROM webhook_endpoints e
                          WHERE e.endpoint_id = d.endpoint_id AND e.enabled))
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                      WHERE p.endpoint_id = d.endpoint_id AND p.payment_id = d.payment_id
                        AND p.payment_seq < d.payment_seq AND p.status = 'pending')
    ORDER BY d.next_attempt_at, d.payment_seq, d.delivery_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED"""  # noqa: S608 -- a constant column list, no input


@dataclass(frozen=True)
class AttemptResult:
    """What happened to one claimed delivery.

    ``attempt_number`` is 1-based, or 0 when nothing was sent (the endpoint was disabled).
    ``status`` is the HTTP status (``None``: no response, see ``error``).  ``outcome`` is
    ``delivered``, ``retry`` (at ``next_attempt_at``) or ``dead`` (``dead_reason`` says why).
    """

    delivery_id: str
    endpoint_id: str
    event_id: str
    attempt_number: int
    status: int | None
    error: str | None
    outcome: Literal["delivered", "retry", "dead"]
    next_attempt_at: datetime | None = None
    dead_reason: DeadReason | None = None


def new_http_client() -> httpx.AsyncClient:
    """An HTTP client fit for webhooks: no proxies from the environment, no redirects."""
    return httpx.AsyncClient(trust_env=False, follow_redirects=False)


@dataclass(frozen=True)
class _Answer:
    status: int | None
    retry_after: str | None
    error: str | None


def _pinned_target(url: str, address: IPAddress) -> tuple[str, str, str]:
    """``url`` with its host replaced by the checked ``address``; also the Host header value
    and the host name (for TLS SNI)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    ip_text = f"[{address}]" if isinstance(address, IPv6Address) else str(address)
    netloc = ip_text if parts.port is None else f"{ip_text}:{parts.port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return target, parts.netloc, host


async def _send(
    delivery: Delivery,
    *,
    url: str,
    secrets: list[str],
    now: datetime,
    http_client: httpx.AsyncClient,
    resolver: Resolver,
    allow_loopback: bool,
    timeout_s: float,
) -> _Answer:
    try:
        addresses = check_url(url, resolver=resolver, allow_loopback=allow_loopback)
    except UnsafeWebhookUrl as exc:
        return _Answer(None, None, f"unsafe_url: {exc.message}"[:_MAX_ERROR_CHARS])
    address = addresses[0]
    target, host_header, host = _pinned_target(url, address)
    headers = webhook_headers(secrets, delivery.event_id, int(now.timestamp()), delivery.body)
    headers.update(
        {"host": host_header, "content-type": "application/json", "user-agent": USER_AGENT}
    )
    extensions = {"sni_hostname": host} if host != str(address) else {}
    try:
        async with asyncio.timeout(timeout_s):
            async with http_client.stream(
                "POST",
                target,
                content=delivery.body,
                headers=headers,
                timeout=timeout_s,
                follow_redirects=False,
                extensions=extensions,
            ) as response:
                # The body is never read: only the status (and Retry-After) matter.
                return _Answer(response.status_code, response.headers.get("retry-after"), None)
    except (httpx.HTTPError, TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        return _Answer(None, None, error[:_MAX_ERROR_CHARS])


async def _mark_dead(
    conn: asyncpg.Connection, delivery_id: str, reason: DeadReason, now: datetime
) -> None:
    await conn.execute(
        """UPDATE webhook_deliveries SET status = 'dead', dead_reason = $2, dead_at = $3
           WHERE delivery_id = $1""",
        delivery_id,
        reason,
        now,
    )


async def _attempt(
    conn: asyncpg.Connection,
    delivery: Delivery,
    *,
    now: datetime,
    rng: random.Random,
    http_client: httpx.AsyncClient,
    resolver: Resolver,
    schedule: RetrySchedule,
    allow_loopback: bool,
    timeout_s: float,
) -> AttemptResult:
    endpoint = await get_endpoint(conn, delivery.endpoint_id)
    if not endpoint.enabled:
        await _mark_dead(conn, delivery.delivery_id, "endpoint_disabled", now)
        return AttemptResult(
            delivery.delivery_id,
            delivery.endpoint_id,
            delivery.event_id,
            0,
            None,
            None,
            "dead",
            dead_reason="endpoint_disabled",
        )
    attempt_number = delivery.attempts + 1
    first_attempt_at = delivery.first_attempt_at or now
    answer = await _send(
        delivery,
        url=endpoint.url,
        secrets=endpoint.signing_secrets(now),
        now=now,
        http_client=http_client,
        resolver=resolver,
        allow_loopback=allow_loopback,
        timeout_s=timeout_s,
    )
    outcome = classify_response(
        answer.status,
        answer.retry_after,
        attempt_number=attempt_number,
        first_attempt_at=first_attempt_at,
        now=now,
        rng=rng,
        schedule=schedule,
    )
    await conn.execute(
        """UPDATE webhook_deliveries
           SET attempts = $2, first_attempt_at = $3, last_attempt_at = $4,
               last_status = $5, last_error = $6
           WHERE delivery_id = $1""",
        delivery.delivery_id,
        attempt_number,
        first_attempt_at,
        now,
        answer.status,
        answer.error,
    )
    result = AttemptResult(
        delivery.delivery_id,
        delivery.endpoint_id,
        delivery.event_id,
        attempt_number,
        answer.status,
        answer.error,
        "dead",
    )
    match outcome:
        case Delivered():
            await conn.execute(
                """UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2
                   WHERE delivery_id = $1""",
                delivery.delivery_id,
                now,
            )
            return replace(result, outcome="delivered")
        case RetryAt(at=at):
            await conn.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE delivery_id = $1",
                delivery.delivery_id,
                at,
            )
            return replace(result, outcome="retry", next_attempt_at=at)
        case DisableEndpoint():
            # Our own row first: disable_endpoint skips rows locked by other workers only.
            await _mark_dead(conn, delivery.delivery_id, "endpoint_gone", now)
            await disable_endpoint(conn, delivery.endpoint_id, reason=GONE_REASON, now=now)
            return replace(result, dead_reason="endpoint_gone")
        case GiveUp():
            await _mark_dead(conn, delivery.delivery_id, "retries_exhausted", now)
            return replace(result, dead_reason="retries_exhausted")


async def deliver_due(
    conn_pool: asyncpg.Pool,
    *,
    now: datetime,
    rng: random.Random,
    http_client: httpx.AsyncClient,
    resolver: Resolver,
    schedule: RetrySchedule = DEFAULT_SCHEDULE,
    allow_loopback: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    concurrency: int = 4,
    limit: int = 1000,
) -> list[AttemptResult]:
    """Attempt every delivery due at ``now`` once; return what happened, in completion order.

    ``now``: the engine's clock for this pass (timezone-aware): what is due, the signature
    timestamp, and the base of the next attempt's time.  ``rng`` draws the retry jitter
    (``concurrency=1`` makes a pass deterministic).  ``resolver`` resolves webhook hosts
    (``system_resolver`` in production).  ``allow_loopback`` is the development setting.
    ``timeout_s``: seconds one attempt may take in all.  ``concurrency``: parallel workers,
    each holding one pool connection while it sends.  ``limit``: at most this many deliveries
    are claimed in one pass.  Deliveries that become due during the pass (the next event of a
    payment whose earlier one was just delivered) are sent in the same pass.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if concurrency < 1 or limit < 1 or timeout_s <= 0:
        raise ValueError("concurrency and limit must be positive, timeout_s above zero")
    results: list[AttemptResult] = []
    claimed = 0

    async def worker() -> None:
        nonlocal claimed
        while claimed < limit:
            async with conn_pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(_CLAIM_SQL, now)
                if row is None:
                    return
                claimed += 1
                results.append(
                    await _attempt(
                        conn,
                        delivery_from_record(row),
                        now=now,
                        rng=rng,
                        http_client=http_client,
                        resolver=resolver,
                        schedule=schedule,
                        allow_loopback=allow_loopback,
                        timeout_s=timeout_s,
                    )
                )

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return results
