"""Typed builders for Grafana dashboards as code.

A :class:`Dashboard` holds :class:`Panel` objects; a panel holds at most one :class:`Query`
(its one Grafana target).  Every query states the engine it runs on and the exact columns it
returns, in order, so the tests can run it against the real engine and compare.  Nothing here
talks to Grafana: :func:`dashboard_json` renders the JSON model that both the API push
(``dashboards.push``) and file provisioning (``dashboards.export``) use.

Grafana expands time macros before a query reaches the database; :func:`expand_macros` does the
same for a concrete time range, so a query can be run without Grafana (the tests do exactly
that).  The macros it knows, per engine:

PostgreSQL (Grafana's built-in data source):
  ``$__timeFilter(col)``  → ``col BETWEEN '<from>' AND '<to>'`` (ISO 8601, UTC)
  ``$__timeGroupAlias(col, $__interval)`` → ``floor(extract(epoch from col)/<s>)*<s> AS "time"``
  ``$__timeFrom()`` / ``$__timeTo()`` → ``'<from>'`` / ``'<to>'``

ClickHouse (grafana-clickhouse-datasource):
  ``$__timeFilter(col)`` → ``col >= toDateTime(<from s>) AND col <= toDateTime(<to s>)``
  ``$__interval_s`` → the interval in whole seconds (used as
  ``toStartOfInterval(col, INTERVAL $__interval_s second)``)
  ``$__fromTime`` / ``$__toTime`` → ``toDateTime(<from s>)`` / ``toDateTime(<to s>)``

Any other ``$__`` macro is refused, so a query using one Grafana would expand differently is
caught by the tests instead of by a broken panel.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 39  # Grafana's dashboard JSON schema version these models are written for.
GRID_WIDTH = 24


class Engine(enum.StrEnum):
    """Where a query runs; the value is the Grafana data source plugin type."""

    POSTGRES = "grafana-postgresql-datasource"
    CLICKHOUSE = "grafana-clickhouse-datasource"


class Shape(enum.StrEnum):
    """How Grafana reads the result: one row per point (``time`` column first) or a table."""

    TIME_SERIES = "time_series"
    TABLE = "table"


class PanelKind(enum.StrEnum):
    TIMESERIES = "timeseries"
    TABLE = "table"
    STAT = "stat"
    BARCHART = "barchart"
    TEXT = "text"


@dataclass(frozen=True)
class DataSource:
    """A data source as dashboards refer to it (by uid) and as push creates it."""

    uid: str
    name: str
    engine: Engine

    def ref(self) -> dict[str, str]:
        return {"type": self.engine.value, "uid": self.uid}


@dataclass(frozen=True)
class Query:
    """One panel target: raw SQL with Grafana macros, and the columns it returns, in order."""

    engine: Engine
    sql: str
    columns: tuple[str, ...]
    shape: Shape = Shape.TABLE

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("a query must name the columns it returns")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"duplicate column names: {self.columns}")
        if self.shape is Shape.TIME_SERIES and self.columns[0] != "time":
            raise ValueError("a time-series query returns its time column first, named 'time'")


@dataclass(frozen=True)
class Panel:
    """A panel: a query shown as ``kind``, or (no query) a text panel with ``note``."""

    title: str
    kind: PanelKind
    query: Query | None = None
    description: str = ""
    unit: str = ""
    note: str = ""
    width: int = 12
    height: int = 8

    def __post_init__(self) -> None:
        if (self.query is None) != (self.kind is PanelKind.TEXT):
            raise ValueError(f"{self.title}: text panels have no query, every other kind has one")
        if not 1 <= self.width <= GRID_WIDTH:
            raise ValueError(f"{self.title}: width must be 1..{GRID_WIDTH}")


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = ()
    description: str = ""
    time_from: str = "now-24h"
    refresh: str = "1m"
    pending: tuple[str, ...] = field(default=())

    def queries(self) -> list[tuple[Panel, Query]]:
        return [(p, p.query) for p in self.panels if p.query is not None]


# --- rendering -----------------------------------------------------------------------------


def target_json(query: Query, source: DataSource, ref_id: str = "A") -> dict[str, Any]:
    """The Grafana target of ``query`` for the data source plugin it runs on."""
    if source.engine is not query.engine:
        raise ValueError(f"a {query.engine} query cannot run on {source.name}")
    base: dict[str, Any] = {"refId": ref_id, "datasource": source.ref(), "rawSql": query.sql}
    if query.engine is Engine.POSTGRES:
        return {**base, "rawQuery": True, "editorMode": "code", "format": query.shape.value}
    # grafana-clickhouse-datasource: queryType timeSeries or table; format 0 = time series,
    # 1 = table (sqlds format options).
    time_series = query.shape is Shape.TIME_SERIES
    return {
        **base,
        "editorType": "sql",
        "queryType": "timeSeries" if time_series else "table",
        "format": 0 if time_series else 1,
    }


def panel_json(
    panel: Panel, panel_id: int, x: int, y: int, sources: dict[Engine, DataSource]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind.value,
        "title": panel.title,
        "description": panel.description,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
    }
    if panel.query is None:
        out["options"] = {"mode": "markdown", "content": panel.note}
        return out
    source = sources[panel.query.engine]
    out["datasource"] = source.ref()
    out["targets"] = [target_json(panel.query, source)]
    out["fieldConfig"] = {"defaults": {"unit": panel.unit} if panel.unit else {}, "overrides": []}
    return out


def dashboard_json(
    dashboard: Dashboard, sources: dict[Engine, DataSource], version: int | None = None
) -> dict[str, Any]:
    """The dashboard's JSON model.  Panels flow left to right, wrapping at the grid width."""
    panels = []
    x = y = row_height = 0
    for panel_id, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        panels.append(panel_json(panel, panel_id, x, y, sources))
        x += panel.width
        row_height = max(row_height, panel.height)
    model: dict[str, Any] = {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "utc",
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": dashboard.time_from, "to": "now"},
        "refresh": dashboard.refresh,
        "panels": panels,
    }
    if version is not None:
        model["version"] = version
    return model


# --- macro expansion (what Grafana does before the query reaches the database) ---------------

_PG_FILTER = re.compile(r"\$__timeFilter\(\s*([^()]+?)\s*\)")
_PG_GROUP = re.compile(r"\$__timeGroupAlias\(\s*([^(),]+?)\s*,\s*\$__interval\s*\)")
_ANY_MACRO = re.compile(r"\$__\w+")


def expand_macros(sql: str, engine: Engine, start: datetime, end: datetime, interval_s: int) -> str:
    """``sql`` with the Grafana macros of ``engine`` replaced for the range ``[start, end]``
    (aware datetimes) and a bucket of ``interval_s`` seconds.  See the module docstring for the
    exact expansions; an unknown macro raises ``ValueError``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    if engine is Engine.POSTGRES:
        lo = start.astimezone(UTC).isoformat()
        hi = end.astimezone(UTC).isoformat()
        out = _PG_FILTER.sub(lambda m: f"{m.group(1)} BETWEEN '{lo}' AND '{hi}'", sql)
        out = _PG_GROUP.sub(
            lambda m: (
                f'floor(extract(epoch from {m.group(1)})/{interval_s})*{interval_s} AS "time"'
            ),
            out,
        )
        out = out.replace("$__timeFrom()", f"'{lo}'").replace("$__timeTo()", f"'{hi}'")
    else:
        lo_s, hi_s = int(start.timestamp()), int(end.timestamp())
        out = _PG_FILTER.sub(
            lambda m: f"{m.group(1)} >= toDateTime({lo_s}) AND {m.group(1)} <= toDateTime({hi_s})",
            sql,
        )
        out = out.replace("$__interval_s", str(interval_s))
        out = out.replace("$__fromTime", f"toDateTime({lo_s})")
        out = out.replace("$__toTime", f"toDateTime({hi_s})")
    left = _ANY_MACRO.findall(out)
    if left:
        raise ValueError(f"macros not expanded for {engine.name}: {sorted(set(left))}")
    return out
