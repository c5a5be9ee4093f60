"""Write the dashboards as Grafana file-provisioning files.

``dashboards/provisioning/`` (mounted by docker-compose into the Grafana service):

* ``dashboards/<uid>.json`` — each dashboard's JSON model (:func:`dashboards.model.dashboard_json`);
* ``dashboards/rizzpay.yaml`` — the file provider that loads them into the RizzPay folder;
* ``datasources/rizzpay.yaml`` — the PostgreSQL and ClickHouse data sources with the uids the
  dashboards use.  Secrets are not written: Grafana expands ``$__env{NAME}`` from its own
  environment when it reads the file (the compose variables ``POSTGRES_*``, ``CLICKHOUSE_*``).

Both provisioned kinds stay editable through the API (``allowUiUpdates``, ``editable``) so that
``rizzpay dashboards push`` against the same Grafana updates them instead of failing; the file
wins again the next time Grafana rescans it.  The output is deterministic: the same definitions
always give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dashboards.definitions import FOLDER_TITLE, FOLDER_UID, SOURCES, all_dashboards
from dashboards.model import Dashboard, Engine, dashboard_json

PROVISIONING_DIR = Path(__file__).resolve().parent / "provisioning"
# Where docker-compose mounts PROVISIONING_DIR's subfolders inside the Grafana container.
CONTAINER_DIR = "/etc/grafana/provisioning"
PROVIDER_FILE = "rizzpay.yaml"
DATASOURCES_FILE = "rizzpay.yaml"
# How the compose Grafana reaches the databases (service names on the compose network).
COMPOSE_POSTGRES_HOST = "timescaledb:5432"
COMPOSE_CLICKHOUSE_HOST = "clickhouse"
COMPOSE_CLICKHOUSE_PORT = 8123


def provider_config() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "rizzpay",
                "orgId": 1,
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": True,
                "updateIntervalSeconds": 60,
                "options": {"path": f"{CONTAINER_DIR}/dashboards"},
            }
        ],
    }


def datasources_config() -> dict[str, Any]:
    pg, ch = SOURCES[Engine.POSTGRES], SOURCES[Engine.CLICKHOUSE]
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "uid": pg.uid,
                "name": pg.name,
                "type": pg.engine.value,
                "access": "proxy",
                "url": COMPOSE_POSTGRES_HOST,
                "user": "$__env{POSTGRES_USER}",
                "editable": True,
                "jsonData": {
                    "database": "$__env{POSTGRES_DB}",
                    "sslmode": "disable",
                    "postgresVersion": 1600,
                    "timescaledb": True,
                },
                "secureJsonData": {"password": "$__env{POSTGRES_PASSWORD}"},
            },
            {
                "uid": ch.uid,
                "name": ch.name,
                "type": ch.engine.value,
                "editable": True,
                "jsonData": {
                    "host": COMPOSE_CLICKHOUSE_HOST,
                    "port": COMPOSE_CLICKHOUSE_PORT,
                    "protocol": "http",
                    "secure": False,
                    "username": "$__env{CLICKHOUSE_USER}",
                    "defaultDatabase": "$__env{CLICKHOUSE_DB}",
                },
                "secureJsonData": {"password": "$__env{CLICKHOUSE_PASSWORD}"},
            },
        ],
    }


def rendered_files(dashboards: Sequence[Dashboard]) -> dict[str, str]:
    """Relative path under the provisioning folder → file text."""
    files = {
        f"dashboards/{d.uid}.json": json.dumps(
            dashboard_json(d, SOURCES), indent=2, sort_keys=True, ensure_ascii=False
        )
        + "\n"
        for d in dashboards
    }
    files[f"dashboards/{PROVIDER_FILE}"] = yaml.safe_dump(provider_config(), sort_keys=False)
    files[f"datasources/{DATASOURCES_FILE}"] = yaml.safe_dump(datasources_config(), sort_keys=False)
    return files


def export(
    out_dir: Path = PROVISIONING_DIR, dashboards: Sequence[Dashboard] | None = None
) -> list[Path]:
    """Write every file (replacing stale dashboard JSON of ours); returns the paths written."""
    files = rendered_files(all_dashboards() if dashboards is None else dashboards)
    written = []
    for rel, text in sorted(files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    keep = {out_dir / rel for rel in files}
    for stale in sorted((out_dir / "dashboards").glob("rizzpay-*.json")):
        if stale not in keep:
            stale.unlink()
    return written
