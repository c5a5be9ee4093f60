"""Processor attempts in PostgreSQL: the durable :class:`AttemptLog` of the router, the requests
the status poller may have to charge again, and the poller's writes to stored payments.

Why durable: the router writes the provider it is about to charge *before* the request leaves
(write-ahead).  If the worker dies after that, the redelivered payment (or the poller) finds the
provider in this table and asks it by our reference before charging anywhere else, so a
payment is never charged at two processors.  See ``streams/connectors/routing.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import asyncpg
import orjson

from models.events import LifecycleEvent, PaymentDeclined, PaymentRequested, encode
from models.topics import PAYMENTS_REQUESTED
from streams.connectors.base import ProviderName
from streams.ledger import FeeTerms, entry_for
from streams.lifecycle import Command, PaymentState, apply, state_from_json, state_to_json
from warehouse.payments import post_entries

# Statuses of a payment that still waits for a processor's answer.
AWAITING_STATUSES = ("created", "requires_action", "processing")


class PgAttemptLog:
    """:class:`streams.connectors.routing.AttemptLog` over ``processor_attempts``.  Each write
    commits on its own before it returns, so the record precedes the charge on disk."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def holder(self, payment_id: str) -> ProviderName | None:
        provider = await self._pool.fetchval(
            "SELECT provider FROM processor_attempts WHERE payment_id = $1", payment_id
        )
        return cast(ProviderName | None, provider)

    async def record(self, payment_id: str, provider: ProviderName) -> None:
        done = await self._pool.execute(
            """UPDATE processor_attempts SET provider = $2, updated_at = clock_timestamp()
                WHERE payment_id = $1""",
            payment_id,
            provider,
        )
        if done != "UPDATE 1":  # register_requests runs first: anything else is a bug
            raise RuntimeError(f"{payment_id} was not registered before its charge")

    async def clear(self, payment_id: str, provider: ProviderName) -> None:
        await self._pool.execute(
            """UPDATE processor_attempts SET provider = NULL, updated_at = clock_timestamp()
                WHERE payment_id = $1 AND provider = $2""",
            payment_id,
            provider,
        )


async def register_requests(pool: asyncpg.Pool, requests: Sequence[PaymentRequested]) -> None:
    """Remember each request before any processor is asked about it (a request already
    registered keeps its row, and so its provider)."""
    if not requests:
        return
    await pool.execute(
        """INSERT INTO processor_attempts (payment_id, request)
           SELECT * FROM unnest($1::text[], $2::jsonb[])
           ON CONFLICT (payment_id) DO NOTHING""",
        [r.payment_id for r in requests],
        [encode(r).decode() for r in requests],
    )


async def record_customer_action(
    pool: asyncpg.Pool, payment_id: str, action: Mapping[str, object]
) -> None:
    """Keep what the customer has to do next for ``payment_id`` (a redirect URL, a UPI collect,
    a virtual account to pay into), for the page or API that shows it."""
    await pool.execute(
        """UPDATE processor_attempts SET customer_action = $2::jsonb,
                  updated_at = clock_timestamp()
            WHERE payment_id = $1""",
        payment_id,
        orjson.dumps(action).decode(),
    )


async def customer_action(pool: asyncpg.Pool, payment_id: str) -> dict[str, object] | None:
    """What :func:`record_customer_action` kept for ``payment_id``."""
    raw = await pool.fetchval(
        "SELECT customer_action::text FROM processor_attempts WHERE payment_id = $1", payment_id
    )
    return None if raw is None else cast(dict[str, object], orjson.loads(raw))


async def stored_states(
    conn: asyncpg.Connection | asyncpg.Pool, payment_ids: Sequence[str]
) -> dict[str, PaymentState]:
    """The stored lifecycle state of each of ``payment_ids`` that is recorded."""
    rows = await conn.fetch(
        """SELECT payment_id, lifecycle::text AS lifecycle FROM payments
            WHERE payment_id = ANY($1::text[]) AND lifecycle IS NOT NULL""",
        list(set(payment_ids)),
    )
    return {r["payment_id"]: state_from_json(r["lifecycle"].encode()) for r in rows}


@dataclass(frozen=True)
class Awaiting:
    """A recorded payment that waits for a processor: its request, state and possible holder."""

    request: PaymentRequested
    state: PaymentState
    provider: ProviderName | None


async def awaiting_payments(
    pool: asyncpg.Pool, limit: int, *, interval_s: float, backoff_s_max: float
) -> list[Awaiting]:
    """Up to ``limit`` payments waiting for a processor that are due for a poll, least recently
    polled first; each is marked polled now.

    A payment is due ``interval_s`` after its last poll while it is young, then less often as it
    ages (an eighth of its age, at most ``backoff_s_max``): a UPI collect is usually approved in
    seconds, while a netbanking page left open or a bank transfer not yet sent may wait for
    hours, and asking about those every second would crowd out the rest."""
    return await claim_for_poll(
        pool,
        limit,
        """p.status = ANY($2::text[])
           AND (a.polled_at IS NULL
                OR a.polled_at <= clock_timestamp() - least(
                       greatest(make_interval(secs => $3),
                                (clock_timestamp() - a.created_at) / 8),
                       make_interval(secs => $4)))""",
        list(AWAITING_STATUSES),
        interval_s,
        backoff_s_max,
    )


async def claim_for_poll(
    pool: asyncpg.Pool, limit: int, condition: str, *args: object
) -> list[Awaiting]:
    """Up to ``limit`` payments with a processor attempt (``p``: payments, ``a``: its
    attempt) meeting ``condition`` (a constant SQL fragment whose parameters, ``args``, are
    numbered from ``$2``), least recently polled first; each is marked polled now, in the same
    transaction, so two pollers never ask about one payment at once."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT p.payment_id, a.request::text AS request, a.provider,
                       p.lifecycle::text AS lifecycle
                  FROM payments p JOIN processor_attempts a USING (payment_id)
                 WHERE {condition}
                 ORDER BY a.polled_at NULLS FIRST, p.payment_id
                 LIMIT $1
                   FOR UPDATE OF a SKIP LOCKED""",  # noqa: S608 (condition: a constant)
            limit,
            *args,
        )
        await conn.execute(
            """UPDATE processor_attempts SET polled_at = clock_timestamp()
                WHERE payment_id = ANY($1::text[])""",
            [r["payment_id"] for r in rows],
        )
    return awaiting_from_rows(rows)


def awaiting_from_rows(rows: Sequence[asyncpg.Record]) -> list[Awaiting]:
    """Rows with ``request`` and ``lifecycle`` (JSON text) and ``provider`` as payments."""
    awaiting: list[Awaiting] = []
    for r in rows:
        request = PAYMENTS_REQUESTED.decode(r["request"].encode())
        assert isinstance(request, PaymentRequested)
        state = state_from_json(r["lifecycle"].encode())
        awaiting.append(Awaiting(request, state, cast(ProviderName | None, r["provider"])))
    return awaiting


FeeTermsOf = Callable[[str, str, str | None], FeeTerms | None]
Announce = Callable[[Sequence[LifecycleEvent]], Awaitable[None]]


async def apply_processor_commands(
    conn: asyncpg.Connection,
    payment_id: str,
    commands: Sequence[Command],
    *,
    now: datetime,
    fee_terms: FeeTermsOf,
    announce: Announce,
) -> tuple[PaymentState, tuple[LifecycleEvent, ...]]:
    """Apply a processor's outcome (``commands``, in order) to a stored payment in one
    transaction: lock it, run the state machine, store the new state, post the entries.

    ``announce`` sends the new events and waits for the broker *before* the transaction
    commits: a crash in between leaves the payment waiting, and the next poll applies the same
    answer with the same event ids again (sent twice, never lost).  Idempotent: a command
    already applied (same key) changes nothing.  Raises
    :class:`streams.lifecycle.IllegalTransition` when the payment moved on in a way the
    commands do not fit (the transaction is rolled back)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """SELECT merchant_id, method, card_network, lifecycle::text AS lifecycle
                 FROM payments WHERE payment_id = $1 FOR UPDATE""",
            payment_id,
        )
        if row is None or row["lifecycle"] is None:
            raise LookupError(f"{payment_id} is not recorded")
        state = state_from_json(row["lifecycle"].encode())
        terms = fee_terms(row["merchant_id"], row["method"], row["card_network"])
        events: list[LifecycleEvent] = []
        new_events: list[LifecycleEvent] = []
        for command in commands:
            step = apply(state, command, now=now)
            state = step.state
            events.extend(step.events)
            if not step.replayed:
                new_events.extend(step.events)
        if new_events:
            declined = next((e for e in new_events if isinstance(e, PaymentDeclined)), None)
            await conn.execute(
                """UPDATE payments SET status = $2, lifecycle = $3::jsonb, last_event_id = $4,
                          decline_code = coalesce($5, decline_code),
                          updated_at = clock_timestamp()
                    WHERE payment_id = $1""",
                payment_id,
                state.status.value,
                state_to_json(state).decode(),
                new_events[-1].event_id,
                None if declined is None else declined.decline_code,
            )
            entries = [e for e in (entry_for(ev, terms) for ev in new_events) if e is not None]
            if entries:
                await post_entries(conn, entries)
            await announce(new_events)
    return state, tuple(events)
