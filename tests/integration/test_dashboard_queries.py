"""Every dashboard panel's query runs against the real engines and returns the panel's columns.

PostgreSQL: the ``pg`` fixture's freshly migrated database.  ClickHouse: the real engine through
chDB, one data path for the whole test process (an embedded engine allows one), migrated into a
database unique to this run.  Grafana's time macros are expanded for a concrete range by
``dashboards.model.expand_macros`` (the same expansions Grafana performs).  A few rows are
inserted first so that every query (except the placeholders, which have none) returns rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import clickhouse_connect
import pytest

from dashboards.definitions import (
    AML_CUSTOMER_MONTHLY_MINOR,
    EV_AUTHORIZED,
    EV_CAPTURED,
    EV_DECLINED,
    EV_REFUNDED,
    PG,
    all_dashboards,
)
from dashboards.model import Dashboard, Engine, Panel, Query, expand_macros
from warehouse.aml.cases import escalate_case, open_cases
from warehouse.aml.rules import MONTHLY_TOTAL, Alert
from warehouse.aml.settings import AmlSettings
from warehouse.migrate import migrate_clickhouse
from warehouse.timeseries import EVENT_LOG_COLUMNS, detect_mode, insert_event_log

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
START, END = NOW - timedelta(days=1), NOW + timedelta(hours=1)
INTERVAL_S = 60
MERCHANT = "m_dash_test"


def _panels(engine: Engine) -> list[tuple[str, Panel, Query]]:
    return [
        (f"{d.uid}/{p.title}", p, q)
        for d in all_dashboards(_CH_DB)
        for p, q in d.queries()
        if q.engine is engine
    ]


_CH_DB = f"t_dash_{uuid.uuid4().hex[:8]}"


# --- ClickHouse ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    client = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path_factory.mktemp('chdb')}/ch")
    migrate_clickhouse(client, _CH_DB)
    t = NOW - timedelta(minutes=30)
    events = [
        ("e1", EV_AUTHORIZED, "p1", 150_000, "card", ""),
        ("e2", EV_DECLINED, "p2", 250_000, "card", "insufficient_funds"),
        ("e3", EV_DECLINED, "p3", 99_900, "upi", "do_not_honor"),
        ("e4", EV_AUTHORIZED, "p4", 60_000, "upi", ""),
        ("e5", EV_CAPTURED, "p1", 150_000, "card", ""),
        ("e6", EV_REFUNDED, "p1", 50_000, "card", ""),
    ]
    client.insert(
        f"{_CH_DB}.payment_events",
        [[eid, et, pid, MERCHANT, amt, "INR", m, dc, t] for eid, et, pid, amt, m, dc in events],
        column_names=[
            "event_id",
            "event_type",
            "payment_id",
            "merchant_id",
            "amount_minor",
            "currency",
            "method",
            "decline_code",
            "occurred_at",
        ],
    )
    # Two ₹6 lakh payments by one customer: over the ₹10 lakh watch threshold together.
    big = 6_00_000 * 100
    assert 2 * big > AML_CUSTOMER_MONTHLY_MINOR
    rows = [
        [f"r{i}", f"pay{i}", MERCHANT, "cust_1", big, "INR", "netbanking", "", "", "HDFC", "",
         "automatic", f"fp{i}", t]
        for i in range(2)
    ]  # fmt: skip
    client.insert(
        f"{_CH_DB}.payments",
        rows,
        column_names=[
            "event_id",
            "payment_id",
            "merchant_id",
            "customer_id",
            "amount_minor",
            "currency",
            "method",
            "card_network",
            "card_bin",
            "bank_code",
            "upi_flow",
            "capture",
            "request_fingerprint",
            "requested_at",
        ],
    )
    yield client
    client.command(f"DROP DATABASE IF EXISTS {_CH_DB}")
    client.close()


@pytest.mark.parametrize(
    ("name", "panel", "query"),
    _panels(Engine.CLICKHOUSE),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_clickhouse_panel_query(ch: Any, name: str, panel: Panel, query: Query) -> None:
    sql = expand_macros(query.sql, query.engine, START, END, INTERVAL_S)
    result = ch.query(sql)
    assert tuple(result.column_names) == query.columns, name
    assert result.result_rows, f"{name}: no rows"


def test_clickhouse_money_is_exact_decimal(ch: Any) -> None:
    (aml,) = [d for d in all_dashboards(_CH_DB) if d.uid == "rizzpay-aml-cases"]
    (query,) = [q for p, q in aml.queries() if "customer_id" in q.columns]
    rows = ch.query(expand_macros(query.sql, query.engine, START, END, INTERVAL_S)).result_rows
    assert rows == [("cust_1", 2, Decimal("1200000"))]


# --- PostgreSQL ------------------------------------------------------------------------------


async def _seed_postgres(conn: asyncpg.Connection) -> None:
    t = NOW - timedelta(minutes=30)
    await conn.execute(
        "INSERT INTO merchants (merchant_id, legal_name, state_code)"
        " VALUES ($1, 'Dash Pvt Ltd', '27')",
        MERCHANT,
    )
    batch = f"""INSERT INTO {PG.SETTLEMENT_BATCHES} (batch_id, merchant_id, currency, cutoff,
        settlement_date, instant, status, hold_reason, line_count, captured_minor, refunds_minor,
        disputes_minor,
        adjustments_minor, fees_minor, gst_minor, reserve_withheld_minor, reserve_released_minor,
        instant_fee_minor, instant_fee_gst_minor, net_minor, created_at, updated_at)
        VALUES ($1, $2, 'INR', $3::timestamptz, $3::date, false, $4, $5, 1, $6::bigint, 0, 0,
                0, $7::bigint, $8::bigint, 0, 0, 0, 0, $6::bigint - $7::bigint - $8::bigint,
                $3, $3)"""
    # ₹1,000.00 captured, ₹20.00 fee, ₹3.60 GST: net ₹976.40.
    await conn.execute(batch, "b_paid", MERCHANT, t, "payout_pending", None, 100_000, 2_000, 360)
    await conn.execute(batch, "b_held", MERCHANT, t, "held", "kyc pending", 5_000, 100, 18)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO journal_entries (entry_id, merchant_id, kind, currency)"
            " VALUES ('je_payout', $1, 'payout_instruction', 'INR')",
            MERCHANT,
        )
    await conn.execute(
        f"""INSERT INTO {PG.SETTLEMENT_PAYOUTS} (batch_id, amount_minor, currency, holder_name,
            beneficiary, ifsc, instruction_entry_id, instructed_at)
            VALUES ('b_paid', 97640, 'INR', 'Dash', 'XXXXXX1234', 'HDFC0001234', 'je_payout',
                    $1)""",
        t,
    )
    mode = await detect_mode(conn)
    events = [
        ("ev1", "payment.requested", 150_000),
        ("ev2", EV_AUTHORIZED, 150_000),
        ("ev3", EV_DECLINED, 99_900),
    ]
    values: dict[str, list[Any]] = {c: [] for c in EVENT_LOG_COLUMNS}
    for eid, et, amt in events:
        row = {
            "event_id": eid,
            "occurred_at": t,
            "event_type": et,
            "schema_version": 1,
            "payment_id": "p1",
            "merchant_id": MERCHANT,
            "amount_minor": amt,
            "currency": "INR",
            "method": "upi",
            "decline_code": None,
            "payload": json.dumps({"event_id": eid}),
        }
        for c in EVENT_LOG_COLUMNS:
            values[c].append(row[c])
    assert await insert_event_log(conn, mode, [values[c] for c in EVENT_LOG_COLUMNS]) == 3
    # Two AML cases: one open, one escalated to an STR draft.
    alerts = [
        Alert(MONTHLY_TOTAL, "2026-10", "customer", f"cust_{i}", 11_00_000_00, 12, {})
        for i in range(2)
    ]
    opened = await open_cases(conn, alerts, now=t)
    await escalate_case(
        conn, opened.opened[0], grounds="test", actor="dash", now=t, settings=AmlSettings()
    )
    lag = ("warehouse.sink", "payments.lifecycle", 0, t, 10, 12, 2)
    for table in (PG.LAG_SAMPLES, PG.LAG_CURRENT):
        await conn.execute(
            f"""INSERT INTO {table} (consumer_group, topic, partition, sampled_at,
                committed_offset, end_offset, lag) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            *lag,
        )


def _pg_panel_ids() -> list[str]:
    return [name for name, _, _ in _panels(Engine.POSTGRES)]


async def test_every_postgres_panel_query(pg: asyncpg.Pool) -> None:
    """One database for all PostgreSQL panels (a migrated database per test is the slow part);
    every failure is collected so one run names every broken panel."""
    async with pg.acquire() as conn:
        await _seed_postgres(conn)
        failures = []
        for name, _panel, query in _panels(Engine.POSTGRES):
            sql = expand_macros(query.sql, query.engine, START, END, INTERVAL_S)
            try:
                stmt = await conn.prepare(sql)
                columns = tuple(a.name for a in stmt.get_attributes())
                rows = await stmt.fetch()
            except asyncpg.PostgresError as exc:
                failures.append(f"{name}: {exc}")
                continue
            if columns != query.columns:
                failures.append(f"{name}: columns {columns} != {query.columns}")
            if not rows:
                failures.append(f"{name}: no rows")
    assert not failures, "\n".join(failures)
    assert len(_pg_panel_ids()) >= 7


async def test_postgres_rupees_are_exact_decimals(pg: asyncpg.Pool) -> None:
    async with pg.acquire() as conn:
        await _seed_postgres(conn)
        (finance,) = [d for d in all_dashboards(_CH_DB) if d.uid == "rizzpay-finance-settlement"]
        (query,) = [q for _, q in finance.queries() if "captured_rupees" in q.columns]
        row = await conn.fetchrow(expand_macros(query.sql, query.engine, START, END, INTERVAL_S))
    assert row is not None
    assert row["captured_rupees"] == Decimal("1000.00")
    assert row["gst_rupees"] == Decimal("3.60")
    assert row["net_rupees"] == Decimal("976.40")
    assert all(isinstance(v, Decimal) for v in row.values())


def test_every_dashboard_has_a_query_or_is_marked_pending() -> None:
    dashboards: tuple[Dashboard, ...] = all_dashboards(_CH_DB)
    assert len(dashboards) == 4
    for d in dashboards:
        assert d.queries() or d.pending, d.uid
