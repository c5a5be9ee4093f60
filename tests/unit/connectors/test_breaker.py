"""Circuit breaker transitions on a hand-driven clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.connectors.breaker import (
    BreakerConfig,
    BreakerOpen,
    BreakerState,
    CircuitBreaker,
)


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


CONFIG = BreakerConfig(
    failures_consecutive_max=3,
    failure_rate_max=0.5,
    window_calls=10,
    window_calls_min=6,
    open_s=5.0,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transitions() -> list[tuple[BreakerState, BreakerState]]:
    return []


@pytest.fixture
def breaker(
    clock: FakeClock, transitions: list[tuple[BreakerState, BreakerState]]
) -> CircuitBreaker:
    return CircuitBreaker(
        "razorpay",
        CONFIG,
        clock=clock,
        on_transition=lambda _name, before, after: transitions.append((before, after)),
    )


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The state, read through a call so mypy does not narrow it across transitions."""
    return breaker.state


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.acquire().failure()


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.acquire().success()


def test_consecutive_failures_open_it(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    assert state_of(breaker) is BreakerState.CLOSED
    fail(breaker)
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.try_acquire() is None
    with pytest.raises(BreakerOpen) as refused:
        breaker.acquire()
    assert refused.value.retry_after_s == pytest.approx(5.0)


def test_a_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    # Two failures then four successes, over and over: never three in a row, and at most
    # half of any window failed, so it stays closed.
    for _ in range(4):
        fail(breaker, 2)
        succeed(breaker, 4)
    assert state_of(breaker) is BreakerState.CLOSED


def test_failure_rate_opens_it_once_the_window_has_enough_calls(breaker: CircuitBreaker) -> None:
    # Alternate: never three in a row, but 50 % fail; the rate must exceed 0.5 to trip.
    for _ in range(3):
        fail(breaker)
        succeed(breaker)
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.failure_rate() == pytest.approx(0.5)
    fail(breaker)  # 4 of 7 failed
    assert state_of(breaker) is BreakerState.OPEN


def test_rate_is_not_judged_on_too_few_calls(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    succeed(breaker)
    fail(breaker, 2)  # 4 of 5 failed, but fewer than window_calls_min outcomes
    assert state_of(breaker) is BreakerState.CLOSED


def test_cool_down_then_one_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.advance(4.999)
    assert state_of(breaker) is BreakerState.OPEN
    assert not breaker.allows()
    clock.advance(0.001)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.allows()
    probe = breaker.try_acquire()
    assert probe is not None and probe.probe
    assert breaker.try_acquire() is None  # one probe at a time
    assert not breaker.allows()
    probe.success()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.try_acquire() is not None


def test_a_failed_probe_opens_it_for_another_cool_down(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.advance(5.0)
    probe = breaker.acquire()
    clock.advance(1.0)
    probe.failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.retry_after_s() == pytest.approx(5.0)
    clock.advance(5.0)
    assert state_of(breaker) is BreakerState.HALF_OPEN


def test_transitions_are_reported(
    breaker: CircuitBreaker,
    clock: FakeClock,
    transitions: list[tuple[BreakerState, BreakerState]],
) -> None:
    fail(breaker, 3)
    clock.advance(5.0)
    breaker.acquire().success()
    assert transitions == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_a_late_outcome_from_before_the_transition_is_ignored(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    slow = breaker.acquire()  # admitted while closed
    fail(breaker, 3)
    clock.advance(5.0)
    probe = breaker.acquire()
    slow.success()  # must not close the breaker: it says nothing about the provider now
    assert state_of(breaker) is BreakerState.HALF_OPEN
    probe.failure()
    assert state_of(breaker) is BreakerState.OPEN


def test_a_released_permit_counts_neither_way(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 2)
    breaker.acquire().release()
    fail(breaker)
    assert state_of(breaker) is BreakerState.OPEN  # the release did not reset the streak
    clock.advance(5.0)
    breaker.acquire().release()  # frees the probe slot without deciding
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.try_acquire() is not None


def test_a_permit_settles_once(breaker: CircuitBreaker) -> None:
    permit = breaker.acquire()
    permit.success()
    with pytest.raises(RuntimeError):
        permit.failure()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failures_consecutive_max": 0},
        {"failure_rate_max": 0.0},
        {"window_calls": 5, "window_calls_min": 6},
        {"open_s": -1.0},
        {"half_open_probes_max": 1, "half_open_successes_min": 2},
    ],
)
def test_nonsense_configurations_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


@given(st.lists(st.booleans(), max_size=200))
def test_closed_never_hides_a_failure_streak(outcomes: list[bool]) -> None:
    """Whatever the sequence, a closed breaker has seen fewer than the threshold of failures
    in a row; an open one refuses calls until the clock moves."""
    clock = FakeClock()
    breaker = CircuitBreaker("p", CONFIG, clock=clock)
    streak = 0
    for ok in outcomes:
        permit = breaker.try_acquire()
        if permit is None:
            assert state_of(breaker) is BreakerState.OPEN
            clock.advance(CONFIG.open_s)
            streak = 0
            continue
        if ok:
            permit.success()
            streak = 0
        else:
            permit.failure()
            streak += 1
        if state_of(breaker) is BreakerState.CLOSED:
            assert streak < CONFIG.failures_consecutive_max
        else:
            streak = 0
