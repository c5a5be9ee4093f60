"""Fraud features, defined once as data and computed offline with pandas/numpy.

Every feature is an entry of :data:`FEATURES`: a :class:`WindowFeature` (an aggregate over the
same key's past transactions), a :class:`CalendarFeature` (from the local time of day or week), an
:class:`AmountFeature` (the transaction's own amount) or a :class:`RatioFeature` (one feature over
another).  The entries carry everything a streaming implementation needs — key columns, window
length, label delay, aggregation, value column and unit — so the Faust windowed tables can be built
from the same registry and checked against :func:`compute_features` on one event sequence.

Window convention (all window features).  For a transaction at time ``t`` with key ``k``, window
length ``w`` and delay ``d``, the window holds the transactions with key ``k`` whose timestamp
``s`` satisfies ``t - d - w < s <= t - d``:

* ``d = 0`` (customer spend, velocity): the window is trailing and **includes the current
  transaction**, as in the handbook's ``rolling("Nd")``; among transactions with exactly the same
  timestamp only those at or before the current row in the input order count (as a stream would
  see them).  So a count is at least 1 and a mean includes the current amount.
* ``d > 0`` (terminal features): the window ``(t - d - w, t - d]`` ends ``d`` before the
  transaction, because fraud labels are only known after the delay; the current transaction is
  never in it.  A feature that aggregates the label column must have ``d > 0`` (checked).

Empty windows give 0 (a count of 0, a mean of 0, a share of 0).  Transactions whose key is missing
(for example ``card_bin`` of a UPI payment) get 0 for that key's features.  Times are compared as
instants (UTC), so windows do not depend on the time zone; calendar features use
:data:`DEFAULT_TIMEZONE` (India Standard Time) unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

DEFAULT_TIMEZONE = "Asia/Kolkata"
LABEL_COLUMN = "is_fraud"
_HOUR_S = 3_600
_DAY_S = 86_400

Aggregation = Literal["count", "sum", "mean"]


@dataclass(frozen=True)
class WindowFeature:
    """An aggregate over the transactions of the same key in a trailing, optionally delayed window.

    ``count`` counts transactions; ``sum`` and ``mean`` aggregate ``value`` (an integer column:
    ``amount_minor`` or the 0/1 label) and multiply the result by ``scale`` (``0.01`` turns paise
    into rupees).  ``mean`` of the label is the fraud share (risk).
    """

    name: str
    key: tuple[str, ...]
    aggregation: Aggregation
    window_s: int
    delay_s: int = 0
    value: str | None = None
    scale: float = 1.0
    unit: str = "transactions"
    description: str = ""

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.delay_s < 0:
            raise ValueError(f"{self.name}: window_s must be > 0 and delay_s >= 0")
        if (self.aggregation == "count") != (self.value is None):
            raise ValueError(f"{self.name}: count takes no value column, sum/mean need one")
        if self.value == LABEL_COLUMN and self.delay_s <= 0:
            raise ValueError(f"{self.name}: a feature on the label must have a delay (leakage)")

    @property
    def inputs(self) -> tuple[str, ...]:
        """Columns of the transaction table this feature reads (besides ``tx_datetime``)."""
        return self.key + ((self.value,) if self.value else ())


@dataclass(frozen=True)
class CalendarFeature:
    """A 0/1 flag from the transaction's local time in ``DEFAULT_TIMEZONE`` (or the one given).

    ``weekend``: Saturday or Sunday.  ``night``: local time in [00:00, 06:00).
    """

    name: str
    kind: Literal["weekend", "night"]
    unit: str = "0/1"
    description: str = ""

    @property
    def inputs(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class AmountFeature:
    """The transaction amount in currency units (``amount_minor * scale``; rupees for INR)."""

    name: str
    scale: float = 0.01
    unit: str = "INR"
    description: str = ""

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("amount_minor",)


@dataclass(frozen=True)
class RatioFeature:
    """``numerator / denominator`` of two other features, 0 where the denominator is 0."""

    name: str
    numerator: str
    denominator: str
    unit: str = "ratio"
    description: str = ""

    @property
    def inputs(self) -> tuple[str, ...]:
        return ()


Feature = WindowFeature | CalendarFeature | AmountFeature | RatioFeature


def _windowed() -> list[Feature]:
    out: list[Feature] = []
    for days in (1, 7, 30):
        out.append(
            WindowFeature(
                f"customer_nb_tx_{days}d",
                ("customer_id",),
                "count",
                days * _DAY_S,
                description=f"customer's transactions in the last {days} day(s), this one included",
            )
        )
        out.append(
            WindowFeature(
                f"customer_avg_amount_{days}d",
                ("customer_id",),
                "mean",
                days * _DAY_S,
                value="amount_minor",
                scale=0.01,
                unit="INR",
                description=f"customer's mean amount over the last {days} day(s), "
                "this one included",
            )
        )
    for days in (1, 7, 30):
        out.append(
            WindowFeature(
                f"terminal_nb_tx_{days}d",
                ("terminal_id",),
                "count",
                days * _DAY_S,
                delay_s=7 * _DAY_S,
                description=f"terminal's transactions in the {days} day(s) before the 7-day delay",
            )
        )
        out.append(
            WindowFeature(
                f"terminal_risk_{days}d",
                ("terminal_id",),
                "mean",
                days * _DAY_S,
                delay_s=7 * _DAY_S,
                value=LABEL_COLUMN,
                unit="share",
                description=f"fraud share at the terminal in the {days} day(s) "
                "before the 7-day delay",
            )
        )
    keys: dict[str, tuple[str, ...]] = {
        "card": ("card_bin", "card_last4"),
        "device": ("device_id",),
        "ip": ("ip",),
        "vpa": ("vpa",),
    }
    for label, key in keys.items():
        for suffix, seconds in (("1h", _HOUR_S), ("1d", _DAY_S)):
            out.append(
                WindowFeature(
                    f"{label}_nb_tx_{suffix}",
                    key,
                    "count",
                    seconds,
                    description=f"transactions with this {label} in the last {suffix}, "
                    "this one included; 0 if the payment has no " + label,
                )
            )
        out.append(
            WindowFeature(
                f"{label}_sum_amount_1d",
                key,
                "sum",
                _DAY_S,
                value="amount_minor",
                scale=0.01,
                unit="INR",
                description=f"amount spent with this {label} in the last day, this one included",
            )
        )
    for label, key in (("device", ("customer_id", "device_id")), ("ip", ("customer_id", "ip"))):
        out.append(
            WindowFeature(
                f"customer_{label}_nb_tx_30d",
                key,
                "count",
                30 * _DAY_S,
                description=f"customer's transactions from this {label} in the last 30 days, "
                f"this one included (1 = {label} new to the customer)",
            )
        )
    return out


#: The registry: every feature, by name, in a stable order.
FEATURES: dict[str, Feature] = {
    f.name: f
    for f in [
        AmountFeature("amount", description="transaction amount"),
        CalendarFeature("is_weekend", "weekend", description="Saturday or Sunday, local time"),
        CalendarFeature("is_night", "night", description="00:00-06:00 local time"),
        *_windowed(),
        RatioFeature(
            "amount_to_customer_avg_30d",
            "amount",
            "customer_avg_amount_30d",
            description="amount over the customer's 30-day mean amount",
        ),
        RatioFeature(
            "amount_to_customer_avg_7d",
            "amount",
            "customer_avg_amount_7d",
            description="amount over the customer's 7-day mean amount",
        ),
    ]
}

#: The handbook's 15 input features (chapter 3), under RizzPay names.
HANDBOOK_FEATURES: tuple[str, ...] = (
    "amount",
    "is_weekend",
    "is_night",
    *(f"customer_nb_tx_{d}d" for d in (1, 7, 30)),
    *(f"customer_avg_amount_{d}d" for d in (1, 7, 30)),
    *(f"terminal_nb_tx_{d}d" for d in (1, 7, 30)),
    *(f"terminal_risk_{d}d" for d in (1, 7, 30)),
)

#: Handbook features plus amount ratios, velocity per card/device/IP/VPA and device/IP novelty.
RIZZPAY_FEATURES: tuple[str, ...] = tuple(FEATURES)

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "handbook": HANDBOOK_FEATURES,
    "rizzpay": RIZZPAY_FEATURES,
}


class UnknownFeatureError(KeyError):
    """A feature name that is not in :data:`FEATURES`."""


def resolve(names: Iterable[str]) -> list[Feature]:
    """The features named, plus any they depend on, in dependency order.

    Raises :class:`UnknownFeatureError` naming the first unknown feature.
    """
    ordered: dict[str, Feature] = {}

    def visit(name: str) -> None:
        if name in ordered:
            return
        feature = FEATURES.get(name)
        if feature is None:
            raise UnknownFeatureError(f"unknown feature {name!r}")
        if isinstance(feature, RatioFeature):
            visit(feature.numerator)
            visit(feature.denominator)
        ordered[name] = feature

    for n in names:
        visit(n)
    return list(ordered.values())


def required_columns(names: Iterable[str]) -> set[str]:
    """Input columns (besides ``tx_datetime``) that computing ``names`` needs."""
    return {c for f in resolve(names) for c in f.inputs}


def epoch_ns(timestamps: pd.Series) -> npt.NDArray[np.int64]:
    """Tz-aware timestamps as int64 nanoseconds since the Unix epoch (UTC)."""
    as_ns = timestamps.dt.tz_convert("UTC").dt.as_unit("ns")
    values: npt.NDArray[np.int64] = as_ns.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return values


def compute_features(
    transactions: pd.DataFrame,
    names: Sequence[str],
    *,
    timezone: str = DEFAULT_TIMEZONE,
) -> pd.DataFrame:
    """Compute the named features for every row of ``transactions``.

    ``transactions`` needs ``tx_datetime`` (tz-aware) and the columns of
    :func:`required_columns`; the row order breaks ties between equal timestamps (earlier rows are
    seen first).  Returns a float64 frame with one column per name, in the order given, on the
    same index.  Raises :class:`UnknownFeatureError` for an unknown name and ``KeyError`` naming a
    missing input column.
    """
    features = resolve(names)
    missing = sorted(required_columns(names) - set(transactions.columns))
    if missing:
        raise KeyError(f"missing column(s) for features: {', '.join(missing)}")
    local = transactions["tx_datetime"].dt.tz_convert(timezone)
    windows = _Windows(transactions)
    out: dict[str, npt.NDArray[np.float64]] = {}
    for feature in features:
        if isinstance(feature, AmountFeature):
            amount = transactions["amount_minor"].to_numpy(dtype=np.int64)
            out[feature.name] = amount.astype(np.float64) * feature.scale
        elif isinstance(feature, CalendarFeature):
            if feature.kind == "weekend":
                flag = local.dt.day_of_week.to_numpy() >= 5
            else:
                flag = local.dt.hour.to_numpy() < 6
            out[feature.name] = flag.astype(np.float64)
        elif isinstance(feature, RatioFeature):
            num, den = out[feature.numerator], out[feature.denominator]
            safe = np.where(den != 0, den, 1.0)
            out[feature.name] = np.where(den != 0, num / safe, 0.0)
        else:
            out[feature.name] = windows.values(feature)
    return pd.DataFrame({n: out[n] for n in names}, index=transactions.index)


def _key_codes(transactions: pd.DataFrame, key: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """Dense int64 code per row of the key columns' combined value; -1 if any part is missing."""
    codes = np.zeros(len(transactions), dtype=np.int64)
    missing = np.zeros(len(transactions), dtype=np.bool_)
    for column in key:
        part, uniques = pd.factorize(transactions[column], use_na_sentinel=True)
        part = np.asarray(part, dtype=np.int64)
        missing |= part < 0
        # Re-densify after each column so the combined code stays below n * (n + 1).
        combined = codes * (len(uniques) + 1) + part + 1
        codes = np.asarray(pd.factorize(combined)[0], dtype=np.int64)
    codes[missing] = -1
    return codes


@dataclass(frozen=True)
class _KeyIndex:
    """Rows with a key, sorted by (key, time, input order), with a searchable composite key."""

    order: npt.NDArray[np.int64]  # row positions in sorted order
    group: npt.NDArray[np.int64]  # key code of each sorted row
    composite: npt.NDArray[np.int64]  # group * stride + time rank, ascending


class _Windows:
    """Window aggregates for one frame, vectorised (see the module docstring for the window).

    Each row's window is a contiguous slice of its key's rows sorted by time, found by binary
    search on ``group * stride + rank(time)``; counts and sums come from prefix sums, so sums of
    integer columns are exact.  O(n log n) per feature; sorting is shared by features of one key.
    """

    def __init__(self, transactions: pd.DataFrame) -> None:
        self._frame = transactions
        self._ts = epoch_ns(transactions["tx_datetime"])
        ordered = np.sort(self._ts)
        keep = np.ones(len(ordered), dtype=np.bool_)
        keep[1:] = ordered[1:] != ordered[:-1]
        self._instants = ordered[keep]
        self._stride = np.int64(len(self._instants) + 1)
        self._rank = np.searchsorted(self._instants, self._ts).astype(np.int64)
        self._keys: dict[tuple[str, ...], _KeyIndex] = {}
        self._limits: dict[int, npt.NDArray[np.int64]] = {}

    def _index(self, key: tuple[str, ...]) -> _KeyIndex:
        index = self._keys.get(key)
        if index is None:
            group = _key_codes(self._frame, key)
            rows = np.flatnonzero(group >= 0).astype(np.int64)
            order = rows[np.lexsort((rows, self._rank[rows], group[rows]))]
            g = group[order]
            index = _KeyIndex(order, g, g * self._stride + self._rank[order])
            self._keys[key] = index
        return index

    def _limit_rank(self, offset_ns: int) -> npt.NDArray[np.int64]:
        """Per row: how many distinct instants are <= its time minus ``offset_ns``."""
        ranks = self._limits.get(offset_ns)
        if ranks is None:
            ranks = np.searchsorted(self._instants, self._ts - offset_ns, side="right").astype(
                np.int64
            )
            self._limits[offset_ns] = ranks
        return ranks

    def _first_after(self, index: _KeyIndex, offset_ns: int) -> npt.NDArray[np.int64]:
        """Sorted position of the first row of the same key with time > (row time - offset)."""
        target = index.group * self._stride + self._limit_rank(offset_ns)[index.order]
        return np.searchsorted(index.composite, target, side="left").astype(np.int64)

    def values(self, feature: WindowFeature) -> npt.NDArray[np.float64]:
        result = np.zeros(len(self._frame), dtype=np.float64)
        index = self._index(feature.key)
        if len(index.order) == 0:
            return result
        window_ns = feature.window_s * 1_000_000_000
        delay_ns = feature.delay_s * 1_000_000_000
        lo = self._first_after(index, delay_ns + window_ns)
        if delay_ns == 0:
            hi = np.arange(1, len(index.order) + 1, dtype=np.int64)  # up to the row itself
        else:
            hi = self._first_after(index, delay_ns)
        count = hi - lo
        if feature.aggregation == "count":
            values = count.astype(np.float64)
        else:
            assert feature.value is not None
            v = self._frame[feature.value].to_numpy(dtype=np.int64)[index.order]
            prefix = np.concatenate(([0], np.cumsum(v, dtype=np.int64)))
            total = (prefix[hi] - prefix[lo]).astype(np.float64)
            if feature.aggregation == "sum":
                values = total * feature.scale
            else:
                values = np.where(count > 0, total / np.maximum(count, 1), 0.0) * feature.scale
        result[index.order] = values
        return result


def describe(names: Iterable[str]) -> list[dict[str, object]]:
    """JSON-ready definitions of the named features (for model metadata and docs)."""
    rows: list[dict[str, object]] = []
    for f in resolve(names):
        row: dict[str, object] = {"name": f.name, "type": type(f).__name__, "unit": f.unit}
        if isinstance(f, WindowFeature):
            row.update(
                key=list(f.key),
                aggregation=f.aggregation,
                value=f.value,
                window_s=f.window_s,
                delay_s=f.delay_s,
                scale=f.scale,
            )
        elif isinstance(f, CalendarFeature):
            row.update(kind=f.kind)
        elif isinstance(f, RatioFeature):
            row.update(numerator=f.numerator, denominator=f.denominator)
        elif isinstance(f, AmountFeature):
            row.update(scale=f.scale)
        row["description"] = f.description
        rows.append(row)
    return rows
