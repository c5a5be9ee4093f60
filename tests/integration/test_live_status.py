"""Live payment status over a real WebSocket: the API served by uvicorn on 127.0.0.1, payments
through a real worker, Kafka carrying the lifecycle events.  Each merchant sees only its own
payments, and a reconnect with the last cursor resumes without loss or repeats.  (A client that
stops reading: tests/unit/test_live_stream.py.)"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from api.app import create_app
from api.settings import ApiSettings
from tests.conftest import Merchant, WorkerProcess, wait_for
from warehouse.merchants import create_merchant

pytestmark = pytest.mark.integration

CARD = {"type": "card", "token": "tok_visa_0042", "bin": "411111", "last4": "4242"}
FRAME_WAIT_S = 60.0


@pytest.fixture
def server(api_settings: ApiSettings) -> Iterator[str]:
    """The real API app served by uvicorn in a thread; yields its ws:// base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(api_settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.02)
    yield f"ws://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)
    sock.close()


@pytest.fixture
async def other_merchant(pg: asyncpg.Pool) -> Merchant:
    # A fresh id: idempotency keys live in the shared Redis, scoped by merchant.
    merchant_id = f"m_{uuid.uuid4().hex[:10]}"
    key = await create_merchant(pg, merchant_id, "Other Live Traders", "29")
    return Merchant(merchant_id, key)


async def open_stream(
    base: str, merchant: Merchant, query: str = "", **kwargs: Any
) -> ClientConnection:
    """Connect and wait for the ``subscribed`` frame: from then on no event is missed."""
    conn = await connect(
        f"{base}/v1/payments/stream{query}", additional_headers=merchant.headers, **kwargs
    )
    first = orjson.loads(await asyncio.wait_for(conn.recv(), FRAME_WAIT_S))
    assert first["type"] == "subscribed" and first["cursor"], first
    return conn


async def next_frame(conn: ClientConnection) -> dict[str, Any]:
    """The next frame that is not a heartbeat (heartbeats keep a quiet stream open)."""
    async with asyncio.timeout(FRAME_WAIT_S):
        while True:
            frame: dict[str, Any] = orjson.loads(await conn.recv())
            if frame["type"] != "heartbeat":
                return frame


async def frames_for(conn: ClientConnection, payment_id: str, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        frame = await next_frame(conn)
        assert frame["event"]["payment_id"] == payment_id, frame
        got.append(frame)
    return got


async def pay(
    api: httpx.AsyncClient, merchant: Merchant, key: str, capture: str = "automatic"
) -> str:
    created = await api.post(
        "/v1/payments",
        json={"amount": 1_234_00, "currency": "INR", "method": CARD, "capture": capture},
        headers={**merchant.headers, "Idempotency-Key": key},
    )
    assert created.status_code == 202, created.text
    payment_id: str = created.json()["id"]
    return payment_id


@pytest.fixture
async def streams_ready(server: str, worker: WorkerProcess) -> AsyncIterator[str]:
    yield server


async def test_each_merchant_sees_only_its_own_payments_as_they_happen(
    api: httpx.AsyncClient,
    merchant: Merchant,
    other_merchant: Merchant,
    streams_ready: str,
    worker: WorkerProcess,
) -> None:
    mine = await open_stream(streams_ready, merchant)
    theirs = await open_stream(streams_ready, other_merchant)
    their_payment = await pay(api, other_merchant, "theirs-1")
    my_payment = await pay(api, merchant, "mine-1")

    got = await frames_for(mine, my_payment, 2)
    assert [f["event"]["event_type"] for f in got] == ["payment.authorized", "payment.captured"]
    assert all(f["event"]["merchant_id"] == merchant.merchant_id for f in got)
    assert all(f["cursor"] for f in got)
    seen = await frames_for(theirs, their_payment, 2)
    assert [f["event"]["merchant_id"] for f in seen] == [other_merchant.merchant_id] * 2
    await mine.close()
    await theirs.close()


async def test_reconnecting_with_the_last_cursor_resumes_exactly(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    streams_ready: str,
    worker: WorkerProcess,
) -> None:
    conn = await open_stream(streams_ready, merchant)
    pid = await pay(api, merchant, "resume-1", capture="manual")
    (authorized,) = await frames_for(conn, pid, 1)
    assert authorized["event"]["event_type"] == "payment.authorized"
    await conn.close()

    # While disconnected, the payment is captured and partly refunded.
    headers = {**merchant.headers, "Idempotency-Key": "resume-cap"}
    assert (await api.post(f"/v1/payments/{pid}/capture", json={}, headers=headers)).is_success

    async def captured() -> bool:
        status = await pg.fetchval("SELECT status FROM payments WHERE payment_id = $1", pid)
        return bool(status == "captured")

    await wait_for(captured, timeout_s=60, what="the capture")
    headers["Idempotency-Key"] = "resume-rfd"
    refund = await api.post(f"/v1/payments/{pid}/refunds", json={"amount": 100}, headers=headers)
    assert refund.is_success

    back = await open_stream(streams_ready, merchant, f"?cursor={authorized['cursor']}")
    missed = await frames_for(back, pid, 2)
    assert [f["event"]["event_type"] for f in missed] == ["payment.captured", "payment.refunded"]
    await back.close()

    # The cursor of the last frame resumes after it: nothing is sent twice.
    again = await open_stream(streams_ready, merchant, f"?cursor={missed[-1]['cursor']}")
    pid2 = await pay(api, merchant, "resume-2")
    (first,) = await frames_for(again, pid2, 1)
    assert first["event"]["event_type"] == "payment.authorized"
    await again.close()


async def test_a_stream_needs_a_valid_api_key_and_cursor(
    streams_ready: str, merchant: Merchant
) -> None:
    with pytest.raises(InvalidStatus) as missing:
        await connect(f"{streams_ready}/v1/payments/stream")
    assert missing.value.response.status_code == 401
    bad = Merchant("nobody", "rzp_test_not_a_key")
    with pytest.raises(InvalidStatus) as unknown:
        await connect(f"{streams_ready}/v1/payments/stream", additional_headers=bad.headers)
    assert unknown.value.response.status_code == 401
    assert orjson.loads(unknown.value.response.body)["code"] == "invalid_api_key"
    with pytest.raises(InvalidStatus) as cursor:
        await open_stream(streams_ready, merchant, "?cursor=bm90LWEtY3Vyc29y")
    assert cursor.value.response.status_code == 400
