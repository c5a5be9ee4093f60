"""Bank transfer connector: NEFT, RTGS and IMPS pay-ins through an HDFC/ICICI-style corporate
banking API (virtual accounts and fund transfers, ``sandbox.bank``).

A charge opens a virtual account (VA) for the payment: our ``payment_id`` is its
``clientReference``, the expected amount is the payment's, the only allowed mode is the method's
(NEFT, RTGS or IMPS) and the customer's account (IFSC and last four digits) is the only remitter
accepted (third-party validation).  The answer is ``Pending`` with the transfer instructions;
the customer's bank moves the money; :meth:`BankTransferConnector.status` then reports
``Approved`` with the UTR (NEFT/RTGS) or RRN (IMPS), or the bank's rejection.

A refund is a transfer back to the account that paid (IMPS up to ₹5 lakh, RTGS above), with the
refund id as its ``clientReference``.  Void closes a VA that was not credited.

Every POST carries a ``clientReference`` the bank deduplicates (a repeat answers the existing
record), so all calls are retried on ambiguous failures.  The bank enforces RTGS's ₹2 lakh
minimum and IMPS's ₹5 lakh maximum; the connector reports them as declines
(``amount_below_method_minimum``, ``amount_over_method_limit``).

Money: rupee strings with two decimals (``amounts.to_bank_amount``); INR only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Unpack

from models.events import DeclineCode
from models.methods import BankTransferMethod
from streams.authorization import METHOD_LIMIT_MINOR_INR
from streams.connectors.amounts import (
    AmountNotRepresentable,
    from_bank_amount,
    to_bank_amount,
)
from streams.connectors.base import (
    Approved,
    BankTransferInstructions,
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
    Refused,
    StatusResult,
    call_error,
    enquiry_error,
    unexpected,
)
from streams.connectors.http import CallFailed, HttpConnector, HttpOptions, json_object

NAME: ProviderName = "bank_transfer"
IMPS_MAX_MINOR = METHOD_LIMIT_MINOR_INR["imps"]
MODE_NAMES: dict[str, Literal["neft", "rtgs", "imps"]] = {
    "NEFT": "neft",
    "RTGS": "rtgs",
    "IMPS": "imps",
}

# Bank error / reject codes -> RizzPay decline codes.
DECLINE_CODES: dict[str, DeclineCode] = {
    "RTGS_MIN_AMOUNT": "amount_below_method_minimum",
    "IMPS_MAX_AMOUNT": "amount_over_method_limit",
    "INSUFFICIENT_FUNDS": "insufficient_funds",
    "BANK_REJECTED": "bank_rejected",
    "TPV_MISMATCH": "bank_rejected",
}


class BankTransferConnector(HttpConnector):
    """See the module docstring.  ``settlement_account`` and ``settlement_ifsc``: RizzPay's own
    account that refunds are paid from."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        api_key: str,
        settlement_account: str,
        settlement_ifsc: str,
        **options: Unpack[HttpOptions],
    ) -> None:
        headers = {"X-Client-Id": client_id, "X-Api-Key": api_key}
        super().__init__(NAME, base_url, headers=headers, **options)
        self._settlement = {"ifsc": settlement_ifsc, "accountNumber": settlement_account}

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        method = request.method
        if not isinstance(method, BankTransferMethod):
            return ProcessorError(NAME, "unsupported_method", method.type, False, False)
        if request.currency != "INR":
            return ProcessorError(NAME, "unsupported_currency", request.currency, False, False)
        body = {
            "clientReference": request.payment_id,
            "expectedAmount": to_bank_amount(request.amount_minor),
            "currency": "INR",
            "allowedModes": [method.type.upper()],
            "remitter": {"ifsc": method.ifsc, "accountLast4": method.account_last4},
            "remarks": f"RizzPay {request.payment_id}",
        }
        # Opening a VA moves no money; the customer can only pay once they see it.
        sent = await self._post("/cbs/v1/virtual-accounts", body, money_moving=False)
        if isinstance(sent, ProcessorError):
            return sent
        status_code, answer = sent
        if status_code in (200, 201) and isinstance(answer.get("virtualAccount"), dict):
            return _from_va(answer["virtualAccount"])
        code = str(answer.get("errorCode"))
        if status_code == 422 and code in DECLINE_CODES:
            return Declined(NAME, DECLINE_CODES[code], code, str(answer.get("errorMessage")))
        return unexpected(NAME, status_code, answer, charge_possible=False)

    async def _post(
        self, path: str, body: dict[str, Any] | None, *, money_moving: bool
    ) -> tuple[int, dict[str, Any]] | ProcessorError:
        """POST ``body``: the answer's status and JSON object (empty if none), or the error for
        a call that got no answer.  Every bank POST names a ``clientReference`` the bank
        deduplicates, so it is retried even after an ambiguous failure."""
        try:
            response = await self._http.request("POST", path, idempotent=True, json=body)
        except CallFailed as exc:
            return call_error(NAME, exc, money_moving=money_moving)
        return response.status_code, json_object(response) or {}

    async def _va(self, payment_id: str) -> dict[str, Any] | None:
        response = await self._http.request(
            "GET", f"/cbs/v1/virtual-accounts/{payment_id}", idempotent=True
        )
        if response.status_code == 404:
            return None
        body = json_object(response) or {}
        va = body.get("virtualAccount")
        if response.status_code != 200 or not isinstance(va, dict):
            raise CallFailed("not_sent", f"unexpected_{response.status_code}", response.text[:200])
        return va

    async def status(self, payment_id: str) -> StatusResult:
        """The VA of our reference: credited, rejected, still waiting, or ``NotFound``."""
        try:
            va = await self._va(payment_id)
        except CallFailed as exc:
            return enquiry_error(NAME, exc)
        return NotFound(NAME, payment_id) if va is None else _from_va(va)

    async def capture(
        self, ref: PaymentRef, amount_minor: int, capture_id: str, *, final: bool = True
    ) -> OperationResult:
        """A credited transfer is final: capture only confirms the credit covers the amount."""
        result = await self.status(ref.payment_id)
        if isinstance(result, ProcessorError):
            return result
        if isinstance(result, Approved) and amount_minor <= result.amount_minor:
            return Done(NAME, result.provider_ref, amount_minor)
        return Refused(NAME, "not_credited", "the virtual account has no matching credit")

    async def refund(  # noqa: PLR0911 (one per answer)
        self, ref: PaymentRef, amount_minor: int, refund_id: str
    ) -> OperationResult:
        try:
            va = await self._va(ref.payment_id)
        except CallFailed as exc:
            return call_error(NAME, exc, money_moving=False)
        credits = va.get("credits") if va is not None else None
        if not isinstance(credits, list) or not credits or not isinstance(credits[0], dict):
            return Refused(NAME, "not_credited", "nothing was credited to refund")
        payer = credits[0].get("remitter")
        if not isinstance(payer, dict):
            return unexpected(NAME, 200, credits[0], charge_possible=False)
        try:
            amount = to_bank_amount(amount_minor)
        except AmountNotRepresentable as exc:
            return Refused(NAME, "invalid_amount", str(exc))
        body = {
            "clientReference": refund_id,
            "mode": "IMPS" if amount_minor <= IMPS_MAX_MINOR else "RTGS",
            "amount": amount,
            "remitter": self._settlement,
            "beneficiary": {"ifsc": payer.get("ifsc"), "accountNumber": payer.get("accountNumber")},
            "remarks": f"Refund {refund_id} of {ref.payment_id}",
        }
        sent = await self._post("/cbs/v1/transfers", body, money_moving=True)
        if isinstance(sent, ProcessorError):
            return sent
        status_code, answer = sent
        transfer = answer.get("transfer")
        if status_code in (200, 201) and isinstance(transfer, dict):
            if transfer.get("status") == "REJECTED":
                return Refused(
                    NAME, str(transfer.get("rejectCode")), str(transfer.get("rejectReason"))
                )
            return Done(NAME, str(transfer.get("utr") or transfer.get("rrn")), amount_minor)
        return Refused(NAME, str(answer.get("errorCode")), str(answer.get("errorMessage")))

    async def void(self, ref: PaymentRef) -> OperationResult:
        path = f"/cbs/v1/virtual-accounts/{ref.payment_id}/close"
        sent = await self._post(path, None, money_moving=False)
        if isinstance(sent, ProcessorError):
            return sent
        status_code, answer = sent
        if status_code == 200:
            return Done(NAME, ref.provider_ref, 0)
        return Refused(NAME, str(answer.get("errorCode")), str(answer.get("errorMessage")))


def _instructions(va: dict[str, Any]) -> BankTransferInstructions | None:
    try:
        amount = from_bank_amount(str(va.get("expectedAmount")))
        expires = va.get("expiresAt")
        modes = tuple(MODE_NAMES[m] for m in va.get("allowedModes", []) if m in MODE_NAMES)
        return BankTransferInstructions(
            account_number=str(va["vaNumber"]),
            ifsc=str(va["ifsc"]),
            beneficiary_name=str(va.get("beneficiaryName", "")),
            amount_minor=amount,
            currency="INR",
            modes=modes,
            expires_at=datetime.fromisoformat(expires) if isinstance(expires, str) else None,
        )
    except (AmountNotRepresentable, KeyError, ValueError):
        return None


def _from_va(va: dict[str, Any]) -> ChargeResult:
    """A virtual account's state as a result."""
    number = str(va.get("vaNumber"))
    status = va.get("status")
    if status == "CREDITED":
        credits = va.get("credits") or []
        credit = credits[0] if credits and isinstance(credits[0], dict) else {}
        try:
            amount = from_bank_amount(str(credit.get("amount")))
        except AmountNotRepresentable:
            return unexpected(NAME, 200, va, charge_possible=True)
        reference = credit.get("utr") or credit.get("rrn")
        return Approved(
            NAME,
            number,
            amount,
            "INR",
            captured=True,
            network_ref=reference if isinstance(reference, str) else None,
        )
    if status == "REJECTED":
        code = str(va.get("rejectCode"))
        return Declined(
            NAME, DECLINE_CODES.get(code, "bank_rejected"), code, "transfer rejected", number
        )
    if status == "ACTIVE":
        return Pending(NAME, number, "waiting for the customer's transfer", _instructions(va))
    if status in ("EXPIRED", "CLOSED"):
        return Failed(NAME, f"virtual account {str(status).lower()}", str(status), number)
    return unexpected(NAME, 200, va, charge_possible=True)
