"""Disputes: the network's notices come in through an operator route, merchants read their
disputes and submit evidence.

* ``POST /v1/operator/payments/{id}/disputes`` and ``.../disputes/{dispute_id}/resolve`` take
  the processor's dispute notice (opened; won or lost).  They are for the processor
  integration or an operator keying a notice in, authenticated with the operator token
  (``RIZZPAY_OPERATOR_TOKEN``), never with a merchant key.  Like capture and refund they are
  idempotent per Idempotency-Key, tried against the payment's stored lifecycle state (so an
  impossible notice is refused at once with the state machine's code), then published to
  ``payments.requested`` where the worker applies them in order and posts the ledger entries
  (pending → reserve on opening; back on a win; reserve → processor on a chargeback).
  The dispute id is derived from the processor's own reference, so a notice delivered twice
  names one dispute.
* ``GET /v1/payments/{id}/disputes`` (merchant): the payment's disputes and their evidence.
* ``POST /v1/payments/{id}/disputes/{dispute_id}/evidence`` (merchant): evidence, once per
  dispute, while it is open and before ``evidence_due_at``; the same body again is a replay.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.commands import check_against_state, load_state
from api.context import AUTH_HEADER, Services, authenticate
from api.idempotency import StoredResponse, check_idempotency_key, stored_json
from api.problems import Problem
from api.schemas import fingerprint_of, parse_body
from models.events import DisputeOpenRequested, DisputeResolveRequested, PaymentCommand
from models.ids import IDEMPOTENCY_KEY_LEN_MAX, command_id_for, new_event_id
from models.money import INT64_MAX, Money
from streams.lifecycle import PaymentState
from warehouse.disputes import disputes_of, get_evidence, submit_evidence
from warehouse.payments import get_payment

router = APIRouter(tags=["disputes"])

_OPERATOR_AUTH: Final = {
    "name": "Authorization",
    "in": "header",
    "required": True,
    "schema": {"type": "string"},
    "description": "Bearer <operator token> (RIZZPAY_OPERATOR_TOKEN)",
}
_IDEMPOTENCY_KEY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_LEN_MAX},
}
_OPERATOR: Final = {"parameters": [_OPERATOR_AUTH, _IDEMPOTENCY_KEY]}
_MERCHANT: Final = {"parameters": [AUTH_HEADER]}
#: Idempotency keys of operator requests are scoped apart from every merchant's (merchant ids
#: never contain ':').
_OPERATOR_SCOPE: Final = "operator:"
_TEXT_MAX: Final = 20_000


class DisputeOpen(BaseModel):
    """The network's dispute notice: ``amount`` in minor units of the payment's currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    processor_dispute_id: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    amount: int = Field(gt=0, le=INT64_MAX, strict=True)
    evidence_due_at: AwareDatetime | None = None
    reason: str | None = Field(default=None, max_length=64)


class DisputeResolve(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    outcome: Literal["won", "lost"]


class EvidenceCreate(BaseModel):
    """What the merchant shows the network; at least one field.  Texts, not files: documents
    are referenced by the merchant's own URLs in ``uncategorized_text``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    product_description: str | None = Field(default=None, max_length=_TEXT_MAX)
    customer_name: str | None = Field(default=None, max_length=255)
    customer_email: str | None = Field(default=None, max_length=254)
    customer_communication: str | None = Field(default=None, max_length=_TEXT_MAX)
    shipping_carrier: str | None = Field(default=None, max_length=255)
    shipping_tracking_number: str | None = Field(default=None, max_length=255)
    refund_policy: str | None = Field(default=None, max_length=_TEXT_MAX)
    uncategorized_text: str | None = Field(default=None, max_length=_TEXT_MAX)


def _authenticate_operator(request: Request) -> None:
    services: Services = request.app.state.services
    expected = services.settings.operator_token
    if expected is None:
        raise Problem(
            403,
            "operator_api_disabled",
            "Operator routes are disabled",
            "Set RIZZPAY_OPERATOR_TOKEN to enable them",
        )
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not given or not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise Problem(
            401,
            "invalid_operator_token",
            "Operator token required",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _idempotency_key(request: Request) -> str:
    return check_idempotency_key(request.headers.get("idempotency-key"))


#: ``(payment state, merchant id, fingerprint) -> (command event, 202 view)``.
NoticeBuilder = Callable[[PaymentState, str, str], tuple[PaymentCommand, dict[str, Any]]]


async def _accept_notice(
    request: Request,
    payment_id: str,
    route: str,
    body: BaseModel,
    build: NoticeBuilder,
) -> Response:
    """The shared shell of the operator routes: authenticate, find the payment's merchant, then
    accept once per Idempotency-Key like a merchant's capture or refund."""
    # Imported here: api.app includes this module's router.
    from api.app import Accepted, accept_idempotently  # noqa: PLC0415

    _authenticate_operator(request)
    services: Services = request.app.state.services
    key = _idempotency_key(request)
    row = await get_payment(services.pool, payment_id)
    if row is None:
        raise Problem(404, "payment_not_found", "No such payment", payment_id)
    merchant_id: str = row["merchant_id"]
    fingerprint = fingerprint_of(route, payment_id, body)

    async def prepare() -> Accepted | StoredResponse:
        state = await load_state(services.pool, merchant_id, payment_id)
        event, view = build(state, merchant_id, fingerprint)
        if check_against_state(state, event):
            return StoredResponse(202, view)
        return Accepted(payment_id, event, view)

    stored, replayed = await accept_idempotently(
        services, _OPERATOR_SCOPE + merchant_id, key, fingerprint, prepare
    )
    return stored_json(stored, replayed=replayed)


@router.post(
    "/v1/operator/payments/{payment_id}/disputes", status_code=202, openapi_extra=_OPERATOR
)
async def open_dispute(payment_id: str, request: Request) -> Response:
    """The network opened a dispute on a captured payment (202: applied by the worker)."""
    body = parse_body(await request.body(), DisputeOpen)

    def build(
        state: PaymentState, merchant_id: str, fingerprint: str
    ) -> tuple[PaymentCommand, dict[str, Any]]:
        dispute_id = command_id_for("dsp", payment_id, body.processor_dispute_id)
        event = DisputeOpenRequested(
            event_id=new_event_id(),
            payment_id=payment_id,
            merchant_id=merchant_id,
            occurred_at=datetime.now(UTC),
            request_fingerprint=fingerprint,
            dispute_id=dispute_id,
            processor_dispute_id=body.processor_dispute_id,
            amount=Money(minor=body.amount, currency=state.currency),
            evidence_due_at=body.evidence_due_at,
            reason=body.reason,
        )
        view: dict[str, Any] = {
            "id": dispute_id,
            "object": "dispute",
            "payment_id": payment_id,
            "status": "pending",
            "amount": body.amount,
            "currency": state.currency,
            "processor_dispute_id": body.processor_dispute_id,
        }
        return event, view

    return await _accept_notice(request, payment_id, "dispute_open", body, build)


@router.post(
    "/v1/operator/payments/{payment_id}/disputes/{dispute_id}/resolve",
    status_code=202,
    openapi_extra=_OPERATOR,
)
async def resolve_dispute(payment_id: str, dispute_id: str, request: Request) -> Response:
    """The network decided the dispute: ``won`` or ``lost`` (a chargeback)."""
    body = parse_body(await request.body(), DisputeResolve)

    def build(
        state: PaymentState, merchant_id: str, fingerprint: str
    ) -> tuple[PaymentCommand, dict[str, Any]]:
        try:
            event = DisputeResolveRequested(
                event_id=new_event_id(),
                payment_id=payment_id,
                merchant_id=merchant_id,
                occurred_at=datetime.now(UTC),
                request_fingerprint=fingerprint,
                dispute_id=dispute_id,
                outcome=body.outcome,
            )
        except ValueError as exc:  # a dispute id of the wrong shape names no dispute
            raise Problem(404, "dispute_not_found", "No such dispute", dispute_id) from exc
        view: dict[str, Any] = {
            "id": dispute_id,
            "object": "dispute",
            "payment_id": payment_id,
            "status": "pending",
            "outcome": body.outcome,
        }
        return event, view

    return await _accept_notice(request, payment_id, "dispute_resolve", body, build)


@router.get("/v1/payments/{payment_id}/disputes", openapi_extra=_MERCHANT)
async def list_disputes(payment_id: str, request: Request) -> dict[str, Any]:
    """The payment's disputes, oldest first, with any evidence submitted."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    state = await load_state(services.pool, merchant_id, payment_id)
    evidence = await get_evidence(services.pool, payment_id)
    data = [
        {
            "id": d.dispute_id,
            "object": "dispute",
            "payment_id": d.payment_id,
            "status": d.status,
            "amount": d.amount_minor,
            "currency": d.currency,
            "evidence_due_at": d.evidence_due_at.isoformat(),
            "opened_at": d.opened_at.isoformat(),
            "resolved_at": None if d.resolved_at is None else d.resolved_at.isoformat(),
            "evidence": evidence.get(d.dispute_id),
        }
        for d in disputes_of(state)
    ]
    return {"object": "list", "data": data}


@router.post("/v1/payments/{payment_id}/disputes/{dispute_id}/evidence", openapi_extra=_MERCHANT)
async def submit_dispute_evidence(payment_id: str, dispute_id: str, request: Request) -> Response:
    """Evidence for the open dispute, once, before it is due (201; the same body again: 200)."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    body = parse_body(await request.body(), EvidenceCreate)
    evidence = body.model_dump(exclude_none=True)
    if not evidence:
        raise Problem(422, "evidence_empty", "Evidence has no content", "fill at least one field")
    state = await load_state(services.pool, merchant_id, payment_id)
    dispute = next((d for d in disputes_of(state) if d.dispute_id == dispute_id), None)
    if dispute is None:
        raise Problem(404, "dispute_not_found", "No such dispute", dispute_id)
    now = datetime.now(UTC)
    fingerprint = fingerprint_of("dispute_evidence", dispute_id, body)
    # A retry of a stored submission is answered as such even after the dispute closed.
    if dispute_id not in await get_evidence(services.pool, payment_id):
        if dispute.status != "open":
            raise Problem(
                409, "dispute_not_open", "The dispute is closed", f"it was {dispute.status}"
            )
        if now > dispute.evidence_due_at:
            raise Problem(
                409,
                "evidence_past_due",
                "Evidence is past due",
                f"it was due by {dispute.evidence_due_at.isoformat()}",
            )
    result = await submit_evidence(
        services.pool,
        dispute_id=dispute_id,
        payment_id=payment_id,
        merchant_id=merchant_id,
        fingerprint=fingerprint,
        evidence=evidence,
        now=now,
    )
    if not result.same:
        raise Problem(
            409,
            "evidence_already_submitted",
            "Evidence was already submitted for this dispute",
            f"submitted at {result.submitted_at.isoformat()}; it cannot be changed",
        )
    view = {
        "id": dispute_id,
        "object": "dispute_evidence",
        "payment_id": payment_id,
        "submitted_at": result.submitted_at.isoformat(),
        "evidence": evidence,
    }
    return Response(
        orjson.dumps(view),
        status_code=201 if result.stored else 200,
        media_type="application/json",
        headers={} if result.stored else {"Idempotent-Replayed": "true"},
    )
