"""A Stripe-shaped sandbox: PaymentIntents (create with ``confirm=true``, confirm, capture,
cancel, retrieve, search) and Refunds.

Shape (after Stripe's published API): ``Authorization: Bearer sk_test_…``; form-encoded
requests with bracketed keys (``payment_method_data[card][number]``, ``metadata[payment_id]``);
JSON answers with ``"object": "payment_intent"``; amounts are integers of the smallest
currency unit and currencies are lowercase.  Card declines answer HTTP 402 with
``{"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
"payment_intent": {…}}}``; 3-D Secure answers ``status: requires_action`` with
``next_action.redirect_to_url``.

``Idempotency-Key`` is honoured on every POST: the first answer to a key is stored and replayed
(header ``Idempotent-Replayed: true``) for the same method, path and parameters; other
parameters with the same key answer 400 ``idempotency_error``.  As at Stripe, answers are stored
once the endpoint ran, so a request that was processed but whose answer was lost replays its
result instead of charging again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from models.money import CURRENCY_EXPONENTS
from sandbox import STRIPE_SECRET_KEY
from sandbox.core import (
    SandboxSettings,
    SandboxState,
    authenticated_router,
    build_app,
    customer_page,
    int_or_none,
    parse_form,
    read_body,
)
from sandbox.instruments import Outcome, card_outcome
from streams.connectors.cards import bin_info

ID_LEN = 24
SEARCH_QUERY = re.compile(r"^metadata\['([A-Za-z0-9_]{1,40})'\]:'([^']{1,500})'$")
IDEMPOTENCY_KEY_LEN_MAX = 255

# outcome -> (code, decline_code, message)
DECLINES: dict[Outcome, tuple[str, str | None, str]] = {
    "do_not_honor": ("card_declined", "do_not_honor", "Your card was declined."),
    "insufficient_funds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "expired_card": ("expired_card", "expired_card", "Your card has expired."),
    "invalid_number": ("incorrect_number", None, "Your card number is incorrect."),
}
AUTH_FAILED = (
    "payment_intent_authentication_failure",
    None,
    "We are unable to authenticate your payment method.",
)


@dataclass
class Intent:
    id: str
    amount: int
    currency: str
    capture_method: str
    metadata: dict[str, str]
    description: str | None
    return_url: str | None
    created: float
    status: str = "requires_payment_method"
    amount_received: int = 0
    amount_capturable: int = 0
    card: dict[str, Any] | None = None
    latest_charge: str | None = None
    last_payment_error: dict[str, Any] | None = None
    next_action: dict[str, Any] | None = None
    canceled_at: float | None = None
    refunds: list[str] = field(default_factory=list)
    refunded: int = 0
    # payment_method_options[card][request_multicapture]=if_available: captures in parts.
    multicapture: bool = False
    captures: int = 0  # how many captures Stripe took, for tests that count operations


@dataclass
class Refund:
    id: str
    payment_intent: str
    amount: int
    currency: str
    metadata: dict[str, str]
    created: float


def stripe_error(
    status: int,
    type_: str,
    message: str,
    *,
    code: str | None = None,
    decline_code: str | None = None,
    param: str | None = None,
    payment_intent: dict[str, Any] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"type": type_, "message": message}
    if code is not None:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if decline_code is not None:
        error["decline_code"] = decline_code
    if param is not None:
        error["param"] = param
    if payment_intent is not None:
        error["payment_intent"] = payment_intent
    return JSONResponse({"error": error}, status)


def _server_error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": "api_error", "message": f"Internal error ({message})."}}


def _nested(form: dict[str, str], prefix: str) -> dict[str, str]:
    """``metadata[k]=v`` fields as ``{k: v}``."""
    start = prefix + "["
    return {k[len(start) : -1]: v for k, v in form.items() if k.startswith(start) and k[-1] == "]"}


class StripeSandbox:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.intents: dict[str, Intent] = {}
        self.refunds: dict[str, Refund] = {}
        # idempotency key -> (fingerprint, status code, body)
        self.idempotent: dict[str, tuple[str, int, bytes]] = {}
        state.ledger = self.ledger
        state.reset = self.reset

    def reset(self) -> None:
        self.intents.clear()
        self.refunds.clear()
        self.idempotent.clear()

    def view(self, pi: Intent) -> dict[str, Any]:
        return {
            "id": pi.id,
            "object": "payment_intent",
            "amount": pi.amount,
            "amount_capturable": pi.amount_capturable,
            "amount_received": pi.amount_received,
            "canceled_at": None if pi.canceled_at is None else int(pi.canceled_at),
            "capture_method": pi.capture_method,
            "client_secret": f"{pi.id}_secret_sandbox",
            "confirmation_method": "automatic",
            "created": int(pi.created),
            "currency": pi.currency,
            "description": pi.description,
            "last_payment_error": pi.last_payment_error,
            "latest_charge": pi.latest_charge,
            "livemode": False,
            "metadata": pi.metadata,
            "next_action": pi.next_action,
            "payment_method_types": ["card"],
            "status": pi.status,
            "payment_method_details": None if pi.card is None else {"card": pi.card},
        }

    def refund_view(self, refund: Refund) -> dict[str, Any]:
        return {
            "id": refund.id,
            "object": "refund",
            "amount": refund.amount,
            "currency": refund.currency,
            "payment_intent": refund.payment_intent,
            "metadata": refund.metadata,
            "status": "succeeded",
            "created": int(refund.created),
        }

    def ledger(self) -> list[dict[str, Any]]:
        return [
            {
                "provider": "stripe",
                "merchant_reference": pi.metadata.get("payment_id"),
                "provider_ref": pi.id,
                "method": "card",
                "amount_minor": pi.amount,
                "currency": pi.currency.upper(),
                "status": pi.status,
                "charged": pi.amount_received > 0 or pi.amount_capturable > 0,
                "captured_minor": pi.amount_received,
                "refunded_minor": pi.refunded,
                "captures": pi.captures,
                "refunds": len(pi.refunds),
            }
            for pi in self.intents.values()
        ]

    # --- PaymentIntents ---------------------------------------------------------------------

    def create(self, form: dict[str, str]) -> Response:
        amount = int_or_none(form.get("amount"))
        currency = form.get("currency", "").lower()
        if amount is None or amount <= 0:
            return stripe_error(
                400, "invalid_request_error", "Invalid positive integer", param="amount"
            )
        if currency.upper() not in CURRENCY_EXPONENTS:
            return stripe_error(400, "invalid_request_error", "Invalid currency", param="currency")
        capture_method = form.get("capture_method", "automatic")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            return stripe_error(
                400, "invalid_request_error", "Invalid capture_method", param="capture_method"
            )
        pi = Intent(
            id=self.state.new_id("pi_", ID_LEN),
            amount=amount,
            currency=currency,
            capture_method=capture_method,
            metadata=_nested(form, "metadata"),
            description=form.get("description"),
            return_url=form.get("return_url"),
            created=self.state.now_s(),
            multicapture=capture_method == "manual"
            and form.get("payment_method_options[card][request_multicapture]") == "if_available",
        )
        self.intents[pi.id] = pi
        if form.get("payment_method_data[type]") == "card":
            pi.status = "requires_confirmation"
            pi.card = {"number": form.get("payment_method_data[card][number]", "")}
        if form.get("confirm") == "true":
            return self.confirm(pi, form)
        return JSONResponse(self.view(pi))

    def confirm(self, pi: Intent, form: dict[str, str]) -> Response:
        if pi.status not in ("requires_confirmation", "requires_payment_method"):
            return self._unexpected_state(pi, "confirm")
        if form.get("payment_method_data[type]") == "card":
            pi.card = {"number": form.get("payment_method_data[card][number]", "")}
        if form.get("return_url"):
            pi.return_url = form["return_url"]
        if pi.card is None or "number" not in pi.card:
            return stripe_error(
                400,
                "invalid_request_error",
                "You must provide a payment method to confirm.",
                code="payment_intent_unexpected_state",
            )
        pan = str(pi.card.pop("number"))
        info = bin_info(pan)
        pi.card = {
            "brand": None if info is None else info.network,
            "last4": pan[-4:],
            "exp_month": int_or_none(form.get("payment_method_data[card][exp_month]")),
            "exp_year": int_or_none(form.get("payment_method_data[card][exp_year]")),
        }
        outcome = card_outcome(pan)
        if outcome == "three_d_secure":
            pi.status = "requires_action"
            pi.next_action = {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": f"{self.state.public_url}/sandbox/3ds/{pi.id}",
                    "return_url": pi.return_url,
                },
            }
            return JSONResponse(self.view(pi))
        if outcome == "approve":
            self._approve(pi)
            return JSONResponse(self.view(pi))
        return self._decline(pi, DECLINES[outcome])

    def _approve(self, pi: Intent) -> None:
        pi.latest_charge = self.state.new_id("ch_", ID_LEN)
        pi.next_action = None
        pi.last_payment_error = None
        if pi.capture_method == "manual":
            pi.status = "requires_capture"
            pi.amount_capturable = pi.amount
        else:
            pi.status = "succeeded"
            pi.amount_received = pi.amount

    def _decline(self, pi: Intent, decline: tuple[str, str | None, str]) -> Response:
        code, decline_code, message = decline
        pi.status = "requires_payment_method"
        pi.next_action = None
        pi.latest_charge = self.state.new_id("ch_", ID_LEN)
        error: dict[str, Any] = {"type": "card_error", "code": code, "message": message}
        if decline_code is not None:
            error["decline_code"] = decline_code
        pi.last_payment_error = error
        return stripe_error(
            402,
            "card_error",
            message,
            code=code,
            decline_code=decline_code,
            payment_intent=self.view(pi),
        )

    def _unexpected_state(self, pi: Intent, action: str) -> Response:
        return stripe_error(
            400,
            "invalid_request_error",
            f"You cannot {action} this PaymentIntent because it has a status of {pi.status}.",
            code="payment_intent_unexpected_state",
            payment_intent=self.view(pi),
        )

    def capture(self, pi: Intent, form: dict[str, str]) -> Response:
        if pi.status != "requires_capture":
            return self._unexpected_state(pi, "capture")
        amount = int_or_none(form.get("amount_to_capture", str(pi.amount_capturable)))
        if amount is None or not 0 < amount <= pi.amount_capturable:
            return stripe_error(
                400,
                "invalid_request_error",
                "amount_to_capture must be at most the amount capturable",
                param="amount_to_capture",
            )
        final = form.get("final_capture", "true") != "false"
        if not final and not pi.multicapture:
            return stripe_error(
                400,
                "invalid_request_error",
                "final_capture=false requires multicapture on this PaymentIntent",
                param="final_capture",
            )
        pi.captures += 1
        pi.amount_received += amount
        pi.amount_capturable = 0 if final else pi.amount_capturable - amount
        if pi.amount_capturable == 0:
            pi.status = "succeeded"
        return JSONResponse(self.view(pi))

    def cancel(self, pi: Intent) -> Response:
        cancellable = (
            "requires_payment_method",
            "requires_capture",
            "requires_confirmation",
            "requires_action",
            "processing",
        )
        if pi.status not in cancellable:
            return self._unexpected_state(pi, "cancel")
        pi.status = "canceled"
        pi.amount_capturable = 0
        pi.canceled_at = self.state.now_s()
        return JSONResponse(self.view(pi))

    def complete_action(self, pi: Intent, outcome: str) -> Response:
        if pi.status == "requires_action":
            if outcome == "success":
                self._approve(pi)
            else:
                self._decline(pi, AUTH_FAILED)
        if not pi.return_url:
            return JSONResponse(self.view(pi))
        params = {
            "payment_intent": pi.id,
            "redirect_status": "succeeded" if pi.status != "requires_payment_method" else "failed",
        }
        separator = "&" if "?" in pi.return_url else "?"
        return RedirectResponse(pi.return_url + separator + urlencode(params), 303)

    def search(self, query: str) -> Response:
        match = SEARCH_QUERY.match(query.strip())
        if match is None:
            return stripe_error(
                400, "invalid_request_error", "Unsupported search query", param="query"
            )
        key, value = match.groups()
        data = [
            self.view(pi)
            for pi in reversed(list(self.intents.values()))
            if pi.metadata.get(key) == value
        ]
        return JSONResponse(
            {
                "object": "search_result",
                "url": "/v1/payment_intents/search",
                "has_more": False,
                "next_page": None,
                "data": data,
            }
        )

    # --- Refunds ---------------------------------------------------------------------------

    def refund(self, form: dict[str, str]) -> Response:
        pi = self.intents.get(form.get("payment_intent", ""))
        if pi is None:
            return stripe_error(
                404,
                "invalid_request_error",
                "No such payment_intent",
                code="resource_missing",
                param="payment_intent",
            )
        partly_captured = pi.status == "requires_capture" and pi.amount_received > 0
        if pi.status != "succeeded" and not partly_captured:
            return self._unexpected_state(pi, "refund")
        remaining = pi.amount_received - pi.refunded
        amount = int_or_none(form.get("amount", str(remaining)))
        if amount is None or amount <= 0:
            return stripe_error(400, "invalid_request_error", "Invalid amount", param="amount")
        if remaining == 0:
            return stripe_error(
                400, "invalid_request_error", "Already refunded", code="charge_already_refunded"
            )
        if amount > remaining:
            return stripe_error(
                400,
                "invalid_request_error",
                "Refund amount is greater than the unrefunded amount",
                code="amount_too_large",
                param="amount",
            )
        refund = Refund(
            id=self.state.new_id("re_", ID_LEN),
            payment_intent=pi.id,
            amount=amount,
            currency=pi.currency,
            metadata=_nested(form, "metadata"),
            created=self.state.now_s(),
        )
        self.refunds[refund.id] = refund
        pi.refunds.append(refund.id)
        pi.refunded += amount
        return JSONResponse(self.refund_view(refund))


def _authorized(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token, STRIPE_SECRET_KEY)


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    state = SandboxState("stripe", settings or SandboxSettings())
    sandbox = StripeSandbox(state)

    def unauthorized() -> Response:
        return stripe_error(
            401, "invalid_request_error", "Invalid API Key provided.", code="api_key_invalid"
        )

    api = authenticated_router(_authorized, unauthorized)
    pages = APIRouter()

    async def idempotent(request: Request, handler: Any) -> Response:
        """Run ``handler(form)`` once per Idempotency-Key; replay its answer afterwards."""
        body = await read_body(request)
        form = parse_form(body)
        key = request.headers.get("idempotency-key")
        if key is None:
            response: Response = handler(form)
            return response
        if len(key) > IDEMPOTENCY_KEY_LEN_MAX:
            return stripe_error(400, "invalid_request_error", "Idempotency-Key too long")
        fingerprint = hashlib.sha256(
            f"{request.method} {request.url.path}\n".encode() + body
        ).hexdigest()
        stored = sandbox.idempotent.get(key)
        if stored is not None:
            if stored[0] != fingerprint:
                return stripe_error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                )
            return Response(
                stored[2],
                stored[1],
                media_type="application/json",
                headers={"Idempotent-Replayed": "true", "Idempotency-Key": key},
            )
        response = handler(form)
        sandbox.idempotent[key] = (fingerprint, response.status_code, bytes(response.body))
        response.headers["Idempotency-Key"] = key
        return response

    def intent_or_404(pi_id: str) -> Intent | Response:
        pi = sandbox.intents.get(pi_id)
        if pi is None:
            return stripe_error(
                404,
                "invalid_request_error",
                f"No such payment_intent: '{pi_id}'",
                code="resource_missing",
            )
        return pi

    @api.post("/v1/payment_intents")
    async def create(request: Request) -> Response:
        return await idempotent(request, sandbox.create)

    @api.get("/v1/payment_intents/search")
    async def search(request: Request) -> Response:
        return sandbox.search(request.query_params.get("query", ""))

    @api.get("/v1/payment_intents/{pi_id}")
    async def retrieve(pi_id: str, request: Request) -> Response:
        pi = intent_or_404(pi_id)
        return pi if isinstance(pi, Response) else JSONResponse(sandbox.view(pi))

    @api.post("/v1/payment_intents/{pi_id}/{action}")
    async def act(pi_id: str, action: str, request: Request) -> Response:
        pi = intent_or_404(pi_id)
        if isinstance(pi, Response):
            return pi
        intent = pi
        handlers = {
            "confirm": lambda form: sandbox.confirm(intent, form),
            "capture": lambda form: sandbox.capture(intent, form),
            "cancel": lambda form: sandbox.cancel(intent),
        }
        handler = handlers.get(action)
        if handler is None:
            return stripe_error(404, "invalid_request_error", "Unrecognized request URL")
        return await idempotent(request, handler)

    @api.post("/v1/refunds")
    async def refund(request: Request) -> Response:
        return await idempotent(request, sandbox.refund)

    @api.get("/v1/refunds")
    async def list_refunds(request: Request) -> Response:
        pi_id = request.query_params.get("payment_intent")
        data = [
            sandbox.refund_view(r)
            for r in reversed(list(sandbox.refunds.values()))
            if pi_id is None or r.payment_intent == pi_id
        ]
        return JSONResponse(
            {"object": "list", "url": "/v1/refunds", "has_more": False, "data": data}
        )

    @pages.get("/sandbox/3ds/{pi_id}")
    async def action_page(pi_id: str) -> Response:
        if pi_id not in sandbox.intents:
            return JSONResponse({"error": "unknown page"}, 404)
        return customer_page("Issuer 3-D Secure", f"/sandbox/3ds/{pi_id}", {})

    @pages.post("/sandbox/3ds/{pi_id}")
    async def action_submit(pi_id: str, request: Request) -> Response:
        pi = sandbox.intents.get(pi_id)
        if pi is None:
            return JSONResponse({"error": "unknown page"}, 404)
        outcome = parse_form(await read_body(request)).get("outcome", "failure")
        return sandbox.complete_action(pi, outcome)

    pages.include_router(api)
    return build_app(state, "Stripe sandbox", pages, _server_error)
