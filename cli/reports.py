"""``rizzpay reports``: reports read from the ledger.

* ``rizzpay reports gst --month 2026-11 [--out DIR] [--sac 997158] [--supplier-gstin GSTIN]``
  builds the monthly GST report on the gateway's fees (warehouse/reports/gst.py,
  docs/gst-report.md) for the IST calendar month.  Without ``--out`` it prints the report's JSON;
  with it, it writes ``gst-<month>.json`` and one CSV per section there and prints the paths.
  Exits 3 when the documents do not reconcile with the ledger's GST output accounts to the paisa
  (the report is still written, with the differences), so a scheduler alerts.

The gateway's GST state comes from ``RIZZPAY_GATEWAY_STATE_CODE`` (worker settings).  The
ledger is read in one ``REPEATABLE READ`` read-only transaction.  Errors print one line to stderr
and exit 1.

The reports framework (warehouse/reports/framework.py, docs/reports.md):

* ``rizzpay reports run KIND --period P [--out DIR] [--param k=v]...`` runs one report (``gst``,
  ``aml`` monthly: ``YYYY-MM``; ``settlement``, ``rbi_tat`` daily: ``YYYY-MM-DD``), stores the
  run with its fingerprint and prints its summary as JSON; ``--out`` also writes the files.
  Exits 4 when a data-quality suite blocked publication (the failures are printed, naming the
  expectation and the rows), 5 when a re-run with unchanged inputs gave different bytes.
* ``rizzpay reports schedule [--interval-s 60] [--once]``: the scheduler process (leader-only).
* ``rizzpay reports list [--kind K] [--period P]``: stored runs, then due periods past their
  deadline with no published run (``late``).
* ``rizzpay reports show RUN_ID --out DIR``: write a stored run's files.
* ``rizzpay reports quality-startup``: seconds to import great-expectations and build its
  ephemeral context (the figure docs/reports.md quotes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from streams.settings import WorkerSettings
from warehouse.reports.framework import (
    NotReproducible,
    ReportKind,
    list_runs,
    load_outputs,
    run_report,
)
from warehouse.reports.gst import DEFAULT_SAC, ReportConfig, gst_report, render_json, write_report
from warehouse.reports.kinds import report_kinds
from warehouse.reports.scheduler import overdue_periods, run_scheduler

EXIT_UNRECONCILED = 3
EXIT_BLOCKED = 4
EXIT_NOT_REPRODUCIBLE = 5


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("reports", help="GST, AML, settlement and RBI reports; the scheduler")
    commands = parser.add_subparsers(dest="reports_command", required=True)
    gst = commands.add_parser("gst", help="monthly GST report on the gateway's fees")
    gst.add_argument("--month", required=True, help="IST calendar month, YYYY-MM")
    gst.add_argument("--out", type=Path, help="directory for the JSON and CSV files")
    gst.add_argument("--sac", default=DEFAULT_SAC, help=f"SAC of the fees (default {DEFAULT_SAC})")
    gst.add_argument("--supplier-gstin", help="the gateway's GSTIN, printed in the export")
    gst.add_argument("--prefix", default="RZP", help="document-number prefix (<= 6 characters)")
    gst.set_defaults(handler=gst_command)

    run = commands.add_parser("run", help="run one report for a period and store it")
    run.add_argument("kind", help="gst, aml, settlement or rbi_tat")
    run.add_argument("--period", required=True, help="YYYY-MM (monthly) or YYYY-MM-DD (daily)")
    run.add_argument("--out", type=Path, help="also write the files here")
    run.add_argument(
        "--param", action="append", default=[], help="k=v report parameter (e.g. sac=997158)"
    )
    run.set_defaults(handler=run_command)

    schedule = commands.add_parser("schedule", help="run the report scheduler (leader-only)")
    schedule.add_argument("--interval-s", type=float, default=60.0, help="seconds between ticks")
    schedule.add_argument("--once", action="store_true", help="one tick, then exit")
    schedule.add_argument("--log-level", default="info")
    schedule.set_defaults(handler=schedule_command)

    listing = commands.add_parser("list", help="stored report runs and late periods")
    listing.add_argument("--kind")
    listing.add_argument("--period")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=list_command)

    show = commands.add_parser("show", help="write a stored run's files")
    show.add_argument("run_id")
    show.add_argument("--out", type=Path, required=True)
    show.set_defaults(handler=show_command)

    startup = commands.add_parser(
        "quality-startup", help="measure great-expectations' import + context time"
    )
    startup.set_defaults(handler=quality_startup_command)


async def _build(dsn: str, month: str, config: ReportConfig) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await gst_report(conn, month, config)
    finally:
        await conn.close()


def gst_command(args: argparse.Namespace) -> int:
    """Build the report for ``args.month``; print it or write it under ``args.out``."""
    settings = WorkerSettings()
    try:
        config = ReportConfig(
            gateway_state=settings.gateway_state_code,
            supplier_gstin=args.supplier_gstin,
            sac=args.sac,
            prefix=args.prefix,
        )
        report = asyncio.run(_build(settings.pg_dsn, args.month, config))
    except (ValueError, OSError, asyncpg.PostgresError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out is None:
        sys.stdout.write(render_json(report))
    else:
        for path in write_report(report, args.out):
            print(path)
    for problem in report["problems"]:
        print(f"warning: {problem}", file=sys.stderr)
    recon = report["reconciliation"]
    if not recon["reconciled"]:
        print(
            f"GST report {args.month} does not reconcile: difference "
            f"{recon['gst_difference_minor']} paise (see reconciliation)",
            file=sys.stderr,
        )
        return EXIT_UNRECONCILED
    return 0


# --------------------------------------------------------------------------------------------
# The reports framework
# --------------------------------------------------------------------------------------------


def _kinds(settings: WorkerSettings) -> dict[str, ReportKind]:
    try:
        from warehouse.aml.settings import AmlSettings  # noqa: PLC0415
    except ImportError:  # the AML package is optional for the other reports
        return report_kinds(gateway_state=settings.gateway_state_code)
    return report_kinds(gateway_state=settings.gateway_state_code, aml_settings=AmlSettings())


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param wants k=v, got {pair!r}")
        params[key] = value
    return params


def _write(out: Path, files: dict[str, bytes]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in sorted(files.items()):
        path = out / name
        path.write_bytes(data)
        written.append(path)
    return written


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.kind`` for ``args.period``; print the run summary (JSON)."""
    settings = WorkerSettings()
    kinds = _kinds(settings)
    kind = kinds.get(args.kind)
    if kind is None:
        print(f"error: unknown report {args.kind!r} (one of {', '.join(kinds)})", file=sys.stderr)
        return 1

    async def go() -> Any:
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            return await run_report(
                conn, kind, args.period, now=datetime.now(UTC), params=_params(args.param)
            )
        finally:
            await conn.close()

    try:
        outcome = asyncio.run(go())
    except NotReproducible as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_REPRODUCIBLE
    except (ValueError, OSError, asyncpg.PostgresError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(outcome.summary(), indent=2, sort_keys=True))
    if args.out is not None and outcome.outputs:
        for path in _write(args.out, dict(outcome.outputs)):
            print(path, file=sys.stderr)
    if outcome.status == "blocked":
        for failure in outcome.quality.failures:
            print(f"blocked: {failure.message()}", file=sys.stderr)
        return EXIT_BLOCKED
    return 0


def schedule_command(args: argparse.Namespace) -> int:
    """The scheduler process: ticks until SIGTERM/SIGINT (or once with ``--once``)."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = WorkerSettings()
    kinds = _kinds(settings)

    def clock() -> datetime:
        return datetime.now(UTC)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.once:

            async def once(_: float) -> None:
                stop.set()

            await run_scheduler(
                settings.pg_dsn, kinds, clock, interval_s=args.interval_s, stop=stop, sleep=once
            )
        else:
            await run_scheduler(
                settings.pg_dsn, kinds, clock, interval_s=args.interval_s, stop=stop
            )

    asyncio.run(go())
    return 0


def list_command(args: argparse.Namespace) -> int:
    settings = WorkerSettings()
    kinds = _kinds(settings)

    async def go() -> tuple[list[Any], list[Any]]:
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            runs = await list_runs(conn, kind=args.kind, period=args.period, limit=args.limit)
            late = await overdue_periods(conn, kinds, datetime.now(UTC))
            return runs, late
        finally:
            await conn.close()

    try:
        runs, late = asyncio.run(go())
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for run in runs:
        print(json.dumps(run.to_json(), sort_keys=True))
    for item in late:
        print(
            json.dumps(
                {
                    "kind": item.kind,
                    "period": item.period,
                    "status": "late",
                    "deadline": item.deadline.isoformat(),
                },
                sort_keys=True,
            )
        )
    return 0


def show_command(args: argparse.Namespace) -> int:
    settings = WorkerSettings()

    async def go() -> dict[str, bytes]:
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            return await load_outputs(conn, args.run_id)
        finally:
            await conn.close()

    files = asyncio.run(go())
    if not files:
        print(f"error: run {args.run_id!r} has no stored files", file=sys.stderr)
        return 1
    for path in _write(args.out, files):
        print(path)
    return 0


def quality_startup_command(args: argparse.Namespace) -> int:
    from warehouse.reports.quality import startup_seconds  # noqa: PLC0415

    print(json.dumps({"great_expectations_startup_s": round(startup_seconds(), 3)}))
    return 0
