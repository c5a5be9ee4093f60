"""Wallet routes: open a wallet, load it, transfer, pay out, two-phase holds, balances.

Thin shells around ``warehouse.wallet_store`` (which locks, decides with the pure
``streams.wallets.plan`` and posts the journal entry in one transaction).  Money moves
synchronously: a 201 means the entry is in the book of record.

Who may touch what: a merchant operates its own wallet (``merchant:<merchant_id>:<cur>``) and
the customer wallets it opened.  A customer wallet's owner id is the merchant's customer id
followed by a tag derived from the merchant id, so two merchants' customers "c_42" are two
different wallets and neither merchant can name the other's.

Idempotency: every POST needs an ``Idempotency-Key``.  The operation id is derived from
(merchant, key), so a retry can only ever name the same operation: the wallet store's
``wallet_operations`` table replays it (or refuses other parameters) even when Redis, the fast
path, forgot the key.  Same key and body: the first answer again (``Idempotent-Replayed:
true``); same key, other body: 422 ``idempotency_key_reused``; while the first is in flight:
409.  A refused operation (insufficient funds, a settled hold...) posts nothing and frees its
key, so a corrected retry may use it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.exceptions import RedisError

from api.context import AUTH_HEADER, Services, authenticate
from api.idempotency import (
    Claimed,
    Completed,
    InFlight,
    StoredResponse,
    check_idempotency_key,
    stored_json,
)
from api.problems import Problem
from api.schemas import fingerprint_of, parse_body
from models.ids import IDEMPOTENCY_KEY_LEN_MAX
from models.money import AmountMinor, check_currency
from streams.wallets import (
    HoldState,
    IdempotencyConflict,
    KycLevel,
    Load,
    Operation,
    OwnerType,
    Payout,
    PlaceHold,
    PostHold,
    Transfer,
    VoidHold,
    WalletError,
    WalletState,
    wallet_id_for,
)
from warehouse import wallet_store

log = logging.getLogger("rizzpay.api.wallets")

router = APIRouter()

# A hold lasts at most this long: long enough for a hotel or fuel pre-authorisation (card
# networks keep those about 7 to 31 days), short enough that forgotten holds come back.
HOLD_TTL_S_MAX = 31 * 24 * 3600
_CUSTOMER_ID = re.compile(r"^[a-z0-9_]{1,48}$")

# Wallet refusals -> HTTP status.  Conflicts with the current state are 409; a request that
# cannot succeed as written is 422; a missing wallet or hold is 404.
ERROR_STATUS: dict[str, int] = {
    "insufficient_funds": 422,
    "wallet_limit_exceeded": 422,
    "currency_mismatch": 422,
    "invalid_amount": 422,
    "invalid_operation": 422,
    "hold_not_found": 404,
    "wallet_not_found": 404,
    "hold_expired": 409,
    "hold_already_settled": 409,
    "idempotency_conflict": 409,
}
_TITLES: dict[str, str] = {
    "insufficient_funds": "Not enough available balance",
    "wallet_limit_exceeded": "The wallet's balance limit would be exceeded",
    "currency_mismatch": "Currency differs from the wallet's",
    "invalid_amount": "Invalid amount",
    "invalid_operation": "Operation not possible as requested",
    "hold_not_found": "No such hold",
    "wallet_not_found": "No such wallet",
    "hold_expired": "The hold has expired",
    "hold_already_settled": "The hold was already posted or voided",
    "idempotency_conflict": "Conflicts with an earlier request",
}

AUTH_AND_KEY: list[dict[str, Any]] = [
    AUTH_HEADER,
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_LEN_MAX},
        "description": "Names this operation: a retry with the same key and body replays the "
        "first answer; another body with the same key is 422.",
    },
]


# --- bodies -----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Money(_Body):
    amount: AmountMinor
    currency: str = Field(default="INR", min_length=3, max_length=3)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return check_currency(value)


class WalletOpen(_Body):
    """``POST /v1/wallets``: the merchant's own wallet (``owner: merchant``) or one of its
    customers' (``owner: customer`` with ``customer_id``).  ``kyc_level`` sets the RBI PPI
    balance limit of a customer wallet (``min``: ₹10,000, ``full``: ₹2,00,000);
    ``overdraft_limit`` (paise) lets ``available`` go that far below zero."""

    owner: Literal["customer", "merchant"]
    customer_id: str | None = None
    currency: str = Field(default="INR", min_length=3, max_length=3)
    kyc_level: Literal["min", "full"] | None = None
    overdraft_limit: int = Field(default=0, ge=0, le=10**15)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return check_currency(value)


class LoadCreate(_Money):
    """Money into the wallet from a payment or a bank transfer (``source`` names it)."""

    source: str = Field(default="bank_transfer", min_length=1, max_length=64)


class TransferCreate(_Money):
    """To another wallet of the same merchant (``purpose: spend`` when paying the merchant)."""

    to_wallet: str = Field(max_length=128)
    purpose: Literal["transfer", "spend"] = "transfer"


class PayoutCreate(_Money):
    """Withdrawal to the holder's bank account."""


class HoldCreate(_Money):
    """Earmark ``amount`` for ``ttl_seconds``; posting it later pays ``destination_wallet``
    (default: the holder's bank, as a payout)."""

    ttl_seconds: int = Field(gt=0, le=HOLD_TTL_S_MAX)
    destination_wallet: str | None = Field(default=None, max_length=128)


class HoldPost(_Body):
    """Complete a hold for ``amount`` (default: all of it); the rest is released."""

    amount: AmountMinor | None = None


class HoldVoid(_Body):
    """Release a hold; no fields."""


# --- ownership and ids --------------------------------------------------------------------


def _tag(merchant_id: str) -> str:
    return hashlib.sha256(merchant_id.encode()).hexdigest()[:10]


def customer_owner_id(merchant_id: str, customer_id: str) -> str:
    """The wallet owner id of ``merchant_id``'s customer ``customer_id``."""
    if not _CUSTOMER_ID.match(customer_id):
        raise Problem(
            422, "invalid_customer_id", "Invalid customer_id", f"must match {_CUSTOMER_ID.pattern}"
        )
    return f"{customer_id}_{_tag(merchant_id)}"


def owns(merchant_id: str, wallet_id: str) -> bool:
    """Whether ``wallet_id`` is the merchant's own wallet or one of its customers'."""
    parts = wallet_id.split(":")
    if len(parts) != 3:
        return False
    if parts[0] == OwnerType.MERCHANT.value:
        return parts[1] == merchant_id
    return parts[0] == OwnerType.CUSTOMER.value and parts[1].endswith("_" + _tag(merchant_id))


def operation_id(merchant_id: str, key: str) -> str:
    """The wallet operation an Idempotency-Key names: derived, so a retry names the same one."""
    return "op_" + hashlib.sha256(f"{merchant_id}\x00{key}".encode()).hexdigest()[:40]


def _not_found(wallet_id: str) -> Problem:
    # Another merchant's wallet is indistinguishable from a missing one.
    return Problem(404, "wallet_not_found", "No such wallet", f"wallet {wallet_id} not found")


def wallet_problem(exc: WalletError) -> Problem:
    """The problem+json a refused wallet operation answers with (its stable code)."""
    return Problem(
        ERROR_STATUS.get(exc.code, 422), exc.code, _TITLES.get(exc.code, "Refused"), exc.message
    )


# --- views --------------------------------------------------------------------------------


def wallet_view(w: WalletState) -> dict[str, Any]:
    return {
        "id": w.wallet_id,
        "object": "wallet",
        "owner": w.owner_type.value,
        "currency": w.currency,
        "kyc_level": w.kyc_level.value,
        "balance": w.balance_minor,
        "held": w.held_minor,
        "available": w.available_minor,
        "balance_limit": w.balance_limit_minor,
        "overdraft_limit": w.overdraft_limit_minor,
    }


def hold_view(h: HoldState) -> dict[str, Any]:
    return {
        "id": h.hold_id,
        "object": "wallet_hold",
        "wallet": h.wallet_id,
        "destination_wallet": h.destination_wallet_id,
        "amount": h.amount_minor,
        "currency": h.currency,
        "status": h.status.value,
        "posted_amount": h.posted_minor,
        "expires_at": h.expires_at.isoformat(),
    }


def operation_view(op: Operation, entry_id: str) -> dict[str, Any]:
    """What an applied operation answers: derived from the operation alone, so a replay
    (from Redis or from ``wallet_operations``) answers exactly the same."""
    view: dict[str, Any] = {"id": op.op_id, "object": "wallet_operation", "kind": op.kind}
    match op:
        case Load():
            view |= {"wallet": op.wallet_id, "amount": op.amount_minor, "source": op.source}
        case Transfer():
            view |= {
                "wallet": op.from_wallet_id,
                "to_wallet": op.to_wallet_id,
                "amount": op.amount_minor,
                "purpose": op.purpose,
            }
        case Payout():
            view |= {"wallet": op.wallet_id, "amount": op.amount_minor}
        case PostHold():
            view |= {"hold": op.hold_id, "amount": op.amount_minor}
        case VoidHold():
            view |= {"hold": op.hold_id}
    if isinstance(op, Load | Transfer | Payout):
        view["currency"] = op.currency
    view["journal_entry"] = entry_id
    return view


# --- the idempotent shell -----------------------------------------------------------------


async def _idempotent(
    request: Request,
    merchant_id: str,
    fingerprint: str,
    run: Callable[[str], Awaitable[StoredResponse]],
) -> Response:
    """Run ``run(op_id)`` once per (merchant, Idempotency-Key) and answer its response (or the
    stored one for a replay).  Problems raised by ``run`` free the key."""
    services: Services = request.app.state.services
    key = check_idempotency_key(request.headers.get("idempotency-key"))
    store = services.idempotency
    try:
        claim = await store.claim(merchant_id, key, fingerprint)
    except RedisError:
        log.warning("idempotency store unavailable; relying on wallet_operations")
        claim = Claimed()
    if isinstance(claim, InFlight | Completed) and not claim.same_request:
        raise Problem(
            422,
            "idempotency_key_reused",
            "Idempotency-Key already used for a different request",
            "Use a new key for a new operation",
        )
    if isinstance(claim, InFlight):
        raise Problem(
            409,
            "idempotency_request_in_flight",
            "A request with this Idempotency-Key is in progress",
            headers={"Retry-After": "1"},
        )
    if isinstance(claim, Completed):
        return stored_json(claim.response, replayed=True)
    try:
        stored = await run(operation_id(merchant_id, key))
    except BaseException:
        try:
            await store.release(merchant_id, key)
        except RedisError:
            log.warning("could not release idempotency claim for %s", merchant_id)
        raise
    try:
        await store.complete(merchant_id, key, fingerprint, stored)
    except RedisError:
        log.warning("could not store idempotent response for %s", merchant_id)
    return stored_json(stored, replayed=False)


async def _execute(services: Services, op: Operation) -> wallet_store.OperationResult:
    """Apply ``op`` now; a refusal becomes its problem.  A replayed op id whose parameters
    differ (the key was reused for another request after Redis forgot it) is 422."""
    async with services.pool.acquire() as conn:
        try:
            return await wallet_store.execute(conn, op, now=datetime.now(UTC))
        except IdempotencyConflict as exc:
            raise Problem(
                422,
                "idempotency_key_reused",
                "Idempotency-Key already used for a different request",
                exc.message,
            ) from exc
        except WalletError as exc:
            raise wallet_problem(exc) from exc


def _wallet_in_path(merchant_id: str, wallet_id: str) -> str:
    if not owns(merchant_id, wallet_id):
        raise _not_found(wallet_id)
    return wallet_id


# --- routes -------------------------------------------------------------------------------


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "parameters": AUTH_AND_KEY,
        "requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}},
    }


@router.post("/v1/wallets", status_code=201, openapi_extra=_schema(WalletOpen))
async def open_wallet(request: Request) -> Response:
    """Open (or find again) a wallet; opening it again with the same terms answers it."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    body = parse_body(await request.body(), WalletOpen)
    if body.owner == "customer":
        if body.customer_id is None:
            raise Problem(422, "invalid_customer_id", "customer_id is required for a customer")
        owner_type, owner_id = OwnerType.CUSTOMER, customer_owner_id(merchant_id, body.customer_id)
        kyc = KycLevel(body.kyc_level or "full")
    else:
        if body.customer_id is not None or body.kyc_level is not None:
            raise Problem(
                422, "invalid_operation", "A merchant wallet takes no customer_id or kyc_level"
            )
        owner_type, owner_id, kyc = OwnerType.MERCHANT, merchant_id, KycLevel.BUSINESS

    async def run(_: str) -> StoredResponse:
        try:
            wallet_id_for(owner_type, owner_id, body.currency)
            wallet = await wallet_store.open_wallet(
                services.pool,
                owner_type,
                owner_id,
                body.currency,
                kyc_level=kyc,
                overdraft_limit_minor=body.overdraft_limit,
            )
        except IdempotencyConflict as exc:
            raise Problem(
                409, "wallet_exists", "The wallet exists with other terms", exc.message
            ) from exc
        except WalletError as exc:
            raise wallet_problem(exc) from exc
        return StoredResponse(201, wallet_view(wallet))

    return await _idempotent(request, merchant_id, fingerprint_of("open", body), run)


@router.get("/v1/wallets/{wallet_id}", openapi_extra={"parameters": [AUTH_HEADER]})
async def read_wallet(wallet_id: str, request: Request) -> dict[str, Any]:
    """The wallet's balances in minor units: ``balance`` (holds included), ``held`` and
    ``available = balance − held``."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    wallet = await wallet_store.get_wallet(services.pool, _wallet_in_path(merchant_id, wallet_id))
    if wallet is None:
        raise _not_found(wallet_id)
    return wallet_view(wallet)


async def _money_route(
    request: Request,
    wallet_id: str,
    route: str,
    model: type[_Money],
    build: Callable[[str, str, Any], Operation],
) -> Response:
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    _wallet_in_path(merchant_id, wallet_id)
    body = parse_body(await request.body(), model)
    for other in (getattr(body, "to_wallet", None), getattr(body, "destination_wallet", None)):
        if other is not None and not owns(merchant_id, other):
            raise _not_found(other)

    async def run(op_id: str) -> StoredResponse:
        op = build(op_id, wallet_id, body)
        result = await _execute(services, op)
        if isinstance(op, PlaceHold):
            hold = await wallet_store.get_hold(services.pool, op.hold_id)
            assert hold is not None
            return StoredResponse(201, hold_view(hold))
        return StoredResponse(201, operation_view(op, result.entry_id))

    return await _idempotent(request, merchant_id, fingerprint_of(route, wallet_id, body), run)


@router.post("/v1/wallets/{wallet_id}/loads", status_code=201, openapi_extra=_schema(LoadCreate))
async def load(wallet_id: str, request: Request) -> Response:
    """Credit the wallet (funded by a payment or bank transfer); its balance limit applies."""

    def build(op_id: str, wallet: str, b: LoadCreate) -> Operation:
        return Load(op_id, wallet, b.amount, b.currency, b.source)

    return await _money_route(request, wallet_id, "load", LoadCreate, build)


@router.post(
    "/v1/wallets/{wallet_id}/transfers", status_code=201, openapi_extra=_schema(TransferCreate)
)
async def transfer(wallet_id: str, request: Request) -> Response:
    """Move money to another of the merchant's wallets; beyond ``available`` (plus any
    overdraft) it is refused with 422 ``insufficient_funds`` and nothing is posted."""

    def build(op_id: str, wallet: str, b: TransferCreate) -> Operation:
        return Transfer(op_id, wallet, b.to_wallet, b.amount, b.currency, b.purpose)

    return await _money_route(request, wallet_id, "transfer", TransferCreate, build)


@router.post(
    "/v1/wallets/{wallet_id}/payouts", status_code=201, openapi_extra=_schema(PayoutCreate)
)
async def payout(wallet_id: str, request: Request) -> Response:
    """Withdraw to the holder's bank; beyond ``available`` it is 422 ``insufficient_funds``."""

    def build(op_id: str, wallet: str, b: PayoutCreate) -> Operation:
        return Payout(op_id, wallet, b.amount, b.currency)

    return await _money_route(request, wallet_id, "payout", PayoutCreate, build)


@router.post("/v1/wallets/{wallet_id}/holds", status_code=201, openapi_extra=_schema(HoldCreate))
async def place_hold(wallet_id: str, request: Request) -> Response:
    """Earmark money for ``ttl_seconds``: the worker's expiry sweep releases it after that
    unless it was posted or voided.  The hold's id is in the answer."""

    def build(op_id: str, wallet: str, b: HoldCreate) -> Operation:
        return PlaceHold(op_id, wallet, b.amount, b.currency, b.ttl_seconds, b.destination_wallet)

    return await _money_route(request, wallet_id, "hold", HoldCreate, build)


async def _hold_route(
    request: Request, hold_id: str, route: str, model: type[HoldPost] | type[HoldVoid]
) -> Response:
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    body = parse_body(await request.body(), model, empty_ok=True)
    hold = await wallet_store.get_hold(services.pool, hold_id)
    if hold is None or not owns(merchant_id, hold.wallet_id):
        raise Problem(404, "hold_not_found", "No such hold", f"hold {hold_id} not found")

    async def run(op_id: str) -> StoredResponse:
        op: Operation
        if isinstance(body, HoldPost):
            op = PostHold(op_id, hold_id, body.amount)
        else:
            op = VoidHold(op_id, hold_id)
        result = await _execute(services, op)
        return StoredResponse(200, operation_view(op, result.entry_id))

    return await _idempotent(request, merchant_id, fingerprint_of(route, hold_id, body), run)


@router.post("/v1/wallet_holds/{hold_id}/post", openapi_extra=_schema(HoldPost))
async def post_hold(hold_id: str, request: Request) -> Response:
    """Complete the hold (all of it, or ``amount``, releasing the rest)."""
    return await _hold_route(request, hold_id, "post_hold", HoldPost)


@router.post("/v1/wallet_holds/{hold_id}/void", openapi_extra=_schema(HoldVoid))
async def void_hold(hold_id: str, request: Request) -> Response:
    """Release the whole hold."""
    return await _hold_route(request, hold_id, "void_hold", HoldVoid)


@router.get("/v1/wallet_holds/{hold_id}", openapi_extra={"parameters": [AUTH_HEADER]})
async def read_hold(hold_id: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    hold = await wallet_store.get_hold(services.pool, hold_id)
    if hold is None or not owns(merchant_id, hold.wallet_id):
        raise Problem(404, "hold_not_found", "No such hold", f"hold {hold_id} not found")
    return hold_view(hold)
