"""PayU connector: INR cards, UPI collect and netbanking through the ``_payment`` form post
(server-to-server, ``txn_s2s_flow=4``) and the command API (``/merchant/postservice.php``).

Our ``payment_id`` is PayU's ``txnid``.  Every request carries a SHA-512 hash with the salt
(:func:`payment_hash`, :func:`command_hash`); every payment answer's reverse hash
(:func:`response_hash`) is checked before it is believed.

Calls, and why each may or may not be retried:

================================ ======= =====================================================
call                             retried why
================================ ======= =====================================================
``_payment``                     yes     PayU accepts a ``txnid`` once; a repeat is refused
                                         as a duplicate (``E100``) without charging, and the
                                         connector then asks ``verify_payment``
``verify_payment``               yes     a read
``capture_transaction``          yes     idempotent by ``mihpayid``: a repeat is answered
                                         "already captured"
``cancel_refund_transaction``    yes     PayU deduplicates refunds by the token (``var2`` =
                                         our refund id)
``cancel_transaction`` (void)    yes     a repeat is answered "already cancelled"
================================ ======= =====================================================

Money: rupee strings with two decimals, converted exactly (``amounts.to_payu_amount``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Unpack

from models.events import DeclineCode
from models.methods import BankTransferMethod, CardMethod, NetbankingMethod, UpiMethod
from streams.connectors.amounts import AmountNotRepresentable, from_payu_amount, to_payu_amount
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
from streams.connectors.cards import CardVault, network_for_bin
from streams.connectors.http import CallFailed, HttpConnector, HttpOptions, json_object

NAME: ProviderName = "payu"
COMMAND_PATH = "/merchant/postservice.php"
DUPLICATE_TXNID = "E100"

# PayU error code -> decline code (the sandbox's codes; docs/connectors.md).
DECLINE_CODES: dict[str, DeclineCode] = {
    "E303": "do_not_honor",
    "E308": "insufficient_funds",
    "E309": "expired_card",
    "E501": "invalid_vpa",
    "E502": "upi_timeout",
    "E503": "bank_rejected",
}
FAILURE_CODES = {"E601": "authentication_failed", "E602": "action_expired", "E310": "invalid_card"}
CARD_BANKCODES = {
    "visa": "VISA",
    "mastercard": "MAST",
    "rupay": "RUPAY",
    "amex": "AMEX",
    "diners": "DINR",
}
# PayU's netbanking codes differ from the IFSC bank prefix for the large banks.
NETBANKING_CODES = {"HDFC": "HDFB", "ICIC": "ICIB", "SBIN": "SBIB", "UTIB": "AXIB", "KKBK": "162B"}
PRODUCT_INFO_DEFAULT = "RizzPay payment"


_UDFS = ("udf1", "udf2", "udf3", "udf4", "udf5")


def payment_hash(fields: Mapping[str, str], salt: str) -> str:
    """PayU's request hash:
    ``sha512(key|txnid|amount|productinfo|firstname|email|udf1|udf2|udf3|udf4|udf5||||||SALT)``
    (lowercase hex)."""
    head = [fields.get(k, "") for k in ("key", "txnid", "amount", "productinfo", "firstname")]
    udfs = [fields.get(k, "") for k in _UDFS]
    text = "|".join([*head, fields.get("email", ""), *udfs]) + "||||||" + salt
    return hashlib.sha512(text.encode()).hexdigest()


def response_hash(fields: Mapping[str, str], salt: str) -> str:
    """PayU's reverse hash on an answer:
    ``sha512(SALT|status||||||udf5|udf4|udf3|udf2|udf1|email|firstname|productinfo|amount|txnid|key)``."""
    udfs = [fields.get(k, "") for k in reversed(_UDFS)]
    tail = [fields.get(k, "") for k in ("email", "firstname", "productinfo", "amount", "txnid")]
    text = f"{salt}|{fields.get('status', '')}||||||" + "|".join(
        [*udfs, *tail, fields.get("key", "")]
    )
    return hashlib.sha512(text.encode()).hexdigest()


def command_hash(key: str, command: str, var1: str, salt: str) -> str:
    """PayU's command API hash: ``sha512(key|command|var1|SALT)``."""
    return hashlib.sha512(f"{key}|{command}|{var1}|{salt}".encode()).hexdigest()


class PayuConnector(HttpConnector):
    """See the module docstring."""

    def __init__(
        self,
        *,
        base_url: str,
        key: str,
        salt: str,
        vault: CardVault,
        **options: Unpack[HttpOptions],
    ) -> None:
        super().__init__(NAME, base_url, **options)
        self._key = key
        self._salt = salt
        self._vault = vault

    # --- charge ----------------------------------------------------------------------------

    async def charge(self, request: ChargeRequest) -> ChargeResult:  # noqa: PLR0911 (per answer)
        try:
            amount = to_payu_amount(request.amount_minor, request.currency)
        except AmountNotRepresentable as exc:
            return ProcessorError(NAME, "unsupported_currency", str(exc), False, False)
        form = await self._payment_form(request, amount)
        if isinstance(form, ProcessorError):
            return form
        try:
            response = await self._http.request("POST", "/_payment", idempotent=True, data=form)
        except CallFailed as exc:
            return call_error(NAME, exc, money_moving=True)
        body = json_object(response)
        if body is None:
            return unexpected(NAME, response.status_code, response.text, charge_possible=True)
        if body.get("error") == DUPLICATE_TXNID:
            # Sent before (a retry after a lost answer, or a redelivery): PayU charged nothing
            # now; the first request's state is the answer.
            verified = await self._verified(request.payment_id)
            if isinstance(verified, NotFound):
                return unexpected(NAME, 200, "duplicate txnid not found", charge_possible=True)
            return verified
        if response.status_code != 200:
            return unexpected(NAME, response.status_code, body, charge_possible=False)
        if not self._hash_ok(body):
            return ProcessorError(NAME, "response_hash_mismatch", "untrusted answer", False, True)
        return _from_answer(body, request)

    async def _payment_form(
        self, request: ChargeRequest, amount: str
    ) -> dict[str, str] | ProcessorError:
        form = {
            "key": self._key,
            "txnid": request.payment_id,
            "amount": amount,
            "productinfo": request.description or PRODUCT_INFO_DEFAULT,
            "firstname": request.customer.name,
            "email": request.customer.email,
            "phone": request.customer.phone,
            "surl": request.return_url,
            "furl": request.return_url,
            "udf1": request.merchant_id,
            "txn_s2s_flow": "4",
        }
        if request.capture == "manual":
            form["pre_authorize"] = "1"
        method = request.method
        if isinstance(method, CardMethod):
            try:
                secret = await self._vault.reveal(method)
            except KeyError:
                return ProcessorError(NAME, "card_token_unknown", method.token, False, False)
            network = method.network or network_for_bin(method.bin)
            form |= {
                "pg": "CC",
                "bankcode": CARD_BANKCODES.get(network or "", "CC"),
                "ccnum": secret.pan,
                "ccname": secret.holder_name,
                "ccexpmon": f"{secret.exp_month:02d}",
                "ccexpyr": str(secret.exp_year),
            }
        elif isinstance(method, UpiMethod):
            if method.flow != "collect":
                return ProcessorError(NAME, "unsupported_method", "UPI intent", False, False)
            form |= {"pg": "UPI", "bankcode": "UPI", "vpa": method.vpa}
        elif isinstance(method, NetbankingMethod):
            code = NETBANKING_CODES.get(method.bank_code, method.bank_code)
            form |= {"pg": "NB", "bankcode": code}
        elif isinstance(method, BankTransferMethod):
            return ProcessorError(NAME, "unsupported_method", method.type, False, False)
        form["hash"] = payment_hash(form, self._salt)
        return form

    def _hash_ok(self, answer: dict[str, Any]) -> bool:
        received = answer.get("hash")
        fields = {k: str(v) for k, v in answer.items() if isinstance(v, str)}
        return isinstance(received, str) and hmac.compare_digest(
            received, response_hash(fields, self._salt)
        )

    # --- status ----------------------------------------------------------------------------

    async def _command(self, command: str, var1: str, **extra: str) -> dict[str, Any]:
        form = {
            "key": self._key,
            "command": command,
            "var1": var1,
            "hash": command_hash(self._key, command, var1, self._salt),
            **extra,
        }
        response = await self._http.request(
            "POST", COMMAND_PATH, idempotent=True, params={"form": "2"}, data=form
        )
        body = json_object(response)
        if response.status_code != 200 or body is None:
            raise CallFailed("not_sent", f"unexpected_{response.status_code}", response.text[:200])
        return body

    async def _verified(self, payment_id: str) -> StatusResult:
        try:
            body = await self._command("verify_payment", payment_id)
        except CallFailed as exc:
            return enquiry_error(NAME, exc)
        details = body.get("transaction_details")
        entry = details.get(payment_id) if isinstance(details, dict) else None
        if not isinstance(entry, dict):
            return unexpected(NAME, 200, body, charge_possible=True)
        if entry.get("status") == "Not Found":
            return NotFound(NAME, payment_id)
        return _from_verify(entry)

    async def status(self, payment_id: str) -> StatusResult:
        """``verify_payment`` by our ``txnid``."""
        return await self._verified(payment_id)

    # --- capture, refund, void -------------------------------------------------------------

    async def _operation(
        self, command: str, ref: PaymentRef, token: str, amount_minor: int | None
    ) -> OperationResult:
        extra = {"var2": token}
        try:
            if amount_minor is not None:
                extra["var3"] = to_payu_amount(amount_minor, ref.currency)
            body = await self._command(command, ref.provider_ref, **extra)
        except AmountNotRepresentable as exc:
            return Refused(NAME, "unsupported_currency", str(exc))
        except CallFailed as exc:
            return call_error(NAME, exc, money_moving=True)
        if body.get("status") == 1:
            provider_ref = body.get("request_id") or ref.provider_ref
            return Done(NAME, str(provider_ref), amount_minor or 0)
        return Refused(NAME, command, str(body.get("msg")))

    async def capture(
        self, ref: PaymentRef, amount_minor: int, capture_id: str, *, final: bool = True
    ) -> OperationResult:
        if not final:  # PayU captures a pre-authorization once
            return Refused(NAME, "partial_capture_not_supported", "PayU captures once")
        return await self._operation("capture_transaction", ref, capture_id, amount_minor)

    async def refund(self, ref: PaymentRef, amount_minor: int, refund_id: str) -> OperationResult:
        return await self._operation("cancel_refund_transaction", ref, refund_id, amount_minor)

    async def void(self, ref: PaymentRef) -> OperationResult:
        return await self._operation("cancel_transaction", ref, f"void_{ref.payment_id}", None)


def _approved(entry: dict[str, Any], amount_field: str) -> ChargeResult:
    """A successful payment.  ``_payment`` answers and ``verify_payment`` entries name the same
    fields but for the amount (``amount`` and ``amt``): ``amount_field`` says which."""
    mihpayid = str(entry.get("mihpayid", ""))
    amount = str(entry.get(amount_field))
    bank_ref = entry.get("bank_ref_num")
    try:
        amount_minor = from_payu_amount(amount)
    except AmountNotRepresentable:
        return unexpected(NAME, 200, amount, charge_possible=True)
    return Approved(
        NAME,
        mihpayid,
        amount_minor,
        "INR",
        captured=entry.get("unmappedstatus") == "captured",
        network_ref=bank_ref if isinstance(bank_ref, str) and bank_ref else None,
    )


def _failure(code: str, message: str, mode: str, mihpayid: str | None) -> Declined | Failed:
    if code in FAILURE_CODES:
        return Failed(NAME, message, FAILURE_CODES[code], mihpayid)
    decline = DECLINE_CODES.get(code, "do_not_honor" if mode in ("CC", "DC") else "bank_rejected")
    return Declined(NAME, decline, code, message, mihpayid)


def _from_answer(answer: dict[str, Any], request: ChargeRequest) -> ChargeResult:
    """A ``_payment`` answer as a result."""
    mihpayid = str(answer.get("mihpayid", ""))
    status = answer.get("status")
    mode = str(answer.get("mode", ""))
    if status == "success":
        return _approved(answer, "amount")
    if status == "failure":
        return _failure(
            str(answer.get("error")), str(answer.get("error_Message")), mode, mihpayid or None
        )
    if status == "pending":
        result = answer.get("result") if isinstance(answer.get("result"), dict) else {}
        assert isinstance(result, dict)
        url = result.get("redirect_url")
        if isinstance(url, str):
            redirect = (
                RedirectAction("netbanking_redirect", url)
                if mode == "NB"
                else RedirectAction("three_d_secure", url)
            )
            return RequiresAction(NAME, mihpayid, redirect)
        if mode == "UPI" and isinstance(request.method, UpiMethod):
            return RequiresAction(NAME, mihpayid, UpiCollectAction(request.method.vpa))
        return Pending(NAME, mihpayid, "pending at PayU")
    return unexpected(NAME, 200, answer, charge_possible=True)


def _from_verify(entry: dict[str, Any]) -> ChargeResult:
    """A ``verify_payment`` transaction as a result; a pending one is ``Pending`` (the customer
    has not finished)."""
    mihpayid = str(entry.get("mihpayid", ""))
    status = entry.get("status")
    if status == "success":
        return _approved(entry, "amt")
    if status == "failure":
        if entry.get("unmappedstatus") == "cancelled":
            return Failed(NAME, "cancelled by merchant", "cancelled", mihpayid)
        return _failure(
            str(entry.get("error_code")),
            str(entry.get("error_Message")),
            str(entry.get("mode")),
            mihpayid,
        )
    if status == "pending":
        return Pending(NAME, mihpayid, "waiting for the customer")
    return unexpected(NAME, 200, entry, charge_possible=True)
