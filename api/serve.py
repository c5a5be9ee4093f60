"""How RizzPay serves HTTP: one place, so the intake and its benchmark baseline run the very
same server settings."""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp


def serve(app: ASGIApp, *, host: str, port: int, log_level: str = "warning") -> None:
    """Serve ``app`` with uvloop and httptools (much faster than h11), no access log (it costs
    more than a payment's own work), until the process is stopped."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
        access_log=False,
    )
