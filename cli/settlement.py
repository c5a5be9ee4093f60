"""``rizzpay settlement``: settlement batches, payouts and their reports.

* ``rizzpay settlement run [--cutoff ISO|DATE] [--merchant ID]... [--instant]`` settles every
  merchant with unsettled ledger lines (or the ones named) at its cutoff: by default the one due
  today under its schedule (T+1: 00:00 IST today); ``--cutoff 2026-11-04`` means the batch paid
  on that IST date, ``--cutoff 2026-11-04T00:00:00+05:30`` an exact instant (without an offset
  it is read as IST).  ``--instant`` settles the named merchants up to now, with the instant
  fee.  Prints one JSON line per batch; exits 3 when a batch was held, so a scheduler alerts.
* ``rizzpay settlement report BATCH_ID --format csv|json|event`` prints the batch report (line
  items and totals, paise) or its webhook event.
* ``rizzpay settlement payout-complete BATCH_ID --utr UTR [--amount PAISE]`` records the bank's
  UTR for the batch's payout; completing again with the same UTR changes nothing.
* ``rizzpay settlement configure MERCHANT_ID [--delay-days N] [--reserve-bps B
  --reserve-days D] [--instant/--no-instant] [--holder NAME --account NUMBER --ifsc IFSC]`` sets
  the merchant's schedule and payout account (only the masked account number is kept).

Every batch a run produces (new or found already recorded) is announced as
``settlement.created`` on the ``settlement.events`` topic, and a completed payout as
``settlement.paid`` (with the UTR), for merchants' webhooks.  The events are sent after the
database committed; their ids are derived from the batch, so re-running the command after a
crash re-announces them and receivers deduplicate.

The clock is read here, once per command, and passed down; endpoints and the gateway's GST
state and default MDR come from ``RIZZPAY_*`` settings.  Errors print one line to stderr and
exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import TypeVar

import asyncpg

from api.publisher import BrokerUnavailable, KafkaPublisher
from models.events import SettlementCreated, SettlementPaid, encode
from models.topics import SETTLEMENT_EVENTS
from streams.settings import WorkerSettings
from streams.settlement import (
    IST,
    InvalidBankDetails,
    SettlementSchedule,
    render_csv,
    render_json,
    settlement_created_event,
    settlement_event,
    settlement_paid_event,
)
from warehouse.settlement_store import (
    PlatformTerms,
    SettlementError,
    complete_payout,
    configure_merchant,
    load_report,
    merchant_config,
    run_settlement,
)

T = TypeVar("T")
EXIT_HELD = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("settlement", help="settlement batches, payouts and reports")
    commands = parser.add_subparsers(dest="settlement_command", required=True)

    run = commands.add_parser("run", help="settle merchants at their cutoff")
    run.add_argument(
        "--cutoff",
        type=_cutoff_arg,
        help="settlement date YYYY-MM-DD, or an ISO 8601 instant (no offset: IST)",
    )
    run.add_argument("--merchant", action="append", dest="merchants", help="repeatable")
    run.add_argument("--currency", default="INR")
    run.add_argument("--instant", action="store_true", help="instant settlement up to now")
    run.set_defaults(handler=lambda args: _main(run_command, args))

    report = commands.add_parser("report", help="print a batch report")
    report.add_argument("batch_id")
    report.add_argument("--format", choices=("csv", "json", "event"), default="json")
    report.set_defaults(handler=lambda args: _main(report_command, args))

    payout = commands.add_parser("payout-complete", help="record a payout's UTR")
    payout.add_argument("batch_id")
    payout.add_argument("--utr", required=True, help="22-character NEFT/RTGS UTR")
    payout.add_argument("--amount", type=int, help="amount on the bank statement, paise")
    payout.set_defaults(handler=lambda args: _main(payout_command, args))

    configure = commands.add_parser("configure", help="set a merchant's schedule and bank")
    configure.add_argument("merchant_id")
    configure.add_argument("--delay-days", type=int, help="T+n (default 1)")
    configure.add_argument("--reserve-bps", type=int, help="rolling reserve, basis points")
    configure.add_argument("--reserve-days", type=int, help="days the reserve is held")
    configure.add_argument("--instant", action=argparse.BooleanOptionalAction, default=None)
    configure.add_argument("--holder", help="account holder name")
    configure.add_argument("--account", help="account number (stored masked)")
    configure.add_argument("--ifsc")
    configure.set_defaults(handler=lambda args: _main(configure_command, args))


def _cutoff_arg(value: str) -> date | datetime:
    """A settlement date (``YYYY-MM-DD``) or an instant; an instant without offset is IST."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date or ISO 8601 instant: {value!r}") from exc
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=IST)


Command = Callable[[asyncpg.Connection, argparse.Namespace, datetime], Awaitable[int]]


def _main(command: Command, args: argparse.Namespace) -> int:
    """Run ``command`` on one connection with the clock read now; errors exit 1."""
    settings = WorkerSettings()
    args.terms = PlatformTerms(settings.gateway_state_code, settings.default_mdr)
    args.settings = settings

    async def go() -> int:
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            return await command(conn, args, datetime.now(UTC))
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except (SettlementError, InvalidBankDetails, ValueError, BrokerUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def run_command(conn: asyncpg.Connection, args: argparse.Namespace, now: datetime) -> int:
    if args.instant and not args.merchants:
        raise SettlementError("--instant settles named merchants only: add --merchant")
    cutoff = args.cutoff if isinstance(args.cutoff, datetime) else None
    settlement_date = args.cutoff if not isinstance(args.cutoff, datetime) else None
    outcomes = await run_settlement(
        conn,
        now=now,
        terms=args.terms,
        merchant_ids=args.merchants,
        cutoff=cutoff,
        settlement_date=settlement_date,
        currency=args.currency,
        instant=args.instant,
    )
    for outcome in outcomes:
        print(json.dumps(asdict(outcome), ensure_ascii=False))
    reports = [await load_report(conn, o.batch_id) for o in outcomes]
    await _announce(args.settings, [settlement_created_event(r) for r in reports])
    held = [o for o in outcomes if o.status == "held"]
    print(
        f"{len(outcomes)} batches, {sum(o.changed for o in outcomes)} new or changed, "
        f"{len(held)} held",
        file=sys.stderr,
    )
    return EXIT_HELD if held else 0


async def report_command(conn: asyncpg.Connection, args: argparse.Namespace, now: datetime) -> int:
    del now
    report = await load_report(conn, args.batch_id)
    if args.format == "csv":
        sys.stdout.write(render_csv(report))
    elif args.format == "json":
        sys.stdout.write(render_json(report))
    else:
        print(json.dumps(settlement_event(report), indent=2, ensure_ascii=False))
    return 0


async def payout_command(conn: asyncpg.Connection, args: argparse.Namespace, now: datetime) -> int:
    outcome = await complete_payout(
        conn, args.batch_id, args.utr, now=now, amount_minor=args.amount
    )
    print(json.dumps(asdict(outcome)))
    report = await load_report(conn, args.batch_id)
    await _announce(args.settings, [settlement_paid_event(report)])
    return 0


async def _announce(
    settings: WorkerSettings, events: Sequence[SettlementCreated | SettlementPaid]
) -> None:
    """Publish settlement events (keyed by merchant) and wait for the broker's acknowledgement;
    raises :class:`BrokerUnavailable` when it does not come."""
    if not events:
        return
    publisher = KafkaPublisher(settings.kafka_bootstrap, delivery_timeout_ms=10_000)
    topic = SETTLEMENT_EVENTS.full_name(settings.topic_prefix)
    try:
        await asyncio.gather(*(publisher.publish(topic, e.merchant_id, encode(e)) for e in events))
    finally:
        publisher.close()


async def configure_command(
    conn: asyncpg.Connection, args: argparse.Namespace, now: datetime
) -> int:
    current = (await merchant_config(conn, args.merchant_id)).schedule
    changes = {
        "delay_days": args.delay_days,
        "rolling_reserve_bps": args.reserve_bps,
        "rolling_reserve_days": args.reserve_days,
        "instant_enabled": args.instant,
    }
    schedule = SettlementSchedule.model_validate(
        current.model_dump() | {k: v for k, v in changes.items() if v is not None}
    )
    config = await configure_merchant(
        conn,
        args.merchant_id,
        now=now,
        schedule=schedule,
        holder_name=args.holder,
        account_number=args.account,
        ifsc=args.ifsc,
    )
    print(
        json.dumps(
            {
                "merchant_id": config.merchant_id,
                "schedule": config.schedule.model_dump(),
                "payout_account": None
                if config.payout_account is None
                else asdict(config.payout_account),
            }
        )
    )
    return 0
