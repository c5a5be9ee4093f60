"""What every route shares: the process's services and the merchant authentication."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg
from fastapi import Request

from api.idempotency import IdempotencyStore
from api.problems import Problem
from api.publisher import KafkaPublisher
from api.settings import ApiSettings
from warehouse.merchants import merchant_for_key


@dataclass
class Services:
    settings: ApiSettings
    pool: asyncpg.Pool
    idempotency: IdempotencyStore
    publisher: KafkaPublisher
    requested_topic: str
    # api key -> (merchant_id, cached until monotonic seconds)
    key_cache: dict[str, tuple[str, float]] = field(default_factory=dict)


AUTH_HEADER = {
    "name": "Authorization",
    "in": "header",
    "required": True,
    "schema": {"type": "string"},
    "description": "Bearer <merchant API key>",
}


async def authenticate(request: Request) -> str:
    """The merchant named by a ``Bearer`` API key, or a 401 problem."""
    services: Services = request.app.state.services
    authorization = request.headers.get("authorization")
    if not authorization or not authorization.startswith("Bearer "):
        raise Problem(
            401,
            "unauthenticated",
            "API key required",
            "Send 'Authorization: Bearer <api key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    api_key = authorization.removeprefix("Bearer ").strip()
    now = time.monotonic()
    cached = services.key_cache.get(api_key)
    if cached and cached[1] > now:
        return cached[0]
    merchant_id = await merchant_for_key(services.pool, api_key)
    if merchant_id is None:
        raise Problem(
            401, "invalid_api_key", "API key not recognised", headers={"WWW-Authenticate": "Bearer"}
        )
    services.key_cache[api_key] = (merchant_id, now + services.settings.api_key_cache_ttl_s)
    return merchant_id
