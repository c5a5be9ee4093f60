"""A PayU-India-shaped sandbox: the ``_payment`` form post (server-to-server) and the command
API at ``/merchant/postservice.php?form=2`` (``verify_payment``, ``capture_transaction``,
``cancel_refund_transaction``, ``cancel_transaction``).

Shape (after PayU's published integration docs): ``application/x-www-form-urlencoded``
requests; the merchant ``key`` is the first field and a SHA-512 ``hash`` authenticates each
request: ``sha512(key|txnid|amount|productinfo|firstname|email|udf1|udf2|udf3|udf4|udf5||||||SALT)``
for payments and ``sha512(key|command|var1|SALT)`` for commands.  Amounts are rupee strings with
two decimals.  A payment's answer carries ``mihpayid`` (PayU's id), ``status``
(success/failure/pending), ``unmappedstatus`` (captured/auth/failed/pending/cancelled),
``error``/``error_Message`` and a reverse hash
``sha512(SALT|status||||||udf5|udf4|udf3|udf2|udf1|email|firstname|productinfo|amount|txnid|key)``.
``txn_s2s_flow=4`` asks for a JSON answer instead of a redirect; ``pre_authorize=1`` holds the
money without capturing it.

The ``error`` codes are this sandbox's, in PayU's ``E###`` style (docs/connectors.md lists them).
A ``txnid`` is accepted once: a repeat is answered ``E100`` (duplicate) and charges nothing, so
a resend is safe and the connector then asks ``verify_payment``.  Redirect steps (3-D Secure,
netbanking) end with a 303 to ``surl``/``furl`` carrying the answer's fields as query
parameters (PayU posts them through the browser).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from sandbox import PAYU_KEY, PAYU_SALT
from sandbox.core import (
    SandboxSettings,
    SandboxState,
    build_app,
    customer_page,
    parse_form,
    read_body,
)
from sandbox.instruments import Outcome, card_outcome, upi_outcome
from streams.connectors.amounts import AmountNotRepresentable, from_payu_amount
from streams.connectors.cards import mask_pan

TXNID_LEN_MAX = 64
UDFS = ("udf1", "udf2", "udf3", "udf4", "udf5")

# outcome -> (error code, message)
ERRORS: dict[Outcome, tuple[str, str]] = {
    "do_not_honor": ("E303", "Transaction declined by issuer: do not honour"),
    "insufficient_funds": ("E308", "Insufficient funds"),
    "expired_card": ("E309", "Card expired"),
    "invalid_number": ("E310", "Invalid card number"),
    "invalid_vpa": ("E501", "Invalid VPA"),
    "upi_timeout": ("E502", "UPI collect request expired"),
    "bank_rejected": ("E503", "Transaction rejected by bank"),
}
AUTH_FAILED = ("E601", "3-D Secure authentication failed")
ACTION_EXPIRED = ("E602", "Customer did not complete the payment")
NO_ERROR = ("E000", "No Error")


def payment_hash(fields: Mapping[str, str], salt: str) -> str:
    """The request hash of ``_payment``."""
    parts = [fields.get(k, "") for k in ("key", "txnid", "amount", "productinfo")]
    parts += [fields.get(k, "") for k in ("firstname", "email", *UDFS)]
    text = "|".join(parts) + "||||||" + salt
    return hashlib.sha512(text.encode()).hexdigest()


def response_hash(fields: Mapping[str, str], salt: str) -> str:
    """The reverse hash PayU puts on a payment's answer."""
    parts = [salt, fields.get("status", "")]
    tail = [fields.get(k, "") for k in reversed(UDFS)]
    tail += [fields.get(k, "") for k in ("email", "firstname", "productinfo", "amount")]
    tail += [fields.get("txnid", ""), fields.get("key", "")]
    text = "|".join(parts) + "||||||" + "|".join(tail)
    return hashlib.sha512(text.encode()).hexdigest()


def command_hash(key: str, command: str, var1: str, salt: str) -> str:
    return hashlib.sha512(f"{key}|{command}|{var1}|{salt}".encode()).hexdigest()


@dataclass
class Txn:
    mihpayid: str
    txnid: str
    amount: str  # as the merchant sent it, e.g. "1234.50"
    amount_minor: int
    mode: str  # CC | DC | NB | UPI
    bankcode: str
    fields: dict[str, str]
    created_at: float
    pre_authorize: bool
    status: str = "pending"
    unmapped: str = "pending"
    error: tuple[str, str] = NO_ERROR
    planned: Outcome = "approve"
    bank_ref_num: str = ""
    cardnum: str = ""
    vpa: str = ""
    captured_minor: int = 0
    refunds: dict[str, tuple[str, int]] = field(default_factory=dict)  # token -> (id, paise)


class PayuSandbox:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.txns: dict[str, Txn] = {}  # by txnid
        self.by_mihpayid: dict[str, Txn] = {}
        state.ledger = self.ledger
        state.reset = self.reset

    def reset(self) -> None:
        self.txns.clear()
        self.by_mihpayid.clear()

    def advance(self, txn: Txn) -> None:
        """Lazily apply the customer's side: UPI approval/expiry, abandoned redirect pages."""
        elapsed_ms = (self.state.now_s() - txn.created_at) * 1000
        settings = self.state.settings
        if txn.planned == "upi_late_success" and txn.status == "failure":
            if elapsed_ms >= settings.upi_late_success_ms:
                self._succeed(txn)
            return
        if txn.status != "pending":
            return
        if txn.mode == "UPI":
            if txn.planned in ("upi_timeout", "upi_late_success"):
                if elapsed_ms >= settings.upi_expiry_ms:
                    self._fail(txn, ERRORS["upi_timeout"])
            elif elapsed_ms >= settings.upi_approve_ms:
                if txn.planned == "approve":
                    self._succeed(txn)
                else:
                    self._fail(txn, ERRORS[txn.planned])
        elif elapsed_ms >= settings.action_expiry_s * 1000:
            self._fail(txn, ACTION_EXPIRED)

    def _succeed(self, txn: Txn) -> None:
        txn.status = "success"
        txn.unmapped = "auth" if txn.pre_authorize else "captured"
        txn.captured_minor = 0 if txn.pre_authorize else txn.amount_minor
        txn.error = NO_ERROR
        txn.bank_ref_num = self.state.new_id("", 12, "0123456789")

    def _fail(self, txn: Txn, error: tuple[str, str]) -> None:
        txn.status = "failure"
        txn.unmapped = "failed"
        txn.error = error

    def view(self, txn: Txn) -> dict[str, str]:
        """The answer's fields (postback shape), with the reverse hash."""
        self.advance(txn)
        fields = {
            "mihpayid": txn.mihpayid,
            "mode": txn.mode,
            "status": txn.status,
            "unmappedstatus": txn.unmapped,
            "key": txn.fields.get("key", ""),
            "txnid": txn.txnid,
            "amount": txn.amount,
            "productinfo": txn.fields.get("productinfo", ""),
            "firstname": txn.fields.get("firstname", ""),
            "email": txn.fields.get("email", ""),
            "phone": txn.fields.get("phone", ""),
            "bankcode": txn.bankcode,
            "bank_ref_num": txn.bank_ref_num,
            "cardnum": txn.cardnum,
            "field9": txn.error[1] if txn.status == "failure" else "Transaction Completed",
            "error": txn.error[0],
            "error_Message": txn.error[1],
            "addedon": str(int(txn.created_at)),
            **{k: txn.fields.get(k, "") for k in UDFS},
        }
        fields["hash"] = response_hash(fields, PAYU_SALT)
        return fields

    def ledger(self) -> list[dict[str, Any]]:
        entries = []
        for txn in self.txns.values():
            self.advance(txn)
            refunded = sum(paise for _, paise in txn.refunds.values())
            entries.append(
                {
                    "provider": "payu",
                    "merchant_reference": txn.txnid,
                    "provider_ref": txn.mihpayid,
                    "method": {"CC": "card", "DC": "card", "NB": "netbanking"}.get(txn.mode, "upi"),
                    "amount_minor": txn.amount_minor,
                    "currency": "INR",
                    "status": txn.unmapped,
                    "charged": txn.status == "success",
                    "captured_minor": txn.captured_minor,
                    "refunded_minor": refunded,
                }
            )
        return entries

    # --- _payment --------------------------------------------------------------------------

    def pay(self, form: dict[str, str]) -> Response:  # noqa: PLR0911, PLR0912 (per check)
        if form.get("key") != PAYU_KEY or not hmac.compare_digest(
            form.get("hash", ""), payment_hash(form, PAYU_SALT)
        ):
            return _failure("E101", "Invalid key or hash", status_code=400)
        txnid = form.get("txnid", "")
        if not txnid or len(txnid) > TXNID_LEN_MAX:
            return _failure("E102", "txnid is missing or too long", status_code=400)
        existing = self.txns.get(txnid)
        if existing is not None:
            return _failure("E100", "Duplicate transaction id", mihpayid=existing.mihpayid)
        amount_minor = _paise(form.get("amount", ""))
        if amount_minor is None:
            return _failure("E102", "Invalid amount", status_code=400)
        for required in ("productinfo", "firstname", "email", "phone", "surl", "furl"):
            if not form.get(required):
                return _failure("E102", f"{required} is missing", status_code=400)
        pg = form.get("pg", "")
        if pg not in ("CC", "DC", "NB", "UPI"):
            return _failure("E102", "Invalid pg", status_code=400)
        txn = Txn(
            mihpayid=self.state.new_id("40", 9, "0123456789"),
            txnid=txnid,
            amount=form["amount"],
            amount_minor=amount_minor,
            mode=pg,
            bankcode=form.get("bankcode", pg),
            fields=dict(form),
            created_at=self.state.now_s(),
            pre_authorize=form.get("pre_authorize") == "1",
        )
        base = self.state.public_url
        if pg in ("CC", "DC"):
            pan = form.get("ccnum", "")
            outcome = card_outcome(pan)
            if outcome == "invalid_number":
                code, message = ERRORS["invalid_number"]
                return _failure(code, message, status_code=400)
            txn.cardnum = mask_pan(pan)
            self._register(txn)
            if outcome == "three_d_secure":
                return self._pending(txn, f"{base}/sandbox/3ds/{txn.mihpayid}")
            self._decide(txn, outcome)
        elif pg == "UPI":
            txn.vpa = form.get("vpa", "")
            txn.planned = upi_outcome(txn.vpa)
            self._register(txn)
            if txn.planned == "invalid_vpa":
                self._decide(txn, "invalid_vpa")
            else:
                return self._pending(txn, None)
        else:
            bankcode = txn.bankcode
            if not (len(bankcode) == 4 and bankcode.isalnum()):
                return _failure("E102", "Invalid bankcode", status_code=400)
            self._register(txn)
            return self._pending(txn, f"{base}/sandbox/netbanking/{txn.mihpayid}")
        return JSONResponse(self.view(txn))

    def _register(self, txn: Txn) -> None:
        self.txns[txn.txnid] = txn
        self.by_mihpayid[txn.mihpayid] = txn

    def _decide(self, txn: Txn, outcome: Outcome) -> None:
        if outcome == "approve":
            self._succeed(txn)
        else:
            self._fail(txn, ERRORS[outcome])

    def _pending(self, txn: Txn, redirect_url: str | None) -> Response:
        body: dict[str, Any] = dict(self.view(txn))
        result: dict[str, Any] = {}
        if redirect_url is not None:
            result["redirect_url"] = redirect_url
        if txn.mode == "UPI":
            result["upi_collect"] = {"vpa": txn.vpa, "expiry_ms": self.state.settings.upi_expiry_ms}
        body["result"] = result
        return JSONResponse(body)

    def complete_action(self, txn: Txn, outcome: str) -> Response:
        self.advance(txn)
        if txn.status == "pending" and txn.mode != "UPI":
            if outcome == "success":
                self._succeed(txn)
            elif txn.mode == "NB":
                self._fail(txn, ERRORS["bank_rejected"])
            else:
                self._fail(txn, AUTH_FAILED)
        fields = self.view(txn)
        target = txn.fields["surl"] if txn.status == "success" else txn.fields["furl"]
        separator = "&" if "?" in target else "?"
        return RedirectResponse(target + separator + urlencode(fields), 303)

    # --- commands --------------------------------------------------------------------------

    def command(self, form: dict[str, str]) -> Response:
        command = form.get("command", "")
        var1 = form.get("var1", "")
        if form.get("key") != PAYU_KEY or not hmac.compare_digest(
            form.get("hash", ""), command_hash(PAYU_KEY, command, var1, PAYU_SALT)
        ):
            return JSONResponse({"status": 0, "msg": "Invalid Hash."}, 400)
        match command:
            case "verify_payment":
                return self.verify(var1)
            case "capture_transaction":
                return self.capture(var1, form.get("var2", ""), form.get("var3", ""))
            case "cancel_refund_transaction":
                return self.refund(var1, form.get("var2", ""), form.get("var3", ""))
            case "cancel_transaction":
                return self.cancel(var1)
            case _:
                return JSONResponse({"status": 0, "msg": "Invalid command"}, 400)

    def verify(self, var1: str) -> Response:
        details: dict[str, Any] = {}
        for txnid in var1.split("|"):
            txn = self.txns.get(txnid)
            if txn is None:
                details[txnid] = {"mihpayid": "Not Found", "status": "Not Found"}
                continue
            view = self.view(txn)
            details[txnid] = {
                "mihpayid": txn.mihpayid,
                "request_id": "",
                "bank_ref_num": view["bank_ref_num"],
                "amt": txn.amount,
                "transaction_amount": txn.amount,
                "txnid": txnid,
                "additional_charges": "0.00",
                "productinfo": view["productinfo"],
                "firstname": view["firstname"],
                "bankcode": txn.bankcode,
                "field9": view["field9"],
                "error_code": txn.error[0],
                "error_Message": txn.error[1],
                "addedon": view["addedon"],
                "payment_source": "payu",
                "unmappedstatus": txn.unmapped,
                "status": txn.status,
                "mode": txn.mode,
                "captured_amount": f"{Decimal(txn.captured_minor).scaleb(-2):.2f}",
            }
        found = sum(1 for d in details.values() if d["status"] != "Not Found")
        return JSONResponse(
            {
                "status": 1,
                "msg": f"{found} out of {len(details)} Transactions Fetched Successfully",
                "transaction_details": details,
            }
        )

    def capture(self, mihpayid: str, token: str, amount: str) -> Response:
        txn = self.by_mihpayid.get(mihpayid)
        if txn is None:
            return JSONResponse({"status": 0, "msg": "Invalid mihpayid"})
        self.advance(txn)
        if txn.unmapped == "captured":
            return JSONResponse(
                {"status": 1, "msg": "Transaction already captured", "mihpayid": mihpayid}
            )
        if txn.unmapped != "auth":
            return JSONResponse({"status": 0, "msg": "Transaction is not in auth state"})
        if _paise(amount) != txn.amount_minor:
            return JSONResponse({"status": 0, "msg": "Capture amount must equal the amount"})
        txn.unmapped = "captured"
        txn.captured_minor = txn.amount_minor
        return JSONResponse(
            {"status": 1, "msg": "Transaction captured", "mihpayid": mihpayid, "token": token}
        )

    def refund(self, mihpayid: str, token: str, amount: str) -> Response:
        txn = self.by_mihpayid.get(mihpayid)
        if txn is None:
            return JSONResponse({"status": 0, "msg": "Invalid mihpayid"})
        if not token:
            return JSONResponse({"status": 0, "msg": "Token is mandatory"})
        if token in txn.refunds:
            request_id, _ = txn.refunds[token]
            return JSONResponse(
                {
                    "status": 1,
                    "msg": "Refund Request Queued",
                    "request_id": request_id,
                    "mihpayid": mihpayid,
                    "duplicate": True,
                }
            )
        paise = _paise(amount)
        if paise is None:
            return JSONResponse({"status": 0, "msg": "Invalid amount"})
        refunded = sum(p for _, p in txn.refunds.values())
        if paise > txn.captured_minor - refunded:
            return JSONResponse(
                {"status": 0, "msg": "Refund amount is greater than the amount captured"}
            )
        request_id = self.state.new_id("", 9, "0123456789")
        txn.refunds[token] = (request_id, paise)
        return JSONResponse(
            {
                "status": 1,
                "msg": "Refund Request Queued",
                "request_id": request_id,
                "mihpayid": mihpayid,
            }
        )

    def cancel(self, mihpayid: str) -> Response:
        txn = self.by_mihpayid.get(mihpayid)
        if txn is None:
            return JSONResponse({"status": 0, "msg": "Invalid mihpayid"})
        self.advance(txn)
        if txn.unmapped == "cancelled":
            return JSONResponse({"status": 1, "msg": "Transaction already cancelled"})
        if txn.unmapped != "auth":
            return JSONResponse({"status": 0, "msg": "Only authorized transactions cancel"})
        txn.unmapped = "cancelled"
        txn.status = "failure"
        txn.error = ("E000", "Cancelled by merchant")
        return JSONResponse({"status": 1, "msg": "Transaction cancelled", "mihpayid": mihpayid})


def _paise(amount: str) -> int | None:
    """Paise of a positive rupee string with at most two decimals, else ``None``."""
    try:
        paise = from_payu_amount(amount)
    except AmountNotRepresentable:
        return None
    return paise if paise > 0 else None


def _failure(
    code: str, message: str, *, status_code: int = 200, mihpayid: str | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"status": "failure", "error": code, "error_Message": message}
    if mihpayid is not None:
        body["mihpayid"] = mihpayid
    return JSONResponse(body, status_code)


def _server_error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"status": 0, "msg": f"Internal error ({message})"}


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    state = SandboxState("payu", settings or SandboxSettings())
    sandbox = PayuSandbox(state)
    router = APIRouter()

    @router.post("/_payment")
    async def pay(request: Request) -> Response:
        return sandbox.pay(parse_form(await read_body(request)))

    @router.post("/merchant/postservice.php")
    async def postservice(request: Request) -> Response:
        return sandbox.command(parse_form(await read_body(request)))

    @router.get("/sandbox/{page}/{mihpayid}")
    async def action_page(page: str, mihpayid: str) -> Response:
        if sandbox.by_mihpayid.get(mihpayid) is None or page not in ("3ds", "netbanking"):
            return JSONResponse({"error": "unknown page"}, 404)
        title = "Issuer 3-D Secure" if page == "3ds" else "NetBanking"
        return customer_page(title, f"/sandbox/{page}/{mihpayid}", {})

    @router.post("/sandbox/{page}/{mihpayid}")
    async def action_submit(page: str, mihpayid: str, request: Request) -> Response:
        txn = sandbox.by_mihpayid.get(mihpayid)
        if txn is None or page not in ("3ds", "netbanking"):
            return JSONResponse({"error": "unknown page"}, 404)
        outcome = parse_form(await read_body(request)).get("outcome", "failure")
        return sandbox.complete_action(txn, outcome)

    return build_app(state, "PayU sandbox", router, _server_error)
