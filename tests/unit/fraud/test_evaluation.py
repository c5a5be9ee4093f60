"""Card precision@k and the time-ordered split with delay, on hand-built examples."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest

from fraud.dataset import DatasetError, validate_transactions
from fraud.evaluation import Protocol, card_precision_at_k, make_split


def test_card_precision_ranks_cards_by_their_highest_score_and_skips_found_cards() -> None:
    rows = [
        # day, customer, label, score
        (1, "a", 1, 0.90),
        (1, "b", 0, 0.80),
        (1, "b", 0, 0.10),
        (1, "c", 0, 0.20),
        (1, "c", 1, 0.70),  # c's fraud scores below b's best: c is third on day 1
        (2, "a", 1, 0.95),  # a was found on day 1: not counted again
        (2, "c", 1, 0.60),
        (2, "d", 0, 0.50),
        (2, "e", 0, 0.40),
    ]
    days, customers, labels, scores = zip(*rows, strict=True)
    result = card_precision_at_k(list(days), list(customers), list(labels), list(scores), k=2)
    # Day 1: top 2 = a (fraud), b (legit) -> 1/2.  Day 2 without a: c (fraud), d -> 1/2.
    assert result.precision_per_day == [0.5, 0.5]
    assert result.mean == 0.5
    assert result.detected_customers == [["a"], ["c"]]
    assert result.compromised_per_day == [2, 1]
    # Without skipping a, day 2 would have been a perfect 2/2: the rule matters.
    naive = card_precision_at_k([2, 2, 2], ["a", "c", "d"], [1, 1, 0], [0.95, 0.6, 0.5], k=2)
    assert naive.mean == 1.0


def test_card_precision_divides_by_k_even_on_quiet_days() -> None:
    result = card_precision_at_k([5], [42], [1], [0.3], k=100)
    assert result.precision_per_day == [0.01]


def _frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(IST date-time, customer, label) rows -> a validated transaction frame."""
    return validate_transactions(
        pd.DataFrame(
            {
                "transaction_id": range(len(rows)),
                "tx_datetime": [
                    pd.Timestamp(t, tz="Asia/Kolkata").tz_convert("UTC") for t, _, _ in rows
                ],
                "customer_id": [c for _, c, _ in rows],
                "terminal_id": 1,
                "amount_minor": 1_000,
                "is_fraud": [y for _, _, y in rows],
            }
        )
    )


def test_split_windows_delay_and_known_compromised_customers() -> None:
    rows: list[tuple[str, str, int]] = [
        ("2018-07-24 23:00", "early", 1),  # before training: not part of the protocol's memory
        ("2018-07-25 00:30", "x", 0),  # first training day (00:30 IST is still 07-24 in UTC)
        ("2018-07-26 10:00", "p", 1),  # p: fraud in training -> removed from every test day
        ("2018-07-31 23:59", "y", 0),  # last training day
        ("2018-08-01 12:00", "q", 1),  # delay day 1: q known from test day 08-09 on
        ("2018-08-07 12:00", "z", 0),  # last delay day
        ("2018-08-08 09:00", "p", 0),
        ("2018-08-08 10:00", "q", 0),  # 08-08: q's fraud (08-01) is not yet 7 days old
        ("2018-08-08 11:00", "early", 1),
        ("2018-08-08 12:00", "x", 0),
        ("2018-08-09 10:00", "q", 1),  # 08-09: q known -> removed
        ("2018-08-09 11:00", "y", 0),
        ("2018-08-14 12:00", "x", 0),  # last test day
        ("2018-08-15 00:10", "y", 1),  # after the test window
    ]
    frame = _frame(rows)
    split = make_split(frame, Protocol(train_start=dt.date(2018, 7, 25)))
    customers = frame["customer_id"].to_numpy()
    assert list(customers[split.train_rows]) == ["x", "p", "y"]
    assert list(customers[split.test_rows]) == ["q", "early", "x", "y", "x"]
    assert split.removed_rows == 2
    assert split.train_end == dt.date(2018, 7, 31)
    assert (split.test_start, split.test_end) == (dt.date(2018, 8, 8), dt.date(2018, 8, 14))


def test_default_window_is_the_latest_that_fits() -> None:
    days = pd.date_range("2018-04-01 12:00", periods=30, freq="D")
    rows = [(str(d), f"c{i}", int(i % 4 == 0)) for i, d in enumerate(days)]
    split = make_split(_frame(rows), Protocol())
    assert split.test_end == dt.date(2018, 4, 30)
    assert split.train_start == dt.date(2018, 4, 10)


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (dt.date(2018, 1, 1), "training window 2018-01-01 to 2018-01-07 has no transactions"),
        (dt.date(2018, 4, 3), "training window 2018-04-03 to 2018-04-09 has a single class"),
        (dt.date(2018, 4, 20), "test window 2018-05-04 to 2018-05-10 has no transactions"),
    ],
)
def test_split_errors_name_the_window(start: dt.date, message: str) -> None:
    days = pd.date_range("2018-04-01 12:00", periods=30, freq="D")
    labels: dict[int, int] = {0: 1, 15: 1, 20: 1}
    rows: list[tuple[str, Any, int]] = [
        (str(d), f"c{i}", labels.get(i, 0)) for i, d in enumerate(days)
    ]
    with pytest.raises(DatasetError, match=message):
        make_split(_frame(rows), Protocol(train_start=start))


def test_test_window_without_fraud_is_an_error() -> None:
    days = pd.date_range("2018-04-01 12:00", periods=21, freq="D")
    rows = [(str(d), f"c{i}", int(i == 2)) for i, d in enumerate(days)]
    with pytest.raises(DatasetError, match="no fraud"):
        make_split(_frame(rows), Protocol(train_start=dt.date(2018, 4, 1)))
