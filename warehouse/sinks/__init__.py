"""Sinks from Kafka into the warehouse: ClickHouse facts and the PostgreSQL time series.

``rows`` builds rows from events (pure), ``clickhouse_sink`` and ``postgres_sink`` write batches
idempotently, ``consumer`` is the loop that ``rizzpay warehouse sink`` runs.
"""

from warehouse.sinks.postgres_sink import sink_lag

__all__ = ["sink_lag"]
