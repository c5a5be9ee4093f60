"""The one ``rizzpay`` command.  Each sub-command lives in its own module in this package and
exposes ``register(subparsers)``; this file only wires them together."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Module names under ``cli`` that provide a sub-command, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "stack",
    "migrate",
    "merchants",
    "api",
    "worker",
    "demo",
    "fraud",
    "warehouse",
    "sandbox",
    "settlement",
    "ledger",
    "reports",
    "dashboards",
    "aml",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rizzpay", description="RizzPay payment gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
