"""Fraud features computed online: one transaction at a time, from the same registry as offline.

:class:`OnlineFeatures` keeps, per key of every :class:`~fraud.features.WindowFeature` (customer,
terminal, card, device, IP, VPA, customer × device, customer × IP), the recent events of that key
and running integer sums, and returns for each transaction the same values as
:func:`fraud.features.compute_features` gives for that row of the whole frame.  It is the shape
a Faust windowed-table agent will use (state per key, serialisable with
:meth:`OnlineFeatures.to_json`), without Kafka.

Window convention (identical to :mod:`fraud.features`).  For a transaction at time ``t`` (epoch
nanoseconds, UTC) with key ``k``, window length ``w`` and delay ``d``, the window holds the events
of key ``k`` with timestamp ``s`` in ``(t - d - w, t - d]``:

* ``d = 0`` (customer spend, velocity, novelty): trailing, **including the current transaction**;
  an event exactly ``w`` earlier is out; among equal timestamps, those fed earlier count.
* ``d > 0`` (terminal count and risk, ``d`` = 7 days): the window ends ``d`` before the
  transaction, so the current one is never in it and labels are read only after the delay.

Exactness.  Window edges are arbitrary instants (``t - d - w``), not bucket boundaries, so time
buckets cannot reproduce the offline values; the state keeps each event's exact timestamp in a
per-key deque, and per (window, delay) pair two monotone pointers with running integer count and
sums.  Money stays integer paise in the state (Python ints, exact); a feature value is then formed
with the same float64 operations as the offline code (``float(total) * scale`` for a sum,
``float(total) / count * scale`` for a mean, ``num / den`` for a ratio), so values are bit-for-bit
equal, not just close.

Time order.  Transactions must be fed in non-decreasing ``tx_datetime`` (the offline row order
for ties); an earlier timestamp than one already seen raises :class:`OutOfOrderError`.

Memory.  An event is dropped as soon as no future window can hold it: for a key group with
longest ``w + d`` = ``H``, events with ``s <= watermark - H``.  Each update trims its own key; a
sweep every ``sweep_interval_s`` of event time trims all keys and deletes empty ones, so the
number of stored events (:meth:`OnlineFeatures.state_size`) never exceeds the number of events
of the last ``H + sweep_interval_s`` seconds (per group).

Labels.  A transaction carrying ``is_fraud`` (replay, simulation) records its label with it; a
live transaction without one counts as not fraud until :meth:`OnlineFeatures.observe_label`
gives its label (any time, also after the delay: the running sums are corrected, so the state
matches the offline frame holding the same labels).  Labels of events already expired are
ignored.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from fraud.features import (
    DEFAULT_TIMEZONE,
    FEATURES,
    LABEL_COLUMN,
    AmountFeature,
    CalendarFeature,
    Feature,
    RatioFeature,
    UnknownFeatureError,
    WindowFeature,
)

_NS_PER_S = 1_000_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_STATE_VERSION = 1

KeyPart = int | float | str
Key = tuple[KeyPart, ...]
TxId = int | str | None
#: One stored event: ``[ts_ns, transaction_id, value_0, value_1, ...]`` (values are ints).
Event = list[Any]


class OutOfOrderError(ValueError):
    """A transaction older than one already fed (the stream must be in time order)."""


@dataclass(frozen=True)
class _Window:
    """A (length, delay) pair of a key group, in nanoseconds."""

    window_ns: int
    delay_ns: int


@dataclass(frozen=True)
class _Spec:
    """How one window feature reads its group's state: which window, which value column."""

    name: str
    window: int  # index into the group's windows
    value: int | None  # index into the group's values, None for count
    aggregation: str
    scale: float


class _KeyState:
    """The events of one key value and, per window, pointers and running sums.

    ``lo[j]``/``hi[j]`` are absolute event sequence numbers: window ``j`` holds the events with
    ``lo[j] <= seq < hi[j]``; ``sums[j][v]`` is the integer sum of value ``v`` over them.  The
    deque holds the events with ``seq >= base``.
    """

    __slots__ = ("base", "events", "hi", "lo", "sums")

    def __init__(self, n_windows: int, n_values: int) -> None:
        self.events: deque[Event] = deque()
        self.base = 0
        self.lo = [0] * n_windows
        self.hi = [0] * n_windows
        self.sums = [[0] * n_values for _ in range(n_windows)]

    @property
    def end(self) -> int:
        return self.base + len(self.events)


class _Group:
    """All window features sharing one key (tuple of columns), and the state per key value."""

    def __init__(self, key: tuple[str, ...], values: list[str], windows: list[_Window]) -> None:
        self.key = key
        self.values = values
        self.windows = windows
        self.horizon_ns = 0  # longest window + delay, set once all windows are known
        self.label_value: int | None = None  # index of the label among values, if any
        self.specs: list[_Spec] = []
        self.states: dict[Key, _KeyState] = {}

    def advance(self, state: _KeyState, now_ns: int, labels: dict[Any, list[Any]]) -> None:
        """Move every window to a transaction at ``now_ns``, then drop unreachable events."""
        events, base, end = state.events, state.base, state.end
        for j, window in enumerate(self.windows):
            upper = now_ns - window.delay_ns  # window is (upper - w, upper]
            lower = upper - window.window_ns
            sums = state.sums[j]
            hi = state.hi[j]
            while hi < end and events[hi - base][0] <= upper:
                event = events[hi - base]
                for v in range(len(sums)):
                    sums[v] += event[2 + v]
                hi += 1
            lo = state.lo[j]
            while lo < hi and events[lo - base][0] <= lower:
                event = events[lo - base]
                for v in range(len(sums)):
                    sums[v] -= event[2 + v]
                lo += 1
            state.hi[j], state.lo[j] = hi, lo
        keep_from = min(state.lo)
        while state.base < keep_from:
            event = events.popleft()
            if self.label_value is not None and event[1] is not None:
                _unindex(labels, event[1], self, state.base)
            state.base += 1


def _unindex(labels: dict[Any, list[Any]], tx_id: Any, group: _Group, seq: int) -> None:
    entries = labels.get(tx_id)
    if entries is None:
        return
    kept = [e for e in entries if not (e[0] is group and e[2] == seq)]
    if kept:
        labels[tx_id] = kept
    else:
        del labels[tx_id]


def _resolve(registry: Mapping[str, Feature], names: Iterable[str]) -> list[Feature]:
    """The features named plus their dependencies (ratio inputs), in dependency order."""
    ordered: dict[str, Feature] = {}

    def visit(name: str) -> None:
        if name in ordered:
            return
        feature = registry.get(name)
        if feature is None:
            raise UnknownFeatureError(f"unknown feature {name!r}")
        if isinstance(feature, RatioFeature):
            visit(feature.numerator)
            visit(feature.denominator)
        ordered[name] = feature

    for n in names:
        visit(n)
    return list(ordered.values())


def _getter(tx: Mapping[str, Any] | object) -> Callable[[str], Any]:
    """``get(column)`` for a mapping or an object with attributes; None when absent."""
    if isinstance(tx, dict | Mapping):
        return cast(Mapping[str, Any], tx).get
    return lambda name: getattr(tx, name, None)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _key_part(value: Any) -> KeyPart:
    if isinstance(value, str | float):
        return value
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"key value {value!r} must be a string or a number") from None


def _integer(value: Any, column: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{column} must be an integer (paise or 0/1), got {value!r}") from None


def epoch_ns(when: dt.datetime) -> int:
    """A tz-aware datetime (or ``pandas.Timestamp``) as integer nanoseconds since the Unix epoch."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("tx_datetime must be timezone-aware")
    delta = when - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return seconds * _NS_PER_S + delta.microseconds * 1_000 + int(getattr(when, "nanosecond", 0))


class OnlineFeatures:
    """Incremental features for a time-ordered stream of transactions.

    ``names`` (default: every feature of ``registry``) are the features returned by
    :meth:`update_and_compute`, in that order; their dependencies are computed too.  ``timezone``
    is used for the calendar flags only.  ``sweep_interval_s`` (seconds of event time) is how often
    all keys are trimmed; see the module docstring for the memory bound.

    A transaction is a mapping or an object with attributes (e.g.
    :class:`fraud.simulator.SimulatedTransaction`) with ``tx_datetime`` (tz-aware), the key and
    value columns the features need (``amount_minor`` integer paise; ``is_fraud`` 0/1 optional)
    and, to receive labels later, ``transaction_id``.
    """

    def __init__(
        self,
        names: Sequence[str] | None = None,
        *,
        registry: Mapping[str, Feature] = FEATURES,
        timezone: str = DEFAULT_TIMEZONE,
        sweep_interval_s: int = 86_400,
    ) -> None:
        if sweep_interval_s <= 0:
            raise ValueError("sweep_interval_s must be positive")
        self.names: tuple[str, ...] = tuple(registry if names is None else names)
        self.timezone = timezone
        self.sweep_interval_s = sweep_interval_s
        self._zone = ZoneInfo(timezone)
        self._features = _resolve(registry, self.names)
        self._scalar_features = [f for f in self._features if not isinstance(f, WindowFeature)]
        self._needs_amount = any(isinstance(f, AmountFeature) for f in self._features)
        self._groups: list[_Group] = []
        by_key: dict[tuple[str, ...], _Group] = {}
        for f in self._features:
            if not isinstance(f, WindowFeature):
                continue
            group = by_key.get(f.key)
            if group is None:
                group = by_key[f.key] = _Group(f.key, [], [])
                self._groups.append(group)
            window = _Window(f.window_s * _NS_PER_S, f.delay_s * _NS_PER_S)
            if window not in group.windows:
                group.windows.append(window)
            if f.value is not None and f.value not in group.values:
                group.values.append(f.value)
            group.specs.append(
                _Spec(
                    f.name,
                    group.windows.index(window),
                    None if f.value is None else group.values.index(f.value),
                    f.aggregation,
                    f.scale,
                )
            )
        for group in self._groups:
            group.horizon_ns = max(w.window_ns + w.delay_ns for w in group.windows)
            group.label_value = (
                group.values.index(LABEL_COLUMN) if LABEL_COLUMN in group.values else None
            )
        self._watermark_ns: int | None = None
        self._next_sweep_ns: int | None = None
        # transaction_id -> [(group, key, seq)] for events carrying a label column.
        self._labels: dict[Any, list[Any]] = {}

    # -- streaming -------------------------------------------------------------------------------

    def update_and_compute(self, tx: Mapping[str, Any] | object) -> dict[str, float | int]:
        """Add ``tx`` to the state and return its features (``names``, in order).

        Counts are ints (transactions); flags are ints 0/1; amounts, sums and means are floats in
        the feature's unit (INR for money: ``paise * 0.01``); risks are fraud shares in [0, 1].
        Raises :class:`OutOfOrderError` if ``tx`` is older than a transaction already fed, and
        ``TypeError``/``KeyError``/``ValueError`` for a bad field; the state is unchanged then.
        """
        field = _getter(tx)
        now = self._instant(field("tx_datetime"))
        tx_id = field("transaction_id")
        if tx_id is not None and not isinstance(tx_id, str):
            tx_id = _integer(tx_id, "transaction_id")
        events = [(group, *self._event(group, field)) for group in self._groups]
        amount = field("amount_minor") if self._needs_amount else None
        if self._needs_amount:
            amount = _integer(amount, "amount_minor")
        # Validated: now change the state.
        self._watermark_ns = now
        if self._next_sweep_ns is None:
            self._next_sweep_ns = now + self.sweep_interval_s * _NS_PER_S
        elif now >= self._next_sweep_ns:
            self.expire()
            self._next_sweep_ns = now + self.sweep_interval_s * _NS_PER_S
        out: dict[str, float | int] = {}
        for group, key, values in events:
            if key is None:
                for spec in group.specs:
                    out[spec.name] = 0 if spec.aggregation == "count" else 0.0
                continue
            state = group.states.get(key)
            if state is None:
                state = group.states[key] = _KeyState(len(group.windows), len(group.values))
            seq = state.end
            state.events.append([now, tx_id, *values])
            if group.label_value is not None and tx_id is not None:
                self._labels.setdefault(tx_id, []).append((group, key, seq))
            group.advance(state, now, self._labels)
            for spec in group.specs:
                out[spec.name] = self._value(state, spec)
        self._scalars(out, now, amount)
        return {n: out[n] for n in self.names}

    def _instant(self, when: Any) -> int:
        """``tx_datetime`` as epoch ns, checked to be tz-aware and not before the watermark."""
        if not isinstance(when, dt.datetime):
            raise TypeError("tx_datetime must be a tz-aware datetime")
        now = epoch_ns(when)
        if self._watermark_ns is not None and now < self._watermark_ns:
            raise OutOfOrderError(
                f"transaction at {when.isoformat()} is older than the last one fed "
                f"({self._watermark_ns} ns since the epoch)"
            )
        return now

    @staticmethod
    def _event(group: _Group, field: Callable[[str], Any]) -> tuple[Key | None, list[int]]:
        """The transaction's key for ``group`` (None if a part is missing) and its values."""
        parts = [field(c) for c in group.key]
        if any(_missing(p) for p in parts):
            return None, []
        values = []
        for column in group.values:
            raw = field(column)
            if raw is None and column == LABEL_COLUMN:
                raw = 0  # label not known yet: not fraud until observe_label says so
            elif raw is None:
                raise KeyError(f"transaction has no {column!r}")
            values.append(_integer(raw, column))
        return tuple(_key_part(p) for p in parts), values

    def _scalars(self, out: dict[str, float | int], now: int, amount: int | None) -> None:
        """Amount, calendar and ratio features, after the window features (ratios read them)."""
        local: dt.datetime | None = None
        for f in self._scalar_features:
            if isinstance(f, AmountFeature):
                assert amount is not None
                out[f.name] = float(amount) * f.scale
            elif isinstance(f, CalendarFeature):
                if local is None:
                    local = dt.datetime.fromtimestamp(now // _NS_PER_S, tz=self._zone)
                flag = local.weekday() >= 5 if f.kind == "weekend" else local.hour < 6
                out[f.name] = int(flag)
            elif isinstance(f, RatioFeature):
                num, den = float(out[f.numerator]), float(out[f.denominator])
                out[f.name] = num / den if den != 0 else 0.0

    @staticmethod
    def _value(state: _KeyState, spec: _Spec) -> float | int:
        count = state.hi[spec.window] - state.lo[spec.window]
        if spec.value is None:
            return count
        total = state.sums[spec.window][spec.value]
        if spec.aggregation == "sum":
            return float(total) * spec.scale
        return (float(total) / count if count > 0 else 0.0) * spec.scale

    def observe_label(self, transaction_id: int | str, is_fraud: int | bool) -> bool:
        """Record a (late) label for a transaction already fed; True if any state held it.

        Features computed afterwards see the label wherever the offline window would (the label's
        arrival time does not matter, as offline).  A transaction whose events have all expired
        returns False and changes nothing.
        """
        label = _integer(is_fraud, LABEL_COLUMN)
        if label not in (0, 1):
            raise ValueError(f"is_fraud must be 0 or 1, got {is_fraud!r}")
        tx_key: Any = transaction_id
        if not isinstance(tx_key, str):
            tx_key = _integer(tx_key, "transaction_id")
        entries = self._labels.get(tx_key)
        if not entries:
            return False
        for group, key, seq in entries:
            state = group.states[key]
            v = group.label_value
            event = state.events[seq - state.base]
            delta = label - event[2 + v]
            event[2 + v] = label
            for j in range(len(group.windows)):
                if state.lo[j] <= seq < state.hi[j]:
                    state.sums[j][v] += delta
        return True

    def expire(self, now: dt.datetime | None = None) -> None:
        """Trim every key to what a transaction at ``now`` (default: the latest fed) could need.

        Deletes keys left without events.  ``now`` earlier than the latest transaction fed raises
        :class:`OutOfOrderError` (it would move windows backwards); a later ``now`` becomes the
        watermark, so transactions before it are refused afterwards.
        """
        if now is None:
            if self._watermark_ns is None:
                return
            now_ns = self._watermark_ns
        else:
            now_ns = epoch_ns(now)
            if self._watermark_ns is not None and now_ns < self._watermark_ns:
                raise OutOfOrderError("expire() before the latest transaction fed")
            self._watermark_ns = now_ns
        for group in self._groups:
            empty = []
            oldest_needed = now_ns - group.horizon_ns  # events at or before it are unreachable
            for key, state in group.states.items():
                if state.events[0][0] > oldest_needed:
                    continue  # nothing to drop; the pointers catch up on the key's next update
                group.advance(state, now_ns, self._labels)
                if not state.events:
                    empty.append(key)
            for key in empty:
                del group.states[key]

    def state_size(self) -> int:
        """Number of stored events, summed over key groups (one per transaction and key group)."""
        return sum(len(s.events) for g in self._groups for s in g.states.values())

    def n_keys(self) -> int:
        """Number of key values with state, summed over key groups."""
        return sum(len(g.states) for g in self._groups)

    # -- serialisation ---------------------------------------------------------------------------

    def _layout(self) -> list[dict[str, Any]]:
        return [
            {
                "key": list(g.key),
                "values": list(g.values),
                "windows": [[w.window_ns, w.delay_ns] for w in g.windows],
            }
            for g in self._groups
        ]

    def to_json(self) -> str:
        """The whole state as JSON text (what a Faust table would store; integers stay exact).

        Events are ``[ts_ns, transaction_id, value...]``; per key the sequence number of its first
        event and the window pointers.  Running sums are not stored: :meth:`from_json` recomputes
        them from the events, so a restored state cannot disagree with its events.
        """
        groups = []
        for layout, group in zip(self._layout(), self._groups, strict=True):
            states = [
                [list(key), s.base, list(s.events), list(s.lo), list(s.hi)]
                for key, s in group.states.items()
            ]
            groups.append({**layout, "states": states})
        return json.dumps(
            {
                "version": _STATE_VERSION,
                "names": list(self.names),
                "timezone": self.timezone,
                "sweep_interval_s": self.sweep_interval_s,
                "watermark_ns": self._watermark_ns,
                "next_sweep_ns": self._next_sweep_ns,
                "groups": groups,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, *, registry: Mapping[str, Feature] = FEATURES) -> OnlineFeatures:
        """Restore a state written by :meth:`to_json`, for the same feature definitions.

        Raises ``ValueError`` if the registry's definitions (keys, windows, delays, values)
        differ from the ones the state was built with.
        """
        data = cast(dict[str, Any], json.loads(text))
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported online feature state version {data.get('version')!r}")
        online = cls(
            data["names"],
            registry=registry,
            timezone=data["timezone"],
            sweep_interval_s=data["sweep_interval_s"],
        )
        stored = [{k: v for k, v in g.items() if k != "states"} for g in data["groups"]]
        if stored != online._layout():
            raise ValueError("the state was built with other feature definitions than registry's")
        online._watermark_ns = data["watermark_ns"]
        online._next_sweep_ns = data["next_sweep_ns"]
        for group, g in zip(online._groups, data["groups"], strict=True):
            for key_list, base, events, lo, hi in g["states"]:
                key = tuple(key_list)
                state = _KeyState(len(group.windows), len(group.values))
                state.base, state.lo, state.hi = base, list(lo), list(hi)
                state.events = deque(events)
                for j in range(len(group.windows)):
                    for seq in range(lo[j], hi[j]):
                        event = events[seq - base]
                        for v in range(len(group.values)):
                            state.sums[j][v] += event[2 + v]
                group.states[key] = state
                if group.label_value is not None:
                    for i, event in enumerate(events):
                        if event[1] is not None:
                            online._labels.setdefault(event[1], []).append((group, key, base + i))
        return online
