"""Disputes as merchants read them, and the evidence they submit (PostgreSQL).

A dispute's money and status live in the payment's lifecycle state (``payments.lifecycle``
events applied by the payments agent); :func:`disputes_of` reads them from there.  Evidence
is not a lifecycle step (it moves no money), so it is stored directly, once per dispute:
table ``dispute_evidence`` (migration 0013).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
import orjson

from models.events import PaymentDisputeLost, PaymentDisputeOpened, PaymentDisputeWon
from streams.lifecycle import PaymentState

__all__ = ["DisputeView", "EvidenceResult", "disputes_of", "get_evidence", "submit_evidence"]

DisputeStatus = Literal["open", "won", "lost"]


@dataclass(frozen=True)
class DisputeView:
    """One dispute of a payment.  ``amount_minor`` in minor units of ``currency``."""

    dispute_id: str
    payment_id: str
    status: DisputeStatus
    amount_minor: int
    currency: str
    evidence_due_at: datetime
    opened_at: datetime
    resolved_at: datetime | None


def disputes_of(state: PaymentState) -> list[DisputeView]:
    """Every dispute of the payment, oldest first, from the events its state applied."""
    opened: dict[str, PaymentDisputeOpened] = {}
    outcomes: dict[str, PaymentDisputeWon | PaymentDisputeLost] = {}
    for applied in state.applied:
        for event in applied.events:
            if isinstance(event, PaymentDisputeOpened):
                opened.setdefault(event.dispute_id, event)
            elif isinstance(event, PaymentDisputeWon | PaymentDisputeLost):
                outcomes.setdefault(event.dispute_id, event)
    views = []
    for dispute_id, event in opened.items():
        outcome = outcomes.get(dispute_id)
        status: DisputeStatus = (
            "open"
            if outcome is None
            else "won"
            if isinstance(outcome, PaymentDisputeWon)
            else "lost"
        )
        views.append(
            DisputeView(
                dispute_id=dispute_id,
                payment_id=state.payment_id,
                status=status,
                amount_minor=event.amount.minor,
                currency=event.amount.currency,
                evidence_due_at=event.evidence_due_at,
                opened_at=event.occurred_at,
                resolved_at=None if outcome is None else outcome.occurred_at,
            )
        )
    return views


@dataclass(frozen=True)
class EvidenceResult:
    """``stored``: this call stored it; else it was already stored (``same`` tells whether with
    the same fingerprint, i.e. a replay)."""

    stored: bool
    same: bool
    submitted_at: datetime


async def submit_evidence(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    dispute_id: str,
    payment_id: str,
    merchant_id: str,
    fingerprint: str,
    evidence: dict[str, Any],
    now: datetime,
) -> EvidenceResult:
    """Store the merchant's evidence for ``dispute_id`` once.  The caller has checked that the
    dispute is open and not past its due time.  Submitting again is a no-op whose result says
    whether the body was the same (``fingerprint``)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    row = await conn.fetchrow(
        """INSERT INTO dispute_evidence
               (dispute_id, payment_id, merchant_id, request_fingerprint, evidence, submitted_at)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6)
           ON CONFLICT (dispute_id) DO NOTHING
           RETURNING submitted_at""",
        dispute_id,
        payment_id,
        merchant_id,
        fingerprint,
        orjson.dumps(evidence).decode(),
        now,
    )
    if row is not None:
        return EvidenceResult(stored=True, same=True, submitted_at=row["submitted_at"])
    existing = await conn.fetchrow(
        "SELECT request_fingerprint, submitted_at FROM dispute_evidence WHERE dispute_id = $1",
        dispute_id,
    )
    assert existing is not None  # rows are never deleted
    return EvidenceResult(
        stored=False,
        same=existing["request_fingerprint"] == fingerprint,
        submitted_at=existing["submitted_at"],
    )


async def get_evidence(
    conn: asyncpg.Connection | asyncpg.Pool, payment_id: str
) -> dict[str, dict[str, Any]]:
    """``dispute_id -> {"submitted_at", "evidence"}`` of the payment's submitted evidence."""
    rows = await conn.fetch(
        """SELECT dispute_id, evidence::text AS evidence, submitted_at FROM dispute_evidence
           WHERE payment_id = $1""",
        payment_id,
    )
    return {
        r["dispute_id"]: {
            "submitted_at": r["submitted_at"].isoformat(),
            "evidence": orjson.loads(r["evidence"]),
        }
        for r in rows
    }
