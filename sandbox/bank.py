"""An HDFC/ICICI-style corporate banking sandbox: virtual accounts for collections and
NEFT/RTGS/IMPS fund transfers with UTR/RRN numbers and status enquiry.

Shape (after Indian banks' corporate API conventions): JSON bodies; ``X-Client-Id`` and
``X-Api-Key`` headers; amounts are rupee strings with two decimals; every request carries the
client's own ``clientReference`` and the bank deduplicates by it (a repeat answers 200 with the
existing record, so a resend is safe); errors are ``{"errorCode", "errorMessage"}``.

Routes:

* ``POST /cbs/v1/virtual-accounts`` opens a virtual account (VA) for one expected credit:
  ``clientReference``, ``expectedAmount``, ``allowedModes`` (NEFT/RTGS/IMPS) and the
  ``remitter`` (IFSC and account last four) whose transfer alone is accepted (third-party
  validation, TPV).  ``GET /cbs/v1/virtual-accounts/{clientReference}``;
  ``POST …/{clientReference}/close``.
* ``POST /cbs/v1/transfers`` moves money from a remitter account to a beneficiary account:
  the bank playing the customer's bank (a customer paying into a VA) or RizzPay's own bank (a
  refund).  ``GET /cbs/v1/transfers/{clientReference}`` is the status enquiry.

Rules: RTGS only from ₹2,00,000 (``RTGS_MIN_AMOUNT``), IMPS up to ₹5,00,000
(``IMPS_MAX_AMOUNT``), both for VAs that allow only that mode and for transfers.  RTGS and IMPS
complete at once; NEFT is ``PENDING`` until the next batch (``neft_settle_ms``).  Reference
numbers: NEFT UTR 16 characters ``<bank4>N<yy><ddd><6 digits>``, RTGS UTR 22 characters
``<bank4>R<channel><yyyymmdd><8 digits>``, IMPS RRN 12 digits ``<y><ddd><hh><6 digits>``.  A
transfer into a VA is credited only if the VA is active, the mode is allowed, the amount equals
the expected amount and the remitter matches; otherwise it is ``REJECTED`` and the money stays
with the remitter.  The remitter account's last four digits select a test outcome
(``sandbox.instruments``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox import BANK_API_KEY, BANK_BENEFICIARY_NAME, BANK_CLIENT_ID, BANK_IFSC
from sandbox.core import (
    SandboxSettings,
    SandboxState,
    authenticated_router,
    build_app,
    parse_json_object,
    read_body,
)
from sandbox.instruments import IMPS_MAX_MINOR, RTGS_MIN_MINOR, account_outcome
from streams.connectors.amounts import AmountNotRepresentable, from_bank_amount, to_bank_amount

MODES = ("NEFT", "RTGS", "IMPS")
REFERENCE_LEN_MAX = 64
VA_PREFIX = "RIZZ"


def bank_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errorCode": code, "errorMessage": message}, status)


def _server_error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"errorCode": "INTERNAL_ERROR", "errorMessage": message}


@dataclass
class Transfer:
    transfer_id: str
    client_reference: str
    mode: str
    amount: str
    amount_minor: int
    remitter: dict[str, str]
    beneficiary: dict[str, str]
    created_at: float
    status: str  # SUCCESS | PENDING | REJECTED
    utr: str | None = None
    rrn: str | None = None
    reject_code: str | None = None
    reject_reason: str | None = None
    va_reference: str | None = None


@dataclass
class VirtualAccount:
    client_reference: str
    va_number: str
    expected_minor: int
    allowed_modes: list[str]
    remitter_ifsc: str
    remitter_last4: str
    created_at: float
    expires_at: float
    status: str = "ACTIVE"  # ACTIVE | CREDITED | REJECTED | EXPIRED | CLOSED
    credits: list[str] = field(default_factory=list)  # transfer ids
    attempts: list[str] = field(default_factory=list)  # transfer ids, rejected ones included
    reject_code: str | None = None


class BankSandbox:
    def __init__(self, state: SandboxState, bank_code: str = BANK_IFSC[:4]) -> None:
        self.state = state
        self.bank_code = bank_code
        self.vas: dict[str, VirtualAccount] = {}  # by clientReference
        self.va_numbers: dict[str, str] = {}  # va number -> clientReference
        self.transfers: dict[str, Transfer] = {}  # by clientReference
        self.by_id: dict[str, Transfer] = {}
        self._sequence = 0
        state.ledger = self.ledger
        state.reset = self.reset

    def reset(self) -> None:
        self.vas.clear()
        self.va_numbers.clear()
        self.transfers.clear()
        self.by_id.clear()

    # --- reference numbers -----------------------------------------------------------------

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def utr(self, mode: str, at: datetime) -> str:
        seq = self._next_sequence()
        if mode == "RTGS":
            return f"{self.bank_code}R5{at:%Y%m%d}{seq % 10**8:08d}"
        return f"{self.bank_code}N{at:%y}{at.timetuple().tm_yday:03d}{seq % 10**6:06d}"

    def rrn(self, at: datetime) -> str:
        seq = self._next_sequence()
        return f"{at.year % 10}{at.timetuple().tm_yday:03d}{at:%H}{seq % 10**6:06d}"

    # --- time-driven transitions -----------------------------------------------------------

    def advance_transfer(self, transfer: Transfer) -> None:
        if transfer.status != "PENDING":
            return
        if (self.state.now_s() - transfer.created_at) * 1000 >= self.state.settings.neft_settle_ms:
            transfer.status = "SUCCESS"
            if transfer.va_reference is not None:
                self._credit(self.vas[transfer.va_reference], transfer)

    def advance_va(self, va: VirtualAccount) -> None:
        for transfer_id in va.attempts:
            self.advance_transfer(self.by_id[transfer_id])
        if va.status == "ACTIVE" and self.state.now_s() >= va.expires_at:
            va.status = "EXPIRED"

    def _credit(self, va: VirtualAccount, transfer: Transfer) -> None:
        va.credits.append(transfer.transfer_id)
        va.status = "CREDITED"

    # --- views -----------------------------------------------------------------------------

    def transfer_view(self, transfer: Transfer) -> dict[str, Any]:
        self.advance_transfer(transfer)
        return {
            "transferId": transfer.transfer_id,
            "clientReference": transfer.client_reference,
            "mode": transfer.mode,
            "amount": transfer.amount,
            "currency": "INR",
            "status": transfer.status,
            "utr": transfer.utr,
            "rrn": transfer.rrn,
            "rejectCode": transfer.reject_code,
            "rejectReason": transfer.reject_reason,
            "remitter": transfer.remitter,
            "beneficiary": transfer.beneficiary,
            "createdAt": _iso(transfer.created_at),
        }

    def va_view(self, va: VirtualAccount) -> dict[str, Any]:
        self.advance_va(va)
        return {
            "clientReference": va.client_reference,
            "vaNumber": va.va_number,
            "ifsc": BANK_IFSC,
            "beneficiaryName": BANK_BENEFICIARY_NAME,
            "expectedAmount": to_bank_amount(va.expected_minor),
            "currency": "INR",
            "allowedModes": va.allowed_modes,
            "remitter": {"ifsc": va.remitter_ifsc, "accountLast4": va.remitter_last4},
            "status": va.status,
            "rejectCode": va.reject_code,
            "credits": [self.transfer_view(self.by_id[t]) for t in va.credits],
            "createdAt": _iso(va.created_at),
            "expiresAt": _iso(va.expires_at),
        }

    def ledger(self) -> list[dict[str, Any]]:
        entries = []
        for va in self.vas.values():
            self.advance_va(va)
            entries.append(
                {
                    "provider": "bank",
                    "merchant_reference": va.client_reference,
                    "provider_ref": va.va_number,
                    "method": "bank_transfer",
                    "amount_minor": va.expected_minor,
                    "currency": "INR",
                    "status": va.status,
                    "charged": va.status == "CREDITED",
                    "captured_minor": va.expected_minor if va.status == "CREDITED" else 0,
                    "refunded_minor": 0,
                }
            )
        return entries

    # --- virtual accounts ------------------------------------------------------------------

    def create_va(self, body: dict[str, Any]) -> Response:  # noqa: PLR0911 (one per check)
        reference = body.get("clientReference")
        if not isinstance(reference, str) or not 0 < len(reference) <= REFERENCE_LEN_MAX:
            return bank_error(400, "INVALID_REQUEST", "clientReference is required")
        existing = self.vas.get(reference)
        if existing is not None:
            return JSONResponse({"virtualAccount": self.va_view(existing)}, 200)
        amount = _minor(body.get("expectedAmount"))
        if amount is None:
            return bank_error(400, "INVALID_AMOUNT", "expectedAmount must be rupees, 2 decimals")
        modes = body.get("allowedModes")
        if not isinstance(modes, list) or not modes or any(m not in MODES for m in modes):
            return bank_error(400, "INVALID_MODE", "allowedModes must list NEFT, RTGS or IMPS")
        if modes == ["RTGS"] and amount < RTGS_MIN_MINOR:
            return bank_error(
                422, "RTGS_MIN_AMOUNT", "RTGS is available for ₹2,00,000 and above only"
            )
        if modes == ["IMPS"] and amount > IMPS_MAX_MINOR:
            return bank_error(422, "IMPS_MAX_AMOUNT", "IMPS is limited to ₹5,00,000")
        remitter = body.get("remitter")
        if not isinstance(remitter, dict):
            return bank_error(400, "INVALID_REQUEST", "remitter is required")
        now = self.state.now_s()
        va_number = VA_PREFIX + self.state.new_id("", 12, "0123456789")
        va = VirtualAccount(
            client_reference=reference,
            va_number=va_number,
            expected_minor=amount,
            allowed_modes=list(modes),
            remitter_ifsc=str(remitter.get("ifsc", "")),
            remitter_last4=str(remitter.get("accountLast4", "")),
            created_at=now,
            expires_at=now + self.state.settings.va_validity_s,
        )
        self.vas[reference] = va
        self.va_numbers[va_number] = reference
        return JSONResponse({"virtualAccount": self.va_view(va)}, 201)

    def close_va(self, va: VirtualAccount) -> Response:
        self.advance_va(va)
        if va.status == "CREDITED":
            return bank_error(409, "ALREADY_CREDITED", "The virtual account was credited")
        if va.status == "ACTIVE":
            va.status = "CLOSED"
        return JSONResponse({"virtualAccount": self.va_view(va)})

    # --- transfers -------------------------------------------------------------------------

    def transfer(self, body: dict[str, Any]) -> Response:  # noqa: PLR0911 (one per check)
        reference = body.get("clientReference")
        if not isinstance(reference, str) or not 0 < len(reference) <= REFERENCE_LEN_MAX:
            return bank_error(400, "INVALID_REQUEST", "clientReference is required")
        existing = self.transfers.get(reference)
        if existing is not None:
            return JSONResponse({"transfer": self.transfer_view(existing)}, 200)
        mode = body.get("mode")
        if mode not in MODES:
            return bank_error(400, "INVALID_MODE", "mode must be NEFT, RTGS or IMPS")
        amount = _minor(body.get("amount"))
        if amount is None:
            return bank_error(400, "INVALID_AMOUNT", "amount must be rupees with 2 decimals")
        if mode == "RTGS" and amount < RTGS_MIN_MINOR:
            return bank_error(
                422, "RTGS_MIN_AMOUNT", "RTGS is available for ₹2,00,000 and above only"
            )
        if mode == "IMPS" and amount > IMPS_MAX_MINOR:
            return bank_error(422, "IMPS_MAX_AMOUNT", "IMPS is limited to ₹5,00,000")
        remitter, beneficiary = body.get("remitter"), body.get("beneficiary")
        if not isinstance(remitter, dict) or not isinstance(beneficiary, dict):
            return bank_error(400, "INVALID_REQUEST", "remitter and beneficiary are required")
        account = str(remitter.get("accountNumber", ""))
        if not (account.isdigit() and 9 <= len(account) <= 18):
            return bank_error(400, "INVALID_ACCOUNT", "remitter accountNumber is invalid")
        now = self.state.now_s()
        at = datetime.fromtimestamp(now, UTC)
        transfer = Transfer(
            transfer_id=self.state.new_id("TRF", 12, "0123456789"),
            client_reference=reference,
            mode=mode,
            amount=body["amount"],
            amount_minor=amount,
            remitter={k: str(v) for k, v in remitter.items()},
            beneficiary={k: str(v) for k, v in beneficiary.items()},
            created_at=now,
            status="SUCCESS" if mode != "NEFT" else "PENDING",
        )
        if mode == "IMPS":
            transfer.rrn = self.rrn(at)
        else:
            transfer.utr = self.utr(mode, at)
        outcome = account_outcome(account)
        if outcome != "approve":
            self._reject(
                transfer,
                "INSUFFICIENT_FUNDS" if outcome == "insufficient_funds" else "BANK_REJECTED",
            )
        va_reference = self.va_numbers.get(str(beneficiary.get("accountNumber", "")))
        if va_reference is not None:
            self._into_va(self.vas[va_reference], transfer)
        self.transfers[reference] = transfer
        self.by_id[transfer.transfer_id] = transfer
        return JSONResponse({"transfer": self.transfer_view(transfer)}, 201)

    def _reject(self, transfer: Transfer, code: str) -> None:
        transfer.status = "REJECTED"
        transfer.reject_code = code
        transfer.reject_reason = {
            "INSUFFICIENT_FUNDS": "Insufficient balance in remitter account",
            "BANK_REJECTED": "Rejected by remitter bank",
            "TPV_MISMATCH": "Remitter account does not match the virtual account's",
            "AMOUNT_MISMATCH": "Amount differs from the virtual account's expected amount",
            "MODE_NOT_ALLOWED": "Mode not allowed for this virtual account",
            "VA_NOT_ACTIVE": "Virtual account is not active",
        }[code]

    def _into_va(self, va: VirtualAccount, transfer: Transfer) -> None:
        self.advance_va(va)
        transfer.va_reference = va.client_reference
        va.attempts.append(transfer.transfer_id)
        account = transfer.remitter.get("accountNumber", "")
        if transfer.status != "REJECTED":
            if va.status != "ACTIVE":
                self._reject(transfer, "VA_NOT_ACTIVE")
            elif transfer.mode not in va.allowed_modes:
                self._reject(transfer, "MODE_NOT_ALLOWED")
            elif transfer.amount_minor != va.expected_minor:
                self._reject(transfer, "AMOUNT_MISMATCH")
            elif (
                transfer.remitter.get("ifsc") != va.remitter_ifsc
                or account[-4:] != va.remitter_last4
            ):
                self._reject(transfer, "TPV_MISMATCH")
        if transfer.status == "REJECTED":
            if va.status == "ACTIVE" and transfer.reject_code in (
                "INSUFFICIENT_FUNDS",
                "BANK_REJECTED",
                "TPV_MISMATCH",
            ):
                va.status = "REJECTED"
                va.reject_code = transfer.reject_code
        elif transfer.status == "SUCCESS":
            self._credit(va, transfer)


def _minor(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        amount = from_bank_amount(value)
    except AmountNotRepresentable:
        return None
    return amount if amount > 0 else None


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat()


def _authorized(request: Request) -> bool:
    return hmac.compare_digest(
        request.headers.get("x-client-id", ""), BANK_CLIENT_ID
    ) and hmac.compare_digest(request.headers.get("x-api-key", ""), BANK_API_KEY)


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    state = SandboxState("bank", settings or SandboxSettings())
    sandbox = BankSandbox(state)

    def unauthorized() -> Response:
        return bank_error(401, "UNAUTHORIZED", "Invalid client id or API key")

    api = authenticated_router(_authorized, unauthorized, prefix="/cbs/v1")

    async def json_body(request: Request) -> dict[str, Any] | None:
        return parse_json_object(await read_body(request))

    @api.post("/virtual-accounts")
    async def create_va(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return bank_error(400, "INVALID_REQUEST", "body must be a JSON object")
        return sandbox.create_va(body)

    @api.get("/virtual-accounts/{reference}")
    async def get_va(reference: str, request: Request) -> Response:
        va = sandbox.vas.get(reference)
        if va is None:
            return bank_error(404, "NOT_FOUND", "No virtual account with this clientReference")
        return JSONResponse({"virtualAccount": sandbox.va_view(va)})

    @api.post("/virtual-accounts/{reference}/close")
    async def close_va(reference: str, request: Request) -> Response:
        va = sandbox.vas.get(reference)
        if va is None:
            return bank_error(404, "NOT_FOUND", "No virtual account with this clientReference")
        return sandbox.close_va(va)

    @api.post("/transfers")
    async def transfer(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return bank_error(400, "INVALID_REQUEST", "body must be a JSON object")
        return sandbox.transfer(body)

    @api.get("/transfers/{reference}")
    async def get_transfer(reference: str, request: Request) -> Response:
        found = sandbox.transfers.get(reference)
        if found is None:
            return bank_error(404, "NOT_FOUND", "No transfer with this clientReference")
        return JSONResponse({"transfer": sandbox.transfer_view(found)})

    return build_app(state, "Bank sandbox", api, _server_error)
