"""The review queue for risk analysts: payments fraud scoring held for review.

A payment the scorer sends to **review** is authorized but not captured
(``streams/scoring.py``).  An analyst lists the open reviews, then

* **approves** one: RizzPay captures everything still held (a ``payment.capture_requested``
  on the payment's own topic and key, like a merchant's capture);
* **declines** one: RizzPay voids the authorization (``payment.void_requested``);
* **labels** any scored payment fraud or legitimate: the label feeds the scorer's terminal-risk
  features and ``rizzpay fraud labels export`` (training data).

Analysts authenticate with their own token (``Authorization: Bearer rza_…``, issued by
``rizzpay fraud analysts create``), never with a merchant API key: an analyst sees every
merchant's reviews, a merchant none.

The command is published before the review is closed, so a crash between the two leaves an open
review whose approval can simply be repeated: the capture id is derived from the payment, and the
worker applies a repeated capture once.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import asyncpg
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.commands import build_command, check_against_state, load_state
from api.context import Services, bearer_token
from api.problems import Problem
from api.publisher import BrokerUnavailable
from api.schemas import CaptureCreate, VoidCreate, fingerprint_of, parse_body
from models.events import encode
from streams.lifecycle import PaymentState, Status
from warehouse.fraud_store import (
    REVIEW_PAGE_SIZE_MAX,
    analyst_for_token,
    close_review,
    get_review,
    open_reviews,
    set_label,
)

router = APIRouter(tags=["fraud reviews"])

ANALYST_AUTH = {
    "name": "Authorization",
    "in": "header",
    "required": True,
    "schema": {"type": "string"},
    "description": "Bearer <analyst token> (rizzpay fraud analysts create)",
}
_DOCS = {"parameters": [ANALYST_AUTH]}


class ReviewDecision(BaseModel):
    """``POST /v1/reviews/{payment_id}/approve`` or ``/decline``: an optional note."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    note: str | None = Field(default=None, max_length=1000)


class LabelCreate(BaseModel):
    """``POST /v1/reviews/{payment_id}/label``: was the payment fraud?"""

    model_config = ConfigDict(frozen=True, extra="forbid")
    is_fraud: StrictBool  # "yes" or 1 is refused, not guessed
    note: str | None = Field(default=None, max_length=1000)


async def authenticate_analyst(request: Request) -> str:
    """The analyst named by a ``Bearer`` analyst token, or a 401 problem."""
    services: Services = request.app.state.services
    token = bearer_token(request.headers.get("authorization"), what="analyst token")
    analyst = await analyst_for_token(services.pool, token)
    if analyst is None:
        raise Problem(
            401,
            "invalid_analyst_token",
            "Analyst token not recognised",
            "Reviews need an analyst token; merchant API keys do not open them",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return analyst


def _view(row: asyncpg.Record) -> dict[str, Any]:
    label = row["label_is_fraud"]
    return {
        "object": "review",
        "payment_id": row["payment_id"],
        "status": row["status"],
        "opened_at": row["opened_at"].isoformat(),
        "decided_by": row["decided_by"],
        "decided_at": row["decided_at"].isoformat() if row["decided_at"] else None,
        "note": row["note"],
        "merchant_id": row["merchant_id"],
        "amount": row["amount_minor"],
        "currency": row["currency"].strip(),
        "method": row["method"],
        "customer_id": row["customer_id"],
        "occurred_at": row["occurred_at"].isoformat(),
        "risk": {
            "decision": row["decision"],
            "reason": row["reason"],
            "score": row["score"],
            "model_version": row["model_version"],
            "rule_hits": list(row["rule_hits"]),
            "features": json.loads(row["features_json"]),
            "shadow": {"model_version": row["shadow_model_version"], "score": row["shadow_score"]}
            if row["shadow_model_version"]
            else None,
        },
        "label": None
        if label is None
        else {
            "is_fraud": label,
            "labelled_by": row["labelled_by"],
            "labelled_at": row["labelled_at"].isoformat(),
        },
    }


def _cursor(row: asyncpg.Record) -> str:
    return f"{row['opened_at'].isoformat()}|{row['payment_id']}"


def _parse_cursor(cursor: str) -> tuple[dt.datetime, str]:
    when, sep, payment_id = cursor.partition("|")
    try:
        parsed = dt.datetime.fromisoformat(when)
    except ValueError:
        parsed = None
    if not sep or parsed is None or parsed.tzinfo is None:
        raise Problem(400, "invalid_cursor", "cursor not recognised")
    return parsed, payment_id


@router.get("/v1/reviews", openapi_extra=_DOCS)
async def list_reviews(
    request: Request, limit: int = 50, cursor: str | None = None
) -> dict[str, Any]:
    """Open reviews, oldest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    services: Services = request.app.state.services
    await authenticate_analyst(request)
    if not 1 <= limit <= REVIEW_PAGE_SIZE_MAX:
        raise Problem(400, "invalid_limit", "limit out of range", f"1 to {REVIEW_PAGE_SIZE_MAX}")
    after = _parse_cursor(cursor) if cursor else None
    rows = await open_reviews(services.pool, limit=limit, after=after)
    next_cursor = _cursor(rows[-1]) if len(rows) == limit else None
    return {"object": "list", "data": [_view(r) for r in rows], "next_cursor": next_cursor}


async def _review(services: Services, payment_id: str) -> asyncpg.Record:
    row = await get_review(services.pool, payment_id)
    if row is None:
        raise Problem(
            404, "review_not_found", "No such review", f"payment {payment_id} is not in review"
        )
    return row


@router.get("/v1/reviews/{payment_id}", openapi_extra=_DOCS)
async def read_review(payment_id: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    await authenticate_analyst(request)
    return _view(await _review(services, payment_id))


def _command_for(
    state: PaymentState, action: Literal["approve", "decline"], merchant_id: str
) -> Any:
    """The capture (approve) or void (decline) that ends the hold, or None when the payment
    holds nothing any more (the processor declined it, it expired, the merchant voided it)."""
    if state.status != Status.AUTHORIZED or state.held_minor <= 0:
        return None
    key = f"fraud-review:{state.payment_id}"
    body = CaptureCreate() if action == "approve" else VoidCreate()
    fingerprint = fingerprint_of(f"review-{action}", state.payment_id, body)
    event, _ = build_command(state, body, merchant_id, key, fingerprint)
    return event


async def _decide(
    request: Request, payment_id: str, action: Literal["approve", "decline"]
) -> dict[str, Any]:
    services: Services = request.app.state.services
    analyst = await authenticate_analyst(request)
    body = parse_body(await request.body(), ReviewDecision, empty_ok=True)
    status = "approved" if action == "approve" else "declined"
    row = await _review(services, payment_id)
    if row["status"] == status:
        return _view(row)  # the same decision again: nothing more to do
    if row["status"] != "open":
        raise Problem(
            409,
            "review_already_decided",
            "The review is already decided",
            f"payment {payment_id} was {row['status']} by {row['decided_by']}",
        )
    state = await load_state(services.pool, row["merchant_id"], payment_id)
    command = _command_for(state, action, row["merchant_id"])
    if command is not None:
        check_against_state(state, command)
        try:
            await services.publisher.publish(services.requested_topic, payment_id, encode(command))
        except BrokerUnavailable as exc:
            raise Problem(
                503,
                "broker_unavailable",
                "The decision could not be sent",
                "Nothing was changed; retry",
                headers={"Retry-After": str(services.settings.retry_after_s)},
            ) from exc
    if not await close_review(services.pool, payment_id, status, analyst, body.note):
        row = await _review(services, payment_id)
        if row["status"] != status:
            raise Problem(
                409,
                "review_already_decided",
                "The review is already decided",
                f"payment {payment_id} was {row['status']} by {row['decided_by']}",
            )
    view = _view(await _review(services, payment_id))
    view["command"] = None if command is None else command.event_type
    return view


@router.post("/v1/reviews/{payment_id}/approve", openapi_extra=_DOCS)
async def approve(payment_id: str, request: Request) -> dict[str, Any]:
    """Release the payment: capture everything still held."""
    return await _decide(request, payment_id, "approve")


@router.post("/v1/reviews/{payment_id}/decline", openapi_extra=_DOCS)
async def decline(payment_id: str, request: Request) -> dict[str, Any]:
    """Stop the payment: void its authorization."""
    return await _decide(request, payment_id, "decline")


@router.post("/v1/reviews/{payment_id}/label", openapi_extra=_DOCS)
async def label(payment_id: str, request: Request) -> dict[str, Any]:
    """Label any scored payment (in review or not) as fraud or legitimate; the latest label
    counts."""
    services: Services = request.app.state.services
    analyst = await authenticate_analyst(request)
    body = parse_body(await request.body(), LabelCreate)
    if not await set_label(services.pool, payment_id, body.is_fraud, analyst, body.note):
        raise Problem(404, "payment_not_scored", "No such scored payment", f"payment {payment_id}")
    return {
        "object": "label",
        "payment_id": payment_id,
        "is_fraud": body.is_fraud,
        "labelled_by": analyst,
    }
