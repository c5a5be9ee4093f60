"""``rizzpay api``: serve the HTTP intake with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from api.app import create_app
from api.settings import ApiSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("api", help="serve the REST API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="warning")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    app = create_app(ApiSettings())
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level=args.log_level,
        access_log=False,
    )
    return 0
