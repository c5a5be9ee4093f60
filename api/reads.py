"""Read-only routes over the book of record: balances, journal entries, settlements."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.context import AUTH_HEADER, Services, authenticate
from api.problems import Problem
from warehouse.ledger_reads import (
    PAGE_SIZE_MAX,
    BadCursor,
    journal_page,
    merchant_balances,
    settlement_batches,
    settlement_lines,
)

router = APIRouter()


@router.get("/v1/balances", openapi_extra={"parameters": [AUTH_HEADER]})
async def balances(request: Request) -> dict[str, Any]:
    """The merchant's ledger balances in minor units, each account's normal side positive."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    data = [
        {"account": b.kind, "currency": b.currency, "amount": b.amount_minor}
        for b in await merchant_balances(services.pool, merchant_id)
    ]
    return {"object": "list", "data": data}


@router.get("/v1/ledger/entries", openapi_extra={"parameters": [AUTH_HEADER]})
async def ledger_entries(
    request: Request, limit: int = 50, cursor: str | None = None
) -> dict[str, Any]:
    """The merchant's journal entries with postings, oldest first; pass ``next_cursor``
    back as ``cursor`` for the next page."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    if not 1 <= limit <= PAGE_SIZE_MAX:
        raise Problem(400, "invalid_limit", "limit out of range", f"1 to {PAGE_SIZE_MAX}")
    try:
        page, next_cursor = await journal_page(
            services.pool, merchant_id, limit=limit, cursor=cursor
        )
    except BadCursor as exc:
        raise Problem(400, "invalid_cursor", "cursor not recognised") from exc
    return {"object": "list", "data": page, "next_cursor": next_cursor}


@router.get("/v1/settlements", openapi_extra={"parameters": [AUTH_HEADER]})
async def settlements(request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    return {"object": "list", "data": await settlement_batches(services.pool, merchant_id)}


@router.get("/v1/settlements/{batch_id}/lines", openapi_extra={"parameters": [AUTH_HEADER]})
async def settlement_line_items(batch_id: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    lines = await settlement_lines(services.pool, merchant_id, batch_id)
    if lines is None:
        raise Problem(404, "settlement_not_found", "No such settlement", batch_id)
    return {"object": "list", "data": lines}
