"""The operation sender: sends the captures, voids and refunds queued in
``processor_operations`` (``warehouse.processor_operations``) to the processor that holds each
payment, and records the answer.

Run by the payments agent's leader every ``processor_poll_interval_s``, like the status
poller.  Each operation carries our id (``capture_id``, ``refund_id``; a void is once per
payment) as the provider's idempotency reference, so sending it again after a crash or an
ambiguous failure names the same operation at the provider:

=================== ==========================================================================
answer              the operation
=================== ==========================================================================
``Done``            done, with the provider's id of the capture/refund/cancellation
``Refused``         refused with the provider's code, logged; the ledger is left as it is and
                    the row stays for operations staff (see docs/connectors.md)
``ProcessorError``  pending, due again after its backoff (doubling, at most the maximum)
=================== ==========================================================================

Operations of one payment go out in the order the books recorded them: a refund waits until
the capture before it was answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import asyncpg

from streams.connectors.base import (
    Approved,
    Connector,
    Done,
    OperationResult,
    PaymentRef,
    ProcessorError,
    ProviderName,
    Refused,
)
from warehouse.processor_operations import (
    Claimed,
    claim_due,
    record_done,
    record_failure,
    record_refused,
    remember_payment_ref,
)

log = logging.getLogger("rizzpay.streams.processor_operations")

PoolFactory = Callable[[], Awaitable[asyncpg.Pool]]


@dataclass(frozen=True)
class OperationSenderConfig:
    """``batch_max`` operations per round, at most ``concurrency_max`` in flight; a failed
    attempt is retried after ``backoff_s`` doubled per attempt, at most ``backoff_s_max``."""

    batch_max: int = 200
    concurrency_max: int = 32
    backoff_s: float = 1.0
    backoff_s_max: float = 60.0


async def send(connector: Connector, claimed: Claimed, ref: PaymentRef) -> OperationResult:
    """Send one claimed operation to ``connector``."""
    op = claimed.operation
    match op.kind:
        case "capture":
            return await connector.capture(ref, op.amount_minor, op.operation_id, final=op.final)
        case "refund":
            return await connector.refund(ref, op.amount_minor, op.operation_id)
        case "void":
            return await connector.void(ref)


class OperationSender:
    """Sends due operations through ``connectors`` (one per provider)."""

    def __init__(
        self,
        connectors: Mapping[ProviderName, Connector],
        pool: PoolFactory,
        config: OperationSenderConfig | None = None,
    ) -> None:
        self.config = config or OperationSenderConfig()
        self._connectors = dict(connectors)
        self._pool = pool

    async def run(self) -> int:
        """One round; returns how many operations ended (done or refused).  A failed round is
        logged and left to the next one: the queue is in PostgreSQL, nothing is lost."""
        try:
            return await self._round()
        except Exception:  # a round must never kill the worker; the next round retries
            log.exception("sending processor operations failed; the next round retries")
            return 0

    async def _round(self) -> int:
        pool = await self._pool()
        claimed = await claim_due(
            pool,
            self.config.batch_max,
            backoff_s=self.config.backoff_s,
            backoff_s_max=self.config.backoff_s_max,
        )
        gate = asyncio.Semaphore(self.config.concurrency_max)

        async def one(item: Claimed) -> bool:
            async with gate:
                return await self._one(pool, item)

        ended = await asyncio.gather(*(one(c) for c in claimed))
        return sum(ended)

    async def _one(self, pool: asyncpg.Pool, item: Claimed) -> bool:
        op = item.operation
        connector = self._connectors.get(item.provider)
        if connector is None:  # configuration changed under a queued operation: keep it
            await record_failure(pool, op, f"no connector for {item.provider} is configured")
            return False
        ref_id = item.provider_payment_ref
        if ref_id is None:
            # The attempt log knows the provider, not its id for the payment: ask by our
            # reference (a read) and keep the answer for the payment's later operations.
            found = await connector.status(op.payment_id)
            if not isinstance(found, Approved):
                await record_failure(pool, op, f"payment not found as approved: {found!r}")
                return False
            ref_id = found.provider_ref
            await remember_payment_ref(pool, op.payment_id, ref_id)
        result = await send(connector, item, PaymentRef(op.payment_id, ref_id, op.currency))
        match result:
            case Done():
                await record_done(pool, op, result.provider_ref)
                log.info("%s %s %s: done at %s", op.payment_id, op.kind, op.operation_id,
                         item.provider)  # fmt: skip
                return True
            case Refused():
                await record_refused(pool, op, result.provider_code, result.message)
                log.error(
                    "%s %s %s refused by %s: %s %s; left for operations to resolve",
                    op.payment_id,
                    op.kind,
                    op.operation_id,
                    item.provider,
                    result.provider_code,
                    result.message,
                )
                return True
            case ProcessorError():
                await record_failure(pool, op, f"{result.code}: {result.message}")
                log.warning(
                    "%s %s %s: %s (attempt %d), retried later",
                    op.payment_id,
                    op.kind,
                    op.operation_id,
                    result.code,
                    item.attempt,
                )
                return False
