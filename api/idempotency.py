"""Idempotency-Key handling, the fast path in Redis.

A key names one request per merchant.  The first request claims the key with an in-flight
marker (``SET NX``); when it finishes, the marker becomes the stored response, kept for
``ttl_s``.  Same key and same body replays that response; same key and another body is 422;
a second request while the first is in flight is 409.  A request that failed (validation, a 503)
releases its claim, so a retry can succeed.

Redis is only the fast path: if it forgets a key, the payment id derived from the key still
names the same payment, and the API and the stream fall back to PostgreSQL's payment state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Claimed:
    """This request owns the key and must finish with ``complete`` or ``release``."""


@dataclass(frozen=True)
class InFlight:
    same_request: bool


@dataclass(frozen=True)
class Completed:
    same_request: bool
    response: StoredResponse


ClaimResult = Claimed | InFlight | Completed


class IdempotencyStore:
    def __init__(self, client: aioredis.Redis, *, ttl_s: int, in_flight_ttl_s: int) -> None:
        self._redis = client
        self._ttl_s = ttl_s
        self._in_flight_ttl_s = in_flight_ttl_s

    @staticmethod
    def _key(merchant_id: str, idempotency_key: str) -> str:
        return f"idem:{merchant_id}:{idempotency_key}"

    async def claim(self, merchant_id: str, idempotency_key: str, fingerprint: str) -> ClaimResult:
        key = self._key(merchant_id, idempotency_key)
        marker = orjson.dumps({"state": "in_flight", "fp": fingerprint})
        if await self._redis.set(key, marker, nx=True, ex=self._in_flight_ttl_s):
            return Claimed()
        raw = await self._redis.get(key)
        if raw is None:  # expired between SET and GET: try once more
            if await self._redis.set(key, marker, nx=True, ex=self._in_flight_ttl_s):
                return Claimed()
            raw = await self._redis.get(key)
            if raw is None:
                return InFlight(same_request=True)
        record = orjson.loads(raw)
        same = record["fp"] == fingerprint
        if record["state"] == "in_flight":
            return InFlight(same_request=same)
        return Completed(same, StoredResponse(record["status"], record["body"]))

    async def complete(
        self, merchant_id: str, idempotency_key: str, fingerprint: str, response: StoredResponse
    ) -> None:
        record = {"state": "done", "fp": fingerprint, "status": response.status}
        record["body"] = response.body
        await self._redis.set(
            self._key(merchant_id, idempotency_key), orjson.dumps(record), ex=self._ttl_s
        )

    async def release(self, merchant_id: str, idempotency_key: str) -> None:
        await self._redis.delete(self._key(merchant_id, idempotency_key))

    async def remember_accepted(self, payment_id: str, view: dict[str, Any]) -> None:
        """Keep an accepted payment's view until the worker has written its state."""
        await self._redis.set(f"accepted:{payment_id}", orjson.dumps(view), ex=self._ttl_s)

    async def accepted(self, payment_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(f"accepted:{payment_id}")
        if raw is None:
            return None
        view: dict[str, Any] = orjson.loads(raw)
        return view
