"""Settlement: from a merchant's unsettled ledger lines to a batch, its journal entries and a
payout.  Pure: no I/O, no clock of its own (every function that needs "now" takes it).

Units: every amount is an ``int`` in minor units (paise for INR) — signed where it is a ledger
posting (debit positive, credit negative, as in :mod:`streams.ledger`), non-negative where it is
a total named ``*_minor``; rates are ``int`` basis points; instants are timezone-aware
``datetime``; settlement days are IST calendar days (RBI's days; IST is UTC+05:30 all year).

Accounts settlement adds to :mod:`streams.ledger`'s table:

=================================  ======  ===============================================
account                            normal  holds
=================================  ======  ===============================================
merchant available                 credit  settled net owed to the merchant, not yet
                                           instructed for payout (a transit account)
merchant rolling_reserve           credit  rolling reserve withheld from settlements until
                                           its release date (dispute holds stay in
                                           ``reserve``)
platform settlement_payable        credit  payouts instructed, not yet confirmed by the bank
platform escrow_bank               debit   the escrow (nodal) bank account; a payout credits it
=================================  ======  ===============================================

A batch for merchant M at cutoff C covers every posting on M's ``pending``, ``refunds``, ``fees``
and ``gst_payable`` accounts whose journal entry was booked before C and that no earlier batch
settled.  Grouped by journal entry these postings are the batch's line items; each line's net is
``gross − fee − GST`` (captures add, refunds and dispute holds subtract) and the lines' nets sum
to minus the sum of the covered postings.  Then::

    base net = captured − refunds − disputes + adjustments − fees − GST
    net      = base net − reserve withheld + reserve released − instant fee − GST on it

Entries (ids derived from the batch id, so posting twice collides on a primary key):

* **settlement** (``<batch_id>``): clears each covered account (the negated sum of its covered
  postings), withholds the rolling reserve into ``rolling_reserve``, releases matured holds
  from it, books an instant-settlement fee and its GST to the platform, and credits the net to
  ``available``.
* **payout instruction** (``<batch_id>.payout``, when net > 0): ``available`` → platform
  ``settlement_payable``.
* **payout** (``<batch_id>.paid``, when the bank reports the UTR): ``settlement_payable`` →
  ``escrow_bank``.

So after a batch the merchant's covered postings and the clearing legs net to zero per account,
and ``settlement_payable`` holds exactly the instructed, unpaid payouts.

Rules decided here (docs/settlement.md has the worked examples):

* **T+n cutoffs.**  A posting booked on IST day D settles on D + ``delay_days``: the batch paid on
  day S has cutoff 00:00 IST of S − ``delay_days`` + 1, and covers everything booked before it.
* **Negative net carries forward.**  When refunds and dispute holds exceed what the batch would
  pay, nothing is posted and nothing is marked settled: the batch is recorded as
  ``carried_forward`` and its lines stay unsettled, so the next cutoff's batch nets them against
  new captures.  No payout is ever negative and no merchant balance is driven into debt.
* **Rolling reserve.**  ``rolling_reserve_bps`` of the batch's gross captures (half up to the
  paisa) is withheld for ``rolling_reserve_days`` days and released by the first batch whose
  cutoff is at or after the release instant.  The withholding is capped at the base net, so it
  never turns a batch negative; a carried-forward batch withholds and releases nothing.
* **Instant settlement** settles everything booked up to "now" and charges
  :func:`streams.fees.instant_settlement_fee` on the amount settled (base net after reserve),
  plus 18 % GST on that fee (CGST + SGST or IGST by state).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, astuple, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from models.events import SettlementCreated, SettlementPaid
from streams.fees import BPS_DENOMINATOR, GstSplit, MdrSchedule, apply_bps, gst_on_fee
from streams.fees import instant_settlement_fee as _instant_fee
from streams.ledger import (
    JournalEntry,
    Posting,
    UnbalancedEntry,
    account_owner_kind,
    merchant_account,
    platform_account,
)

__all__ = [
    "IST",
    "SETTLED_KINDS",
    "SETTLEMENT_ENTRY_KIND",
    "BatchReport",
    "BatchStatus",
    "InstantSettlementRefused",
    "InstantTerms",
    "InvalidBankDetails",
    "InvalidUtr",
    "LedgerLine",
    "LedgerView",
    "LineItem",
    "PayoutAccount",
    "ReportRow",
    "ReserveHold",
    "SettlementBatch",
    "SettlementSchedule",
    "Totals",
    "add_totals",
    "batch_id_for",
    "compute_batch",
    "cutoff_for",
    "decide_status",
    "due_cutoff",
    "ist_date",
    "ist_midnight",
    "line_items",
    "line_type_for",
    "mask_account_number",
    "payout_completion_entry",
    "payout_instruction_entry",
    "posting_totals",
    "render_csv",
    "render_json",
    "report_rows",
    "reserve_to_withhold",
    "settlement_created_event",
    "settlement_date_for",
    "settlement_entry",
    "settlement_event",
    "settlement_paid_event",
    "totals_of",
    "validate_ifsc",
    "validate_utr",
    "verify_batch",
]

IST = timezone(timedelta(hours=5, minutes=30), "IST")
"""India Standard Time: UTC+05:30, no daylight saving; RBI settlement days are IST days."""

SETTLED_KINDS: tuple[str, ...] = ("pending", "refunds", "fees", "gst_payable")
"""The merchant accounts a batch clears (see :mod:`streams.ledger`)."""

SETTLEMENT_ENTRY_KIND = "settlement"
PAYOUT_INSTRUCTION_KIND = "payout_instruction"
PAYOUT_KIND = "payout"

BatchStatus = Literal["held", "carried_forward", "superseded", "settled", "payout_pending", "paid"]
"""``held``: a check against the ledger failed (``hold_reason`` says which); nothing posted.
``carried_forward``: the net was negative; nothing posted, the lines stay unsettled.
``superseded``: a held batch whose lines a later batch settled.  ``settled``: posted, net 0, no
payout.  ``payout_pending``: posted and the payout instructed.  ``paid``: the bank's UTR came."""

# Line type per journal entry kind (streams.ledger._KINDS); any other kind is an adjustment.
_LINE_TYPES: Mapping[str, str] = {
    "capture": "capture",
    "refund": "refund",
    "dispute_hold": "dispute_hold",
    "dispute_release": "dispute_release",
    "chargeback": "chargeback",
}
_DISPUTE_TYPES = frozenset({"dispute_hold", "dispute_release", "chargeback"})


# --------------------------------------------------------------------------------------------
# Schedules and cutoffs
# --------------------------------------------------------------------------------------------


class SettlementSchedule(BaseModel):
    """One merchant's settlement terms.

    * ``delay_days``: T+n — a posting booked on IST day D is paid on day D + n (default 1,
      RBI's T+1 for payment aggregators).
    * ``rolling_reserve_bps``: share of each batch's gross captures withheld, in basis points
      (500 = 5 %); ``rolling_reserve_days``: days it is held (required when the share is > 0).
    * ``instant_enabled``: whether the merchant may ask for instant settlement (priced by the
      merchant's ``MdrSchedule.instant_settlement_bps``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    delay_days: StrictInt = Field(default=1, ge=1, le=30)
    rolling_reserve_bps: StrictInt = Field(default=0, ge=0, le=BPS_DENOMINATOR)
    rolling_reserve_days: StrictInt = Field(default=0, ge=0, le=366)
    instant_enabled: StrictBool = False

    @model_validator(mode="after")
    def _reserve_has_a_period(self) -> SettlementSchedule:
        if self.rolling_reserve_bps > 0 and self.rolling_reserve_days < 1:
            raise ValueError("a rolling reserve needs rolling_reserve_days >= 1")
        return self


def _aware(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {instant!r}")
    return instant


def ist_date(instant: datetime) -> date:
    """The IST calendar date of ``instant`` (``2026-11-03T20:00Z`` is 4 November in India)."""
    return _aware(instant, "instant").astimezone(IST).date()


def ist_midnight(day: date) -> datetime:
    """00:00 IST at the start of ``day``, in UTC (``2026-11-04`` → ``2026-11-03T18:30Z``)."""
    return datetime.combine(day, time(0, 0), tzinfo=IST).astimezone(UTC)


def cutoff_for(settlement_date: date, schedule: SettlementSchedule) -> datetime:
    """The cutoff of the batch paid on ``settlement_date``: 00:00 IST of ``settlement_date −
    delay_days + 1``, i.e. the end of the last IST day it covers.  T+1 on 4 November: 00:00 IST
    on 4 November (everything booked up to 3 November 23:59:59.999999 IST)."""
    return ist_midnight(settlement_date - timedelta(days=schedule.delay_days - 1))


def settlement_date_for(booked_at: datetime, schedule: SettlementSchedule) -> date:
    """The day a posting booked at ``booked_at`` is paid: its IST date + ``delay_days``."""
    return ist_date(booked_at) + timedelta(days=schedule.delay_days)


def due_cutoff(now: datetime, schedule: SettlementSchedule) -> datetime:
    """The cutoff of the scheduled batch due on ``now``'s IST day (always ``<= now``)."""
    return cutoff_for(ist_date(now), schedule)


def _scheduled_settlement_date(cutoff: datetime, schedule: SettlementSchedule) -> date:
    # The last covered instant's IST day, + delay_days (inverse of cutoff_for at midnights).
    return ist_date(cutoff - timedelta(microseconds=1)) + timedelta(days=schedule.delay_days)


def batch_id_for(merchant_id: str, currency: str, cutoff: datetime, *, instant: bool) -> str:
    """The batch id for ``merchant_id``'s ``currency`` batch at ``cutoff``: deterministic, so a
    re-run at the same cutoff names the same batch.  ``stl_`` for scheduled batches, ``sti_``
    for instant ones; the cutoff in UTC (``stl_m_acme_INR_20261103T183000Z``), with
    microseconds only when it has any."""
    utc = _aware(cutoff, "cutoff").astimezone(UTC)
    stamp = utc.strftime("%Y%m%dT%H%M%S") + (f".{utc.microsecond:06d}" if utc.microsecond else "")
    return f"{'sti' if instant else 'stl'}_{merchant_id}_{currency}_{stamp}Z"


# --------------------------------------------------------------------------------------------
# Lines, line items and totals
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerLine:
    """One ledger posting on a merchant's settled account, as the batch covers it.

    ``amount_minor`` is signed (debit positive); ``booked_at`` is its journal entry's
    ``created_at``; ``entry_kind`` the entry's kind (``capture``, ``refund``…)."""

    posting_id: str
    entry_id: str
    payment_id: str | None
    entry_kind: str
    account_id: str
    amount_minor: int
    booked_at: datetime

    @property
    def account_kind(self) -> str:
        return account_owner_kind(self.account_id)[1]


@dataclass(frozen=True)
class LineItem:
    """One journal entry's effect on the batch, in paise: ``gross`` is what it adds to the
    merchant before fees (capture +, refund −, dispute hold −, dispute release +), ``fee`` and
    ``gst`` what it charges; ``net = gross − fee − gst``."""

    entry_id: str
    payment_id: str | None
    line_type: str
    booked_at: datetime
    gross_minor: int
    fee_minor: int
    gst_minor: int

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.fee_minor - self.gst_minor


def line_items(lines: Iterable[LedgerLine]) -> tuple[LineItem, ...]:
    """The batch's line items: its postings grouped by journal entry, oldest first.

    ``gross = −(pending + refunds postings)``, ``fee = fees postings``, ``gst = gst_payable
    postings``, so ``Σ net = −Σ postings``."""
    grouped: dict[str, list[LedgerLine]] = defaultdict(list)
    for line in lines:
        grouped[line.entry_id].append(line)
    items = []
    for entry_id, group in grouped.items():
        by_kind: dict[str, int] = defaultdict(int)
        for line in group:
            by_kind[line.account_kind] += line.amount_minor
        first = group[0]
        items.append(
            LineItem(
                entry_id=entry_id,
                payment_id=first.payment_id,
                line_type=line_type_for(first.entry_kind),
                booked_at=first.booked_at,
                gross_minor=-(by_kind["pending"] + by_kind["refunds"]),
                fee_minor=by_kind["fees"],
                gst_minor=by_kind["gst_payable"],
            )
        )
    return tuple(sorted(items, key=lambda i: (i.booked_at, i.entry_id)))


@dataclass(frozen=True)
class Totals:
    """A batch's line totals in paise.  ``captured`` is gross captures; ``refunds`` and
    ``disputes`` are what refunds and dispute holds (net of releases) take away, as positive
    numbers; ``adjustments`` is the gross of any other entry kind (signed); ``fees``/``gst`` are
    charged fees and GST."""

    captured_minor: int = 0
    refunds_minor: int = 0
    disputes_minor: int = 0
    adjustments_minor: int = 0
    fees_minor: int = 0
    gst_minor: int = 0

    @property
    def base_net_minor(self) -> int:
        """``captured − refunds − disputes + adjustments − fees − GST``."""
        return (
            self.captured_minor
            - self.refunds_minor
            - self.disputes_minor
            + self.adjustments_minor
            - self.fees_minor
            - self.gst_minor
        )


def totals_of(items: Iterable[LineItem]) -> Totals:
    """Sum line items into :class:`Totals` (``base_net == Σ item.net``)."""
    captured = refunds = disputes = adjustments = fees = gst = 0
    for item in items:
        fees += item.fee_minor
        gst += item.gst_minor
        if item.line_type == "capture":
            captured += item.gross_minor
        elif item.line_type == "refund":
            refunds -= item.gross_minor
        elif item.line_type in _DISPUTE_TYPES:
            disputes -= item.gross_minor
        else:
            adjustments += item.gross_minor
    return Totals(captured, refunds, disputes, adjustments, fees, gst)


def line_type_for(entry_kind: str) -> str:
    """The line type a journal entry of ``entry_kind`` becomes in a batch (``capture``,
    ``refund``, a dispute type, or ``adjustment`` for any other kind)."""
    return _LINE_TYPES.get(entry_kind, "adjustment")


def posting_totals(entry_kind: str, account_kind: str, amount_minor: int) -> Totals:
    """What one posting (signed paise, debit positive) on a merchant's ``account_kind`` account
    adds to a batch's :class:`Totals`.  Totals are linear in the postings, so the totals of any
    set of lines are the sum of their postings' contributions (``totals_of(line_items(lines))
    == sum of posting_totals``): the live settlement view (``streams.balances``) adds them up
    one posting at a time and lands on the batch's figures.  Postings on accounts a batch does
    not settle contribute nothing."""
    if account_kind in ("pending", "refunds"):
        # gross = -amount; captures and adjustments add gross, the others take it away.
        line_type = line_type_for(entry_kind)
        field_name = {"capture": "captured_minor", "refund": "refunds_minor"}.get(line_type)
        if field_name is None:
            field_name = "disputes_minor" if line_type in _DISPUTE_TYPES else "adjustments_minor"
        sign = -1 if field_name in ("captured_minor", "adjustments_minor") else 1
        return Totals(**{field_name: sign * amount_minor})
    field_name = {"fees": "fees_minor", "gst_payable": "gst_minor"}.get(account_kind)
    return Totals() if field_name is None else Totals(**{field_name: amount_minor})


def add_totals(a: Totals, b: Totals) -> Totals:
    """Field-by-field sum of two :class:`Totals`."""
    return Totals(
        a.captured_minor + b.captured_minor,
        a.refunds_minor + b.refunds_minor,
        a.disputes_minor + b.disputes_minor,
        a.adjustments_minor + b.adjustments_minor,
        a.fees_minor + b.fees_minor,
        a.gst_minor + b.gst_minor,
    )


# --------------------------------------------------------------------------------------------
# Rolling reserve
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReserveHold:
    """Rolling reserve withheld by batch ``hold_id``: ``amount_minor`` paise, released by the
    first batch whose cutoff is ``>= release_at``."""

    hold_id: str
    amount_minor: int
    held_at: datetime
    release_at: datetime


def reserve_to_withhold(totals: Totals, schedule: SettlementSchedule) -> int:
    """Paise to withhold: ``half_up(captured × rolling_reserve_bps / 10 000)``, capped at the
    base net (never below 0), so withholding never makes a batch negative."""
    if schedule.rolling_reserve_bps == 0 or totals.captured_minor <= 0:
        return 0
    wanted = apply_bps(totals.captured_minor, schedule.rolling_reserve_bps)
    return max(0, min(wanted, totals.base_net_minor))


def _due(holds: Iterable[ReserveHold], cutoff: datetime) -> tuple[ReserveHold, ...]:
    return tuple(sorted((h for h in holds if h.release_at <= cutoff), key=lambda h: h.hold_id))


# --------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------


class InstantSettlementRefused(ValueError):
    """Instant settlement is not enabled for the merchant, or its fee would exceed the amount."""


@dataclass(frozen=True)
class InstantTerms:
    """What prices an instant settlement: the merchant's MDR schedule (its
    ``instant_settlement_bps``) and the GST states of merchant and gateway."""

    mdr: MdrSchedule
    merchant_state: str
    gateway_state: str


@dataclass(frozen=True)
class SettlementBatch:
    """A computed batch (before it is checked and recorded).  All amounts in paise."""

    batch_id: str
    merchant_id: str
    currency: str
    cutoff: datetime
    settlement_date: date
    instant: bool
    schedule: SettlementSchedule
    lines: tuple[LedgerLine, ...]
    totals: Totals
    reserve_withheld_minor: int
    reserve_release_at: datetime | None
    released_holds: tuple[ReserveHold, ...]
    instant_fee_minor: int = 0
    instant_fee_gst: GstSplit | None = None

    @property
    def items(self) -> tuple[LineItem, ...]:
        return line_items(self.lines)

    @property
    def reserve_released_minor(self) -> int:
        return sum(h.amount_minor for h in self.released_holds)

    @property
    def instant_fee_gst_minor(self) -> int:
        return 0 if self.instant_fee_gst is None else self.instant_fee_gst.total_minor

    @property
    def net_minor(self) -> int:
        """``base net − withheld + released − instant fee − its GST``; may be negative (the
        batch then carries forward)."""
        return (
            self.totals.base_net_minor
            - self.reserve_withheld_minor
            + self.reserve_released_minor
            - self.instant_fee_minor
            - self.instant_fee_gst_minor
        )


def compute_batch(
    *,
    merchant_id: str,
    currency: str,
    cutoff: datetime,
    lines: Sequence[LedgerLine],
    open_holds: Sequence[ReserveHold],
    schedule: SettlementSchedule,
    instant: InstantTerms | None = None,
) -> SettlementBatch | None:
    """The batch for ``merchant_id`` at ``cutoff`` from its unsettled ``lines`` (all booked
    before ``cutoff``, each on one of the merchant's :data:`SETTLED_KINDS` accounts in
    ``currency``) and its ``open_holds``; ``None`` when there is nothing to settle (no line and
    no hold due).  ``instant`` makes it an instant settlement priced by those terms.

    Raises ``ValueError`` for a line that does not belong in the batch, and
    :class:`InstantSettlementRefused` when instant settlement is off or its fee + GST would
    exceed the amount settled."""
    _aware(cutoff, "cutoff")
    expected_accounts = {merchant_account(merchant_id, k, currency) for k in SETTLED_KINDS}
    seen: set[str] = set()
    for line in lines:
        if line.account_id not in expected_accounts:
            raise ValueError(f"{line.posting_id} is on {line.account_id}, not a settled account")
        if line.booked_at >= cutoff:
            raise ValueError(f"{line.posting_id} was booked at {line.booked_at}, after the cutoff")
        if line.posting_id in seen:
            raise ValueError(f"{line.posting_id} appears twice")
        seen.add(line.posting_id)
    if instant is not None and not schedule.instant_enabled:
        raise InstantSettlementRefused(f"instant settlement is not enabled for {merchant_id}")
    released = _due(open_holds, cutoff)
    if not lines and not released:
        return None
    totals = totals_of(line_items(lines))
    withheld = reserve_to_withhold(totals, schedule)
    settled = totals.base_net_minor - withheld + sum(h.amount_minor for h in released)
    fee, fee_gst = 0, None
    if instant is not None and settled > 0:
        fee = _instant_fee(instant.mdr, settled)
        if fee > 0:
            fee_gst = gst_on_fee(fee, instant.merchant_state, instant.gateway_state)
            if fee + fee_gst.total_minor > settled:
                raise InstantSettlementRefused(
                    f"instant fee {fee} + GST {fee_gst.total_minor} exceed {settled} settled"
                )
    if settled < 0:  # carried forward: nothing withheld, released or charged
        withheld, released, fee, fee_gst = 0, (), 0, None
    return SettlementBatch(
        batch_id=batch_id_for(merchant_id, currency, cutoff, instant=instant is not None),
        merchant_id=merchant_id,
        currency=currency,
        cutoff=cutoff,
        settlement_date=ist_date(cutoff)
        if instant is not None
        else _scheduled_settlement_date(cutoff, schedule),
        instant=instant is not None,
        schedule=schedule,
        lines=tuple(lines),
        totals=totals,
        reserve_withheld_minor=withheld,
        reserve_release_at=cutoff + timedelta(days=schedule.rolling_reserve_days)
        if withheld
        else None,
        released_holds=released,
        instant_fee_minor=fee,
        instant_fee_gst=fee_gst,
    )


# --------------------------------------------------------------------------------------------
# Journal entries
# --------------------------------------------------------------------------------------------


def _entry(
    entry_id: str,
    merchant_id: str,
    currency: str,
    *,
    kind: str,
    legs: Sequence[tuple[str, int]],
    subject: str,
) -> JournalEntry:
    """A balanced entry from ``(account, signed paise)`` legs, zero legs dropped."""
    postings = tuple(
        Posting(f"{entry_id}:{n}", account, amount)
        for n, (account, amount) in enumerate((a, m) for a, m in legs if m != 0)
    )
    return JournalEntry(
        entry_id=entry_id,
        payment_id=subject,
        merchant_id=merchant_id,
        kind=kind,
        currency=currency,
        postings=postings,
    )


def settlement_entry(batch: SettlementBatch) -> JournalEntry | None:
    """The entry a released batch posts (id = the batch id; ``payment_id`` holds the batch id
    too, the entry's subject), or ``None`` when every leg is zero.

    Legs (signed paise): each settled account gets minus the sum of its covered postings
    (clearing it); ``rolling_reserve`` −withheld and +released; platform ``fee_income`` −fee and
    ``gst_output_*`` −GST for an instant settlement; ``available`` −net.  They sum to zero
    because ``net = −Σ covered − withheld + released − fee − GST``."""
    m, c = batch.merchant_id, batch.currency
    per_kind: dict[str, int] = defaultdict(int)
    for line in batch.lines:
        per_kind[line.account_kind] += line.amount_minor
    legs: list[tuple[str, int]] = [
        (merchant_account(m, kind, c), -per_kind[kind]) for kind in SETTLED_KINDS
    ]
    reserve = merchant_account(m, "rolling_reserve", c)
    legs.append((reserve, -batch.reserve_withheld_minor))
    legs.append((reserve, batch.reserve_released_minor))
    legs.append((platform_account("fee_income", c), -batch.instant_fee_minor))
    gst = batch.instant_fee_gst
    if gst is not None:
        for component, amount in (
            ("cgst", gst.cgst_minor),
            ("sgst", gst.sgst_minor),
            ("igst", gst.igst_minor),
        ):
            legs.append((platform_account(f"gst_output_{component}", c), -amount))
    legs.append((merchant_account(m, "available", c), -batch.net_minor))
    if all(amount == 0 for _, amount in legs):
        return None
    return _entry(
        batch.batch_id, m, c, kind=SETTLEMENT_ENTRY_KIND, legs=legs, subject=batch.batch_id
    )


def payout_instruction_entry(batch: SettlementBatch) -> JournalEntry | None:
    """``available`` → ``settlement_payable`` for the net (``<batch_id>.payout``); ``None`` for a
    net of 0.  Raises ``ValueError`` for a negative net (such a batch pays nothing)."""
    if batch.net_minor < 0:
        raise ValueError(f"batch {batch.batch_id} has a negative net; it carries forward")
    if batch.net_minor == 0:
        return None
    m, c, amount = batch.merchant_id, batch.currency, batch.net_minor
    legs = [
        (merchant_account(m, "available", c), amount),
        (platform_account("settlement_payable", c), -amount),
    ]
    return _entry(
        f"{batch.batch_id}.payout",
        m,
        c,
        kind=PAYOUT_INSTRUCTION_KIND,
        legs=legs,
        subject=batch.batch_id,
    )


def payout_completion_entry(
    batch_id: str, merchant_id: str, currency: str, amount_minor: int
) -> JournalEntry:
    """``settlement_payable`` → ``escrow_bank`` for a completed payout of ``amount_minor`` paise
    (``<batch_id>.paid``): the money left the escrow account."""
    if amount_minor <= 0:
        raise ValueError(f"payout amount must be positive, got {amount_minor}")
    legs = [
        (platform_account("settlement_payable", currency), amount_minor),
        (platform_account("escrow_bank", currency), -amount_minor),
    ]
    return _entry(
        f"{batch_id}.paid", merchant_id, currency, kind=PAYOUT_KIND, legs=legs, subject=batch_id
    )


# --------------------------------------------------------------------------------------------
# The check against the ledger
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutAccount:
    """Where a merchant is paid: holder name, masked account number, IFSC."""

    holder_name: str
    account_masked: str
    ifsc: str


@dataclass(frozen=True)
class LedgerView:
    """What the book of record says about a batch, read just before it is released.

    * ``found``: the batch's posting ids as stored (a missing id is absent);
    * ``account_sums``: the database's own ``sum(amount_minor)`` over the batch's posting ids,
      per account kind — the change of the merchant's balances over the covered postings;
    * ``entry_postings``: for each covered entry, every posting it has on the merchant's
      settled accounts (a batch must take an entry whole);
    * ``settled_by``: posting id → the other batch that already settled it;
    * ``chain_problems``: covered entries whose hash-chain link does not verify;
    * ``open_holds`` and ``rolling_reserve_minor`` (credit balance of ``rolling_reserve``);
    * ``payout_account``: the merchant's bank account, if any.
    """

    found: Mapping[str, LedgerLine]
    account_sums: Mapping[str, int]
    entry_postings: Mapping[str, frozenset[str]]
    settled_by: Mapping[str, str] = field(default_factory=dict)
    chain_problems: tuple[str, ...] = ()
    open_holds: tuple[ReserveHold, ...] = ()
    rolling_reserve_minor: int = 0
    payout_account: PayoutAccount | None = None


def verify_batch(batch: SettlementBatch, ledger: LedgerView) -> tuple[str, ...]:
    """Every reason the batch must not be released (empty: release it), checked to the paisa:

    1. its totals are the sum of its lines;
    2. per settled account, the sum of its lines equals the ledger's sum over the same
       postings, and every line is the posting it names (same amount, account, entry, booked
       before the cutoff, not settled by another batch), and no covered entry is left partial;
    3. every covered entry's hash-chain link verifies;
    4. the reserve withheld follows the schedule, released holds are open and due, and the open
       holds equal the ledger's ``rolling_reserve`` balance;
    5. the entries it would post balance, and a positive net has a bank account to go to.

    A negative net is not a reason: such a batch carries forward (:func:`decide_status`)."""
    reasons: list[str] = []
    expected = totals_of(batch.items)
    if batch.totals != expected:
        reasons.append(f"totals {batch.totals} are not the sum of the lines {expected}")
    line_sums: dict[str, int] = defaultdict(int)
    for line in batch.lines:
        line_sums[line.account_kind] += line.amount_minor
    for kind in sorted(set(line_sums) | set(ledger.account_sums)):
        ours, theirs = line_sums.get(kind, 0), ledger.account_sums.get(kind, 0)
        if ours != theirs:
            reasons.append(f"{kind}: lines sum to {ours} paise, the ledger to {theirs}")
    reasons.extend(_line_problems(batch, ledger))
    reasons.extend(f"hash chain: {p}" for p in ledger.chain_problems)
    reasons.extend(_reserve_problems(batch, ledger))
    if batch.net_minor >= 0:
        try:
            settlement_entry(batch)
            payout_instruction_entry(batch)
        except UnbalancedEntry as exc:
            reasons.append(f"entries do not balance: {exc}")
        if batch.net_minor > 0 and ledger.payout_account is None:
            reasons.append(f"merchant {batch.merchant_id} has no payout bank account")
    return tuple(reasons)


def _line_problems(batch: SettlementBatch, ledger: LedgerView) -> list[str]:
    problems = []
    accounts = {merchant_account(batch.merchant_id, k, batch.currency) for k in SETTLED_KINDS}
    covered = {line.posting_id for line in batch.lines}
    for line in batch.lines:
        stored = ledger.found.get(line.posting_id)
        if stored is None:
            problems.append(f"posting {line.posting_id} is not in the ledger")
            continue
        if stored != line:
            problems.append(f"posting {line.posting_id} differs from the ledger: {stored}")
        if stored.account_id not in accounts:
            problems.append(f"posting {line.posting_id} is on {stored.account_id}")
        if stored.booked_at >= batch.cutoff:
            problems.append(f"posting {line.posting_id} was booked after the cutoff")
        other = ledger.settled_by.get(line.posting_id)
        if other is not None and other != batch.batch_id:
            problems.append(f"posting {line.posting_id} was already settled by {other}")
    for entry_id, postings in sorted(ledger.entry_postings.items()):
        missing = sorted(postings - covered)
        if missing:
            problems.append(f"entry {entry_id} is covered in part: {missing} left out")
    return problems


def _reserve_problems(batch: SettlementBatch, ledger: LedgerView) -> list[str]:
    problems = []
    if batch.net_minor >= 0:
        want = reserve_to_withhold(batch.totals, batch.schedule)
        if batch.reserve_withheld_minor != want:
            problems.append(f"reserve withheld {batch.reserve_withheld_minor}, rule says {want}")
    held = sum(h.amount_minor for h in ledger.open_holds)
    if held != ledger.rolling_reserve_minor:
        problems.append(
            f"open reserve holds total {held} paise, the ledger's rolling reserve "
            f"{ledger.rolling_reserve_minor}"
        )
    open_ids = {h.hold_id: h for h in ledger.open_holds}
    for hold in batch.released_holds:
        if open_ids.get(hold.hold_id) != hold:
            problems.append(f"reserve hold {hold.hold_id} is not open as released")
        elif hold.release_at > batch.cutoff:
            problems.append(f"reserve hold {hold.hold_id} is not due before {hold.release_at}")
    return problems


def decide_status(batch: SettlementBatch, reasons: Sequence[str]) -> BatchStatus:
    """``held`` when any check failed, else ``carried_forward`` for a negative net,
    ``settled`` for a zero net, ``payout_pending`` for a positive one."""
    if reasons:
        return "held"
    if batch.net_minor < 0:
        return "carried_forward"
    return "settled" if batch.net_minor == 0 else "payout_pending"


# --------------------------------------------------------------------------------------------
# Bank details and UTRs
# --------------------------------------------------------------------------------------------


class InvalidBankDetails(ValueError):
    """A malformed account number or IFSC."""


class InvalidUtr(ValueError):
    """Not a 22-character NEFT/RTGS UTR, or its date cannot belong to the payout."""


_IFSC = re.compile(r"[A-Z]{4}0[A-Z0-9]{6}")
_ACCOUNT = re.compile(r"[0-9]{9,18}")
_UTR = re.compile(r"([A-Z]{4})([NR])([A-Z0-9])([0-9]{8})([0-9]{8})")


def validate_ifsc(ifsc: str) -> str:
    """Return ``ifsc`` if it is an IFSC: 4 letters (bank), ``0``, 6 letters/digits (branch)."""
    if not _IFSC.fullmatch(ifsc):
        raise InvalidBankDetails(f"{ifsc!r} is not an IFSC (AAAA0XXXXXX)")
    return ifsc


def mask_account_number(number: str) -> str:
    """``XXXXXXXX1234`` for a 9–18 digit account number: only the last four digits are kept;
    the full number is never stored."""
    if not _ACCOUNT.fullmatch(number):
        raise InvalidBankDetails("an account number is 9 to 18 digits")
    return "X" * (len(number) - 4) + number[-4:]


def validate_utr(utr: str, *, instructed_on: date, today: date) -> str:
    """Return ``utr`` if it is a 22-character NEFT/RTGS UTR that can name this payout.

    Shape: bank code (4 letters) + ``N`` (NEFT) or ``R`` (RTGS) + channel (1 letter or digit) +
    the transfer date ``YYYYMMDD`` + an 8-digit sequence, e.g. ``HDFCR52026110412345678``.  The
    date must be a real date between the payout's instruction day and ``today`` (IST days)."""
    match = _UTR.fullmatch(utr)
    if match is None:
        raise InvalidUtr(
            f"{utr!r} is not a 22-character UTR (bank code, N/R, channel, YYYYMMDD, 8 digits)"
        )
    digits = match.group(4)
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as exc:
        raise InvalidUtr(f"UTR {utr!r} carries no real date ({digits})") from exc
    if not instructed_on <= day <= today:
        raise InvalidUtr(
            f"UTR {utr!r} is dated {day}, outside {instructed_on}..{today} (instruction..today)"
        )
    return utr


# --------------------------------------------------------------------------------------------
# Reports and the webhook event
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchReport:
    """A recorded batch as finance reads it (amounts in paise)."""

    batch_id: str
    merchant_id: str
    currency: str
    cutoff: datetime
    settlement_date: date
    instant: bool
    status: BatchStatus
    hold_reason: str | None
    items: tuple[LineItem, ...]
    totals: Totals
    reserve_withheld_minor: int
    reserve_released_minor: int
    instant_fee_minor: int
    instant_fee_gst_minor: int
    net_minor: int
    updated_at: datetime
    payout_amount_minor: int | None = None
    beneficiary: str | None = None
    ifsc: str | None = None
    utr: str | None = None
    paid_at: datetime | None = None


@dataclass(frozen=True)
class ReportRow:
    """One row of a batch report: ``net = gross − fee − gst − reserve`` (paise)."""

    line_no: int
    payment_id: str
    entry_id: str
    line_type: str
    booked_at: str
    gross_minor: int
    fee_minor: int
    gst_minor: int
    reserve_minor: int
    net_minor: int


def report_rows(report: BatchReport) -> tuple[ReportRow, ...]:
    """Line items, then batch-level rows (``rolling_reserve_withheld`` with reserve = +withheld,
    ``rolling_reserve_released`` with reserve = −released, ``instant_settlement_fee``); their
    nets sum to the batch net."""
    rows = [
        ReportRow(
            n,
            item.payment_id or "",
            item.entry_id,
            item.line_type,
            item.booked_at.astimezone(UTC).isoformat(),
            item.gross_minor,
            item.fee_minor,
            item.gst_minor,
            0,
            item.net_minor,
        )
        for n, item in enumerate(report.items, start=1)
    ]
    extra: list[tuple[str, int, int, int]] = [
        ("rolling_reserve_withheld", 0, 0, report.reserve_withheld_minor),
        ("rolling_reserve_released", 0, 0, -report.reserve_released_minor),
        ("instant_settlement_fee", report.instant_fee_minor, report.instant_fee_gst_minor, 0),
    ]
    for line_type, fee, gst, reserve in extra:
        if fee or gst or reserve:
            net = -fee - gst - reserve
            rows.append(
                ReportRow(
                    len(rows) + 1, "", report.batch_id, line_type, "", 0, fee, gst, reserve, net
                )
            )
    return tuple(rows)


_CSV_COLUMNS = (
    "batch_id",
    "line_no",
    "payment_id",
    "entry_id",
    "type",
    "booked_at",
    "gross_minor",
    "fee_minor",
    "gst_minor",
    "reserve_minor",
    "net_minor",
)


def render_csv(report: BatchReport) -> str:
    """The batch as CSV (amounts in paise): a header, one row per line, then a ``TOTAL`` row
    whose every amount column is the sum of the rows above it (its net is the batch net)."""
    rows = report_rows(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for r in rows:
        writer.writerow((report.batch_id, *astuple(r)))
    sums = _sums(rows)
    writer.writerow((report.batch_id, "", "", "", "TOTAL", "", *sums.values()))
    return out.getvalue()


def _sums(rows: Sequence[ReportRow]) -> dict[str, int]:
    return {
        "gross_minor": sum(r.gross_minor for r in rows),
        "fee_minor": sum(r.fee_minor for r in rows),
        "gst_minor": sum(r.gst_minor for r in rows),
        "reserve_minor": sum(r.reserve_minor for r in rows),
        "net_minor": sum(r.net_minor for r in rows),
    }


def _summary(report: BatchReport) -> dict[str, Any]:
    return {
        "batch_id": report.batch_id,
        "merchant_id": report.merchant_id,
        "currency": report.currency,
        "cutoff": report.cutoff.astimezone(UTC).isoformat(),
        "settlement_date": report.settlement_date.isoformat(),
        "instant": report.instant,
        "status": report.status,
        "hold_reason": report.hold_reason,
        "captured_minor": report.totals.captured_minor,
        "refunds_minor": report.totals.refunds_minor,
        "disputes_minor": report.totals.disputes_minor,
        "adjustments_minor": report.totals.adjustments_minor,
        "fees_minor": report.totals.fees_minor,
        "gst_minor": report.totals.gst_minor,
        "reserve_withheld_minor": report.reserve_withheld_minor,
        "reserve_released_minor": report.reserve_released_minor,
        "instant_fee_minor": report.instant_fee_minor,
        "instant_fee_gst_minor": report.instant_fee_gst_minor,
        "net_minor": report.net_minor,
        "payout": None
        if report.payout_amount_minor is None
        else {
            "amount_minor": report.payout_amount_minor,
            "beneficiary": report.beneficiary,
            "ifsc": report.ifsc,
            "utr": report.utr,
            "paid_at": None if report.paid_at is None else report.paid_at.isoformat(),
        },
    }


def render_json(report: BatchReport) -> str:
    """The batch as JSON: ``batch`` (status, totals, payout), ``lines`` (the rows of
    :func:`report_rows`) and ``totals`` (their column sums; ``net_minor`` = the batch net)."""
    rows = report_rows(report)
    document = {
        "batch": _summary(report),
        "lines": [asdict(r) for r in rows],
        "totals": _sums(rows),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def settlement_event(report: BatchReport) -> dict[str, Any]:
    """The webhook event for the batch's current status (``settlement.payout_pending``,
    ``settlement.paid``, ``settlement.held``…): a deterministic ``event_id`` per batch and
    status, so re-sending after a crash is deduplicated by the receiver."""
    return {
        "event_id": f"evt_{report.batch_id}_{report.status}",
        "event_type": f"settlement.{report.status}",
        "occurred_at": (report.paid_at or report.updated_at).astimezone(UTC).isoformat(),
        "merchant_id": report.merchant_id,
        "data": _summary(report),
    }


def _event_fields(report: BatchReport) -> dict[str, Any]:
    return {
        "batch_id": report.batch_id,
        "merchant_id": report.merchant_id,
        "currency": report.currency,
        "settlement_date": report.settlement_date,
        "cutoff": report.cutoff,
        "instant": report.instant,
        "status": report.status,
        "captured_minor": report.totals.captured_minor,
        "refunds_minor": report.totals.refunds_minor,
        "fees_minor": report.totals.fees_minor,
        "gst_minor": report.totals.gst_minor,
        "net_minor": report.net_minor,
    }


def settlement_created_event(report: BatchReport) -> SettlementCreated:
    """The ``settlement.created`` event of a recorded batch (for the ``settlement.events`` topic
    and merchants' webhooks): its id is derived from the batch, so announcing it again after a
    crash is deduplicated by the receiver."""
    return SettlementCreated(
        event_id=f"evt_{report.batch_id}_created",
        occurred_at=report.updated_at,
        **_event_fields(report),
    )


def settlement_paid_event(report: BatchReport) -> SettlementPaid:
    """The ``settlement.paid`` event of a batch whose payout the bank completed.  Raises
    ``ValueError`` when the batch is not paid."""
    if (
        report.status != "paid"
        or report.utr is None
        or report.paid_at is None
        or report.payout_amount_minor is None
    ):
        raise ValueError(f"batch {report.batch_id} is {report.status}, not paid")
    return SettlementPaid(
        event_id=f"evt_{report.batch_id}_paid",
        occurred_at=report.paid_at,
        amount_minor=report.payout_amount_minor,
        utr=report.utr,
        **_event_fields(report),
    )
