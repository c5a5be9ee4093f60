"""``rizzpay aml``: AML monitoring (warehouse/aml, docs/aml.md).

* ``rizzpay aml run --period 2026-10`` runs every rule over ClickHouse for the IST month and
  opens a case for each new alert; prints a JSON summary.  Running it again opens nothing new.
  With an embedded (``chdb://``) ClickHouse it must run while the sink is stopped (one process
  per data path), or against a ClickHouse server.
  The run is recorded (kind ``manual``) with the scheduled ones.
* ``rizzpay aml runs [--period YYYY-MM] [--limit N]``: the recorded runs (the sink's scheduled
  ``month_to_date`` / ``final`` runs and manual ones), newest first, as JSON lines.
* ``rizzpay aml cases [--status open|closed|escalated] [--period YYYY-MM]``: JSON lines.
* ``rizzpay aml close CASE_ID --reason TEXT --actor WHO``.
* ``rizzpay aml escalate CASE_ID --grounds TEXT --actor WHO [--determined-at ISO8601]``:
  an STR draft, due 7 working days after the (IST) day suspicion was determined.
* ``rizzpay aml str [--overdue] [--today YYYY-MM-DD]``: STR drafts as JSON lines; with
  ``--overdue`` only the overdue ones, and exit 3 when there are any (for a scheduler to alert).
  ``rizzpay aml str --file STR_ID --reference ACK --actor WHO [--filed-on DATE]`` marks one filed.
* ``rizzpay aml fiu-report --period 2026-10 [--out FILE]``: the monthly FIU-IND report (JSON,
  ``rizzpay.fiu-monthly/1``) from the case file.

Thresholds come from ``RIZZPAY_AML_*`` (``warehouse.aml.settings``), endpoints from
``RIZZPAY_*``; both are read once here.  A refused case move prints ``error: <code>: <why>`` and
exits 2; other errors exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import clickhouse_connect

from models.config import ServiceEndpoints
from warehouse.aml.cases import (
    CaseError,
    close_case,
    escalate_case,
    file_str,
    list_cases,
    str_drafts,
)
from warehouse.aml.deadlines import ist_date
from warehouse.aml.fiu import fiu_report, render_json
from warehouse.aml.schedule import MANUAL, ScheduledRun, list_runs, recorded_run
from warehouse.aml.settings import AmlSettings
from warehouse.migrate import CLICKHOUSE_DATABASE

EXIT_REFUSED = 2
EXIT_OVERDUE = 3
T = TypeVar("T")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("aml", help="AML monitoring: rules, cases, STR drafts, FIU reports")
    commands = parser.add_subparsers(dest="aml_command", required=True)

    run = commands.add_parser("run", help="run the AML rules for a month and open cases")
    run.add_argument("--period", required=True, help="IST calendar month, YYYY-MM")
    run.add_argument("--clickhouse-database", default=CLICKHOUSE_DATABASE)
    run.set_defaults(handler=run_command)

    runs = commands.add_parser("runs", help="list recorded rule runs (JSON lines)")
    runs.add_argument("--period", help="IST calendar month, YYYY-MM")
    runs.add_argument("--limit", type=int, default=50)
    runs.set_defaults(handler=runs_command)

    cases = commands.add_parser("cases", help="list cases (JSON lines)")
    cases.add_argument("--status", choices=("open", "closed", "escalated"))
    cases.add_argument("--period", help="IST calendar month, YYYY-MM")
    cases.set_defaults(handler=cases_command)

    close = commands.add_parser("close", help="close an open case with a reason")
    close.add_argument("case_id")
    close.add_argument("--reason", required=True)
    close.add_argument("--actor", required=True, help="who closes it")
    close.set_defaults(handler=close_command)

    escalate = commands.add_parser("escalate", help="escalate a case to an STR draft")
    escalate.add_argument("case_id")
    escalate.add_argument("--grounds", required=True, help="the grounds of suspicion")
    escalate.add_argument("--actor", required=True, help="who determined the suspicion")
    escalate.add_argument(
        "--determined-at", type=_instant, help="when suspicion was determined (default: now)"
    )
    escalate.set_defaults(handler=escalate_command)

    strs = commands.add_parser("str", help="list STR drafts, or mark one filed")
    strs.add_argument("--overdue", action="store_true", help="only overdue drafts; exit 3 if any")
    strs.add_argument("--today", type=date.fromisoformat, help="IST date (default: today)")
    strs.add_argument("--file", metavar="STR_ID", help="mark this draft filed with FIU-IND")
    strs.add_argument("--reference", help="FIU-IND acknowledgement reference (with --file)")
    strs.add_argument("--filed-on", type=date.fromisoformat, help="filing date (default: today)")
    strs.add_argument("--actor", help="who filed it (with --file)")
    strs.set_defaults(handler=str_command)

    fiu = commands.add_parser("fiu-report", help="the monthly report to FIU-IND (JSON)")
    fiu.add_argument("--period", required=True, help="IST calendar month, YYYY-MM")
    fiu.add_argument("--out", type=Path, help="write the report to this file")
    fiu.set_defaults(handler=fiu_command)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a timezone, e.g. 2026-10-30T17:00+05:30")
    return value


def _with_pg(action: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def main() -> T:
        conn = await asyncpg.connect(ServiceEndpoints().pg_dsn)
        try:
            return await action(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


def _guarded(body: Callable[[], int]) -> int:
    try:
        return body()
    except CaseError as exc:
        print(f"error: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (ValueError, OSError, asyncpg.PostgresError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def run_command(args: argparse.Namespace) -> int:
    settings = AmlSettings()
    endpoints = ServiceEndpoints()

    def body() -> int:
        client = clickhouse_connect.get_client(dsn=endpoints.clickhouse_dsn)
        try:
            result = _with_pg(
                lambda conn: recorded_run(
                    client,
                    args.clickhouse_database,
                    conn,
                    ScheduledRun(args.period, MANUAL),
                    settings=settings,
                    clock=lambda: datetime.now(UTC),
                )
            )
        finally:
            client.close()
        _print_json(result.summary())
        return 0

    return _guarded(body)


def runs_command(args: argparse.Namespace) -> int:
    def body() -> int:
        for run in _with_pg(lambda c: list_runs(c, period=args.period, limit=args.limit)):
            _print_json(run)
        return 0

    return _guarded(body)


def cases_command(args: argparse.Namespace) -> int:
    def body() -> int:
        for case in _with_pg(lambda c: list_cases(c, status=args.status, period=args.period)):
            _print_json(case)
        return 0

    return _guarded(body)


def close_command(args: argparse.Namespace) -> int:
    def body() -> int:
        _with_pg(
            lambda c: close_case(
                c, args.case_id, reason=args.reason, actor=args.actor, now=datetime.now(UTC)
            )
        )
        print(f"closed {args.case_id}")
        return 0

    return _guarded(body)


def escalate_command(args: argparse.Namespace) -> int:
    settings = AmlSettings()

    def body() -> int:
        now = datetime.now(UTC)
        draft = _with_pg(
            lambda c: escalate_case(
                c,
                args.case_id,
                grounds=args.grounds,
                actor=args.actor,
                now=now,
                settings=settings,
                determined_at=args.determined_at,
            )
        )
        _print_json(draft.as_json(ist_date(now)))
        return 0

    return _guarded(body)


def str_command(args: argparse.Namespace) -> int:
    today = args.today or ist_date(datetime.now(UTC))

    def body() -> int:
        if args.file:
            if not args.reference or not args.actor:
                raise ValueError("--file needs --reference and --actor")
            draft = _with_pg(
                lambda c: file_str(
                    c,
                    args.file,
                    fiu_reference=args.reference,
                    filed_on=args.filed_on or today,
                    actor=args.actor,
                    now=datetime.now(UTC),
                )
            )
            _print_json(draft.as_json(today))
            return 0
        drafts = _with_pg(lambda c: str_drafts(c, today=today, overdue_only=args.overdue))
        for draft in drafts:
            _print_json(draft.as_json(today))
        if args.overdue and drafts:
            print(f"{len(drafts)} STR draft(s) overdue on {today}", file=sys.stderr)
            return EXIT_OVERDUE
        return 0

    return _guarded(body)


def fiu_command(args: argparse.Namespace) -> int:
    settings = AmlSettings()

    def body() -> int:
        report = _with_pg(
            lambda c: fiu_report(c, args.period, settings=settings, now=datetime.now(UTC))
        )
        text = render_json(report)
        if args.out is None:
            sys.stdout.write(text)
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
            print(args.out)
        return 0

    return _guarded(body)
