"""Reports as functions of (period, inputs) → files, run reproducibly and stored with the
fingerprint of what they were made from (docs/reports.md).

A :class:`ReportKind` is four things:

* ``load(conn, period, params)`` reads the report's inputs in one ``REPEATABLE READ`` snapshot
  and returns :class:`ReportInputs`: named tables of plain values (what is fingerprinted and
  what the data-quality suite checks) and the typed payload the builder uses, made from the
  same rows;
* ``suite(period)``: the great-expectations suite that guards those tables;
* ``build(period, inputs, params)``: **pure** — output file name → bytes, nothing read from the
  clock or the machine, so equal inputs give byte-identical files;
* ``schedule``: when a period becomes due and its deadline.

:func:`run_report` loads, fingerprints (sha256 over canonical JSON of the tables; another over
the kind, its format version and the parameters), validates, builds and stores.  A run is keyed
by (kind, period, fingerprint): re-running a period whose inputs did not change finds the stored
run, and its outputs must be byte-identical to the stored ones or the run fails loudly
(:class:`NotReproducible`); a changed input makes a new fingerprint and a new run.  A failed
suite stores the run as ``blocked`` with which expectation failed on which rows, and publishes
nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from streams.settlement import IST
from warehouse.reports.quality import QualityResult, Suite, validate

__all__ = [
    "Cadence",
    "NotReproducible",
    "ReportInputs",
    "ReportKind",
    "RunOutcome",
    "Schedule",
    "StoredRun",
    "canonical_json",
    "day_window",
    "fingerprint",
    "list_runs",
    "load_outputs",
    "period_start",
    "previous_periods",
    "run_report",
    "validate_period",
]

Cadence = Literal["monthly", "daily"]
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MEDIA = {".json": "application/json", ".csv": "text/csv"}


class NotReproducible(RuntimeError):
    """A re-run with the same input fingerprint produced different bytes: the builder read
    something it must not (the clock, dict order, the machine).  Nothing was stored."""


# --------------------------------------------------------------------------------------------
# Periods (IST calendar months and days)
# --------------------------------------------------------------------------------------------


def validate_period(cadence: Cadence, period: str) -> str:
    """``period`` if it is a ``YYYY-MM`` month (monthly) or a real ``YYYY-MM-DD`` day (daily);
    else ``ValueError``."""
    if cadence == "monthly":
        match = _MONTH.fullmatch(period)
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"a monthly report's period is YYYY-MM, got {period!r}")
        return period
    if _DAY.fullmatch(period) is None:
        raise ValueError(f"a daily report's period is YYYY-MM-DD, got {period!r}")
    date.fromisoformat(period)
    return period


def period_start(cadence: Cadence, period: str) -> date:
    """The first IST day of the period."""
    validate_period(cadence, period)
    return date.fromisoformat(period + "-01" if cadence == "monthly" else period)


def _next_start(cadence: Cadence, start: date) -> date:
    if cadence == "daily":
        return start + timedelta(days=1)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def day_window(day: date) -> tuple[datetime, datetime]:
    """``[00:00 IST of day, 00:00 IST of the next day)`` as UTC instants."""
    start = datetime(day.year, day.month, day.day, tzinfo=IST).astimezone(UTC)
    return start, start + timedelta(days=1)


def _format(cadence: Cadence, start: date) -> str:
    return start.strftime("%Y-%m") if cadence == "monthly" else start.isoformat()


def previous_periods(cadence: Cadence, now: datetime, count: int) -> list[str]:
    """The ``count`` most recent periods that have ended by ``now`` (IST), newest first."""
    today = now.astimezone(IST).date()
    current = today.replace(day=1) if cadence == "monthly" else today
    out: list[str] = []
    for _ in range(count):
        if cadence == "daily":
            current = current - timedelta(days=1)
        else:
            current = (current - timedelta(days=1)).replace(day=1)
        out.append(_format(cadence, current))
    return out


@dataclass(frozen=True)
class Schedule:
    """When a period's report runs: ``run_after`` after the period ends (IST), and the deadline
    ``deadline_after`` after it ends (the regulator's or finance's due time)."""

    run_after: timedelta
    deadline_after: timedelta
    lookback: int  # how many past periods the scheduler keeps trying (catch-up after downtime)

    def period_end(self, cadence: Cadence, period: str) -> datetime:
        end = _next_start(cadence, period_start(cadence, period))
        return datetime(end.year, end.month, end.day, tzinfo=IST)

    def due_at(self, cadence: Cadence, period: str) -> datetime:
        return self.period_end(cadence, period) + self.run_after

    def deadline(self, cadence: Cadence, period: str) -> datetime:
        return self.period_end(cadence, period) + self.deadline_after


# --------------------------------------------------------------------------------------------
# Canonical JSON and fingerprints
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} in report data")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        raise TypeError("no float in report data (money is integer paise)")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, instants in UTC ISO 8601, ``Decimal`` as a string; a float
    or a naive datetime is refused.  Equal data, equal text."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(value: Any) -> str:
    """``sha256:<hex>`` of :func:`canonical_json`."""
    return "sha256:" + hashlib.sha256(canonical_json(value).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Kinds and runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportInputs:
    """``tables``: name → rows of plain values (fingerprinted, validated); ``payload``: typed
    inputs for the builder, made from the same reads."""

    tables: Mapping[str, Sequence[Mapping[str, Any]]]
    payload: Any = None


Loader = Callable[[asyncpg.Connection, str, Mapping[str, Any]], Awaitable[ReportInputs]]
Builder = Callable[[str, ReportInputs, Mapping[str, Any]], Mapping[str, bytes]]


@dataclass(frozen=True)
class ReportKind:
    """A report: its name (``gst``, ``settlement``…), cadence, format ``version`` (bump it when
    the builder's output changes for equal inputs: it is part of the parameters' fingerprint),
    loader, suite, builder and schedule."""

    name: str
    cadence: Cadence
    version: int
    description: str
    load: Loader
    suite: Callable[[str], Suite]
    build: Builder
    schedule: Schedule
    default_params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    kind: str
    period: str
    status: Literal["published", "blocked"]
    fingerprint: str
    inputs_fingerprint: str
    params_fingerprint: str
    outputs_fingerprint: str | None
    outputs: Mapping[str, bytes]
    quality: QualityResult
    rerun: bool  # True: this fingerprint had run before (outputs checked byte for byte)

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "period": self.period,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "inputs_fingerprint": self.inputs_fingerprint,
            "params_fingerprint": self.params_fingerprint,
            "outputs_fingerprint": self.outputs_fingerprint,
            "outputs": {
                name: hashlib.sha256(data).hexdigest()
                for name, data in sorted(self.outputs.items())
            },
            "rerun": self.rerun,
            "quality": self.quality.to_json(),
        }


def _outputs_fingerprint(outputs: Mapping[str, bytes]) -> str:
    return fingerprint({n: hashlib.sha256(b).hexdigest() for n, b in sorted(outputs.items())})


def _media_type(name: str) -> str:
    for suffix, media in _MEDIA.items():
        if name.endswith(suffix):
            return media
    return "application/octet-stream"


async def run_report(
    conn: asyncpg.Connection,
    kind: ReportKind,
    period: str,
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
    triggered_by: Literal["manual", "schedule"] = "manual",
) -> RunOutcome:
    """Run ``kind`` for ``period`` and store the run (see the module docstring).

    ``now`` (injected clock) is recorded as the run time and never reaches the outputs.
    Raises ``ValueError`` for a malformed period, :class:`NotReproducible` when a stored run
    with the same fingerprint has different outputs."""
    validate_period(kind.cadence, period)
    merged = {**kind.default_params, **(params or {})}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        inputs = await kind.load(conn, period, merged)
    inputs_fp = fingerprint({"period": period, "tables": inputs.tables})
    params_fp = fingerprint({"kind": kind.name, "version": kind.version, "params": merged})
    fp = fingerprint([inputs_fp, params_fp])
    run_id = f"{kind.name}_{period}_{fp[7:23]}"
    # great-expectations is synchronous; keep the event loop (and the leader's lock) alive.
    quality = await asyncio.to_thread(validate, kind.suite(period), inputs.tables)
    outputs: Mapping[str, bytes] = {}
    outputs_fp: str | None = None
    if quality.passed:
        outputs = dict(sorted(kind.build(period, inputs, merged).items()))
        outputs_fp = _outputs_fingerprint(outputs)
    status: Literal["published", "blocked"] = "published" if quality.passed else "blocked"
    async with conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO report_runs (run_id, kind, period, params, fingerprint,
                   inputs_fingerprint, params_fingerprint, status, outputs_fingerprint, quality,
                   triggered_by, first_run_at, last_run_at)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $12)
               ON CONFLICT (kind, period, fingerprint) DO UPDATE
                   SET run_count = report_runs.run_count + 1,
                       last_run_at = greatest(report_runs.last_run_at, EXCLUDED.last_run_at)
               RETURNING run_id, outputs_fingerprint, status, (xmax = 0) AS inserted""",
            run_id,
            kind.name,
            period,
            canonical_json(merged),
            fp,
            inputs_fp,
            params_fp,
            status,
            outputs_fp,
            canonical_json(quality.to_json()),
            triggered_by,
            now,
        )
        if not row["inserted"] and (
            row["outputs_fingerprint"] != outputs_fp or row["status"] != status
        ):
            raise NotReproducible(
                f"{kind.name} {period}: fingerprint {fp} was stored with outputs "
                f"{row['outputs_fingerprint']} ({row['status']}), this run gave {outputs_fp} "
                f"({status})"
            )
        if row["inserted"]:
            for name, data in outputs.items():
                await conn.execute(
                    """INSERT INTO report_outputs (run_id, name, media_type, sha256, content)
                       VALUES ($1, $2, $3, $4, $5)""",
                    run_id,
                    name,
                    _media_type(name),
                    hashlib.sha256(data).hexdigest(),
                    data,
                )
    return RunOutcome(
        run_id=run_id,
        kind=kind.name,
        period=period,
        status=status,
        fingerprint=fp,
        inputs_fingerprint=inputs_fp,
        params_fingerprint=params_fp,
        outputs_fingerprint=outputs_fp,
        outputs=outputs,
        quality=quality,
        rerun=not row["inserted"],
    )


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    kind: str
    period: str
    status: str
    fingerprint: str
    outputs_fingerprint: str | None
    triggered_by: str
    first_run_at: datetime
    last_run_at: datetime
    run_count: int
    failures: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "period": self.period,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "outputs_fingerprint": self.outputs_fingerprint,
            "triggered_by": self.triggered_by,
            "first_run_at": self.first_run_at.astimezone(UTC).isoformat(),
            "last_run_at": self.last_run_at.astimezone(UTC).isoformat(),
            "run_count": self.run_count,
            "failures": list(self.failures),
        }


async def list_runs(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    kind: str | None = None,
    period: str | None = None,
    limit: int = 100,
) -> list[StoredRun]:
    """Stored runs, newest first, optionally of one kind and/or period."""
    rows = await conn.fetch(
        """SELECT run_id, kind, period, status, fingerprint, outputs_fingerprint, triggered_by,
                  first_run_at, last_run_at, run_count, quality::text AS quality
             FROM report_runs
            WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR period = $2)
            ORDER BY last_run_at DESC, run_id LIMIT $3""",
        kind,
        period,
        limit,
    )
    return [
        StoredRun(
            r["run_id"],
            r["kind"],
            r["period"],
            r["status"],
            r["fingerprint"],
            r["outputs_fingerprint"],
            r["triggered_by"],
            r["first_run_at"],
            r["last_run_at"],
            r["run_count"],
            tuple(f["message"] for f in json.loads(r["quality"]).get("failures", [])),
        )
        for r in rows
    ]


async def load_outputs(conn: asyncpg.Connection | asyncpg.Pool, run_id: str) -> dict[str, bytes]:
    """A stored run's files, name → bytes (empty for a blocked or unknown run)."""
    rows = await conn.fetch(
        "SELECT name, content FROM report_outputs WHERE run_id = $1 ORDER BY name", run_id
    )
    return {r["name"]: bytes(r["content"]) for r in rows}
