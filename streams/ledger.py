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
refunded → refunds against the receivable, and (under the merchant's ``proportional`` refund
policy) the refunded share of the fee and GST back from fee income and GST output, see
:func:`complete_refund_entries`; dispute_opened → pending to reserve; dispute_won → back to
pending; dispute_lost (chargeback) → reserve to the receivable (the fee is kept: a chargeback is
not a refund the merchant chose).  Declines, failures, expiries and customer actions move no
money.  Settlement and payout entries are built by ``streams.settlement``.

A refund's fee reversal needs the payment's history (what each capture charged, what earlier
refunds already reversed), which the event alone does not carry: :func:`entry_for` builds the
refund's own legs and :func:`complete_refund_entries` adds the reversal from the payment's state
and the charges as posted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from streams.fees import (
    CardNetwork,
    CardType,
    FeeBreakdown,
    FeeReversal,
    GstSplit,
    InvalidRefund,
    MdrSchedule,
    RefundFeePolicy,
    breakdown_for,
    fee_reversal_for_refund,
)
from streams.lifecycle import PaymentState


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


# --------------------------------------------------------------------------------------------
# Refunds: giving back the refunded share of the fee and its GST
# --------------------------------------------------------------------------------------------

REFUND_KIND = _KINDS[PaymentRefunded]
CAPTURE_KIND = _KINDS[PaymentCaptured]


def charged_by(entry: JournalEntry, merchant_state: str, gateway_state: str) -> FeeBreakdown:
    """What a posted capture entry charged: its amount (the pending credit), its fee and each
    GST component, in paise, as a :class:`FeeBreakdown`.

    Read from the postings rather than recomputed from today's schedule, so a refund reverses
    what was actually charged even if the merchant's MDR changed in between.  The supply is
    labelled by the tax actually charged (CGST + SGST: intra-state, IGST: inter-state), falling
    back to the two states given.  Raises ``ValueError`` when ``entry`` is not a capture.
    """
    if entry.kind != CAPTURE_KIND:
        raise ValueError(f"entry {entry.entry_id} is a {entry.kind}, not a capture")
    amount = fee = cgst = igst = 0
    for p in entry.postings:
        owner, kind = account_owner_kind(p.account_id)
        if owner == entry.merchant_id and kind == "pending":
            amount -= p.amount_minor
        elif owner == entry.merchant_id and kind == "fees":
            fee += p.amount_minor
        elif owner == "platform" and kind == "gst_output_cgst":
            cgst -= p.amount_minor
        elif owner == "platform" and kind == "gst_output_igst":
            igst -= p.amount_minor
    place = _place_of_supply(cgst, igst, merchant_state, gateway_state)
    gst = GstSplit(cgst, cgst, igst, 2 * cgst + igst, fee, place, gateway_state)
    return FeeBreakdown(amount, fee, gst, amount - fee - gst.total_minor)


# The label of an inter-state supply when the merchant's recorded state has since become the
# gateway's: "Other Territory".  Only the kind of tax (IGST) follows from it.
_ELSEWHERE, _ELSEWHERE_ALT = "97", "38"


def _place_of_supply(cgst: int, igst: int, merchant_state: str, gateway_state: str) -> str:
    if cgst:
        return gateway_state
    if igst and merchant_state == gateway_state:
        return _ELSEWHERE if gateway_state != _ELSEWHERE else _ELSEWHERE_ALT
    return merchant_state


def refund_fee_reversal(
    policy: RefundFeePolicy,
    captures: Sequence[FeeBreakdown],
    refund_minor: int,
    *,
    refunded_before_minor: int = 0,
) -> tuple[FeeReversal, ...]:
    """Fee and GST to give back for a refund of ``refund_minor`` paise after
    ``refunded_before_minor`` paise were refunded, of a payment captured as ``captures`` (in
    capture order): one reversal per capture the refund touches (empty under ``retained``).

    Fees are charged per capture, so refunds are allocated to captures first in, first out (the
    first capture is refunded in full before the second is touched), and each capture's share
    is reversed by :func:`streams.fees.fee_reversal_for_refund`: cumulatively ``half_up(fee × R
    / C)`` of capture ``C`` after ``R`` of it was refunded, GST recomputed on that, and exactly
    what remains once ``R == C``.  So the reversals of any sequence of refunds never exceed what
    was charged, and a full refund gives back every paisa of fee and GST.  Raises
    :class:`streams.fees.InvalidRefund` when the refunds exceed the captures.
    """
    if refund_minor <= 0 or refunded_before_minor < 0:
        raise InvalidRefund(f"refund {refund_minor} / before {refunded_before_minor} not positive")
    if refunded_before_minor + refund_minor > sum(c.amount_minor for c in captures):
        raise InvalidRefund(f"refunds {refunded_before_minor} + {refund_minor} exceed the captures")
    if policy == "retained":
        return ()
    parts: list[FeeReversal] = []
    before, left = refunded_before_minor, refund_minor
    for charged in captures:
        taken_before = min(before, charged.amount_minor)  # its share of earlier refunds
        before -= taken_before
        share = min(left, charged.amount_minor - taken_before)
        left -= share
        if share == 0:
            continue
        reversed_before = (
            fee_reversal_for_refund(policy, charged, taken_before) if taken_before else None
        )
        parts.append(
            fee_reversal_for_refund(
                policy,
                charged,
                share,
                refunded_before_minor=taken_before,
                reversed_before=reversed_before,
            )
        )
    return tuple(parts)


def with_fee_reversal(entry: JournalEntry, reversals: Sequence[FeeReversal]) -> JournalEntry:
    """``entry`` (a refund) with the reversals' legs appended: platform ``fee_income`` and
    ``gst_output_*`` debited, the merchant's ``fees`` and ``gst_payable`` credited.  Posting
    ids continue the entry's numbering, so the completed entry is as deterministic as the
    event it comes from; zero legs are left out."""
    fee = sum(r.fee_minor for r in reversals)
    tax = {
        "cgst": sum(r.gst.cgst_minor for r in reversals),
        "sgst": sum(r.gst.sgst_minor for r in reversals),
        "igst": sum(r.gst.igst_minor for r in reversals),
    }
    merchant, currency = entry.merchant_id, entry.currency
    legs: list[tuple[str, int]] = []

    def move(amount: int, credit: str, debit: str) -> None:
        if amount > 0:
            legs.append((debit, amount))
            legs.append((credit, -amount))

    move(
        fee,
        credit=merchant_account(merchant, "fees", currency),
        debit=platform_account("fee_income", currency),
    )
    gst_payable = merchant_account(merchant, "gst_payable", currency)
    for component, minor in tax.items():
        move(minor, credit=gst_payable, debit=platform_account(f"gst_output_{component}", currency))
    if not legs:
        return entry
    start = len(entry.postings)
    extra = tuple(
        Posting(f"{entry.entry_id}:{start + n}", account, amount)
        for n, (account, amount) in enumerate(legs)
    )
    return JournalEntry(
        entry.entry_id,
        entry.payment_id,
        entry.merchant_id,
        entry.kind,
        entry.currency,
        entry.postings + extra,
    )


def captures_of(state: PaymentState) -> list[PaymentCaptured]:
    """The payment's capture events, in the order they were applied."""
    return [e for a in state.applied for e in a.events if isinstance(e, PaymentCaptured)]


def complete_refund_entries(
    state: PaymentState,
    entries: Sequence[JournalEntry],
    terms: FeeTerms | None,
    charged: Mapping[str, FeeBreakdown],
) -> tuple[JournalEntry, ...]:
    """``entries`` of one step of a payment, with every refund entry completed by its fee and
    GST reversal (:func:`refund_fee_reversal`) under ``terms``' refund policy.

    ``state`` is the payment's state after the step (its applied commands hold every capture
    and refund in order); ``charged`` maps capture entry ids to what they charged (see
    :func:`charged_by`); a capture missing from it charged nothing.  Without ``terms`` no
    reversal is added.  Pure and deterministic: posting the same refund again yields the same
    postings, which the ledger's primary keys absorb.
    """
    if terms is None or not any(e.kind == REFUND_KIND for e in entries):
        return tuple(entries)
    events = [e for a in state.applied for e in a.events]
    out: list[JournalEntry] = []
    for entry in entries:
        if entry.kind != REFUND_KIND:
            out.append(entry)
            continue
        captures: list[FeeBreakdown] = []
        refunded_before = 0
        refund: PaymentRefunded | None = None
        for event in events:
            if event.event_id == entry.entry_id and isinstance(event, PaymentRefunded):
                refund = event
                break
            if isinstance(event, PaymentCaptured):
                captures.append(charged.get(event.event_id) or _nothing_charged(event, terms))
            elif isinstance(event, PaymentRefunded):
                refunded_before += event.amount.minor
        if refund is None:
            raise ValueError(f"refund entry {entry.entry_id} is not in {state.payment_id}'s state")
        reversals = refund_fee_reversal(
            terms.schedule.fee_on_refund,
            captures,
            refund.amount.minor,
            refunded_before_minor=refunded_before,
        )
        out.append(with_fee_reversal(entry, reversals))
    return tuple(out)


def _nothing_charged(event: PaymentCaptured, terms: FeeTerms) -> FeeBreakdown:
    minor = event.amount.minor
    gst = GstSplit(0, 0, 0, 0, 0, terms.merchant_state, terms.gateway_state)
    return FeeBreakdown(minor, 0, gst, minor)
