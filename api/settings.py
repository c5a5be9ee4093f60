"""Settings of the HTTP intake, built once in ``cli.api`` and passed down."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from api.pii import TOKEN_KEY_LEN_MIN
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
    # Keys the HMAC tokens that replace the payer's device id and IP before anything leaves the
    # intake (RIZZPAY_PII_TOKEN_KEY; api/pii.py).  `rizzpay stack up` generates one into
    # stack.env; docker-compose and the Helm chart require it.  Unset, a payment that carries a
    # `device` is refused (503) rather than published without its tokens.  Changing it restarts
    # the device and IP features (docs/fraud.md).
    pii_token_key: SecretStr | None = None

    @field_validator("pii_token_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < TOKEN_KEY_LEN_MIN:
            raise ValueError(f"must be at least {TOKEN_KEY_LEN_MIN} characters")
        return value
