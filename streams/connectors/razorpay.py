"""Razorpay connector: INR cards, UPI collect and netbanking through Orders + server-to-server
Payments (``POST /v1/payments/create/json``).

Our ``payment_id`` is the order's ``receipt``.  A charge finds or creates the order for the
receipt and pays the **oldest** order with that receipt; an order takes one payment at a time,
so the charge cannot happen twice even if it is sent twice.

Calls, and why each may or may not be retried (``idempotent=`` of ``ProviderHttp``):

================================== ======= ===================================================
call                               retried why
================================== ======= ===================================================
``GET`` orders / payments / refunds yes     reads
``POST /v1/orders``                yes     moves no money; Razorpay does not dedupe receipts,
                                           so a retry may leave a second unpaid order, which
                                           is harmless because only the oldest order is paid
``POST /v1/payments/create/json``  once    not blindly: after an ambiguous failure the
                                           connector reads the order's payments and adopts
                                           one if the create was processed, else sends it once
                                           more.  Safe even if the first is still in flight:
                                           the order refuses a second payment while one is
                                           pending or paid (``order_already_paid``), which
                                           the connector answers by adopting that payment
``POST /v1/payments/{id}/capture`` yes     idempotent by payment id: a repeat is answered
                                           "already captured", which counts as done
``POST /v1/payments/{id}/refund``  **no**  Razorpay would refund again.  The connector first
                                           looks for a refund with our ``receipt`` (the refund
                                           id); after an ambiguous failure it looks again and
                                           otherwise reports ``refund_outcome_unknown`` for the
                                           caller to retry later (which enquires first)
void                               -       Razorpay has no void: an authorized payment that
                                           is not captured is released by Razorpay itself
================================== ======= ===================================================

Money: paise integers (``amounts.to_razorpay_amount``); INR only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable
from typing import Any, TypeVar, Unpack

import httpx

from models.events import DeclineCode
from models.methods import BankTransferMethod, CardMethod, NetbankingMethod, UpiMethod
from streams.connectors.amounts import AmountNotRepresentable, to_razorpay_amount
from streams.connectors.base import (
    Approved,
    ChargeRequest,
    ChargeResult,
    Declined,
    Done,
    Failed,
    NotFound,
    OperationResult,
    PaymentRef,
    Pending,
    ProcessorError,
    ProviderName,
    RedirectAction,
    Refused,
    RequiresAction,
    StatusResult,
    UpiCollectAction,
    call_error,
    enquiry_error,
    unexpected,
)
from streams.connectors.cards import CardVault
from streams.connectors.http import CallFailed, HttpConnector, HttpOptions, json_object

NAME: ProviderName = "razorpay"
_T = TypeVar("_T")
ORDERS_PER_RECEIPT_MAX = 100  # one page; a receipt has one order, two after a lost answer

# Razorpay ``error_reason`` -> RizzPay decline code (the sandbox's reasons; docs/connectors.md).
DECLINE_REASONS: dict[str, DeclineCode] = {
    "card_declined": "do_not_honor",
    "insufficient_funds": "insufficient_funds",
    "card_expired": "expired_card",
    "invalid_vpa": "invalid_vpa",
    "payment_declined_by_bank": "bank_rejected",
}
# Reasons that end a payment without a decline by the customer's bank.
FAILURE_REASONS = frozenset({"authentication_failed", "payment_cancelled"})


class RazorpayConnector(HttpConnector):
    """See the module docstring.  ``vault`` turns card tokens into PANs."""

    def __init__(
        self,
        *,
        base_url: str,
        key_id: str,
        key_secret: str,
        vault: CardVault,
        **options: Unpack[HttpOptions],
    ) -> None:
        super().__init__(NAME, base_url, auth=(key_id, key_secret), **options)
        self._key_secret = key_secret
        self._vault = vault

    # --- charge ----------------------------------------------------------------------------

    async def charge(self, request: ChargeRequest) -> ChargeResult:  # noqa: PLR0911 (per answer)
        try:
            amount = to_razorpay_amount(request.amount_minor, request.currency)
        except AmountNotRepresentable as exc:
            return ProcessorError(NAME, "unsupported_currency", str(exc), False, False)
        if isinstance(request.method, BankTransferMethod):
            return ProcessorError(NAME, "unsupported_method", request.method.type, False, False)
        if isinstance(request.method, UpiMethod) and request.method.flow != "collect":
            return ProcessorError(NAME, "unsupported_method", "UPI intent", False, False)
        try:
            order = await self._order_for(request, amount)
        except CallFailed as exc:
            return call_error(NAME, exc, money_moving=False)
        if isinstance(order, ProcessorError):
            return order
        order_id = str(order["id"])
        had_payment = bool(order.get("attempts", 0))
        try:
            if had_payment:
                # Charged before (a redelivery or a retry after a lost answer): report that
                # payment's state rather than attempt another.
                adopted = await self._latest_payment(order_id)
                if adopted is not None:
                    return _from_payment(adopted)
            body = await self._payment_body(request, amount, order_id)
            if isinstance(body, ProcessorError):
                return body
            return await self._create_payment(request, order_id, body)
        except CallFailed as exc:
            possible = had_payment or exc.maybe_delivered
            return ProcessorError(NAME, exc.code, exc.message, True, charge_possible=possible)

    async def _create_payment(
        self, request: ChargeRequest, order_id: str, body: dict[str, Any]
    ) -> ChargeResult:
        """Create the payment; raises CallFailed, ``ambiguous`` once a payment may exist."""
        for resend in (False, True):
            try:
                response = await self._http.request(
                    "POST", "/v1/payments/create/json", idempotent=False, json=body
                )
            except CallFailed as exc:
                if not exc.maybe_delivered:
                    raise
                # The answer was lost: adopt the payment if the create was processed, else
                # send it once more (the order refuses a second live payment).
                adopted = await self._read_after_create(self._latest_payment(order_id))
                if adopted is not None:
                    return _from_payment(adopted)
                if resend:
                    raise
                continue
            return await self._read_after_create(self._payment_answer(request, order_id, response))
        raise AssertionError("unreachable: the loop returns or raises")

    @staticmethod
    async def _read_after_create(read: Awaitable[_T]) -> _T:
        """Await a read made after a create may have been processed: its failure leaves the
        payment's existence unknown, so it is reported as ``ambiguous``."""
        try:
            return await read
        except CallFailed as exc:
            raise CallFailed("ambiguous", exc.code, exc.message, exc.status_code) from exc

    async def _orders(self, receipt: str) -> list[dict[str, Any]]:
        response = await self._http.request(
            "GET",
            "/v1/orders",
            idempotent=True,
            params={"receipt": receipt, "count": str(ORDERS_PER_RECEIPT_MAX)},
        )
        body = json_object(response)
        items = body.get("items") if body is not None and response.status_code == 200 else None
        if not isinstance(items, list):
            raise CallFailed("not_sent", "unexpected_answer", response.text[:200])
        return [item for item in items if isinstance(item, dict)]

    async def _order_for(
        self, request: ChargeRequest, amount: int
    ) -> dict[str, Any] | ProcessorError:
        """The oldest order for our receipt, created if there is none.  Raises CallFailed."""
        orders = await self._orders(request.payment_id)
        if orders:
            return orders[-1]  # listed newest first
        response = await self._http.request(
            "POST",
            "/v1/orders",
            idempotent=True,
            json={
                "amount": amount,
                "currency": request.currency,
                "receipt": request.payment_id,
                "payment_capture": 1 if request.capture == "automatic" else 0,
                "notes": {"payment_id": request.payment_id, "merchant_id": request.merchant_id},
            },
        )
        if response.status_code != 200:
            return unexpected(NAME, response.status_code, response.text, charge_possible=False)
        # Re-read: if a retried create left two orders, every charger must pick the same one.
        orders = await self._orders(request.payment_id)
        if orders:
            return orders[-1]
        created = json_object(response)
        return created if created is not None else unexpected(NAME, 200, "", charge_possible=False)

    async def _latest_payment(self, order_id: str) -> dict[str, Any] | None:
        response = await self._http.request(
            "GET", f"/v1/orders/{order_id}/payments", idempotent=True
        )
        body = json_object(response)
        items = body.get("items") if body is not None else None
        if response.status_code != 200 or not isinstance(items, list):
            raise CallFailed("not_sent", "unexpected_answer", response.text[:200])
        return items[0] if items and isinstance(items[0], dict) else None

    async def _payment_body(
        self, request: ChargeRequest, amount: int, order_id: str
    ) -> dict[str, Any] | ProcessorError:
        body: dict[str, Any] = {
            "amount": amount,
            "currency": request.currency,
            "order_id": order_id,
            "email": request.customer.email,
            "contact": request.customer.phone,
            "callback_url": request.return_url,
            "notes": {"payment_id": request.payment_id},
        }
        method = request.method
        if isinstance(method, CardMethod):
            try:
                secret = await self._vault.reveal(method)
            except KeyError:
                return ProcessorError(NAME, "card_token_unknown", method.token, False, False)
            body["method"] = "card"
            body["card"] = {
                "number": secret.pan,
                "name": secret.holder_name,
                "expiry_month": f"{secret.exp_month:02d}",
                "expiry_year": str(secret.exp_year),
            }
        elif isinstance(method, UpiMethod):
            body["method"] = "upi"
            body["vpa"] = method.vpa
            body["upi"] = {"flow": "collect", "vpa": method.vpa}
        elif isinstance(method, NetbankingMethod):
            body["method"] = "netbanking"
            body["bank"] = method.bank_code
        return body

    async def _payment_answer(  # noqa: PLR0911 (one per answer)
        self, request: ChargeRequest, order_id: str, response: httpx.Response
    ) -> ChargeResult:
        body = json_object(response) or {}
        if response.status_code == 200:
            payment_id = body.get("razorpay_payment_id")
            if not isinstance(payment_id, str):
                return unexpected(NAME, 200, body, charge_possible=True)
            steps = body.get("next") or []
            for step in steps if isinstance(steps, list) else []:
                action, url = step.get("action"), step.get("url")
                if action == "redirect" and isinstance(url, str):
                    redirect = (
                        RedirectAction("three_d_secure", url)
                        if request.method.type == "card"
                        else RedirectAction("netbanking_redirect", url)
                    )
                    return RequiresAction(NAME, payment_id, redirect)
                if action == "poll" and isinstance(request.method, UpiMethod):
                    return RequiresAction(NAME, payment_id, UpiCollectAction(request.method.vpa))
            return await self._fetch(payment_id)
        error = body.get("error")
        if response.status_code == 400 and isinstance(error, dict):
            metadata = error.get("metadata") or {}
            if error.get("reason") == "order_already_paid":
                adopted = await self._latest_payment(order_id)
                if adopted is not None:
                    return _from_payment(adopted)
            elif isinstance(metadata, dict) and isinstance(metadata.get("payment_id"), str):
                return _failure(
                    str(error.get("reason")),
                    str(error.get("description")),
                    request.method.type,
                    metadata["payment_id"],
                )
        return unexpected(NAME, response.status_code, body, charge_possible=False)

    async def _fetch(self, payment_id: str) -> ChargeResult:
        response = await self._http.request("GET", f"/v1/payments/{payment_id}", idempotent=True)
        body = json_object(response)
        if response.status_code != 200 or body is None:
            return unexpected(NAME, response.status_code, response.text, charge_possible=True)
        return _from_payment(body)

    # --- status ----------------------------------------------------------------------------

    async def status(self, payment_id: str) -> StatusResult:
        """Enquiry by our reference: the oldest order with ``receipt == payment_id`` and its
        newest payment.  An order without payments charged nothing: ``NotFound``."""
        try:
            orders = await self._orders(payment_id)
            if not orders:
                return NotFound(NAME, payment_id)
            latest = await self._latest_payment(str(orders[-1]["id"]))
        except CallFailed as exc:
            return enquiry_error(NAME, exc)
        if latest is None:
            return NotFound(NAME, payment_id)
        result = _from_payment(latest)
        if isinstance(result, RequiresAction):
            return Pending(NAME, result.provider_ref, "waiting for the customer")
        return result

    # --- capture, refund, void -------------------------------------------------------------

    async def capture(
        self, ref: PaymentRef, amount_minor: int, capture_id: str, *, final: bool = True
    ) -> OperationResult:
        """Razorpay captures the whole authorized amount only; a partial amount is refused by
        Razorpay and returned as ``Refused``, and so is a non-final capture (no second one
        could follow)."""
        if not final:
            return Refused(NAME, "partial_capture_not_supported", "Razorpay captures once")
        try:
            amount = to_razorpay_amount(amount_minor, ref.currency)
            response = await self._http.request(
                "POST",
                f"/v1/payments/{ref.provider_ref}/capture",
                idempotent=True,
                json={"amount": amount, "currency": ref.currency},
            )
            if response.status_code == 200:
                return Done(NAME, ref.provider_ref, amount_minor)
            body = json_object(response) or {}
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            assert isinstance(error, dict)
            description = str(error.get("description", ""))
            if "already been captured" in description:
                payment = await self._fetch(ref.provider_ref)
                if isinstance(payment, Approved) and payment.captured:
                    return Done(NAME, ref.provider_ref, payment.amount_minor)
            return Refused(NAME, str(error.get("reason") or error.get("code")), description)
        except AmountNotRepresentable as exc:
            return Refused(NAME, "unsupported_currency", str(exc))
        except CallFailed as exc:
            return call_error(NAME, exc, money_moving=True)

    async def _refund_with_receipt(self, payment_ref: str, refund_id: str) -> dict[str, Any] | None:
        response = await self._http.request(
            "GET", f"/v1/payments/{payment_ref}/refunds", idempotent=True
        )
        body = json_object(response) or {}
        items = body.get("items")
        if response.status_code != 200 or not isinstance(items, list):
            raise CallFailed("not_sent", "unexpected_answer", response.text[:200])
        for item in items:
            if isinstance(item, dict) and item.get("receipt") == refund_id:
                return item
        return None

    async def refund(  # noqa: PLR0911 (one per answer)
        self, ref: PaymentRef, amount_minor: int, refund_id: str
    ) -> OperationResult:
        try:
            amount = to_razorpay_amount(amount_minor, ref.currency)
        except AmountNotRepresentable as exc:
            return Refused(NAME, "unsupported_currency", str(exc))
        try:
            existing = await self._refund_with_receipt(ref.provider_ref, refund_id)
            if existing is not None:
                return Done(NAME, str(existing["id"]), int(existing["amount"]))
            response = await self._http.request(
                "POST",
                f"/v1/payments/{ref.provider_ref}/refund",
                idempotent=False,
                json={"amount": amount, "receipt": refund_id, "notes": {"refund_id": refund_id}},
            )
        except CallFailed as exc:
            if not exc.maybe_delivered:
                return call_error(NAME, exc, money_moving=True)
            try:
                existing = await self._refund_with_receipt(ref.provider_ref, refund_id)
            except CallFailed:
                existing = None
            if existing is not None:
                return Done(NAME, str(existing["id"]), int(existing["amount"]))
            return ProcessorError(
                NAME,
                "refund_outcome_unknown",
                f"{exc.code}; retry after the read timeout, the connector enquires first",
                retryable=True,
                charge_possible=True,
            )
        body = json_object(response) or {}
        if response.status_code == 200 and isinstance(body.get("id"), str):
            return Done(NAME, body["id"], amount_minor)
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        assert isinstance(error, dict)
        return Refused(NAME, str(error.get("reason") or "refused"), str(error.get("description")))

    async def void(self, ref: PaymentRef) -> OperationResult:
        return Refused(
            NAME,
            "void_not_supported",
            "Razorpay has no void; an authorized payment left uncaptured is released by Razorpay",
        )

    # --- callbacks -------------------------------------------------------------------------

    def verify_callback(self, order_id: str, payment_id: str, signature: str) -> bool:
        """Whether a redirect's ``razorpay_signature`` is HMAC-SHA256 of
        ``order_id|payment_id`` under our key secret (never trust a callback without it)."""
        expected = hmac.new(
            self._key_secret.encode(), f"{order_id}|{payment_id}".encode(), hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, signature)


def _from_payment(payment: dict[str, Any]) -> ChargeResult:
    """A Razorpay payment entity as a result."""
    payment_id = str(payment.get("id"))
    status = payment.get("status")
    amount = payment.get("amount")
    if status in ("authorized", "captured", "refunded") and isinstance(amount, int):
        acquirer = payment.get("acquirer_data") or {}
        rrn = acquirer.get("rrn") if isinstance(acquirer, dict) else None
        return Approved(
            NAME,
            payment_id,
            amount,
            str(payment.get("currency")),
            captured=status != "authorized",
            network_ref=rrn if isinstance(rrn, str) else None,
        )
    if status == "failed":
        return _failure(
            str(payment.get("error_reason")),
            str(payment.get("error_description")),
            str(payment.get("method")),
            payment_id,
        )
    if status == "created":
        vpa = payment.get("vpa")
        if payment.get("method") == "upi" and isinstance(vpa, str):
            return RequiresAction(NAME, payment_id, UpiCollectAction(vpa))
        return Pending(NAME, payment_id, "waiting for the customer")
    return unexpected(NAME, 200, payment, charge_possible=True)


def _failure(reason: str, description: str, method: str, payment_id: str) -> Declined | Failed:
    if reason in FAILURE_REASONS:
        return Failed(NAME, description, reason, payment_id)
    if reason == "payment_timed_out":
        if method == "upi":
            return Declined(NAME, "upi_timeout", reason, description, payment_id)
        return Failed(NAME, description, reason, payment_id)
    code = DECLINE_REASONS.get(reason, "do_not_honor" if method == "card" else "bank_rejected")
    return Declined(NAME, code, reason, description, payment_id)
