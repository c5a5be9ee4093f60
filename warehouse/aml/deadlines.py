"""Deadline arithmetic: STR drafts (working days) and the monthly FIU-IND report (calendar).

Dates are IST calendar dates (the compliance office's calendar).  A working day is Monday to
Friday and not a holiday.  "Within 7 working days of the determination" counts the working
days *after* the day suspicion was determined: determined on Monday 2 Nov 2026 → the 7th
working day after is Wednesday 11 Nov 2026, the last day to file.  Overdue means: today is after
that day and the report is not filed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from streams.settlement import IST

Holiday = Callable[[date], bool]


def is_working_day(day: date, is_holiday: Holiday) -> bool:
    return day.weekday() < 5 and not is_holiday(day)


def add_working_days(start: date, days: int, is_holiday: Holiday) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself never counts, working
    or not).  ``days`` must be positive."""
    if days < 1:
        raise ValueError("days must be at least 1")
    day, left = start, days
    while left:
        day += timedelta(days=1)
        if is_working_day(day, is_holiday):
            left -= 1
    return day


def ist_date(instant: datetime) -> date:
    """The IST calendar date of an aware instant."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware instant")
    return instant.astimezone(IST).date()


def str_due_on(determined_on: date, working_days: int, is_holiday: Holiday) -> date:
    """Last day to file the STR for suspicion determined on ``determined_on``."""
    return add_working_days(determined_on, working_days, is_holiday)


def is_overdue(due_on: date, today: date, filed: bool) -> bool:
    return not filed and today > due_on


def fiu_due_on(period: str, due_day: int) -> date:
    """The monthly report for ``period`` (``YYYY-MM``) is due by ``due_day`` of the next
    month (a calendar date; FIU-IND's rule does not move it off weekends)."""
    year, month = (int(p) for p in period.split("-"))
    if not 1 <= month <= 12:
        raise ValueError(f"not a month: {period!r}")
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return date(year, month, due_day)
