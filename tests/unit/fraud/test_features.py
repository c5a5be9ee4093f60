"""Feature values on hand-built sequences, against hand-computed numbers, and the registry."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import pytest

from fraud.features import (
    FEATURES,
    HANDBOOK_FEATURES,
    RIZZPAY_FEATURES,
    UnknownFeatureError,
    WindowFeature,
    compute_features,
    required_columns,
)

T0 = pd.Timestamp("2018-04-02 06:30:00", tz="UTC")  # Monday 12:00 IST
H = pd.Timedelta(hours=1)
D = pd.Timedelta(days=1)


def tx(offset: pd.Timedelta, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tx_datetime": T0 + offset,
        "customer_id": 1,
        "terminal_id": 1,
        "amount_minor": 10_000,
        "is_fraud": 0,
        "card_bin": None,
        "card_last4": None,
        "device_id": "dev-a",
        "ip": "49.1.1.1",
        "vpa": None,
    }
    row.update(fields)
    return row


def table(*rows: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], utc=True)
    for c in ("card_bin", "card_last4", "device_id", "ip", "vpa"):
        frame[c] = frame[c].astype("str").where(frame[c].notna())
    return frame


def test_customer_windows_include_the_current_payment_and_exclude_exactly_w_ago() -> None:
    frame = table(
        tx(0 * H, amount_minor=10_000),
        tx(12 * H, amount_minor=30_000),
        tx(12 * H + H, customer_id=2, amount_minor=99_900),  # another customer: no effect
        tx(1 * D, amount_minor=5_000),  # exactly one day after the first: it drops out
        tx(3 * D, amount_minor=2_000),
    )
    names = [
        "customer_nb_tx_1d",
        "customer_avg_amount_1d",
        "customer_nb_tx_7d",
        "customer_avg_amount_7d",
    ]
    f = compute_features(frame, names)
    mine = frame["customer_id"] == 1
    assert f.loc[mine, "customer_nb_tx_1d"].tolist() == [1, 2, 2, 1]
    assert f.loc[mine, "customer_avg_amount_1d"].tolist() == [100.0, 200.0, 175.0, 20.0]
    assert f.loc[mine, "customer_nb_tx_7d"].tolist() == [1, 2, 3, 4]
    assert f.loc[mine, "customer_avg_amount_7d"].tolist() == [100.0, 200.0, 150.0, 117.5]
    assert f.loc[~mine, "customer_avg_amount_1d"].tolist() == [999.0]


def test_terminal_features_use_labels_only_after_the_7_day_delay() -> None:
    frame = table(
        tx(0 * D, is_fraud=1),  # a
        tx(2 * D),  # b
        tx(7 * D),  # c: 1-day window (t0-1d, t0] holds a
        tx(8 * D + H),  # d: 1-day window (t0+1h, t0+1d+1h] is empty; 7-day holds a
        tx(9 * D + pd.Timedelta(seconds=1)),  # e: 1-day holds b; 7-day holds a and b
    )
    names = ["terminal_nb_tx_1d", "terminal_risk_1d", "terminal_nb_tx_7d", "terminal_risk_7d"]
    f = compute_features(frame, names)
    assert f["terminal_nb_tx_1d"].tolist() == [0, 0, 1, 0, 1]
    assert f["terminal_risk_1d"].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert f["terminal_nb_tx_7d"].tolist() == [0, 0, 1, 1, 2]
    assert f["terminal_risk_7d"].tolist() == [0.0, 0.0, 1.0, 1.0, 0.5]
    # A payment's own label (or any label of the last 7 days) never reaches its features.
    relabelled = frame.copy()
    relabelled.loc[2:, "is_fraud"] = 1
    again = compute_features(relabelled, names)
    pd.testing.assert_frame_equal(f.iloc[2:], again.iloc[2:])


def test_equal_timestamps_count_in_input_order() -> None:
    frame = table(tx(0 * H), tx(0 * H), tx(0 * H, customer_id=2))
    f = compute_features(frame, ["customer_nb_tx_1d"])
    assert f["customer_nb_tx_1d"].tolist() == [1, 2, 1]


def test_velocity_per_card_device_ip_vpa() -> None:
    frame = table(
        tx(0 * H, card_bin="652150", card_last4="0423", device_id="d1", amount_minor=1_000),
        tx(H / 2, card_bin="652150", card_last4="0423", device_id="d1", amount_minor=2_000),
        # Same last4, other BIN: another card.
        tx(H / 2, card_bin="411111", card_last4="0423", device_id="d2", amount_minor=4_000),
        tx(61 * pd.Timedelta(minutes=1), card_bin="652150", card_last4="0423", device_id="d1"),
        tx(2 * H, vpa="asha12@okhdfc", device_id="d1", ip="49.2.2.2"),  # UPI: no card
    )
    names = [
        "card_nb_tx_1h",
        "card_nb_tx_1d",
        "card_sum_amount_1d",
        "device_nb_tx_1h",
        "ip_nb_tx_1d",
        "vpa_nb_tx_1d",
    ]
    f = compute_features(frame, names)
    assert f["card_nb_tx_1h"].tolist() == [1, 2, 1, 2, 0]
    assert f["card_nb_tx_1d"].tolist() == [1, 2, 1, 3, 0]
    assert f["card_sum_amount_1d"].tolist() == [10.0, 30.0, 40.0, 130.0, 0.0]
    assert f["device_nb_tx_1h"].tolist() == [1, 2, 1, 2, 2]
    assert f["ip_nb_tx_1d"].tolist() == [1, 2, 3, 4, 1]
    assert f["vpa_nb_tx_1d"].tolist() == [0, 0, 0, 0, 1]


def test_weekend_and_night_are_in_india_time() -> None:
    frame = table(
        tx(pd.Timestamp("2018-04-01 20:00", tz="UTC") - T0),  # Mon 01:30 IST, Sun in UTC
        tx(pd.Timestamp("2018-04-01 10:00", tz="UTC") - T0),  # Sun 15:30 IST
        tx(pd.Timestamp("2018-04-02 00:30", tz="UTC") - T0),  # Mon 06:00 IST: not night
    )
    f = compute_features(frame, ["is_weekend", "is_night"])
    assert f["is_weekend"].tolist() == [0, 1, 0]
    assert f["is_night"].tolist() == [1, 0, 0]
    utc = compute_features(frame, ["is_weekend", "is_night"], timezone="UTC")
    assert utc["is_weekend"].tolist() == [1, 1, 0]
    assert utc["is_night"].tolist() == [0, 0, 1]


def test_amount_ratio_and_novelty() -> None:
    frame = table(
        tx(0 * H, amount_minor=10_000),
        tx(H, amount_minor=50_000, device_id="attacker"),
    )
    f = compute_features(
        frame, ["amount", "amount_to_customer_avg_30d", "customer_device_nb_tx_30d"]
    )
    assert f["amount"].tolist() == [100.0, 500.0]
    assert f["amount_to_customer_avg_30d"].tolist() == [1.0, 500.0 / 300.0]
    assert f["customer_device_nb_tx_30d"].tolist() == [1, 1]


def _brute_force(frame: pd.DataFrame, feature: WindowFeature) -> npt.NDArray[np.float64]:
    """The window definition written directly: an n × n mask of (row, window member)."""
    ts: npt.NDArray[np.int64] = frame["tx_datetime"].dt.as_unit("ns").astype("int64").to_numpy()
    unit_per_s = 1_000_000_000
    key = frame[list(feature.key)]
    valid = key.notna().all(axis=1).to_numpy()
    key_str: npt.NDArray[np.object_] = key.apply(lambda r: "|".join(map(str, r)), axis=1).to_numpy()
    w, d = feature.window_s * unit_per_s, feature.delay_s * unit_per_s
    t_i, t_j = ts[:, None], ts[None, :]
    mask: npt.NDArray[np.bool_] = (
        valid[:, None]
        & valid[None, :]
        & (key_str[:, None] == key_str[None, :])
        & (t_j > t_i - d - w)
        & (t_j <= t_i - d)
    )
    if feature.delay_s == 0:
        mask &= np.tri(len(frame), dtype=bool)  # members up to the row itself, in input order
    count: npt.NDArray[np.float64] = mask.sum(axis=1).astype(np.float64)
    if feature.aggregation == "count":
        return count
    assert feature.value is not None
    values: npt.NDArray[np.float64] = frame[feature.value].to_numpy(dtype=float)
    total = mask.astype(float) @ values * feature.scale
    if feature.aggregation == "sum":
        return total
    mean: npt.NDArray[np.float64] = np.divide(
        total, count, out=np.zeros_like(total), where=count > 0
    )
    return mean


def test_every_window_feature_matches_a_brute_force_definition(small_frame: pd.DataFrame) -> None:
    # 20 days, thinned to about 1,500 payments so the n × n definition stays quick.
    days = small_frame[small_frame["tx_time_days"] < 20]
    frame = days.iloc[:: max(1, len(days) // 1_500)].reset_index(drop=True)
    windows = [f for f in FEATURES.values() if isinstance(f, WindowFeature)]
    computed = compute_features(frame, [f.name for f in windows])
    for feature in windows:
        expected = _brute_force(frame, feature)
        assert (expected != 0).sum() >= 10, f"{feature.name}: the sample cannot test it"
        np.testing.assert_allclose(
            computed[feature.name].to_numpy(), expected, err_msg=feature.name
        )


def test_registry_sets_and_guards() -> None:
    assert len(HANDBOOK_FEATURES) == 15
    assert set(HANDBOOK_FEATURES) < set(RIZZPAY_FEATURES)
    assert required_columns(HANDBOOK_FEATURES) == {
        "amount_minor",
        "customer_id",
        "terminal_id",
        "is_fraud",
    }
    assert {"card_bin", "card_last4", "vpa", "device_id", "ip"} <= required_columns(
        RIZZPAY_FEATURES
    )
    with pytest.raises(ValueError, match="delay"):
        WindowFeature("leaky", ("terminal_id",), "mean", 86_400, value="is_fraud")
    with pytest.raises(UnknownFeatureError, match="no_such_feature"):
        compute_features(pd.DataFrame(), ["no_such_feature"])
    with pytest.raises(KeyError, match="device_id"):
        compute_features(table(tx(0 * H)).drop(columns="device_id"), ["device_nb_tx_1h"])
