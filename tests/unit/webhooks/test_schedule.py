"""Retry schedule and response rules, on a fixed clock and a seeded random generator."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from streams.webhooks.schedule import (
    DEFAULT_SCHEDULE,
    Delivered,
    DisableEndpoint,
    GiveUp,
    RetryAt,
    RetrySchedule,
    classify_response,
    next_attempt_at,
    parse_retry_after,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOUR_S = 3600.0
MIN_ATTEMPTS = 12

# The table in streams/webhooks/schedule.py's docstring, in seconds since attempt 1.
DOCUMENTED_OFFSETS_S = [0, 5, 25, 105, 425, 1705, 6825, 27305] + [
    27305 + 36000 * k for k in range(1, 8)
]


def attempt_times(
    schedule: RetrySchedule, rng: random.Random, first: datetime = T0
) -> list[datetime]:
    times = [first]
    while (at := next_attempt_at(len(times), first, rng=rng, schedule=schedule)) is not None:
        times.append(at)
    return times


# --- the schedule -------------------------------------------------------------------------------


def test_the_nominal_schedule_is_the_documented_one() -> None:
    assert list(DEFAULT_SCHEDULE.nominal_offsets_s) == DOCUMENTED_OFFSETS_S
    assert DEFAULT_SCHEDULE.max_attempts == 15


def test_the_schedule_spans_three_days_with_enough_attempts() -> None:
    times = attempt_times(DEFAULT_SCHEDULE, random.Random(1))
    assert len(times) == DEFAULT_SCHEDULE.max_attempts >= MIN_ATTEMPTS
    assert times[-1] - times[0] >= timedelta(hours=72)
    assert times[-1] - times[0] <= timedelta(hours=90)
    assert all(earlier < later for earlier, later in itertools.pairwise(times))


def test_after_the_last_attempt_the_event_is_given_up() -> None:
    rng = random.Random(0)
    assert next_attempt_at(DEFAULT_SCHEDULE.max_attempts, T0, rng=rng) is None
    assert next_attempt_at(DEFAULT_SCHEDULE.max_attempts + 5, T0, rng=rng) is None
    assert next_attempt_at(DEFAULT_SCHEDULE.max_attempts - 1, T0, rng=rng) is not None


def test_jitter_is_deterministic_for_a_seeded_generator() -> None:
    first = attempt_times(DEFAULT_SCHEDULE, random.Random(42))
    again = attempt_times(DEFAULT_SCHEDULE, random.Random(42))
    other = attempt_times(DEFAULT_SCHEDULE, random.Random(43))
    assert first == again
    assert first != other


def test_without_jitter_the_attempts_are_the_nominal_ones() -> None:
    schedule = RetrySchedule(jitter=0)
    times = attempt_times(schedule, random.Random(0))
    assert [(t - T0).total_seconds() for t in times] == DOCUMENTED_OFFSETS_S


@given(seed=st.integers(min_value=0, max_value=2**32))
def test_jitter_stays_within_its_bounds_and_attempts_stay_in_order(seed: int) -> None:
    schedule = DEFAULT_SCHEDULE
    times = attempt_times(schedule, random.Random(seed))
    offsets = [(t - T0).total_seconds() for t in times]
    nominal = schedule.nominal_offsets_s
    assert len(offsets) == len(nominal)
    for k in range(1, len(offsets)):
        gap = nominal[k] - nominal[k - 1]
        assert nominal[k] - schedule.jitter * gap - 1e-6 <= offsets[k]
        assert offsets[k] <= nominal[k] + schedule.jitter * gap + 1e-6
        assert offsets[k] > offsets[k - 1]
    assert offsets[-1] >= schedule.window_s


@given(
    initial_delay_s=st.floats(min_value=0.001, max_value=600),
    multiplier=st.floats(min_value=1, max_value=10),
    max_delay_hours=st.floats(min_value=0.2, max_value=24),
    window_hours=st.floats(min_value=0, max_value=24 * 7),
    jitter=st.floats(min_value=0, max_value=0.49),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_valid_schedule_is_monotonic_and_covers_its_window(
    initial_delay_s: float,
    multiplier: float,
    max_delay_hours: float,
    window_hours: float,
    jitter: float,
    seed: int,
) -> None:
    try:
        schedule = RetrySchedule(
            initial_delay_s=initial_delay_s,
            multiplier=multiplier,
            max_delay_s=max(max_delay_hours * HOUR_S, initial_delay_s),
            window_s=window_hours * HOUR_S,
            jitter=jitter,
        )
    except ValueError:  # more than MAX_ATTEMPTS attempts: refused by design
        assume(False)
        raise
    for k in range(1, schedule.max_attempts):
        nominal_gap = schedule.nominal_offsets_s[k] - schedule.nominal_offsets_s[k - 1]
        assert nominal_gap == pytest.approx(schedule.gap_s(k))
    times = attempt_times(schedule, random.Random(seed))
    assert all(earlier < later for earlier, later in itertools.pairwise(times))
    assert (times[-1] - times[0]).total_seconds() >= schedule.window_s - 1e-3


def test_a_compressed_schedule_keeps_its_shape() -> None:
    """Tests run the whole three days in 72 s of wall-clock time."""
    fast = DEFAULT_SCHEDULE.compressed(1 / 3600)
    assert fast.max_attempts == DEFAULT_SCHEDULE.max_attempts
    assert fast.window_s == pytest.approx(72.0)
    assert fast.max_retry_after_s == pytest.approx(1.0)
    times = attempt_times(fast, random.Random(3))
    assert timedelta(seconds=72) <= times[-1] - T0 <= timedelta(seconds=90)


def test_a_window_of_one_day_gives_fewer_attempts() -> None:
    one_day = RetrySchedule(window_s=24 * HOUR_S)
    assert one_day.max_attempts == 10  # last nominal attempt at 27 h 35 min
    assert one_day.nominal_offsets_s[-1] >= 24 * HOUR_S > one_day.nominal_offsets_s[-2]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_delay_s": 0},
        {"multiplier": 0.5},
        {"max_delay_s": 1, "initial_delay_s": 5},
        {"window_s": -1},
        {"jitter": 0.5},
        {"jitter": -0.1},
        {"max_retry_after_s": -1},
        {"multiplier": 1, "initial_delay_s": 60},  # 4320 attempts in 72 h
    ],
)
def test_invalid_schedules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetrySchedule(**kwargs)


def test_clocks_must_be_timezone_aware_and_attempts_numbered_from_one() -> None:
    naive = datetime(2025, 1, 1)  # noqa: DTZ001 -- the point of the test
    with pytest.raises(ValueError):
        next_attempt_at(1, naive, rng=random.Random(0))
    with pytest.raises(ValueError):
        next_attempt_at(0, T0, rng=random.Random(0))
    with pytest.raises(ValueError):
        classify_response(500, None, attempt_number=1, first_attempt_at=T0, now=naive,
                          rng=random.Random(0))  # fmt: skip


# --- responses ----------------------------------------------------------------------------------


def classify(
    status: int | None,
    retry_after: str | None = None,
    *,
    attempt_number: int = 1,
    now: datetime | None = None,
    schedule: RetrySchedule = DEFAULT_SCHEDULE,
) -> object:
    return classify_response(
        status,
        retry_after,
        attempt_number=attempt_number,
        first_attempt_at=T0,
        now=now if now is not None else T0 + timedelta(seconds=1),
        rng=random.Random(7),
        schedule=schedule,
    )


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert classify(status) == Delivered(status)


def test_410_disables_the_endpoint_even_on_the_last_attempt() -> None:
    assert classify(410) == DisableEndpoint(410)
    assert classify(410, attempt_number=DEFAULT_SCHEDULE.max_attempts) == DisableEndpoint(410)


@pytest.mark.parametrize(
    "status", [None, 100, 301, 302, 400, 401, 403, 404, 408, 409, 422, 425, 429, 500, 502, 503]
)
def test_every_other_answer_is_retried_on_the_schedule(status: int | None) -> None:
    outcome = classify(status, attempt_number=3)
    expected_at = next_attempt_at(3, T0, rng=random.Random(7))
    assert outcome == RetryAt(at=expected_at, attempt_number=4, status=status)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [None, 404, 500, 429])
def test_a_failure_on_the_last_attempt_is_given_up(status: int | None) -> None:
    last = DEFAULT_SCHEDULE.max_attempts
    assert classify(status, "10", attempt_number=last) == GiveUp(status=status, attempts=last)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_honoured(status: int) -> None:
    now = T0 + timedelta(seconds=1)
    outcome = classify(status, "120", now=now)  # the schedule alone says about 5 s after T0
    assert isinstance(outcome, RetryAt)
    assert outcome.at == now + timedelta(seconds=120)
    assert outcome.retry_after_s == 120
    assert outcome.attempt_number == 2


def test_retry_after_as_an_http_date_is_honoured() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    outcome = classify(429, "Wed, 01 Jan 2025 12:10:00 GMT", now=now)
    assert isinstance(outcome, RetryAt)
    assert outcome.at == now + timedelta(minutes=10)


def test_retry_after_is_capped() -> None:
    now = T0 + timedelta(seconds=1)
    outcome = classify(503, "86400", now=now)
    assert isinstance(outcome, RetryAt)
    assert outcome.retry_after_s == DEFAULT_SCHEDULE.max_retry_after_s == HOUR_S
    assert outcome.at == now + timedelta(hours=1)


def test_retry_after_never_hurries_the_schedule() -> None:
    now = T0 + timedelta(minutes=30)  # attempt 6 is due about 28 min 25 s after T0 ± 20 %
    outcome = classify(429, "0", attempt_number=6, now=now)
    assert isinstance(outcome, RetryAt)
    assert outcome.at == next_attempt_at(6, T0, rng=random.Random(7))
    assert outcome.at > now + timedelta(hours=1)


def test_retry_after_counts_only_for_429_and_503() -> None:
    outcome = classify(500, "600", attempt_number=3)
    assert isinstance(outcome, RetryAt)
    assert outcome.retry_after_s is None
    assert outcome.at == next_attempt_at(3, T0, rng=random.Random(7))


def test_a_slow_failure_is_not_followed_by_an_immediate_retry() -> None:
    """Attempt 1 timed out after 30 s; attempt 2 was due at about 5 s: wait 5 s, not 0."""
    answered = T0 + timedelta(seconds=30)
    outcome = classify(None, attempt_number=1, now=answered)
    assert isinstance(outcome, RetryAt)
    assert outcome.at == answered + timedelta(seconds=DEFAULT_SCHEDULE.initial_delay_s)
    # Far behind the schedule (attempt 7 answered after attempt 8 was due) it is the same.
    late = T0 + timedelta(hours=9)
    outcome = classify(503, attempt_number=7, now=late)
    assert isinstance(outcome, RetryAt)
    assert outcome.at == late + timedelta(seconds=5)


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "99999999999"])
def test_an_unusable_retry_after_is_ignored(header: str | None) -> None:
    outcome = classify(429, header)
    assert isinstance(outcome, RetryAt)
    assert outcome.retry_after_s is None


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(" 30 ", now=now) == 30
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0  # already past
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 -0000", now=now) == 30
    assert parse_retry_after("tomorrow", now=now) is None
