"""A circuit breaker per connector: stop calling a provider that keeps failing, probe it after a
cool-down, and let traffic back when a probe succeeds.

States
------
``closed``
    Calls pass.  The breaker opens after ``failures_consecutive_max`` failures in a row, or
    when at least ``window_calls_min`` of the last ``window_calls`` outcomes are known and more
    than ``failure_rate_max`` of them failed.
``open``
    Calls are refused at once (no request is sent) for ``open_s`` seconds.
``half_open``
    After the cool-down, up to ``half_open_probes_max`` calls pass as probes; all others are
    refused.  ``half_open_successes_min`` successful probes close the breaker; one failed probe
    opens it again for another ``open_s``.

Every admitted call holds a :class:`Permit` and settles it exactly once with ``success()``,
``failure()`` or ``release()`` (no outcome: our own connection pool was exhausted, or the
provider rate-limited us).  A failure is the provider not answering usefully (connection
refused, timeout, 5xx); a 4xx answer or a decline is the provider working and counts as
success.  Permits carry
the breaker's generation (it changes on every transition), so an outcome that arrives after the
state changed (a slow call admitted before the breaker opened) cannot close or re-open it.

Time comes from an injected monotonic ``clock`` in seconds, so tests drive it by hand.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Thresholds; see the module docstring.  Defaults suit a payment processor at tens of
    calls per second: five straight failures or half of the last 20 calls open it for 5 s."""

    failures_consecutive_max: int = 5
    failure_rate_max: float = 0.5
    window_calls: int = 20
    window_calls_min: int = 10
    open_s: float = 5.0
    half_open_probes_max: int = 1
    half_open_successes_min: int = 1

    def __post_init__(self) -> None:
        if self.failures_consecutive_max < 1 or self.window_calls < 1:
            raise ValueError("thresholds must be at least 1")
        if not 0.0 < self.failure_rate_max <= 1.0:
            raise ValueError("failure_rate_max must be in (0, 1]")
        if not 1 <= self.window_calls_min <= self.window_calls:
            raise ValueError("window_calls_min must be in [1, window_calls]")
        if self.open_s < 0 or self.half_open_probes_max < 1 or self.half_open_successes_min < 1:
            raise ValueError("open_s >= 0, probes and successes >= 1")
        if self.half_open_successes_min > self.half_open_probes_max:
            # Otherwise half-open could never close: successes are counted from probes only.
            raise ValueError("half_open_successes_min must not exceed half_open_probes_max")


class BreakerOpen(Exception):
    """Raised by :meth:`CircuitBreaker.acquire` when no call may pass; nothing was sent."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"circuit breaker {name!r} is open; retry after {retry_after_s:.3f} s")
        self.name = name
        self.retry_after_s = retry_after_s


TransitionHook = Callable[[str, BreakerState, BreakerState], None]


class Permit:
    """One admitted call.  Settle it once; settling twice is a programming error."""

    __slots__ = ("_breaker", "_generation", "_settled", "probe")

    def __init__(self, breaker: CircuitBreaker, generation: int, probe: bool) -> None:
        self._breaker = breaker
        self._generation = generation
        self._settled = False
        self.probe = probe

    def success(self) -> None:
        self._settle(ok=True)

    def failure(self) -> None:
        self._settle(ok=False)

    def release(self) -> None:
        """Settle without an outcome: the call said nothing about the provider's health (our
        own connection pool was exhausted, the provider rate-limited us)."""
        self._settle(ok=None)

    def _settle(self, *, ok: bool | None) -> None:
        if self._settled:
            raise RuntimeError("permit settled twice")
        self._settled = True
        self._breaker._record(self._generation, self.probe, ok=ok)


class CircuitBreaker:
    """See the module docstring.  Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: TransitionHook | None = None,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._outcomes: deque[bool] = deque(maxlen=self.config.window_calls)
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0

    # --- reading ---------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state; an ``open`` breaker whose cool-down ended reads ``half_open``."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    def retry_after_s(self) -> float:
        """Seconds until a call may pass (0 when one may pass now)."""
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.config.open_s - self._clock())
        return 0.0

    def allows(self) -> bool:
        """Whether :meth:`acquire` would admit a call now (without admitting one)."""
        match self.state:
            case BreakerState.CLOSED:
                return True
            case BreakerState.HALF_OPEN:
                # Probe slots reset on every transition, so a cooled-down open breaker has all.
                return self._probes_in_flight < self.config.half_open_probes_max
            case BreakerState.OPEN:
                return False

    def failure_rate(self) -> float:
        """Failed fraction of the outcomes in the current window (0 when empty)."""
        if not self._outcomes:
            return 0.0
        return self._outcomes.count(False) / len(self._outcomes)

    # --- admitting -------------------------------------------------------------------------

    def try_acquire(self) -> Permit | None:
        """A permit for one call, or ``None`` if the breaker refuses it."""
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                return None
            self._transition(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            if self._probes_in_flight >= self.config.half_open_probes_max:
                return None
            self._probes_in_flight += 1
            return Permit(self, self._generation, probe=True)
        return Permit(self, self._generation, probe=False)

    def acquire(self) -> Permit:
        """A permit for one call; raises :class:`BreakerOpen` if refused."""
        permit = self.try_acquire()
        if permit is None:
            raise BreakerOpen(self.name, self.retry_after_s())
        return permit

    # --- outcomes --------------------------------------------------------------------------

    def _record(self, generation: int, probe: bool, *, ok: bool | None) -> None:
        if generation != self._generation:
            return  # admitted under an earlier state: says nothing about the current one
        if probe:
            self._probes_in_flight -= 1
        if ok is None:
            return
        if probe:
            if not ok:
                self._trip()
                return
            self._probe_successes += 1
            if self._probe_successes >= self.config.half_open_successes_min:
                self._transition(BreakerState.CLOSED)
            return
        self._outcomes.append(ok)
        if ok:
            self._consecutive_failures = 0
            return
        self._consecutive_failures += 1
        rate_tripped = (
            len(self._outcomes) >= self.config.window_calls_min
            and self.failure_rate() > self.config.failure_rate_max
        )
        if self._consecutive_failures >= self.config.failures_consecutive_max or rate_tripped:
            self._trip()

    # --- transitions -----------------------------------------------------------------------

    def _cooled_down(self) -> bool:
        return self._clock() >= self._opened_at + self.config.open_s

    def _trip(self) -> None:
        self._opened_at = self._clock()
        self._transition(BreakerState.OPEN)

    def _transition(self, to: BreakerState) -> None:
        before = self._state
        self._state = to
        self._generation += 1
        self._probes_in_flight = 0
        self._probe_successes = 0
        if to is BreakerState.CLOSED:
            self._outcomes.clear()
            self._consecutive_failures = 0
        if self._on_transition is not None and before is not to:
            self._on_transition(self.name, before, to)
