"""The report scheduler: one leader runs each kind's due periods (docs/reports.md).

Leadership is a PostgreSQL **session** advisory lock (``pg_try_advisory_lock``) held on the
scheduler's own connection for as long as it lives: two schedulers never both run reports, and
when the leader dies its connection closes, the lock is released, and a stand-by takes over at
its next tick.  A stand-by only tries for the lock; it runs nothing.

Each tick (the clock is injected; tests drive it by hand) looks at every kind's last
``schedule.lookback`` periods that have ended and whose ``due_at`` has passed:

* a period with a published run is done (a re-run after a late correction is manual:
  ``rizzpay reports run``);
* a period whose last run was blocked by data quality is retried once its
  :data:`BLOCKED_RETRY` has passed (the inputs may have been fixed; an unchanged input finds its
  stored blocked run again and changes nothing);
* otherwise it runs now.

A period past its deadline without a published run is reported as ``late`` by
:func:`overdue_periods` (``rizzpay reports list`` shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from warehouse.leader import LeaderLock
from warehouse.reports.framework import (
    NotReproducible,
    ReportKind,
    RunOutcome,
    previous_periods,
    run_report,
)

__all__ = [
    "BLOCKED_RETRY",
    "LEADER_LOCK_KEY",
    "Overdue",
    "ReportScheduler",
    "due_periods",
    "overdue_periods",
]

LEADER_LOCK_KEY = "rizzpay:report-scheduler"
BLOCKED_RETRY = timedelta(hours=1)
"""How long a blocked period waits before the scheduler loads and validates it again."""

log = logging.getLogger("rizzpay.reports.scheduler")

Clock = Callable[[], datetime]


def due_periods(kind: ReportKind, now: datetime) -> list[str]:
    """The kind's periods (oldest first) among its last ``lookback`` that are due at ``now``."""
    periods = previous_periods(kind.cadence, now, kind.schedule.lookback)
    return [p for p in reversed(periods) if kind.schedule.due_at(kind.cadence, p) <= now]


async def _latest_runs(
    conn: asyncpg.Connection, kind: str, periods: list[str]
) -> dict[str, tuple[bool, datetime]]:
    """Per period: (has a published run, last run time)."""
    rows = await conn.fetch(
        """SELECT period, bool_or(status = 'published') AS published, max(last_run_at) AS last
             FROM report_runs WHERE kind = $1 AND period = ANY($2::text[]) GROUP BY period""",
        kind,
        periods,
    )
    return {r["period"]: (r["published"], r["last"]) for r in rows}


@dataclass(frozen=True)
class Overdue:
    kind: str
    period: str
    deadline: datetime


async def overdue_periods(
    conn: asyncpg.Connection | asyncpg.Pool, kinds: Mapping[str, ReportKind], now: datetime
) -> list[Overdue]:
    """Due periods (within each kind's lookback) past their deadline with no published run."""
    late = []
    for kind in kinds.values():
        periods = due_periods(kind, now)
        if not periods:
            continue
        rows = await conn.fetch(
            """SELECT DISTINCT period FROM report_runs
                WHERE kind = $1 AND period = ANY($2::text[]) AND status = 'published'""",
            kind.name,
            periods,
        )
        published = {r["period"] for r in rows}
        for period in periods:
            deadline = kind.schedule.deadline(kind.cadence, period)
            if period not in published and deadline <= now:
                late.append(Overdue(kind.name, period, deadline))
    return late


class ReportScheduler:
    """Runs due reports while it holds the leader lock.  ``conn`` is the scheduler's own
    connection (the lock lives and dies with it); ``clock`` gives "now"."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        kinds: Mapping[str, ReportKind],
        clock: Clock,
        *,
        blocked_retry: timedelta = BLOCKED_RETRY,
    ) -> None:
        self._conn = conn
        self._kinds = kinds
        self._clock = clock
        self._blocked_retry = blocked_retry
        self._leader = LeaderLock(conn, LEADER_LOCK_KEY)

    @property
    def is_leader(self) -> bool:
        return self._leader.held

    async def try_lead(self) -> bool:
        """Take the leader lock if free (idempotent while held)."""
        return await self._leader.try_acquire()

    async def resign(self) -> None:
        await self._leader.release()

    async def tick(self) -> list[RunOutcome]:
        """One pass: as leader, run every due period that needs it; as stand-by, nothing.
        A report that fails (an error, not a quality block) is logged and the others still
        run; it is tried again at the next tick."""
        if not await self.try_lead():
            return []
        outcomes: list[RunOutcome] = []
        for kind in self._kinds.values():
            now = self._clock()
            periods = due_periods(kind, now)
            if not periods:
                continue
            latest = await _latest_runs(self._conn, kind.name, periods)
            for period in periods:
                published, last = latest.get(period, (False, None))
                if published:
                    continue
                if last is not None and now - last < self._blocked_retry:
                    continue
                try:
                    outcome = await run_report(
                        self._conn, kind, period, now=self._clock(), triggered_by="schedule"
                    )
                except (asyncpg.PostgresError, OSError, ValueError, NotReproducible) as exc:
                    log.error("report %s %s failed: %s", kind.name, period, exc)
                    continue
                log.info("report %s %s %s (%s)", kind.name, period, outcome.status, outcome.run_id)
                for failure in outcome.quality.failures:
                    log.warning("report %s %s blocked: %s", kind.name, period, failure.message())
                outcomes.append(outcome)
        return outcomes


async def run_scheduler(
    dsn: str,
    kinds: Mapping[str, ReportKind],
    clock: Clock,
    *,
    interval_s: float,
    stop: asyncio.Event,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> None:
    """The scheduler process: tick every ``interval_s`` until ``stop`` is set.  A lost
    connection drops leadership; the loop reconnects and competes again."""
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot reach PostgreSQL (%s); retrying", exc)
            await _wait(stop, interval_s, sleep)
            continue
        scheduler = ReportScheduler(conn, kinds, clock)
        try:
            while not stop.is_set():
                was_leader = scheduler.is_leader
                await scheduler.tick()
                if scheduler.is_leader and not was_leader:
                    log.info("leader: running report schedules")
                await _wait(stop, interval_s, sleep)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("scheduler connection lost (%s); leadership released", exc)
        finally:
            await conn.close()


async def _wait(
    stop: asyncio.Event, seconds: float, sleep: Callable[[float], Awaitable[Any]] | None
) -> None:
    if sleep is not None:
        await sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
