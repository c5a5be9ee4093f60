"""What every provider sandbox shares: settings, seeded randomness, latency and fault injection
(an ASGI middleware), the admin endpoints, and small request helpers.

Admin endpoints (never delayed, never faulted):

* ``GET|POST /__sandbox/faults``: read or set the fault mode (``sandbox.faults``).
* ``GET /__sandbox/ledger``: every payment object the sandbox created, with the merchant
  reference it carries and whether money was taken (``charged``), so a test can prove that no
  payment was charged twice.
* ``POST /__sandbox/reset``: forget all payments and clear the fault.
* ``GET /__sandbox/health``.

A sandbox is one asyncio program: a request's checks and state changes run without an
``await`` in between, so concurrent requests cannot interleave inside them (that is what makes
"one payment per order" or "one result per idempotency key" hold).
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from sandbox.faults import FaultRequest, Faults, FaultSpec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_PREFIX = "/__sandbox"
BODY_LEN_MAX = 64 * 1024  # provider requests are small; refuse anything bigger


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """Timing of a sandbox.  Latency is drawn uniformly from ``[latency_ms_min,
    latency_ms_max]`` with the seeded generator; the customer-side delays model a person
    approving a UPI collect request and an NEFT batch (real ones are minutes; tests want ms)."""

    latency_ms_min: int = 50
    latency_ms_max: int = 300
    seed: int = 0
    upi_approve_ms: int = 1500
    upi_expiry_ms: int = 5000
    neft_settle_ms: int = 2000
    action_expiry_s: int = 600  # 3-D Secure and netbanking pages stay open 10 minutes
    va_validity_s: int = 86_400

    @property
    def upi_late_success_ms(self) -> int:
        """When a late-success collect (``sandbox.instruments``) turns from expired to paid:
        one more expiry period after it expired."""
        return 2 * self.upi_expiry_ms

    def __post_init__(self) -> None:
        if not 0 <= self.latency_ms_min <= self.latency_ms_max:
            raise ValueError("need 0 <= latency_ms_min <= latency_ms_max")
        if self.upi_approve_ms >= self.upi_expiry_ms:
            raise ValueError("a UPI collect request must expire after it could be approved")


LedgerSource = Callable[[], list[dict[str, Any]]]


class SandboxState:
    """Per-sandbox runtime state: settings, the seeded generator, the fault switch, the clock,
    and the URL customers' browsers use (known once the edge is bound)."""

    def __init__(
        self,
        provider: str,
        settings: SandboxSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.settings = settings
        # Seeded on purpose: latency, ids and faults repeat run to run.  Not for secrets.
        self.rng = random.Random(f"{provider}:{settings.seed}")  # noqa: S311
        self.faults = Faults(random.Random(f"{provider}:faults:{settings.seed}"))  # noqa: S311
        self.clock = clock
        self.public_url = "http://127.0.0.1"
        self.ledger: LedgerSource = list
        self.reset: Callable[[], None] = lambda: None

    def now_s(self) -> float:
        """Wall-clock Unix seconds (providers report ``created_at`` as Unix seconds)."""
        return self.clock()

    def new_id(self, prefix: str, length: int, alphabet: str = "") -> str:
        chars = alphabet or (string.ascii_letters + string.digits)
        return prefix + "".join(self.rng.choice(chars) for _ in range(length))

    def latency_s(self) -> float:
        s = self.settings
        return self.rng.uniform(s.latency_ms_min, s.latency_ms_max) / 1000.0


ErrorBody = Callable[[int, str], tuple[int, dict[str, Any]]]


class FaultMiddleware:
    """Adds latency and applies the active fault to every non-admin request."""

    def __init__(self, app: ASGIApp, state: SandboxState, error_body: ErrorBody) -> None:
        self.app = app
        self.state = state
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        await asyncio.sleep(self.state.latency_s())
        fault = self.state.faults.draw(path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        match fault.mode:
            case "slow":
                await asyncio.sleep(fault.delay_ms / 1000.0)
                await self.app(scope, receive, send)
            case "http_500":
                if fault.after_processing:
                    await self.app(scope, receive, _discard)
                await self._error(send, 500, "injected server error")
            case "timeout":
                if fault.after_processing:
                    captured: list[Message] = []
                    await self.app(scope, receive, _capture(captured))
                    await asyncio.sleep(fault.hold_s)
                    for message in captured:
                        await send(message)
                else:
                    await asyncio.sleep(fault.hold_s)
                    await self._error(send, 504, "injected gateway timeout")
            case _:
                await self.app(scope, receive, send)

    async def _error(self, send: Send, status: int, message: str) -> None:
        status, body = self.error_body(status, message)
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


async def _discard(message: Message) -> None:
    return None


def _capture(into: list[Message]) -> Send:
    async def send(message: Message) -> None:
        into.append(message)

    return send


def admin_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, include_in_schema=False)

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "provider": state.provider}

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return {**state.faults.spec.as_json(), "injected": state.faults.injected}

    @router.post("/faults")
    async def set_faults(request: Request) -> Response:
        try:
            body = FaultRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": "invalid fault", "detail": exc.errors()}, 422)
        await state.faults.apply(FaultSpec.from_request(body))
        return JSONResponse({**state.faults.spec.as_json(), "injected": state.faults.injected})

    @router.get("/ledger")
    async def ledger() -> dict[str, Any]:
        return {"provider": state.provider, "entries": state.ledger()}

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        await state.faults.apply(FaultSpec())
        return {"ok": True}

    return router


class Refusal(Exception):
    """Raised by a route dependency to answer with the provider-shaped ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def authenticated_router(
    authorized: Callable[[Request], bool], refusal: Callable[[], Response], prefix: str = ""
) -> APIRouter:
    """A router for a provider's API routes: each answers ``refusal()`` (the provider's own
    401 shape) unless ``authorized(request)``.  Customer pages go on another router."""

    async def check(request: Request) -> None:
        if not authorized(request):
            raise Refusal(refusal())

    return APIRouter(prefix=prefix, dependencies=[Depends(check)])


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return exc.response


def build_app(
    state: SandboxState, title: str, provider_routes: APIRouter, error_body: ErrorBody
) -> FastAPI:
    """A provider app: its routes, the admin routes, and the fault middleware around both."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(Refusal, _refused)
    app.include_router(admin_router(state))
    app.include_router(provider_routes)
    app.add_middleware(FaultMiddleware, state=state, error_body=error_body)
    app.state.sandbox = state
    return app


# --- request helpers ------------------------------------------------------------------------


async def read_body(request: Request) -> bytes:
    """The request body; 413 if it is larger than any provider request should be."""
    body = await request.body()
    if len(body) > BODY_LEN_MAX:
        raise HTTPException(413, "request body too large")
    return body


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; the last value of a repeated key wins.
    Keys keep Stripe's bracket notation as is (``metadata[payment_id]``)."""
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def customer_page(title: str, action_url: str, fields: Mapping[str, str]) -> HTMLResponse:
    """A minimal page standing in for an issuer's 3-D Secure page or a bank's login: a form
    that posts ``outcome`` (success/failure) back to ``action_url``."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in sorted(fields.items())
    )
    title, action_url = escape(title), escape(action_url)
    html = (
        f"<!doctype html><title>{title}</title><h1>{title}</h1>"
        f'<form method="post" action="{action_url}">{hidden}'
        '<button name="outcome" value="success">Approve</button>'
        '<button name="outcome" value="failure">Reject</button></form>'
    )
    return HTMLResponse(html)


def int_or_none(value: object) -> int | None:
    """``value`` as an int if it is one (JSON ints, digit strings), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None
