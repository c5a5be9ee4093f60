"""``rizzpay migrate``: PostgreSQL and ClickHouse migrations, and the registry's Kafka topics."""

from __future__ import annotations

import argparse
import asyncio

import clickhouse_connect

from models.config import ServiceEndpoints
from warehouse.migrate import migrate_clickhouse, migrate_postgres
from warehouse.topics import ensure_topics


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("migrate", help="apply database migrations and create Kafka topics")
    parser.add_argument("--clickhouse-database", default="rizzpay")
    parser.add_argument("--skip-clickhouse", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    endpoints = ServiceEndpoints()
    applied = asyncio.run(migrate_postgres(endpoints.pg_dsn))
    print(f"postgres: {len(applied)} applied {applied}")
    if not args.skip_clickhouse:
        client = clickhouse_connect.get_client(dsn=endpoints.clickhouse_dsn)
        applied = migrate_clickhouse(client, args.clickhouse_database)
        client.close()
        print(f"clickhouse: {len(applied)} applied {applied}")
    created = ensure_topics(endpoints.kafka_bootstrap, endpoints.topic_prefix)
    print(f"kafka: {len(created)} topics created {created}")
    return 0
