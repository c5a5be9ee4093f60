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


def bearer_token(authorization: str | None, *, what: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or a 401 problem naming
    ``what`` is expected (``"API key"``, ``"analyst token"``)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Problem(
            401,
            "unauthenticated",
            f"{what[0].upper()}{what[1:]} required",
            f"Send 'Authorization: Bearer <{what}>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return authorization.removeprefix("Bearer ").strip()


async def merchant_for_api_key(services: Services, api_key: str) -> str:
    """The merchant owning ``api_key`` (cached for ``api_key_cache_ttl_s``), or a 401 problem."""
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


async def authenticate(request: Request) -> str:
    """The merchant named by a ``Bearer`` API key, or a 401 problem."""
    services: Services = request.app.state.services
    api_key = bearer_token(request.headers.get("authorization"), what="API key")
    return await merchant_for_api_key(services, api_key)
