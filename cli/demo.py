"""``rizzpay demo`` (what ``make run`` runs): the whole platform on a realistic burst.

Brings the local stack up, migrates, makes demo merchants, starts the API and the worker,
sends a few thousand payments across merchants and methods, waits until the stream has decided
and posted every accepted one, and prints what happened: accepted, authorized, declined, and the
ledger per merchant checked against the authorized amounts to the paisa.  The API and worker
keep running afterwards so the API docs can be explored; ``make down`` stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg

from api.loadgen import MerchantKey, SendResult, plan_payments, send_payments
from deploy.processes import APP_NAMES, start_app, stop_app, wait_http_ok
from deploy.stack import StackError, StackSettings, load_settings, stack_up
from models.money import format_minor
from warehouse.fraud_store import decision_counts
from warehouse.merchants import create_merchant
from warehouse.migrate import migrate_all
from warehouse.payments import (
    MerchantTotals,
    count_recorded,
    decline_counts,
    merchant_totals,
    status_counts,
)

# Demo merchants: (id, legal name, GST state code).  A few large, many small.
DEMO_MERCHANTS: tuple[tuple[str, str, str], ...] = (
    ("kirana_mart", "Kirana Mart Pvt Ltd", "27"),
    ("chai_point", "Chai Point Beverages LLP", "29"),
    ("bookbazaar", "BookBazaar Online Pvt Ltd", "07"),
    ("yatra_trips", "Yatra Trips India Ltd", "06"),
    ("medplus_rx", "MedPlus Pharmacy Pvt Ltd", "36"),
    ("pixel_games", "Pixel Games Studio Pvt Ltd", "33"),
)
# The analysts' rule set the demo's worker scores with (RIZZPAY_FRAUD_RULES overrides it).
EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "fraud" / "rulesets" / "example.yaml"
# Every accepted payment must be decided and posted within this time, or the demo says so.
SETTLE_TIMEOUT_S = 180.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("demo", help="run the platform on a realistic burst of payments")
    parser.add_argument("--payments", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=7)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    print("1/5 local stack")
    try:
        for row in stack_up(settings):
            print(f"    {row.name:<10} {row.state:<8} {row.endpoint}  {row.detail}")
    except StackError as exc:
        print(f"rizzpay demo: {exc.service} did not start.\n{exc}", file=sys.stderr)
        return 1
    # Fresh processes, so the demo always runs the code in this checkout; stopped before the
    # migrations because a running warehouse sink owns the embedded ClickHouse path.
    for name in APP_NAMES:
        stop_app(settings.home, name)
    print("2/5 migrations and topics")
    report = migrate_all(settings.pg_dsn, settings.clickhouse_dsn, settings.kafka_bootstrap)
    print(f"    applied: postgres {report.postgres}, clickhouse {report.clickhouse}")
    print(f"    topics created: {report.topics or 'none (already there)'}")
    merchants = _demo_merchants(settings)
    print("3/5 API and worker")
    env = {**os.environ, "RIZZPAY_PG_DSN": settings.pg_dsn}
    # Fraud scoring on the example rule set, rules only: the bootstrap model learned the
    # simulator's ₹5-100 spend and would flag most demo payments (docs/fraud.md).
    env.setdefault("RIZZPAY_FRAUD_RULES", str(EXAMPLE_RULES))
    api_pid = start_app(settings.home, "api", ["api", "--port", str(args.port)], env)
    worker_pid = start_app(settings.home, "worker", ["worker"], env)
    # After migrate_all closed its ClickHouse client: the sink must own the chDB path alone.
    start_app(settings.home, "warehouse-sink", ["warehouse", "sink"], env)
    start_app(settings.home, "report-scheduler", ["reports", "schedule"], env)
    base_url = f"http://127.0.0.1:{args.port}"
    wait_http_ok(f"{base_url}/healthz", timeout_s=60, pid=api_pid)
    print(f"    api pid {api_pid} on {base_url}, worker pid {worker_pid}")
    return asyncio.run(_burst(args, settings, merchants, base_url))


def _demo_merchants(settings: StackSettings) -> list[MerchantKey]:
    """The demo merchants and their keys, kept (mode 0600) in ``<home>/demo-merchants.json``."""
    path: Path = settings.home / "demo-merchants.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    async def create_missing() -> None:
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            for merchant_id, name, state in DEMO_MERCHANTS:
                if merchant_id not in known:
                    known[merchant_id] = await create_merchant(conn, merchant_id, name, state)
        finally:
            await conn.close()

    asyncio.run(create_missing())
    path.write_text(json.dumps(known, indent=2))
    path.chmod(0o600)
    return [MerchantKey(m, known[m]) for m, _, _ in DEMO_MERCHANTS]


async def _burst(
    args: argparse.Namespace, settings: StackSettings, merchants: list[MerchantKey], base_url: str
) -> int:
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    planned = plan_payments(merchants, args.payments, seed=args.seed, run_id=run_id)
    print(f"4/5 sending {len(planned)} payments ({run_id}, {args.concurrency} at a time)")
    started = time.perf_counter()
    results = await send_payments(base_url, planned, concurrency=args.concurrency)
    sent_s = time.perf_counter() - started
    accepted = [r.payment_id for r in results if r.status == 202 and r.payment_id]
    print(
        f"    {len(accepted)} accepted in {sent_s:.1f} s ({len(accepted) / sent_s:.0f}/s; this"
        " Python client is the bottleneck here: `make bench` measures the intake with wrk)"
    )

    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=2)
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while (done := await count_recorded(pool, accepted)) < len(accepted):
            if time.monotonic() > deadline:
                print(
                    f"    only {done} of {len(accepted)} posted after {SETTLE_TIMEOUT_S:.0f} s;"
                    f" see {settings.home / 'logs' / 'worker.log'}",
                    file=sys.stderr,
                )
                return 1
            await asyncio.sleep(0.25)
        end_to_end_s = time.perf_counter() - started
        print(f"    all {len(accepted)} decided and posted {end_to_end_s:.1f} s after the first")
        fraud = await decision_counts(pool, accepted)
        print(
            f"    fraud scoring: allowed {fraud.get('allow', 0)}, held for review "
            f"{fraud.get('review', 0)}, blocked {fraud.get('block', 0)} ({EXAMPLE_RULES.name})"
        )
        statuses = await status_counts(pool, accepted)
        waiting = {s: n for s, n in statuses.items() if s in ("created", "requires_action")}
        print(f"    by status: {', '.join(f'{s} {n}' for s, n in statuses.items())}")
        if waiting:
            print(
                f"    {sum(waiting.values())} wait for the customer or the bank (3-D Secure,"
                " netbanking login, NEFT/RTGS transfer to the virtual account); the worker polls"
                " the processors and settles them as they complete or expire"
            )
        totals = await merchant_totals(pool, accepted)
        declines = await decline_counts(pool, accepted)
    finally:
        await pool.close()
    return _report(results, totals, declines, base_url, settings)


def _report(
    results: list[SendResult],
    totals: list[MerchantTotals],
    declines: dict[str, int],
    base_url: str,
    settings: StackSettings,
) -> int:
    rejected = Counter(r.code for r in results if r.status != 202)
    print("5/5 what happened")
    print(
        f"    accepted {sum(1 for r in results if r.status == 202)}, "
        f"rejected {sum(rejected.values())} {dict(rejected) if rejected else ''}"
    )
    captured = sum(t.captured_count for t in totals)
    declined = sum(t.declined_count for t in totals)
    print(f"    captured {captured}, declined {declined} {declines}")
    print()
    print(
        f"    {'merchant':<13}{'capt':>6}{'decl':>5}{'captured':>19}{'ledger pending':>19}"
        f"{'fees + GST':>15}{'net to merchant':>19}"
    )
    rows = [
        (
            t.merchant_id,
            t.captured_count,
            t.declined_count,
            t.captured_minor,
            t.pending_minor,
            t.fees_minor + t.gst_minor,
            t.net_minor,
        )
        for t in totals
    ]
    rows.append(
        (
            "total",
            sum(r[1] for r in rows),
            sum(r[2] for r in rows),
            sum(r[3] for r in rows),
            sum(r[4] for r in rows),
            sum(r[5] for r in rows),
            sum(r[6] for r in rows),
        )
    )
    all_match = True
    for name, n_capt, n_decl, captured_minor, pending_minor, charges_minor, net_minor in rows:
        match = captured_minor == pending_minor
        all_match &= match
        print(
            f"    {name:<13}{n_capt:>6}{n_decl:>5}{format_minor(captured_minor, 'INR'):>19}"
            f"{format_minor(pending_minor, 'INR'):>19}{format_minor(charges_minor, 'INR'):>15}"
            f"{format_minor(net_minor, 'INR'):>19}  {'=' if match else 'MISMATCH'}"
        )
    print()
    print(
        "    ledger pending equals captured amounts to the paisa"
        if all_match
        else "    LEDGER MISMATCH: see the rows marked above"
    )
    print()
    print("Where to look next:")
    print(f"    API docs         {base_url}/docs")
    print(f"    logs             {settings.home / 'logs'} (api.log, worker.log, kafka.log)")
    print(f"    merchant keys    {settings.home / 'demo-merchants.json'}")
    print("    reports          rizzpay reports list (scheduler log: report-scheduler.log)")
    print("    stop everything  make down")
    return 0 if all_match else 1
