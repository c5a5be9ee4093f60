"""``rizzpay ledger``: checks between the real-time balances and the book of record.

* ``rizzpay ledger reconcile [--settle-s S]`` proves that the streaming ``balances`` table (read
  from its changelog topic, i.e. the state a restarted worker recovers) equals the PostgreSQL
  ledger's balances over the entry kinds the lifecycle stream carries, account by account, to
  the paisa.  It prints one JSON line per difference (``account``, ``table_minor``,
  ``ledger_minor``, ``delta_minor`` = table − ledger, signed paise, debit positive) and a
  summary on stderr, and exits 3 when there is any difference (0 when none).

* ``rizzpay ledger reconcile-wallets`` proves that every wallet's balance and held amount (the
  ``wallets`` table the wallet API decides on, docs/decisions/0003) equal its ledger accounts,
  and lists every difference the same way (``delta_minor`` = table − ledger, holder's sign),
  including ledger wallet accounts with no wallet; exit 3 when there is any.

The ledger commits before the lifecycle event that the table learns from is even sent, so a
reconciliation during traffic sees the table a moment behind: differences are re-checked for up
to ``--settle-s`` seconds (default 10) and only those that persist are reported.  Endpoints and
the topic prefix come from ``RIZZPAY_*`` settings; errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import asyncpg

from streams.balances import (
    LIFECYCLE_ENTRY_KINDS,
    Difference,
    changelog_topic,
    differences,
    read_changelog,
    table_balances,
)
from streams.settings import WorkerSettings
from warehouse.balances_store import ledger_balances
from warehouse.wallet_store import reconcile as reconcile_wallets

EXIT_DIFFERENCES = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("ledger", help="ledger checks: reconcile real-time balances")
    commands = parser.add_subparsers(dest="ledger_command", required=True)
    reconcile = commands.add_parser(
        "reconcile", help="prove the streaming balances equal the PostgreSQL ledger"
    )
    reconcile.add_argument(
        "--settle-s",
        type=float,
        default=10.0,
        help="seconds to let in-flight events reach the table before reporting (default 10)",
    )
    reconcile.set_defaults(handler=reconcile_main)
    wallets = commands.add_parser(
        "reconcile-wallets", help="prove wallet balances equal the PostgreSQL ledger"
    )
    wallets.set_defaults(handler=reconcile_wallets_main)


async def reconcile(settings: WorkerSettings, *, settle_s: float) -> list[Difference]:
    """The accounts whose table and ledger balances still differ after ``settle_s`` seconds
    of re-checking (empty: they agree)."""
    topic = changelog_topic(settings)
    deadline = time.monotonic() + settle_s
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        while True:
            changelog = await asyncio.to_thread(read_changelog, settings.kafka_bootstrap, topic)
            ledger = await ledger_balances(conn, LIFECYCLE_ENTRY_KINDS)
            found = differences(table_balances(changelog), ledger)
            if not found or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


def reconcile_main(args: argparse.Namespace) -> int:
    settings = WorkerSettings()
    try:
        found = asyncio.run(reconcile(settings, settle_s=args.settle_s))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for d in found:
        print(
            json.dumps(
                {
                    "account": d.account_id,
                    "table_minor": d.table_minor,
                    "ledger_minor": d.ledger_minor,
                    "delta_minor": d.delta_minor,
                }
            )
        )
    if found:
        print(f"{len(found)} accounts differ between the table and the ledger", file=sys.stderr)
        return EXIT_DIFFERENCES
    print("table balances equal the ledger to the paisa", file=sys.stderr)
    return 0


def reconcile_wallets_main(args: argparse.Namespace) -> int:
    settings = WorkerSettings()

    async def run() -> list[dict[str, object]]:
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            found = await reconcile_wallets(conn)
        finally:
            await conn.close()
        return [
            {
                "wallet_id": d.wallet_id,
                "account": d.account_id,
                "table_minor": d.table_minor,
                "ledger_minor": d.ledger_minor,
                "delta_minor": d.difference_minor,
            }
            for d in found
        ]

    try:
        found = asyncio.run(run())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in found:
        print(json.dumps(line))
    if found:
        print(f"{len(found)} wallet accounts differ from the ledger", file=sys.stderr)
        return EXIT_DIFFERENCES
    print("wallet balances equal the ledger to the paisa", file=sys.stderr)
    return 0
