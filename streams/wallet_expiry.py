"""The wallet hold expiry sweep: a timer in the worker that releases holds past their deadline.

Holds placed through ``POST /v1/wallets/{id}/holds`` carry ``expires_at``.  Past it they can no
longer be posted or voided (``streams.wallets.plan`` refuses), and this timer, every
``wallet_hold_sweep_interval_s`` seconds on the cluster's leader, posts their release with
``warehouse.wallet_store.expire_holds``.  Each expiry is an operation with a derived id
(``expire:<hold_id>``), so two sweeps racing, or a sweep re-run after a crash, release a hold
once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg
import faust

from streams.retry import LazyPool
from streams.settings import WorkerSettings
from warehouse.wallet_store import expire_holds

log = logging.getLogger("rizzpay.streams.wallet_expiry")

# At most this many holds per tick: a backlog (a worker down for a day) drains over a few ticks
# instead of holding one connection for minutes.
HOLDS_PER_SWEEP_MAX = 1000


class HoldSweeper:
    """Owns a small connection pool; ``sweep`` releases the holds due at the time it runs."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings

        self._pg = LazyPool(
            self.settings.pg_dsn,
            max_size=1,
            backoff_s_max=self.settings.retry_backoff_s_max,
        )

    async def pool(self) -> asyncpg.Pool:
        return await self._pg.get()

    async def sweep(self, now: datetime) -> int:
        """Release every pending hold due at ``now``; returns how many were released."""
        pool = await self.pool()
        async with pool.acquire() as conn:
            done = await expire_holds(conn, now=now, limit=HOLDS_PER_SWEEP_MAX)
        return len(done)

    async def close(self) -> None:
        await self._pg.close()


def install(app: faust.App, settings: WorkerSettings) -> HoldSweeper:
    """Register the sweep timer on ``app`` (leader only: one sweep per cluster is enough, and a
    second would only find the holds already released)."""
    sweeper = HoldSweeper(settings)

    @app.timer(  # type: ignore[untyped-decorator]
        interval=settings.wallet_hold_sweep_interval_s,
        on_leader=True,
        name="wallets.expire_holds",
    )
    async def expire_wallet_holds() -> None:
        try:
            released = await sweeper.sweep(datetime.now(UTC))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Nothing was lost: the holds stay pending and due; the next tick tries again.
            log.warning("wallet hold sweep failed (%s); retrying next tick", exc)
            return
        if released:
            log.info("released %d expired wallet holds", released)

    return sweeper
