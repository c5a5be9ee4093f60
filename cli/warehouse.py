"""``rizzpay warehouse``: the sink from Kafka into the warehouse, and its operations.

* ``rizzpay warehouse sink`` runs the sink loop (``warehouse.sinks.consumer``): the one process
  that owns an embedded (``chdb://``) ClickHouse data path.  It migrates its ClickHouse database
  on start.  ``--stop-when-caught-up`` exits once every assigned partition has lag 0.  It also
  runs the AML rules on their schedule (``warehouse.aml.schedule``, docs/aml.md): the open month
  every ``--aml-interval-s``, the previous month once after it closed; ``--no-aml`` turns it off.
* ``rizzpay warehouse lag`` prints the sink's last sampled lag per partition (from PostgreSQL).
* ``rizzpay warehouse refresh-rollups --since ... --until ...`` rebuilds the per-minute rollup.
* ``rizzpay warehouse query "SQL"`` runs one ClickHouse query and prints its rows as JSON
  lines; with an embedded engine it fails while the sink holds the data path.

Endpoints and the topic prefix come from ``RIZZPAY_*`` settings (``models.config``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import clickhouse_connect
import orjson

from models.config import ServiceEndpoints
from warehouse.aml.schedule import AmlSchedule
from warehouse.aml.settings import AmlSettings
from warehouse.migrate import CLICKHOUSE_DATABASE
from warehouse.sinks.consumer import SinkSettings, WarehouseSink
from warehouse.sinks.postgres_sink import sink_lag
from warehouse.timeseries import refresh_rollups


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("warehouse", help="sink Kafka into ClickHouse and PostgreSQL")
    commands = parser.add_subparsers(dest="warehouse_command", required=True)

    sink = commands.add_parser("sink", help="run the warehouse sink")
    sink.add_argument("--group", help="consumer group (default <prefix>warehouse.sink)")
    sink.add_argument("--clickhouse-database", default=CLICKHOUSE_DATABASE)
    sink.add_argument("--batch-max-messages", type=int, default=1000)
    sink.add_argument("--batch-max-wait-ms", type=int, default=1000)
    sink.add_argument("--lag-interval-s", type=float, default=5.0)
    sink.add_argument("--stop-when-caught-up", action="store_true")
    sink.add_argument("--facts-interval-s", type=float, default=5.0)
    sink.add_argument(
        "--replay-facts", action="store_true", help="copy ledger facts again from the start"
    )
    sink.add_argument("--no-aml", action="store_true", help="do not run the AML schedule")
    sink.add_argument(
        "--aml-interval-s", type=float, default=3600.0, help="run the open month this often"
    )
    sink.add_argument(
        "--aml-final-grace-s",
        type=float,
        default=3600.0,
        help="run a closed month once, this long after it closed",
    )
    sink.add_argument("--log-level", default="info")
    sink.set_defaults(handler=run_sink)

    lag = commands.add_parser("lag", help="print the sink's last sampled consumer lag")
    lag.add_argument("--group", help="consumer group (default <prefix>warehouse.sink)")
    lag.set_defaults(handler=run_lag)

    refresh = commands.add_parser("refresh-rollups", help="rebuild payment_metrics_minute")
    refresh.add_argument("--since", type=_instant, help="ISO 8601 (default: 2 hours ago)")
    refresh.add_argument("--until", type=_instant, help="ISO 8601 (default: now)")
    refresh.set_defaults(handler=run_refresh)

    query = commands.add_parser("query", help="run one ClickHouse query, print JSON lines")
    query.add_argument("sql")
    query.set_defaults(handler=run_query)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _settings(args: argparse.Namespace, endpoints: ServiceEndpoints) -> SinkSettings:
    return SinkSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        pg_dsn=endpoints.pg_dsn,
        clickhouse_dsn=endpoints.clickhouse_dsn,
        clickhouse_database=getattr(args, "clickhouse_database", CLICKHOUSE_DATABASE),
        topic_prefix=endpoints.topic_prefix,
        consumer_group=args.group,
        batch_max_messages=getattr(args, "batch_max_messages", 1000),
        batch_max_wait_s=getattr(args, "batch_max_wait_ms", 1000) / 1000,
        lag_interval_s=getattr(args, "lag_interval_s", 5.0),
        stop_when_caught_up=getattr(args, "stop_when_caught_up", False),
        facts_interval_s=getattr(args, "facts_interval_s", 5.0),
        replay_facts=getattr(args, "replay_facts", False),
        aml=None if getattr(args, "no_aml", True) else AmlSettings(),
        aml_schedule=AmlSchedule(
            interval=timedelta(seconds=getattr(args, "aml_interval_s", 3600.0)),
            final_grace=timedelta(seconds=getattr(args, "aml_final_grace_s", 3600.0)),
        ),
    )


def run_sink(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings(args, ServiceEndpoints())

    async def main() -> None:
        sink = await WarehouseSink.open(settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, sink.stop)
        await sink.run()
        print(
            f"written {sink.written}, dead-lettered {sink.dead_lettered}, "
            f"postings copied {sink.postings_copied}, "
            f"settlement rows copied {sink.settlements_copied}"
        )

    asyncio.run(main())
    return 0


def run_lag(args: argparse.Namespace) -> int:
    endpoints = ServiceEndpoints()
    group = _settings(args, endpoints).group_id

    async def main() -> dict[str, int]:
        conn = await asyncpg.connect(endpoints.pg_dsn)
        try:
            return await sink_lag(conn, group)
        finally:
            await conn.close()

    lags = asyncio.run(main())
    for partition, lag in lags.items():
        print(f"{partition}\t{lag}")
    print(f"total\t{sum(lags.values())}")
    return 0


def run_refresh(args: argparse.Namespace) -> int:
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(hours=2)

    async def main() -> None:
        conn = await asyncpg.connect(ServiceEndpoints().pg_dsn)
        try:
            await refresh_rollups(conn, since, until)
        finally:
            await conn.close()

    asyncio.run(main())
    print(f"payment_metrics_minute rebuilt for [{since.isoformat()}, {until.isoformat()})")
    return 0


def _json_default(value: object) -> str:
    if isinstance(value, bytes):  # FixedString columns, padded with NUL bytes
        return value.rstrip(b"\0").decode("utf-8", "replace")
    return str(value)  # Decimal, UUID, IP addresses: exact text, never a float


def run_query(args: argparse.Namespace) -> int:
    client = clickhouse_connect.get_client(dsn=ServiceEndpoints().clickhouse_dsn)
    try:
        result = client.query(args.sql)
        for row in result.result_rows:
            record = dict(zip(result.column_names, row, strict=True))
            line = orjson.dumps(record, default=_json_default)
            sys.stdout.buffer.write(line + b"\n")
    finally:
        client.close()
    return 0
