"""``rizzpay stack up|down|status|env``: the no-Docker local stack from the command line.

The work is in ``deploy.stack``; this module only parses arguments, prints tables and turns
failures into a message naming the service and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import cast

from deploy.processes import APP_NAMES, stop_app
from deploy.stack import (
    MANAGEABLE,
    ServiceName,
    ServiceStatus,
    StackError,
    env_exports,
    load_settings,
    stack_down,
    stack_up,
    status,
)

EXIT_OK = 0
EXIT_FAILED = 1


def _format_table(rows: Sequence[ServiceStatus]) -> str:
    """Rows as aligned columns, for humans; ``env`` is the machine-readable output."""
    header = ("SERVICE", "STATE", "PID", "ENDPOINT", "DETAIL")
    cells = [header] + [
        (r.name, r.state, "" if r.pid is None else str(r.pid), r.endpoint, r.detail) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


MANAGEABLE_NAMES: tuple[str, ...] = MANAGEABLE


def _service_name(text: str) -> ServiceName:
    """argparse ``type=`` for a service name.

    Used instead of ``choices=``, which rejects an empty ``nargs="*"`` list on Python 3.11.
    """
    if text not in MANAGEABLE_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown service {text!r} (choose from {', '.join(MANAGEABLE_NAMES)})"
        )
    return cast(ServiceName, text)


def _services(args: argparse.Namespace) -> list[ServiceName] | None:
    chosen: list[ServiceName] = args.services
    return chosen or None


def _up(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        rows = stack_up(settings, _services(args))
    except StackError as exc:
        print(f"rizzpay stack up: {exc.service} failed to start.\n\n{exc}", file=sys.stderr)
        print(_format_table(status(settings)), file=sys.stderr)
        return EXIT_FAILED
    print(_format_table(rows))
    return EXIT_OK


def _down(args: argparse.Namespace) -> int:
    settings = load_settings()
    if _services(args) is None:
        # Stop our own processes first: they would only log errors while the services go.
        for name in APP_NAMES:
            pid = stop_app(settings.home, name)
            if pid is not None:
                print(f"stopped {name} (pid {pid})")
    try:
        rows = stack_down(settings, _services(args))
    except StackError as exc:
        print(f"rizzpay stack down: {exc.service} failed to stop.\n\n{exc}", file=sys.stderr)
        return EXIT_FAILED
    print(_format_table(rows))
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    rows = status(load_settings())
    print(_format_table(rows))
    down = [r.name for r in rows if not r.up]
    if down:
        print(f"down: {', '.join(down)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _env(args: argparse.Namespace) -> int:
    for key, value in env_exports(load_settings()).items():
        print(f"export {key}={shlex.quote(value)}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``stack`` and its sub-commands to the ``rizzpay`` parser."""
    stack = subparsers.add_parser(
        "stack",
        help="run Kafka, PostgreSQL and Redis locally without Docker",
        description="The local stack. Data and logs live under $RIZZPAY_HOME (default .rizzpay).",
    )
    commands = stack.add_subparsers(dest="stack_command", required=True)
    services_help = f"any of {', '.join(MANAGEABLE_NAMES)} (default: all)"

    up = commands.add_parser("up", help="start what is not already healthy")
    up.add_argument(
        "services", nargs="*", type=_service_name, metavar="SERVICE", help=services_help
    )
    up.set_defaults(handler=_up)

    down = commands.add_parser("down", help="stop the services the stack manages (data is kept)")
    down.add_argument(
        "services", nargs="*", type=_service_name, metavar="SERVICE", help=services_help
    )
    down.set_defaults(handler=_down)

    commands.add_parser(
        "status", help="is each service answering (exit 1 if any is down)"
    ).set_defaults(handler=_status)
    commands.add_parser(
        "env", help='print `export RIZZPAY_...` lines for a shell: eval "$(rizzpay stack env)"'
    ).set_defaults(handler=_env)
