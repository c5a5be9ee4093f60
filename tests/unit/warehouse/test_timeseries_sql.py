"""The SQL of both time-series paths.  No TimescaleDB exists on this machine, so its path is
checked statement by statement; the native path also runs for real in
tests/integration/test_sinks.py."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from warehouse.migrate import load
from warehouse.timeseries import (
    EVENT_LOG,
    EVENT_LOG_COLUMNS,
    LAG_SAMPLES,
    Mode,
    add_months,
    event_log_insert_sql,
    expired_partitions,
    fingerprint_text,
    minute_window,
    months_from,
    native_statements,
    partition_name,
    partition_sql,
    refresh_rollups_sql,
    schema_statements,
    timescale_statements,
)

EVENT_LOG_TABLE = """CREATE TABLE IF NOT EXISTS payment_event_log (
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
    PRIMARY KEY (event_id, occurred_at)
)"""

LAG_TABLE = """CREATE TABLE IF NOT EXISTS sink_lag_samples (
    sampled_at        timestamptz NOT NULL,
    consumer_group    text        NOT NULL,
    topic             text        NOT NULL,
    partition         integer     NOT NULL,
    -- NULL until the group commits on this partition.
    committed_offset  bigint,
    end_offset        bigint      NOT NULL,
    -- Messages not yet durably written by the sink.
    lag               bigint      NOT NULL CHECK (lag >= 0),
    PRIMARY KEY (consumer_group, topic, partition, sampled_at)
)"""

COMMON = [
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
    """CREATE OR REPLACE VIEW payment_metrics_hour AS
    SELECT date_bin(INTERVAL '1 hour', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
           merchant_id, event_type, currency,
           sum(events)::bigint AS events, sum(amount_minor)::bigint AS amount_minor
      FROM payment_metrics_minute
     GROUP BY 1, 2, 3, 4""",
]

TIMESCALE = [
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    EVENT_LOG_TABLE,
    "SELECT create_hypertable('payment_event_log', "
    "by_range('occurred_at', INTERVAL '1 day'), if_not_exists => TRUE)",
    "CREATE INDEX IF NOT EXISTS payment_event_log_merchant_time "
    "ON payment_event_log (merchant_id, occurred_at)",
    "CREATE INDEX IF NOT EXISTS payment_event_log_payment ON payment_event_log (payment_id)",
    "ALTER TABLE payment_event_log SET (timescaledb.compress, "
    "timescaledb.compress_segmentby = 'merchant_id', "
    "timescaledb.compress_orderby = 'occurred_at DESC')",
    "SELECT add_compression_policy('payment_event_log', INTERVAL '7 days', if_not_exists => TRUE)",
    "SELECT add_retention_policy('payment_event_log', INTERVAL '13 months', if_not_exists => TRUE)",
    LAG_TABLE,
    "SELECT create_hypertable('sink_lag_samples', "
    "by_range('sampled_at', INTERVAL '7 days'), if_not_exists => TRUE)",
    "SELECT add_retention_policy('sink_lag_samples', INTERVAL '1 months', if_not_exists => TRUE)",
    """CREATE MATERIALIZED VIEW IF NOT EXISTS payment_metrics_minute
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 minute', occurred_at) AS bucket,
           merchant_id, event_type, currency,
           count(*) AS events, sum(amount_minor)::bigint AS amount_minor
      FROM payment_event_log
     GROUP BY bucket, merchant_id, event_type, currency
    WITH NO DATA""",
    "SELECT add_continuous_aggregate_policy('payment_metrics_minute', "
    "start_offset => INTERVAL '2 hours', end_offset => INTERVAL '1 minute', "
    "schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE)",
    *COMMON,
]


def test_the_timescale_path_runs_exactly_these_statements() -> None:
    assert timescale_statements() == TIMESCALE
    assert schema_statements(Mode.TIMESCALE, date(2026, 11, 26)) == TIMESCALE


def test_the_timescale_path_needs_no_partition_upkeep_and_refreshes_through_timescale() -> None:
    assert not any("PARTITION" in s for s in TIMESCALE)
    assert refresh_rollups_sql(Mode.TIMESCALE) == [
        "CALL refresh_continuous_aggregate('payment_metrics_minute', "
        "$1::timestamptz, $2::timestamptz)"
    ]
    sql = event_log_insert_sql(Mode.TIMESCALE)
    assert "payment_metrics_minute" not in sql  # the continuous aggregate follows by itself


def test_the_native_path_partitions_by_month_across_a_year_end() -> None:
    statements = native_statements(date(2026, 12, 15), months_ahead=3)
    assert statements[0] == f"{EVENT_LOG_TABLE} PARTITION BY RANGE (occurred_at)"
    partitions = [s for s in statements if "PARTITION OF payment_event_log " in s]
    assert partitions == [
        "CREATE TABLE IF NOT EXISTS payment_event_log_p2026"
        f"{m:02d} PARTITION OF payment_event_log FOR VALUES FROM "
        f"('2026-{m:02d}-01 00:00:00+00') TO ('{'2027-01' if m == 12 else f'2026-{m + 1:02d}'}"
        "-01 00:00:00+00')"
        for m in (11, 12)
    ] + [
        f"CREATE TABLE IF NOT EXISTS payment_event_log_p2027{m:02d} PARTITION OF "
        f"payment_event_log FOR VALUES FROM ('2027-{m:02d}-01 00:00:00+00') TO "
        f"('2027-{m + 1:02d}-01 00:00:00+00')"
        for m in (1, 2, 3)
    ]
    assert sum("PARTITION OF sink_lag_samples " in s for s in statements) == 5
    assert statements[-2:] == COMMON


def test_both_paths_create_the_same_names_for_callers() -> None:
    pattern = re.compile(
        r"^CREATE (?:TABLE IF NOT EXISTS|MATERIALIZED VIEW IF NOT EXISTS|OR REPLACE VIEW) (\w+)"
    )

    def created(statements: list[str]) -> set[str]:
        names = {m.group(1) for s in statements if (m := pattern.match(s))}
        return {n for n in names if not re.search(r"_p\d{6}$", n)}

    expected = {
        "payment_event_log",
        "sink_lag_samples",
        "sink_lag_current",
        "payment_metrics_minute",
        "payment_metrics_hour",
    }
    assert created(timescale_statements()) == expected
    assert created(native_statements(date(2026, 11, 26))) == expected


def test_the_native_rollup_is_updated_by_the_same_statement_as_the_log() -> None:
    sql = event_log_insert_sql(Mode.NATIVE)
    assert sql.count("$") == len(EVENT_LOG_COLUMNS) == 11
    assert "ON CONFLICT DO NOTHING" in sql
    # Only rows new to the log (RETURNING) reach the rollup, so a replay adds nothing.
    assert "FROM new GROUP BY" in sql and "events = m.events + EXCLUDED.events" in sql
    lock, delete, insert = refresh_rollups_sql(Mode.NATIVE)
    assert lock.startswith("SELECT pg_advisory_xact_lock(")
    assert delete == "DELETE FROM payment_metrics_minute WHERE bucket >= $1 AND bucket < $2"
    assert "WHERE occurred_at >= $1 AND occurred_at < $2" in insert


@pytest.mark.parametrize(
    ("month", "n", "expected"),
    [
        (date(2026, 11, 1), 1, date(2026, 12, 1)),
        (date(2026, 12, 1), 1, date(2027, 1, 1)),
        (date(2026, 1, 1), -1, date(2025, 12, 1)),
        (date(2026, 3, 1), -13, date(2025, 2, 1)),
        (date(2026, 3, 1), 0, date(2026, 3, 1)),
    ],
)
def test_add_months(month: date, n: int, expected: date) -> None:
    assert add_months(month, n) == expected


def test_months_and_partition_names() -> None:
    assert months_from(date(2026, 12, 31), -1, 3) == [
        date(2026, 11, 1),
        date(2026, 12, 1),
        date(2027, 1, 1),
    ]
    assert partition_name(EVENT_LOG, date(2027, 1, 1)) == "payment_event_log_p202701"
    assert partition_sql(LAG_SAMPLES, date(2026, 2, 14)) == (
        "CREATE TABLE IF NOT EXISTS sink_lag_samples_p202602 PARTITION OF sink_lag_samples "
        "FOR VALUES FROM ('2026-02-01 00:00:00+00') TO ('2026-03-01 00:00:00+00')"
    )


def test_retention_drops_only_whole_months_past_it() -> None:
    months = months_from(date(2026, 11, 26), -16, 17)  # Jul 2025 .. Nov 2026
    # 13 months before November 2026 is October 2025: partitions ending by then go.
    assert expired_partitions(EVENT_LOG, months, date(2026, 11, 26)) == [
        date(2025, 7, 1),
        date(2025, 8, 1),
        date(2025, 9, 1),
    ]
    assert expired_partitions(LAG_SAMPLES, months, date(2026, 11, 26))[-1] == date(2026, 9, 1)


def test_minute_window_covers_whole_minutes() -> None:
    start = datetime(2026, 11, 26, 9, 30, 15, tzinfo=UTC)
    end = datetime(2026, 11, 26, 9, 31, 0, 1, tzinfo=UTC)
    assert minute_window(start, end) == (
        datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        datetime(2026, 11, 26, 9, 32, tzinfo=UTC),
    )


def test_the_migration_is_python_and_its_checksum_covers_both_paths() -> None:
    migration = next(m for m in load("postgres") if m.name == "0003_event_log")
    assert migration.apply is not None
    assert fingerprint_text() in migration.sql
    assert "timescaledb.continuous" in migration.sql and "PARTITION BY RANGE" in migration.sql
    assert "PARTITION OF" not in fingerprint_text()  # no date in the checksum
