"""The payer's device and IP: validated at the intake, replaced by keyed tokens before anything
leaves it, carried on ``payment.requested`` into the fraud features, and sent by the load
generator — without changing the idempotency fingerprint of a body that names no device."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr, ValidationError

from api.loadgen import MerchantKey, plan_payments, plan_simulated
from api.pii import DEVICE_TOKEN_PATTERN, IP_TOKEN_PATTERN, device_tokens, pii_token
from api.problems import Problem
from api.schemas import device_tokens_of, parse_payment_create
from api.settings import ApiSettings
from deploy.stack import PII_TOKEN_KEY_VARIABLE, _ensure_pii_token_key, _read_env_file
from fraud.scoring import NO_RULES, FeatureState, Models, score_batch, transaction_for
from fraud.simulator import SimulationConfig, iter_transactions
from models.events import PaymentRequested
from models.topics import PAYMENTS_REQUESTED

KEY = b"k" * 32
OTHER_KEY = b"q" * 32
UPI = {"type": "upi", "vpa": "ravi@okicici"}
T0 = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "models" / "examples" / PAYMENTS_REQUESTED.name


def body(**overrides: Any) -> bytes:
    data: dict[str, Any] = {"amount": 49900, "currency": "INR", "method": UPI, **overrides}
    return orjson.dumps(data)


# -- the API schema ------------------------------------------------------------------------------


def test_device_is_optional_and_normalised() -> None:
    assert parse_payment_create(body()).device is None
    parsed = parse_payment_create(
        body(device={"id": "a9f3-iphone 15", "ip": "2001:0DB8:0000:0000:0000:0000:0000:0001"})
    ).device
    assert parsed is not None and (parsed.id, parsed.ip) == ("a9f3-iphone 15", "2001:db8::1")
    # One client written two ways is one key: an IPv4-mapped IPv6 address is its IPv4 address.
    mapped = parse_payment_create(body(device={"ip": "::ffff:203.0.113.7"})).device
    assert mapped is not None and (mapped.id, mapped.ip) == (None, "203.0.113.7")


@pytest.mark.parametrize(
    "device",
    [
        {"ip": "203.0.113"},
        {"ip": "203.0.113.256"},
        {"ip": "localhost"},
        {"ip": "fe80::1%eth0"},
        {"ip": "01.2.3.4"},
        {"ip": 3405803783},
        {"id": ""},
        {"id": "x" * 129},
        {"id": "tab\there"},
        {"id": 42},
        "203.0.113.7",
    ],
)
def test_bad_device_is_422_invalid_device_and_not_echoed(device: Any) -> None:
    with pytest.raises(Problem) as info:
        parse_payment_create(body(device=device))
    assert (info.value.status, info.value.code) == (422, "invalid_device")
    problem = orjson.dumps(info.value.body()).decode()
    assert all(e["field"].startswith("device") for e in info.value.body()["errors"])
    if isinstance(device, dict) and isinstance(device.get("ip"), str):
        assert device["ip"] not in problem


def test_unknown_device_field_is_unknown_field() -> None:
    with pytest.raises(Problem) as info:
        parse_payment_create(body(device={"id": "abc", "imei": "356938035643809"}))
    assert info.value.code == "unknown_field"
    assert "356938035643809" not in orjson.dumps(info.value.body()).decode()


# -- tokens --------------------------------------------------------------------------------------


def test_tokens_are_deterministic_keyed_and_shaped() -> None:
    tokens = device_tokens(KEY, "a9f3-iphone", "203.0.113.7")
    assert tokens == device_tokens(KEY, "a9f3-iphone", "203.0.113.7")
    assert re.fullmatch(DEVICE_TOKEN_PATTERN, tokens.device_id or "")
    assert re.fullmatch(IP_TOKEN_PATTERN, tokens.ip or "")
    assert tokens.device_id != device_tokens(KEY, "a9f3-iphonf", None).device_id
    assert tokens.ip != device_tokens(KEY, None, "203.0.113.8").ip
    # Another key: nothing in common (this is also what a key rotation does to the features).
    rotated = device_tokens(OTHER_KEY, "a9f3-iphone", "203.0.113.7")
    assert rotated.device_id != tokens.device_id and rotated.ip != tokens.ip
    # A device id that looks like an IP does not share the IP's token.
    assert pii_token(KEY, "dev", "203.0.113.7")[4:] != pii_token(KEY, "ip", "203.0.113.7")[3:]
    # Only the keyed hash leaves: not the value, nor an unkeyed SHA-256 of it.
    unkeyed = hashlib.sha256(b"203.0.113.7").hexdigest()
    assert "203.0.113.7" not in str(tokens) and unkeyed[:32] not in str(tokens)


def test_equal_addresses_written_differently_get_one_token() -> None:
    settings_key = SecretStr(KEY.decode())
    forms = ["2001:db8::1", "2001:DB8:0:0:0:0:0:1", "2001:0db8:0000:0000:0000:0000:0000:0001"]
    tokens = {
        device_tokens_of(parse_payment_create(body(device={"ip": ip})), settings_key)
        for ip in forms
    }
    assert len(tokens) == 1


def test_no_key_refuses_a_device_but_not_a_payment_without_one() -> None:
    assert device_tokens_of(parse_payment_create(body()), None) is None
    assert device_tokens_of(parse_payment_create(body(device={})), None) is None
    with pytest.raises(Problem) as info:
        device_tokens_of(parse_payment_create(body(device={"ip": "203.0.113.7"})), None)
    assert (info.value.status, info.value.code) == (503, "device_tokens_unavailable")


def test_settings_refuse_a_short_key() -> None:
    with pytest.raises(ValidationError):
        ApiSettings(pii_token_key=SecretStr("too-short"))
    assert ApiSettings(pii_token_key=SecretStr("x" * 32)).pii_token_key is not None


def test_stack_generates_the_key_once(tmp_path: Path) -> None:
    env_file = tmp_path / "home" / "stack.env"
    _ensure_pii_token_key(env_file)
    first = _read_env_file(env_file)[PII_TOKEN_KEY_VARIABLE]
    assert len(first) >= 32 and env_file.stat().st_mode & 0o077 == 0
    _ensure_pii_token_key(env_file)
    assert _read_env_file(env_file)[PII_TOKEN_KEY_VARIABLE] == first


# -- the idempotency fingerprint -----------------------------------------------------------------


def test_fingerprint_without_device_is_the_canonical_json_as_before() -> None:
    # The canonical form of the fields a create body had before `device` existed, sorted keys,
    # defaults filled in: what fingerprints stored in Redis and PostgreSQL were computed over.
    canonical = {
        "amount": 49900,
        "currency": "INR",
        "method": {"type": "upi", "vpa": "ravi@okicici", "flow": "collect"},
        "customer_id": "cust_1",
        "description": None,
        "capture": "automatic",
    }
    expected = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert parse_payment_create(body(customer_id="cust_1")).fingerprint() == expected
    assert parse_payment_create(body(customer_id="cust_1", device={})).fingerprint() == expected
    assert parse_payment_create(body(customer_id="cust_1", device=None)).fingerprint() == expected


def test_fingerprint_with_device_covers_its_tokens_never_its_raw_values() -> None:
    with_ip = parse_payment_create(body(device={"id": "a9f3", "ip": "203.0.113.7"}))
    with pytest.raises(ValueError, match="device tokens"):
        with_ip.fingerprint()
    tokens = device_tokens(KEY, "a9f3", "203.0.113.7")
    fingerprint = with_ip.fingerprint(tokens)
    assert fingerprint != parse_payment_create(body()).fingerprint()
    # Same key, another IP: another request (same Idempotency-Key → 422, as for any field).
    other = parse_payment_create(body(device={"id": "a9f3", "ip": "203.0.113.8"}))
    assert other.fingerprint(device_tokens(KEY, "a9f3", "203.0.113.8")) != fingerprint
    # What was hashed: the tokens, so no raw value can be tested against the fingerprint.
    data = with_ip.model_dump(mode="json", exclude={"device"})
    data["device"] = {"id": tokens.device_id, "ip": tokens.ip}
    expected = hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert fingerprint == expected


# -- the event and the fraud features ------------------------------------------------------------


def request(i: int, customer: str, device: str | None, ip: str | None) -> PaymentRequested:
    tokens = device_tokens(KEY, device, ip)
    return PaymentRequested(
        event_id=f"evt_{i:020d}",
        payment_id=f"pay_{i:026d}",
        merchant_id="kirana_mart",
        occurred_at=T0 + dt.timedelta(minutes=i),
        request_fingerprint="a" * 64,
        amount={"minor": 500_00, "currency": "INR"},
        method=UPI,
        customer_id=customer,
        device_id=tokens.device_id,
        ip=tokens.ip,
    )


def test_event_takes_tokens_only_and_old_messages_still_decode() -> None:
    with pytest.raises(ValidationError):
        PaymentRequested.model_validate(
            {**request(1, "c", None, None).model_dump(), "ip": "203.0.113.7"}
        )
    with pytest.raises(ValidationError):
        PaymentRequested.model_validate(
            {**request(1, "c", None, None).model_dump(), "device_id": "a9f3-iphone"}
        )
    old = PAYMENTS_REQUESTED.decode((EXAMPLE / "payment.requested.v1.json").read_bytes())
    assert isinstance(old, PaymentRequested) and (old.device_id, old.ip) == (None, None)
    new = PAYMENTS_REQUESTED.decode((EXAMPLE / "payment.requested.v1.device.json").read_bytes())
    assert isinstance(new, PaymentRequested) and new.device_id and new.ip


def test_transaction_for_carries_the_tokens_into_device_and_ip_features() -> None:
    first = request(1, "cust_a", "shared-phone", "203.0.113.7")
    second = request(2, "cust_b", "shared-phone", "203.0.113.7")
    again = request(3, "cust_a", "shared-phone", "198.51.100.9")
    transaction = transaction_for(second)
    assert (transaction["device_id"], transaction["ip"]) == (second.device_id, second.ip)
    state = FeatureState()
    scored = score_batch(
        state,
        [(transaction_for(r), r.occurred_at) for r in (first, second, again)],
        NO_RULES,
        Models(),
    )
    f1, f2, f3 = (s.features for s in scored)
    assert (f1["device_nb_tx_1h"], f2["device_nb_tx_1h"], f3["device_nb_tx_1h"]) == (1, 2, 3)
    assert (f1["ip_nb_tx_1h"], f2["ip_nb_tx_1h"], f3["ip_nb_tx_1h"]) == (1, 2, 1)
    # Novelty: new to cust_b on its first payment; cust_a has used this device before.
    assert (f2["customer_device_nb_tx_30d"], f3["customer_device_nb_tx_30d"]) == (1, 2)
    assert f3["customer_ip_nb_tx_30d"] == 1
    # Without a device (an old message) the features are 0, as before.
    [bare] = score_batch(
        FeatureState(),
        [(transaction_for(request(4, "cust_c", None, None)), T0)],
        NO_RULES,
        Models(),
    )
    assert bare.features["device_nb_tx_1h"] == 0 and bare.features["ip_nb_tx_1h"] == 0


# -- the load generator --------------------------------------------------------------------------

MERCHANTS = [MerchantKey("m_big", "k1"), MerchantKey("m_small", "k2")]


def test_plan_payments_sends_each_customers_devices() -> None:
    planned = plan_payments(MERCHANTS, 3000, seed=7, run_id="r")
    assert planned == plan_payments(MERCHANTS, 3000, seed=7, run_id="r")
    devices: dict[str, list[str]] = {}
    for p in planned:
        parsed = parse_payment_create(orjson.dumps(p.body))  # the API accepts every one
        assert parsed.device is not None and parsed.device.id and parsed.device.ip
        devices.setdefault(p.body["customer_id"], []).append(parsed.device.id)
    # Customers come back on their own few devices (primary, secondary, a rare new one), so a
    # returning customer's device is mostly one seen before; other customers' are not shared.
    returning = [d for d in devices.values() if len(d) >= 2]
    assert len(returning) >= 20
    reused = sum(len(set(d)) < len(d) for d in returning)
    assert reused >= len(returning) // 2
    owners: dict[str, set[str]] = {}
    for customer, ids in devices.items():
        for device_id in ids:
            owners.setdefault(device_id, set()).add(customer)
    assert all(len(o) == 1 for o in owners.values())


def test_plan_simulated_replays_the_simulators_devices_and_ips() -> None:
    config = SimulationConfig(n_customers=300, n_terminals=600, n_days=30, seed=3)
    transactions = list(iter_transactions(config))
    planned = plan_simulated(MERCHANTS, transactions, run_id="sim")
    assert len(planned) == len(transactions)
    for tx, p in zip(transactions, planned, strict=True):
        parsed = parse_payment_create(orjson.dumps(p.body))
        assert parsed.device is not None
        assert (parsed.device.id, parsed.device.ip) == (tx.device_id, tx.ip)
        assert parsed.amount == tx.amount_minor and parsed.customer_id == f"cust_{tx.customer_id}"
        assert p.merchant == MERCHANTS[tx.terminal_id % len(MERCHANTS)]
    # The fraudsters' devices the simulator plants reach the API: one device, several victims.
    victims: dict[str, set[int]] = {}
    for tx in transactions:
        if tx.fraud_scenario == 3 and tx.device_id.startswith("x-"):
            victims.setdefault(tx.device_id, set()).add(tx.customer_id)
    assert victims and any(len(v) > 1 for v in victims.values())
