"""The payments agent: requested payments in; decisions, ledger postings and lifecycle events out.

A thin shell: decode with the topic registry, decide with ``streams.authorization``, post with
``warehouse.payments.apply_decisions`` (idempotent), then emit lifecycle events whose ids are
derived from the payment.  Delivery is at-least-once and the effect exactly-once: a batch that
is redelivered after a crash records nothing new and re-emits the same event ids.

Concurrency is 1 on purpose: with more, Faust can commit an offset past a batch still in flight
(faust-streaming #606) and a crash would lose it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

import asyncpg
import faust
from faust.types import EventT

from models.events import (
    DeadLetter,
    DecodeError,
    LifecycleEvent,
    PaymentCommand,
    PaymentRequested,
    PaymentScored,
    encode,
)
from models.methods import MethodType
from models.topics import PAYMENTS_DEADLETTER, PAYMENTS_LIFECYCLE, PAYMENTS_SCORED
from streams.app import batch_agent, raw_topic
from streams.authorizer import ConnectorAuthorizer, ConnectorAuthorizerConfig
from streams.connectors.base import Approved
from streams.connectors.cards import SandboxCardVault
from streams.connectors.settings import build_connectors
from streams.deadletters import dead_letter_key, dead_letter_of
from streams.decisions import Applied, Decided, Outcome, decide, rules_verdict, stored_decision
from streams.fees import CardNetwork
from streams.ledger import FeeTerms
from streams.lifecycle import IllegalTransition, PaymentState
from streams.processor_operations import OperationSender, OperationSenderConfig
from streams.retry import LazyPool, retry_transient
from streams.scoring import ScoredRequest, risk_verdict, scored_request
from streams.settings import WorkerSettings
from warehouse.late_debits import late_debit_candidates, record_late_debit
from warehouse.payments import (
    BatchResult,
    CommandRefused,
    MerchantProfile,
    apply_commands,
    apply_decisions,
    merchant_profiles,
)
from warehouse.processor_store import (
    Awaiting,
    apply_processor_commands,
    awaiting_payments,
    stored_states,
)

log = logging.getLogger("rizzpay.streams.payments")

CONSUMER_NAME = "payments.authorize_and_post"
T = TypeVar("T")
Event = EventT[bytes]


@dataclass(frozen=True)
class Rejected:
    """A message that cannot be processed, with its stable reason code."""

    event: Event
    code: str
    reason: str


def dead_letter_for(rejected: Rejected, *, failed_at: datetime) -> DeadLetter:
    return dead_letter_of(
        rejected.event,
        rejected.code,
        rejected.reason,
        consumer=CONSUMER_NAME,
        failed_at=failed_at,
    )


Request = PaymentRequested | PaymentCommand


def decode_batch(
    events: Sequence[Event],
) -> tuple[list[tuple[Event, Request]], list[Rejected]]:
    """Decode every message of a batch of ``payments.scored``; undecodable ones become
    rejections.  A scored payment becomes its request carrying the risk decision
    (:class:`streams.scoring.ScoredRequest`), which :func:`decide_batch` honours."""
    decoded: list[tuple[Event, Request]] = []
    rejected: list[Rejected] = []
    for event in events:
        raw = event.value
        try:
            if not isinstance(raw, bytes):
                raise DecodeError("invalid_json", "message has no value")
            message = PAYMENTS_SCORED.decode(raw)
            request = scored_request(message) if isinstance(message, PaymentScored) else message
            assert isinstance(request, Request)
        except DecodeError as exc:
            rejected.append(Rejected(event, exc.code, exc.reason))
            continue
        key = event.message.key
        if key is not None and key != request.payment_id.encode():
            rejected.append(Rejected(event, "key_mismatch", "message key is not its payment_id"))
            continue
        decoded.append((event, request))
    return decoded, rejected


def fee_terms(
    profile: MerchantProfile,
    settings: WorkerSettings,
    method: MethodType,
    network: CardNetwork | None,
) -> FeeTerms:
    """What a capture of this merchant's ``method`` payment is charged: its own MDR schedule
    or the platform default, and GST by its state against the gateway's."""
    return FeeTerms(
        schedule=profile.mdr_schedule or settings.default_mdr,
        method=method,
        merchant_state=profile.state_code,
        gateway_state=settings.gateway_state_code,
        network=network,
    )


class Authorizer(Protocol):
    """Decides how new payments' authorizations end: by RizzPay's own rules, or by asking a
    processor through ``streams.connectors`` (``streams.authorizer``).  A payment missing from
    the answer is decided by the rules; an ``Undecided`` one is recorded ``created`` for the
    processor poller to settle.  Only payments not yet recorded are asked about."""

    async def verdicts(self, requests: Sequence[PaymentRequested]) -> Mapping[str, Outcome]:
        """The verdict per ``payment_id`` for ``requests``."""
        ...

    async def aclose(self) -> None: ...


class RulesAuthorizer:
    """Authorizes by :func:`streams.decisions.rules_verdict` alone, asking nobody."""

    async def verdicts(self, requests: Sequence[PaymentRequested]) -> Mapping[str, Outcome]:
        return {r.payment_id: rules_verdict(r) for r in requests}

    async def aclose(self) -> None:
        return None


def decide_batch(
    decoded: Sequence[tuple[Event, PaymentRequested]],
    profiles: Mapping[str, MerchantProfile],
    settings: WorkerSettings,
    verdicts: Mapping[str, Outcome] | None = None,
) -> tuple[list[tuple[Event, Decided]], list[Rejected]]:
    """Decide every decoded payment with its verdict (default: the rules), priced with its
    merchant's fee terms; a payment of a merchant RizzPay does not know is rejected.  Fraud
    scoring's decision wins (:func:`streams.scoring.risk_verdict`): block declines with
    ``risk_blocked``, review holds an authorization uncaptured for an analyst."""
    verdicts = verdicts or {}
    decided: list[tuple[Event, Decided]] = []
    rejected: list[Rejected] = []
    for event, request in decoded:
        profile = profiles.get(request.merchant_id)
        if profile is None:
            reason = f"merchant {request.merchant_id!r} does not exist"
            rejected.append(Rejected(event, "unknown_merchant", reason))
            continue
        terms = fee_terms(
            profile, settings, request.method.type, getattr(request.method, "network", None)
        )
        risk = request.risk if isinstance(request, ScoredRequest) else "allow"
        verdict, hold = risk_verdict(risk, verdicts.get(request.payment_id), request)
        decided.append((event, decide(request, terms, verdict, hold=hold)))
    return decided, rejected


class PaymentsProcessor:
    """Holds the agent's connections; ``handle`` processes one batch."""

    def __init__(
        self, app: faust.App, settings: WorkerSettings, authorizer: Authorizer | None = None
    ) -> None:
        self.settings = settings
        self._pg = LazyPool(
            self.settings.pg_dsn,
            max_size=self.settings.pg_pool_size_max,
            backoff_s_max=self.settings.retry_backoff_s_max,
        )
        self.authorizer: Authorizer = authorizer or self._default_authorizer(settings)
        prefix = settings.topic_prefix
        self.lifecycle = raw_topic(app, PAYMENTS_LIFECYCLE, prefix)
        self.deadletter = raw_topic(app, PAYMENTS_DEADLETTER, prefix)
        if isinstance(self.authorizer, ConnectorAuthorizer):
            # One poller per cluster (the leader): payments waiting for a processor are few,
            # and two pollers would only ask the processors twice.
            app.timer(settings.processor_poll_interval_s, on_leader=True)(self.poll_processors)
            # Captures, voids and refunds the books recorded go to the holding processor
            # (streams/processor_operations.py); one sender per cluster, like the poller.
            self.operations = OperationSender(
                self.authorizer.connectors,
                self.pool,
                OperationSenderConfig(
                    batch_max=settings.processor_poll_batch_max,
                    concurrency_max=settings.charge_concurrency_max,
                    backoff_s=settings.processor_poll_interval_s,
                    backoff_s_max=settings.processor_poll_backoff_s_max,
                ),
            )
            app.timer(settings.processor_poll_interval_s, on_leader=True)(self.operations.run)
            # Ended payments the processor may still have debited (warehouse/late_debits.py).
            app.timer(settings.processor_poll_interval_s, on_leader=True)(self.watch_late_debits)

    def _default_authorizer(self, settings: WorkerSettings) -> Authorizer:
        if not settings.uses_connectors:
            return RulesAuthorizer()
        # The sandbox vault is the only one there is so far: it turns a token back into a test
        # card with the token's BIN and last four (streams/connectors/cards.py).
        connectors = build_connectors(settings.connectors, SandboxCardVault())
        config = ConnectorAuthorizerConfig(
            charge_concurrency_max=settings.charge_concurrency_max,
            enquiry_delay_s=settings.processor_enquiry_delay_s,
        )
        return ConnectorAuthorizer(connectors, self.pool, config)

    async def pool(self) -> asyncpg.Pool:
        return await self._pg.get()

    async def close(self) -> None:
        await self.authorizer.aclose()
        await self._pg.close()

    async def _apply(self, batch: list[Decided]) -> BatchResult:
        pool = await self.pool()

        async def run() -> BatchResult:
            async with pool.acquire() as conn:
                return await apply_decisions(conn, batch)

        return await retry_transient(
            run, backoff_s_max=self.settings.retry_backoff_s_max, what="posting a batch"
        )

    async def _profiles(self, merchant_ids: list[str]) -> dict[str, MerchantProfile]:
        pool = await self.pool()
        return await retry_transient(
            lambda: merchant_profiles(pool, merchant_ids),
            backoff_s_max=self.settings.retry_backoff_s_max,
            what="reading merchants",
        )

    async def handle(self, events: Sequence[Event]) -> BatchResult:
        decoded, rejected = decode_batch(events)
        profiles = await self._profiles([r.merchant_id for _, r in decoded]) if decoded else {}
        # Creations first, then commands: a payment's creation precedes its commands on the
        # partition, so within a batch this keeps each payment's own order.
        creations = [(e, r) for e, r in decoded if isinstance(r, PaymentRequested)]
        commands = [(e, r) for e, r in decoded if not isinstance(r, PaymentRequested)]
        known = [r for _, r in creations if r.merchant_id in profiles]
        stored = await self._stored([r.payment_id for r in known]) if known else {}
        fresh = [r for r in known if r.payment_id not in stored]
        verdicts = await self._verdicts(fresh) if fresh else {}
        decided, refused = decide_batch(creations, profiles, self.settings, verdicts)
        # A payment already recorded re-announces its recorded decision and is never asked
        # about again here: a processor may have settled it since (the poller's doing).
        decided = [
            (e, stored_decision(d.request, stored[d.payment_id]) if d.payment_id in stored else d)
            for e, d in decided
        ]
        rejected.extend(refused)
        result = BatchResult([], [], [])
        if decided:
            try:
                result = await self._apply([d for _, d in decided])
            except asyncpg.PostgresError:
                # A permanent database error (say, a payment of an unknown merchant) must not
                # hold back the rest: apply one by one and dead-letter the ones that fail.
                log.exception("batch refused by PostgreSQL; applying one payment at a time")
                result, refused = await self._apply_each(decided)
                rejected.extend(refused)
        by_payment = {d.request.payment_id: e for e, d in decided}
        rejected.extend(
            Rejected(
                by_payment[c.request.payment_id],
                "idempotency_conflict",
                f"{c.request.payment_id} was already created by a different request",
            )
            for c in result.conflicts
        )
        applied: list[Applied] = []
        if commands:
            applied, refused = await self._apply_commands(commands, profiles)
            rejected.extend(refused)
        await self._emit(result, rejected, applied)
        return result

    async def _stored(self, payment_ids: list[str]) -> dict[str, PaymentState]:
        pool = await self.pool()
        return await retry_transient(
            lambda: stored_states(pool, payment_ids),
            backoff_s_max=self.settings.retry_backoff_s_max,
            what="reading recorded payments",
        )

    async def _verdicts(self, requests: list[PaymentRequested]) -> Mapping[str, Outcome]:
        # Asking again after a transient failure is safe: the attempt log sends every charge
        # that may have left to an enquiry at its provider, never to a second charge.
        return await retry_transient(
            lambda: self.authorizer.verdicts(requests),
            backoff_s_max=self.settings.retry_backoff_s_max,
            what="authorizing a batch",
        )

    async def poll_processors(self) -> int:
        """One round of the processor poller: ask about payments waiting for a processor
        (``created`` without a verdict, ``requires_action``) and apply what changed.  Returns
        how many payments changed.  A failed round is logged and left to the next one: the
        poller consumes no messages, so nothing is lost by skipping a round."""
        return await self._leader_round("processor poll", self._poll_once)

    async def _leader_round(
        self, what: str, round_: Callable[[ConnectorAuthorizer], Awaitable[int]]
    ) -> int:
        """Run one round of a leader timer through the processors (0 without them).  A failed
        round is logged and left to the next one: it consumes no messages, so nothing is lost
        by skipping it, and it must never kill the worker."""
        if not isinstance(self.authorizer, ConnectorAuthorizer):
            return 0
        try:
            return await round_(self.authorizer)
        except Exception:
            log.exception("%s failed; the next round retries", what)
            return 0

    async def _poll_once(self, authorizer: ConnectorAuthorizer) -> int:
        pool = await self.pool()
        waiting = await awaiting_payments(
            pool,
            self.settings.processor_poll_batch_max,
            interval_s=self.settings.processor_poll_interval_s,
            backoff_s_max=self.settings.processor_poll_backoff_s_max,
        )
        if not waiting:
            return 0
        terms = self._fee_terms(await self._profiles([w.request.merchant_id for w in waiting]))
        gate = asyncio.Semaphore(self.settings.charge_concurrency_max)
        changed: list[str] = []

        async def one(item: Awaiting) -> None:
            async with gate:
                now = datetime.now(UTC)
                try:
                    commands = await authorizer.settle(item.request, item.state, now)
                except (ValueError, KeyError):  # cannot be expressed to a processor: ask again
                    log.exception("%s: no processor can be asked", item.request.payment_id)
                    return
                if not commands:
                    return
                async with pool.acquire() as conn:
                    try:
                        await apply_processor_commands(
                            conn,
                            item.request.payment_id,
                            commands,
                            now=now,
                            fee_terms=terms,
                            announce=self._announce,
                        )
                    except IllegalTransition as exc:  # it moved on meanwhile; ask next round
                        log.warning("%s: %s", item.request.payment_id, exc)
                        return
                changed.append(item.request.payment_id)

        await asyncio.gather(*(one(w) for w in waiting))
        return len(changed)

    async def watch_late_debits(self) -> int:
        """One round of the late-debit watch: ask the processors about recently ended payments
        they held; record each one found debited after all and queue its reversal
        (``warehouse.late_debits``).  Returns how many were found.  A failed round is logged
        and left to the next one, like the poller's."""
        return await self._leader_round("late-debit watch", self._watch_late_debits_once)

    async def _watch_late_debits_once(self, authorizer: ConnectorAuthorizer) -> int:
        pool = await self.pool()
        candidates = await late_debit_candidates(
            pool,
            self.settings.processor_poll_batch_max,
            interval_s=self.settings.late_debit_poll_interval_s,
            watch_s=self.settings.late_debit_watch_s,
        )
        gate = asyncio.Semaphore(self.settings.charge_concurrency_max)

        async def one(item: Awaiting) -> bool:
            async with gate:
                found = await authorizer.status_of(item.request.payment_id)
            if not isinstance(found, Approved):
                return False
            operation_id = await record_late_debit(pool, item, found, now=datetime.now(UTC))
            if operation_id is None:
                return False
            log.warning(
                "%s ended %s but %s %s %d %s: recorded a failed transaction, reversal %s queued",
                item.request.payment_id,
                item.state.status.value,
                found.provider,
                "took" if found.captured else "holds",
                found.amount_minor,
                found.currency,
                operation_id,
            )
            return True

        return sum(await asyncio.gather(*(one(c) for c in candidates)))

    async def _announce(self, events: Sequence[LifecycleEvent]) -> None:
        """Send lifecycle events and wait until the broker acknowledged every one."""
        pending = [
            await self.lifecycle.send(key=e.payment_id.encode(), value=encode(e)) for e in events
        ]
        if pending:
            await asyncio.gather(*pending)

    def _fee_terms(
        self, profiles: Mapping[str, MerchantProfile]
    ) -> Callable[[str, str, str | None], FeeTerms | None]:
        def terms(merchant_id: str, method: str, network: str | None) -> FeeTerms | None:
            profile = profiles.get(merchant_id)
            if profile is None:
                return None
            return fee_terms(
                profile, self.settings, cast(MethodType, method), cast(CardNetwork | None, network)
            )

        return terms

    async def _apply_commands(
        self,
        commands: Sequence[tuple[Event, PaymentCommand]],
        profiles: Mapping[str, MerchantProfile],
    ) -> tuple[list[Applied], list[Rejected]]:
        pool = await self.pool()
        by_id = {id(c): e for e, c in commands}
        typed = [c for _, c in commands]

        async def run() -> tuple[list[Applied], list[CommandRefused]]:
            async with pool.acquire() as conn:
                return await apply_commands(conn, typed, self._fee_terms(profiles))

        applied, refused = await retry_transient(
            run, backoff_s_max=self.settings.retry_backoff_s_max, what="applying commands"
        )
        return applied, [Rejected(by_id[id(r.command)], r.code, r.reason) for r in refused]

    async def _apply_each(
        self, decided: list[tuple[Event, Decided]]
    ) -> tuple[BatchResult, list[Rejected]]:
        merged = BatchResult([], [], [])
        refused: list[Rejected] = []
        for event, item in decided:
            try:
                one = await self._apply([item])
            except asyncpg.PostgresError as exc:
                refused.append(Rejected(event, "database_refused", f"{type(exc).__name__}: {exc}"))
                continue
            merged.recorded.extend(one.recorded)
            merged.replayed.extend(one.replayed)
            merged.conflicts.extend(one.conflicts)
        return merged, refused

    async def _emit(
        self, result: BatchResult, rejected: list[Rejected], applied: Sequence[Applied] = ()
    ) -> None:
        """Send lifecycle events (again, for replays: same ids) and dead letters, and wait for
        the broker to acknowledge them all before the batch's offsets may be committed."""
        pending: list[Awaitable[Any]] = []
        announced: list[Decided | Applied] = [*result.recorded, *result.replayed, *applied]
        for item in announced:
            for event in item.events:
                pending.append(
                    await self.lifecycle.send(key=event.payment_id.encode(), value=encode(event))
                )
        now = datetime.now(UTC)
        for rejection in rejected:
            letter = dead_letter_for(rejection, failed_at=now)
            log.warning("dead-lettering %s: %s", letter.error_code, letter.reason)
            pending.append(
                await self.deadletter.send(
                    key=dead_letter_key(letter),
                    value=encode(letter),
                )
            )
        if pending:
            await asyncio.gather(*pending)


def install(app: faust.App, settings: WorkerSettings) -> PaymentsProcessor:
    """Register the payments agent on ``app``."""
    processor = PaymentsProcessor(app, settings)
    # Fraud scoring (streams/scoring.py) sits between the intake and this agent.
    scored = raw_topic(app, PAYMENTS_SCORED, settings.topic_prefix)

    async def authorize_and_post(events: Sequence[Event]) -> None:
        result = await processor.handle(events)
        log.debug(
            "batch: %d recorded, %d replayed, %d conflicts",
            len(result.recorded),
            len(result.replayed),
            len(result.conflicts),
        )

    batch_agent(
        app,
        scored,
        name=CONSUMER_NAME,
        batch_size_max=settings.batch_size_max,
        batch_wait_s=settings.batch_wait_s,
        handle=authorize_and_post,
    )

    return processor
