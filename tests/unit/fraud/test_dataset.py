"""Transaction files at the boundary: money conversion, labels, ids, currencies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest

from fraud.dataset import DatasetError, read_transactions, validate_transactions


def frame(**overrides: Any) -> pd.DataFrame:
    base: dict[str, Any] = {
        "transaction_id": ["t1", "t2", "t3"],
        "tx_datetime": ["2018-04-01T10:00:00+05:30", "2018-04-01 03:00:00", "2018-04-01T02:00Z"],
        "customer_id": [1, 2, 1],
        "terminal_id": [7, 7, 8],
        "amount_minor": [1_050, 99_999, 1],
        "is_fraud": [0, 1, 0],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_valid_rows_are_sorted_by_time_in_utc() -> None:
    out = validate_transactions(frame())
    assert str(out["tx_datetime"].dt.tz) == "UTC"
    # 10:00 IST = 04:30 UTC; the naive 03:00 is taken as UTC.
    assert out["transaction_id"].tolist() == ["t3", "t2", "t1"]
    assert out["tx_datetime"].iloc[2] == pd.Timestamp("2018-04-01 04:30", tz="UTC")
    assert out["amount_minor"].dtype == "int64"
    assert out["is_fraud"].dtype == "int8"


def test_amount_in_rupees_becomes_exact_paise() -> None:
    rupees = frame(amount=[10.5, 0.07, 1234.56]).drop(columns="amount_minor")
    out = validate_transactions(rupees).set_index("transaction_id")
    assert out.loc[["t1", "t2", "t3"], "amount_minor"].tolist() == [1_050, 7, 123_456]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"amount": [10.005, 1.0, 2.0]}, "more than two decimals"),
        ({"amount_minor": [10.5, 1.0, 2.0]}, "whole minor units"),
        ({"amount_minor": [100, 0, 5]}, "must be > 0"),
        ({"transaction_id": ["t1", "t1", "t2"]}, "duplicate ids, e.g. 't1'"),
        ({"customer_id": [1, None, 2]}, "'customer_id' has 1 missing value"),
        ({"is_fraud": ["no", "yes", "no"]}, "'is_fraud' must be 0/1"),
        ({"tx_datetime": [1, 2, 3]}, "'tx_datetime' must hold timestamps"),
        ({"currency": ["INR", "USD", "INR"]}, "several currencies"),
    ],
)
def test_bad_values_are_named(overrides: dict[str, Any], message: str) -> None:
    bad = frame(**overrides)
    if "amount" in overrides:
        bad = bad.drop(columns="amount_minor")
    with pytest.raises(DatasetError, match=message):
        validate_transactions(bad)


def test_missing_amount_names_both_options() -> None:
    with pytest.raises(DatasetError, match=r"amount_minor \(or 'amount' in currency units\)"):
        validate_transactions(frame().drop(columns="amount_minor"))


def test_empty_and_unsupported_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    frame().head(0).to_csv(empty, index=False)
    with pytest.raises(DatasetError, match="no rows"):
        read_transactions(empty)
    with pytest.raises(DatasetError, match=r"use \.csv or \.parquet"):
        read_transactions(tmp_path / "data.xlsx")
    with pytest.raises(DatasetError, match="no such file"):
        read_transactions(tmp_path / "missing.parquet")
