"""The AML rules on a schedule, run by the process that owns ClickHouse (docs/aml.md).

With embedded chDB only one process may open the data path, and that is the warehouse sink, so
the sink runs :meth:`AmlScheduler.tick` itself, as a task beside its loop, with a ClickHouse
client of its own on the same path (a process may hold any number of connections to its one
engine).  The rule queries block for seconds, so :func:`recorded_run` runs them in a worker
thread and the sink's loop keeps consuming meanwhile.  A ClickHouse server (``http://``) works
the same way.

What is due (:func:`due_runs`, pure, the clock injected):

* **month to date**: the open IST month, once every ``interval`` (default hourly), so cases open
  within about an hour of the facts arriving;
* **final**: the previous IST month, once, ``final_grace`` after it closed (late events land
  first); a failed final run is tried again after ``interval``.

Only the previous month gets a final run: a scheduler that was down for longer leaves older
months to ``rizzpay aml run``.  Cases are deduplicated by alert id, so a repeated run opens
nothing new.

Leadership across sink replicas is a PostgreSQL **session** advisory lock held on the
scheduler's own connection (as the report scheduler does): one replica runs the rules, the
others only try for the lock; when the leader's connection closes, a stand-by takes over.
Every run is a row in ``aml_runs`` (period, kind, started/finished, alerts, cases opened, or
the error), listed by ``rizzpay aml runs``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from warehouse.aml.monitor import MonitorResult, run_period
from warehouse.aml.settings import AmlSettings
from warehouse.leader import LeaderLock
from warehouse.reports.gst import ist_month_of, ist_month_window

__all__ = [
    "FINAL",
    "LEADER_LOCK_KEY",
    "MANUAL",
    "MONTH_TO_DATE",
    "AmlSchedule",
    "AmlScheduler",
    "RunHistory",
    "ScheduledRun",
    "due_runs",
    "list_runs",
    "recorded_run",
]

MONTH_TO_DATE = "month_to_date"
FINAL = "final"
MANUAL = "manual"
LEADER_LOCK_KEY = "rizzpay:aml-scheduler"

log = logging.getLogger("rizzpay.aml.schedule")

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class AmlSchedule:
    """``interval``: how often the open month is run (and a failed final run retried);
    ``final_grace``: how long after a month closes its final run waits for late events."""

    interval: timedelta = timedelta(hours=1)
    final_grace: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0) or self.final_grace < timedelta(0):
            raise ValueError("interval must be positive and final_grace not negative")


@dataclass(frozen=True)
class ScheduledRun:
    period: str  # IST month YYYY-MM
    kind: str  # MONTH_TO_DATE or FINAL


@dataclass(frozen=True)
class RunHistory:
    """What the schedule needs to know of past runs, keyed by (period, kind):
    ``last_started`` of any run (failed or not), and which finished."""

    last_started: Mapping[tuple[str, str], datetime]
    finished: frozenset[tuple[str, str]]


def previous_month(period: str) -> str:
    year, month = (int(p) for p in period.split("-"))
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def due_runs(now: datetime, schedule: AmlSchedule, history: RunHistory) -> list[ScheduledRun]:
    """The runs due at ``now`` (timezone-aware): the previous month's final run first, then
    the open month's month-to-date run."""
    current = ist_month_of(now)
    previous = previous_month(current)
    due: list[ScheduledRun] = []
    _, closed_at = ist_month_window(previous)
    final = (previous, FINAL)
    if now >= closed_at + schedule.final_grace and final not in history.finished:
        tried = history.last_started.get(final)
        if tried is None or now - tried >= schedule.interval:
            due.append(ScheduledRun(previous, FINAL))
    last = history.last_started.get((current, MONTH_TO_DATE))
    if last is None or now - last >= schedule.interval:
        due.append(ScheduledRun(current, MONTH_TO_DATE))
    return due


async def load_history(conn: asyncpg.Connection, periods: list[str]) -> RunHistory:
    rows = await conn.fetch(
        """SELECT period, kind, max(started_at) AS last, bool_or(finished_at IS NOT NULL) AS ok
             FROM aml_runs WHERE period = ANY($1::text[]) GROUP BY period, kind""",
        periods,
    )
    return RunHistory(
        last_started={(r["period"], r["kind"]): r["last"] for r in rows},
        finished=frozenset((r["period"], r["kind"]) for r in rows if r["ok"]),
    )


async def recorded_run(
    client: Any,
    database: str,
    conn: asyncpg.Connection,
    run: ScheduledRun,
    *,
    settings: AmlSettings,
    clock: Clock,
) -> MonitorResult:
    """Run the rules for ``run.period`` and open cases, recording the run in ``aml_runs``.
    A failure is recorded with its error (finished_at stays NULL) and raised again."""
    run_id = await conn.fetchval(
        "INSERT INTO aml_runs (period, kind, started_at) VALUES ($1, $2, $3) RETURNING run_id",
        run.period,
        run.kind,
        clock(),
    )
    try:
        result = await run_period(client, database, conn, run.period, settings, now=clock())
    except Exception as exc:
        await conn.execute(
            "UPDATE aml_runs SET error = $2 WHERE run_id = $1",
            run_id,
            f"{type(exc).__name__}: {exc}"[:2000],
        )
        raise
    await conn.execute(
        """UPDATE aml_runs SET finished_at = $2, alerts = $3, cases_opened = $4,
                  already_raised = $5, problems = $6::jsonb WHERE run_id = $1""",
        run_id,
        clock(),
        len(result.run.alerts),
        len(result.cases.opened),
        result.cases.already_open,
        json.dumps(result.run.problems),
    )
    return result


async def list_runs(
    conn: asyncpg.Connection, *, period: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest runs (newest first), optionally of one period."""
    rows = await conn.fetch(
        """SELECT run_id, period, kind, started_at, finished_at, alerts, cases_opened,
                  already_raised, problems, error
             FROM aml_runs WHERE $1::text IS NULL OR period = $1
            ORDER BY started_at DESC, run_id DESC LIMIT $2""",
        period,
        limit,
    )
    runs = []
    for r in rows:
        run = dict(r)
        run["problems"] = json.loads(run["problems"])
        runs.append(run)
    return runs


class AmlScheduler:
    """Runs due AML periods while it holds the leader lock.  ``conn`` is the scheduler's own
    connection (the lock lives and dies with it); ``client`` the ClickHouse client of the
    process that owns the data; ``clock`` gives "now"."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        client: Any,
        database: str,
        *,
        settings: AmlSettings,
        schedule: AmlSchedule,
        clock: Clock,
    ) -> None:
        self._conn = conn
        self._client = client
        self._database = database
        self._settings = settings
        self._schedule = schedule
        self._clock = clock
        self._leader = LeaderLock(conn, LEADER_LOCK_KEY)

    @property
    def is_leader(self) -> bool:
        return self._leader.held

    async def try_lead(self) -> bool:
        """Take the leader lock if free (idempotent while held)."""
        return await self._leader.try_acquire()

    async def resign(self) -> None:
        await self._leader.release()

    async def tick(self, *, month_to_date_now: bool = False) -> list[tuple[ScheduledRun, bool]]:
        """One pass: as leader, run whatever is due (``month_to_date_now`` runs the open month
        even if its interval has not passed: a backfill that caught up); as stand-by, nothing.
        Returns each run attempted and whether it finished.  A failing run is logged and
        recorded; the next one is still tried."""
        if not await self.try_lead():
            return []
        now = self._clock()
        current = ist_month_of(now)
        history = await load_history(self._conn, [previous_month(current), current])
        due = due_runs(now, self._schedule, history)
        if month_to_date_now and ScheduledRun(current, MONTH_TO_DATE) not in due:
            due.append(ScheduledRun(current, MONTH_TO_DATE))
        done: list[tuple[ScheduledRun, bool]] = []
        for run in due:
            try:
                result = await recorded_run(
                    self._client,
                    self._database,
                    self._conn,
                    run,
                    settings=self._settings,
                    clock=self._clock,
                )
            except (asyncpg.InterfaceError, OSError):
                raise  # the connection is gone: the caller reconnects
            except Exception:
                log.exception("AML %s run for %s failed", run.kind, run.period)
                done.append((run, False))
                continue
            summary = result.summary()
            log.info(
                "AML %s run for %s: %d alerts, %d cases opened",
                run.kind,
                run.period,
                summary["alerts"],
                summary["cases_opened"],
            )
            done.append((run, True))
        return done
