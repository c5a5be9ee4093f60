"""The FastAPI intake: ``create_app(settings)`` wires the routes to their collaborators.

Routes stay thin: authenticate, parse, call the service functions below, shape the answer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel
from redis.exceptions import RedisError

from api.commands import (
    CommandBody,
    build_command,
    check_against_state,
    command_fingerprint,
    load_state,
)
from api.context import AUTH_HEADER, Services, authenticate
from api.disputes import router as disputes_router
from api.idempotency import (
    Claimed,
    Completed,
    IdempotencyStore,
    InFlight,
    StoredResponse,
    check_idempotency_key,
    stored_json,
)
from api.live import router as live_router
from api.notifications import router as notifications_router
from api.pii import DeviceTokens
from api.problems import Problem, handle_problem, handle_unexpected
from api.publisher import BrokerUnavailable, KafkaPublisher
from api.reads import router as reads_router
from api.reviews import router as reviews_router
from api.schemas import (
    CaptureCreate,
    PaymentCreate,
    PaymentView,
    RefundCreate,
    VoidCreate,
    device_tokens_of,
    parse_body,
    parse_payment_create,
)
from api.settings import ApiSettings
from api.settlement_live import router as settlement_live_router
from api.wallets import router as wallets_router
from api.webhooks import router as webhooks_router
from models.events import PaymentRequested, encode
from models.ids import IDEMPOTENCY_KEY_LEN_MAX, new_event_id, payment_id_for
from models.money import Money
from models.topics import PAYMENTS_REQUESTED
from warehouse.fraud_store import review_is_open
from warehouse.payments import get_payment
from warehouse.processor_operations import captures_only_once

log = logging.getLogger("rizzpay.api")


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            settings.pg_dsn, min_size=1, max_size=settings.pg_pool_size_max
        )
        redis_client = aioredis.from_url(settings.redis_url)
        publisher = KafkaPublisher(
            settings.kafka_bootstrap, delivery_timeout_ms=settings.publish_timeout_ms
        )
        app.state.services = Services(
            settings=settings,
            pool=pool,
            idempotency=IdempotencyStore(
                redis_client,
                ttl_s=settings.idempotency_ttl_s,
                in_flight_ttl_s=settings.idempotency_in_flight_ttl_s,
            ),
            publisher=publisher,
            requested_topic=PAYMENTS_REQUESTED.full_name(settings.topic_prefix),
        )
        try:
            yield
        finally:
            publisher.close()
            await redis_client.aclose()
            await pool.close()

    app = FastAPI(
        title="RizzPay API",
        version="1.0.0",
        lifespan=lifespan,
        description="Payments intake: every accepted payment is durable on Kafka.",
    )
    app.add_exception_handler(Problem, handle_problem)
    app.add_exception_handler(Exception, handle_unexpected)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # The hot route reads its headers and body itself: FastAPI's dependency solving cost more
    # CPU per request than the payment logic (bench/results), and the body must be parsed by
    # parse_payment_create anyway to give stable problem codes.  The schema is declared here.
    @app.post(
        "/v1/payments",
        status_code=202,
        response_model=PaymentView,
        openapi_extra=_CREATE_PAYMENT_OPENAPI,
    )
    async def create_payment(request: Request) -> Response:
        services: Services = request.app.state.services
        merchant_id = await authenticate(request)
        key = check_idempotency_key(request.headers.get("idempotency-key"))
        body = parse_payment_create(await request.body())
        device = device_tokens_of(body, services.settings.pii_token_key)
        stored, replayed = await accept_payment(services, merchant_id, key, body, device)
        return stored_json(stored, replayed=replayed)

    for route, model in (
        ("capture", CaptureCreate),
        ("void", VoidCreate),
        ("refunds", RefundCreate),
    ):
        app.add_api_route(
            f"/v1/payments/{{payment_id}}/{route}",
            _command_endpoint(route, model),
            methods=["POST"],
            status_code=202,
            name=f"{route}_payment",
            openapi_extra=_command_openapi(model),
        )

    @app.get(
        "/v1/payments/{payment_id}",
        response_model=PaymentView,
        openapi_extra={"parameters": [AUTH_HEADER]},
    )
    async def read_payment(payment_id: str, request: Request) -> dict[str, Any]:
        services: Services = request.app.state.services
        merchant_id = await authenticate(request)
        return await find_payment(services, merchant_id, payment_id)

    app.include_router(reads_router)
    app.include_router(wallets_router)
    app.include_router(reviews_router)
    app.include_router(webhooks_router)
    app.include_router(disputes_router)
    app.include_router(notifications_router)
    app.include_router(live_router)
    app.include_router(settlement_live_router)

    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate_openapi()
        schema.setdefault("components", {}).setdefault("schemas", {}).update(_CREATE_COMPONENTS)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# The create-payment body schema, with its nested models as shared OpenAPI components.
_CREATE_SCHEMA = PaymentCreate.model_json_schema(ref_template="#/components/schemas/{model}")
_CREATE_COMPONENTS: dict[str, Any] = _CREATE_SCHEMA.pop("$defs", {})
_CREATE_PAYMENT_OPENAPI: dict[str, Any] = {
    "parameters": [
        AUTH_HEADER,
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_LEN_MAX},
            "description": "Names this payment: a retry with the same key and body replays the "
            "first answer; another body with the same key is 422.",
        },
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _CREATE_SCHEMA}},
    },
}


def _command_openapi(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _CREATE_COMPONENTS.update(schema.pop("$defs", {}))
    return {
        "parameters": _CREATE_PAYMENT_OPENAPI["parameters"],
        "requestBody": {"content": {"application/json": {"schema": schema}}},
    }


def _command_endpoint(
    route: str, model: type[CommandBody]
) -> Callable[[str, Request], Awaitable[Response]]:
    async def endpoint(payment_id: str, request: Request) -> Response:
        services: Services = request.app.state.services
        merchant_id = await authenticate(request)
        key = check_idempotency_key(request.headers.get("idempotency-key"))
        body = parse_body(await request.body(), model, empty_ok=True)
        fingerprint = command_fingerprint(route, payment_id, body)
        body_is_capture = isinstance(body, CaptureCreate)

        async def prepare() -> Accepted | StoredResponse:
            state = await load_state(services.pool, merchant_id, payment_id)
            if (
                isinstance(body, CaptureCreate)
                and (not body.final or body.amount not in (None, state.held_minor))
                and await captures_only_once(services.pool, payment_id)
            ):
                raise Problem(
                    409,
                    "partial_capture_not_supported",
                    "The processor holding this payment captures only once, and whole",
                    f"Capture the whole authorized amount ({state.held_minor}) in one capture",
                )
            if body_is_capture and await review_is_open(services.pool, payment_id):
                # Fraud scoring held it: only the analyst's approval captures it.
                raise Problem(
                    409,
                    "payment_under_review",
                    "The payment is held for fraud review",
                    "An analyst must approve it before it can be captured; void it to cancel",
                )
            event, view = build_command(state, body, merchant_id, key, fingerprint)
            if check_against_state(state, event):
                return StoredResponse(202, view)
            return Accepted(payment_id, event, view)

        stored, replayed = await accept_idempotently(
            services, merchant_id, key, fingerprint, prepare
        )
        return stored_json(stored, replayed=replayed)

    return endpoint


def _reused_key() -> Problem:
    return Problem(
        422,
        "idempotency_key_reused",
        "Idempotency-Key already used for a different request",
        "Use a new key for a new payment",
    )


@dataclass(frozen=True)
class Accepted:
    """What an accepted request publishes (keyed by its payment) and answers."""

    payment_id: str
    event: BaseModel
    view: dict[str, Any]
    # Keep the view for GET /v1/payments/{id} until the worker has recorded the payment.
    remember_payment: bool = False


async def accept_idempotently(
    services: Services,
    merchant_id: str,
    key: str,
    fingerprint: str,
    prepare: Callable[[], Awaitable[Accepted | StoredResponse]],
) -> tuple[StoredResponse, bool]:
    """Run a money-moving request once per (merchant, Idempotency-Key).

    ``prepare`` checks the request against the book of record and returns what to publish, or
    a stored response when the book of record shows the request was already accepted (Redis
    forgot the key).  Returns the response and whether it is a replay.  A request that fails
    (a problem, a 503) releases the key, so a retry can succeed.
    """
    store = services.idempotency
    try:
        claim = await store.claim(merchant_id, key, fingerprint)
    except RedisError:
        # The fast path is down; PostgreSQL and the stream's own dedupe still keep us correct.
        log.warning("idempotency store unavailable; relying on the payment state")
        claim = Claimed()
    if isinstance(claim, InFlight | Completed) and not claim.same_request:
        raise _reused_key()
    if isinstance(claim, InFlight):
        raise Problem(
            409,
            "idempotency_request_in_flight",
            "A request with this Idempotency-Key is in progress",
            headers={"Retry-After": "1"},
        )
    if isinstance(claim, Completed):
        return claim.response, True
    try:
        prepared = await prepare()
        if isinstance(prepared, StoredResponse):
            await _complete(store, merchant_id, key, fingerprint, prepared)
            return prepared, True
        await services.publisher.publish(
            services.requested_topic, prepared.payment_id, encode(prepared.event)
        )
    except BrokerUnavailable as exc:
        await _release(store, merchant_id, key)
        raise Problem(
            503,
            "broker_unavailable",
            "Payments are temporarily not accepted",
            "Nothing was accepted; retry with the same Idempotency-Key",
            headers={"Retry-After": str(services.settings.retry_after_s)},
        ) from exc
    except BaseException:
        await _release(store, merchant_id, key)
        raise
    stored = StoredResponse(202, prepared.view)
    remembered = prepared.payment_id if prepared.remember_payment else None
    await _complete(store, merchant_id, key, fingerprint, stored, accepted_payment_id=remembered)
    return stored, False


async def accept_payment(
    services: Services,
    merchant_id: str,
    key: str,
    body: PaymentCreate,
    device: DeviceTokens | None = None,
) -> tuple[StoredResponse, bool]:
    """Publish a payment once per (merchant, key).  ``device`` holds the keyed tokens of the
    body's device (:func:`api.schemas.device_tokens_of`): only they reach the event."""
    fingerprint = body.fingerprint(device)
    payment_id = payment_id_for(merchant_id, key)

    async def prepare() -> Accepted | StoredResponse:
        # Redis may have forgotten the key; the book of record has not.
        existing = await get_payment(services.pool, payment_id)
        if existing is not None:
            if existing["request_fingerprint"] != fingerprint:
                raise _reused_key()
            return StoredResponse(202, _view(existing))
        event = PaymentRequested(
            event_id=new_event_id(),
            payment_id=payment_id,
            merchant_id=merchant_id,
            occurred_at=datetime.now(UTC),
            request_fingerprint=fingerprint,
            amount=Money(minor=body.amount, currency=body.currency),
            method=body.method,
            customer_id=body.customer_id,
            description=body.description,
            capture=body.capture,
            device_id=device.device_id if device else None,
            ip=device.ip if device else None,
        )
        view = PaymentView(
            id=payment_id,
            merchant_id=merchant_id,
            status="pending",
            amount=body.amount,
            currency=body.currency,
            method=body.method.type,
            created_at=event.occurred_at,
        ).model_dump(mode="json")
        return Accepted(payment_id, event, view, remember_payment=True)

    return await accept_idempotently(services, merchant_id, key, fingerprint, prepare)


async def _complete(
    store: IdempotencyStore,
    merchant_id: str,
    key: str,
    fingerprint: str,
    stored: StoredResponse,
    *,
    accepted_payment_id: str | None = None,
) -> None:
    try:
        await store.complete(
            merchant_id, key, fingerprint, stored, accepted_payment_id=accepted_payment_id
        )
    except RedisError:
        log.warning("could not store idempotent response for %s", merchant_id)


async def _release(store: IdempotencyStore, merchant_id: str, key: str) -> None:
    try:
        await store.release(merchant_id, key)
    except RedisError:
        log.warning("could not release idempotency claim for %s", merchant_id)


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return PaymentView(
        id=row["payment_id"],
        merchant_id=row["merchant_id"],
        status=row["status"],
        amount=row["amount_minor"],
        currency=row["currency"].strip(),
        method=row["method"],
        decline_code=row["decline_code"],
        created_at=row["requested_at"],
        updated_at=row["updated_at"],
    ).model_dump(mode="json")


async def find_payment(services: Services, merchant_id: str, payment_id: str) -> dict[str, Any]:
    """A merchant's payment: its recorded state, or ``pending`` while the stream decides it."""
    row = await get_payment(services.pool, payment_id)
    if row is not None and row["merchant_id"] == merchant_id:
        return _view(row)
    if row is None:
        try:
            accepted = await services.idempotency.accepted(payment_id)
        except RedisError:
            accepted = None
        if accepted is not None and accepted["merchant_id"] == merchant_id:
            return accepted
    # Another merchant's payment is indistinguishable from a missing one.
    raise Problem(404, "payment_not_found", "No such payment", f"payment {payment_id} not found")
