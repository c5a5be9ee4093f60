"""``rizzpay worker``: run the Faust stream workers."""

from __future__ import annotations

import argparse

import faust

from streams.app import create_app
from streams.settings import WorkerSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("worker", help="run the stream-processing workers")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = WorkerSettings()
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level)
    worker.execute_from_commandline()  # returns only when the worker stops
    return 0
