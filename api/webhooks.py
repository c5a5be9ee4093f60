"""Merchant webhook API: endpoints, secret rotation, dead letters and replay.

Thin routes over :mod:`streams.webhooks.store`.  A secret is shown when the endpoint is created
and when it is rotated, never in lists.  Every route answers only for the authenticated
merchant's own endpoints and deliveries; another merchant's look like missing ones (404).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.context import AUTH_HEADER, Services, authenticate
from api.problems import Problem
from api.schemas import parse_body
from streams.webhooks.address_guard import IPAddress, Resolver, UnsafeWebhookUrl, system_resolver
from streams.webhooks.signing import InvalidWebhookSecret
from streams.webhooks.store import (
    Delivery,
    DeliveryNotFound,
    Endpoint,
    EndpointDisabled,
    EndpointNotFound,
    UnknownEventType,
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    get_endpoint,
    list_dead_letters,
    list_endpoints,
    replay,
    rotate_secret,
    update_endpoint,
)

router = APIRouter(tags=["webhooks"])

_AUTH: Final = {"parameters": [AUTH_HEADER]}
#: A merchant needs a handful of endpoints (one per system that listens); 20 bounds the fan-out
#: of every event.
ENDPOINTS_PER_MERCHANT_MAX: Final = 20
DEAD_LETTERS_PAGE_MAX: Final = 1000
#: ``disabled_reason`` of an endpoint the merchant disabled.
MERCHANT_REASON: Final = "merchant"
_URL_MAX_CHARS: Final = 2048


class EndpointCreate(BaseModel):
    """``POST /v1/webhook_endpoints``: ``event_types`` lists lifecycle event types, or ``["*"]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str = Field(min_length=1, max_length=_URL_MAX_CHARS)
    event_types: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=64)


class EndpointUpdate(BaseModel):
    """``PATCH /v1/webhook_endpoints/{id}``: any of URL, filter, enabled."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str | None = Field(default=None, min_length=1, max_length=_URL_MAX_CHARS)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=64)
    enabled: bool | None = None


class SecretRotation(BaseModel):
    """``POST /v1/webhook_endpoints/{id}/rotate_secret``: how long (seconds, at most 7 days)
    the old secret keeps signing; default the configured overlap (24 h)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    overlap_s: int | None = Field(default=None, ge=0, le=7 * 86_400)


def endpoint_view(endpoint: Endpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """The JSON a merchant sees of an endpoint; the secret only when asked (create, rotate)."""
    view: dict[str, Any] = {
        "id": endpoint.endpoint_id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at.isoformat(),
        "previous_secret_expires_at": _iso(endpoint.previous_secret_expires_at),
    }
    if with_secret:
        view["secret"] = endpoint.secret
    return view


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """A dead letter as the merchant sees it: what, where, how it failed (and the body)."""
    return {
        "id": delivery.delivery_id,
        "object": "webhook_delivery",
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "payment_id": delivery.payment_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "dead_reason": delivery.dead_reason,
        "dead_at": _iso(delivery.dead_at),
        "replays": delivery.replays,
        "body": delivery.body.decode(),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def _resolver_for(url: str) -> Resolver:
    """A resolver holding ``url``'s host's addresses, looked up off the event loop (DNS is
    blocking).  A name that does not resolve gives no addresses: ``check_url`` refuses it."""
    host = urlsplit(url).hostname or ""
    try:
        found: Sequence[IPAddress] = await asyncio.to_thread(system_resolver, host)
    except (OSError, UnicodeError, ValueError):
        found = []

    def resolve(name: str) -> Sequence[IPAddress]:
        return found if name == host else system_resolver(name)

    return resolve


def _bad_url(exc: UnsafeWebhookUrl) -> Problem:
    return Problem(
        422,
        "webhook_url_not_allowed",
        "Webhook URL not allowed",
        f"{exc.code}: {exc.message}",
    )


def _not_found(endpoint_id: str) -> Problem:
    return Problem(404, "webhook_endpoint_not_found", "No such webhook endpoint", endpoint_id)


def _unknown_types(exc: UnknownEventType) -> Problem:
    return Problem(422, "unknown_event_type", "Unknown event type", str(exc))


@router.post("/v1/webhook_endpoints", status_code=201, openapi_extra=_AUTH)
async def create_webhook_endpoint(request: Request) -> dict[str, Any]:
    """Register an endpoint; the answer carries its ``whsec_`` secret (shown only here and on
    rotation)."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    body = parse_body(await request.body(), EndpointCreate)
    existing = await list_endpoints(services.pool, merchant_id)
    if len(existing) >= ENDPOINTS_PER_MERCHANT_MAX:
        raise Problem(
            409,
            "webhook_endpoint_limit",
            "Too many webhook endpoints",
            f"at most {ENDPOINTS_PER_MERCHANT_MAX} per merchant; delete one first",
        )
    try:
        endpoint = await create_endpoint(
            services.pool,
            merchant_id=merchant_id,
            url=body.url,
            event_types=body.event_types,
            resolver=await _resolver_for(body.url),
            now=datetime.now(UTC),
            allow_loopback=services.settings.webhooks.allow_loopback,
        )
    except UnsafeWebhookUrl as exc:
        raise _bad_url(exc) from exc
    except UnknownEventType as exc:
        raise _unknown_types(exc) from exc
    return endpoint_view(endpoint, with_secret=True)


@router.get("/v1/webhook_endpoints", openapi_extra=_AUTH)
async def list_webhook_endpoints(request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    endpoints = await list_endpoints(services.pool, merchant_id)
    return {"object": "list", "data": [endpoint_view(e) for e in endpoints]}


@router.get("/v1/webhook_endpoints/{endpoint_id}", openapi_extra=_AUTH)
async def read_webhook_endpoint(endpoint_id: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    try:
        endpoint = await get_endpoint(services.pool, endpoint_id, merchant_id=merchant_id)
    except EndpointNotFound as exc:
        raise _not_found(endpoint_id) from exc
    return endpoint_view(endpoint)


@router.patch("/v1/webhook_endpoints/{endpoint_id}", openapi_extra=_AUTH)
async def update_webhook_endpoint(endpoint_id: str, request: Request) -> dict[str, Any]:
    """Change the URL or the filter, or disable (``"enabled": false``) / enable the endpoint.
    Disabling dead-letters its queue (replay after enabling); enabling re-checks the URL."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    body = parse_body(await request.body(), EndpointUpdate)
    allow_loopback = services.settings.webhooks.allow_loopback
    pool = services.pool
    try:
        endpoint = await get_endpoint(pool, endpoint_id, merchant_id=merchant_id)
        if body.url is not None or body.event_types is not None:
            endpoint = await update_endpoint(
                pool,
                endpoint_id,
                merchant_id=merchant_id,
                url=body.url,
                event_types=body.event_types,
                resolver=await _resolver_for(body.url or endpoint.url),
                allow_loopback=allow_loopback,
            )
        if body.enabled is True and not endpoint.enabled:
            endpoint = await enable_endpoint(
                pool,
                endpoint_id,
                resolver=await _resolver_for(endpoint.url),
                allow_loopback=allow_loopback,
            )
        elif body.enabled is False and endpoint.enabled:
            async with pool.acquire() as conn:
                await disable_endpoint(
                    conn, endpoint_id, reason=MERCHANT_REASON, now=datetime.now(UTC)
                )
            endpoint = await get_endpoint(pool, endpoint_id, merchant_id=merchant_id)
    except EndpointNotFound as exc:
        raise _not_found(endpoint_id) from exc
    except UnsafeWebhookUrl as exc:
        raise _bad_url(exc) from exc
    except UnknownEventType as exc:
        raise _unknown_types(exc) from exc
    return endpoint_view(endpoint)


@router.delete("/v1/webhook_endpoints/{endpoint_id}", status_code=204, openapi_extra=_AUTH)
async def delete_webhook_endpoint(endpoint_id: str, request: Request) -> Response:
    """Delete the endpoint: no more deliveries; its queue is dead-lettered and kept."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    try:
        async with services.pool.acquire() as conn:
            await delete_endpoint(conn, endpoint_id, merchant_id=merchant_id, now=datetime.now(UTC))
    except EndpointNotFound as exc:
        raise _not_found(endpoint_id) from exc
    return Response(status_code=204)


@router.post("/v1/webhook_endpoints/{endpoint_id}/rotate_secret", openapi_extra=_AUTH)
async def rotate_webhook_secret(endpoint_id: str, request: Request) -> dict[str, Any]:
    """A new secret; the old one keeps signing (two signatures per request) until
    ``previous_secret_expires_at``."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    body = parse_body(await request.body(), SecretRotation, empty_ok=True)
    overlap_s = (
        services.settings.webhooks.rotation_overlap_s
        if body.overlap_s is None
        else float(body.overlap_s)
    )
    try:
        await get_endpoint(services.pool, endpoint_id, merchant_id=merchant_id)
        endpoint = await rotate_secret(
            services.pool, endpoint_id, now=datetime.now(UTC), overlap_s=overlap_s
        )
    except EndpointNotFound as exc:
        raise _not_found(endpoint_id) from exc
    except InvalidWebhookSecret as exc:  # pragma: no cover -- generated secrets are valid
        raise Problem(500, "internal_error", "Internal error") from exc
    return endpoint_view(endpoint, with_secret=True)


@router.get("/v1/webhook_dead_letters", openapi_extra=_AUTH)
async def list_webhook_dead_letters(
    request: Request, endpoint_id: str | None = None, limit: int = 100
) -> dict[str, Any]:
    """The merchant's dead-lettered deliveries, newest first (optionally of one endpoint)."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    if not 1 <= limit <= DEAD_LETTERS_PAGE_MAX:
        raise Problem(400, "invalid_limit", "limit out of range", f"1 to {DEAD_LETTERS_PAGE_MAX}")
    dead = await list_dead_letters(services.pool, merchant_id, endpoint_id=endpoint_id, limit=limit)
    return {"object": "list", "data": [delivery_view(d) for d in dead]}


@router.post("/v1/webhook_dead_letters/{delivery_id}/replay", openapi_extra=_AUTH)
async def replay_webhook_dead_letter(delivery_id: str, request: Request) -> dict[str, Any]:
    """Queue one dead letter again (idempotent: ``replayed`` is false if it already was)."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    try:
        async with services.pool.acquire() as conn:
            replayed = await replay(
                conn, delivery_id, now=datetime.now(UTC), merchant_id=merchant_id
            )
    except DeliveryNotFound as exc:
        raise Problem(
            404, "webhook_delivery_not_found", "No such webhook delivery", delivery_id
        ) from exc
    except EndpointDisabled as exc:
        raise _endpoint_disabled(str(exc)) from exc
    return {"id": delivery_id, "object": "webhook_replay", "replayed": replayed}


@router.post("/v1/webhook_endpoints/{endpoint_id}/replay_dead_letters", openapi_extra=_AUTH)
async def replay_all_dead_letters(endpoint_id: str, request: Request) -> dict[str, Any]:
    """Queue every dead letter of the endpoint again (up to 1,000 per call: call again while
    ``replayed`` is 1,000).  Each payment's events still go out in order."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    pool = services.pool
    try:
        endpoint = await get_endpoint(pool, endpoint_id, merchant_id=merchant_id)
    except EndpointNotFound as exc:
        raise _not_found(endpoint_id) from exc
    if not endpoint.enabled:
        raise _endpoint_disabled(f"{endpoint_id} is disabled")
    dead = await list_dead_letters(
        pool, merchant_id, endpoint_id=endpoint_id, limit=DEAD_LETTERS_PAGE_MAX
    )
    now = datetime.now(UTC)
    replayed = 0
    try:
        async with pool.acquire() as conn:
            for delivery in dead:
                replayed += await replay(
                    conn, delivery.delivery_id, now=now, merchant_id=merchant_id
                )
    except EndpointDisabled as exc:  # disabled meanwhile (a 410)
        raise _endpoint_disabled(str(exc)) from exc
    return {"id": endpoint_id, "object": "webhook_replay", "replayed": replayed}


def _endpoint_disabled(detail: str) -> Problem:
    return Problem(
        409,
        "webhook_endpoint_disabled",
        "The webhook endpoint is disabled",
        f"{detail}; enable it (PATCH enabled=true) before replaying",
    )
