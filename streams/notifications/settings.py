"""Notification settings (``RIZZPAY_NOTIFICATIONS``, JSON), read once by the worker.

Every channel is off until configured; with none configured the agents are not installed at
all, so payments pay nothing for notifications nobody sends.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = [
    "ApnsSettings",
    "EmailSettings",
    "FcmSettings",
    "NotificationSettings",
    "SmsSettings",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class EmailSettings(BaseModel):
    """An SMTP relay (the provider's, e.g. Amazon SES or SendGrid, in production)."""

    model_config = _FROZEN
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    #: STARTTLS before authenticating; off only for a local relay.
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "RizzPay <receipts@rizzpay.dev>"


class SmsSettings(BaseModel):
    """An MSG91-shaped SMS gateway (``POST /api/v5/flow/``, header ``authkey``).  Indian SMS
    needs a DLT-registered template: ``template_id`` names it, the text fills its variables."""

    model_config = _FROZEN
    base_url: str = "https://control.msg91.com"
    authkey: SecretStr
    template_id: str = Field(min_length=1, max_length=64)


class FcmSettings(BaseModel):
    """Firebase Cloud Messaging HTTP v1 (``POST /v1/projects/{project}/messages:send``).
    ``access_token`` is the OAuth 2 token of the service account (refreshed by the deployment)."""

    model_config = _FROZEN
    base_url: str = "https://fcm.googleapis.com"
    project_id: str = Field(min_length=1, max_length=128)
    access_token: SecretStr


class ApnsSettings(BaseModel):
    """Apple Push Notification service (``POST /3/device/{token}``) with a provider token
    (JWT).  Apple's servers speak HTTP/2 only; the local sandbox accepts HTTP/1.1 (the h2
    package is not a dependency yet)."""

    model_config = _FROZEN
    base_url: str = "https://api.push.apple.com"
    bundle_id: str = Field(min_length=1, max_length=255)
    provider_token: SecretStr


class NotificationSettings(BaseModel):
    model_config = _FROZEN

    email: EmailSettings | None = None
    sms: SmsSettings | None = None
    fcm: FcmSettings | None = None
    apns: ApnsSettings | None = None
    #: The longest one provider call may take (seconds).
    timeout_s: float = Field(default=10.0, gt=0, le=60)
    #: Attempts per notification for transient failures (5xx, timeouts), then it is 'failed'.
    attempts_max: int = Field(default=3, ge=1, le=10)
    #: How long (seconds) a lifecycle event waits for its payment's customer to be recorded
    #: (the two agents read different topics) before it is dead-lettered.
    payment_wait_s: float = Field(default=30.0, gt=0, le=600)

    @property
    def any_channel(self) -> bool:
        return any(c is not None for c in (self.email, self.sms, self.fcm, self.apns))
