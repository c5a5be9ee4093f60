"""Simulated traffic for the AML tests: clean simulator payments loaded into ClickHouse facts,
and the planted patterns each AML rule must find.

The simulator (fraud/simulator.py) gives customers, terminals (here: merchants), amounts,
methods, cards, VPAs and devices.  Every simulated payment is requested and captured one minute
later; about 1 % are half refunded the next day and 0.2 % charged back; some customers load
their wallets and spend part of it.  The planted rows are the patterns, with the (rule, subject)
pairs they must raise in :data:`EXPECTED`.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fraud.simulator import SimulationConfig, simulate
from warehouse.aml import rules

PERIOD = "2026-10"
USD_RATE_PAISE = 8_400  # ₹84.00 per dollar
LAKH = 1_00_000 * 100  # paise

PAYMENT_COLUMNS = [
    "event_id",
    "payment_id",
    "merchant_id",
    "customer_id",
    "amount_minor",
    "currency",
    "method",
    "card_network",
    "card_bin",
    "bank_code",
    "upi_flow",
    "instrument_ref",
    "device_id",
    "payer_country",
    "capture",
    "request_fingerprint",
    "requested_at",
]
EVENT_COLUMNS = [
    "event_id",
    "event_type",
    "payment_id",
    "merchant_id",
    "amount_minor",
    "currency",
    "method",
    "decline_code",
    "ref_id",
    "reason",
    "occurred_at",
]
POSTING_COLUMNS = [
    "posting_id",
    "entry_id",
    "chain_seq",
    "entry_kind",
    "payment_id",
    "merchant_id",
    "account_id",
    "account_owner",
    "account_kind",
    "amount_minor",
    "currency",
    "booked_at",
]


@dataclass
class Traffic:
    payments: list[list[Any]] = field(default_factory=list)
    events: list[list[Any]] = field(default_factory=list)
    postings: list[list[Any]] = field(default_factory=list)

    def pay(
        self,
        pid: str,
        customer: str,
        merchant: str,
        amount_minor: int,
        at: datetime,
        *,
        method: str = "card",
        instrument: str = "",
        device: str = "",
        currency: str = "INR",
        country: str = "IN",
    ) -> None:
        """A payment requested at ``at`` and captured a minute later."""
        self.payments.append(
            [f"req_{pid}", pid, merchant, customer, amount_minor, currency, method, "", "",
             "", "", instrument, device, country, "automatic", "0" * 64, at]
        )  # fmt: skip
        self.event(f"cap_{pid}", rules.EV_CAPTURED, pid, merchant, amount_minor, at, currency)

    def event(
        self,
        eid: str,
        event_type: str,
        pid: str,
        merchant: str,
        amount_minor: int,
        at: datetime,
        currency: str = "INR",
        ref_id: str = "",
    ) -> None:
        occurred = at + timedelta(minutes=1) if event_type == rules.EV_CAPTURED else at
        self.events.append(
            [eid, event_type, pid, merchant, amount_minor, currency, "", "", ref_id, "", occurred]
        )

    def wallet(self, entry: str, customer: str, kind: str, amount_minor: int, at: datetime) -> None:
        """One wallet entry: money in (load) or out (payout / transfer out), both legs."""
        wallet = f"customer:{customer}:wallet:INR"
        other = (
            "platform:wallet_funding:INR"
            if kind == "wallet_load"
            else "platform:wallet_payouts:INR"
        )
        inflow = kind == "wallet_load"
        legs = [
            (wallet, f"customer:{customer}", "wallet", -amount_minor if inflow else amount_minor),
            (other, "platform", other.split(":")[1], amount_minor if inflow else -amount_minor),
        ]
        for n, (account, owner, account_kind, amount) in enumerate(legs):
            self.postings.append(
                [f"{entry}:{n}", entry, 0, kind, "", "", account, owner, account_kind, amount,
                 "INR", at]
            )  # fmt: skip

    def extend(self, other: Traffic) -> None:
        self.payments += other.payments
        self.events += other.events
        self.postings += other.postings


def _py(ts: Any) -> datetime:
    value: datetime = ts.to_pydatetime()
    return value.astimezone(UTC)


def clean_traffic(seed: int = 11) -> Traffic:
    """August to October 2026 (IST) of simulated payments, refunds, chargebacks and wallets."""
    config = SimulationConfig(
        n_customers=1_000,
        n_terminals=100,
        n_days=92,
        start_date=dt.date(2026, 8, 1),
        radius=15.0,
        seed=seed,
    )
    frame = simulate(config)
    rng = random.Random(seed)
    t = Traffic()
    times = [_py(x) for x in frame["tx_datetime"]]
    cols = {c: frame[c].to_numpy() for c in ("transaction_id", "customer_id", "terminal_id",
                                              "amount_minor", "method", "card_bin",
                                              "card_last4", "vpa", "device_id")}  # fmt: skip
    for i, at in enumerate(times):
        tx, cust = int(cols["transaction_id"][i]), int(cols["customer_id"][i])
        method = str(cols["method"][i])
        if method == "card":
            instrument = f"card:tok_{cols['card_bin'][i]}{cols['card_last4'][i]}"
        elif method == "upi":
            instrument = f"vpa:{str(cols['vpa'][i]).lower()}"
        elif method == "wallet":
            instrument = f"wallet:wal_{cust:04d}"
        else:
            instrument = ""
        pid = f"pay_sim_{tx:07d}"
        merchant = f"m_sim_{int(cols['terminal_id'][i]):04d}"
        amount = int(cols["amount_minor"][i])
        t.pay(pid, f"cust_{cust:04d}", merchant, amount, at, method=method,
              instrument=instrument, device=str(cols["device_id"][i]))  # fmt: skip
        roll = rng.random()
        if roll < 0.01:
            t.event(f"rfd_{pid}", rules.EV_REFUNDED, pid, merchant, amount // 2 or 1,
                    at + timedelta(days=1), ref_id=f"rfd_{tx}")  # fmt: skip
        elif roll < 0.012:
            t.event(f"cb_{pid}", rules.EV_CHARGEBACK, pid, merchant, amount,
                    at + timedelta(days=20), ref_id=f"dsp_{tx}")  # fmt: skip
    # Wallets: small loads spent over days, and a few large loads spent only in part.
    start = datetime(2026, 8, 1, 4, tzinfo=UTC)
    for k in range(200):
        customer = f"cust_{k:04d}"
        at = start + timedelta(days=rng.randrange(88), hours=rng.randrange(12))
        big = k < 15
        load = rng.randint(150_000, 190_000) * 100 if big else rng.randint(1_000, 20_000) * 100
        t.wallet(f"wl_{k}", customer, "wallet_load", load, at)
        share = rng.uniform(0.2, 0.6) if big else rng.uniform(0.3, 1.0)
        t.wallet(f"wp_{k}", customer, "wallet_payout", int(load * share),
                 at + timedelta(hours=rng.randrange(1, 40)))  # fmt: skip
    return t


def _oct(day: int, hour: int = 6) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


@dataclass(frozen=True)
class Planted:
    traffic: Traffic
    expected: frozenset[tuple[str, str]]  # (rule, subject_id)
    not_expected: frozenset[tuple[str, str]]  # near misses that must raise nothing


def planted(clean: Traffic, seed: int = 5) -> Planted:
    """Every pattern, planted in October 2026 among ``clean`` (whose customers, merchants and
    velocity baseline it reads)."""
    rng = random.Random(seed)
    t = Traffic()
    m = "m_sim_0001"

    def odd(rupees: int) -> int:  # an amount that is not round
        return rupees * 100 + rng.randint(1, 99)

    # Alone over ₹10 lakh: 12 payments of about ₹1 lakh.
    for k in range(12):
        t.pay(f"pay_big_{k}", "cust_plant_big", m, odd(rng.randint(95_000, 1_05_000)), _oct(2 + k),
              instrument="card:tok_big")  # fmt: skip
    # Connected by a shared device: three customers of about ₹4 lakh each.
    for who in ("a", "b", "c"):
        for k in range(4):
            t.pay(
                f"pay_ring_{who}{k}",
                f"cust_plant_ring_{who}",
                m,
                odd(1_00_000),
                _oct(3 + 5 * k),
                instrument=f"card:tok_ring_{who}",
                device="dev_plant_ring",
            )
    # Connected by a shared VPA: two customers of ₹5.1 lakh each.
    for who in ("a", "b"):
        for k in range(3):
            t.pay(f"pay_vpa_{who}{k}", f"cust_plant_vpa_{who}", m, odd(1_70_000), _oct(4 + 7 * k),
                  method="upi", instrument="vpa:mule@okaxis", device=f"dev_vpa_{who}")  # fmt: skip
    # Cross-border: $7,000 (₹5.88 lakh) and ₹6 lakh from a payer in the UAE; $5,000 (₹4.2 lakh)
    # stays under; a euro payment has no reference rate.
    t.pay("pay_xb_usd", "cust_plant_xb", m, 7_000_00, _oct(8), currency="USD", country="US")
    t.pay("pay_xb_ae", "cust_plant_xb2", m, odd(6_00_000), _oct(9), country="AE")
    t.pay("pay_xb_small", "cust_plant_xb3", m, 5_000_00, _oct(10), currency="USD", country="US")
    t.pay("pay_xb_eur", "cust_plant_xb4", m, 100_00, _oct(10), currency="EUR", country="DE")
    # Structuring: four payments just under ₹50,000.
    for k in range(4):
        t.pay(f"pay_struct_{k}", "cust_plant_struct", m, odd(rng.randint(46_000, 49_800)),
              _oct(5 + 6 * k))  # fmt: skip
    # Round amounts.
    for k, rupees in enumerate((50_000, 60_000, 1_00_000, 70_000)):
        t.pay(f"pay_round_{k}", "cust_plant_round", m, rupees * 100, _oct(6 + 5 * k))
    # Wallet pass-through: ₹2 lakh loaded and ₹1.95 lakh paid out six hours later.
    t.wallet("wl_plant", "cust_plant_wallet", "wallet_load", 2 * LAKH, _oct(10, 4))
    t.wallet("wp_plant", "cust_plant_wallet", "wallet_payout", 1_95_000 * 100, _oct(10, 10))
    # Velocity: an ordinary simulated customer makes 30 payments on 20 October.
    veteran = _ordinary_customer(clean)
    for k in range(30):
        t.pay(f"pay_vel_{k}", veteran, "m_sim_0002", odd(rng.randint(100, 900)),
              _oct(20, 4) + timedelta(minutes=7 * k))  # fmt: skip
    # Refund jump at one merchant, chargeback jump at another: a share of their October
    # captures refunded (charged back).
    for merchant, rule, event_type, share in (
        ("m_sim_0007", rules.REFUND_JUMP, rules.EV_REFUNDED, 0.4),
        ("m_sim_0011", rules.CHARGEBACK_JUMP, rules.EV_CHARGEBACK, 0.15),
    ):
        start, end = _oct(1) - timedelta(hours=6), datetime(2026, 10, 31, 18, 30, tzinfo=UTC)
        captured = [
            e for e in clean.events
            if e[1] == rules.EV_CAPTURED and e[3] == merchant and start <= e[10] < end
        ]  # fmt: skip
        for e in rng.sample(captured, int(len(captured) * share)):
            t.event(f"{rule}_{e[2]}", event_type, e[2], merchant, e[4], e[10] + timedelta(hours=3),
                    ref_id=f"ref_{e[2]}")  # fmt: skip
    expected = {
        (rules.MONTHLY_TOTAL, "cust_plant_big"),
        (rules.CONNECTED_TOTAL, "cust_plant_ring_a"),
        (rules.CONNECTED_TOTAL, "cust_plant_vpa_a"),
        (rules.CROSS_BORDER, "pay_xb_usd"),
        (rules.CROSS_BORDER, "pay_xb_ae"),
        (rules.STRUCTURING, "cust_plant_struct"),
        (rules.ROUND_AMOUNTS, "cust_plant_round"),
        (rules.WALLET_PASS_THROUGH, "cust_plant_wallet"),
        (rules.VELOCITY_SPIKE, veteran),
        (rules.REFUND_JUMP, "m_sim_0007"),
        (rules.CHARGEBACK_JUMP, "m_sim_0011"),
    }
    near_misses = {(rules.CROSS_BORDER, "pay_xb_small"), (rules.CROSS_BORDER, "pay_xb_eur")}
    return Planted(t, frozenset(expected), frozenset(near_misses))


def _ordinary_customer(clean: Traffic) -> str:
    """A customer with a typical number of September payments (the median one)."""
    counts: dict[str, int] = {}
    sept = (datetime(2026, 8, 31, 18, 30, tzinfo=UTC), datetime(2026, 9, 30, 18, 30, tzinfo=UTC))
    for row in clean.payments:
        if sept[0] <= row[16] < sept[1]:
            counts[row[3]] = counts.get(row[3], 0) + 1
    ordered = sorted(counts, key=lambda c: (counts[c], c))
    return ordered[len(ordered) // 2]


def load(client: Any, database: str, traffic: Traffic, chunk: int = 100_000) -> None:
    """Insert ``traffic`` into ``database``'s facts (migrated beforehand)."""
    for table, columns, rows in (
        ("payments", PAYMENT_COLUMNS, traffic.payments),
        ("payment_events", EVENT_COLUMNS, traffic.events),
        ("ledger_postings", POSTING_COLUMNS, traffic.postings),
    ):
        for i in range(0, len(rows), chunk):
            client.insert(f"{database}.{table}", rows[i : i + chunk], column_names=columns)


def summary(found: Sequence[rules.Alert]) -> set[tuple[str, str]]:
    return {(a.rule, a.subject_id) for a in found}
