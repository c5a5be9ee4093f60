"""Merchant webhooks: the pure building blocks the delivery agent calls.

* :mod:`streams.webhooks.signing` -- Standard Webhooks headers, signing with one or two secrets
  (rotation), and verification with a 300 s timestamp tolerance.
* :mod:`streams.webhooks.schedule` -- the retry schedule (exponential backoff with jitter over
  at least 72 h) and what each HTTP answer means (2xx delivered, 410 disables, else retry).
* :mod:`streams.webhooks.address_guard` -- refuses URLs that reach loopback, private,
  link-local, metadata or other non-public addresses; re-run before every attempt.

Nothing here does I/O except :func:`streams.webhooks.address_guard.system_resolver`; clocks,
random numbers and DNS are injected.  The merchant-facing guide is ``docs/webhooks.md``.
"""

from __future__ import annotations

from streams.webhooks.address_guard import (
    IPAddress,
    Resolver,
    UnsafeWebhookUrl,
    check_url,
    system_resolver,
)
from streams.webhooks.schedule import (
    DEFAULT_SCHEDULE,
    Delivered,
    DisableEndpoint,
    GiveUp,
    Outcome,
    RetryAt,
    RetrySchedule,
    classify_response,
    next_attempt_at,
)
from streams.webhooks.signing import (
    InvalidWebhookSecret,
    WebhookVerificationError,
    generate_secret,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

__all__ = [
    "DEFAULT_SCHEDULE",
    "Delivered",
    "DisableEndpoint",
    "GiveUp",
    "IPAddress",
    "InvalidWebhookSecret",
    "Outcome",
    "Resolver",
    "RetryAt",
    "RetrySchedule",
    "UnsafeWebhookUrl",
    "WebhookVerificationError",
    "check_url",
    "classify_response",
    "generate_secret",
    "next_attempt_at",
    "sign",
    "signature_header",
    "system_resolver",
    "verify",
    "webhook_headers",
]
