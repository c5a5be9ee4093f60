"""``rizzpay migrate``: PostgreSQL and ClickHouse migrations, and the registry's Kafka topics."""

from __future__ import annotations

import argparse

from models.config import ServiceEndpoints
from warehouse.migrate import CLICKHOUSE_DATABASE, migrate_all


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("migrate", help="apply database migrations and create Kafka topics")
    parser.add_argument("--clickhouse-database", default=CLICKHOUSE_DATABASE)
    parser.add_argument("--skip-clickhouse", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    endpoints = ServiceEndpoints()
    report = migrate_all(
        endpoints.pg_dsn,
        None if args.skip_clickhouse else endpoints.clickhouse_dsn,
        endpoints.kafka_bootstrap,
        endpoints.topic_prefix,
        args.clickhouse_database,
    )
    print(f"postgres: {len(report.postgres)} applied {report.postgres}")
    print(f"clickhouse: {len(report.clickhouse)} applied {report.clickhouse}")
    print(f"kafka: {len(report.topics)} topics created {report.topics}")
    return 0
