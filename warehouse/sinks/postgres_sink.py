"""The batched, idempotent PostgreSQL writer: the event log, its rollup, and lag samples.

``payment_event_log`` has the primary key ``(event_id, occurred_at)`` and is written with
``ON CONFLICT DO NOTHING``: a retried or replayed batch inserts nothing new.  On the native path
the same statement adds exactly the new rows to ``payment_metrics_minute``, so the rollup is
idempotent too; under Timescale the continuous aggregate follows the log by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from warehouse.sinks.rows import EventLogRow
from warehouse.timeseries import (
    CAGG_REFRESH_HOURS,
    EVENT_LOG,
    LAG_SAMPLES,
    Mode,
    TimeSeriesTable,
    detect_mode,
    drop_expired_partitions,
    ensure_partitions,
    ensure_partitions_ahead,
    existing_partitions,
    insert_event_log,
    month_start,
    refresh_rollups,
)

# Under Timescale, rows older than this were written outside the continuous aggregate's
# refresh window (a few minutes of margin for the policy's schedule).
_LATE = timedelta(hours=CAGG_REFRESH_HOURS) - timedelta(minutes=5)


@dataclass(frozen=True)
class LagSample:
    """Consumer lag of one partition at ``sampled_at``: ``lag`` messages (end offset minus
    committed offset) are on the broker but not yet durably in the warehouse."""

    sampled_at: datetime
    consumer_group: str
    topic: str
    partition: int
    committed_offset: int | None  # None until the group commits on this partition
    end_offset: int
    lag: int


class PostgresSink:
    """Writes event-log batches and lag samples through an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, mode: Mode) -> None:
        self.pool = pool
        self.mode = mode
        # Months whose native partition is known to exist, per table.
        self._months: dict[str, set[date]] = {}

    @classmethod
    async def connect(cls, dsn: str) -> PostgresSink:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            mode = await detect_mode(conn)
        return cls(pool, mode)

    async def _ensure_months(self, table: TimeSeriesTable, times: Iterable[datetime]) -> None:
        if self.mode is not Mode.NATIVE:
            return
        known = self._months.get(table.name)
        async with self.pool.acquire() as conn:
            if known is None:
                known = self._months[table.name] = await existing_partitions(conn, table)
            wanted = {month_start(t.astimezone(UTC).date()) for t in times} - known
            if wanted:
                await ensure_partitions(conn, table, wanted)
                known |= wanted

    async def write(self, rows: Sequence[EventLogRow]) -> int:
        """Insert one batch into the event log (and, natively, its rollup) in one transaction;
        returns how many rows were new.  Safe to repeat with the same rows.  Under Timescale,
        a batch with rows older than the continuous aggregate's refresh window also refreshes
        the aggregate over the batch's time range."""
        if not rows:
            return 0
        await self._ensure_months(EVENT_LOG, (r.occurred_at for r in rows))
        columns = list(zip(*(r.values() for r in rows), strict=True))
        async with self.pool.acquire() as conn:
            new = await insert_event_log(conn, self.mode, columns)
            oldest = min(r.occurred_at for r in rows)
            if self.mode is Mode.TIMESCALE and new and oldest < datetime.now(UTC) - _LATE:
                newest = max(r.occurred_at for r in rows)
                await refresh_rollups(conn, oldest, newest + timedelta(minutes=1))
        return new

    async def write_lag(self, samples: Sequence[LagSample]) -> None:
        """Append ``samples`` to ``sink_lag_samples`` and make them ``sink_lag_current``."""
        if not samples:
            return
        await self._ensure_months(LAG_SAMPLES, (s.sampled_at for s in samples))
        records = [
            (
                s.sampled_at,
                s.consumer_group,
                s.topic,
                s.partition,
                s.committed_offset,
                s.end_offset,
                s.lag,
            )
            for s in samples
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                """INSERT INTO sink_lag_samples (sampled_at, consumer_group, topic, partition,
                       committed_offset, end_offset, lag)
                   VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
                records,
            )
            await conn.executemany(
                """INSERT INTO sink_lag_current (sampled_at, consumer_group, topic, partition,
                       committed_offset, end_offset, lag)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (consumer_group, topic, partition) DO UPDATE
                      SET sampled_at = EXCLUDED.sampled_at,
                          committed_offset = EXCLUDED.committed_offset,
                          end_offset = EXCLUDED.end_offset, lag = EXCLUDED.lag
                    WHERE sink_lag_current.sampled_at <= EXCLUDED.sampled_at""",
                records,
            )

    async def maintain(self, today: date) -> tuple[list[str], list[str]]:
        """Native path: create partitions ahead and drop those past retention.  Returns the
        partitions (created, dropped); both empty under Timescale, whose policies do this."""
        if self.mode is not Mode.NATIVE:
            return [], []
        async with self.pool.acquire() as conn:
            created = await ensure_partitions_ahead(conn, today)
            dropped = await drop_expired_partitions(conn, today)
        self._months.clear()
        return created, dropped

    async def close(self) -> None:
        await self.pool.close()


async def sink_lag(conn: asyncpg.Connection | asyncpg.Pool, consumer_group: str) -> dict[str, int]:
    """The sink's latest consumer lag per partition, ``{"<topic>[<partition>]": messages}``,
    as last sampled into ``sink_lag_current`` (see that table's ``sampled_at`` for its age)."""
    rows = await conn.fetch(
        """SELECT topic, partition, lag FROM sink_lag_current
            WHERE consumer_group = $1 ORDER BY topic, partition""",
        consumer_group,
    )
    return {f"{r['topic']}[{r['partition']}]": int(r["lag"]) for r in rows}
