"""Refund entries completed with their fee and GST reversal, from what the ledger charged.

A refund gives back the refunded share of the fee and GST its payment's captures charged
(``streams.ledger.complete_refund_entries``).  What a capture charged is read from its posted
entry, not recomputed from today's MDR schedule, so a schedule change between capture and
refund cannot make the reversal disagree with the charge.  Captures applied earlier in the same
batch are not in the database yet; they are taken from the batch itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import asyncpg

from streams.fees import FeeBreakdown
from streams.ledger import (
    CAPTURE_KIND,
    REFUND_KIND,
    FeeTerms,
    JournalEntry,
    Posting,
    charged_by,
    complete_refund_entries,
)
from streams.lifecycle import PaymentState

Step = tuple[PaymentState, Sequence[JournalEntry]]
"""One applied step of a payment: its state after the step and the entries the step posts."""


async def posted_captures(
    conn: asyncpg.Connection, payment_ids: Sequence[str]
) -> list[JournalEntry]:
    """The capture entries already posted for ``payment_ids``, with their postings."""
    rows = await conn.fetch(
        """SELECT e.entry_id, e.payment_id, e.merchant_id, e.currency,
                  p.posting_id, p.account_id, p.amount_minor
             FROM journal_entries e JOIN postings p USING (entry_id)
            WHERE e.payment_id = ANY($1::text[]) AND e.kind = $2
            ORDER BY e.entry_id, p.posting_id""",
        list(payment_ids),
        CAPTURE_KIND,
    )
    grouped: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for r in rows:
        grouped[r["entry_id"]].append(r)
    return [
        JournalEntry(
            entry_id=entry_id,
            payment_id=group[0]["payment_id"],
            merchant_id=group[0]["merchant_id"] or "",
            kind=CAPTURE_KIND,
            currency=group[0]["currency"].strip(),
            postings=tuple(
                Posting(r["posting_id"], r["account_id"], int(r["amount_minor"])) for r in group
            ),
        )
        for entry_id, group in grouped.items()
    ]


async def with_fee_reversals(
    conn: asyncpg.Connection,
    steps: Sequence[Step],
    terms_for: Callable[[PaymentState], FeeTerms | None],
) -> list[JournalEntry]:
    """Every entry of ``steps`` (in order), refund entries completed with their fee and GST
    reversal under each payment's ``terms_for(state)``.  One query, and only when a step posts
    a refund.  Call inside the transaction that posts the entries, with the payments locked."""
    refunding = sorted({s.payment_id for s, es in steps if any(e.kind == REFUND_KIND for e in es)})
    if not refunding:
        return [e for _, entries in steps for e in entries]
    by_payment: dict[str, list[JournalEntry]] = defaultdict(list)
    for capture in await posted_captures(conn, refunding):
        by_payment[capture.payment_id].append(capture)
    for state, entries in steps:
        if state.payment_id in refunding:
            by_payment[state.payment_id].extend(e for e in entries if e.kind == CAPTURE_KIND)
    out: list[JournalEntry] = []
    for state, entries in steps:
        terms = terms_for(state)
        charged: dict[str, FeeBreakdown] = {}
        if terms is not None:
            charged = {
                c.entry_id: charged_by(c, terms.merchant_state, terms.gateway_state)
                for c in by_payment.get(state.payment_id, ())
            }
        out.extend(complete_refund_entries(state, entries, terms, charged))
    return out
