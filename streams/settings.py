"""Settings of the Faust workers, built once in ``cli.worker`` and passed down."""

from __future__ import annotations

from models.config import ServiceEndpoints


class WorkerSettings(ServiceEndpoints):
    app_id: str = "rizzpay-payments"
    # Batches amortise one PostgreSQL transaction over many payments (FACTS: per-event agents top
    # out at a few hundred messages/s).  A batch waits at most batch_wait_s to fill.
    batch_size_max: int = 500
    batch_wait_s: float = 0.05
    # Transient failures (database restart, broker hiccup) are retried with exponential backoff
    # up to this cap, forever: an agent that raised would acknowledge the batch and lose it.
    retry_backoff_s_max: float = 10.0
    pg_pool_size_max: int = 4
    # Offsets are committed this often; what was processed since is reprocessed after a crash,
    # which the idempotent writes absorb.
    commit_interval_s: float = 1.0
    web_port: int = 6066
    log_level: str = "info"
