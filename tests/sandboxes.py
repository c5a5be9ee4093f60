"""The processors' sandboxes as a test starts them: ``rizzpay sandbox serve --port 0`` in a
subprocess, its first stdout line saying where each sandbox listens.  Also the environment a
``rizzpay worker`` needs to charge through them."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from models.config import REPO_ROOT

STARTUP_TIMEOUT_S = 20.0

# Compressed customer-side delays (a person approving a UPI collect in 300 ms) and a small but
# real network latency: the worker's tests stay quick and still see every answer arrive late.
WORKER_SANDBOX_ARGS: tuple[str, ...] = (
    "--latency-ms-min", "2",
    "--latency-ms-max", "15",
    "--seed", "11",
    "--upi-approve-ms", "300",
    "--upi-expiry-ms", "1500",
    "--neft-settle-ms", "300",
)  # fmt: skip

Listing = dict[str, dict[str, str]]

# Worker settings' field of each sandbox's URL (RIZZPAY_CONNECTORS_<FIELD>).
URL_ENV: dict[str, str] = {
    "razorpay": "RIZZPAY_CONNECTORS_RAZORPAY_URL",
    "payu": "RIZZPAY_CONNECTORS_PAYU_URL",
    "stripe": "RIZZPAY_CONNECTORS_STRIPE_URL",
    "bank": "RIZZPAY_CONNECTORS_BANK_URL",
}


@contextmanager
def running_sandboxes(log: Path, args: Sequence[str] = WORKER_SANDBOX_ARGS) -> Iterator[Listing]:
    """Serve every sandbox on free loopback ports until the block ends."""
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "sandbox", "serve", "--port", "0", *args],
            cwd=REPO_ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("RIZZPAY_")},
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT_S)
        line = proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"sandboxes did not start: {log.read_text(errors='replace')}")
        listing: Listing = json.loads(line)
        assert all(urlsplit(s["url"]).hostname == "127.0.0.1" for s in listing.values())
        yield listing
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def worker_env(listing: Listing) -> dict[str, str]:
    """The environment that points a worker's connectors at ``listing``'s sandboxes, with the
    poller and the failover enquiry compressed like the sandboxes' customers."""
    return {
        **{URL_ENV[name]: s["url"] for name, s in listing.items() if name in URL_ENV},
        "RIZZPAY_AUTHORIZER": "connectors",
        "RIZZPAY_PROCESSOR_POLL_INTERVAL_S": "0.25",
        "RIZZPAY_PROCESSOR_ENQUIRY_DELAY_S": "0.3",
        "RIZZPAY_LATE_DEBIT_POLL_INTERVAL_S": "0.5",
    }
