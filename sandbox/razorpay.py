"""A Razorpay-shaped sandbox: Orders and Payments (server-to-server), captures and refunds.

Shape (after Razorpay's published API): HTTP Basic auth with ``key_id:key_secret``; JSON bodies;
amounts are integers in paise; entities carry ``"entity": "order" | "payment" | "refund"`` and
``created_at`` in Unix seconds; lists are ``{"entity": "collection", "count", "items"}``, newest
first; errors are ``{"error": {"code": "BAD_REQUEST_ERROR", "description", "source", "step",
"reason", "metadata", "field"}}``.

Routes: ``POST /v1/orders``, ``GET /v1/orders`` (``?receipt=``), ``GET /v1/orders/{id}``,
``GET /v1/orders/{id}/payments``, ``POST /v1/payments/create/json``, ``GET /v1/payments/{id}``,
``POST /v1/payments/{id}/capture``, ``POST /v1/payments/{id}/refund``,
``GET /v1/payments/{id}/refunds``; customer pages ``/sandbox/3ds/{id}`` and
``/sandbox/netbanking/{id}`` (GET shows the page, POST ``outcome=success|failure`` completes it
and redirects to the payment's ``callback_url`` with ``razorpay_payment_id``,
``razorpay_order_id`` and ``razorpay_signature`` = HMAC-SHA256(``order_id|payment_id``,
key_secret) on success, ``error[...]`` fields on failure).

Sandbox rules on top of the published shape, which the connector relies on: an order accepts a
new payment only while it has none that is pending, authorized or captured (a second one is
refused with ``BAD_REQUEST_ERROR``, reason ``order_already_paid``), and ``receipt`` is not
required to be unique (as at Razorpay): the connector pays the oldest order of a receipt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from sandbox import RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET
from sandbox.core import (
    SandboxSettings,
    SandboxState,
    authenticated_router,
    build_app,
    customer_page,
    int_or_none,
    parse_form,
    parse_json_object,
    read_body,
)
from sandbox.instruments import Outcome, card_outcome, upi_outcome
from streams.connectors.cards import bin_info, mask_pan

AMOUNT_MIN_PAISE = 100  # Razorpay's minimum order amount: ₹1
RECEIPT_LEN_MAX = 40
LIST_COUNT_MAX = 100
ID_LEN = 14

# outcome -> (error reason, description, source, step)
DECLINES: dict[Outcome, tuple[str, str, str]] = {
    "do_not_honor": ("card_declined", "The payment was declined by the issuing bank.", "bank"),
    "insufficient_funds": ("insufficient_funds", "The account has insufficient funds.", "bank"),
    "expired_card": ("card_expired", "The card has expired.", "customer"),
    "invalid_vpa": ("invalid_vpa", "The UPI ID (VPA) is invalid.", "customer"),
    "upi_timeout": ("payment_timed_out", "The UPI collect request expired.", "customer"),
    "bank_rejected": ("payment_declined_by_bank", "The bank rejected the payment.", "bank"),
}
AUTH_FAILED = ("authentication_failed", "3-D Secure authentication failed.", "customer")
ACTION_EXPIRED = ("payment_timed_out", "The customer did not complete the payment.", "customer")


@dataclass
class Order:
    id: str
    amount: int
    currency: str
    receipt: str | None
    notes: dict[str, Any]
    payment_capture: bool
    created_at: float
    payments: list[str] = field(default_factory=list)


@dataclass
class Payment:
    id: str
    order_id: str
    amount: int
    currency: str
    method: str
    created_at: float
    auto_capture: bool
    callback_url: str | None
    email: str
    contact: str
    notes: dict[str, Any]
    receipt: str | None
    status: str = "created"  # created | authorized | captured | refunded | failed
    captured: bool = False
    amount_refunded: int = 0
    error: tuple[str, str, str] | None = None  # reason, description, source
    card: dict[str, Any] | None = None
    vpa: str | None = None
    bank: str | None = None
    planned: Outcome = "approve"  # what the pending customer step will produce (UPI)
    rrn: str | None = None
    auth_code: str | None = None
    refunds: list[str] = field(default_factory=list)


@dataclass
class Refund:
    id: str
    payment_id: str
    amount: int
    receipt: str | None
    notes: dict[str, Any]
    created_at: float


def error_body(
    status: int,
    description: str,
    *,
    code: str = "BAD_REQUEST_ERROR",
    reason: str = "input_validation_failed",
    source: str = "business",
    step: str = "payment_initiation",
    field_name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "code": code,
                "description": description,
                "source": source,
                "step": step,
                "reason": reason,
                "metadata": metadata or {},
                "field": field_name,
            }
        },
        status_code=status,
    )


def _server_error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "error": {
            "code": "SERVER_ERROR",
            "description": f"The server encountered an error ({message}).",
            "source": "internal",
            "step": "NA",
            "reason": "server_error",
            "metadata": {},
        }
    }


class RazorpaySandbox:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.orders: dict[str, Order] = {}
        self.payments: dict[str, Payment] = {}
        self.refunds: dict[str, Refund] = {}
        state.ledger = self.ledger
        state.reset = self.reset

    def reset(self) -> None:
        self.orders.clear()
        self.payments.clear()
        self.refunds.clear()

    # --- time-driven transitions -----------------------------------------------------------

    def advance(self, payment: Payment) -> None:
        """Apply what the customer's side did since the payment was created (lazily, on read):
        a UPI collect is approved after ``upi_approve_ms`` or expires after ``upi_expiry_ms``;
        a 3-D Secure or netbanking page left open expires after ``action_expiry_s``."""
        elapsed_s = self.state.now_s() - payment.created_at
        settings = self.state.settings
        if payment.planned == "upi_late_success" and payment.status == "failed":
            if elapsed_s * 1000 >= settings.upi_late_success_ms:
                payment.error = None
                self._authorize(payment)
            return
        if payment.status != "created":
            return
        if payment.method == "upi":
            if payment.planned in ("upi_timeout", "upi_late_success"):
                if elapsed_s * 1000 >= settings.upi_expiry_ms:
                    self._fail(payment, DECLINES["upi_timeout"])
            elif elapsed_s * 1000 >= settings.upi_approve_ms:
                if payment.planned == "approve":
                    self._authorize(payment)
                else:
                    self._fail(payment, DECLINES[payment.planned])
        elif elapsed_s >= settings.action_expiry_s:
            self._fail(payment, ACTION_EXPIRED)

    def _authorize(self, payment: Payment) -> None:
        payment.status = "authorized"
        payment.rrn = self.state.new_id("", 12, "0123456789")
        payment.auth_code = self.state.new_id("", 6, "0123456789")
        if payment.auto_capture:
            payment.status = "captured"
            payment.captured = True

    def _fail(self, payment: Payment, error: tuple[str, str, str]) -> None:
        payment.status = "failed"
        payment.error = error

    # --- views -----------------------------------------------------------------------------

    def order_view(self, order: Order) -> dict[str, Any]:
        for pid in order.payments:
            self.advance(self.payments[pid])
        statuses = [self.payments[pid].status for pid in order.payments]
        paid = sum(
            self.payments[pid].amount
            for pid in order.payments
            if self.payments[pid].status in ("captured", "refunded")
        )
        if any(s in ("authorized", "captured", "refunded") for s in statuses):
            status = "paid"
        elif statuses:
            status = "attempted"
        else:
            status = "created"
        return {
            "id": order.id,
            "entity": "order",
            "amount": order.amount,
            "amount_paid": paid,
            "amount_due": order.amount - paid,
            "currency": order.currency,
            "receipt": order.receipt,
            "offer_id": None,
            "status": status,
            "attempts": len(order.payments),
            "notes": order.notes,
            "created_at": int(order.created_at),
        }

    def payment_view(self, payment: Payment) -> dict[str, Any]:
        self.advance(payment)
        error = payment.error
        return {
            "id": payment.id,
            "entity": "payment",
            "amount": payment.amount,
            "currency": payment.currency,
            "status": payment.status,
            "order_id": payment.order_id,
            "invoice_id": None,
            "international": False,
            "method": payment.method,
            "amount_refunded": payment.amount_refunded,
            "refund_status": (
                None
                if not payment.amount_refunded
                else "full"
                if payment.amount_refunded == payment.amount
                else "partial"
            ),
            "captured": payment.captured,
            "description": None,
            "card_id": None if payment.card is None else f"card_{payment.id[4:]}",
            "card": payment.card,
            "bank": payment.bank,
            "wallet": None,
            "vpa": payment.vpa,
            "email": payment.email,
            "contact": payment.contact,
            "notes": payment.notes,
            "fee": None,
            "tax": None,
            "error_code": None if error is None else "BAD_REQUEST_ERROR",
            "error_description": None if error is None else error[1],
            "error_source": None if error is None else error[2],
            "error_step": None if error is None else "payment_authorization",
            "error_reason": None if error is None else error[0],
            "acquirer_data": {"rrn": payment.rrn, "auth_code": payment.auth_code},
            "created_at": int(payment.created_at),
        }

    def refund_view(self, refund: Refund) -> dict[str, Any]:
        return {
            "id": refund.id,
            "entity": "refund",
            "amount": refund.amount,
            "currency": "INR",
            "payment_id": refund.payment_id,
            "notes": refund.notes,
            "receipt": refund.receipt,
            "acquirer_data": {"arn": None},
            "created_at": int(refund.created_at),
            "batch_id": None,
            "status": "processed",
            "speed_processed": "normal",
            "speed_requested": "normal",
        }

    def ledger(self) -> list[dict[str, Any]]:
        entries = []
        for payment in self.payments.values():
            self.advance(payment)
            entries.append(
                {
                    "provider": "razorpay",
                    "merchant_reference": payment.receipt,
                    "provider_ref": payment.id,
                    "method": payment.method,
                    "amount_minor": payment.amount,
                    "currency": payment.currency,
                    "status": payment.status,
                    "charged": payment.status in ("authorized", "captured", "refunded"),
                    "captured_minor": payment.amount if payment.captured else 0,
                    "refunded_minor": payment.amount_refunded,
                }
            )
        return entries

    # --- handlers --------------------------------------------------------------------------

    def create_order(self, body: dict[str, Any]) -> Response:
        amount = int_or_none(body.get("amount"))
        currency = body.get("currency", "INR")
        receipt = body.get("receipt")
        if amount is None or amount < AMOUNT_MIN_PAISE:
            return error_body(400, "The amount must be atleast INR 1.00", field_name="amount")
        if currency != "INR":
            return error_body(400, "Currency is not supported", field_name="currency")
        if receipt is not None and (not isinstance(receipt, str) or len(receipt) > RECEIPT_LEN_MAX):
            return error_body(
                400, "The receipt may not be greater than 40 characters.", field_name="receipt"
            )
        notes = body.get("notes") or {}
        order = Order(
            id=self.state.new_id("order_", ID_LEN),
            amount=amount,
            currency=currency,
            receipt=receipt,
            notes=notes if isinstance(notes, dict) else {},
            payment_capture=body.get("payment_capture", 1) in (1, True, "1", "true"),
            created_at=self.state.now_s(),
        )
        self.orders[order.id] = order
        return JSONResponse(self.order_view(order))

    def list_orders(self, receipt: str | None, count: int) -> Response:
        orders = [o for o in self.orders.values() if receipt is None or o.receipt == receipt]
        # Newest first, as Razorpay lists; dicts keep insertion (= creation) order.
        items = [self.order_view(o) for o in reversed(orders)][:count]
        return JSONResponse({"entity": "collection", "count": len(items), "items": items})

    def create_payment(self, body: dict[str, Any]) -> Response:  # noqa: PLR0911 (per check)
        order = self.orders.get(str(body.get("order_id")))
        if order is None:
            return error_body(400, "The id provided does not exist", field_name="order_id")
        amount = int_or_none(body.get("amount"))
        if amount != order.amount or body.get("currency", "INR") != order.currency:
            return error_body(400, "The amount must match the order amount", field_name="amount")
        for pid in order.payments:
            self.advance(self.payments[pid])
            if self.payments[pid].status != "failed":
                return error_body(
                    400,
                    "This order already has a payment that is pending or successful.",
                    reason="order_already_paid",
                    metadata={"order_id": order.id, "payment_id": pid},
                )
        method = body.get("method")
        if method not in ("card", "upi", "netbanking"):
            return error_body(400, "The method is invalid or not enabled", field_name="method")
        notes = body.get("notes") or {}
        payment = Payment(
            id=self.state.new_id("pay_", ID_LEN),
            order_id=order.id,
            amount=order.amount,
            currency=order.currency,
            method=method,
            created_at=self.state.now_s(),
            auto_capture=order.payment_capture,
            callback_url=body.get("callback_url"),
            email=str(body.get("email", "")),
            contact=str(body.get("contact", "")),
            notes=notes if isinstance(notes, dict) else {},
            receipt=order.receipt,
        )
        base = self.state.public_url
        match method:
            case "card":
                card = body.get("card") if isinstance(body.get("card"), dict) else {}
                assert isinstance(card, dict)
                pan = str(card.get("number", ""))
                outcome = card_outcome(pan)
                if outcome == "invalid_number":
                    return error_body(400, "The card number is invalid.", field_name="card[number]")
                info = bin_info(pan)
                payment.card = {
                    "entity": "card",
                    "name": card.get("name"),
                    "last4": pan[-4:],
                    "network": None if info is None else info.network.title(),
                    "type": "credit",
                    "international": False,
                    "masked": mask_pan(pan),
                }
                self._register(order, payment)
                if outcome == "three_d_secure":
                    return self._next(payment, "redirect", f"{base}/sandbox/3ds/{payment.id}")
                return self._decide(payment, outcome)
            case "upi":
                upi = body.get("upi") if isinstance(body.get("upi"), dict) else {}
                assert isinstance(upi, dict)
                vpa = str(body.get("vpa") or upi.get("vpa") or "")
                payment.vpa = vpa
                payment.planned = upi_outcome(vpa)
                self._register(order, payment)
                if payment.planned == "invalid_vpa":
                    return self._decide(payment, "invalid_vpa")
                return self._next(payment, "poll", f"{base}/v1/payments/{payment.id}")
            case _:
                bank = str(body.get("bank", ""))
                if not (len(bank) == 4 and bank.isalpha() and bank.isupper()):
                    return error_body(400, "The bank is invalid", field_name="bank")
                payment.bank = bank
                self._register(order, payment)
                url = f"{base}/sandbox/netbanking/{payment.id}"
                return self._next(payment, "redirect", url)

    def _register(self, order: Order, payment: Payment) -> None:
        self.payments[payment.id] = payment
        order.payments.append(payment.id)

    def _next(self, payment: Payment, action: str, url: str) -> Response:
        return JSONResponse(
            {"razorpay_payment_id": payment.id, "next": [{"action": action, "url": url}]}
        )

    def _decide(self, payment: Payment, outcome: Outcome) -> Response:
        if outcome == "approve":
            self._authorize(payment)
            return JSONResponse(
                {
                    "razorpay_payment_id": payment.id,
                    "razorpay_order_id": payment.order_id,
                    "razorpay_signature": self.signature(payment),
                    "next": [],
                }
            )
        error = DECLINES[outcome]
        self._fail(payment, error)
        return error_body(
            400,
            error[1],
            reason=error[0],
            source=error[2],
            step="payment_authorization",
            metadata={"payment_id": payment.id, "order_id": payment.order_id},
        )

    def signature(self, payment: Payment) -> str:
        message = f"{payment.order_id}|{payment.id}".encode()
        return hmac.new(RAZORPAY_KEY_SECRET.encode(), message, hashlib.sha256).hexdigest()

    def capture(self, payment: Payment, body: dict[str, Any]) -> Response:
        self.advance(payment)
        amount = int_or_none(body.get("amount"))
        if payment.status in ("captured", "refunded"):
            return error_body(400, "This payment has already been captured", reason="NA")
        if payment.status != "authorized":
            return error_body(
                400,
                "Only payments which have been authorized and not yet captured can be captured",
            )
        if amount != payment.amount or body.get("currency", "INR") != payment.currency:
            return error_body(
                400,
                "Capture amount must be equal to the amount authorized",
                field_name="amount",
            )
        payment.status = "captured"
        payment.captured = True
        return JSONResponse(self.payment_view(payment))

    def refund(self, payment: Payment, body: dict[str, Any]) -> Response:
        self.advance(payment)
        if not payment.captured:
            return error_body(400, "Refunds can be made only on captured payments")
        amount = int_or_none(body.get("amount", payment.amount - payment.amount_refunded))
        if amount is None or amount <= 0:
            return error_body(400, "The amount must be a positive integer", field_name="amount")
        if amount > payment.amount - payment.amount_refunded:
            return error_body(
                400,
                "The refund amount provided is greater than amount captured",
                field_name="amount",
            )
        notes = body.get("notes") or {}
        refund = Refund(
            id=self.state.new_id("rfnd_", ID_LEN),
            payment_id=payment.id,
            amount=amount,
            receipt=body.get("receipt"),
            notes=notes if isinstance(notes, dict) else {},
            created_at=self.state.now_s(),
        )
        self.refunds[refund.id] = refund
        payment.refunds.append(refund.id)
        payment.amount_refunded += amount
        if payment.amount_refunded == payment.amount:
            payment.status = "refunded"
        return JSONResponse(self.refund_view(refund))

    def complete_action(self, payment: Payment, outcome: str) -> Response:
        self.advance(payment)
        if payment.status == "created" and payment.method in ("card", "netbanking"):
            if outcome == "success":
                self._authorize(payment)
            elif payment.method == "card":
                self._fail(payment, AUTH_FAILED)
            else:
                self._fail(payment, DECLINES["bank_rejected"])
        if payment.callback_url is None:
            return JSONResponse(self.payment_view(payment))
        if payment.status in ("authorized", "captured"):
            params = {
                "razorpay_payment_id": payment.id,
                "razorpay_order_id": payment.order_id,
                "razorpay_signature": self.signature(payment),
            }
        else:
            reason, description, source = payment.error or ACTION_EXPIRED
            params = {
                "error[code]": "BAD_REQUEST_ERROR",
                "error[description]": description,
                "error[source]": source,
                "error[reason]": reason,
                "error[metadata]": json.dumps(
                    {"payment_id": payment.id, "order_id": payment.order_id}
                ),
            }
        separator = "&" if "?" in payment.callback_url else "?"
        return RedirectResponse(payment.callback_url + separator + urlencode(params), 303)


def _authorized(request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    key_id, _, secret = decoded.partition(":")
    return hmac.compare_digest(key_id, RAZORPAY_KEY_ID) and hmac.compare_digest(
        secret, RAZORPAY_KEY_SECRET
    )


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    state = SandboxState("razorpay", settings or SandboxSettings())
    sandbox = RazorpaySandbox(state)

    def unauthorized() -> Response:
        return error_body(401, "The api key provided is invalid", reason="NA")

    api = authenticated_router(_authorized, unauthorized)
    pages = APIRouter()

    async def json_body(request: Request) -> dict[str, Any] | None:
        return parse_json_object(await read_body(request))

    @api.post("/v1/orders")
    async def create_order(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return error_body(400, "The request body must be a JSON object")
        return sandbox.create_order(body)

    @api.get("/v1/orders")
    async def list_orders(request: Request) -> Response:
        count = int_or_none(request.query_params.get("count", "10")) or 10
        return sandbox.list_orders(request.query_params.get("receipt"), min(count, 100))

    @api.get("/v1/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> Response:
        order = sandbox.orders.get(order_id)
        if order is None:
            return error_body(400, "The id provided does not exist")
        return JSONResponse(sandbox.order_view(order))

    @api.get("/v1/orders/{order_id}/payments")
    async def order_payments(order_id: str, request: Request) -> Response:
        order = sandbox.orders.get(order_id)
        if order is None:
            return error_body(400, "The id provided does not exist")
        items = [sandbox.payment_view(sandbox.payments[p]) for p in reversed(order.payments)]
        return JSONResponse({"entity": "collection", "count": len(items), "items": items})

    @api.post("/v1/payments/create/json")
    async def create_payment(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return error_body(400, "The request body must be a JSON object")
        return sandbox.create_payment(body)

    @api.get("/v1/payments/{payment_id}")
    async def get_payment(payment_id: str, request: Request) -> Response:
        payment = sandbox.payments.get(payment_id)
        if payment is None:
            return error_body(400, "The id provided does not exist")
        return JSONResponse(sandbox.payment_view(payment))

    @api.post("/v1/payments/{payment_id}/capture")
    async def capture(payment_id: str, request: Request) -> Response:
        payment = sandbox.payments.get(payment_id)
        body = await json_body(request)
        if payment is None or body is None:
            return error_body(400, "The id provided does not exist")
        return sandbox.capture(payment, body)

    @api.post("/v1/payments/{payment_id}/refund")
    async def refund(payment_id: str, request: Request) -> Response:
        payment = sandbox.payments.get(payment_id)
        body = await json_body(request)
        if payment is None or body is None:
            return error_body(400, "The id provided does not exist")
        return sandbox.refund(payment, body)

    @api.get("/v1/payments/{payment_id}/refunds")
    async def list_refunds(payment_id: str, request: Request) -> Response:
        payment = sandbox.payments.get(payment_id)
        if payment is None:
            return error_body(400, "The id provided does not exist")
        items = [sandbox.refund_view(sandbox.refunds[r]) for r in reversed(payment.refunds)]
        return JSONResponse({"entity": "collection", "count": len(items), "items": items})

    @pages.get("/sandbox/{page}/{payment_id}")
    async def action_page(page: str, payment_id: str) -> Response:
        payment = sandbox.payments.get(payment_id)
        if payment is None or page not in ("3ds", "netbanking"):
            return JSONResponse({"error": "unknown page"}, 404)
        title = "Issuer 3-D Secure" if page == "3ds" else f"{payment.bank} NetBanking"
        return customer_page(title, f"/sandbox/{page}/{payment_id}", {})

    @pages.post("/sandbox/{page}/{payment_id}")
    async def action_submit(page: str, payment_id: str, request: Request) -> Response:
        payment = sandbox.payments.get(payment_id)
        if payment is None or page not in ("3ds", "netbanking"):
            return JSONResponse({"error": "unknown page"}, 404)
        outcome = parse_form(await read_body(request)).get("outcome", "failure")
        return sandbox.complete_action(payment, outcome)

    pages.include_router(api)
    return build_app(state, "Razorpay sandbox", pages, _server_error)
