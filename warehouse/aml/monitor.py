"""One AML monitoring run for a period: the rules over ClickHouse, then the case file.

``run_period(client, database, conn, period, settings, now=...)`` is what ``rizzpay aml run``
and the schedule (``warehouse.aml.schedule``, through ``recorded_run``) call.  Running it
again for the same period (with the same facts) opens no case: alert ids are derived from rule,
period and subject.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from warehouse.aml.cases import OpenResult, open_cases
from warehouse.aml.rules import RuleRun, run_rules
from warehouse.aml.settings import AmlSettings


@dataclass(frozen=True)
class MonitorResult:
    run: RuleRun
    cases: OpenResult

    def summary(self) -> dict[str, Any]:
        return {
            "period": self.run.period,
            "alerts": len(self.run.alerts),
            "alerts_by_rule": self.run.by_rule(),
            "cases_opened": len(self.cases.opened),
            "already_raised": self.cases.already_open,
            "problems": self.run.problems,
        }


async def run_period(
    client: Any,
    database: str,
    conn: asyncpg.Connection,
    period: str,
    settings: AmlSettings,
    *,
    now: datetime,
) -> MonitorResult:
    """Run every rule for IST month ``period`` and open cases for new alerts.  The rules'
    queries block for seconds, so they run in a worker thread and the caller's event loop stays
    free (the warehouse sink keeps consuming); ``client`` must serve no one else meanwhile
    (clickhouse-connect serialises calls per client)."""
    run = await asyncio.to_thread(run_rules, client, database, period, settings)
    return MonitorResult(run, await open_cases(conn, run.alerts, now=now))
