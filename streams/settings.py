"""Settings of the Faust workers, built once in ``cli.worker`` and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from models.config import ServiceEndpoints, default_home
from streams.connectors.settings import ConnectorSettings
from streams.fees import MdrSchedule
from streams.notifications.settings import NotificationSettings
from streams.webhooks.settings import WebhookSettings


def _default_mdr() -> MdrSchedule:
    # Typical Indian aggregator list prices; UPI P2M and RuPay debit are zero-MDR by law.
    return MdrSchedule(
        default_bps=200,
        method_bps={"card": 190, "netbanking": 175, "wallet": 150, "neft": 50, "imps": 50},
        fixed_fee_minor=0,
    )


def _connector_settings() -> ConnectorSettings:
    # RIZZPAY_CONNECTORS_* from the environment, else from stack.env, where `rizzpay stack up`
    # writes the local sandboxes' URLs.
    return ConnectorSettings(_env_file=default_home() / "stack.env")


PROCESSOR_URL_FIELDS = frozenset({"razorpay_url", "payu_url", "stripe_url", "bank_url"})


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
    # How soon the group notices a worker that died without leaving (SIGKILL, lost host) and
    # hands its partitions to the others.  Faust's 60 s default holds a dead worker's partitions
    # for a minute; Kafka's own consumers default to 45 s.  30 s: with 10 s, live members on a
    # loaded 2-core machine seemed to drop out of the group.  Heartbeats go every 3 s.
    broker_session_timeout_s: float = 30.0
    broker_heartbeat_interval_s: float = 3.0
    web_port: int = 6066
    # The gateway's GST registration state (29: Karnataka): decides CGST + SGST versus IGST.
    gateway_state_code: str = "29"
    # Fee schedule of merchants that have none of their own (RIZZPAY_DEFAULT_MDR, as JSON).
    default_mdr: MdrSchedule = Field(default_factory=_default_mdr)
    log_level: str = "info"
    # Wallet holds past their deadline are released this often (streams/wallet_expiry.py).
    wallet_hold_sweep_interval_s: float = Field(default=5.0, gt=0)
    # Fraud scoring (docs/fraud.md): the analysts' YAML rule set (RIZZPAY_FRAUD_RULES; reloaded
    # when it changes) and the model registry whose champion decides and whose challenger is
    # scored in shadow (RIZZPAY_FRAUD_REGISTRY).  Unset: no rules (allow) / no models.
    fraud_rules: Path | None = None
    fraud_registry: Path | None = None
    # Merchant webhook delivery (RIZZPAY_WEBHOOKS, as JSON; see streams/webhooks/settings.py).
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    # Customer receipts and failure notices (RIZZPAY_NOTIFICATIONS, as JSON; every channel off
    # until configured; see streams/notifications/settings.py).
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    # Who authorizes new payments: "rules" (RizzPay's own, asking nobody) or "connectors" (the
    # processors, streams/authorizer.py).  Unset: the processors when any processor URL is
    # configured (RIZZPAY_CONNECTORS_*_URL; `rizzpay stack up` writes the sandboxes' ones).
    authorizer: Literal["rules", "connectors"] | None = None
    connectors: ConnectorSettings = Field(default_factory=_connector_settings)
    # Charges of one batch in flight at once (processors answer in 0.1-3 s each).
    charge_concurrency_max: int = Field(default=32, ge=1, le=512)
    # Wait after an ambiguous processor failure before the enquiry that decides a failover.
    processor_enquiry_delay_s: float = Field(default=1.0, ge=0)
    # Payments waiting for a processor (created, requires_action) are asked about this often,
    # at most this many per round.
    processor_poll_interval_s: float = Field(default=1.0, gt=0)
    processor_poll_batch_max: int = Field(default=200, ge=1, le=5000)
    # A payment waiting long (a bank transfer not yet sent) is asked about less often: every
    # eighth of its age, at most this often.
    processor_poll_backoff_s_max: float = Field(default=60.0, gt=0)
    # Ended payments a processor may still turn into a debit (a timed-out UPI collect, an
    # expired or failed one) are asked about this often while they ended less than
    # ``late_debit_watch_s`` ago (default 5 days, the longest RBI turnaround we carry).
    late_debit_poll_interval_s: float = Field(default=300.0, gt=0)
    late_debit_watch_s: float = Field(default=5 * 86_400.0, gt=0)

    @property
    def uses_connectors(self) -> bool:
        if self.authorizer is not None:
            return self.authorizer == "connectors"
        return bool(PROCESSOR_URL_FIELDS & self.connectors.model_fields_set)
