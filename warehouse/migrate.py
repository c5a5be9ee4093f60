"""Numbered, re-runnable migrations for PostgreSQL and ClickHouse.

Files are ``NNNN_name.sql`` under ``migrations/<engine>/``.  Each applied file is recorded with
its SHA-256; running again applies only what is new, and a recorded file whose text has since
changed is refused (edit history with a new migration, never in place).

A PostgreSQL migration whose DDL must branch on the server (TimescaleDB or not) is a Python
file ``NNNN_name.py`` defining ``async def apply(conn)`` (run in the migration's transaction)
and ``FINGERPRINT``, the text whose checksum is recorded together with the file's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import clickhouse_connect

from warehouse.topics import ensure_topics

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
CLICKHOUSE_DATABASE = "rizzpay"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.(sql|py)$")
# Any constant will do; it only has to be the same in every process that migrates.
_PG_ADVISORY_LOCK_ID = 0x52495A5A


class MigrationDrift(RuntimeError):
    """An applied migration's file changed after it was applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    # Python migrations only: runs the migration on an asyncpg connection.
    apply: Callable[[Any], Awaitable[Any]] | None = None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(engine: str) -> list[Migration]:
    """The migrations of ``engine`` (``postgres`` or ``clickhouse``) in version order."""
    found = []
    paths = [p for p in (MIGRATIONS_DIR / engine).iterdir() if p.suffix in (".sql", ".py")]
    for path in sorted(paths):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path} is not named NNNN_name.sql (or .py)")
        if path.suffix == ".py":
            found.append(_python_migration(int(match.group(1)), path))
        else:
            found.append(Migration(int(match.group(1)), path.stem, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {engine}: {versions}")
    return found


def _python_migration(version: int, path: Path) -> Migration:
    spec = importlib.util.spec_from_file_location(f"rizzpay_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = f"{path.read_text()}\n{module.FINGERPRINT}"
    return Migration(version, path.stem, text, apply=module.apply)


def _pending(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    todo = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is None:
            todo.append(migration)
        elif recorded != migration.checksum:
            raise MigrationDrift(f"{migration.name} changed after it was applied")
    return todo


async def migrate_postgres(dsn: str) -> list[str]:
    """Apply pending PostgreSQL migrations, each in its own transaction.  Returns their names."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _PG_ADVISORY_LOCK_ID)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        todo = _pending(load("postgres"), {r["version"]: r["checksum"] for r in rows})
        for migration in todo:
            async with conn.transaction():
                if migration.apply is not None:
                    await migration.apply(conn)
                else:
                    await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        return [m.name for m in todo]
    finally:
        await conn.close()


def migrate_clickhouse(client: Any, database: str) -> list[str]:
    """Apply pending ClickHouse migrations to ``database`` through a clickhouse-connect client.

    ClickHouse has no transactions, so every statement must be idempotent by itself
    (``IF NOT EXISTS``); a migration interrupted half-way is simply run again.
    """
    if not _IDENTIFIER.match(database):
        raise ValueError(f"not a ClickHouse database name: {database!r}")
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"""CREATE TABLE IF NOT EXISTS {database}.schema_migrations
            (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC'))
            ENGINE = ReplacingMergeTree ORDER BY version"""
    )
    # ``database`` is checked against _IDENTIFIER above; identifiers cannot be bound parameters.
    rows = client.query(f"SELECT version, checksum FROM {database}.schema_migrations FINAL")  # noqa: S608
    todo = _pending(load("clickhouse"), {int(v): str(c) for v, c in rows.result_rows})
    for migration in todo:
        if migration.apply is not None:
            raise ValueError(f"{migration.name}: Python migrations are for PostgreSQL only")
        for statement in _statements(migration.sql):
            client.command(statement.replace("{db}", database))
        client.insert(
            f"{database}.schema_migrations",
            [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
    return [m.name for m in todo]


def _statements(sql: str) -> list[str]:
    """The statements of a ClickHouse migration file: full-line ``--`` comments dropped first
    (they may contain ``;``), then split on ``;``."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


@dataclass(frozen=True)
class MigrationReport:
    postgres: list[str]
    clickhouse: list[str]
    topics: list[str]


def migrate_all(
    pg_dsn: str,
    clickhouse_dsn: str | None,
    kafka_bootstrap: str,
    topic_prefix: str = "",
    clickhouse_database: str = CLICKHOUSE_DATABASE,
) -> MigrationReport:
    """Everything a fresh stack needs before the API and workers start: PostgreSQL and (unless
    ``clickhouse_dsn`` is None) ClickHouse migrations, and the registry's Kafka topics."""
    postgres = asyncio.run(migrate_postgres(pg_dsn))
    clickhouse: list[str] = []
    if clickhouse_dsn is not None:
        client = clickhouse_connect.get_client(dsn=clickhouse_dsn)
        try:
            clickhouse = migrate_clickhouse(client, clickhouse_database)
        finally:
            client.close()
    return MigrationReport(postgres, clickhouse, ensure_topics(kafka_bootstrap, topic_prefix))
