"""When to retry a webhook delivery, and what an endpoint's answer means.

Retry schedule
--------------
Attempt 1 is sent at once.  The gap before attempt ``k + 1`` is exponential and capped::

    gap(k) = min(initial_delay_s * multiplier ** (k - 1), max_delay_s)

With the defaults (5 s, x4, capped at 10 h) the nominal schedule, measured from attempt 1, is:

======= =============== =====================
attempt gap before      time since attempt 1
======= =============== =====================
1       -               0
2       5 s             5 s
3       20 s            25 s
4       1 min 20 s      1 min 45 s
5       5 min 20 s      7 min 5 s
6       21 min 20 s     28 min 25 s
7       1 h 25 min 20 s 1 h 53 min 45 s
8       5 h 41 min 20 s 7 h 35 min 5 s
9       10 h            17 h 35 min 5 s
10      10 h            27 h 35 min 5 s
11      10 h            37 h 35 min 5 s
12      10 h            47 h 35 min 5 s
13      10 h            57 h 35 min 5 s
14      10 h            67 h 35 min 5 s
15      10 h            77 h 35 min 5 s
======= =============== =====================

Attempts continue until the first one at or after ``window_s`` (72 h) since attempt 1; after it
fails, :func:`next_attempt_at` returns ``None`` and the event goes to the dead-letter store.

Jitter: each attempt's time is moved by a uniform random fraction in ``[-jitter, +jitter]``
(default 0.2) of the gap before it, drawn from an injected ``random.Random`` so tests are
deterministic.  Because gaps never shrink and ``jitter < 0.5``, jittered attempts are still
strictly increasing; the last attempt is never moved earlier than ``window_s``.  Times are
anchored to attempt 1, so a slow attempt does not push the rest of the schedule out; but
:func:`classify_response` never plans the next attempt sooner than ``initial_delay_s`` (5 s)
after the failed attempt's answer (or timeout), so an endpoint that is slow to fail is not hit
back to back while the schedule catches up.  ``RetrySchedule.compressed`` scales every
duration for tests (e.g. 72 h to 72 s).

Responses
---------
* ``2xx``: delivered.
* ``410 Gone``: the merchant retired the endpoint: disable it, no more retries.
* Anything else -- every other 4xx included, 3xx (redirects are never followed: a redirect could
  point at an internal address), 5xx, and no response at all (timeout, refused connection, TLS
  failure) -- is retried on the schedule, as Stripe does.  A merchant's 400/401/404 is usually a
  broken deploy that gets fixed within the window, and giving up early would lose the event.
* ``429`` and ``503`` with a ``Retry-After`` (seconds or an HTTP-date) are not retried before
  the time it asks for, capped at ``max_retry_after_s`` (1 h) from the answer; the schedule
  still applies, so ``Retry-After`` can delay an attempt but never hurry it.

Receivers see repeats (a delivery that succeeded but whose answer was lost) and, across
events, reordering; they dedupe by ``webhook-id``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = [
    "DEFAULT_SCHEDULE",
    "Delivered",
    "DisableEndpoint",
    "GiveUp",
    "Outcome",
    "RetryAt",
    "RetrySchedule",
    "classify_response",
    "next_attempt_at",
    "parse_retry_after",
]

HOUR_S: Final = 3600.0

_RETRY_AFTER_SECONDS = re.compile(r"[0-9]{1,10}")
#: Statuses whose ``Retry-After`` is honoured.
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
GONE: Final = 410
#: A schedule needing more attempts than this is refused as misconfigured.
MAX_ATTEMPTS: Final = 100


@dataclass(frozen=True)
class RetrySchedule:
    """An exponential backoff schedule with jitter.  All durations are in seconds.

    ``initial_delay_s``: gap between attempts 1 and 2.  ``multiplier``: each gap is this many
    times the one before, up to ``max_delay_s``.  ``window_s``: attempts go on until the first
    one at or after this long since attempt 1.  ``jitter``: each attempt moves by up to this
    fraction of the gap before it, either way (``0 <= jitter < 0.5``).  ``max_retry_after_s``:
    the longest ``Retry-After`` that is honoured; longer ones are cut to this.  A schedule
    needing more than ``MAX_ATTEMPTS`` (100) attempts is refused.
    """

    initial_delay_s: float = 5.0
    multiplier: float = 4.0
    max_delay_s: float = 10 * HOUR_S
    window_s: float = 72 * HOUR_S
    jitter: float = 0.2
    max_retry_after_s: float = 1 * HOUR_S
    _offsets_s: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.initial_delay_s > 0:
            raise ValueError("initial_delay_s must be positive")
        if not self.multiplier >= 1:
            raise ValueError("multiplier must be at least 1 (gaps never shrink)")
        if not self.max_delay_s >= self.initial_delay_s:
            raise ValueError("max_delay_s must be at least initial_delay_s")
        if not self.window_s >= 0:
            raise ValueError("window_s must not be negative")
        if not 0 <= self.jitter < 0.5:
            raise ValueError("jitter must be in [0, 0.5) so that attempts stay in order")
        if not self.max_retry_after_s >= 0:
            raise ValueError("max_retry_after_s must not be negative")
        offsets = [0.0]
        gap = self.initial_delay_s
        while offsets[-1] < self.window_s:
            if len(offsets) >= MAX_ATTEMPTS:
                raise ValueError(f"the schedule would need more than {MAX_ATTEMPTS} attempts")
            offsets.append(offsets[-1] + gap)
            gap = min(gap * self.multiplier, self.max_delay_s)
        object.__setattr__(self, "_offsets_s", tuple(offsets))

    def gap_s(self, attempt_number: int) -> float:
        """Nominal seconds between attempt ``attempt_number`` and the next one."""
        if attempt_number < 1:
            raise ValueError("attempts are numbered from 1")
        try:
            gap = self.initial_delay_s * self.multiplier ** (attempt_number - 1)
        except OverflowError:
            return self.max_delay_s
        return min(gap, self.max_delay_s)

    @property
    def max_attempts(self) -> int:
        """How many attempts an event gets in all, the first included."""
        return len(self._offsets_s)

    @property
    def nominal_offsets_s(self) -> tuple[float, ...]:
        """Seconds from attempt 1 to each attempt, without jitter; index 0 is attempt 1."""
        return self._offsets_s

    def compressed(self, factor: float) -> RetrySchedule:
        """The same schedule with every duration multiplied by ``factor`` (for tests)."""
        if not factor > 0:
            raise ValueError("factor must be positive")
        return replace(
            self,
            initial_delay_s=self.initial_delay_s * factor,
            max_delay_s=self.max_delay_s * factor,
            window_s=self.window_s * factor,
            max_retry_after_s=self.max_retry_after_s * factor,
        )

    def offset_s(self, attempt_number: int, rng: random.Random) -> float:
        """Seconds from attempt 1 to attempt ``attempt_number`` (2 or more), with jitter."""
        if not 2 <= attempt_number <= self.max_attempts:
            raise ValueError(f"attempt_number must be between 2 and {self.max_attempts}")
        nominal = self._offsets_s[attempt_number - 1]
        gap = nominal - self._offsets_s[attempt_number - 2]
        offset = nominal + rng.uniform(-self.jitter, self.jitter) * gap
        if attempt_number == self.max_attempts:
            offset = max(offset, self.window_s)  # the last attempt keeps the promised window
        return offset

    def next_attempt_at(
        self, attempt_number: int, first_attempt_at: datetime, *, rng: random.Random
    ) -> datetime | None:
        """See :func:`next_attempt_at`."""
        _require_aware(first_attempt_at, "first_attempt_at")
        if attempt_number < 1:
            raise ValueError("attempts are numbered from 1")
        if attempt_number >= self.max_attempts:
            return None
        return first_attempt_at + timedelta(seconds=self.offset_s(attempt_number + 1, rng))


DEFAULT_SCHEDULE: Final = RetrySchedule()


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def next_attempt_at(
    attempt_number: int,
    first_attempt_at: datetime,
    *,
    rng: random.Random,
    schedule: RetrySchedule = DEFAULT_SCHEDULE,
) -> datetime | None:
    """When to make the attempt after attempt ``attempt_number`` (1-based) failed.

    ``first_attempt_at`` (timezone-aware) anchors the schedule.  ``rng`` draws the jitter.
    Returns ``None`` when ``attempt_number`` was the last attempt: dead-letter the event.
    """
    return schedule.next_attempt_at(attempt_number, first_attempt_at, rng=rng)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks to wait (0 if already past).

    Accepts delay-seconds (``"120"``) and an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``);
    returns ``None`` for a missing or unparseable header.  Not capped: see ``classify_response``.
    """
    _require_aware(now, "now")
    if value is None:
        return None
    text = value.strip()
    if _RETRY_AFTER_SECONDS.fullmatch(text):
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Delivered:
    """A 2xx: the event is delivered."""

    status: int


@dataclass(frozen=True)
class DisableEndpoint:
    """A 410 Gone: disable the endpoint; no more attempts (the event is dead-lettered)."""

    status: int


@dataclass(frozen=True)
class RetryAt:
    """Make attempt ``attempt_number`` at ``at`` (if the agent is late, send at once).

    ``status`` is the failed attempt's status (``None``: no response).  ``retry_after_s`` is
    the honoured ``Retry-After`` in seconds after capping, if one was honoured.
    """

    at: datetime
    attempt_number: int
    status: int | None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class GiveUp:
    """The schedule is exhausted after ``attempts`` attempts: dead-letter the event."""

    status: int | None
    attempts: int


Outcome = Delivered | DisableEndpoint | RetryAt | GiveUp


def classify_response(
    status: int | None,
    retry_after_header: str | None,
    *,
    attempt_number: int,
    first_attempt_at: datetime,
    now: datetime,
    rng: random.Random,
    schedule: RetrySchedule = DEFAULT_SCHEDULE,
) -> Outcome:
    """What to do after attempt ``attempt_number`` (1-based) got ``status``.

    ``status`` is the HTTP status, or ``None`` when there was no response (timeout, connection
    or TLS failure).  ``retry_after_header`` is the raw ``Retry-After`` value, if any; it counts
    for 429 and 503 only, capped at ``schedule.max_retry_after_s`` seconds after ``now``.
    ``now`` is when the answer (or the timeout) came.  The next attempt is the scheduled one,
    but not sooner than ``schedule.initial_delay_s`` seconds after ``now``, nor before an
    honoured ``Retry-After``.  ``first_attempt_at`` and ``now`` are timezone-aware; ``rng``
    draws the jitter.
    """
    _require_aware(now, "now")
    if status is not None and 200 <= status <= 299:
        return Delivered(status)
    if status == GONE:
        return DisableEndpoint(status)
    at = schedule.next_attempt_at(attempt_number, first_attempt_at, rng=rng)
    if at is None:
        return GiveUp(status=status, attempts=attempt_number)
    at = max(at, now + timedelta(seconds=schedule.initial_delay_s))
    retry_after_s: float | None = None
    if status in RETRY_AFTER_STATUSES:
        asked_s = parse_retry_after(retry_after_header, now=now)
        if asked_s is not None:
            retry_after_s = min(asked_s, schedule.max_retry_after_s)
            at = max(at, now + timedelta(seconds=retry_after_s))
    return RetryAt(
        at=at, attempt_number=attempt_number + 1, status=status, retry_after_s=retry_after_s
    )
