"""Double-entry postings for lifecycle events: an event in, a balanced journal entry out.

Amounts are signed minor units: a debit is positive, a credit negative, and every entry's
postings sum to zero per currency (the database refuses any entry that does not).  The entry id
is the event's id, which the stream derives from the payment and the step, so posting the same
event twice hits the primary key instead of doubling money.

Accounts (``merchant:<id>:<kind>:<currency>`` and ``platform:<kind>:<currency>``):

============================  ======  =================================================
account                       normal  holds
============================  ======  =================================================
merchant authorized           credit  authorization holds not yet captured or released
merchant pending              credit  captured money owed to the merchant, not yet settled
merchant reserve              credit  money held back: open disputes (later: rolling reserve)
merchant refunds              debit   refunds paid back to customers, netted at settlement
merchant fees                 debit   MDR charged to the merchant, netted at settlement
merchant gst_payable          debit   GST charged on those fees, netted at settlement
platform authorization_holds  debit   the processor's side of every open hold
platform processor_receivable debit   what processors owe us for captured money
platform fee_income           credit  the gateway's fee income
platform gst_output_cgst/...  credit  GST the gateway owes the government, by component
============================  ======  =================================================

So a merchant's unsettled net position is ``pending − refunds − fees − gst_payable``, and the
processors owe ``processor_receivable = captured − refunded − chargebacks``.

Entries per event: authorized → hold; captured → release that much hold, book the receivable
against pending, and charge fee and GST; voided and authorization_released → release the hold;
refunded → refunds against the receivable; dispute_opened → pending to reserve; dispute_won →
back to pending; dispute_lost (chargeback) → reserve to the receivable.  Declines, failures,
expiries and customer actions move no money.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from models.events import (
    PaymentAuthorizationReleased,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDisputeLost,
    PaymentDisputeOpened,
    PaymentDisputeWon,
    PaymentRefunded,
    PaymentVoided,
)
from models.methods import MethodType
from streams.fees import CardNetwork, CardType, FeeBreakdown, MdrSchedule, breakdown_for


class UnbalancedEntry(ValueError):
    """A journal entry whose postings do not sum to zero."""


@dataclass(frozen=True)
class Posting:
    posting_id: str
    account_id: str
    amount_minor: int


@dataclass(frozen=True)
class JournalEntry:
    entry_id: str
    payment_id: str
    merchant_id: str
    kind: str
    currency: str
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        total = sum(p.amount_minor for p in self.postings)
        if total != 0 or len(self.postings) < 2:
            raise UnbalancedEntry(f"entry {self.entry_id} sums to {total}")
        if any(p.amount_minor == 0 for p in self.postings):
            raise UnbalancedEntry(f"entry {self.entry_id} has a zero posting")


@dataclass(frozen=True)
class FeeTerms:
    """What a capture is charged: the merchant's MDR schedule, the payment's method details and
    the two GST state codes that decide CGST + SGST versus IGST."""

    schedule: MdrSchedule
    method: MethodType
    merchant_state: str
    gateway_state: str
    network: CardNetwork | None = None
    card_type: CardType | None = None

    def breakdown(self, amount_minor: int) -> FeeBreakdown:
        return breakdown_for(
            self.schedule,
            amount_minor,
            self.method,
            merchant_state=self.merchant_state,
            gateway_state=self.gateway_state,
            network=self.network,
            card_type=self.card_type,
        )


def merchant_account(merchant_id: str, kind: str, currency: str) -> str:
    """Ledger account id of a merchant's ``kind`` account (pending, reserve, fees…)."""
    return f"merchant:{merchant_id}:{kind}:{currency}"


def platform_account(kind: str, currency: str) -> str:
    """Ledger account id of a platform account (processor_receivable, fee_income…)."""
    return f"platform:{kind}:{currency}"


def account_owner_kind(account_id: str) -> tuple[str, str]:
    """``(owner, kind)`` of an account id made by :func:`merchant_account`,
    :func:`platform_account` or a customer wallet (``customer:<id>:<kind>:<cur>``, see
    ``streams.wallets``).  The owner of a platform account is ``"platform"``, of a customer's
    ``"customer:<id>"`` (so it can never collide with a merchant id)."""
    parts = account_id.split(":")
    if parts[0] == "customer" and len(parts) == 4:
        return f"customer:{parts[1]}", parts[2]
    if parts[0] == "merchant" and len(parts) == 4:
        return parts[1], parts[2]
    if parts[0] == "platform" and len(parts) == 3:
        return "platform", parts[1]
    raise ValueError(f"not a ledger account id: {account_id!r}")


MoneyEvent = (
    PaymentAuthorized
    | PaymentCaptured
    | PaymentVoided
    | PaymentAuthorizationReleased
    | PaymentRefunded
    | PaymentDisputeOpened
    | PaymentDisputeWon
    | PaymentDisputeLost
)

# Entry kind per money-moving event type.
_KINDS: dict[type[BaseModel], str] = {
    PaymentAuthorized: "authorization",
    PaymentCaptured: "capture",
    PaymentVoided: "release",
    PaymentAuthorizationReleased: "release",
    PaymentRefunded: "refund",
    PaymentDisputeOpened: "dispute_hold",
    PaymentDisputeWon: "dispute_release",
    PaymentDisputeLost: "chargeback",
}


class _Builder:
    """Collects the legs of one entry: ``move(amount, from_account, to_account)`` credits the
    first and debits the second."""

    def __init__(self, event: MoneyEvent, kind: str) -> None:
        self.event_id = event.event_id
        self.payment_id = event.payment_id
        self.merchant_id = event.merchant_id
        self.kind = kind
        self.currency = event.amount.currency
        self.legs: list[tuple[str, int]] = []

    def merchant(self, kind: str) -> str:
        return merchant_account(self.merchant_id, kind, self.currency)

    def platform(self, kind: str) -> str:
        return platform_account(kind, self.currency)

    def move(self, amount_minor: int, credit: str, debit: str) -> None:
        if amount_minor > 0:
            self.legs.append((debit, amount_minor))
            self.legs.append((credit, -amount_minor))

    def entry(self) -> JournalEntry:
        return JournalEntry(
            entry_id=self.event_id,
            payment_id=self.payment_id,
            merchant_id=self.merchant_id,
            kind=self.kind,
            currency=self.currency,
            postings=tuple(
                Posting(f"{self.event_id}:{n}", account, amount)
                for n, (account, amount) in enumerate(self.legs)
            ),
        )


def entry_for(event: BaseModel, fees: FeeTerms | None = None) -> JournalEntry | None:
    """The journal entry a lifecycle event posts, or ``None`` when it moves no money.

    ``fees`` prices a capture (fee and GST postings); without it a capture books no fee, which
    is only right for callers that account for fees elsewhere (tests of the hold legs).
    """
    kind = _KINDS.get(type(event))
    if kind is None:
        return None
    assert isinstance(event, MoneyEvent)
    b = _Builder(event, kind)
    minor = event.amount.minor
    holds, authorized = b.platform("authorization_holds"), b.merchant("authorized")
    receivable, pending = b.platform("processor_receivable"), b.merchant("pending")
    match event:
        case PaymentAuthorized():
            b.move(minor, credit=authorized, debit=holds)
        case PaymentCaptured():
            b.move(minor, credit=holds, debit=authorized)
            b.move(minor, credit=pending, debit=receivable)
            if fees is not None:
                _charge(b, fees.breakdown(minor))
        case PaymentVoided() | PaymentAuthorizationReleased():
            b.move(minor, credit=holds, debit=authorized)
        case PaymentRefunded():
            b.move(minor, credit=receivable, debit=b.merchant("refunds"))
        case PaymentDisputeOpened():
            b.move(minor, credit=b.merchant("reserve"), debit=pending)
        case PaymentDisputeWon():
            b.move(minor, credit=pending, debit=b.merchant("reserve"))
        case PaymentDisputeLost():
            b.move(minor, credit=receivable, debit=b.merchant("reserve"))
    return b.entry()


def _charge(b: _Builder, breakdown: FeeBreakdown) -> None:
    b.move(breakdown.fee_minor, credit=b.platform("fee_income"), debit=b.merchant("fees"))
    gst = breakdown.gst
    for component, minor in (
        ("cgst", gst.cgst_minor),
        ("sgst", gst.sgst_minor),
        ("igst", gst.igst_minor),
    ):
        b.move(minor, credit=b.platform(f"gst_output_{component}"), debit=b.merchant("gst_payable"))
