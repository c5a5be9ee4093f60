"""``rizzpay fraud`` commands for live scoring: analysts, labels export, bootstrap.

* ``rizzpay fraud analysts create ID --name NAME`` creates a risk analyst (or re-issues their
  token) and prints the token for the review API (``Authorization: Bearer rza_…``).
* ``rizzpay fraud labels export --out FILE`` writes the scored payments with analysts' labels as
  a transaction file that ``rizzpay fraud train`` / ``evaluate`` / ``backtest`` read.
* ``rizzpay fraud bootstrap`` registers a model trained on simulated payments when the registry
  has no champion (``make run`` does this), so live scoring has a model on a fresh machine.

Exit codes as in ``cli/fraud.py``: 0 success, 2 bad input (the message says what).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register_live(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    registry_argument: Any,
    who_argument: Any,
) -> None:
    """Add ``analysts``, ``labels`` and ``bootstrap`` under ``rizzpay fraud``."""
    analysts = sub.add_parser("analysts", help="risk analysts of the review API")
    actions = analysts.add_subparsers(dest="analysts_command", required=True)
    create = actions.add_parser("create", help="create an analyst and print a new token")
    create.add_argument("analyst_id", help="lower-case id, e.g. asha.k")
    create.add_argument("--name", required=True, help="display name")
    create.set_defaults(handler=analysts_create_command)

    labels = sub.add_parser("labels", help="analysts' labels as training data")
    label_actions = labels.add_subparsers(dest="labels_command", required=True)
    export = label_actions.add_parser(
        "export", help="write scored payments with their labels as a transaction file"
    )
    export.add_argument("--out", type=Path, required=True, help=".csv or .parquet")
    export.add_argument("--since", type=dt.date.fromisoformat, default=None, help="UTC day")
    export.add_argument("--until", type=dt.date.fromisoformat, default=None, help="UTC day, excl.")
    export.add_argument(
        "--unlabelled",
        choices=("legit", "drop"),
        default="legit",
        help="payments nobody labelled: count them as legitimate (default; a fraud is labelled "
        "when it is found) or leave them out",
    )
    export.set_defaults(handler=labels_export_command)

    boot = sub.add_parser(
        "bootstrap", help="register a simulation-trained champion if the registry has none"
    )
    boot.add_argument("--model", default="logreg", help="model family (default logreg)")
    registry_argument(boot)
    who_argument(boot)
    boot.set_defaults(handler=bootstrap_command)


def _fail(message: object) -> int:
    print(f"rizzpay fraud: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def analysts_create_command(args: argparse.Namespace) -> int:
    import asyncpg  # noqa: PLC0415  (lazy)

    from models.config import ServiceEndpoints  # noqa: PLC0415  (lazy)
    from warehouse.fraud_store import create_analyst  # noqa: PLC0415  (lazy)

    async def go() -> str:
        conn = await asyncpg.connect(ServiceEndpoints().pg_dsn)
        try:
            return await create_analyst(conn, args.analyst_id, args.name)
        finally:
            await conn.close()

    try:
        token = asyncio.run(go())
    except asyncpg.CheckViolationError:
        return _fail(f"analyst id {args.analyst_id!r}: use 2-64 of a-z 0-9 . _ -")
    print(token)
    return EXIT_OK


def export_frame(rows: list[Any], *, unlabelled: str) -> Any:
    """The transaction file's frame of ``fraud_store.labelled_transactions`` rows (columns of
    ``fraud/dataset.py``; ``score`` and ``decision`` as recorded)."""
    import pandas as pd  # type: ignore[import-untyped]  # noqa: PLC0415  (lazy)

    records = []
    for row in rows:
        if row["is_fraud"] is None and unlabelled == "drop":
            continue
        tx = json.loads(row["transaction"])
        records.append(
            {
                "transaction_id": row["payment_id"],
                "tx_datetime": row["feature_time"],
                # A payment without a customer id is its own customer (no history to share).
                "customer_id": tx.get("customer_id") or f"payment:{row['payment_id']}",
                "terminal_id": row["merchant_id"],
                "amount_minor": int(row["amount_minor"]),
                "currency": row["currency"].strip(),
                "method": tx.get("method"),
                "card_bin": tx.get("card_bin"),
                "card_last4": tx.get("card_last4"),
                "vpa": tx.get("vpa"),
                "device_id": tx.get("device_id"),
                "ip": tx.get("ip"),
                "is_fraud": int(bool(row["is_fraud"])),
                "score": row["score"],
                "decision": row["decision"],
            }
        )
    return pd.DataFrame.from_records(records)


def labels_export_command(args: argparse.Namespace) -> int:
    import asyncpg  # noqa: PLC0415  (lazy)

    from fraud import dataset  # noqa: PLC0415  (lazy)
    from models.config import ServiceEndpoints  # noqa: PLC0415  (lazy)
    from warehouse.fraud_store import labelled_transactions  # noqa: PLC0415  (lazy)

    def instant(day: dt.date | None) -> dt.datetime | None:
        return None if day is None else dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)

    async def go() -> list[Any]:
        conn = await asyncpg.connect(ServiceEndpoints().pg_dsn)
        try:
            return await labelled_transactions(
                conn,
                since=instant(args.since),
                until=instant(args.until),
                only_labelled=args.unlabelled == "drop",
            )
        finally:
            await conn.close()

    if args.out.suffix.lower() not in dataset.SUFFIXES:
        return _fail(f"{args.out}: use a .csv or .parquet file")
    frame = export_frame(asyncio.run(go()), unlabelled=args.unlabelled)
    if frame.empty:
        return _fail("no scored payments in that period; nothing written")
    try:
        dataset.validate_transactions(frame, source=str(args.out))
    except dataset.DatasetError as exc:
        return _fail(exc)
    dataset.write_transactions(frame, args.out)
    frauds = int(frame["is_fraud"].sum())
    print(f"wrote {len(frame)} payments ({frauds} labelled fraud) to {args.out}")
    return EXIT_OK


def bootstrap_command(args: argparse.Namespace) -> int:
    from cli.fraud import _open_registry, _who  # noqa: PLC0415  (lazy; shared helpers)
    from fraud.bootstrap import bootstrap  # noqa: PLC0415  (lazy)
    from fraud.registry import RegistryError  # noqa: PLC0415  (lazy)

    reg = _open_registry(args)
    try:
        info = bootstrap(reg, who=_who(args), model=args.model)
    except (RegistryError, KeyError) as exc:
        return _fail(exc)
    if info is None:
        print(f"{reg.root}: champion {reg.aliases().champion} already deployed; nothing to do")
    else:
        print(f"{reg.root}: registered {info.version} (simulation-trained) as champion")
    return EXIT_OK
