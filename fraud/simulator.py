"""Synthetic payment transactions with labelled fraud, for training, evaluation and load generation.

The core follows the transaction generator described in *Reproducible Machine Learning for Credit
Card Fraud Detection — Practical Handbook* (Le Borgne et al.), re-implemented here with vectorised
numpy and a seeded :class:`numpy.random.Generator`:

* customers sit uniformly on a 100 × 100 grid; each has a spend mean uniform on 5–100 (currency
  units), a spend standard deviation of half the mean and a daily transaction rate uniform on 0–4;
* terminals sit uniformly on the same grid; a customer uses the terminals strictly closer than
  ``radius`` (default 5) and picks one uniformly for each transaction;
* each customer-day draws a Poisson number of transactions; each has a time of day drawn from a
  normal around noon (standard deviation 20,000 s).  As in the handbook, a draw that falls outside
  the day (``t <= 0`` or ``t >= 86,400`` s) is discarded rather than clipped, so the realised daily
  count is a little below the Poisson mean; the handbook's published total relies on this;
* amounts are normal(mean, std); a negative draw is redrawn uniformly on (0, 2 × mean).

Fraud scenarios (applied in this order; a later scenario overwrites ``fraud_scenario``):

1. every transaction above 220 currency units (22,000 paise) is fraud;
2. each day but the last, two terminals drawn at random are compromised for that day and the next 27
   (28 days): all their transactions in that period are fraud;
3. each day but the last, three customers drawn at random are compromised for that day and the next
   13 (14 days): ``int(n / 3)`` of their ``n`` transactions in that period, drawn at random, are
   fraud and have their amount multiplied by 5 (once, even if two compromise periods overlap).

RizzPay extends each transaction with Indian payment attributes: a method (card, UPI, netbanking,
wallet), a card BIN and last four digits for card payments, a UPI VPA for UPI payments, and a device
id and IP address for all of them.  Devices and IPs are stable per customer (a primary and a
secondary device, a home and a mobile IP, and rarely a one-off new device); a scenario-3 fraud
comes, with configurable probability, from a device or IP of a small pool shared by fraudsters.
These attributes use their own random stream, so changing their settings never changes the
handbook part (customers, terminals, amounts, times, labels).

Money is integer minor units: ``amount_minor`` is paise (1 INR = 100 paise), never a float.  The
handbook's currency-unit amounts are rounded to whole paise, and at least 1 paisa.

Output columns (see :data:`COLUMNS`) are documented in ``docs/fraud.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

SECONDS_PER_DAY = 86_400
MINOR_PER_UNIT = 100  # paise per rupee

METHODS: tuple[str, ...] = ("card", "upi", "netbanking", "wallet")

#: Column name → description (with units) of the frame :func:`simulate` returns, in order.
COLUMNS: dict[str, str] = {
    "transaction_id": "int64, 0-based rank of the transaction in time order",
    "tx_datetime": "datetime64 UTC (tz-aware): when the payment was made",
    "customer_id": "int64, the paying customer",
    "terminal_id": "int64, the terminal / merchant point of sale",
    "amount_minor": "int64, amount in minor units (paise for INR), > 0",
    "currency": "ISO 4217 code, 'INR'",
    "method": "one of card, upi, netbanking, wallet",
    "card_bin": "6-digit card BIN (string) for method=card, else missing",
    "card_last4": "last four card digits (string, zero-padded) for method=card, else missing",
    "vpa": "UPI virtual payment address such as 'asha123@okhdfc' for method=upi, else missing",
    "device_id": "string id of the device the payment came from",
    "ip": "IPv4 address (string) the payment came from",
    "is_fraud": "int8, 1 if the transaction is fraudulent, else 0",
    "fraud_scenario": "int8, 0 legitimate, 1 amount > 220 INR, 2 compromised terminal, "
    "3 compromised customer",
    "tx_time_seconds": "int64, seconds since the simulation start (local midnight of start_date)",
    "tx_time_days": "int64, whole days since the simulation start (local calendar day index)",
}

# Card BIN prefixes by network, as issued in India.  BINs are synthetic: prefix + random digits.
_BIN_PREFIXES: dict[str, tuple[str, ...]] = {
    "rupay": ("60", "65", "81", "82", "508"),
    "visa": ("4",),
    "mastercard": ("51", "52", "53", "54", "55", "2221", "2720"),
}
_NETWORK_WEIGHTS: tuple[float, ...] = (0.35, 0.40, 0.25)  # rupay, visa, mastercard
_BINS_PER_PREFIX = 6
_VPA_HANDLES: tuple[str, ...] = (
    "okhdfc",
    "okicici",
    "oksbi",
    "okaxis",
    "ybl",
    "paytm",
    "ibl",
    "axl",
)
_VPA_NAMES: tuple[str, ...] = (
    "aarav", "aditi", "amit", "ananya", "arjun", "asha", "deepak", "divya", "farhan", "gaurav",
    "isha", "kabir", "kavya", "lakshmi", "manoj", "meera", "mohan", "neha", "nikhil", "pooja",
    "priya", "rahul", "rajesh", "ravi", "rohan", "sanjay", "sara", "shreya", "sneha", "suresh",
    "tanvi", "varun", "vikram", "zoya",
)  # fmt: skip
# First octets of the synthetic public IPv4 addresses (no private or reserved ranges).
_IP_FIRST_OCTETS: tuple[int, ...] = (49, 103, 106, 117, 122, 157, 182, 223)


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of a simulation; the defaults reproduce the handbook's data set size.

    Distances are grid units on the 100 × 100 square; durations are whole days; money is in paise.
    """

    n_customers: int = 5_000
    n_terminals: int = 10_000
    n_days: int = 183
    start_date: dt.date = dt.date(2018, 4, 1)
    #: Calendar of the simulated days: day ``k`` starts at local midnight of ``start_date + k``.
    timezone: str = "Asia/Kolkata"
    radius: float = 5.0
    seed: int = 0
    currency: str = "INR"
    # Fraud scenarios.
    fraud_amount_threshold_minor: int = 22_000
    compromised_terminals_per_day: int = 2
    terminal_compromise_days: int = 28
    compromised_customers_per_day: int = 3
    customer_compromise_days: int = 14
    customer_fraud_amount_multiplier: int = 5
    # RizzPay extension.
    method_weights: tuple[float, float, float, float] = (0.30, 0.50, 0.10, 0.10)
    #: Dirichlet concentration of each customer's method mix around ``method_weights``.
    method_concentration: float = 5.0
    secondary_device_probability: float = 0.14
    new_device_probability: float = 0.01
    attacker_device_probability: float = 0.5
    attacker_ip_probability: float = 0.5
    attacker_pool_size: int = 30

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.n_terminals < 1 or self.n_days < 1:
            raise ValueError("n_customers, n_terminals and n_days must be at least 1")
        if self.compromised_terminals_per_day > self.n_terminals:
            raise ValueError("compromised_terminals_per_day exceeds n_terminals")
        if self.compromised_customers_per_day > self.n_customers:
            raise ValueError("compromised_customers_per_day exceeds n_customers")
        if self.radius <= 0:
            raise ValueError("radius must be positive")
        if abs(sum(self.method_weights) - 1.0) > 1e-9 or min(self.method_weights) <= 0:
            raise ValueError("method_weights must be positive and sum to 1")

    def start_utc(self) -> pd.Timestamp:
        """The instant the simulation starts: local midnight of ``start_date``, as UTC."""
        return pd.Timestamp(self.start_date).tz_localize(self.timezone).tz_convert("UTC")


@dataclass(frozen=True)
class SimulatedTransaction:
    """One simulated payment, as :func:`iter_transactions` yields it (see :data:`COLUMNS`)."""

    transaction_id: int
    tx_datetime: dt.datetime
    customer_id: int
    terminal_id: int
    amount_minor: int
    currency: str
    method: str
    card_bin: str | None
    card_last4: str | None
    vpa: str | None
    device_id: str
    ip: str
    is_fraud: int
    fraud_scenario: int
    tx_time_seconds: int
    tx_time_days: int


IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class _Streams:
    """Independent random streams, so one part's settings never shift another part's draws."""

    customers: np.random.Generator
    terminals: np.random.Generator
    transactions: np.random.Generator
    frauds: np.random.Generator
    attributes: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> _Streams:
        children = np.random.SeedSequence(seed).spawn(5)
        return cls(*(np.random.Generator(np.random.PCG64(s)) for s in children))


def generate_customer_profiles(config: SimulationConfig) -> pd.DataFrame:
    """Customer profiles: ``customer_id``, ``x``, ``y`` (grid units), ``mean_amount`` and
    ``std_amount`` (currency units), ``mean_nb_tx_per_day`` (transactions per day)."""
    return _customer_profiles(config, _Streams.from_seed(config.seed).customers)


def generate_terminal_profiles(config: SimulationConfig) -> pd.DataFrame:
    """Terminal profiles: ``terminal_id``, ``x``, ``y`` (grid units)."""
    return _terminal_profiles(config, _Streams.from_seed(config.seed).terminals)


def _customer_profiles(config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = config.n_customers
    x = rng.uniform(0, 100, n)
    y = rng.uniform(0, 100, n)
    mean_amount = rng.uniform(5, 100, n)
    mean_nb_tx = rng.uniform(0, 4, n)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64),
            "x": x,
            "y": y,
            "mean_amount": mean_amount,
            "std_amount": mean_amount / 2,
            "mean_nb_tx_per_day": mean_nb_tx,
        }
    )


def _terminal_profiles(config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = config.n_terminals
    return pd.DataFrame(
        {
            "terminal_id": np.arange(n, dtype=np.int64),
            "x": rng.uniform(0, 100, n),
            "y": rng.uniform(0, 100, n),
        }
    )


def terminals_within_radius(
    customer_xy: FloatArray, terminal_xy: FloatArray, radius: float
) -> tuple[IntArray, IntArray]:
    """Terminals strictly closer than ``radius`` to each customer, as CSR ``(indptr, indices)``:
    customer ``c`` uses ``indices[indptr[c]:indptr[c + 1]]`` (ascending terminal ids)."""
    chunk = 512  # customers per block: bounds the distance matrix to chunk × n_terminals floats
    r2 = radius * radius
    counts: list[IntArray] = []
    indices: list[IntArray] = []
    for lo in range(0, len(customer_xy), chunk):
        block = customer_xy[lo : lo + chunk]
        dx = block[:, 0:1] - terminal_xy[None, :, 0]
        dy = block[:, 1:2] - terminal_xy[None, :, 1]
        rows, cols = np.nonzero(dx * dx + dy * dy < r2)
        counts.append(np.bincount(rows, minlength=len(block)).astype(np.int64))
        indices.append(cols.astype(np.int64))
    indptr = np.zeros(len(customer_xy) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=indptr[1:])
    return indptr, np.concatenate(indices)


def simulate(config: SimulationConfig | None = None) -> pd.DataFrame:
    """Simulate transactions, sorted by time, with the columns of :data:`COLUMNS`.

    Deterministic: the same ``config`` (including ``seed``) gives an identical frame.  The default
    configuration gives about 1.75 million rows in a few seconds (about 1 GB of memory at peak).
    """
    return simulate_with_truth(config)[0]


@dataclass(frozen=True)
class SimulationTruth:
    """The compromise schedule behind the labels (what an investigation would find).

    ``terminal_compromises`` has ``terminal_id``, ``start_day``, ``end_day`` (exclusive);
    ``customer_compromises`` has ``customer_id``, ``start_day``, ``end_day`` (exclusive); days are
    ``tx_time_days`` values.
    """

    terminal_compromises: pd.DataFrame
    customer_compromises: pd.DataFrame


def simulate_with_truth(
    config: SimulationConfig | None = None,
) -> tuple[pd.DataFrame, SimulationTruth]:
    """:func:`simulate`, plus the compromise schedule of scenarios 2 and 3."""
    config = config or SimulationConfig()
    streams = _Streams.from_seed(config.seed)
    customers = _customer_profiles(config, streams.customers)
    terminals = _terminal_profiles(config, streams.terminals)

    core = _core_transactions(config, customers, terminals, streams.transactions)
    scenario, truth = _add_frauds(config, core, streams.frauds)
    attrs = _payment_attributes(config, core, scenario, streams.attributes)

    start = config.start_utc()
    tx_seconds = core["tx_time_seconds"]
    tx_datetime = pd.DatetimeIndex(start + pd.to_timedelta(tx_seconds, unit="s")).as_unit("s")
    n = len(tx_seconds)
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(n, dtype=np.int64),
            "tx_datetime": tx_datetime,
            "customer_id": core["customer_id"],
            "terminal_id": core["terminal_id"],
            "amount_minor": core["amount_minor"],
            "currency": pd.Series(np.full(n, config.currency, dtype=object), dtype="str"),
            "method": attrs["method"],
            "card_bin": attrs["card_bin"],
            "card_last4": attrs["card_last4"],
            "vpa": attrs["vpa"],
            "device_id": attrs["device_id"],
            "ip": attrs["ip"],
            "is_fraud": (scenario > 0).astype(np.int8),
            "fraud_scenario": scenario.astype(np.int8),
            "tx_time_seconds": tx_seconds,
            "tx_time_days": core["tx_time_days"],
        }
    )
    return frame, truth


def _core_transactions(
    config: SimulationConfig,
    customers: pd.DataFrame,
    terminals: pd.DataFrame,
    rng: np.random.Generator,
) -> dict[str, IntArray]:
    """Handbook transactions in time order: customer, terminal, day, seconds, amount (paise)."""
    n_cust, n_days = config.n_customers, config.n_days
    indptr, indices = terminals_within_radius(
        customers[["x", "y"]].to_numpy(dtype=np.float64),
        terminals[["x", "y"]].to_numpy(dtype=np.float64),
        config.radius,
    )
    n_available = np.diff(indptr)

    rate = customers["mean_nb_tx_per_day"].to_numpy(dtype=np.float64)
    daily = rng.poisson(rate[:, None], size=(n_cust, n_days)).ravel()
    cust = np.repeat(np.repeat(np.arange(n_cust, dtype=np.int64), n_days), daily)
    day = np.repeat(np.tile(np.arange(n_days, dtype=np.int64), n_cust), daily)
    n = len(cust)

    # Every draw is made for every candidate before filtering, so the streams stay aligned.
    time_of_day = rng.normal(SECONDS_PER_DAY / 2, 20_000, n).astype(np.int64)  # truncates to 0
    mean = customers["mean_amount"].to_numpy(dtype=np.float64)[cust]
    std = customers["std_amount"].to_numpy(dtype=np.float64)[cust]
    amount = rng.normal(mean, std)
    redraw = rng.uniform(0.0, 2.0 * mean)
    amount = np.where(amount < 0, redraw, amount)
    pick = rng.random(n)

    keep = (time_of_day > 0) & (time_of_day < SECONDS_PER_DAY) & (n_available[cust] > 0)
    cust, day, time_of_day, amount, pick = (
        cust[keep],
        day[keep],
        time_of_day[keep],
        amount[keep],
        pick[keep],
    )
    offset = np.minimum((pick * n_available[cust]).astype(np.int64), n_available[cust] - 1)
    terminal = indices[indptr[cust] + offset]
    amount_minor = np.maximum(np.rint(amount * MINOR_PER_UNIT).astype(np.int64), 1)
    seconds = day * SECONDS_PER_DAY + time_of_day

    order = np.argsort(seconds, kind="stable")
    return {
        "customer_id": cust[order],
        "terminal_id": terminal[order],
        "tx_time_days": day[order],
        "tx_time_seconds": seconds[order],
        "amount_minor": amount_minor[order],
    }


def _add_frauds(
    config: SimulationConfig, core: dict[str, IntArray], rng: np.random.Generator
) -> tuple[npt.NDArray[np.int8], SimulationTruth]:
    """Label the three scenarios; multiplies scenario-3 amounts in ``core`` in place.

    Returns ``fraud_scenario`` per transaction (0 for legitimate) and the compromise schedule.
    """
    cust, term, day = core["customer_id"], core["terminal_id"], core["tx_time_days"]
    amount = core["amount_minor"]
    n = len(cust)
    scenario = np.zeros(n, dtype=np.int8)
    terminal_events: list[tuple[int, int, int]] = []
    customer_events: list[tuple[int, int, int]] = []
    if n == 0:
        return scenario, _truth(terminal_events, customer_events)
    last_day = int(day.max())

    scenario[amount > config.fraud_amount_threshold_minor] = 1

    span = config.terminal_compromise_days
    compromised_terminal = np.zeros((config.n_terminals, last_day + 1 + span), dtype=np.bool_)
    for start in range(last_day):
        chosen = rng.choice(config.n_terminals, config.compromised_terminals_per_day, replace=False)
        compromised_terminal[chosen, start : start + span] = True
        terminal_events += [(int(t), start, start + span) for t in chosen]
    scenario[compromised_terminal[term, day]] = 2

    # Positions of each customer's transactions, in time order, for quick per-customer lookup.
    by_customer = np.argsort(cust, kind="stable")
    bounds = np.searchsorted(cust[by_customer], np.arange(config.n_customers + 1))
    span = config.customer_compromise_days
    stolen = np.zeros(n, dtype=np.bool_)
    for start in range(last_day):
        chosen = rng.choice(config.n_customers, config.compromised_customers_per_day, replace=False)
        customer_events += [(int(c), start, start + span) for c in chosen]
        rows = np.concatenate([by_customer[bounds[c] : bounds[c + 1]] for c in chosen])
        rows = rows[(day[rows] >= start) & (day[rows] < start + span)]
        if len(rows) >= 3:
            stolen[rng.choice(rows, len(rows) // 3, replace=False)] = True
    amount[stolen] *= config.customer_fraud_amount_multiplier
    scenario[stolen] = 3
    return scenario, _truth(terminal_events, customer_events)


def _truth(
    terminal_events: list[tuple[int, int, int]], customer_events: list[tuple[int, int, int]]
) -> SimulationTruth:
    return SimulationTruth(
        pd.DataFrame(terminal_events, columns=["terminal_id", "start_day", "end_day"]),
        pd.DataFrame(customer_events, columns=["customer_id", "start_day", "end_day"]),
    )


def _payment_attributes(
    config: SimulationConfig,
    core: dict[str, IntArray],
    scenario: npt.NDArray[np.int8],
    rng: np.random.Generator,
) -> dict[str, pd.Series]:
    """Method, card, VPA, device and IP columns (strings; missing where they do not apply)."""
    n_cust = config.n_customers
    cust = core["customer_id"]
    n = len(cust)

    # Per-customer profile.
    mix = rng.dirichlet(np.asarray(config.method_weights) * config.method_concentration, n_cust)
    bins = _bin_pool(rng)
    network = rng.choice(len(_NETWORK_WEIGHTS), n_cust, p=_NETWORK_WEIGHTS)
    bin_of_customer = np.array(
        [
            bins[k][i % len(bins[k])]
            for k, i in zip(network, rng.integers(0, 1 << 30, n_cust), strict=True)
        ],
        dtype=object,
    )
    last4_of_customer = np.char.zfill(rng.integers(0, 10_000, n_cust).astype(str), 4).astype(object)
    names = np.asarray(_VPA_NAMES, dtype=object)[rng.integers(0, len(_VPA_NAMES), n_cust)]
    numbers = rng.integers(1, 1000, n_cust).astype(str).astype(object)
    handles = np.asarray(_VPA_HANDLES, dtype=object)[rng.integers(0, len(_VPA_HANDLES), n_cust)]
    vpa_of_customer = names + numbers + "@" + handles
    primary_device = _device_ids(rng, n_cust, "d")
    secondary_device = _device_ids(rng, n_cust, "d")
    home_ip = _ips(rng, n_cust)
    mobile_ip = _ips(rng, n_cust)
    home_share = rng.uniform(0.3, 0.9, n_cust)
    attacker_devices = _device_ids(rng, config.attacker_pool_size, "x")
    attacker_ips = _ips(rng, config.attacker_pool_size)

    # Per-transaction draws (all made for every row, so streams stay aligned).
    u_method = rng.random(n)
    u_device = rng.random(n)
    u_ip = rng.random(n)
    one_off_device = _device_ids(rng, n, "n")
    u_attack_device = rng.random(n)
    u_attack_ip = rng.random(n)
    attacker_device = attacker_devices[rng.integers(0, config.attacker_pool_size, n)]
    attacker_ip = attacker_ips[rng.integers(0, config.attacker_pool_size, n)]

    cum = np.cumsum(mix, axis=1)[cust]
    method_idx = np.minimum((u_method[:, None] > cum).sum(axis=1), len(METHODS) - 1)
    method = np.asarray(METHODS, dtype=object)[method_idx]
    is_card = method_idx == METHODS.index("card")
    is_upi = method_idx == METHODS.index("upi")

    secondary = u_device < config.secondary_device_probability
    device = np.where(secondary, secondary_device[cust], primary_device[cust])
    device = np.where(u_device > 1.0 - config.new_device_probability, one_off_device, device)
    ip = np.where(u_ip < home_share[cust], home_ip[cust], mobile_ip[cust])
    stolen = scenario == 3
    from_attacker = stolen & (u_attack_device < config.attacker_device_probability)
    device = np.where(from_attacker, attacker_device, device)
    ip = np.where(stolen & (u_attack_ip < config.attacker_ip_probability), attacker_ip, ip)

    def text(values: npt.NDArray[np.object_], present: BoolArray | None = None) -> pd.Series:
        out = values.copy()
        if present is not None:
            out[~present] = None
        return pd.Series(out, dtype="str")

    return {
        "method": text(method),
        "card_bin": text(bin_of_customer[cust], is_card),
        "card_last4": text(last4_of_customer[cust], is_card),
        "vpa": text(vpa_of_customer[cust], is_upi),
        "device_id": text(device),
        "ip": text(ip),
    }


def _bin_pool(rng: np.random.Generator) -> list[list[str]]:
    """Synthetic 6-digit BINs per network (rupay, visa, mastercard), from real Indian prefixes."""
    pool: list[list[str]] = []
    for name in ("rupay", "visa", "mastercard"):
        bins: list[str] = []
        for prefix in _BIN_PREFIXES[name]:
            for _ in range(_BINS_PER_PREFIX):
                tail = rng.integers(0, 10, 6 - len(prefix))
                bins.append(prefix + "".join(str(int(d)) for d in tail))
        pool.append(bins)
    return pool


def _device_ids(rng: np.random.Generator, n: int, kind: str) -> npt.NDArray[np.object_]:
    """``n`` random device ids such as ``d-3f9a0c12b7e4`` (48 random bits, hex)."""
    raw = rng.integers(0, 1 << 48, n, dtype=np.int64)
    if n == 0:  # numpy's string functions reject empty input
        return np.empty(0, dtype=object)
    return np.char.add(f"{kind}-", np.char.zfill(np.char.mod("%x", raw), 12)).astype(object)


def _ips(rng: np.random.Generator, n: int) -> npt.NDArray[np.object_]:
    """``n`` random public-looking IPv4 addresses as strings."""
    first = np.asarray(_IP_FIRST_OCTETS)[rng.integers(0, len(_IP_FIRST_OCTETS), n)]
    rest = rng.integers(0, 256, (n, 2))
    last = rng.integers(1, 255, n)
    if n == 0:
        return np.empty(0, dtype=object)
    parts = [first.astype(str), rest[:, 0].astype(str), rest[:, 1].astype(str), last.astype(str)]
    out = parts[0]
    for p in parts[1:]:
        out = np.char.add(np.char.add(out, "."), p)
    return out.astype(object)


def iter_transactions(
    config: SimulationConfig | None = None, *, chunk_rows: int = 10_000
) -> Iterator[SimulatedTransaction]:
    """Yield the simulated transactions one by one in time order (a load generator).

    The whole simulation is computed first (fraud labels depend on the compromise schedule), then
    rows are converted ``chunk_rows`` at a time; small configurations start yielding at once.
    """
    frame = simulate(config)
    for lo in range(0, len(frame), chunk_rows):
        block = frame.iloc[lo : lo + chunk_rows]
        for row in block.itertuples(index=False):
            yield SimulatedTransaction(
                transaction_id=int(row.transaction_id),
                tx_datetime=row.tx_datetime.to_pydatetime(),
                customer_id=int(row.customer_id),
                terminal_id=int(row.terminal_id),
                amount_minor=int(row.amount_minor),
                currency=str(row.currency),
                method=str(row.method),
                card_bin=_opt_str(row.card_bin),
                card_last4=_opt_str(row.card_last4),
                vpa=_opt_str(row.vpa),
                device_id=str(row.device_id),
                ip=str(row.ip),
                is_fraud=int(row.is_fraud),
                fraud_scenario=int(row.fraud_scenario),
                tx_time_seconds=int(row.tx_time_seconds),
                tx_time_days=int(row.tx_time_days),
            )


def _opt_str(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
