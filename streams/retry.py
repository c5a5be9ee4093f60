"""Retrying what fails transiently.  Every consumer that must not lose a message (the payments
agent, the warehouse sink) retries these errors itself: Faust acknowledges a message whose
handler raised, and a sink that gave up would have to skip its batch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

log = logging.getLogger("rizzpay.retry")
T = TypeVar("T")

# Errors that go away by themselves: the database or the network is briefly unavailable.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.InterfaceError,
)


async def retry_transient(
    action: Callable[[], Awaitable[T]],
    *,
    backoff_s_max: float,
    what: str,
    transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    give_up: Callable[[], bool] = lambda: False,
) -> T:
    """Run ``action`` until it succeeds or fails permanently, backing off exponentially from
    0.1 s up to ``backoff_s_max`` seconds on ``transient`` errors.  ``give_up()`` returning
    true (a stop was requested) re-raises the transient error instead of waiting again."""
    delay_s = 0.1
    while True:
        try:
            return await action()
        except transient as exc:
            if give_up():
                raise
            log.warning("%s failed transiently (%s); retrying in %.1fs", what, exc, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, backoff_s_max)


class LazyPool:
    """A PostgreSQL pool opened on first use, retried while the database is unreachable: an
    agent's first batch waits for PostgreSQL instead of failing (and being acknowledged)
    without it."""

    def __init__(self, dsn: str, *, max_size: int, backoff_s_max: float) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._backoff_s_max = backoff_s_max
        self._pool: asyncpg.Pool | None = None

    async def get(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await retry_transient(
                lambda: asyncpg.create_pool(self._dsn, min_size=1, max_size=self._max_size),
                backoff_s_max=self._backoff_s_max,
                what="connecting to PostgreSQL",
            )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
