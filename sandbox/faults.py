"""Fault modes a sandbox can be switched into at runtime (``POST /__sandbox/faults``).

=========== ========================================================================
mode        what a caller sees
=========== ========================================================================
``none``    normal answers (after the configured latency)
``slow``    every answer ``delay_ms`` later than usual; processed normally
``http_500``a provider-shaped 500.  ``after_processing`` (default false) processes the
            request first, so money may move although the caller saw an error
``timeout`` no answer for ``hold_s`` seconds (longer than any client timeout).
            ``after_processing`` (default **true**) processes the request first: the
            "charged but the answer was lost" case that idempotency exists for
``down``    connections are refused (the server's edge stops listening and drops open
            connections); the admin port keeps answering
=========== ========================================================================

``rate`` (0-1) affects only that fraction of requests (drawn from the sandbox's seeded random
generator); ``count`` affects only the next N requests and then switches back to ``none``;
``path_prefix`` affects only requests whose path starts with it (e.g. only payment creation).
Admin paths (``/__sandbox/…``) are never affected.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultMode = Literal["none", "slow", "http_500", "timeout", "down"]

# Longer than every client timeout in RizzPay's connectors (read_timeout_s 5 s) and short
# enough that a sandbox shutting down does not wait long for held requests.
HOLD_S_DEFAULT = 30.0
HOLD_S_MAX = 300.0
DELAY_MS_MAX = 120_000


class FaultRequest(BaseModel):
    """Body of ``POST /__sandbox/faults``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: FaultMode
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=1, le=1_000_000)
    delay_ms: int = Field(default=2000, ge=0, le=DELAY_MS_MAX)
    hold_s: float = Field(default=HOLD_S_DEFAULT, ge=0.0, le=HOLD_S_MAX)
    after_processing: bool | None = None
    path_prefix: str | None = Field(default=None, min_length=1, max_length=200)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """The active fault.  ``after_processing`` is resolved per mode (see the module table)."""

    mode: FaultMode = "none"
    rate: float = 1.0
    count: int | None = None
    delay_ms: int = 2000
    hold_s: float = HOLD_S_DEFAULT
    after_processing: bool = False
    path_prefix: str | None = None

    @classmethod
    def from_request(cls, body: FaultRequest) -> FaultSpec:
        after = body.after_processing
        if after is None:
            after = body.mode == "timeout"
        return cls(
            mode=body.mode,
            rate=body.rate,
            count=body.count,
            delay_ms=body.delay_ms,
            hold_s=body.hold_s,
            after_processing=after,
            path_prefix=body.path_prefix,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "rate": self.rate,
            "count": self.count,
            "delay_ms": self.delay_ms,
            "hold_s": self.hold_s,
            "after_processing": self.after_processing,
            "path_prefix": self.path_prefix,
        }


ModeHook = Callable[[FaultMode], Awaitable[None]]


class Faults:
    """The active fault of one sandbox, and the hooks to await when the mode changes (the edge
    that implements ``down`` registers one, so the admin call returns only once the edge has
    stopped or resumed listening)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.spec = FaultSpec()
        self.mode_hooks: list[ModeHook] = []
        self.injected = 0  # requests a fault was applied to, for the admin view

    async def apply(self, spec: FaultSpec) -> None:
        """Make ``spec`` the active fault and run the mode hooks if the mode changed."""
        before = self.spec.mode
        self.spec = spec
        if spec.mode != before:
            for hook in self.mode_hooks:
                await hook(spec.mode)

    def draw(self, path: str) -> FaultSpec | None:
        """The fault to apply to the request for ``path`` arriving now, or ``None``."""
        spec = self.spec
        if spec.mode in ("none", "down"):
            return None  # "down" is the edge's job: a request that got here is served
        if spec.path_prefix is not None and not path.startswith(spec.path_prefix):
            return None
        if spec.rate < 1.0 and self._rng.random() >= spec.rate:
            return None
        if spec.count is not None:
            # Counted faults are never "down" (returned above), so no hook needs to run.
            remaining = spec.count - 1
            self.spec = FaultSpec() if remaining == 0 else replace(spec, count=remaining)
        self.injected += 1
        return spec
