"""The batched, idempotent ClickHouse writer of the payment facts.

A batch is written with one INSERT per table.  Retrying a batch, or replaying a topic from
offset 0, inserts rows that already exist; the tables are ReplacingMergeTree ordered by a key
ending in ``event_id``, so the copies collapse into one row at merge time, and every reader sees
one row per event now by reading with ``FINAL`` (or ``argMax(column, loaded_at)`` grouped by
``event_id``).  :meth:`ClickHouseSink.totals` shows the pattern.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import clickhouse_connect

from warehouse.migrate import migrate_clickhouse
from warehouse.sinks.rows import FraudScoreRow, PaymentEventRow, PaymentRow

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
PAYMENTS_TABLE = "payments"
EVENTS_TABLE = "payment_events"
SCORES_TABLE = "fraud_scores"


class ClickHouseSink:
    """Writes :class:`PaymentRow` and :class:`PaymentEventRow` batches to ``database``.

    Holds a clickhouse-connect client: with a ``chdb://`` DSN this process owns the embedded
    engine's data path, and no other process may open it while the sink runs.
    """

    def __init__(self, client: Any, database: str) -> None:
        if not _IDENTIFIER.match(database):
            raise ValueError(f"not a ClickHouse database name: {database!r}")
        self.client = client
        self.database = database

    @classmethod
    def connect(cls, dsn: str, database: str, *, migrate: bool = True) -> ClickHouseSink:
        """Open ``dsn`` and, unless ``migrate`` is False, apply pending ClickHouse migrations
        to ``database`` (the sink is the one process that may, for an embedded engine)."""
        client = clickhouse_connect.get_client(dsn=dsn)
        if migrate:
            migrate_clickhouse(client, database)
        return cls(client, database)

    def write(
        self,
        payments: Sequence[PaymentRow],
        events: Sequence[PaymentEventRow],
        scores: Sequence[FraudScoreRow] = (),
    ) -> None:
        """Insert one batch; safe to repeat with the same rows."""
        if payments:
            self.client.insert(
                f"{self.database}.{PAYMENTS_TABLE}",
                [row.values() for row in payments],
                column_names=list(PaymentRow.columns()),
            )
        if events:
            self.client.insert(
                f"{self.database}.{EVENTS_TABLE}",
                [row.values() for row in events],
                column_names=list(PaymentEventRow.columns()),
            )
        if scores:
            self.client.insert(
                f"{self.database}.{SCORES_TABLE}",
                [row.values() for row in scores],
                column_names=list(FraudScoreRow.columns()),
            )

    def totals(self) -> dict[str, tuple[int, int]]:
        """Rows and the sum of ``amount_minor`` (minor units, all currencies together) per
        table and, for ``payment_events``, per event type, one row per event (FINAL)."""
        db = self.database
        out: dict[str, tuple[int, int]] = {}
        payments = self.client.query(
            f"SELECT count(), sum(amount_minor) FROM {db}.{PAYMENTS_TABLE} FINAL"  # noqa: S608
        ).result_rows
        out[PAYMENTS_TABLE] = (int(payments[0][0]), int(payments[0][1]))
        events = self.client.query(
            f"SELECT event_type, count(), sum(amount_minor) FROM {db}.{EVENTS_TABLE} FINAL "  # noqa: S608
            "GROUP BY event_type"
        ).result_rows
        for event_type, count, amount in events:
            out[f"{EVENTS_TABLE}:{event_type}"] = (int(count), int(amount))
        return out

    def close(self) -> None:
        self.client.close()
