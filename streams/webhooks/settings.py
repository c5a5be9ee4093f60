"""Webhook settings, shared by the API (endpoint registration) and the worker (delivery).

Both entry points read them once, as the ``webhooks`` field of their settings object (the
environment variable ``RIZZPAY_WEBHOOKS`` holds them as JSON, e.g.
``{"allow_loopback": true, "schedule_scale": 0.001}`` in tests).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from streams.webhooks.schedule import DEFAULT_SCHEDULE, RetrySchedule
from streams.webhooks.store import DEFAULT_ROTATION_OVERLAP_S

__all__ = ["WebhookSettings"]


class WebhookSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Development only: also accept ``http://127.0.0.1`` (loopback) endpoint URLs.  Never in
    #: production: it would let a merchant point RizzPay at its own services.
    allow_loopback: bool = False
    #: How often (seconds) the worker looks for due deliveries.  Attempts are due at whole
    #: seconds of the schedule at best, so polling faster buys nothing.
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    #: Multiplies every duration of the retry schedule (1: the real 72 h; tests compress it).
    schedule_scale: float = Field(default=1.0, gt=0, le=1)
    #: The longest one attempt may take, connecting included (seconds).
    timeout_s: float = Field(default=10.0, gt=0, le=60)
    #: Parallel senders per worker, each holding one PostgreSQL connection while it sends.
    concurrency: int = Field(default=4, ge=1, le=64)
    #: At most this many deliveries are attempted in one pass (bounds a pass's duration).
    pass_limit: int = Field(default=1000, ge=1, le=100_000)
    #: How long (seconds) the old secret keeps signing after a rotation.
    rotation_overlap_s: float = Field(default=DEFAULT_ROTATION_OVERLAP_S, ge=0, le=7 * 86_400)

    def schedule(self) -> RetrySchedule:
        """The retry schedule the delivery loop uses."""
        if self.schedule_scale == 1:
            return DEFAULT_SCHEDULE
        return DEFAULT_SCHEDULE.compressed(self.schedule_scale)
