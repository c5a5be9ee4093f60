"""Provision the dashboards into a running Grafana through its HTTP API (grafana-client).

Idempotent by uid: the folder, each data source and each dashboard is looked up by its fixed
uid and updated when it exists, created when it does not (dashboards are saved with
``overwrite``), so pushing twice leaves one of each.

Credentials come from :class:`GrafanaSettings` (``RIZZPAY_GRAFANA_*``): an API / service-account
token, or a user and password for basic auth.  There are no defaults: without either, push
refuses to start (:class:`MissingCredentials`).  A user or password inside the URL is refused
too, so a secret never sits in shell history as part of ``--url``.

Data sources are pushed only when their DSNs are set (``RIZZPAY_GRAFANA_POSTGRES_DSN``,
``RIZZPAY_GRAFANA_CLICKHOUSE_DSN``: how the *Grafana server* reaches each database, which may
differ from the application's own addresses); otherwise they are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from dashboards.definitions import FOLDER_TITLE, FOLDER_UID, SOURCES
from dashboards.model import Dashboard, DataSource, Engine, dashboard_json


class MissingCredentials(ValueError):
    """Neither a token nor a user and password was configured."""


class GrafanaSettings(BaseSettings):
    """Where Grafana is and how to sign in; read once by the CLI."""

    model_config = SettingsConfigDict(env_prefix="RIZZPAY_GRAFANA_", extra="ignore")

    url: str | None = None
    token: SecretStr | None = None
    user: str | None = None
    password: SecretStr | None = None
    postgres_dsn: SecretStr | None = None
    clickhouse_dsn: SecretStr | None = None
    postgres_sslmode: str = "disable"
    timeout_s: float = 10.0


def credential(settings: GrafanaSettings) -> str | tuple[str, str]:
    """The token, or (user, password); raises :class:`MissingCredentials` when neither is set."""
    if settings.token is not None and settings.token.get_secret_value():
        return settings.token.get_secret_value()
    if settings.user and settings.password is not None and settings.password.get_secret_value():
        return (settings.user, settings.password.get_secret_value())
    raise MissingCredentials(
        "no Grafana credentials: set RIZZPAY_GRAFANA_TOKEN, or RIZZPAY_GRAFANA_USER and "
        "RIZZPAY_GRAFANA_PASSWORD"
    )


def check_url(url: str | None) -> str:
    if not url:
        raise ValueError("no Grafana URL: pass --url or set RIZZPAY_GRAFANA_URL")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parsed.username or parsed.password:
        raise ValueError("credentials in the Grafana URL are refused; use the settings instead")
    return url


class _Api(Protocol):
    """The part of grafana_client.GrafanaApi that push uses."""

    @property
    def folder(self) -> Any: ...
    @property
    def dashboard(self) -> Any: ...
    @property
    def datasource(self) -> Any: ...


def connect(settings: GrafanaSettings, url: str | None = None) -> _Api:
    """A grafana-client API object; credentials are checked before anything is contacted."""
    secret = credential(settings)
    api: _Api = GrafanaApi.from_url(
        check_url(url or settings.url), credential=secret, timeout=settings.timeout_s
    )
    return api


# --- data source payloads ---------------------------------------------------------------------


def postgres_datasource(source: DataSource, dsn: str, sslmode: str = "disable") -> dict[str, Any]:
    """Grafana's PostgreSQL data source for a ``postgresql://user:pass@host:port/db`` DSN."""
    u = urlparse(dsn)
    if u.scheme not in ("postgres", "postgresql") or not u.hostname or not u.path.strip("/"):
        raise ValueError("the Grafana PostgreSQL DSN must be postgresql://user:pass@host:port/db")
    return {
        "uid": source.uid,
        "name": source.name,
        "type": source.engine.value,
        "access": "proxy",
        "url": f"{u.hostname}:{u.port or 5432}",
        "user": unquote(u.username or ""),
        "jsonData": {
            "database": u.path.strip("/"),
            "sslmode": sslmode,
            "postgresVersion": 1600,
            "timescaledb": True,
        },
        "secureJsonData": {"password": unquote(u.password or "")},
    }


def clickhouse_datasource(source: DataSource, dsn: str) -> dict[str, Any]:
    """grafana-clickhouse-datasource for an ``http(s)://user:pass@host:port/db`` DSN (an embedded
    ``chdb://`` engine cannot be reached by Grafana)."""
    u = urlparse(dsn)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError("the Grafana ClickHouse DSN must be http(s)://user:pass@host:port/db")
    secure = u.scheme == "https"
    return {
        "uid": source.uid,
        "name": source.name,
        "type": source.engine.value,
        "access": "proxy",
        "jsonData": {
            "host": u.hostname,
            "port": u.port or (8443 if secure else 8123),
            "protocol": "http",
            "secure": secure,
            "username": unquote(u.username or "default"),
            "defaultDatabase": u.path.strip("/"),
        },
        "secureJsonData": {"password": unquote(u.password or "")},
    }


def datasource_payloads(settings: GrafanaSettings) -> list[dict[str, Any]]:
    out = []
    if settings.postgres_dsn is not None:
        out.append(
            postgres_datasource(
                SOURCES[Engine.POSTGRES],
                settings.postgres_dsn.get_secret_value(),
                settings.postgres_sslmode,
            )
        )
    if settings.clickhouse_dsn is not None:
        out.append(
            clickhouse_datasource(
                SOURCES[Engine.CLICKHOUSE], settings.clickhouse_dsn.get_secret_value()
            )
        )
    return out


# --- push -----------------------------------------------------------------------------------


@dataclass
class PushReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"created {n}" for n in self.created] + [f"updated {n}" for n in self.updated]


def _exists(getter: Any, uid: str) -> bool:
    try:
        getter(uid)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return False
        raise
    return True


def push(
    api: _Api,
    dashboards: Sequence[Dashboard],
    datasources: Sequence[dict[str, Any]] = (),
) -> PushReport:
    """Create or update the folder, ``datasources`` and ``dashboards``; see the module doc."""
    report = PushReport()
    for payload in datasources:
        name = f"datasource {payload['uid']}"
        if _exists(api.datasource.get_datasource_by_uid, payload["uid"]):
            api.datasource.update_datasource_by_uid(payload["uid"], payload)
            report.updated.append(name)
        else:
            api.datasource.create_datasource(payload)
            report.created.append(name)
    if _exists(api.folder.get_folder, FOLDER_UID):
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        report.updated.append(f"folder {FOLDER_UID}")
    else:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        report.created.append(f"folder {FOLDER_UID}")
    for dashboard in dashboards:
        existed = _exists(api.dashboard.get_dashboard, dashboard.uid)
        api.dashboard.update_dashboard(
            {
                "dashboard": dashboard_json(dashboard, SOURCES),
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "rizzpay dashboards push",
            }
        )
        (report.updated if existed else report.created).append(f"dashboard {dashboard.uid}")
    return report
