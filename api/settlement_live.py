"""The live settlement view finance watches during the day: a merchant's captured payments,
refunds, disputes, fees and GST for one IST day, as the streaming balances agent has them
(``streams.balances``, projected to ``settlement_live``).  Once the day's cutoff passes, the
settlement batch for that day (``/v1/settlements``) carries the same figures, checked against
the ledger; until then this view is the running total."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request

from api.context import AUTH_HEADER, Services, authenticate
from api.problems import Problem
from streams.settlement import ist_date
from warehouse.balances_store import live_days

router = APIRouter()


@router.get("/v1/settlements/live", openapi_extra={"parameters": [AUTH_HEADER]})
async def settlement_live(request: Request, day: str | None = None) -> dict[str, Any]:
    """Per currency, the merchant's totals for IST ``day`` (``YYYY-MM-DD``, default today in
    IST), in minor units: ``net = captured − refunds − disputes + adjustments − fees − gst``."""
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    if day is None:
        wanted = ist_date(datetime.now(UTC))
    else:
        try:
            wanted = date.fromisoformat(day)
        except ValueError as exc:
            raise Problem(400, "invalid_day", "day is not a date", "use YYYY-MM-DD") from exc
    data = [
        {
            "object": "settlement_live",
            "merchant_id": merchant_id,
            "day": row.day.isoformat(),
            "currency": row.currency,
            "captured": row.totals.captured_minor,
            "refunds": row.totals.refunds_minor,
            "disputes": row.totals.disputes_minor,
            "adjustments": row.totals.adjustments_minor,
            "fees": row.totals.fees_minor,
            "gst": row.totals.gst_minor,
            "net": row.totals.base_net_minor,
            "postings": row.postings,
        }
        for row in await live_days(services.pool, merchant_id, wanted)
    ]
    return {"object": "list", "day": wanted.isoformat(), "data": data}
