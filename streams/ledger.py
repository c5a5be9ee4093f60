"""Double-entry postings for lifecycle events: an event in, a balanced journal entry out.

Amounts are signed minor units: a debit is positive, a credit negative, and every entry's
postings sum to zero (the database refuses any entry that does not).  Ids are derived from the
payment and the step, so posting the same event twice hits the unique constraint instead of
doubling money.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from models.events import PaymentAuthorized


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


def merchant_account(merchant_id: str, kind: str, currency: str) -> str:
    """Ledger account id of a merchant's ``kind`` account (pending, available, reserve, fees…)."""
    return f"merchant:{merchant_id}:{kind}:{currency}"


def platform_account(kind: str, currency: str) -> str:
    """Ledger account id of a platform account (processor_receivable, settlement_payable…)."""
    return f"platform:{kind}:{currency}"


def account_owner_kind(account_id: str) -> tuple[str, str]:
    """``(owner, kind)`` of an account id made by :func:`merchant_account` or
    :func:`platform_account`; the owner of a platform account is ``"platform"``."""
    parts = account_id.split(":")
    if parts[0] == "merchant" and len(parts) == 4:
        return parts[1], parts[2]
    if parts[0] == "platform" and len(parts) == 3:
        return "platform", parts[1]
    raise ValueError(f"not a ledger account id: {account_id!r}")


def entry_for(event: BaseModel) -> JournalEntry | None:
    """The journal entry a lifecycle event posts, or ``None`` when it moves no money.

    An authorization books what the processor owes us (debit processor receivable) against what
    we owe the merchant once it settles (credit merchant pending).  Captures, refunds, fees and
    settlement are posted by the ledger work that builds on this.
    """
    if not isinstance(event, PaymentAuthorized):
        return None
    entry_id = f"{event.payment_id}:authorization"
    currency, minor = event.amount.currency, event.amount.minor
    return JournalEntry(
        entry_id=entry_id,
        payment_id=event.payment_id,
        merchant_id=event.merchant_id,
        kind="authorization",
        currency=currency,
        postings=(
            Posting(f"{entry_id}:dr", platform_account("processor_receivable", currency), minor),
            Posting(
                f"{entry_id}:cr", merchant_account(event.merchant_id, "pending", currency), -minor
            ),
        ),
    )
