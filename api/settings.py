"""Settings of the HTTP intake, built once in ``cli.api`` and passed down."""

from __future__ import annotations

from pydantic import Field, SecretStr

from models.config import ServiceEndpoints
from streams.webhooks.settings import WebhookSettings


class ApiSettings(ServiceEndpoints):
    # Idempotency keys live at least 24 h (Stripe, IETF draft).
    idempotency_ttl_s: int = 24 * 3600
    # An in-flight marker outlives any request: publish waits at most publish_timeout_ms.
    idempotency_in_flight_ttl_s: int = 60
    # How long a payment waits for the broker's acknowledgement before the client gets a 503.
    publish_timeout_ms: int = 5000
    # What a 503 tells the client to wait before retrying with the same key.
    retry_after_s: int = 5
    # Merchant API keys are looked up in PostgreSQL and cached this long in the process.
    api_key_cache_ttl_s: int = 60
    pg_pool_size_max: int = 10
    # Merchant webhook endpoints (RIZZPAY_WEBHOOKS, as JSON; see streams/webhooks/settings.py).
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    # Authenticates the operator routes (dispute notices from the processor integration);
    # unset, those routes are disabled (RIZZPAY_OPERATOR_TOKEN).
    operator_token: SecretStr | None = None
