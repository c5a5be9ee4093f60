"""Dashboards as code: the models, macro expansion, the exported files, and push against a fake
Grafana HTTP API on 127.0.0.1 (grafana-client's real HTTP stack, no network beyond loopback)."""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from cli import dashboards as cli_dashboards
from dashboards.definitions import (
    CLICKHOUSE_SOURCE,
    FOLDER_UID,
    PENDING_AML_TABLES,
    POSTGRES_SOURCE,
    SOURCES,
    all_dashboards,
)
from dashboards.export import PROVISIONING_DIR, export, rendered_files
from dashboards.model import (
    Dashboard,
    Engine,
    Panel,
    PanelKind,
    Query,
    Shape,
    dashboard_json,
    expand_macros,
)
from dashboards.push import (
    GrafanaSettings,
    MissingCredentials,
    clickhouse_datasource,
    connect,
    datasource_payloads,
    postgres_datasource,
    push,
)

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
END = START + timedelta(days=1)

# --- definitions and rendering ----------------------------------------------------------------


def test_four_dashboards_with_unique_uids_and_titles() -> None:
    dashboards = all_dashboards()
    assert [d.uid for d in dashboards] == [
        "rizzpay-finance-settlement",
        "rizzpay-fraud-operations",
        "rizzpay-aml-cases",
        "rizzpay-platform-health",
    ]
    for d in dashboards:
        titles = [p.title for p in d.panels]
        assert len(set(titles)) == len(titles), d.uid


def test_every_query_expands_to_sql_without_macros() -> None:
    for d in all_dashboards():
        for panel, query in d.queries():
            sql = expand_macros(query.sql, query.engine, START, END, 300)
            assert "$__" not in sql, panel.title
            if query.engine is Engine.CLICKHOUSE:
                assert " FINAL" in query.sql, f"{panel.title}: ReplacingMergeTree needs FINAL"
                assert "$__timeFilter(" in query.sql, panel.title


def test_macro_expansion_matches_grafana() -> None:
    pg = expand_macros(
        "SELECT $__timeGroupAlias(t, $__interval), 1 FROM x WHERE $__timeFilter(t)",
        Engine.POSTGRES,
        START,
        END,
        60,
    )
    assert pg == (
        'SELECT floor(extract(epoch from t)/60)*60 AS "time", 1 FROM x '
        "WHERE t BETWEEN '2026-11-01T00:00:00+00:00' AND '2026-11-02T00:00:00+00:00'"
    )
    ch = expand_macros(
        "SELECT toStartOfInterval(t, INTERVAL $__interval_s second) FROM x WHERE $__timeFilter(t)",
        Engine.CLICKHOUSE,
        START,
        END,
        60,
    )
    lo, hi = int(START.timestamp()), int(END.timestamp())
    assert ch == (
        "SELECT toStartOfInterval(t, INTERVAL 60 second) FROM x "
        f"WHERE t >= toDateTime({lo}) AND t <= toDateTime({hi})"
    )
    with pytest.raises(ValueError, match=r"\$__unixEpochFilter"):
        expand_macros("WHERE $__unixEpochFilter(t)", Engine.POSTGRES, START, END, 60)
    with pytest.raises(ValueError, match="timezone-aware"):
        expand_macros("SELECT 1", Engine.POSTGRES, START.replace(tzinfo=None), END, 60)


def test_money_in_rupees_is_divided_from_integer_paise_as_decimal() -> None:
    for d in all_dashboards():
        for panel, query in d.queries():
            for column in query.columns:
                if not column.endswith("_rupees"):
                    continue
                sql = query.sql.lower()
                assert "float" not in sql, f"{panel.title}: no float touches money"
                if query.engine is Engine.POSTGRES:
                    assert f"/ 100.0 as {column}" in sql, f"{panel.title}.{column}"
                else:
                    assert re.search(rf"todecimal128\([^;]*\)\s*/ 100\s+as {column}", sql), (
                        f"{panel.title}.{column}"
                    )


def test_table_names_come_from_the_schema_modules() -> None:
    """The dashboards name only tables the migrations create (and none still pending)."""
    migrations = (
        "\n".join(p.read_text() for p in (REPO / "warehouse" / "migrations").rglob("*.sql"))
        + (REPO / "warehouse" / "timeseries.py").read_text()
    )
    for d in all_dashboards():
        for panel, query in d.queries():
            for table in re.findall(r"\b(?:FROM|JOIN)\s+([\w.]+)", query.sql):
                name = table.split(".")[-1]
                assert re.search(rf"\b{name}\b", migrations), f"{panel.title}: {table}"
                assert name not in PENDING_AML_TABLES


def test_query_and_panel_invariants() -> None:
    with pytest.raises(ValueError, match="time column first"):
        Query(Engine.POSTGRES, "SELECT 1", ("x", "time"), Shape.TIME_SERIES)
    with pytest.raises(ValueError, match="name the columns"):
        Query(Engine.POSTGRES, "SELECT 1", ())
    with pytest.raises(ValueError, match="text panels"):
        Panel("t", PanelKind.TABLE)
    with pytest.raises(ValueError, match="text panels"):
        Panel("t", PanelKind.TEXT, Query(Engine.POSTGRES, "SELECT 1", ("a",)))


def test_dashboard_json_layout_and_targets() -> None:
    for d in all_dashboards():
        model = dashboard_json(d, SOURCES)
        assert model["uid"] == d.uid
        ids = [p["id"] for p in model["panels"]]
        assert len(set(ids)) == len(ids)
        for panel, source in zip(model["panels"], d.panels, strict=True):
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24
            if source.query is None:
                assert panel["type"] == "text" and panel["options"]["content"]
                continue
            (target,) = panel["targets"]
            assert target["rawSql"] == source.query.sql
            assert target["datasource"] == SOURCES[source.query.engine].ref()
            if source.query.engine is Engine.CLICKHOUSE:
                assert target["format"] == (0 if source.query.shape is Shape.TIME_SERIES else 1)
            else:
                assert target["format"] == source.query.shape.value


def test_pending_parts_are_marked() -> None:
    by_uid = {d.uid: d for d in all_dashboards()}
    aml = by_uid["rizzpay-aml-cases"]
    assert set(aml.pending) == set(PENDING_AML_TABLES) == set()
    read = " ".join(q.sql for _, q in aml.queries())
    assert all(t in read for t in ("aml_alerts", "aml_cases", "aml_str_drafts"))
    assert "dead letters" in by_uid["rizzpay-platform-health"].pending


# --- export -----------------------------------------------------------------------------------


def test_exported_files_in_the_repository_are_current() -> None:
    for rel, text in rendered_files(all_dashboards()).items():
        path = PROVISIONING_DIR / rel
        assert path.exists(), f"{rel} missing: run `rizzpay dashboards export`"
        assert path.read_text(encoding="utf-8") == text, f"{rel} stale: run export"


def test_export_writes_json_and_provisioning_yaml(tmp_path: Path) -> None:
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "rizzpay-old.json").write_text("{}")
    written = export(tmp_path)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert "dashboards/rizzpay.yaml" in names and "datasources/rizzpay.yaml" in names
    assert not (tmp_path / "dashboards" / "rizzpay-old.json").exists()
    for d in all_dashboards():
        model = json.loads((tmp_path / "dashboards" / f"{d.uid}.json").read_text())
        assert model == dashboard_json(d, SOURCES)
    provider = yaml.safe_load((tmp_path / "dashboards" / "rizzpay.yaml").read_text())
    assert provider["providers"][0]["folderUid"] == FOLDER_UID
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/provisioning/dashboards"
    sources = yaml.safe_load((tmp_path / "datasources" / "rizzpay.yaml").read_text())
    assert {s["uid"] for s in sources["datasources"]} == {
        POSTGRES_SOURCE.uid,
        CLICKHOUSE_SOURCE.uid,
    }
    text = (tmp_path / "datasources" / "rizzpay.yaml").read_text()
    for s in sources["datasources"]:
        assert s["secureJsonData"]["password"].startswith("$__env{"), "no secret in the file"
    assert "change-me" not in text


def test_compose_mounts_the_provisioning_folders() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    for sub in ("dashboards", "datasources"):
        assert f"./dashboards/provisioning/{sub}:/etc/grafana/provisioning/{sub}:ro" in volumes


# --- push against a fake Grafana --------------------------------------------------------------


class FakeGrafana:
    """Just enough of Grafana's HTTP API for push: folders, dashboards, data sources by uid."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, body: Any, auth: str | None) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path, auth))
            if auth is None:
                return 401, {"message": "Unauthorized"}
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "folders"]:
                return self._folders(method, parts[2:], body)
            if parts[:2] == ["api", "datasources"]:
                return self._datasources(method, parts[2:], body)
            if parts[:2] == ["api", "dashboards"]:
                return self._dashboards(method, parts[2:], body)
            return 404, {"message": "not found"}

    def _folders(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and len(rest) == 1:
            found = self.folders.get(rest[0])
            return (200, found) if found else (404, {"message": "folder not found"})
        if method == "POST" and not rest:
            if body["uid"] in self.folders:
                return 409, {"message": "folder exists"}
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "version": 1}
            return 200, self.folders[body["uid"]]
        if method == "PUT" and len(rest) == 1 and rest[0] in self.folders:
            folder = self.folders[rest[0]]
            folder.update(title=body["title"], version=folder["version"] + 1)
            return 200, folder
        return 400, {"message": "bad folder request"}

    def _datasources(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and rest[:1] == ["uid"]:
            found = self.datasources.get(rest[1])
            return (200, found) if found else (404, {"message": "Data source not found"})
        if method == "POST" and not rest:
            if body["uid"] in self.datasources or any(
                d["name"] == body["name"] for d in self.datasources.values()
            ):
                return 409, {"message": "data source with the same name already exists"}
            self.datasources[body["uid"]] = body
            return 200, {"datasource": body}
        if method == "PUT" and rest[:1] == ["uid"] and rest[1] in self.datasources:
            self.datasources[rest[1]] = body
            return 200, {"datasource": body}
        return 400, {"message": "bad data source request"}

    def _dashboards(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and rest[:1] == ["uid"]:
            found = self.dashboards.get(rest[1])
            return (200, found) if found else (404, {"message": "Dashboard not found"})
        if method == "POST" and rest == ["db"]:
            model = body["dashboard"]
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            old = self.dashboards.get(model["uid"])
            if old and not body.get("overwrite"):
                return 412, {"message": "version-mismatch"}
            version = old["dashboard"]["version"] + 1 if old else 1
            stored = {**model, "version": version}
            self.dashboards[model["uid"]] = {
                "dashboard": stored,
                "meta": {"folderUid": body["folderUid"]},
            }
            return 200, {"uid": model["uid"], "version": version, "status": "success"}
        return 400, {"message": "bad dashboard request"}


@pytest.fixture
def grafana() -> Iterator[tuple[str, FakeGrafana]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = fake.handle(
                self.command, self.path.split("?")[0], body, self.headers.get("Authorization")
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", fake
    server.shutdown()
    server.server_close()


def _settings(**values: Any) -> GrafanaSettings:
    return GrafanaSettings.model_validate(values)


@pytest.fixture(autouse=True)
def _no_grafana_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RIZZPAY_GRAFANA_"):
            monkeypatch.delenv(name)


def test_push_is_idempotent(grafana: tuple[str, FakeGrafana]) -> None:
    url, fake = grafana
    settings = _settings(
        token="glsa_test",
        postgres_dsn="postgresql://grafana:pg%40pw@db.internal:5432/rizzpay",
        clickhouse_dsn="http://grafana:chpw@ch.internal:8123/rizzpay",
    )
    dashboards = all_dashboards()
    first = push(connect(settings, url), dashboards, datasource_payloads(settings))
    assert first.updated == []
    assert len(first.created) == 1 + 2 + len(dashboards)
    second = push(connect(settings, url), dashboards, datasource_payloads(settings))
    assert second.created == []
    assert sorted(second.updated) == sorted(first.created)
    assert set(fake.folders) == {FOLDER_UID}
    assert set(fake.datasources) == {POSTGRES_SOURCE.uid, CLICKHOUSE_SOURCE.uid}
    assert set(fake.dashboards) == {d.uid for d in dashboards}
    for d in dashboards:
        stored = fake.dashboards[d.uid]
        assert stored["dashboard"]["version"] == 2
        assert stored["meta"]["folderUid"] == FOLDER_UID
        assert stored["dashboard"]["panels"] == dashboard_json(d, SOURCES)["panels"]
    assert fake.datasources[POSTGRES_SOURCE.uid]["secureJsonData"] == {"password": "pg@pw"}
    assert {auth for _, _, auth in fake.requests} == {"Bearer glsa_test"}


def test_push_uses_basic_auth_when_no_token(grafana: tuple[str, FakeGrafana]) -> None:
    url, fake = grafana
    push(connect(_settings(user="ops", password="s3cret"), url), all_dashboards()[:1])
    auths = {auth for _, _, auth in fake.requests}
    assert len(auths) == 1
    assert next(iter(auths)) == "Basic b3BzOnMzY3JldA=="  # ops:s3cret
    assert fake.datasources == {}, "no DSNs set: data sources are left alone"


@pytest.mark.parametrize(
    "values",
    [{}, {"user": "admin"}, {"password": "x"}, {"token": ""}, {"user": "a", "password": ""}],
)
def test_push_refuses_without_credentials(
    grafana: tuple[str, FakeGrafana], values: dict[str, str]
) -> None:
    url, fake = grafana
    with pytest.raises(MissingCredentials):
        connect(_settings(**values), url)
    assert fake.requests == []


def test_cli_push_without_credentials_exits_2(
    grafana: tuple[str, FakeGrafana], capsys: pytest.CaptureFixture[str]
) -> None:
    url, fake = grafana
    parser = argparse.ArgumentParser()
    cli_dashboards.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dashboards", "push", "--url", url])
    assert args.handler(args) == 2
    assert "no Grafana credentials" in capsys.readouterr().err
    assert fake.requests == []


def test_cli_push_with_token(
    grafana: tuple[str, FakeGrafana], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, fake = grafana
    monkeypatch.setenv("RIZZPAY_GRAFANA_TOKEN", "glsa_cli")
    parser = argparse.ArgumentParser()
    cli_dashboards.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dashboards", "push", "--url", url])
    assert args.handler(args) == 0
    assert args.handler(args) == 0
    assert len(fake.dashboards) == 4


def test_credentials_in_url_are_refused() -> None:
    with pytest.raises(ValueError, match="credentials in the Grafana URL"):
        connect(_settings(token="t"), "http://admin:admin@127.0.0.1:3000")
    with pytest.raises(ValueError, match="no Grafana URL"):
        connect(_settings(token="t"), None)


def test_datasource_payloads() -> None:
    pg = postgres_datasource(POSTGRES_SOURCE, "postgresql://u:p@h:6432/db", "require")
    assert pg["url"] == "h:6432" and pg["user"] == "u"
    assert pg["jsonData"]["database"] == "db" and pg["jsonData"]["sslmode"] == "require"
    assert pg["secureJsonData"] == {"password": "p"}
    assert "p" not in json.dumps({k: v for k, v in pg.items() if k != "secureJsonData"}).split('"')
    ch = clickhouse_datasource(CLICKHOUSE_SOURCE, "https://u:p@ch.example:8443/rizzpay")
    assert ch["jsonData"]["secure"] is True and ch["jsonData"]["port"] == 8443
    assert ch["type"] == "grafana-clickhouse-datasource"
    with pytest.raises(ValueError, match="http"):
        clickhouse_datasource(CLICKHOUSE_SOURCE, "chdb:///var/lib/ch")
    settings = _settings(token="t", postgres_dsn=SecretStr("postgresql://u:p@h/db"))
    assert [p["uid"] for p in datasource_payloads(settings)] == [POSTGRES_SOURCE.uid]


def test_dashboard_type_is_frozen() -> None:
    d: Dashboard = all_dashboards()[0]
    with pytest.raises(AttributeError):
        d.uid = "x"  # type: ignore[misc]
