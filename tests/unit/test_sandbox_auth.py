"""Each processor sandbox refuses its API without the provider's credentials, in the
provider's own 401 shape, and serves the customer's pages without them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sandbox import bank, razorpay, stripe
from sandbox.core import SandboxSettings

QUICK = SandboxSettings(latency_ms_min=0, latency_ms_max=0)


async def call(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        return await client.request(method, path, **kwargs)


@pytest.mark.parametrize(
    ("create_app", "method", "path", "shape"),
    [
        (razorpay.create_app, "POST", "/v1/orders", lambda b: b["error"]["code"]),
        (razorpay.create_app, "GET", "/v1/payments/pay_x", lambda b: b["error"]["code"]),
        (stripe.create_app, "POST", "/v1/payment_intents", lambda b: b["error"]["code"]),
        (stripe.create_app, "GET", "/v1/refunds", lambda b: b["error"]["code"]),
        (bank.create_app, "POST", "/cbs/v1/transfers", lambda b: b["errorCode"]),
        (bank.create_app, "GET", "/cbs/v1/virtual-accounts/va_x", lambda b: b["errorCode"]),
    ],
)
async def test_the_api_refuses_a_caller_without_credentials(
    create_app: Callable[[SandboxSettings], FastAPI],
    method: str,
    path: str,
    shape: Callable[[dict[str, Any]], str],
) -> None:
    response = await call(create_app(QUICK), method, path, json={})
    assert response.status_code == 401, response.text
    assert shape(response.json()) in ("BAD_REQUEST_ERROR", "api_key_invalid", "UNAUTHORIZED")


@pytest.mark.parametrize(
    "create_app", [razorpay.create_app, stripe.create_app], ids=["razorpay", "stripe"]
)
async def test_customer_pages_need_no_credentials(
    create_app: Callable[[SandboxSettings], FastAPI],
) -> None:
    # An unknown payment's page: found to be unknown (404), not refused as unauthenticated.
    response = await call(create_app(QUICK), "GET", "/sandbox/3ds/unknown")
    assert response.status_code == 404
