"""Migration 0003: the payment event log and operational metrics as time series.

Python, not SQL, because the DDL branches on the server: TimescaleDB hypertables, a continuous
aggregate and retention/compression policies where the extension exists; monthly range
partitions and a plain rollup table where it does not.  The statements of both paths are in
``warehouse.timeseries`` (and checked by its unit tests); ``FINGERPRINT`` holds them so that
changing either path after this migration was applied is reported as drift.
"""

from __future__ import annotations

import asyncpg

from warehouse.timeseries import apply_schema, fingerprint_text

FINGERPRINT = fingerprint_text()


async def apply(conn: asyncpg.Connection) -> None:
    """Create the time-series schema on the path this server supports."""
    await apply_schema(conn)
