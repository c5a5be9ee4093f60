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
from fastapi.responses import Response

from api.problems import Problem
from models.ids import IDEMPOTENCY_KEY_LEN_MAX


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


def check_idempotency_key(key: str | None) -> str:
    """The request's Idempotency-Key, or a 400 problem when it is missing or malformed."""
    if key is None or not key.strip():
        raise Problem(400, "missing_idempotency_key", "Idempotency-Key header required")
    if len(key) > IDEMPOTENCY_KEY_LEN_MAX or not key.isprintable():
        raise Problem(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key is invalid",
            f"at most {IDEMPOTENCY_KEY_LEN_MAX} printable characters",
        )
    return key


def stored_json(stored: StoredResponse, *, replayed: bool) -> Response:
    """The HTTP answer of a stored response; a replay says so in ``Idempotent-Replayed``."""
    return Response(
        orjson.dumps(stored.body),
        status_code=stored.status,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if replayed else {},
    )


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
        self,
        merchant_id: str,
        idempotency_key: str,
        fingerprint: str,
        response: StoredResponse,
        *,
        accepted_payment_id: str | None = None,
    ) -> None:
        """Store the response for replays.  With ``accepted_payment_id``, also remember the
        accepted payment's view until the worker has written its state (one round trip)."""
        record = {"state": "done", "fp": fingerprint, "status": response.status}
        record["body"] = response.body
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key(merchant_id, idempotency_key), orjson.dumps(record), ex=self._ttl_s)
            if accepted_payment_id is not None:
                pipe.set(
                    f"accepted:{accepted_payment_id}", orjson.dumps(response.body), ex=self._ttl_s
                )
            await pipe.execute()

    async def release(self, merchant_id: str, idempotency_key: str) -> None:
        await self._redis.delete(self._key(merchant_id, idempotency_key))

    async def accepted(self, payment_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(f"accepted:{payment_id}")
        if raw is None:
            return None
        view: dict[str, Any] = orjson.loads(raw)
        return view
