"""Baseline A of ``make bench``: a bare FastAPI JSON echo.

``POST /v1/payments`` parses the JSON body and returns it (200), nothing else: no auth, no Redis,
no Kafka.  It is served exactly as ``rizzpay api`` serves the intake (uvicorn, uvloop, httptools,
one process, access log off), so the intake's requests/s divided by this one's is the share of
plain FastAPI speed that the intake keeps.

Run as a script: ``python bench/echo_app.py --port 18401``.
"""

from __future__ import annotations

import argparse
from typing import Any

from fastapi import FastAPI

from api.serve import serve

app = FastAPI(title="bench echo")


@app.post("/v1/payments")
async def echo(body: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object, unchanged."""
    return body


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bare FastAPI JSON echo (bench baseline)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18401)
    args = parser.parse_args(argv)
    serve(app, host=args.host, port=args.port)  # the intake's own server settings
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
