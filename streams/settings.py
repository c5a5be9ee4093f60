"""Settings of the Faust workers, built once in ``cli.worker`` and passed down."""

from __future__ import annotations

from pydantic import Field

from models.config import ServiceEndpoints
from streams.fees import MdrSchedule


def _default_mdr() -> MdrSchedule:
    # Typical Indian aggregator list prices; UPI P2M and RuPay debit are zero-MDR by law.
    return MdrSchedule(
        default_bps=200,
        method_bps={"card": 190, "netbanking": 175, "wallet": 150, "neft": 50, "imps": 50},
        fixed_fee_minor=0,
    )


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
    # The gateway's GST registration state (29: Karnataka): decides CGST + SGST versus IGST.
    gateway_state_code: str = "29"
    # Fee schedule of merchants that have none of their own (RIZZPAY_DEFAULT_MDR, as JSON).
    default_mdr: MdrSchedule = Field(default_factory=_default_mdr)
    log_level: str = "info"
