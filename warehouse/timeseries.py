"""PostgreSQL time series: TimescaleDB where the extension exists, native partitions otherwise.

Both paths give callers the same names:

* ``payment_event_log`` — every payment event, keyed by ``(event_id, occurred_at)``.
* ``sink_lag_samples`` — the warehouse sink's consumer lag per partition, over time.
* ``payment_metrics_minute`` — per minute, merchant, event type and currency: ``events``
  (count) and ``amount_minor`` (sum of minor units, bigint; NULL for events that move no money).
  A continuous aggregate under Timescale; a plain table under native partitioning, kept current
  by the sink and rebuilt for any window by :func:`refresh_rollups`.
* ``payment_metrics_hour`` — a view summing ``payment_metrics_minute`` per UTC hour.
* ``sink_lag_current`` — the latest lag sample per partition (a plain table in both paths).

Which path a database uses is decided once, when migration ``0003_event_log`` runs (see
:func:`apply_schema`), and is read back from the table itself afterwards
(:func:`detect_mode`): a database migrated natively stays native even if Timescale is
installed later.

Every statement list here is a pure function of its arguments, so the Timescale path, which
this machine cannot run, is tested by comparing the exact statements it would execute.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

# Months of native partitions created ahead of the current month by the migration and the sink.
MONTHS_AHEAD = 3
# Serializes partition DDL between processes (sinks and migrations); any constant will do.
_PARTITION_LOCK_ID = 0x52505054
# Shared by sinks while they add to the native rollup, exclusive while it is rebuilt.
_ROLLUP_LOCK_ID = 0x52524F4C


class Mode(enum.StrEnum):
    """How the time-series tables of a database are stored."""

    TIMESCALE = "timescale"
    NATIVE = "native"


@dataclass(frozen=True)
class TimeSeriesTable:
    """One time-series table: the same columns and keys on both paths.

    ``retention_months``: rows older than this many whole months are dropped (Timescale by a
    retention policy on chunks, native by dropping monthly partitions, see
    :func:`drop_expired_partitions`).  ``compress_after_days``: Timescale compresses chunks
    older than this (native PostgreSQL has no equivalent; None disables it).
    """

    name: str
    time_column: str
    columns: str
    chunk_interval: str
    retention_months: int
    compress_after_days: int | None = None
    compress_segmentby: str | None = None
    indexes: tuple[tuple[str, str], ...] = ()


EVENT_LOG = TimeSeriesTable(
    name="payment_event_log",
    time_column="occurred_at",
    columns="""
    event_id        text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    event_type      text        NOT NULL,
    schema_version  smallint    NOT NULL,
    payment_id      text        NOT NULL,
    merchant_id     text        NOT NULL,
    -- Minor units of currency (paise for INR); both NULL when the event moves no money.
    amount_minor    bigint      CHECK (amount_minor > 0),
    currency        char(3),
    method          text,
    decline_code    text,
    payload         jsonb       NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((amount_minor IS NULL) = (currency IS NULL)),
    -- Unique keys of a partitioned table or hypertable must include the time column; an
    -- event's occurred_at never changes, so this is as strict as event_id alone.
    PRIMARY KEY (event_id, occurred_at)""",
    chunk_interval="1 day",
    # The ledger and the ClickHouse facts are the long-term record; this log is operational.
    retention_months=13,
    compress_after_days=7,
    compress_segmentby="merchant_id",
    indexes=(
        ("payment_event_log_merchant_time", "(merchant_id, occurred_at)"),
        ("payment_event_log_payment", "(payment_id)"),
    ),
)

LAG_SAMPLES = TimeSeriesTable(
    name="sink_lag_samples",
    time_column="sampled_at",
    columns="""
    sampled_at        timestamptz NOT NULL,
    consumer_group    text        NOT NULL,
    topic             text        NOT NULL,
    partition         integer     NOT NULL,
    -- NULL until the group commits on this partition.
    committed_offset  bigint,
    end_offset        bigint      NOT NULL,
    -- Messages not yet durably written by the sink.
    lag               bigint      NOT NULL CHECK (lag >= 0),
    PRIMARY KEY (consumer_group, topic, partition, sampled_at)""",
    chunk_interval="7 days",
    retention_months=1,
)

TIME_SERIES: tuple[TimeSeriesTable, ...] = (EVENT_LOG, LAG_SAMPLES)
ROLLUP = "payment_metrics_minute"
# The Timescale refresh policy re-aggregates this far back; older rows (a replay, a backfill)
# are refreshed by the sink through refresh_rollups after it writes them.
CAGG_REFRESH_HOURS = 2
ROLLUP_HOUR = "payment_metrics_hour"

# Buckets are aligned on UTC whatever the session's TimeZone (India's +05:30 would shift hours).
_EPOCH = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
_ROLLUP_SELECT = """
    SELECT {bucket} AS bucket,
           merchant_id, event_type, currency,
           count(*) AS events, sum(amount_minor)::bigint AS amount_minor
      FROM payment_event_log{where}
     GROUP BY bucket, merchant_id, event_type, currency"""


def _create_table(table: TimeSeriesTable, suffix: str = "") -> str:
    return f"CREATE TABLE IF NOT EXISTS {table.name} ({table.columns}\n){suffix}"


def _indexes(table: TimeSeriesTable) -> list[str]:
    return [f"CREATE INDEX IF NOT EXISTS {n} ON {table.name} {c}" for n, c in table.indexes]


def common_statements() -> list[str]:
    """Objects that are the same on both paths; run after the path's own statements."""
    return [
        """CREATE TABLE IF NOT EXISTS sink_lag_current (
    consumer_group    text        NOT NULL,
    topic             text        NOT NULL,
    partition         integer     NOT NULL,
    sampled_at        timestamptz NOT NULL,
    committed_offset  bigint,
    end_offset        bigint      NOT NULL,
    lag               bigint      NOT NULL CHECK (lag >= 0),
    PRIMARY KEY (consumer_group, topic, partition)
)""",
        f"""CREATE OR REPLACE VIEW {ROLLUP_HOUR} AS
    SELECT date_bin(INTERVAL '1 hour', bucket, {_EPOCH}) AS bucket,
           merchant_id, event_type, currency,
           sum(events)::bigint AS events, sum(amount_minor)::bigint AS amount_minor
      FROM {ROLLUP}
     GROUP BY 1, 2, 3, 4""",  # noqa: S608 -- identifiers are this module's constants
    ]


def timescale_statements() -> list[str]:
    """Everything migration ``0003_event_log`` runs where TimescaleDB is available (2.13+)."""
    statements = ["CREATE EXTENSION IF NOT EXISTS timescaledb"]
    for table in TIME_SERIES:
        statements.append(_create_table(table))
        statements.append(
            f"SELECT create_hypertable('{table.name}', "
            f"by_range('{table.time_column}', INTERVAL '{table.chunk_interval}'), "
            "if_not_exists => TRUE)"
        )
        statements.extend(_indexes(table))
        if table.compress_after_days is not None:
            statements.append(
                f"ALTER TABLE {table.name} SET (timescaledb.compress, "
                f"timescaledb.compress_segmentby = '{table.compress_segmentby}', "
                f"timescaledb.compress_orderby = '{table.time_column} DESC')"
            )
            statements.append(
                f"SELECT add_compression_policy('{table.name}', "
                f"INTERVAL '{table.compress_after_days} days', if_not_exists => TRUE)"
            )
        statements.append(
            f"SELECT add_retention_policy('{table.name}', "
            f"INTERVAL '{table.retention_months} months', if_not_exists => TRUE)"
        )
    statements.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ROLLUP}\n"
        "    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS"
        + _ROLLUP_SELECT.format(bucket="time_bucket(INTERVAL '1 minute', occurred_at)", where="")
        + "\n    WITH NO DATA"
    )
    statements.append(
        f"SELECT add_continuous_aggregate_policy('{ROLLUP}', "
        f"start_offset => INTERVAL '{CAGG_REFRESH_HOURS} hours', "
        "end_offset => INTERVAL '1 minute', "
        "schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE)"
    )
    return [*statements, *common_statements()]


def native_statements(today: date, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Everything migration ``0003_event_log`` runs on PostgreSQL without TimescaleDB: tables
    range-partitioned by month, partitions from last month to ``months_ahead`` months after
    ``today``'s, and the rollup as a plain table."""
    statements: list[str] = []
    for table in TIME_SERIES:
        statements.append(_create_table(table, f" PARTITION BY RANGE ({table.time_column})"))
        # Timescale adds this index to every hypertable by itself.
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {table.name}_time ON {table.name} "
            f"({table.time_column} DESC)"
        )
        statements.extend(_indexes(table))
        statements.extend(
            partition_sql(table, month) for month in months_from(today, -1, months_ahead + 2)
        )
    statements.append(
        f"""CREATE TABLE IF NOT EXISTS {ROLLUP} (
    bucket        timestamptz NOT NULL,
    merchant_id   text        NOT NULL,
    event_type    text        NOT NULL,
    currency      char(3),
    events        bigint      NOT NULL,
    amount_minor  bigint,
    CONSTRAINT {ROLLUP}_key UNIQUE NULLS NOT DISTINCT (bucket, merchant_id, event_type, currency)
)"""
    )
    return [*statements, *common_statements()]


def month_start(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    """The first day of the month ``n`` months after ``month``'s (``n`` may be negative)."""
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def months_from(day: date, first: int, count: int) -> list[date]:
    """``count`` consecutive month starts, the first ``first`` months after ``day``'s month."""
    start = month_start(day)
    return [add_months(start, first + i) for i in range(count)]


def partition_name(table: TimeSeriesTable, month: date) -> str:
    """``payment_event_log_p202611`` holds November 2026 (UTC)."""
    return f"{table.name}_p{month.year:04d}{month.month:02d}"


_PARTITION_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<year>\d{4})(?P<month>\d{2})$")


def partition_sql(table: TimeSeriesTable, month: date) -> str:
    """DDL for ``table``'s native partition holding the UTC month that starts at ``month``."""
    start, end = month_start(month), add_months(month, 1)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(table, start)} PARTITION OF {table.name} "
        f"FOR VALUES FROM ('{start.isoformat()} 00:00:00+00') TO ('{end.isoformat()} 00:00:00+00')"
    )


def schema_statements(mode: Mode, today: date) -> list[str]:
    """The statements of migration ``0003_event_log`` for ``mode``."""
    return timescale_statements() if mode is Mode.TIMESCALE else native_statements(today)


async def timescale_available(conn: asyncpg.Connection) -> bool:
    """Whether this server has the timescaledb extension installed or installable."""
    found = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
               OR EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"""
    )
    return bool(found)


async def detect_mode(conn: asyncpg.Connection) -> Mode:
    """The path this database was migrated with, read from ``payment_event_log`` itself."""
    kind = await conn.fetchval(
        "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", EVENT_LOG.name
    )
    if kind is None:
        raise RuntimeError(f"{EVENT_LOG.name} does not exist; run `rizzpay migrate`")
    return Mode.NATIVE if kind == "p" else Mode.TIMESCALE


async def apply_schema(conn: asyncpg.Connection, today: date | None = None) -> Mode:
    """Create the time-series schema on the path this server supports; returns the path.

    Runs inside the migration's transaction.  Where the extension is available but the role
    may not create it, this fails rather than quietly choosing the native path: a database
    administrator should run ``CREATE EXTENSION timescaledb`` first.
    """
    mode = Mode.TIMESCALE if await timescale_available(conn) else Mode.NATIVE
    for statement in schema_statements(mode, today or datetime.now(UTC).date()):
        await conn.execute(statement)
    return mode


def fingerprint_text() -> str:
    """The text whose checksum the migration runner records for ``0003_event_log``: both
    paths' statements, without the date-dependent partitions, so editing either path's DDL
    after it was applied is reported as drift."""
    native = [s for s in native_statements(date(2000, 1, 1)) if "PARTITION OF" not in s]
    return ";\n".join([*timescale_statements(), "-- native", *native])


# --- native partition maintenance -------------------------------------------------------------


async def existing_partitions(conn: asyncpg.Connection, table: TimeSeriesTable) -> set[date]:
    """Month starts of ``table``'s native partitions (empty under Timescale)."""
    names = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass($1)""",
        table.name,
    )
    months = set()
    for row in names:
        match = _PARTITION_NAME.match(row["relname"])
        if match and match["table"] == table.name:
            months.add(date(int(match["year"]), int(match["month"]), 1))
    return months


async def ensure_partitions(
    conn: asyncpg.Connection, table: TimeSeriesTable, months: Iterable[date]
) -> list[str]:
    """Create ``table``'s native partitions for ``months`` (any day of each month) that are
    missing; returns the names created.  Safe to call from several processes at once."""
    wanted = sorted({month_start(m) for m in months})
    if not wanted:
        return []
    created: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK_ID)
        have = await existing_partitions(conn, table)
        for month in wanted:
            if month not in have:
                await conn.execute(partition_sql(table, month))
                created.append(partition_name(table, month))
    return created


async def ensure_partitions_ahead(
    conn: asyncpg.Connection, today: date, months_ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Partitions of every native time-series table from this month to ``months_ahead``
    months after it; the sink calls this hourly, so inserts never wait for DDL."""
    created: list[str] = []
    for table in TIME_SERIES:
        created += await ensure_partitions(conn, table, months_from(today, 0, months_ahead + 1))
    return created


def expired_partitions(table: TimeSeriesTable, months: Iterable[date], today: date) -> list[date]:
    """Month starts of partitions wholly older than ``table.retention_months`` whole months
    before ``today``'s month."""
    cutoff = add_months(month_start(today), -table.retention_months)
    return sorted(m for m in months if add_months(m, 1) <= cutoff)


async def drop_expired_partitions(conn: asyncpg.Connection, today: date) -> list[str]:
    """The native path's retention: drop monthly partitions past their table's retention.
    Returns the names dropped.  Does nothing under Timescale (its policies do this)."""
    dropped: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK_ID)
        for table in TIME_SERIES:
            for month in expired_partitions(table, await existing_partitions(conn, table), today):
                name = partition_name(table, month)
                await conn.execute(f"DROP TABLE IF EXISTS {name}")
                dropped.append(name)
    return dropped


# --- writing the event log and the rollup -----------------------------------------------------

EVENT_LOG_COLUMNS: tuple[str, ...] = (
    "event_id",
    "occurred_at",
    "event_type",
    "schema_version",
    "payment_id",
    "merchant_id",
    "amount_minor",
    "currency",
    "method",
    "decline_code",
    "payload",
)
_EVENT_LOG_TYPES: tuple[str, ...] = (
    "text",
    "timestamptz",
    "text",
    "smallint",
    "text",
    "text",
    "bigint",
    "text",
    "text",
    "text",
    "jsonb",
)


def event_log_insert_sql(mode: Mode) -> str:
    """One statement that inserts a batch into ``payment_event_log`` (one array parameter per
    column of :data:`EVENT_LOG_COLUMNS`), skips rows already there, and returns how many rows
    were new.  On the native path the same statement adds exactly those new rows to the
    ``payment_metrics_minute`` table, so a replayed batch adds nothing twice; under Timescale
    the continuous aggregate does that."""
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_EVENT_LOG_TYPES, start=1))
    insert = f"""INSERT INTO {EVENT_LOG.name} ({", ".join(EVENT_LOG_COLUMNS)})
    SELECT * FROM unnest({params})
    ON CONFLICT DO NOTHING
    RETURNING occurred_at, merchant_id, event_type, currency, amount_minor"""  # noqa: S608
    if mode is Mode.TIMESCALE:
        return f"WITH new AS (\n    {insert}\n)\nSELECT count(*) FROM new"
    rollup = f"""INSERT INTO {ROLLUP} AS m
           (bucket, merchant_id, event_type, currency, events, amount_minor)
    SELECT date_bin(INTERVAL '1 minute', occurred_at, {_EPOCH}), merchant_id, event_type, currency,
           count(*), sum(amount_minor)::bigint
      FROM new GROUP BY 1, 2, 3, 4
    ON CONFLICT (bucket, merchant_id, event_type, currency) DO UPDATE
       SET events = m.events + EXCLUDED.events,
           amount_minor = m.amount_minor + EXCLUDED.amount_minor"""  # noqa: S608
    return f"WITH new AS (\n    {insert}\n), rolled AS (\n    {rollup}\n)\nSELECT count(*) FROM new"


async def insert_event_log(
    conn: asyncpg.Connection, mode: Mode, columns: Sequence[Sequence[Any]]
) -> int:
    """Insert one batch given column-wise (in :data:`EVENT_LOG_COLUMNS` order) in its own
    transaction; returns the number of rows that were new."""
    async with conn.transaction():
        if mode is Mode.NATIVE:
            await conn.execute(f"SELECT pg_advisory_xact_lock_shared({_ROLLUP_LOCK_ID})")
        new: int = await conn.fetchval(event_log_insert_sql(mode), *columns)
    return new


def refresh_rollups_sql(mode: Mode) -> list[str]:
    """Statements that rebuild ``payment_metrics_minute`` for the window ``[$1, $2)`` (the
    native path's first statement, the lock, takes no parameters)."""
    if mode is Mode.TIMESCALE:
        return [f"CALL refresh_continuous_aggregate('{ROLLUP}', $1::timestamptz, $2::timestamptz)"]
    window = "\n     WHERE occurred_at >= $1 AND occurred_at < $2"
    return [
        f"SELECT pg_advisory_xact_lock({_ROLLUP_LOCK_ID})",
        f"DELETE FROM {ROLLUP} WHERE bucket >= $1 AND bucket < $2",  # noqa: S608
        f"INSERT INTO {ROLLUP} (bucket, merchant_id, event_type, currency, events, amount_minor)"
        + _ROLLUP_SELECT.format(
            bucket=f"date_bin(INTERVAL '1 minute', occurred_at, {_EPOCH})", where=window
        ),
    ]


def minute_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` widened to whole UTC minutes."""
    lo = start.astimezone(UTC).replace(second=0, microsecond=0)
    hi = end.astimezone(UTC).replace(second=0, microsecond=0)
    if hi < end:
        hi += timedelta(minutes=1)
    return lo, hi


async def refresh_rollups(conn: asyncpg.Connection, start: datetime, end: datetime) -> None:
    """Rebuild ``payment_metrics_minute`` from ``payment_event_log`` for the whole minutes
    covering ``[start, end)`` (aware datetimes).  The sink keeps the rollup current by itself;
    this repairs or backfills a window, on either path."""
    lo, hi = minute_window(start, end)
    mode = await detect_mode(conn)
    if mode is Mode.TIMESCALE:
        # refresh_continuous_aggregate refuses to run inside a transaction block.
        for statement in refresh_rollups_sql(mode):
            await conn.execute(statement, lo, hi)
        return
    lock, delete, insert = refresh_rollups_sql(mode)
    async with conn.transaction():
        await conn.execute(lock)
        await conn.execute(delete, lo, hi)
        await conn.execute(insert, lo, hi)
