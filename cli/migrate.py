"""``rizzpay migrate``: PostgreSQL and ClickHouse migrations, and the registry's Kafka topics."""

from __future__ import annotations

import argparse

from deploy.processes import running_pid
from models.config import ServiceEndpoints
from warehouse.migrate import CLICKHOUSE_DATABASE, migrate_all


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("migrate", help="apply database migrations and create Kafka topics")
    parser.add_argument("--clickhouse-database", default=CLICKHOUSE_DATABASE)
    parser.add_argument("--skip-clickhouse", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    endpoints = ServiceEndpoints()
    skip_clickhouse = args.skip_clickhouse
    sink = running_pid(endpoints.home, "warehouse-sink")
    if not skip_clickhouse and sink is not None and endpoints.clickhouse_dsn.startswith("chdb://"):
        # The running sink owns the embedded engine's path (one process only) and applies the
        # ClickHouse migrations itself whenever it starts.
        print(f"clickhouse: left to the running warehouse sink (pid {sink})")
        skip_clickhouse = True
    report = migrate_all(
        endpoints.pg_dsn,
        None if skip_clickhouse else endpoints.clickhouse_dsn,
        endpoints.kafka_bootstrap,
        endpoints.topic_prefix,
        args.clickhouse_database,
    )
    print(f"postgres: {len(report.postgres)} applied {report.postgres}")
    if not skip_clickhouse:
        print(f"clickhouse: {len(report.clickhouse)} applied {report.clickhouse}")
    print(f"kafka: {len(report.topics)} topics created {report.topics}")
    return 0
