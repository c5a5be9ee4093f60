"""``rizzpay dashboards``: Grafana dashboards as code (``dashboards/``).

* ``rizzpay dashboards push --url URL`` creates or updates the RizzPay folder, the dashboards
  and (when their DSNs are set) the data sources through Grafana's API.  Credentials come only
  from ``RIZZPAY_GRAFANA_TOKEN`` or ``RIZZPAY_GRAFANA_USER`` + ``RIZZPAY_GRAFANA_PASSWORD``;
  without them it exits with status 2 before contacting anything.
* ``rizzpay dashboards export`` writes the file-provisioning JSON and YAML under
  ``dashboards/provisioning/`` (mounted by docker-compose).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboards.definitions import all_dashboards
from dashboards.export import PROVISIONING_DIR, export
from dashboards.push import (
    GrafanaSettings,
    MissingCredentials,
    connect,
    datasource_payloads,
    push,
)
from warehouse.migrate import CLICKHOUSE_DATABASE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("dashboards", help="Grafana dashboards: push or export")
    commands = parser.add_subparsers(dest="dashboards_command", required=True)

    push_cmd = commands.add_parser("push", help="create/update dashboards in a Grafana")
    push_cmd.add_argument("--url", help="Grafana base URL (default RIZZPAY_GRAFANA_URL)")
    push_cmd.add_argument("--clickhouse-database", default=CLICKHOUSE_DATABASE)
    push_cmd.set_defaults(handler=run_push)

    export_cmd = commands.add_parser("export", help="write file-provisioning JSON and YAML")
    export_cmd.add_argument("--out", type=Path, default=PROVISIONING_DIR)
    export_cmd.add_argument("--clickhouse-database", default=CLICKHOUSE_DATABASE)
    export_cmd.set_defaults(handler=run_export)


def run_push(args: argparse.Namespace) -> int:
    settings = GrafanaSettings()
    try:
        api = connect(settings, args.url)
        sources = datasource_payloads(settings)
    except (MissingCredentials, ValueError) as exc:
        print(f"rizzpay dashboards push: {exc}", file=sys.stderr)
        return 2
    report = push(api, all_dashboards(args.clickhouse_database), sources)
    for line in report.lines():
        print(line)
    if not sources:
        print("data sources not pushed: RIZZPAY_GRAFANA_POSTGRES_DSN/_CLICKHOUSE_DSN unset")
    return 0


def run_export(args: argparse.Namespace) -> int:
    for path in export(args.out, all_dashboards(args.clickhouse_database)):
        print(path)
    return 0
