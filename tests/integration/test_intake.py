"""The intake: what a merchant sees, and what reaches Kafka."""

from __future__ import annotations

import orjson
import pytest
import redis.asyncio as aioredis

from api.idempotency import IdempotencyStore
from api.schemas import parse_payment_create
from models.events import PaymentRequested
from models.ids import payment_id_for
from models.topics import PAYMENTS_REQUESTED
from tests.conftest import Merchant
from tests.integration.kafka_helpers import read_topic, value_of
from warehouse.merchants import create_merchant

pytestmark = pytest.mark.integration

UPI = {"type": "upi", "vpa": "meera@okaxis"}
GOOD = {"amount": 2_499_00, "currency": "INR", "method": UPI}


def headers(merchant: Merchant, key: str) -> dict[str, str]:
    return {**merchant.headers, "Idempotency-Key": key, "Content-Type": "application/json"}


async def test_accepted_payment_is_on_kafka_with_its_key(api, merchant, topic_prefix) -> None:
    res = await api.post("/v1/payments", json=GOOD, headers=headers(merchant, "order-1"))
    assert res.status_code == 202
    body = res.json()
    assert body["id"] == payment_id_for(merchant.merchant_id, "order-1")
    assert (body["status"], body["amount"], body["currency"]) == ("pending", 249900, "INR")

    [msg] = read_topic(PAYMENTS_REQUESTED.full_name(topic_prefix), expect=1)
    assert msg.key() == body["id"].encode()
    event = PAYMENTS_REQUESTED.decode_as(value_of(msg), PaymentRequested)
    assert event.amount.minor == 249900

    shown = await api.get(f"/v1/payments/{body['id']}", headers=merchant.headers)
    assert shown.status_code == 200 and shown.json()["status"] == "pending"


async def test_idempotency_key_semantics(api, merchant, api_settings, topic_prefix) -> None:
    first = await api.post("/v1/payments", json=GOOD, headers=headers(merchant, "k-1"))
    again = await api.post("/v1/payments", json=GOOD, headers=headers(merchant, "k-1"))
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"

    other = await api.post(
        "/v1/payments", json={**GOOD, "amount": 100}, headers=headers(merchant, "k-1")
    )
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "idempotency_key_reused"

    # A first request still in flight: a retry must not publish a second time.
    redis = aioredis.from_url(api_settings.redis_url)
    store = IdempotencyStore(redis, ttl_s=60, in_flight_ttl_s=60)
    fingerprint = parse_payment_create(orjson.dumps(GOOD)).fingerprint()
    await store.claim(merchant.merchant_id, "k-2", fingerprint)
    busy = await api.post("/v1/payments", json=GOOD, headers=headers(merchant, "k-2"))
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_request_in_flight"
    await redis.aclose()

    # k-1 published once; k-2 not at all.
    published = read_topic(PAYMENTS_REQUESTED.full_name(topic_prefix))
    assert [m.key() for m in published] == [first.json()["id"].encode()]


BAD_BODIES = [
    (b"{oops", "invalid_json"),
    (orjson.dumps({**GOOD, "surprise": True}), "unknown_field"),
    (orjson.dumps({**GOOD, "amount": -5}), "amount_not_positive"),
    (orjson.dumps({**GOOD, "amount": 0}), "amount_not_positive"),
    (orjson.dumps({**GOOD, "currency": "ZZZ"}), "unsupported_currency"),
    (
        b'{"amount": 9223372036854775808, "currency": "INR", "method": '
        b'{"type": "upi", "vpa": "meera@okaxis"}}',
        "amount_out_of_range",
    ),
]


async def test_bad_input_is_a_problem_and_nothing_is_published(api, merchant, topic_prefix) -> None:
    for i, (raw, code) in enumerate(BAD_BODIES):
        res = await api.post("/v1/payments", content=raw, headers=headers(merchant, f"bad-{i}"))
        assert 400 <= res.status_code < 500, raw
        assert res.headers["content-type"] == "application/problem+json"
        assert res.json()["code"] == code
    # A request that failed validation stores nothing: the key is free for a good request.
    fixed = await api.post("/v1/payments", json=GOOD, headers=headers(merchant, "bad-0"))
    assert fixed.status_code == 202

    no_key = await api.post("/v1/payments", json=GOOD, headers=merchant.headers)
    assert no_key.status_code == 400 and no_key.json()["code"] == "missing_idempotency_key"
    no_auth = await api.post("/v1/payments", json=GOOD, headers={"Idempotency-Key": "x"})
    assert no_auth.status_code == 401 and no_auth.json()["code"] == "unauthenticated"
    wrong = await api.post(
        "/v1/payments",
        json=GOOD,
        headers={"Authorization": "Bearer sk_test_nope", "Idempotency-Key": "x"},
    )
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_api_key"

    published = read_topic(PAYMENTS_REQUESTED.full_name(topic_prefix))
    assert [m.key() for m in published] == [payment_id_for(merchant.merchant_id, "bad-0").encode()]


async def test_other_merchants_payment_is_not_found(api, merchant, pg) -> None:
    other_key = await create_merchant(pg, merchant.merchant_id + "_b", "Other Ltd", "29")
    res = await api.post("/v1/payments", json=GOOD, headers=headers(merchant, "mine"))
    peek = await api.get(
        f"/v1/payments/{res.json()['id']}", headers={"Authorization": f"Bearer {other_key}"}
    )
    assert peek.status_code == 404 and peek.json()["code"] == "payment_not_found"
