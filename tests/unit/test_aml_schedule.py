"""Which AML runs are due at a given instant (warehouse/aml/schedule.py), with an injected clock.

IST is UTC+05:30, so November 2026 (IST) opens at 2026-10-31T18:30Z.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from warehouse.aml.schedule import (
    FINAL,
    MONTH_TO_DATE,
    AmlSchedule,
    RunHistory,
    ScheduledRun,
    due_runs,
    previous_month,
)

HOURLY = AmlSchedule(interval=timedelta(hours=1), final_grace=timedelta(hours=1))
OCT_CLOSED = datetime(2026, 10, 31, 18, 30, tzinfo=UTC)  # 1 Nov 2026 00:00 IST


def history(
    started: dict[tuple[str, str], datetime] | None = None,
    finished: set[tuple[str, str]] | None = None,
) -> RunHistory:
    return RunHistory(started or {}, frozenset(finished or set()))


def test_nothing_run_yet_runs_the_open_month_and_the_closed_one() -> None:
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert due_runs(now, HOURLY, history()) == [
        ScheduledRun("2026-10", FINAL),
        ScheduledRun("2026-11", MONTH_TO_DATE),
    ]


def test_month_to_date_runs_once_per_interval() -> None:
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    done = {("2026-10", FINAL)}
    recent = history({("2026-11", MONTH_TO_DATE): now - timedelta(minutes=59)}, done)
    assert due_runs(now, HOURLY, recent) == []
    stale = history({("2026-11", MONTH_TO_DATE): now - timedelta(hours=1)}, done)
    assert due_runs(now, HOURLY, stale) == [ScheduledRun("2026-11", MONTH_TO_DATE)]
    # A month-to-date run of another month says nothing about this one.
    other = history({("2026-10", MONTH_TO_DATE): now}, done)
    assert due_runs(now, HOURLY, other) == [ScheduledRun("2026-11", MONTH_TO_DATE)]


def test_a_month_boundary_in_ist_not_utc() -> None:
    # 31 Oct 2026 23:59 IST is still October: the open month is October, September is final.
    before = OCT_CLOSED - timedelta(minutes=1)
    assert [r.period for r in due_runs(before, HOURLY, history())] == ["2026-09", "2026-10"]
    # One minute after midnight IST it is November; October waits out its grace.
    after = OCT_CLOSED + timedelta(minutes=1)
    assert due_runs(after, HOURLY, history()) == [ScheduledRun("2026-11", MONTH_TO_DATE)]


def test_the_final_run_waits_for_the_grace_then_runs_once() -> None:
    mtd = {("2026-11", MONTH_TO_DATE): OCT_CLOSED + timedelta(hours=1)}
    at_grace = OCT_CLOSED + timedelta(hours=1)
    assert due_runs(at_grace - timedelta(seconds=1), HOURLY, history(mtd)) == []
    assert due_runs(at_grace, HOURLY, history(mtd)) == [ScheduledRun("2026-10", FINAL)]
    finished = history({**mtd, ("2026-10", FINAL): at_grace}, {("2026-10", FINAL)})
    assert due_runs(at_grace + timedelta(minutes=30), HOURLY, finished) == []
    assert due_runs(datetime(2026, 11, 30, tzinfo=UTC), HOURLY, finished) == [
        ScheduledRun("2026-11", MONTH_TO_DATE)
    ]


def test_a_failed_final_run_is_retried_after_the_interval() -> None:
    failed_at = OCT_CLOSED + timedelta(hours=2)
    mtd_at = failed_at + timedelta(hours=5)  # the open month is not due in this test
    started = {("2026-10", FINAL): failed_at, ("2026-11", MONTH_TO_DATE): mtd_at}
    failed = history(started)  # started, never finished
    assert due_runs(failed_at + timedelta(minutes=59), HOURLY, failed) == []
    assert due_runs(failed_at + timedelta(hours=1), HOURLY, failed)[0] == ScheduledRun(
        "2026-10", FINAL
    )


def test_january_closes_december_of_the_year_before() -> None:
    now = datetime(2027, 1, 2, tzinfo=UTC)
    assert previous_month("2027-01") == "2026-12"
    assert due_runs(now, HOURLY, history())[0] == ScheduledRun("2026-12", FINAL)


def test_a_schedule_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        AmlSchedule(interval=timedelta(0))
