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
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg

from streams.settings import WorkerSettings
from warehouse.reports.gst import DEFAULT_SAC, ReportConfig, gst_report, render_json, write_report

EXIT_UNRECONCILED = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("reports", help="reports from the ledger (GST)")
    commands = parser.add_subparsers(dest="reports_command", required=True)
    gst = commands.add_parser("gst", help="monthly GST report on the gateway's fees")
    gst.add_argument("--month", required=True, help="IST calendar month, YYYY-MM")
    gst.add_argument("--out", type=Path, help="directory for the JSON and CSV files")
    gst.add_argument("--sac", default=DEFAULT_SAC, help=f"SAC of the fees (default {DEFAULT_SAC})")
    gst.add_argument("--supplier-gstin", help="the gateway's GSTIN, printed in the export")
    gst.add_argument("--prefix", default="RZP", help="document-number prefix (<= 6 characters)")
    gst.set_defaults(handler=gst_command)


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
