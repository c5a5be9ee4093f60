"""Online (streaming) features against the offline pandas computation, value for value.

Floats are compared with ``==``, not ``math.isclose``: :mod:`fraud.online` keeps integer sums and
forms each value with the same float64 operations as :mod:`fraud.features` (one conversion of an
exact integer total, one division by the count, one multiplication by the scale), so the results
are bit-for-bit identical and any difference is a real disagreement.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import random
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import pytest

from fraud.features import (
    FEATURES,
    HANDBOOK_FEATURES,
    RIZZPAY_FEATURES,
    Feature,
    WindowFeature,
    compute_features,
    epoch_ns,
)
from fraud.online import OnlineFeatures, OutOfOrderError
from fraud.online import epoch_ns as instant_ns
from fraud.simulator import SimulationConfig, iter_transactions, simulate

PARITY = SimulationConfig(n_customers=200, n_terminals=400, n_days=40, seed=11)
LONG = SimulationConfig(n_customers=40, n_terminals=80, n_days=150, seed=5)

T0 = dt.datetime(2018, 4, 2, 6, 30, tzinfo=dt.UTC)  # Monday 12:00 IST
S = dt.timedelta(seconds=1)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


def tx(offset: dt.timedelta, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "transaction_id": 0,
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


def numbered(*rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**r, "transaction_id": i} for i, r in enumerate(rows)]


def offline(rows: list[dict[str, Any]], names: list[str] | tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], utc=True)
    for c in ("card_bin", "card_last4", "device_id", "ip", "vpa"):
        frame[c] = frame[c].astype("str").where(frame[c].notna())
    return compute_features(frame, list(names))


def online(rows: list[dict[str, Any]], names: list[str] | tuple[str, ...]) -> pd.DataFrame:
    o = OnlineFeatures(list(names))
    return pd.DataFrame([o.update_and_compute(r) for r in rows], dtype=np.float64)


def assert_parity(rows: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    off, on = offline(rows, names), online(rows, names)
    pd.testing.assert_frame_equal(off, on, check_exact=True)
    return on


@pytest.fixture(scope="module")
def parity_frame() -> pd.DataFrame:
    return simulate(PARITY)


@pytest.fixture(scope="module")
def parity_offline(parity_frame: pd.DataFrame) -> pd.DataFrame:
    return compute_features(parity_frame, RIZZPAY_FEATURES)


def compare(expected: pd.DataFrame, rows: list[dict[str, float | int]]) -> tuple[int, int]:
    """(values compared, values equal) between the offline frame and the online rows."""
    got = pd.DataFrame(rows, columns=list(RIZZPAY_FEATURES), dtype=np.float64)
    assert got.shape == expected.shape
    equal = int((got.to_numpy() == expected.to_numpy()).sum())
    return expected.size, equal


def test_every_feature_of_every_transaction_equals_offline(
    parity_frame: pd.DataFrame, parity_offline: pd.DataFrame
) -> None:
    o = OnlineFeatures()
    rows = [o.update_and_compute(t) for t in iter_transactions(PARITY)]
    compared, equal = compare(parity_offline, rows)
    print(f"\nparity: {equal} of {compared} feature values equal ({len(rows)} transactions)")
    assert compared == len(parity_frame) * len(RIZZPAY_FEATURES) > 400_000
    assert equal == compared
    # The sample exercises every feature (no column is trivially all zero).
    for name in RIZZPAY_FEATURES:
        assert (parity_offline[name] != 0).sum() >= 50, name
    # Types: counts and flags are ints, the rest floats.
    assert isinstance(rows[-1]["customer_nb_tx_7d"], int)
    assert isinstance(rows[-1]["is_night"], int)
    assert isinstance(rows[-1]["terminal_risk_7d"], float)


def test_parity_from_frame_records_with_missing_keys(
    parity_frame: pd.DataFrame, parity_offline: pd.DataFrame
) -> None:
    # Rows as pandas gives them: Timestamps, NaN/None for a payment without card or VPA.
    o = OnlineFeatures()
    rows = [o.update_and_compute(r) for r in parity_frame.to_dict("records")]
    compared, equal = compare(parity_offline, rows)
    assert equal == compared


def test_parity_when_labels_arrive_late_but_within_the_delay(
    parity_frame: pd.DataFrame, parity_offline: pd.DataFrame
) -> None:
    # Live traffic carries no label; each label arrives 0 s to 7 days after its payment.
    rng = random.Random(3)
    pending: list[tuple[int, int, int]] = []  # (arrival ns, transaction id, label)
    o = OnlineFeatures()
    rows = []
    for t in iter_transactions(PARITY):
        now = instant_ns(t.tx_datetime)
        while pending and pending[0][0] <= now:
            _, tx_id, label = heapq.heappop(pending)
            o.observe_label(tx_id, label)
        live = {f: getattr(t, f) for f in t.__dataclass_fields__ if f != "is_fraud"}
        rows.append(o.update_and_compute(live))
        arrival = now + rng.randint(0, 7 * 86_400) * 1_000_000_000
        heapq.heappush(pending, (arrival, t.transaction_id, t.is_fraud))
    compared, equal = compare(parity_offline, rows)
    assert equal == compared


def test_terminal_labels_count_exactly_at_the_7_day_boundary() -> None:
    rows = numbered(
        tx(0 * D, is_fraud=1),  # a
        tx(7 * D - S),  # 1 s short of the delay: a not yet visible
        tx(7 * D),  # exactly 7 days: window (t0 - 1d, t0] holds a
        tx(8 * D),  # 1-day window (t0, t0 + 1d]: a is out exactly at its edge
        tx(8 * D + S),
    )
    names = ["terminal_nb_tx_1d", "terminal_risk_1d", "terminal_nb_tx_7d", "terminal_risk_7d"]
    on = assert_parity(rows, names)
    assert on["terminal_nb_tx_1d"].tolist() == [0, 0, 1, 0, 0]
    assert on["terminal_risk_1d"].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert on["terminal_nb_tx_7d"].tolist() == [0, 0, 1, 1, 1]
    assert on["terminal_risk_7d"].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_a_late_label_corrects_windows_that_already_hold_the_payment() -> None:
    o = OnlineFeatures(["terminal_risk_30d", "terminal_nb_tx_30d"])
    o.update_and_compute({"transaction_id": "p1", "tx_datetime": T0, "terminal_id": 9})
    o.update_and_compute({"transaction_id": "p2", "tx_datetime": T0 + H, "terminal_id": 9})
    first = o.update_and_compute({"tx_datetime": T0 + 8 * D, "terminal_id": 9})
    assert first == {"terminal_risk_30d": 0.0, "terminal_nb_tx_30d": 2}
    assert o.observe_label("p1", 1)  # known only 8 days later: still counted, as offline
    after = o.update_and_compute({"tx_datetime": T0 + 8 * D, "terminal_id": 9})
    assert after == {"terminal_risk_30d": 0.5, "terminal_nb_tx_30d": 2}
    assert o.observe_label("p1", 0)  # a corrected label replaces the first
    assert o.update_and_compute({"tx_datetime": T0 + 9 * D, "terminal_id": 9}) == first
    assert not o.observe_label("unknown", 1)


def test_payments_exactly_at_a_window_edge() -> None:
    card = {"card_bin": "652150", "card_last4": "0423"}
    rows = numbered(
        tx(0 * H, amount_minor=10_000, **card),
        tx(H, amount_minor=20_000, **card),  # exactly 1 h later: the first is out of 1 h
        tx(H, amount_minor=40_000, **card),  # same instant: both count, in feed order
        tx(D - dt.timedelta(microseconds=1), amount_minor=5_000, **card),  # first still in
        tx(D, amount_minor=7_000, **card),  # exactly 1 day: the first drops out
        tx(31 * D, amount_minor=1_000),  # 30-day window: only itself
    )
    names = [
        "customer_nb_tx_1d",
        "customer_avg_amount_1d",
        "customer_nb_tx_30d",
        "card_nb_tx_1h",
        "card_nb_tx_1d",
        "card_sum_amount_1d",
        "amount_to_customer_avg_30d",
    ]
    on = assert_parity(rows, names)
    assert on["card_nb_tx_1h"].tolist() == [1, 1, 2, 1, 2, 0]
    assert on["customer_nb_tx_1d"].tolist() == [1, 2, 3, 4, 4, 1]
    assert on["card_sum_amount_1d"].tolist() == [100.0, 300.0, 700.0, 750.0, 720.0, 0.0]
    assert on["customer_nb_tx_30d"].tolist() == [1, 2, 3, 4, 5, 1]


def test_handbook_set_and_equal_timestamps() -> None:
    rows = numbered(
        tx(0 * H), tx(0 * H, amount_minor=3_333), tx(0 * H, customer_id=2), tx(H, is_fraud=1)
    )
    assert_parity(rows, list(HANDBOOK_FEATURES))


def horizons(registry: dict[str, Feature]) -> dict[tuple[str, ...], int]:
    """Per key group: the longest window + delay, in seconds."""
    out: dict[tuple[str, ...], int] = {}
    for f in registry.values():
        if isinstance(f, WindowFeature):
            out[f.key] = max(out.get(f.key, 0), f.window_s + f.delay_s)
    return out


def events_within(frame: pd.DataFrame, ts: npt.NDArray[np.int64], now: int, extra_s: int) -> int:
    """How many (transaction, key group) events have a key and a time in (now - H - extra, now]."""
    total = 0
    for key, horizon in horizons(FEATURES).items():
        present = frame[list(key)].notna().all(axis=1).to_numpy()
        lower = now - (horizon + extra_s) * 1_000_000_000
        total += int((present & (ts > lower) & (ts <= now)).sum())
    return total


def test_state_stays_bounded_over_a_long_sequence() -> None:
    frame = simulate(LONG)
    ts = epoch_ns(frame["tx_datetime"])
    day_ends = np.flatnonzero(np.diff(frame["tx_time_days"].to_numpy())) + 1
    checkpoints = set(day_ends.tolist())
    sweep = 86_400
    o = OnlineFeatures(sweep_interval_s=sweep)
    sizes = []
    for i, record in enumerate(frame.to_dict("records")):
        if i in checkpoints:
            now = int(ts[i - 1])
            size = o.state_size()
            assert size <= events_within(frame, ts, now, sweep), f"day of row {i}"
            sizes.append(size)
        o.update_and_compute(record)
    now = int(ts[-1])
    o.expire()  # a full trim leaves exactly the events a future window could hold
    assert o.state_size() == events_within(frame, ts, now, 0)
    # Steady state: far below everything ever fed (150 days × 8 key groups).
    assert max(sizes) < 0.4 * len(frame) * len(horizons(FEATURES))
    assert max(sizes[60:]) < 1.3 * min(sizes[60:])
    # A long silence empties the state.
    o.expire(frame["tx_datetime"].iloc[-1].to_pydatetime() + 38 * D)
    assert o.state_size() == 0 and o.n_keys() == 0


def test_state_round_trips_through_json_mid_sequence(parity_frame: pd.DataFrame) -> None:
    records = parity_frame.to_dict("records")[:6_000]
    half = len(records) // 2
    a = OnlineFeatures()
    for r in records[:half]:
        unlabelled = r["transaction_id"] % 2 == 1  # label arrives later, below, after the restore
        a.update_and_compute({**r, "is_fraud": None} if unlabelled else r)
    text = a.to_json()
    json.loads(text)  # plain JSON
    b = OnlineFeatures.from_json(text)
    assert b.to_json() == text
    assert b.state_size() == a.state_size() and b.n_keys() == a.n_keys()
    for r in records[:half]:
        if r["transaction_id"] % 2:
            assert a.observe_label(r["transaction_id"], r["is_fraud"]) == b.observe_label(
                r["transaction_id"], r["is_fraud"]
            )
    for r in records[half:]:
        assert a.update_and_compute(r) == b.update_and_compute(r)
    assert a.to_json() == b.to_json()


def test_bad_input_is_refused() -> None:
    o = OnlineFeatures(["customer_nb_tx_1d"])
    o.update_and_compute(tx(H))
    with pytest.raises(OutOfOrderError, match="older"):
        o.update_and_compute(tx(0 * H))
    with pytest.raises(ValueError, match="timezone-aware"):
        o.update_and_compute(tx(2 * H, tx_datetime=dt.datetime(2018, 4, 3)))  # noqa: DTZ001
    with pytest.raises(TypeError, match="amount_minor must be an integer"):
        OnlineFeatures(["customer_avg_amount_1d"]).update_and_compute(tx(H, amount_minor=1.5))
    with pytest.raises(KeyError, match="amount_minor"):
        OnlineFeatures(["customer_avg_amount_1d"]).update_and_compute(tx(H, amount_minor=None))
    # A refused transaction leaves the state as it was.
    bad = OnlineFeatures()
    bad.update_and_compute(tx(0 * H))
    before = bad.to_json()
    with pytest.raises(TypeError, match="amount_minor"):
        bad.update_and_compute(tx(H, amount_minor="12.50", card_bin="652150", card_last4="1"))
    assert bad.to_json() == before
    other = {
        "customer_nb_tx_1d": WindowFeature("customer_nb_tx_1d", ("customer_id",), "count", 3_600)
    }
    with pytest.raises(ValueError, match="other feature definitions"):
        OnlineFeatures.from_json(o.to_json(), registry=other)
