"""A client-side load generator that speaks the public API: realistic Indian payment traffic
for the demo and the benchmarks.

Deterministic by seed.  The method mix and amounts follow the broad shape of Indian online
payments (UPI most frequent and small, cards mid-sized, bank transfers large and rare), with a
small share of the sandbox's decline instruments so that declines show up too.

Every payment names the payer's ``device`` (id and IP), so the live scorer's device and IP
features see traffic: in :func:`plan_payments` each customer has a primary and a secondary
device and a home and a mobile IP (the simulator's profile, drawn from a separate random
stream so the rest of a seed's plan is unchanged); :func:`plan_simulated` replays the fraud
simulator's transactions with their own devices and IPs, fraudsters' shared ones included.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from fraud.simulator import SimulatedTransaction

# (method, share of traffic, median amount in paise, lognormal sigma)
METHOD_MIX: tuple[tuple[str, float, int, float], ...] = (
    ("upi", 0.50, 350_00, 1.1),
    ("card", 0.30, 1_800_00, 1.0),
    ("netbanking", 0.10, 4_000_00, 1.0),
    ("wallet", 0.04, 200_00, 0.8),
    ("imps", 0.03, 12_000_00, 0.9),
    ("neft", 0.025, 45_000_00, 0.9),
    ("rtgs", 0.005, 4_50_000_00, 0.5),
)
BANKS = ("HDFC", "ICIC", "SBIN", "UTIB", "KKBK", "PUNB", "BARB")
UPI_HANDLES = ("okhdfc", "okicici", "oksbi", "okaxis", "ybl", "paytm", "ibl")
CARD_BINS = (("411111", "visa"), ("522222", "mastercard"), ("652150", "rupay"), ("607384", "rupay"))
# The sandbox's test instruments (see streams.authorization): a few percent of card traffic.
CARD_DECLINE_LAST4 = ("0002", "9995", "0069")
# Device habits, as the simulator's defaults (fraud.simulator.SimulationConfig): the secondary
# device's share, a rare one-off new device, and the share of payments from the home IP.
SECONDARY_DEVICE_SHARE = 0.14
NEW_DEVICE_SHARE = 0.01
HOME_IP_SHARE = 0.6


@dataclass(frozen=True)
class MerchantKey:
    merchant_id: str
    api_key: str


@dataclass(frozen=True)
class PlannedPayment:
    merchant: MerchantKey
    idempotency_key: str
    body: dict[str, Any]


@dataclass(frozen=True)
class SendResult:
    planned: PlannedPayment
    status: int
    payment_id: str | None
    latency_s: float
    attempts: int
    code: str | None  # problem code for non-2xx answers


def _method(rng: random.Random, kind: str, customer: int) -> dict[str, Any]:
    if kind == "upi":
        local = "invalid.payer" if rng.random() < 0.015 else f"cust{customer}"
        return {"type": "upi", "vpa": f"{local}@{rng.choice(UPI_HANDLES)}"}
    if kind == "card":
        bin_, network = rng.choice(CARD_BINS)
        if rng.random() < 0.04:
            last4 = rng.choice(CARD_DECLINE_LAST4)
        else:
            last4 = f"{customer % 10000:04d}"
            if last4 in CARD_DECLINE_LAST4:  # a customer's own card must not be a test decline
                last4 = "4242"
        token = f"tok_{network}_{customer:06d}"
        return {"type": "card", "token": token, "bin": bin_, "last4": last4, "network": network}
    if kind == "netbanking":
        return {"type": "netbanking", "bank_code": rng.choice(BANKS)}
    if kind == "wallet":
        return {"type": "wallet", "wallet_id": f"wal_{customer:08d}"}
    ifsc = f"{rng.choice(BANKS)}0{rng.randrange(10**6):06d}"
    return {"type": kind, "ifsc": ifsc, "account_last4": f"{rng.randrange(10**4):04d}"}


def _derived(seed: int, *parts: object) -> bytes:
    """Stable pseudo-random bytes for a customer's profile (same seed, same devices)."""
    return hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()


def _ipv4(raw: bytes) -> str:
    """A public-looking IPv4 address from 4 bytes (first octet 11-223: no 0/8, 10/8, 127/8,
    multicast or reserved space)."""
    return f"{11 + raw[0] % 213}.{raw[1]}.{raw[2]}.{1 + raw[3] % 254}"


def _device(seed: int, customer: int, rng: random.Random) -> dict[str, str]:
    """The device and IP one payment of ``customer`` comes from."""
    u = rng.random()
    if u > 1.0 - NEW_DEVICE_SHARE:
        device_id = f"n-{rng.getrandbits(48):012x}"
    else:
        which = "secondary" if u < SECONDARY_DEVICE_SHARE else "primary"
        device_id = f"d-{_derived(seed, customer, which).hex()[:12]}"
    where = "home" if rng.random() < HOME_IP_SHARE else "mobile"
    return {"id": device_id, "ip": _ipv4(_derived(seed, customer, where))}


def plan_payments(
    merchants: Sequence[MerchantKey], count: int, *, seed: int, run_id: str
) -> list[PlannedPayment]:
    """``count`` payments spread over ``merchants`` (a few large, many small: Zipf-like)."""
    rng = random.Random(seed)  # noqa: S311  (reproducible test traffic, not secrets)
    # Devices from their own stream: adding them left every other draw of a seed as it was.
    device_rng = random.Random(f"{seed}:devices")  # noqa: S311
    weights = [1.0 / (rank + 1) for rank in range(len(merchants))]
    kinds = [m[0] for m in METHOD_MIX]
    shares = [m[1] for m in METHOD_MIX]
    shape = {m[0]: (m[2], m[3]) for m in METHOD_MIX}
    planned = []
    for i in range(count):
        merchant = rng.choices(merchants, weights)[0]
        kind = rng.choices(kinds, shares)[0]
        median, sigma = shape[kind]
        amount = max(100, round(median * math.exp(rng.gauss(0, sigma))))
        if kind == "rtgs":
            amount = max(amount, 2_00_000_00)
        customer = rng.randrange(50_000)
        body = {
            "amount": amount,
            "currency": "INR",
            "method": _method(rng, kind, customer),
            "customer_id": f"cust_{customer}",
            "device": _device(seed, customer, device_rng),
        }
        planned.append(PlannedPayment(merchant, f"{run_id}-{i:06d}", body))
    return planned


def simulated_body(tx: SimulatedTransaction) -> dict[str, Any]:
    """The ``POST /v1/payments`` body of a simulated transaction: its amount, method, customer,
    device and IP, so the live scorer sees what the offline features were computed from.

    Cards get a token derived from the customer (the simulator has one card per customer);
    a last four that is one of the sandbox's decline instruments moves to the next number, so
    a legitimate simulated customer is never declined by the sandbox's test cards.
    """
    method: dict[str, Any]
    if tx.method == "card" and tx.card_bin and tx.card_last4:
        last4 = tx.card_last4
        if last4 in CARD_DECLINE_LAST4:
            last4 = f"{(int(last4) + 1) % 10_000:04d}"
        token = f"tok_sim_{tx.customer_id:06d}"
        method = {"type": "card", "token": token, "bin": tx.card_bin, "last4": last4}
    elif tx.method == "upi" and tx.vpa:
        method = {"type": "upi", "vpa": tx.vpa}
    elif tx.method == "wallet":
        method = {"type": "wallet", "wallet_id": f"wal_{tx.customer_id:08d}"}
    else:
        method = {"type": "netbanking", "bank_code": BANKS[tx.customer_id % len(BANKS)]}
    return {
        "amount": tx.amount_minor,
        "currency": tx.currency,
        "method": method,
        "customer_id": f"cust_{tx.customer_id}",
        "device": {"id": tx.device_id, "ip": tx.ip},
    }


def plan_simulated(
    merchants: Sequence[MerchantKey], transactions: Iterable[SimulatedTransaction], *, run_id: str
) -> list[PlannedPayment]:
    """The simulator's transactions (``fraud.simulator.iter_transactions``) as API requests,
    in their time order; terminal ``t`` is merchant ``t mod len(merchants)``.  The payments are
    made now, so the simulated days are compressed into the run: velocity features see more
    per hour than the simulation had, novelty and sharing (a fraudsters' device used by several
    customers) exactly as simulated."""
    if not merchants:
        raise ValueError("plan_simulated needs at least one merchant")
    return [
        PlannedPayment(
            merchants[tx.terminal_id % len(merchants)],
            f"{run_id}-{tx.transaction_id:07d}",
            simulated_body(tx),
        )
        for tx in transactions
    ]


async def send_payments(
    base_url: str,
    planned: Sequence[PlannedPayment],
    *,
    concurrency: int = 32,
    retries_max: int = 5,
) -> list[SendResult]:
    """POST every planned payment, ``concurrency`` at a time.  503 and 409 are retried with the
    same Idempotency-Key after the server's Retry-After, as a well-behaved client would."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:

        async def one(item: PlannedPayment) -> SendResult:
            headers = {
                "Authorization": f"Bearer {item.merchant.api_key}",
                "Idempotency-Key": item.idempotency_key,
            }
            async with gate:
                started = time.perf_counter()
                for attempt in range(1, retries_max + 1):
                    res = await client.post("/v1/payments", json=item.body, headers=headers)
                    if res.status_code not in (409, 503) or attempt == retries_max:
                        break
                    await asyncio.sleep(float(res.headers.get("Retry-After", "1")))
                data = res.json()
                return SendResult(
                    planned=item,
                    status=res.status_code,
                    payment_id=data.get("id") if res.is_success else None,
                    latency_s=time.perf_counter() - started,
                    attempts=attempt,
                    code=None if res.is_success else data.get("code"),
                )

        return await asyncio.gather(*(one(p) for p in planned))
