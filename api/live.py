"""Live payment status: ``GET /v1/payments/stream`` as a WebSocket.

A merchant's client connects with its API key (``Authorization: Bearer <key>``) and receives
each lifecycle event of its own payments as JSON text frames, as ``payments.lifecycle`` carries
them.  Other merchants' events never leave the server.

Design
------
Every connection reads ``payments.lifecycle`` with its own Kafka consumer (no consumer group,
every partition assigned, nothing committed) and sends only what it reads.  So:

* a slow client slows only its own consumer: Kafka is its buffer, nothing queues in this
  process beyond one fetch, and no other connection waits for it.  A client that accepts
  nothing for ``SEND_TIMEOUT_S`` is closed (1013 "try again later") and resumes from its cursor;
* resuming is exact: every frame carries a ``cursor`` (the next offset of every partition,
  base64url JSON).  Reconnecting with ``?cursor=<the last cursor seen>`` continues right after
  that frame, with nothing lost or repeated, as long as Kafka still holds it (7 days).  Without a
  cursor the stream starts at the current end: only changes from now on;
* the cost is one fetch stream per connection over the whole topic, so connections are capped
  per process (``CONNECTIONS_MAX``) and per merchant (``CONNECTIONS_PER_MERCHANT_MAX``).

Frames: first ``{"type": "subscribed", "cursor": "..."}`` once the stream is positioned (from
then on nothing is missed), then ``{"type": "payment.event", "event": {...}, "cursor": "..."}``
per event and
``{"type": "heartbeat", "cursor": "..."}`` every ``HEARTBEAT_S`` without one (keep-alive, and a
cursor that moves past other merchants' traffic).  ``?payment_id=pay_...`` narrows the stream to
one payment.  The guide is ``docs/live-status.md``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections import Counter
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from api.context import Services, bearer_token, merchant_for_api_key
from api.problems import Problem, problem_response
from models.events import DecodeError
from models.topics import PAYMENTS_LIFECYCLE

log = logging.getLogger("rizzpay.api.live")
router = APIRouter(tags=["live"])

#: Each connection holds a Kafka consumer (a few sockets and fetch buffers): cap them.
CONNECTIONS_MAX: Final = 200
#: One merchant cannot take all of a process's connections.
CONNECTIONS_PER_MERCHANT_MAX: Final = 20
#: A frame the client has not accepted in this long (seconds) closes the connection.
SEND_TIMEOUT_S: Final = 10.0
#: Seconds without an event before a heartbeat frame.
HEARTBEAT_S: Final = 15.0
#: One fetch waits at most this long (milliseconds) for new records.
FETCH_WAIT_MS: Final = 500
#: Bytes fetched per partition at most: bounds the memory one connection holds.
FETCH_PARTITION_BYTES_MAX: Final = 256 * 1024
_CURSOR_CHARS_MAX: Final = 4096

# Close codes (RFC 6455 §7.4): 1008 policy violation, 1011 server error, 1013 try again later.
CLOSE_TRY_AGAIN: Final = 1013
CLOSE_SERVER_ERROR: Final = 1011


class BadCursor(ValueError):
    """A cursor this API did not issue."""


def encode_cursor(positions: dict[int, int]) -> str:
    """The opaque cursor of ``positions`` (partition -> next offset to read)."""
    raw = orjson.dumps({str(p): o for p, o in sorted(positions.items())})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, partitions: int) -> dict[int, int]:
    """``partition -> next offset`` from a cursor; raises :class:`BadCursor`."""
    if len(cursor) > _CURSOR_CHARS_MAX:
        raise BadCursor("cursor too long")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("cursor is not one this API issued") from exc
    if not isinstance(data, dict):
        raise BadCursor("cursor is not one this API issued")
    positions: dict[int, int] = {}
    for key, value in data.items():
        if not (isinstance(key, str) and key.isdigit() and isinstance(value, int)):
            raise BadCursor("cursor is not one this API issued")
        partition = int(key)
        if partition >= partitions or value < 0 or isinstance(value, bool):
            raise BadCursor("cursor names a partition or offset that cannot exist")
        positions[partition] = value
    return positions


class LiveConnections:
    """Counts open streams per merchant, to enforce the caps."""

    def __init__(self) -> None:
        self.by_merchant: Counter[str] = Counter()

    def try_open(self, merchant_id: str) -> bool:
        if self.by_merchant.total() >= CONNECTIONS_MAX:
            return False
        if self.by_merchant[merchant_id] >= CONNECTIONS_PER_MERCHANT_MAX:
            return False
        self.by_merchant[merchant_id] += 1
        return True

    def close(self, merchant_id: str) -> None:
        self.by_merchant[merchant_id] -= 1
        if self.by_merchant[merchant_id] <= 0:
            del self.by_merchant[merchant_id]


def _connections(websocket: WebSocket) -> LiveConnections:
    state = websocket.app.state
    if not hasattr(state, "live_connections"):
        state.live_connections = LiveConnections()
    connections: LiveConnections = state.live_connections
    return connections


async def _merchant(websocket: WebSocket, services: Services) -> str:
    """The merchant named by the ``Bearer`` API key, or a 401 problem (same cache as HTTP)."""
    api_key = bearer_token(websocket.headers.get("authorization"), what="API key")
    return await merchant_for_api_key(services, api_key)


async def _deny(websocket: WebSocket, problem: Problem) -> None:
    """Refuse the handshake with a problem+json HTTP answer when the server can send one,
    else close with 1008 (policy violation)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(problem_response(problem, websocket.url.path))
    else:
        await websocket.close(code=1008, reason=problem.code)


@router.websocket("/v1/payments/stream")
async def payment_stream(
    websocket: WebSocket, cursor: str | None = None, payment_id: str | None = None
) -> None:
    services: Services = websocket.app.state.services
    try:
        merchant_id = await _merchant(websocket, services)
        positions = None if cursor is None else decode_cursor(cursor, PAYMENTS_LIFECYCLE.partitions)
    except Problem as problem:
        await _deny(websocket, problem)
        return
    except BadCursor as exc:
        await _deny(websocket, Problem(400, "invalid_cursor", "cursor not recognised", str(exc)))
        return
    connections = _connections(websocket)
    if not connections.try_open(merchant_id):
        await _deny(
            websocket,
            Problem(
                429,
                "too_many_streams",
                "Too many open payment streams",
                f"at most {CONNECTIONS_PER_MERCHANT_MAX} per merchant",
                headers={"Retry-After": "5"},
            ),
        )
        return
    try:
        await websocket.accept()
        stream = _Stream(websocket, services, merchant_id, payment_id)
        await stream.run(positions)
    finally:
        connections.close(merchant_id)


class _Stream:
    """One connection: a consumer over every partition, filtered to one merchant."""

    def __init__(
        self, websocket: WebSocket, services: Services, merchant_id: str, payment_id: str | None
    ) -> None:
        self.websocket = websocket
        self.merchant_id = merchant_id
        self.payment_id = payment_id
        self.topic = PAYMENTS_LIFECYCLE.full_name(services.settings.topic_prefix)
        self.bootstrap = services.settings.kafka_bootstrap
        self.positions: dict[int, int] = {}

    async def run(self, start: dict[int, int] | None) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            # Only when a cursor's offset has left Kafka (retention): start at the oldest kept.
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_PARTITION_BYTES_MAX,
        )
        listener = asyncio.create_task(self._until_client_leaves())
        try:
            await consumer.start()
            partitions = [
                TopicPartition(self.topic, p) for p in range(PAYMENTS_LIFECYCLE.partitions)
            ]
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                if start is not None and tp.partition in start:
                    consumer.seek(tp, start[tp.partition])
                self.positions[tp.partition] = await consumer.position(tp)
            # From here on nothing is missed: the client may act (say, create a payment).
            await self._send({"type": "subscribed"})
            pump = asyncio.create_task(self._pump(consumer))
            done, _ = await asyncio.wait({listener, pump}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                pump.result()  # a send timeout or a Kafka error surfaces here
            else:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
        except TimeoutError:
            await self._close(CLOSE_TRY_AGAIN, "slow client: resume with your last cursor")
        except KafkaError as exc:
            log.warning("live stream for %s lost Kafka: %s", self.merchant_id, exc)
            await self._close(CLOSE_TRY_AGAIN, "stream unavailable: resume with your last cursor")
        except WebSocketDisconnect:
            pass
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await listener
            await consumer.stop()

    async def _until_client_leaves(self) -> None:
        """Reads (and ignores) what the client sends, returning when it disconnects."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    async def _pump(self, consumer: AIOKafkaConsumer) -> None:
        quiet_since = time.monotonic()
        while True:
            batches = await consumer.getmany(timeout_ms=FETCH_WAIT_MS)
            # Partition by partition, each in offset order: a payment's events keep their order
            # (they share a partition); across payments there is no order to keep.
            for record in (r for records in batches.values() for r in records):
                self.positions[record.partition] = record.offset + 1
                event = self._mine(record.value)
                if event is not None:
                    await self._send({"type": "payment.event", "event": event})
                    quiet_since = time.monotonic()
            if time.monotonic() - quiet_since >= HEARTBEAT_S:
                await self._send({"type": "heartbeat"})
                quiet_since = time.monotonic()

    def _mine(self, raw: bytes | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            event = PAYMENTS_LIFECYCLE.decode(raw)
        except DecodeError:
            return None  # the webhook agent dead-letters it; a live view just skips it
        data: dict[str, Any] = event.model_dump(mode="json")
        if data["merchant_id"] != self.merchant_id:
            return None
        if self.payment_id is not None and data["payment_id"] != self.payment_id:
            return None
        return data

    async def _send(self, frame: dict[str, Any]) -> None:
        frame["cursor"] = encode_cursor(self.positions)
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await self.websocket.send_text(orjson.dumps(frame).decode())

    async def _close(self, code: int, reason: str) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.websocket.close(code=code, reason=reason)
