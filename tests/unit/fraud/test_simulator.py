"""The simulator: determinism, money, the three fraud scenarios, and the Indian payment fields."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

from fraud.simulator import (
    COLUMNS,
    SimulationConfig,
    SimulationTruth,
    iter_transactions,
    simulate,
)

from .conftest import SMALL

Sim = tuple[pd.DataFrame, SimulationTruth]


def test_same_seed_same_frame_other_seed_other_frame(small_frame: pd.DataFrame) -> None:
    again = simulate(SMALL)
    pd.testing.assert_frame_equal(small_frame, again)
    other = simulate(dataclasses.replace(SMALL, seed=8))
    assert len(other) != len(small_frame) or not other["amount_minor"].equals(
        small_frame["amount_minor"]
    )


def test_columns_types_and_time_order(small_frame: pd.DataFrame) -> None:
    assert list(small_frame.columns) == list(COLUMNS)
    assert str(small_frame["tx_datetime"].dt.tz) == "UTC"
    assert small_frame["tx_datetime"].is_monotonic_increasing
    assert (small_frame["transaction_id"].to_numpy() == np.arange(len(small_frame))).all()
    # Day k starts at local (IST) midnight of start_date + k.
    local = small_frame["tx_datetime"].dt.tz_convert("Asia/Kolkata")
    start = pd.Timestamp(SMALL.start_date)
    days = (local.dt.tz_localize(None).dt.floor("D") - start).dt.days
    assert (days.to_numpy() == small_frame["tx_time_days"].to_numpy()).all()
    assert small_frame["tx_time_days"].between(0, SMALL.n_days - 1).all()


def test_money_is_positive_integer_paise(small_frame: pd.DataFrame) -> None:
    amounts = small_frame["amount_minor"]
    assert amounts.dtype == np.int64
    assert (amounts > 0).all()
    assert set(small_frame["currency"]) == {"INR"}
    # Customer spend means are 5–100 rupees, so typical payments are tens of rupees.
    assert 2_000 < amounts.median() < 8_000


def test_scenario_1_every_payment_above_220_rupees_is_fraud(small_frame: pd.DataFrame) -> None:
    above = small_frame["amount_minor"] > 22_000
    assert above.any()
    assert (small_frame.loc[above, "is_fraud"] == 1).all()
    s1 = small_frame["fraud_scenario"] == 1
    assert s1.any()
    assert (small_frame.loc[s1, "amount_minor"] > 22_000).all()
    assert ((small_frame["fraud_scenario"] > 0) == (small_frame["is_fraud"] == 1)).all()


def test_scenario_2_compromised_terminals(small_sim: Sim) -> None:
    frame, truth = small_sim
    events = truth.terminal_compromises
    # Two terminals a day, for every day but the last, each for 28 days.
    assert len(events) == 2 * (SMALL.n_days - 1)
    assert ((events["end_day"] - events["start_day"]) == 28).all()
    in_window = np.zeros(len(frame), dtype=bool)
    term, day = frame["terminal_id"].to_numpy(), frame["tx_time_days"].to_numpy()
    for e in events.itertuples():
        in_window |= (term == e.terminal_id) & (day >= e.start_day) & (day < e.end_day)
    assert in_window.sum() > 100
    assert (frame.loc[in_window, "is_fraud"] == 1).all()
    # ... and no scenario-2 fraud outside a compromise window.
    assert not ((frame["fraud_scenario"] == 2) & ~in_window).any()


def test_scenario_3_compromised_customers_third_of_payments_times_5(small_sim: Sim) -> None:
    frame, truth = small_sim
    events = truth.customer_compromises
    assert len(events) == 3 * (SMALL.n_days - 1)
    assert ((events["end_day"] - events["start_day"]) == 14).all()
    cust, day = frame["customer_id"].to_numpy(), frame["tx_time_days"].to_numpy()
    in_window = np.zeros(len(frame), dtype=bool)
    for e in events.itertuples():
        in_window |= (cust == e.customer_id) & (day >= e.start_day) & (day < e.end_day)
    s3 = frame["fraud_scenario"].to_numpy() == 3
    assert s3.sum() > 100
    assert not (s3 & ~in_window).any()
    # Overlapping windows raise the share a little above one third.
    share = s3.sum() / in_window.sum()
    assert 0.28 < share < 0.45
    # Amounts ×5: compare with the same customers' legitimate payments.
    legit = frame[frame["is_fraud"] == 0].groupby("customer_id")["amount_minor"].median()
    stolen = frame[s3]
    ratio = (stolen["amount_minor"] / stolen["customer_id"].map(legit)).median()
    assert 3.5 < ratio < 7.0


def test_card_upi_fields_follow_the_method(small_frame: pd.DataFrame) -> None:
    method = small_frame["method"]
    assert set(method) == {"card", "upi", "netbanking", "wallet"}
    card = method == "card"
    assert small_frame.loc[card, ["card_bin", "card_last4"]].notna().all().all()
    assert small_frame.loc[~card, ["card_bin", "card_last4"]].isna().all().all()
    bins = small_frame.loc[card, "card_bin"]
    assert bins.str.fullmatch(r"\d{6}").all()
    assert bins.str.match(r"^(60|65|81|82|508|4|5[1-5]|2221|2720)").all()
    assert small_frame.loc[card, "card_last4"].str.fullmatch(r"\d{4}").all()
    upi = method == "upi"
    assert small_frame.loc[upi, "vpa"].str.fullmatch(r"[a-z]+\d{1,3}@[a-z]+").all()
    assert small_frame.loc[~upi, "vpa"].isna().all()
    # One card per customer: BIN and last4 never change for a customer.
    assert (small_frame[card].groupby("customer_id")["card_last4"].nunique() == 1).all()
    ip = small_frame["ip"]
    assert ip.str.fullmatch(r"\d{1,3}(\.\d{1,3}){3}").all()
    assert not ip.str.match(r"^(10|127|192\.168)\.").any()


def test_devices_stable_per_customer_and_stolen_payments_often_new(
    small_frame: pd.DataFrame,
) -> None:
    legit = small_frame[small_frame["is_fraud"] == 0]
    usual = legit.groupby("customer_id")["device_id"].agg(lambda d: set(d.value_counts().index[:2]))
    on_usual = legit.apply(lambda r: r["device_id"] in usual[r["customer_id"]], axis=1)
    assert on_usual.mean() > 0.97
    stolen = small_frame[small_frame["fraud_scenario"] == 3]
    strange = stolen.apply(
        lambda r: r["device_id"] not in usual.get(r["customer_id"], set()), axis=1
    )
    assert 0.35 < strange.mean() < 0.65


def test_iterator_yields_the_frame_in_time_order(small_frame: pd.DataFrame) -> None:
    first = list(itertools.islice(iter_transactions(SMALL), 500))
    assert [t.transaction_id for t in first] == list(range(500))
    times = [t.tx_datetime for t in first]
    assert times == sorted(times)
    assert all(t.tx_datetime.tzinfo is not None for t in first)
    row = small_frame.iloc[123]
    tx = first[123]
    assert tx.amount_minor == row["amount_minor"]
    assert isinstance(tx.amount_minor, int)
    assert tx.customer_id == row["customer_id"]
    assert tx.tx_datetime == row["tx_datetime"].to_pydatetime()
    assert (tx.card_bin is None) == (tx.method != "card")


def test_tiny_configurations_work_as_a_load_generator() -> None:
    frame = simulate(SimulationConfig(n_customers=20, n_terminals=2_000, n_days=3, seed=1))
    assert 0 < len(frame) < 20 * 3 * 10
    assert list(frame.columns) == list(COLUMNS)
    # With a single terminal almost nobody is within reach: an empty, well-formed frame.
    empty = simulate(SimulationConfig(n_customers=3, n_terminals=2, n_days=2, seed=1, radius=0.01))
    assert len(empty) == 0
    assert list(empty.columns) == list(COLUMNS)


def test_rejects_impossible_configurations() -> None:
    with pytest.raises(ValueError, match="compromised_terminals_per_day"):
        SimulationConfig(n_terminals=1)
    with pytest.raises(ValueError, match="method_weights"):
        SimulationConfig(method_weights=(0.5, 0.5, 0.5, 0.5))


@pytest.mark.slow
def test_default_size_matches_the_handbook() -> None:
    """About 1.75 M payments and 0.84% fraud, as the handbook's generator (about 5 s)."""
    frame = simulate(SimulationConfig(start_date=dt.date(2018, 4, 1)))
    assert 1_700_000 < len(frame) < 1_810_000
    assert 0.0075 < frame["is_fraud"].mean() < 0.0095
