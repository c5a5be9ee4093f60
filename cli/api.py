"""``rizzpay api``: serve the HTTP intake with uvicorn."""

from __future__ import annotations

import argparse

from api.app import create_app
from api.serve import serve
from api.settings import ApiSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("api", help="serve the REST API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="warning")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    serve(create_app(ApiSettings()), host=args.host, port=args.port, log_level=args.log_level)
    return 0
