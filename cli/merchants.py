"""``rizzpay merchants``: create merchants and issue API keys."""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

from models.config import ServiceEndpoints
from warehouse.merchants import create_merchant


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("merchants", help="manage merchants")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a merchant and print a new API key")
    create.add_argument("merchant_id")
    create.add_argument("--name", required=True)
    create.add_argument("--state-code", required=True, help="GST state code, e.g. 27")
    create.add_argument("--gstin")
    create.set_defaults(handler=run_create)


def run_create(args: argparse.Namespace) -> int:
    async def go() -> str:
        conn = await asyncpg.connect(ServiceEndpoints().pg_dsn)
        try:
            return await create_merchant(
                conn, args.merchant_id, args.name, args.state_code, gstin=args.gstin
            )
        finally:
            await conn.close()

    print(asyncio.run(go()))
    return 0
