"""Migrations re-run cleanly, and the database itself guards the ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import clickhouse_connect
import pytest

from warehouse.migrate import load, migrate_clickhouse, migrate_postgres

pytestmark = pytest.mark.integration


async def test_postgres_migrations_rerun_as_a_no_op(pg_dsn: str, pg: asyncpg.Pool) -> None:
    assert await migrate_postgres(pg_dsn) == []  # the template already has them all
    versions = [r["version"] for r in await pg.fetch("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in load("postgres")]


INSERT_POSTINGS = """
    INSERT INTO postings (posting_id, entry_id, account_id, amount_minor, currency)
    SELECT *, 'INR' FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])"""


async def _entry(conn: asyncpg.Connection, entry_id: str) -> None:
    await conn.execute(
        "INSERT INTO ledger_accounts (account_id, owner, kind, currency) VALUES "
        "('platform:processor_receivable:INR', 'platform', 'processor_receivable', 'INR'), "
        "('merchant:m1:pending:INR', 'm1', 'pending', 'INR') ON CONFLICT DO NOTHING"
    )
    await conn.execute(
        "INSERT INTO journal_entries (entry_id, kind, currency) VALUES ($1, 'manual', 'INR')",
        entry_id,
    )


async def test_database_refuses_an_unbalanced_entry(pg: asyncpg.Pool) -> None:
    async with pg.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
            async with conn.transaction():
                await _entry(conn, "e-unbalanced")
                await conn.execute(
                    INSERT_POSTINGS,
                    ["p1", "p2"],
                    ["e-unbalanced"] * 2,
                    ["platform:processor_receivable:INR", "merchant:m1:pending:INR"],
                    [100, -99],
                )
        assert await conn.fetchval("SELECT count(*) FROM postings") == 0


async def test_postings_cannot_be_edited_or_deleted(pg: asyncpg.Pool) -> None:
    async with pg.acquire() as conn:
        async with conn.transaction():
            await _entry(conn, "e-ok")
            await conn.execute(
                INSERT_POSTINGS,
                ["p1", "p2"],
                ["e-ok"] * 2,
                ["platform:processor_receivable:INR", "merchant:m1:pending:INR"],
                [100, -100],
            )
        for sql in (
            "UPDATE postings SET amount_minor = 1 WHERE posting_id = 'p1'",
            "DELETE FROM postings WHERE posting_id = 'p2'",
            "TRUNCATE postings CASCADE",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT sum(amount_minor) FROM postings") == 0
        assert await conn.fetchval("SELECT count(*) FROM postings") == 2


def test_clickhouse_migrations_rerun_and_loads_are_idempotent(tmp_path: Path) -> None:
    client = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'ch'}")
    database = f"t_{uuid.uuid4().hex[:8]}"
    assert migrate_clickhouse(client, database) == [m.name for m in load("clickhouse")]
    assert migrate_clickhouse(client, database) == []

    row = [
        "evt_1",
        "payment.authorized",
        "pay_1",
        "m1",
        149900,
        "INR",
        "upi",
        "",
        datetime(2026, 11, 1, 10, tzinfo=UTC),
    ]
    columns = [
        "event_id",
        "event_type",
        "payment_id",
        "merchant_id",
        "amount_minor",
        "currency",
        "method",
        "decline_code",
        "occurred_at",
    ]
    for _ in range(2):  # a retried load
        client.insert(f"{database}.payment_events", [row], column_names=columns)
    total = client.query(
        f"SELECT count(), sum(amount_minor) FROM {database}.payment_events FINAL"
    ).result_rows
    assert total == [(1, 149900)]


async def test_hash_chain_exposes_an_edit_made_behind_the_triggers_back(pg: asyncpg.Pool) -> None:
    async with pg.acquire() as conn:
        for n in range(3):
            async with conn.transaction():
                await _entry(conn, f"e-{n}")
                await conn.execute(
                    INSERT_POSTINGS,
                    [f"e-{n}:dr", f"e-{n}:cr"],
                    [f"e-{n}"] * 2,
                    ["platform:processor_receivable:INR", "merchant:m1:pending:INR"],
                    [100 + n, -100 - n],
                )
        chain = await conn.fetch("SELECT seq, entry_id FROM ledger_chain ORDER BY seq")
        assert [(r["seq"], r["entry_id"]) for r in chain] == [(1, "e-0"), (2, "e-1"), (3, "e-2")]
        assert await conn.fetch("SELECT * FROM ledger_verify_chain()") == []

        # Someone with the table owner's rights switches the guard off and edits history.
        await conn.execute("ALTER TABLE postings DISABLE TRIGGER postings_append_only")
        await conn.execute(
            "UPDATE postings SET amount_minor = amount_minor + 5000 WHERE entry_id = 'e-1'"
        )
        await conn.execute("ALTER TABLE postings ENABLE TRIGGER postings_append_only")
        problems = await conn.fetch("SELECT seq, entry_id, problem FROM ledger_verify_chain()")
        assert [tuple(r) for r in problems] == [(2, "e-1", "entry or postings changed")]
