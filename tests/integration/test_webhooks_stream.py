"""Merchant webhooks end to end: the merchant API registers an endpoint, payments go through the
API and a real worker, and a real HTTP receiver on 127.0.0.1 gets every lifecycle event signed
and, per payment, in order; failures are retried, a 410 dead-letters, and the merchant replays.

The worker runs with the development setting ``allow_loopback`` and the retry schedule
compressed 3600-fold (72 h in 72 s), so retries take moments.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request, Response

from api.settings import ApiSettings
from models.config import ServiceEndpoints
from streams.webhooks import WebhookVerificationError, verify
from streams.webhooks.settings import WebhookSettings
from tests.conftest import Merchant, WorkerProcess, wait_for
from tests.local_server import serving

pytestmark = pytest.mark.integration

CARD = {"type": "card", "token": "tok_visa_0042", "bin": "411111", "last4": "4242"}
DEV_WEBHOOKS = WebhookSettings(
    allow_loopback=True, poll_interval_s=0.2, schedule_scale=1 / 3600, timeout_s=5
)


@dataclass
class Hit:
    name: str
    event_id: str
    event_type: str
    payment_id: str
    signatures: int
    verified: bool


@dataclass
class Receiver:
    """A merchant's HTTP server: verifies each request with the secrets it was given."""

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    secrets: dict[str, list[str]] = field(default_factory=dict)
    # name -> statuses to answer, one per request, then 200
    script: dict[str, list[int]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    def delivered(self, name: str, payment_id: str) -> list[str]:
        """Event types the endpoint accepted (answered 2xx) for the payment, in arrival order."""
        return [
            h.event_type
            for h in self.hits
            if h.name == name and h.payment_id == payment_id and h.verified
        ]


def _receiver_app(state: Receiver) -> FastAPI:
    app = FastAPI()

    @app.post("/hooks/{name}")
    async def hook(name: str, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            verify(state.secrets.get(name, []), headers, body, now=int(time.time()))
            verified = True
        except (WebhookVerificationError, ValueError):
            verified = False
        data = json.loads(body)
        script = state.script.get(name) or []
        status = script.pop(0) if script else (200 if verified else 401)
        hit = Hit(
            name,
            headers.get("webhook-id", ""),
            data["type"],
            data["data"]["payment_id"],
            len(headers.get("webhook-signature", "").split()),
            verified and 200 <= status < 300,
        )
        state.hits.append(hit)
        return Response(status_code=status)

    return app


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    with serving(_receiver_app(state)) as port:
        state.port = port
        yield state


@pytest.fixture
def api_settings(endpoints: ServiceEndpoints, pg_dsn: str, topic_prefix: str) -> ApiSettings:
    return ApiSettings(
        pg_dsn=pg_dsn, topic_prefix=topic_prefix, publish_timeout_ms=3000, webhooks=DEV_WEBHOOKS
    )


@pytest.fixture
def worker(pg_dsn: str, topic_prefix: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIZZPAY_")}
    env.update(
        RIZZPAY_PG_DSN=pg_dsn,
        RIZZPAY_TOPIC_PREFIX=topic_prefix,
        RIZZPAY_KAFKA_BOOTSTRAP=ServiceEndpoints().kafka_bootstrap,
        RIZZPAY_LOG_LEVEL="warning",
        RIZZPAY_WEBHOOKS=DEV_WEBHOOKS.model_dump_json(),
    )
    process = WorkerProcess(env, tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


async def post(
    api: httpx.AsyncClient, merchant: Merchant, path: str, body: dict[str, Any], key: str = ""
) -> httpx.Response:
    headers = {**merchant.headers, **({"Idempotency-Key": key} if key else {})}
    return await api.post(path, json=body, headers=headers)


async def register(
    api: httpx.AsyncClient,
    merchant: Merchant,
    receiver: Receiver,
    name: str,
    event_types: list[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": receiver.url(name)}
    if event_types is not None:
        body["event_types"] = event_types
    created = await post(api, merchant, "/v1/webhook_endpoints", body)
    assert created.status_code == 201, created.text
    endpoint: dict[str, Any] = created.json()
    receiver.secrets[name] = [endpoint["secret"]]
    return endpoint


async def pay(api: httpx.AsyncClient, merchant: Merchant, key: str, amount: int = 5_000_00) -> str:
    created = await post(
        api,
        merchant,
        "/v1/payments",
        {"amount": amount, "currency": "INR", "method": CARD},
        key=key,
    )
    assert created.status_code == 202, created.text
    payment_id: str = created.json()["id"]
    return payment_id


async def refund_when_captured(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool, payment_id: str, key: str
) -> None:
    async def captured() -> bool:
        status = await pg.fetchval("SELECT status FROM payments WHERE payment_id = $1", payment_id)
        return bool(status == "captured")

    await wait_for(captured, timeout_s=60, what=f"{payment_id} captured")
    refund = await post(
        api, merchant, f"/v1/payments/{payment_id}/refunds", {"amount": 1_000_00}, key=key
    )
    assert refund.status_code == 202, refund.text


async def delivered(
    receiver: Receiver, name: str, payment_id: str, count: int, worker: WorkerProcess
) -> list[str]:
    async def probe() -> list[str] | None:
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
        got = receiver.delivered(name, payment_id)
        return got if len(got) >= count else None

    result: list[str] = await wait_for(
        probe, timeout_s=90, what=f"{count} deliveries of {payment_id} to {name}"
    )
    return result


async def test_a_payment_reaches_the_merchant_signed_and_in_order(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    worker: WorkerProcess,
    receiver: Receiver,
) -> None:
    everything = await register(api, merchant, receiver, "all-a")
    refunds_only = await register(api, merchant, receiver, "refunds-a", ["payment.refunded"])
    assert everything["event_types"] == ["*"] and everything["secret"].startswith("whsec_")

    pid = await pay(api, merchant, "order-a1")
    await refund_when_captured(api, merchant, pg, pid, "refund-a1")

    got = await delivered(receiver, "all-a", pid, 3, worker)
    assert got == ["payment.authorized", "payment.captured", "payment.refunded"]
    assert await delivered(receiver, "refunds-a", pid, 1, worker) == ["payment.refunded"]
    # Each event once per endpoint (the outbox dedupes by event id), every request verified.
    mine = [h for h in receiver.hits if h.payment_id == pid]
    assert all(h.verified for h in mine)
    assert len({(h.name, h.event_id) for h in mine}) == len(mine) == 4

    listed = (await api.get("/v1/webhook_endpoints", headers=merchant.headers)).json()["data"]
    assert {e["id"] for e in listed} == {everything["id"], refunds_only["id"]}
    assert all("secret" not in e for e in listed)


async def test_failures_are_retried_and_later_events_wait_for_earlier_ones(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    worker: WorkerProcess,
    receiver: Receiver,
) -> None:
    # The first two requests fail (a 503, then a 500); the schedule retries them.
    receiver.script["flaky-b"] = [503, 500]
    await register(api, merchant, receiver, "flaky-b")
    pid = await pay(api, merchant, "order-b1")
    got = await delivered(receiver, "flaky-b", pid, 2, worker)
    assert got == ["payment.authorized", "payment.captured"]
    arrivals = [h.event_type for h in receiver.hits if h.name == "flaky-b"]
    # The authorization was tried three times before the capture was first sent.
    assert arrivals[:4] == ["payment.authorized"] * 3 + ["payment.captured"]


async def test_410_dead_letters_and_the_merchant_replays_them(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    worker: WorkerProcess,
    receiver: Receiver,
) -> None:
    receiver.script["gone-c"] = [410]
    endpoint = await register(api, merchant, receiver, "gone-c")
    created = await post(
        api,
        merchant,
        "/v1/payments",
        {"amount": 2_500_00, "currency": "INR", "method": CARD, "capture": "manual"},
        key="order-c1",
    )
    pid = created.json()["id"]

    async def dead_letters() -> list[dict[str, Any]] | None:
        listed = await api.get("/v1/webhook_dead_letters", headers=merchant.headers)
        data: list[dict[str, Any]] = listed.json()["data"]
        return data or None

    dead = await wait_for(dead_letters, timeout_s=90, what="a dead letter")
    assert [(d["event_type"], d["dead_reason"], d["last_status"]) for d in dead] == [
        ("payment.authorized", "endpoint_gone", 410)
    ]
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    shown = (await api.get(path, headers=merchant.headers)).json()
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "gone")

    refused = await post(api, merchant, f"{path}/replay_dead_letters", {})
    assert refused.status_code == 409 and refused.json()["code"] == "webhook_endpoint_disabled"
    enabled = await api.patch(path, json={"enabled": True}, headers=merchant.headers)
    assert enabled.status_code == 200 and enabled.json()["enabled"] is True
    replayed = await post(api, merchant, f"{path}/replay_dead_letters", {})
    assert replayed.json()["replayed"] == 1
    again = await post(api, merchant, f"/v1/webhook_dead_letters/{dead[0]['id']}/replay", {})
    assert again.status_code == 200 and again.json()["replayed"] is False
    assert await delivered(receiver, "gone-c", pid, 1, worker) == ["payment.authorized"]

    captured = await post(api, merchant, f"/v1/payments/{pid}/capture", {}, key="cap-c1")
    assert captured.status_code == 202, captured.text
    got = await delivered(receiver, "gone-c", pid, 2, worker)
    assert got == ["payment.authorized", "payment.captured"]
    listed = await api.get("/v1/webhook_dead_letters", headers=merchant.headers)
    assert listed.json()["data"] == []


async def test_rotation_signs_with_both_secrets_until_the_overlap_ends(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    worker: WorkerProcess,
    receiver: Receiver,
) -> None:
    endpoint = await register(api, merchant, receiver, "rotate-d")
    old_secret = endpoint["secret"]
    rotated = await post(api, merchant, f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", {})
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret and rotated.json()["previous_secret_expires_at"]
    # A receiver that already switched to the new secret and one still on the old both verify.
    receiver.secrets["rotate-d"] = [new_secret]
    pid = await pay(api, merchant, "order-d1")
    await delivered(receiver, "rotate-d", pid, 2, worker)
    assert {h.signatures for h in receiver.hits if h.payment_id == pid} == {2}
    receiver.secrets["rotate-d"] = [old_secret]
    pid2 = await pay(api, merchant, "order-d2")
    await delivered(receiver, "rotate-d", pid2, 2, worker)


async def test_endpoint_rules_and_merchant_isolation(
    api: httpx.AsyncClient, merchant: Merchant, pg: asyncpg.Pool, receiver: Receiver
) -> None:
    private = await post(api, merchant, "/v1/webhook_endpoints", {"url": "http://10.0.0.7/h"})
    assert private.status_code == 422 and private.json()["code"] == "webhook_url_not_allowed"
    metadata = await post(
        api, merchant, "/v1/webhook_endpoints", {"url": "http://169.254.169.254/latest"}
    )
    assert metadata.status_code == 422 and metadata.json()["code"] == "webhook_url_not_allowed"
    unknown = await post(
        api,
        merchant,
        "/v1/webhook_endpoints",
        {"url": receiver.url("x"), "event_types": ["payment.teleported"]},
    )
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_event_type"
    extra = await post(api, merchant, "/v1/webhook_endpoints", {"url": receiver.url("x"), "a": 1})
    assert extra.status_code == 422 and extra.json()["code"] == "unknown_field"

    endpoint = await register(api, merchant, receiver, "iso-e", ["payment.captured"])
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    changed = await api.patch(
        path,
        json={"event_types": ["payment.refunded", "payment.captured"]},
        headers=merchant.headers,
    )
    assert changed.json()["event_types"] == ["payment.captured", "payment.refunded"]

    from warehouse.merchants import create_merchant  # noqa: PLC0415

    other_key = await create_merchant(pg, f"m_{uuid.uuid4().hex[:10]}", "Other Traders", "29")
    other = {"Authorization": f"Bearer {other_key}"}
    assert (await api.get(path, headers=other)).status_code == 404
    assert (await api.delete(path, headers=other)).status_code == 404
    assert (await api.get("/v1/webhook_endpoints", headers=other)).json()["data"] == []

    assert (await api.delete(path, headers=merchant.headers)).status_code == 204
    gone = await api.get(path, headers=merchant.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "webhook_endpoint_not_found"
    assert (await api.delete(path, headers=merchant.headers)).status_code == 404
