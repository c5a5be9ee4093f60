"""The AML rules: scheduled queries over the ClickHouse facts, alerts out (docs/aml.md).

Each rule is a function ``(client, database, period, settings) -> list[Alert]`` for one IST
calendar month (``"2026-10"``).  ClickHouse does the heavy part (filtering and aggregating a
month of payments); what is left — links between customers, sliding windows, ratios — is
plain Python over the few rows that come back, in pure functions tested on their own.

What the rules read, always ``FINAL`` (the tables are ReplacingMergeTree, docs/warehouse.md):

* captured payments: ``payments`` (who paid, with what) joined with the month's
  ``payment.captured`` events (how much moved, and when); a payment counts in the month of its
  capture, for the amount captured;
* payment requests (any outcome) for velocity;
* ``payment_events`` refunds and chargebacks (``payment.dispute_lost``) for merchants;
* ``ledger_postings`` on customers' wallet accounts for pass-through.

An alert's id is derived from (rule, period, subject), so running a period again yields the
same ids; ``warehouse.aml.cases`` opens a case only for ids it has not seen.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from models.events import PaymentCaptured, PaymentDisputeLost, PaymentRefunded
from models.money import CURRENCY_EXPONENTS
from streams.settlement import IST
from warehouse.aml.settings import AmlSettings
from warehouse.reports.gst import ist_month_window

MONTHLY_TOTAL = "monthly_total"
CONNECTED_TOTAL = "connected_total"
CROSS_BORDER = "cross_border"
STRUCTURING = "structuring"
WALLET_PASS_THROUGH = "wallet_pass_through"  # noqa: S105 -- a rule name
VELOCITY_SPIKE = "velocity_spike"
ROUND_AMOUNTS = "round_amounts"
REFUND_JUMP = "refund_jump"
CHARGEBACK_JUMP = "chargeback_jump"

EV_CAPTURED = str(PaymentCaptured.model_fields["event_type"].default)
EV_REFUNDED = str(PaymentRefunded.model_fields["event_type"].default)
EV_CHARGEBACK = str(PaymentDisputeLost.model_fields["event_type"].default)

# A payment captured in the month was requested at most this long before (manual captures).
_REQUEST_LOOKBACK = timedelta(days=35)
_WALLET_IN_KINDS = ("wallet_load", "wallet_transfer")
_WALLET_OUT_KINDS = ("wallet_transfer", "wallet_payout")


def alert_id(rule: str, period: str, subject_kind: str, subject_id: str) -> str:
    """Deterministic id of an alert: the same rule, period and subject always give the same."""
    digest = hashlib.sha256(f"{rule}|{period}|{subject_kind}|{subject_id}".encode()).hexdigest()
    return f"aml_{digest[:24]}"


@dataclass(frozen=True)
class Alert:
    """One rule hit.  ``amount_minor`` is in ``currency`` (INR for every rule: foreign
    payments are priced in rupees, the original amount is in the evidence);
    ``transaction_count`` counts every transaction behind the hit, ``evidence["transactions"]``
    lists up to ``evidence_ids_max`` of them (largest first) as ``{"id", "amount_minor", "at"}``.
    """

    rule: str
    period: str
    subject_kind: str  # customer, customer_group, merchant, payment
    subject_id: str
    amount_minor: int
    transaction_count: int
    evidence: Mapping[str, Any]
    currency: str = "INR"

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule, self.period, self.subject_kind, self.subject_id)


@dataclass
class RuleRun:
    """Alerts of one period, and what the rules could not judge (e.g. an unpriced currency)."""

    period: str
    alerts: list[Alert] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def by_rule(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for alert in self.alerts:
            counts[alert.rule] += 1
        return dict(sorted(counts.items()))


# --------------------------------------------------------------------------------------------
# SQL pieces
# --------------------------------------------------------------------------------------------


def _ts(instant: datetime) -> str:
    """A ClickHouse DateTime64 literal of an aware instant (our own values, never user text)."""
    utc = instant.astimezone(UTC)
    return f"toDateTime64('{utc:%Y-%m-%d %H:%M:%S.%f}', 6, 'UTC')"


def _ids(values: Iterable[str]) -> str:
    """A ClickHouse array literal of ids read back from ClickHouse, quotes escaped."""
    escaped = (v.replace("\\", "\\\\").replace("'", "\\'") for v in values)
    return "[" + ", ".join(f"'{v}'" for v in escaped) + "]"


def _evidence_array(k: int, id_col: str = "payment_id", at_col: str = "at") -> str:
    """Up to ``k`` ``(id, amount_minor, at)`` tuples, largest amount first, then by id."""
    return (
        f"arraySlice(arraySort(x -> (-x.2, x.1), groupArray(tuple({id_col}, amount_minor, "
        f"toString({at_col})))), 1, {k})"
    )


def captured_sql(db: str, start: datetime, end: datetime) -> str:
    """One row per payment captured in ``[start, end)``: who paid, with what, how much
    (``amount_minor``, the sum of its captures in the window) and when (``at``, first capture).
    A payment whose id was reused with another body has two request rows; the first counts."""
    return f"""
SELECT r.payment_id AS payment_id, r.customer_id AS customer_id, r.merchant_id AS merchant_id,
       toString(r.currency) AS currency, r.method AS method, r.instrument_ref AS instrument_ref,
       r.device_id AS device_id, r.payer_country AS payer_country,
       c.captured_minor AS amount_minor, c.captured_at AS at
FROM (
    SELECT payment_id, customer_id, merchant_id, currency, method, instrument_ref, device_id,
           payer_country
    FROM {db}.payments FINAL
    WHERE requested_at >= {_ts(start - _REQUEST_LOOKBACK)} AND requested_at < {_ts(end)}
    ORDER BY payment_id, requested_at
    LIMIT 1 BY payment_id
) AS r
INNER JOIN (
    SELECT payment_id, sum(amount_minor) AS captured_minor, min(occurred_at) AS captured_at
    FROM {db}.payment_events FINAL
    WHERE event_type = '{EV_CAPTURED}' AND occurred_at >= {_ts(start)} AND occurred_at < {_ts(end)}
    GROUP BY payment_id
) AS c ON r.payment_id = c.payment_id"""  # noqa: S608 -- db is a checked identifier


def _evidence(rows: Sequence[tuple[str, int, str]]) -> list[dict[str, Any]]:
    return [{"id": i, "amount_minor": int(a), "at": at} for i, a, at in rows]


Query = Callable[[str], list[tuple[Any, ...]]]


def _runner(client: Any) -> Query:
    def run(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in client.query(sql).result_rows]

    return run


# --------------------------------------------------------------------------------------------
# Customers over the monthly threshold, alone or connected
# --------------------------------------------------------------------------------------------


def monthly_total(q: Query, db: str, period: str, s: AmlSettings) -> list[Alert]:
    start, end = ist_month_window(period)
    rows = q(f"""
SELECT customer_id, count(), sum(amount_minor), {_evidence_array(s.evidence_ids_max)}
FROM ({captured_sql(db, start, end)})
WHERE currency = 'INR' AND customer_id != ''
GROUP BY customer_id HAVING sum(amount_minor) > {s.monthly_total_minor}
ORDER BY customer_id""")  # noqa: S608
    return [
        Alert(
            MONTHLY_TOTAL,
            period,
            "customer",
            customer,
            int(total),
            int(n),
            {
                "threshold_minor": s.monthly_total_minor,
                "transactions": _evidence(ev),
            },
        )
        for customer, n, total, ev in rows
    ]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class CustomerLinks:
    """A customer's month: total captured (paise), payments, and the link values it used
    (``card:…``, ``vpa:…``, ``wallet:…`` instruments and ``device:…`` devices)."""

    customer_id: str
    total_minor: int
    payments: int
    links: frozenset[str]


@dataclass(frozen=True)
class CustomerGroup:
    members: tuple[str, ...]  # sorted
    total_minor: int
    payments: int
    shared_links: tuple[str, ...]  # link values used by two or more members, sorted


def connected_groups(customers: Iterable[CustomerLinks]) -> list[CustomerGroup]:
    """Customers joined by any shared link value, transitively (connected components), as
    groups of two or more.  Pure; deterministic order (by first member)."""
    uf = _UnionFind()
    users: dict[str, set[str]] = defaultdict(set)
    by_id: dict[str, CustomerLinks] = {}
    for c in customers:
        by_id[c.customer_id] = c
        uf.find(c.customer_id)
        for link in c.links:
            users[link].add(c.customer_id)
    for users_of_link in users.values():
        first, *rest = sorted(users_of_link)
        for other in rest:
            uf.union(first, other)
    components: dict[str, list[str]] = defaultdict(list)
    for cid in by_id:
        components[uf.find(cid)].append(cid)
    groups = []
    for component in components.values():
        if len(component) < 2:
            continue
        ms = tuple(sorted(component))
        shared = sorted(link for link, us in users.items() if len(us) > 1 and us <= set(ms))
        groups.append(
            CustomerGroup(
                ms,
                sum(by_id[m].total_minor for m in ms),
                sum(by_id[m].payments for m in ms),
                tuple(shared),
            )
        )
    return sorted(groups, key=lambda g: g.members[0])


def connected_total(q: Query, db: str, period: str, s: AmlSettings) -> list[Alert]:
    """Groups of linked customers together over the monthly threshold, none of them over it
    alone (a member over it alone has its own ``monthly_total`` alert, which is enough)."""
    start, end = ist_month_window(period)
    captured = captured_sql(db, start, end)
    rows = q(f"""
SELECT customer_id, sum(amount_minor), count(),
       arrayFilter(x -> x != '', groupUniqArray(instrument_ref)),
       arrayFilter(x -> x != '', groupUniqArray(device_id))
FROM ({captured})
WHERE currency = 'INR' AND customer_id != ''
GROUP BY customer_id""")  # noqa: S608
    customers = [
        CustomerLinks(
            cid,
            int(total),
            int(n),
            frozenset([*instruments, *(f"device:{d}" for d in devices)]),
        )
        for cid, total, n, instruments, devices in rows
    ]
    alone = {c.customer_id for c in customers if c.total_minor > s.monthly_total_minor}
    per_member = {c.customer_id: c.total_minor for c in customers}
    alerts = []
    for group in connected_groups(customers):
        if group.total_minor <= s.monthly_total_minor or alone & set(group.members):
            continue
        ev = q(f"""
SELECT {_evidence_array(s.evidence_ids_max)} FROM ({captured})
WHERE currency = 'INR' AND customer_id IN {_ids(group.members)}""")  # noqa: S608
        alerts.append(
            Alert(
                CONNECTED_TOTAL,
                period,
                "customer_group",
                # The smallest member names the group: stable while the group grows.
                group.members[0],
                group.total_minor,
                group.payments,
                {
                    "threshold_minor": s.monthly_total_minor,
                    "members": [
                        {"customer_id": m, "total_minor": per_member[m]} for m in group.members
                    ],
                    "shared_links": list(group.shared_links),
                    "transactions": _evidence(ev[0][0]),
                },
            )
        )
    return alerts


# --------------------------------------------------------------------------------------------
# Cross-border
# --------------------------------------------------------------------------------------------


def inr_minor(amount_minor: int, currency: str, rates_paise: Mapping[str, int]) -> int | None:
    """``amount_minor`` of ``currency`` in paise at the reference rate (paise per major unit),
    rounded down; None when there is no rate.  Integer arithmetic only."""
    if currency == "INR":
        return amount_minor
    rate = rates_paise.get(currency)
    exponent = CURRENCY_EXPONENTS.get(currency)
    if rate is None or exponent is None:
        return None
    return int(amount_minor * rate // 10**exponent)


def cross_border(q: Query, db: str, period: str, s: AmlSettings) -> tuple[list[Alert], list[str]]:
    """Single cross-border payments (foreign currency, or a payer outside India) over the
    threshold in rupees.  Returns the alerts and the payments that could not be priced."""
    start, end = ist_month_window(period)
    rows = q(f"""
SELECT payment_id, customer_id, merchant_id, amount_minor, currency, payer_country, toString(at)
FROM ({captured_sql(db, start, end)})
WHERE currency != 'INR' OR payer_country NOT IN ('', 'IN')
ORDER BY payment_id""")  # noqa: S608
    alerts, problems = [], []
    for pid, customer, merchant, amount, currency, country, at in rows:
        rupees = inr_minor(int(amount), currency, s.reference_rates_paise)
        if rupees is None:
            problems.append(f"{CROSS_BORDER}: payment {pid} in {currency} has no reference rate")
            continue
        if rupees <= s.cross_border_minor:
            continue
        alerts.append(
            Alert(
                CROSS_BORDER,
                period,
                "payment",
                pid,
                rupees,
                1,
                {
                    "threshold_minor": s.cross_border_minor,
                    "customer_id": customer,
                    "merchant_id": merchant,
                    "original_amount_minor": int(amount),
                    "original_currency": currency,
                    "payer_country": country,
                    "rate_paise_per_unit": s.reference_rates_paise.get(currency),
                    "transactions": [{"id": pid, "amount_minor": rupees, "at": at}],
                },
            )
        )
    return alerts, problems


# --------------------------------------------------------------------------------------------
# Structuring and round amounts
# --------------------------------------------------------------------------------------------


def structuring(q: Query, db: str, period: str, s: AmlSettings) -> list[Alert]:
    """Customers with several payments just below a reporting threshold that together pass it:
    one alert per customer, listing each threshold so approached."""
    start, end = ist_month_window(period)
    thresholds = ", ".join(str(t) for t in sorted(s.structuring_thresholds_minor))
    band = s.structuring_band_bps
    rows = q(f"""
SELECT customer_id, t, count(), sum(amount_minor), {_evidence_array(s.evidence_ids_max)}
FROM ({captured_sql(db, start, end)}) ARRAY JOIN [{thresholds}] AS t
WHERE currency = 'INR' AND customer_id != ''
  AND amount_minor < t AND amount_minor * 10000 >= t * (10000 - {band})
GROUP BY customer_id, t
HAVING count() >= {s.structuring_min_count} AND sum(amount_minor) > t
ORDER BY customer_id, t""")  # noqa: S608
    hits: dict[str, list[tuple[int, int, int, list[dict[str, Any]]]]] = defaultdict(list)
    for customer, t, n, total, ev in rows:
        hits[customer].append((int(t), int(n), int(total), _evidence(ev)))
    alerts = []
    for customer, found in sorted(hits.items()):
        # The same payment can sit below two thresholds only if the band spans both; count it
        # once in the alert's total.
        seen: dict[str, dict[str, Any]] = {}
        for _, _, _, ev in found:
            for tx in ev:
                seen.setdefault(tx["id"], tx)
        alerts.append(
            Alert(
                STRUCTURING,
                period,
                "customer",
                customer,
                sum(tx["amount_minor"] for tx in seen.values()),
                max(n for _, n, _, _ in found),
                {
                    "band_bps": band,
                    "thresholds": [
                        {"threshold_minor": t, "payments": n, "total_minor": total}
                        for t, n, total, _ in found
                    ],
                    "transactions": sorted(
                        seen.values(), key=lambda tx: (-tx["amount_minor"], tx["id"])
                    ),
                },
            )
        )
    return alerts


def round_amounts(q: Query, db: str, period: str, s: AmlSettings) -> list[Alert]:
    start, end = ist_month_window(period)
    rows = q(f"""
SELECT customer_id, count(), sum(amount_minor), {_evidence_array(s.evidence_ids_max)}
FROM ({captured_sql(db, start, end)})
WHERE currency = 'INR' AND customer_id != '' AND amount_minor % {s.round_unit_minor} = 0
  AND amount_minor >= {s.round_min_amount_minor}
GROUP BY customer_id HAVING count() >= {s.round_min_count}
ORDER BY customer_id""")  # noqa: S608
    return [
        Alert(
            ROUND_AMOUNTS,
            period,
            "customer",
            customer,
            int(total),
            int(n),
            {
                "unit_minor": s.round_unit_minor,
                "min_amount_minor": s.round_min_amount_minor,
                "transactions": _evidence(ev),
            },
        )
        for customer, n, total, ev in rows
    ]


# --------------------------------------------------------------------------------------------
# Velocity
# --------------------------------------------------------------------------------------------


def velocity_hits(
    daily: Mapping[date, int], first: date, end: date, s: AmlSettings
) -> tuple[date, int, int] | None:
    """The day in ``[first, end)`` with the largest spike, as ``(day, requests, baseline
    requests over the previous velocity_baseline_days)``; None when no day qualifies.  A day
    qualifies with at least ``velocity_min_daily`` requests and at least
    ``velocity_multiplier`` × the daily mean of the baseline days (integers: n × days ≥ m ×
    sum)."""
    best: tuple[date, int, int] | None = None
    days = s.velocity_baseline_days
    for day, n in sorted(daily.items()):
        if not first <= day < end or n < s.velocity_min_daily:
            continue
        base = sum(daily.get(day - timedelta(days=k), 0) for k in range(1, days + 1))
        if n * days >= s.velocity_multiplier * base and (best is None or n > best[1]):
            best = (day, n, base)
    return best


def velocity_spike(q: Query, db: str, period: str, s: AmlSettings) -> list[Alert]:
    start, end = ist_month_window(period)
    first, last = start.astimezone(IST).date(), end.astimezone(IST).date()
    since = start - timedelta(days=s.velocity_baseline_days)
    requests = f"""
    SELECT payment_id, customer_id, amount_minor, requested_at,
           toDate(requested_at, 'Asia/Kolkata') AS day
    FROM {db}.payments FINAL
    WHERE customer_id != '' AND requested_at >= {_ts(since)} AND requested_at < {_ts(end)}
    ORDER BY payment_id, requested_at LIMIT 1 BY payment_id"""  # noqa: S608
    rows = q(f"""
WITH daily AS (SELECT customer_id, day, count() AS n FROM ({requests}) GROUP BY customer_id, day)
SELECT customer_id, day, n FROM daily
WHERE customer_id IN (
    SELECT customer_id FROM daily
    WHERE day >= toDate('{first}') AND n >= {s.velocity_min_daily})
ORDER BY customer_id, day""")  # noqa: S608
    per_customer: dict[str, dict[date, int]] = defaultdict(dict)
    for customer, day, n in rows:
        per_customer[customer][day] = int(n)
    alerts = []
    for customer, daily in sorted(per_customer.items()):
        hit = velocity_hits(daily, first, last, s)
        if hit is None:
            continue
        day, n, base = hit
        ev = q(f"""
SELECT sum(amount_minor), {_evidence_array(s.evidence_ids_max, at_col="requested_at")}
FROM ({requests}) WHERE customer_id IN {_ids([customer])}
  AND day = toDate('{day}')""")  # noqa: S608
        total, txs = ev[0]
        alerts.append(
            Alert(
                VELOCITY_SPIKE,
                period,
                "customer",
                customer,
                int(total),
                n,
                {
                    "day": day.isoformat(),
                    "requests": n,
                    "baseline_days": s.velocity_baseline_days,
                    "baseline_requests": base,
                    "multiplier": s.velocity_multiplier,
                    "transactions": _evidence(txs),
                },
            )
        )
    return alerts


# --------------------------------------------------------------------------------------------
# Wallet pass-through
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalletMove:
    """One posting on a customer's wallet: ``inflow`` (loaded or received) or not (sent on or
    paid out); ``amount_minor`` positive paise."""

    at: datetime
    entry_id: str
    amount_minor: int
    inflow: bool


def pass_through(
    moves: Sequence[WalletMove], first: datetime, end: datetime, s: AmlSettings
) -> tuple[int, int, list[WalletMove]] | None:
    """The window of ``wallet_window_hours`` ending at an outflow in ``[first, end)`` in which
    the most money left, if in it inflow ≥ ``wallet_min_inflow_minor`` and outflow ≥
    ``wallet_out_share_bps`` of inflow: ``(inflow, outflow, the window's moves)``."""
    window = timedelta(hours=s.wallet_window_hours)
    ordered = sorted(moves, key=lambda m: (m.at, m.entry_id))
    best: tuple[int, int, list[WalletMove]] | None = None
    for m in ordered:
        if m.inflow or not first <= m.at < end:
            continue
        inside = [x for x in ordered if m.at - window <= x.at <= m.at]
        inflow = sum(x.amount_minor for x in inside if x.inflow)
        outflow = sum(x.amount_minor for x in inside if not x.inflow)
        if inflow < s.wallet_min_inflow_minor:
            continue
        if outflow * 10_000 < inflow * s.wallet_out_share_bps:
            continue
        if best is None or outflow > best[1]:
            best = (inflow, outflow, inside)
    return best


def wallet_pass_through(q: Query, db: str, period: str, s: AmlSettings) -> list[Alert]:
    start, end = ist_month_window(period)
    since = start - timedelta(hours=s.wallet_window_hours)
    kinds_in = ", ".join(f"'{k}'" for k in _WALLET_IN_KINDS)
    kinds_out = ", ".join(f"'{k}'" for k in _WALLET_OUT_KINDS)
    rows = q(f"""
SELECT account_owner, booked_at, entry_id, amount_minor
FROM {db}.ledger_postings FINAL
WHERE startsWith(account_owner, 'customer:') AND account_kind = 'wallet' AND currency = 'INR'
  AND booked_at >= {_ts(since)} AND booked_at < {_ts(end)}
  AND ((amount_minor < 0 AND entry_kind IN ({kinds_in}))
    OR (amount_minor > 0 AND entry_kind IN ({kinds_out})))
ORDER BY account_owner, booked_at, entry_id""")  # noqa: S608
    per_owner: dict[str, list[WalletMove]] = defaultdict(list)
    for owner, at, entry, amount in rows:
        # A wallet account is credit-normal: a credit (negative) is money arriving.
        per_owner[owner].append(
            WalletMove(_aware(at), entry, abs(int(amount)), inflow=int(amount) < 0)
        )
    alerts = []
    for owner, moves in sorted(per_owner.items()):
        hit = pass_through(moves, start, end, s)
        if hit is None:
            continue
        inflow, outflow, inside = hit
        customer = owner.removeprefix("customer:")
        alerts.append(
            Alert(
                WALLET_PASS_THROUGH,
                period,
                "customer",
                customer,
                outflow,
                len(inside),
                {
                    "window_hours": s.wallet_window_hours,
                    "inflow_minor": inflow,
                    "outflow_minor": outflow,
                    "out_share_bps": s.wallet_out_share_bps,
                    "transactions": [
                        {
                            "id": m.entry_id,
                            "amount_minor": m.amount_minor,
                            "at": m.at.isoformat(),
                            "direction": "in" if m.inflow else "out",
                        }
                        for m in inside[: s.evidence_ids_max]
                    ],
                },
            )
        )
    return alerts


# --------------------------------------------------------------------------------------------
# Merchants: refunds and chargebacks
# --------------------------------------------------------------------------------------------


def share_jumped(
    now_minor: int,
    captured_minor: int,
    *,
    base_minor: int,
    base_captured_minor: int,
    count: int,
    s: AmlSettings,
) -> bool:
    """Whether this month's share (``now_minor / captured_minor``) is at least the floor and
    ``refund_jump_multiplier`` × the baseline share, over at least ``refund_jump_min_events``
    events.  Integers only (cross-multiplied); no captures now with refunds now counts as 100 %+;
    no baseline captures counts as a zero baseline."""
    if count < s.refund_jump_min_events or now_minor <= 0:
        return False
    if captured_minor > 0 and now_minor * 10_000 < s.refund_jump_floor_bps * captured_minor:
        return False
    if base_captured_minor == 0 or captured_minor == 0:
        return True
    return now_minor * base_captured_minor >= s.refund_jump_multiplier * base_minor * captured_minor


def _months_back(period: str, months: int) -> str:
    year, month = (int(p) for p in period.split("-"))
    index = year * 12 + month - 1 - months
    return f"{index // 12}-{index % 12 + 1:02d}"


def merchant_jumps(q: Query, db: str, period: str, s: AmlSettings) -> list[Alert]:
    start, end = ist_month_window(period)
    base_start, _ = ist_month_window(_months_back(period, s.refund_baseline_months))
    k = s.evidence_ids_max
    alerts = []
    for rule, event_type in ((REFUND_JUMP, EV_REFUNDED), (CHARGEBACK_JUMP, EV_CHARGEBACK)):
        now = f"occurred_at >= {_ts(start)}"
        rows = q(f"""
SELECT merchant_id,
       sumIf(amount_minor, event_type = '{EV_CAPTURED}' AND {now}) AS cap_now,
       sumIf(amount_minor, event_type = '{event_type}' AND {now}) AS ev_now,
       countIf(event_type = '{event_type}' AND {now}) AS n_now,
       sumIf(amount_minor, event_type = '{EV_CAPTURED}' AND NOT {now}) AS cap_base,
       sumIf(amount_minor, event_type = '{event_type}' AND NOT {now}) AS ev_base,
       arraySlice(arraySort(x -> (-x.2, x.1), groupArrayIf(
           tuple(if(ref_id != '', ref_id, event_id), amount_minor, toString(occurred_at)),
           event_type = '{event_type}' AND {now})), 1, {k}) AS ev
FROM {db}.payment_events FINAL
WHERE currency = 'INR' AND event_type IN ('{EV_CAPTURED}', '{event_type}')
  AND occurred_at >= {_ts(base_start)} AND occurred_at < {_ts(end)}
GROUP BY merchant_id HAVING n_now >= {s.refund_jump_min_events}
ORDER BY merchant_id""")  # noqa: S608
        for merchant, cap_now, ev_now, n_now, cap_base, ev_base, ev in rows:
            if not share_jumped(
                int(ev_now),
                int(cap_now),
                base_minor=int(ev_base),
                base_captured_minor=int(cap_base),
                count=int(n_now),
                s=s,
            ):
                continue
            alerts.append(
                Alert(
                    rule,
                    period,
                    "merchant",
                    merchant,
                    int(ev_now),
                    int(n_now),
                    {
                        "event_type": event_type,
                        "captured_minor": int(cap_now),
                        "share_bps": int(ev_now) * 10_000 // int(cap_now) if cap_now else None,
                        "baseline_months": s.refund_baseline_months,
                        "baseline_captured_minor": int(cap_base),
                        "baseline_minor": int(ev_base),
                        "baseline_share_bps": (
                            int(ev_base) * 10_000 // int(cap_base) if cap_base else None
                        ),
                        "floor_bps": s.refund_jump_floor_bps,
                        "multiplier": s.refund_jump_multiplier,
                        "transactions": _evidence(ev),
                    },
                )
            )
    return alerts


# --------------------------------------------------------------------------------------------
# All rules
# --------------------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def run_rules(client: Any, database: str, period: str, settings: AmlSettings) -> RuleRun:
    """Every rule over IST month ``period``: the alerts, and what could not be judged."""
    q = _runner(client)
    run = RuleRun(period)
    run.alerts += monthly_total(q, database, period, settings)
    run.alerts += connected_total(q, database, period, settings)
    alerts, problems = cross_border(q, database, period, settings)
    run.alerts += alerts
    run.problems += problems
    run.alerts += structuring(q, database, period, settings)
    run.alerts += wallet_pass_through(q, database, period, settings)
    run.alerts += velocity_spike(q, database, period, settings)
    run.alerts += round_amounts(q, database, period, settings)
    run.alerts += merchant_jumps(q, database, period, settings)
    return run
