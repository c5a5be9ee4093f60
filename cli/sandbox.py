"""``rizzpay sandbox serve``: run the local processor sandboxes (Razorpay-, PayU-, Stripe- and
bank-shaped) until interrupted.

Ports: provider *i* (in the order razorpay, payu, stripe, bank) listens on ``--port + i`` and
its admin API on ``--admin-port + i`` (default ``--port + 100``); ``--port 0`` picks free ports.
The first line on stdout is JSON naming every sandbox's ``url`` and ``admin_url``, so a script
that started the command can read where they are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from sandbox import PROVIDERS, SandboxProvider
from sandbox.core import SandboxSettings
from sandbox.server import serve_sandboxes
from streams.connectors.settings import SANDBOX_PORT_DEFAULT


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("sandbox", help="local processor sandboxes")
    actions = parser.add_subparsers(dest="sandbox_command", required=True)
    serve = actions.add_parser("serve", help="serve the sandboxes until interrupted")
    serve.add_argument("--provider", choices=("all", *PROVIDERS), default="all")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=SANDBOX_PORT_DEFAULT)
    serve.add_argument("--admin-port", type=int, default=None)
    serve.add_argument("--latency-ms-min", type=int, default=50)
    serve.add_argument("--latency-ms-max", type=int, default=300)
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--upi-approve-ms", type=int, default=1500)
    serve.add_argument("--upi-expiry-ms", type=int, default=5000)
    serve.add_argument("--neft-settle-ms", type=int, default=2000)
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    providers: tuple[SandboxProvider, ...] = (
        PROVIDERS if args.provider == "all" else (args.provider,)
    )
    try:
        settings = SandboxSettings(
            latency_ms_min=args.latency_ms_min,
            latency_ms_max=args.latency_ms_max,
            seed=args.seed,
            upi_approve_ms=args.upi_approve_ms,
            upi_expiry_ms=args.upi_expiry_ms,
            neft_settle_ms=args.neft_settle_ms,
        )
    except ValueError as exc:
        print(f"rizzpay sandbox: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(providers, settings, args))
    return 0


async def _serve(
    providers: tuple[SandboxProvider, ...], settings: SandboxSettings, args: argparse.Namespace
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_sandboxes(
        providers,
        settings,
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        log_level=args.log_level,
    ) as running:
        listing = {
            name: {"url": sandbox.url, "admin_url": sandbox.admin_url}
            for name, sandbox in running.items()
        }
        print(json.dumps(listing), flush=True)
        await stop.wait()
