"""The connector interface: what RizzPay asks of a processor and the typed answers it gets back.

Money is always an ``int`` of minor units (paise for INR) plus an ISO 4217 code; each connector
converts to its provider's unit at its own edge (``streams.connectors.amounts``).  Every charge
carries RizzPay's ``payment_id`` as the merchant reference at the provider (Razorpay order
``receipt``, PayU ``txnid``, Stripe ``metadata[payment_id]`` and ``Idempotency-Key``, the bank's
``clientReference``), so the provider can be asked "did you charge this payment?" and a
retried charge can only ever name the same payment.

Results are values, never exceptions: a connector method returns one of the result types below
and raises only for programming errors (a method the connector does not serve, a currency it
cannot express).

=================== ==================================================================
result              meaning
=================== ==================================================================
``Approved``        money is held (``captured=False``) or taken (``captured=True``)
``Declined``        the issuer/bank/PSP said no; final, never retried elsewhere
``Failed``          final without a decline: 3-D Secure failed, customer abandoned
``RequiresAction``  the customer must act (3-D Secure, netbanking redirect, UPI collect)
``Pending``         accepted, outcome not known yet (NEFT batch, processing); poll status
``ProcessorError``  no answer or an error answer; see ``retryable``/``charge_possible``
``NotFound``        (status only) the provider has no payment with our reference
=================== ==================================================================
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from models.events import DeclineCode, PaymentRequested
from models.methods import BankTransferMethod, CardMethod, NetbankingMethod, UpiMethod
from models.money import check_currency
from streams.connectors.http import CallFailed
from streams.lifecycle import Authorize, Decline, Fail, RequireAction

if TYPE_CHECKING:
    from streams.connectors.breaker import CircuitBreaker

ProviderName = Literal["razorpay", "payu", "stripe", "bank_transfer"]
ChargeableMethod = CardMethod | UpiMethod | NetbankingMethod | BankTransferMethod

# Where a customer returns after 3-D Secure or a netbanking redirect when the caller names none.
RETURN_URL_DEFAULT = "https://checkout.rizzpay.dev/return"
DESCRIPTION_LEN_MAX = 255


@dataclass(frozen=True, slots=True)
class Customer:
    """Who pays.  PayU requires a first name, e-mail and phone on every payment; the others
    accept them.  The defaults are placeholders for merchants that send none."""

    name: str = "RizzPay Customer"
    email: str = "customer@rizzpay.dev"
    phone: str = "9999999999"


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """One payment to charge.

    ``amount_minor``: positive integer of the currency's minor unit (paise for INR).
    ``capture``: ``"automatic"`` captures as part of the charge; ``"manual"`` only holds the
    money until :meth:`Connector.capture`.  ``payment_id`` is our reference at the provider.
    """

    payment_id: str
    merchant_id: str
    amount_minor: int
    currency: str
    method: ChargeableMethod
    capture: Literal["automatic", "manual"] = "automatic"
    description: str | None = None
    customer: Customer = field(default_factory=Customer)
    return_url: str = RETURN_URL_DEFAULT

    def __post_init__(self) -> None:
        if type(self.amount_minor) is not int or self.amount_minor <= 0:
            raise ValueError(f"amount_minor must be a positive int: {self.amount_minor!r}")
        check_currency(self.currency)
        if self.description is not None and len(self.description) > DESCRIPTION_LEN_MAX:
            raise ValueError(f"description longer than {DESCRIPTION_LEN_MAX} characters")

    @classmethod
    def from_requested(
        cls, event: PaymentRequested, *, return_url: str = RETURN_URL_DEFAULT
    ) -> ChargeRequest:
        """The charge for a ``payment.requested`` event.  Raises ``ValueError`` for the RizzPay
        wallet, which no processor serves (the ledger moves wallet money itself)."""
        method = event.method
        if not isinstance(method, CardMethod | UpiMethod | NetbankingMethod | BankTransferMethod):
            raise ValueError(f"no processor serves the {method.type} method")
        return cls(
            payment_id=event.payment_id,
            merchant_id=event.merchant_id,
            amount_minor=event.amount.minor,
            currency=event.amount.currency,
            method=method,
            capture=event.capture,
            description=event.description,
            return_url=return_url,
        )


# --- what the customer must do --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedirectAction:
    """Send the customer's browser to ``url`` (the issuer's 3-D Secure page or the bank's
    netbanking login); the provider sends them back to the charge's ``return_url``."""

    action_type: Literal["three_d_secure", "netbanking_redirect"]
    url: str


@dataclass(frozen=True, slots=True)
class UpiCollectAction:
    """A collect request went to ``vpa``; the customer approves it in their UPI app.  The
    outcome arrives asynchronously: poll :meth:`Connector.status`."""

    vpa: str
    action_type: Literal["upi_collect"] = "upi_collect"


NextAction = RedirectAction | UpiCollectAction


@dataclass(frozen=True, slots=True)
class BankTransferInstructions:
    """Where the customer sends a NEFT/RTGS/IMPS transfer: a virtual account opened for this
    payment.  ``amount_minor`` in paise; only ``modes`` are accepted."""

    account_number: str
    ifsc: str
    beneficiary_name: str
    amount_minor: int
    currency: str
    modes: tuple[Literal["neft", "rtgs", "imps"], ...]
    expires_at: datetime | None = None


# --- results of a charge or a status enquiry ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Approved:
    """The provider holds (``captured=False``) or took (``captured=True``) ``amount_minor``.
    ``network_ref``: the RRN, UTR or authorization code when the provider reports one."""

    provider: ProviderName
    provider_ref: str
    amount_minor: int
    currency: str
    captured: bool
    network_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Declined:
    """Final: the issuer, bank or PSP refused.  Never retried on another connector (networks
    penalise re-trying a declined card elsewhere, and the customer's answer stays "no")."""

    provider: ProviderName
    code: DeclineCode
    provider_code: str
    message: str
    provider_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """Final without a decline: 3-D Secure failed or the customer abandoned the action."""

    provider: ProviderName
    reason: str
    provider_code: str
    provider_ref: str | None = None


@dataclass(frozen=True, slots=True)
class RequiresAction:
    """The customer must act before ``expires_at``; then poll :meth:`Connector.status`."""

    provider: ProviderName
    provider_ref: str
    action: NextAction
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """Accepted, outcome not known yet: poll :meth:`Connector.status`.  ``instructions`` are
    set for a bank transfer the customer still has to make."""

    provider: ProviderName
    provider_ref: str
    detail: str
    instructions: BankTransferInstructions | None = None


@dataclass(frozen=True, slots=True)
class ProcessorError:
    """The provider gave no usable answer.

    ``retryable``: repeating the same call later is safe and may succeed (the call is
    idempotent at the provider, or it was never delivered).  ``charge_possible``: the provider
    may have acted on a money-moving request (it was sent and no answer says otherwise), so the
    payment must not be charged anywhere else until a status enquiry says ``NotFound``.
    """

    provider: ProviderName
    code: str
    message: str
    retryable: bool
    charge_possible: bool


@dataclass(frozen=True, slots=True)
class NotFound:
    """Status enquiry only: the provider has no payment with our reference."""

    provider: ProviderName
    payment_id: str


ChargeResult = Approved | Declined | Failed | RequiresAction | Pending | ProcessorError
StatusResult = ChargeResult | NotFound
FinalResult = Approved | Declined | Failed


# --- results of capture, refund and void ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentRef:
    """A payment at one provider: our ``payment_id`` and the provider's own id for it."""

    payment_id: str
    provider_ref: str
    currency: str


@dataclass(frozen=True, slots=True)
class Done:
    """The operation took effect (or had already: every operation is idempotent by its id).
    ``provider_ref``: the provider's id of the capture/refund/cancellation."""

    provider: ProviderName
    provider_ref: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The provider refused the operation and nothing changed (e.g. refund beyond capture)."""

    provider: ProviderName
    provider_code: str
    message: str


OperationResult = Done | Refused | ProcessorError


class Connector(Protocol):
    """One processor.  Every method has a deadline (its HTTP client's timeouts and retry
    budget) and returns a result instead of raising; see the module docstring."""

    @property
    def name(self) -> ProviderName: ...

    @property
    def breaker(self) -> CircuitBreaker: ...

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Authorize ``request`` (and capture it when ``request.capture == "automatic"``)."""
        ...

    async def status(self, payment_id: str) -> StatusResult:
        """What the provider knows about our ``payment_id``: enquiry by our reference."""
        ...

    async def capture(
        self, ref: PaymentRef, amount_minor: int, capture_id: str, *, final: bool = True
    ) -> OperationResult:
        """Capture ``amount_minor`` of an authorized payment; idempotent by ``capture_id``.
        ``final``: the processor releases what is left of the hold; a non-final capture is
        refused (``partial_capture_not_supported``) by processors that capture only once."""
        ...

    async def refund(self, ref: PaymentRef, amount_minor: int, refund_id: str) -> OperationResult:
        """Refund ``amount_minor`` of a captured payment; idempotent by ``refund_id``."""
        ...

    async def void(self, ref: PaymentRef) -> OperationResult:
        """Release an authorization that was not captured."""
        ...

    async def aclose(self) -> None:
        """Close the connector's HTTP connections."""
        ...


# --- results as lifecycle commands ----------------------------------------------------------

LifecycleDecision = Authorize | RequireAction | Decline | Fail


def action_id_for(provider: ProviderName, provider_ref: str) -> str:
    """A stable lifecycle ``action_id`` for a provider's pending action, so a redelivered
    result names the same action."""
    digest = hashlib.sha256(f"action\x1f{provider}\x1f{provider_ref}".encode()).digest()
    return "act_" + base64.b32encode(digest).decode().rstrip("=").lower()[:26]


def lifecycle_decision(result: ChargeResult) -> LifecycleDecision | None:
    """The lifecycle command a charge or status result stands for, or ``None`` while there is
    nothing to decide yet (``Pending``) or the outcome is unknown (``ProcessorError``).

    ``Approved`` maps to ``Authorize`` only: the caller adds the ``Capture`` when the result
    says ``captured``."""
    match result:
        case Approved():
            return Authorize()
        case Declined():
            return Decline(decline_code=result.code)
        case Failed():
            return Fail(reason=f"{result.provider}: {result.reason}"[:255])
        case RequiresAction():
            return RequireAction(
                action_id=action_id_for(result.provider, result.provider_ref),
                action_type=result.action.action_type,
                expires_at=result.expires_at,
            )
        case Pending() | ProcessorError():
            return None


def call_error(provider: ProviderName, exc: CallFailed, *, money_moving: bool) -> ProcessorError:
    """The result for a call that got no usable answer.  ``money_moving``: the call could have
    moved money (a charge, capture or refund), so an ambiguous failure means it may have."""
    return ProcessorError(
        provider=provider,
        code=exc.code,
        message=exc.message,
        retryable=True,
        charge_possible=money_moving and exc.maybe_delivered,
    )


def enquiry_error(provider: ProviderName, exc: CallFailed) -> ProcessorError:
    """The result of a status enquiry that got no answer: whether the provider charged is
    unknown, so ``charge_possible`` is true."""
    return ProcessorError(provider, exc.code, exc.message, retryable=True, charge_possible=True)


def unexpected(
    provider: ProviderName, status_code: int, body: object, *, charge_possible: bool
) -> ProcessorError:
    """An answer the connector cannot interpret (a 4xx it does not expect, a body of the wrong
    shape).  Not retryable: the same request would get the same answer."""
    return ProcessorError(
        provider,
        f"unexpected_{status_code}",
        str(body)[:200],
        retryable=False,
        charge_possible=charge_possible,
    )


def check_amount(amount_minor: int) -> int:
    """``amount_minor`` if it is a positive int, else ``ValueError``."""
    if type(amount_minor) is not int or amount_minor <= 0:
        raise ValueError(f"amount_minor must be a positive int: {amount_minor!r}")
    return amount_minor


__all__ = [
    "RETURN_URL_DEFAULT",
    "Approved",
    "BankTransferInstructions",
    "ChargeRequest",
    "ChargeResult",
    "ChargeableMethod",
    "Connector",
    "Customer",
    "Declined",
    "Done",
    "Failed",
    "FinalResult",
    "LifecycleDecision",
    "NextAction",
    "NotFound",
    "OperationResult",
    "PaymentRef",
    "Pending",
    "ProcessorError",
    "ProviderName",
    "RedirectAction",
    "Refused",
    "RequiresAction",
    "StatusResult",
    "UpiCollectAction",
    "action_id_for",
    "call_error",
    "check_amount",
    "enquiry_error",
    "lifecycle_decision",
    "unexpected",
]
