"""The outbox of processor operations (``processor_operations``, migration 0014): captures,
voids and refunds that RizzPay's books recorded for a payment a processor holds, waiting to be
sent to that processor, and what it answered.

Why an outbox: a merchant's command changes the books in one PostgreSQL transaction; the
processor is another system.  Recording the operation in that same transaction means a command
the books accepted can never be forgotten at the processor, and a crash before the answer is
recorded only makes the sender send it again under the same id, which the processor treats as
the same operation (``streams.connectors.base.Connector``: idempotent by our id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import asyncpg

from models.events import CaptureRequested, PaymentCaptured, RefundRequested, VoidRequested
from streams.connectors.base import ProviderName
from streams.decisions import Applied

OperationKind = Literal["capture", "void", "refund"]
VOID_OPERATION_ID = "void"  # a payment is voided at most once


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation to send: ``amount_minor`` in the currency's minor unit (0 for a void)."""

    payment_id: str
    operation_id: str
    kind: OperationKind
    amount_minor: int
    currency: str
    final: bool = True


def operation_of(applied: Applied) -> Operation | None:
    """The processor operation a newly applied merchant command stands for, or ``None`` (a
    replayed command, or one the processor has no part in, such as a dispute)."""
    if applied.replayed:
        return None
    command = applied.command_event
    pid = command.payment_id
    match command:
        case CaptureRequested():
            # The captured event says how much and whether it closed the hold (it does when it
            # reached the hold even if the merchant did not say final).
            captured = next(e for e in applied.events if isinstance(e, PaymentCaptured))
            return Operation(
                pid,
                command.capture_id,
                "capture",
                captured.amount.minor,
                captured.amount.currency,
                captured.final,
            )
        case RefundRequested():
            return Operation(
                pid, command.refund_id, "refund", command.amount.minor, command.amount.currency
            )
        case VoidRequested():
            return Operation(pid, VOID_OPERATION_ID, "void", 0, applied.state.currency)
    return None


async def record_operations(conn: asyncpg.Connection, applied: Sequence[Applied]) -> int:
    """Record the operations of ``applied`` for the payments a processor holds (the attempt
    log names the provider); wallet and rules-authorized payments have none.  Call inside the
    transaction that applies the commands.  Idempotent: an operation already recorded is kept.
    Returns how many were recorded now."""
    ops = [op for op in (operation_of(a) for a in applied) if op is not None]
    if not ops:
        return 0
    # WITH ORDINALITY keeps the commands' order in ``seq``: a capture precedes its refunds.
    done = await conn.execute(
        """INSERT INTO processor_operations (payment_id, operation_id, kind, provider,
                  amount_minor, currency, final)
           SELECT o.payment_id, o.operation_id, o.kind, a.provider, o.amount_minor,
                  o.currency, o.final
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                         $6::boolean[]) WITH ORDINALITY
                  AS o(payment_id, operation_id, kind, amount_minor, currency, final, n)
             JOIN processor_attempts a USING (payment_id)
            WHERE a.provider IS NOT NULL
            ORDER BY o.n
           ON CONFLICT (payment_id, operation_id) DO NOTHING""",
        [o.payment_id for o in ops],
        [o.operation_id for o in ops],
        [o.kind for o in ops],
        [o.amount_minor for o in ops],
        [o.currency for o in ops],
        [o.final for o in ops],
    )
    return int(done.split()[-1])


async def queue_operation(
    conn: asyncpg.Connection,
    op: Operation,
    provider: ProviderName,
    provider_payment_ref: str | None = None,
) -> None:
    """Queue one operation the books did not command (a late debit's reversal,
    ``warehouse.late_debits``) at ``provider``, which may already have told us its id of the
    payment.  Idempotent like :func:`record_operations`."""
    await conn.execute(
        """INSERT INTO processor_operations (payment_id, operation_id, kind, provider,
                  amount_minor, currency, final, provider_payment_ref)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (payment_id, operation_id) DO NOTHING""",
        op.payment_id,
        op.operation_id,
        op.kind,
        provider,
        op.amount_minor,
        op.currency,
        op.final,
        provider_payment_ref,
    )


@dataclass(frozen=True, slots=True)
class Claimed:
    """An operation the sender claimed for one attempt: ``attempt`` counts from 1."""

    operation: Operation
    provider: ProviderName
    provider_payment_ref: str | None
    attempt: int


async def claim_due(
    pool: asyncpg.Pool, limit: int, *, backoff_s: float, backoff_s_max: float
) -> list[Claimed]:
    """Up to ``limit`` pending operations that are due, each the earliest pending one of its
    payment; each is pushed back by its backoff (``backoff_s`` doubled per attempt, at most
    ``backoff_s_max``) *before* it is sent.  So the push-back is also the lease: if the sender
    dies after sending, the operation is due again later and is sent again with the same id."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """WITH due AS (
                   SELECT o.payment_id, o.operation_id FROM processor_operations o
                    WHERE o.status = 'pending' AND o.next_attempt_at <= clock_timestamp()
                      AND NOT EXISTS (
                          SELECT 1 FROM processor_operations e
                           WHERE e.payment_id = o.payment_id AND e.seq < o.seq
                             AND e.status = 'pending')
                    ORDER BY o.next_attempt_at, o.seq
                    LIMIT $1
                      FOR UPDATE OF o SKIP LOCKED)
               UPDATE processor_operations o
                  SET attempts = o.attempts + 1,
                      next_attempt_at = clock_timestamp() + make_interval(
                          secs => least($3::float8, $2::float8 * 2 ^ least(o.attempts, 30))),
                      updated_at = clock_timestamp()
                 FROM due
                WHERE o.payment_id = due.payment_id AND o.operation_id = due.operation_id
            RETURNING o.payment_id, o.operation_id, o.kind, o.provider, o.amount_minor,
                      o.currency, o.final, o.provider_payment_ref, o.attempts""",
            limit,
            backoff_s,
            backoff_s_max,
        )
    return [
        Claimed(
            Operation(
                r["payment_id"],
                r["operation_id"],
                cast(OperationKind, r["kind"]),
                r["amount_minor"],
                r["currency"],
                r["final"],
            ),
            cast(ProviderName, r["provider"]),
            r["provider_payment_ref"],
            r["attempts"],
        )
        for r in rows
    ]


async def remember_payment_ref(pool: asyncpg.Pool, payment_id: str, provider_ref: str) -> None:
    """Keep the provider's id of ``payment_id`` on its operations (asked once, used by all)."""
    await pool.execute(
        """UPDATE processor_operations SET provider_payment_ref = $2
            WHERE payment_id = $1 AND provider_payment_ref IS NULL""",
        payment_id,
        provider_ref,
    )


async def record_done(pool: asyncpg.Pool, op: Operation, provider_operation_ref: str) -> None:
    """Mark ``op`` done; if it reverses a late debit (``warehouse.late_debits``), mark that
    debit reversed by it in the same statement."""
    await pool.execute(
        """WITH done AS (
               UPDATE processor_operations
                  SET status = 'done', provider_operation_ref = $3, last_error = NULL,
                      updated_at = clock_timestamp()
                WHERE payment_id = $1 AND operation_id = $2 AND status = 'pending'
            RETURNING payment_id, operation_id, updated_at)
           UPDATE failed_transactions f
              SET reversed_at = greatest(done.updated_at, f.debited_at), reversal_ref = $3
             FROM done
            WHERE f.payment_id = done.payment_id
              AND f.reversal_operation_id = done.operation_id
              AND f.reversed_at IS NULL""",
        op.payment_id,
        op.operation_id,
        provider_operation_ref,
    )


async def record_refused(pool: asyncpg.Pool, op: Operation, code: str, message: str) -> None:
    await pool.execute(
        """UPDATE processor_operations
              SET status = 'refused', refusal_code = $3, refusal_message = $4,
                  updated_at = clock_timestamp()
            WHERE payment_id = $1 AND operation_id = $2 AND status = 'pending'""",
        op.payment_id,
        op.operation_id,
        code or "refused",
        message[:1000],
    )


async def record_failure(pool: asyncpg.Pool, op: Operation, error: str) -> None:
    """A transient failure: the operation stays pending and is due again after its backoff."""
    await pool.execute(
        """UPDATE processor_operations SET last_error = $3, updated_at = clock_timestamp()
            WHERE payment_id = $1 AND operation_id = $2 AND status = 'pending'""",
        op.payment_id,
        op.operation_id,
        error[:1000],
    )


# Processors whose published API captures an authorization once and whole (Razorpay, PayU): a
# capture in parts cannot be carried out there, so the API refuses it before the books take it.
SINGLE_CAPTURE_PROVIDERS = frozenset({"razorpay", "payu"})


async def captures_only_once(pool: asyncpg.Pool, payment_id: str) -> bool:
    """Whether the processor holding ``payment_id`` captures only once and whole."""
    provider = await pool.fetchval(
        "SELECT provider FROM processor_attempts WHERE payment_id = $1", payment_id
    )
    return provider in SINGLE_CAPTURE_PROVIDERS
