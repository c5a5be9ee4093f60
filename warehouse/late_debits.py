"""Late debits: a processor confirms a payment after RizzPay's books ended it.

A UPI collect times out and the payment is declined ``upi_timeout``; minutes later the remitter
bank's debit is confirmed after all (NPCI's "deemed success").  A customer's 3-D Secure or
netbanking step completes at the processor after our deadline expired the payment.  Either way
the customer's account was debited for a transaction that failed on our side: RBI's
turnaround-time circular (20 Sep 2019, docs/reports.md) requires the debit to be reversed by
T + n days, or ₹100 is owed for each day late.

The status poller (``streams.payments.PaymentsProcessor``) asks the processor about recently
ended payments it held (:func:`late_debit_candidates`).  When one comes back approved,
:func:`record_late_debit` records, in one transaction:

* a ``failed_transactions`` row (the RBI report's input; ``txn_id`` = the payment id, so a
  second finding changes nothing), and
* the reversal in the processor-operations outbox (``processor_operations``, migration 0014): a
  refund of what was captured, or a void of a hold, sent by the operation sender with our id as
  the provider's idempotency reference.

When the processor has done it, the sender marks the row reversed
(``warehouse.processor_operations.record_done``); a refused reversal leaves the row outstanding,
accruing compensation on the report, for operations staff.  The books are not touched: the
payment stays ended, and the processor's settlement shows the debit and its reversal netting to
zero.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg

from models.events import PaymentRequested
from models.ids import command_id_for
from streams.connectors.base import Approved
from warehouse.processor_operations import VOID_OPERATION_ID, Operation, queue_operation
from warehouse.processor_store import Awaiting, claim_for_poll
from warehouse.reports.rbi import record_failed_transaction

# Ended statuses a processor may still turn into a debit, and the decline codes that are really
# "no answer in time" rather than a refusal (a card declined for insufficient funds stays
# declined; a collect that timed out may not).
LATE_DEBIT_STATUSES: Final = ("failed", "expired")
LATE_DEBIT_DECLINE_CODES: Final = ("upi_timeout",)

# The RBI circular's channel of each payment method (``warehouse.reports.rbi.REVERSAL_TAT``);
# netbanking and NEFT/RTGS are not in its table and are reported as ``not_covered``.
CHANNEL_OF_METHOD: Final = {
    "card": "card_not_present",
    "upi": "upi_merchant",
    "imps": "imps",
    "netbanking": "netbanking",
    "neft": "neft",
    "rtgs": "rtgs",
}


def reversal_of(request: PaymentRequested, found: Approved) -> Operation:
    """The operation that reverses a late debit: a refund of what the processor captured (its
    id derived from the payment, so finding it again names the same refund), or the void of a
    hold (a payment is voided at most once, and an ended payment was never voided)."""
    if not found.captured:
        return Operation(request.payment_id, VOID_OPERATION_ID, "void", 0, found.currency)
    refund_id = command_id_for("rfd", request.merchant_id, f"late-debit:{request.payment_id}")
    return Operation(request.payment_id, refund_id, "refund", found.amount_minor, found.currency)


async def late_debit_candidates(
    pool: asyncpg.Pool, limit: int, *, interval_s: float, watch_s: float
) -> list[Awaiting]:
    """Up to ``limit`` payments a processor held that ended (:data:`LATE_DEBIT_STATUSES`, or
    declined with a :data:`LATE_DEBIT_DECLINE_CODES` code) less than ``watch_s`` ago, are not
    yet found debited, and were not asked about in the last ``interval_s``; each is marked
    polled now (``processor_attempts.polled_at``, free once a payment stopped waiting)."""
    return await claim_for_poll(
        pool,
        limit,
        """(p.status = ANY($2::text[])
            OR (p.status = 'declined' AND p.decline_code = ANY($3::text[])))
           AND p.updated_at >= clock_timestamp() - make_interval(secs => $4)
           AND a.provider IS NOT NULL
           AND (a.polled_at IS NULL
                OR a.polled_at <= clock_timestamp() - make_interval(secs => $5))
           AND NOT EXISTS (SELECT 1 FROM failed_transactions f WHERE f.txn_id = p.payment_id)""",
        list(LATE_DEBIT_STATUSES),
        list(LATE_DEBIT_DECLINE_CODES),
        watch_s,
        interval_s,
    )


async def record_late_debit(
    pool: asyncpg.Pool, item: Awaiting, found: Approved, *, now: datetime
) -> str | None:
    """Record that the processor took (or holds) ``found`` for the ended payment of ``item``,
    and queue its reversal; returns the reversal's operation id, or ``None`` if this debit was
    already recorded (a second poll, another poller) and nothing changed."""
    request = item.request
    reversal = reversal_of(request, found)
    async with pool.acquire() as conn, conn.transaction():
        recorded = await record_failed_transaction(
            conn,
            txn_id=request.payment_id,
            payment_id=request.payment_id,
            merchant_id=request.merchant_id,
            channel=CHANNEL_OF_METHOD[request.method.type],
            amount_minor=found.amount_minor,
            currency=found.currency,
            # When the customer was debited is known only to the bank: the payment's own time
            # is the earliest it can have been, so the turnaround is never counted short.
            debited_at=request.occurred_at,
            now=now,
            reversal_operation_id=reversal.operation_id,
        )
        if not recorded:
            return None
        await queue_operation(conn, reversal, found.provider, found.provider_ref)
    return reversal.operation_id
