"""Stripe connector: international (non-INR) cards through PaymentIntents.

A charge is one ``POST /v1/payment_intents`` with ``confirm=true`` and our ``payment_id`` in
``metadata[payment_id]``.  Every POST carries an ``Idempotency-Key`` derived from our ids, so
every call is safe to repeat and is retried on ambiguous failures:

=================================== ================================== =======================
call                                Idempotency-Key                    notes
=================================== ================================== =======================
create + confirm                    ``rizzpay:{payment_id}:charge``    one PaymentIntent ever
``…/{pi}/capture``                  ``rizzpay:{payment_id}:capture:…`` per capture id
``POST /v1/refunds``                ``rizzpay:{refund_id}``            per refund id
``…/{pi}/cancel`` (void)            ``rizzpay:{payment_id}:void``
``GET`` retrieve / search           -                                  reads
=================================== ================================== =======================

Stripe keeps idempotency keys for at least 24 hours; a retry after that would not be
deduplicated by the key, which is why the status enquiry (search by ``metadata['payment_id']``)
exists.  Stripe's Search is eventually consistent (documented: up to a minute behind), so the
router enquires no sooner than the failed call's deadline and Stripe is never failed over from
(it is the only connector for its routes).

Money: integers of the smallest unit; three-decimal currencies in multiples of 10
(``amounts.to_stripe_amount``).
"""

from __future__ import annotations

from typing import Any, Unpack

import httpx

from models.events import DeclineCode
from models.methods import CardMethod
from streams.connectors.amounts import AmountNotRepresentable, to_stripe_amount
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
    call_error,
    enquiry_error,
    unexpected,
)
from streams.connectors.cards import CardVault
from streams.connectors.http import CallFailed, HttpConnector, HttpOptions, json_object

NAME: ProviderName = "stripe"

# Stripe decline_code / code -> RizzPay decline code.
DECLINE_CODES: dict[str, DeclineCode] = {
    "insufficient_funds": "insufficient_funds",
    "do_not_honor": "do_not_honor",
    "generic_decline": "do_not_honor",
    "card_declined": "do_not_honor",
    "expired_card": "expired_card",
}
FAILURE_CODES = frozenset(
    {"payment_intent_authentication_failure", "incorrect_number", "invalid_number"}
)


class StripeConnector(HttpConnector):
    """See the module docstring."""

    def __init__(
        self,
        *,
        base_url: str,
        secret_key: str,
        vault: CardVault,
        **options: Unpack[HttpOptions],
    ) -> None:
        super().__init__(
            NAME, base_url, headers={"Authorization": f"Bearer {secret_key}"}, **options
        )
        self._vault = vault

    async def _post(self, path: str, key: str, form: dict[str, str]) -> httpx.Response:
        return await self._http.request(
            "POST", path, idempotent=True, data=form, headers={"Idempotency-Key": key}
        )

    # --- charge ----------------------------------------------------------------------------

    async def charge(self, request: ChargeRequest) -> ChargeResult:  # noqa: PLR0911 (per answer)
        method = request.method
        if not isinstance(method, CardMethod):
            return ProcessorError(NAME, "unsupported_method", method.type, False, False)
        try:
            amount = to_stripe_amount(request.amount_minor, request.currency)
            secret = await self._vault.reveal(method)
        except AmountNotRepresentable as exc:
            return ProcessorError(NAME, "amount_not_representable", str(exc), False, False)
        except KeyError:
            return ProcessorError(NAME, "card_token_unknown", method.token, False, False)
        form = {
            "amount": str(amount),
            "currency": request.currency.lower(),
            "confirm": "true",
            "capture_method": "automatic" if request.capture == "automatic" else "manual",
            "payment_method_data[type]": "card",
            "payment_method_data[card][number]": secret.pan,
            "payment_method_data[card][exp_month]": str(secret.exp_month),
            "payment_method_data[card][exp_year]": str(secret.exp_year),
            "return_url": request.return_url,
            "metadata[payment_id]": request.payment_id,
            "metadata[merchant_id]": request.merchant_id,
        }
        if request.capture == "manual":
            # Multicapture lets a merchant capture a hold in parts (``final_capture=false``).
            form["payment_method_options[card][request_multicapture]"] = "if_available"
        if request.description:
            form["description"] = request.description
        try:
            response = await self._post(
                "/v1/payment_intents", f"rizzpay:{request.payment_id}:charge", form
            )
        except CallFailed as exc:
            return call_error(NAME, exc, money_moving=True)
        body = json_object(response) or {}
        if response.status_code == 200:
            return _from_intent(body)
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        if error is None:
            return unexpected(NAME, response.status_code, body, charge_possible=True)
        if response.status_code == 402 and error.get("type") == "card_error":
            pi = error.get("payment_intent")
            return _from_error(error, str(pi.get("id")) if isinstance(pi, dict) else None)
        if response.status_code == 409:
            # The same key is being processed right now (a retry raced the original).
            return ProcessorError(NAME, "idempotency_key_in_use", str(error), True, True)
        # idempotency_error (same key, other parameters) means we changed a request under a
        # used key: a bug, and the first request may have charged.
        return unexpected(
            NAME,
            response.status_code,
            error,
            charge_possible=error.get("type") == "idempotency_error",
        )

    # --- status ----------------------------------------------------------------------------

    async def status(self, payment_id: str) -> StatusResult:
        """Search by ``metadata['payment_id']``; the newest PaymentIntent decides."""
        try:
            response = await self._http.request(
                "GET",
                "/v1/payment_intents/search",
                idempotent=True,
                params={"query": f"metadata['payment_id']:'{payment_id}'"},
            )
        except CallFailed as exc:
            return enquiry_error(NAME, exc)
        body = json_object(response) or {}
        data = body.get("data")
        if response.status_code != 200 or not isinstance(data, list):
            return unexpected(NAME, response.status_code, body, charge_possible=True)
        if not data:
            return NotFound(NAME, payment_id)
        return _from_intent(data[0])

    # --- capture, refund, void -------------------------------------------------------------

    async def _operation(
        self, path: str, key: str, form: dict[str, str], amount_minor: int
    ) -> OperationResult:
        try:
            response = await self._post(path, key, form)
        except CallFailed as exc:
            return call_error(NAME, exc, money_moving=True)
        body = json_object(response) or {}
        if response.status_code == 200 and isinstance(body.get("id"), str):
            return Done(NAME, body["id"], amount_minor)
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        assert isinstance(error, dict)
        return Refused(NAME, str(error.get("code") or error.get("type")), str(error.get("message")))

    async def capture(
        self, ref: PaymentRef, amount_minor: int, capture_id: str, *, final: bool = True
    ) -> OperationResult:
        try:
            amount = to_stripe_amount(amount_minor, ref.currency)
        except AmountNotRepresentable as exc:
            return Refused(NAME, "amount_not_representable", str(exc))
        return await self._operation(
            f"/v1/payment_intents/{ref.provider_ref}/capture",
            f"rizzpay:{ref.payment_id}:capture:{capture_id}",
            {"amount_to_capture": str(amount)} | ({} if final else {"final_capture": "false"}),
            amount_minor,
        )

    async def refund(self, ref: PaymentRef, amount_minor: int, refund_id: str) -> OperationResult:
        try:
            amount = to_stripe_amount(amount_minor, ref.currency)
        except AmountNotRepresentable as exc:
            return Refused(NAME, "amount_not_representable", str(exc))
        return await self._operation(
            "/v1/refunds",
            f"rizzpay:{refund_id}",
            {
                "payment_intent": ref.provider_ref,
                "amount": str(amount),
                "metadata[refund_id]": refund_id,
                "metadata[payment_id]": ref.payment_id,
            },
            amount_minor,
        )

    async def void(self, ref: PaymentRef) -> OperationResult:
        return await self._operation(
            f"/v1/payment_intents/{ref.provider_ref}/cancel",
            f"rizzpay:{ref.payment_id}:void",
            {"cancellation_reason": "requested_by_customer"},
            0,
        )


def _from_error(error: dict[str, Any], pi_id: str | None) -> Declined | Failed:
    code = str(error.get("code"))
    decline_code = error.get("decline_code")
    message = str(error.get("message"))
    if code in FAILURE_CODES:
        return Failed(NAME, message, code, pi_id)
    key = decline_code if isinstance(decline_code, str) else code
    return Declined(NAME, DECLINE_CODES.get(key, "do_not_honor"), key, message, pi_id)


def _from_intent(pi: dict[str, Any]) -> ChargeResult:  # noqa: PLR0911 (one per status)
    """A PaymentIntent as a result."""
    pi_id = str(pi.get("id"))
    status = pi.get("status")
    amount, currency = pi.get("amount"), str(pi.get("currency", "")).upper()
    if status in ("succeeded", "requires_capture") and isinstance(amount, int):
        charge = pi.get("latest_charge")
        return Approved(
            NAME,
            pi_id,
            amount,
            currency,
            captured=status == "succeeded",
            network_ref=charge if isinstance(charge, str) else None,
        )
    if status == "requires_action":
        action = pi.get("next_action") or {}
        redirect = action.get("redirect_to_url") if isinstance(action, dict) else None
        url = redirect.get("url") if isinstance(redirect, dict) else None
        if isinstance(url, str):
            return RequiresAction(NAME, pi_id, RedirectAction("three_d_secure", url))
        return Pending(NAME, pi_id, "requires an action this connector cannot show")
    if status == "requires_payment_method":
        error = pi.get("last_payment_error")
        if isinstance(error, dict):
            return _from_error(error, pi_id)
        return Pending(NAME, pi_id, "awaiting a payment method")
    if status in ("processing", "requires_confirmation"):
        return Pending(NAME, pi_id, str(status))
    if status == "canceled":
        return Failed(NAME, "canceled", "canceled", pi_id)
    return unexpected(NAME, 200, pi, charge_possible=True)
