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
from faust.streams import Stream
from faust.types import EventT

from models.events import DeadLetter, DecodeError, PaymentCommand, PaymentRequested, encode
from models.methods import MethodType
from models.topics import PAYMENTS_DEADLETTER, PAYMENTS_LIFECYCLE, PAYMENTS_REQUESTED
from streams.app import raw_topic
from streams.decisions import Applied, Decided, Verdict, decide, rules_verdict
from streams.fees import CardNetwork
from streams.ledger import FeeTerms
from streams.retry import retry_transient
from streams.settings import WorkerSettings
from warehouse.payments import (
    BatchResult,
    CommandRefused,
    MerchantProfile,
    apply_commands,
    apply_decisions,
    merchant_profiles,
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
    message = rejected.event.message
    key = message.key
    return DeadLetter(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key.decode("utf-8", "replace") if isinstance(key, bytes) else None,
        value=bytes(message.value or b"").decode("utf-8", "replace"),
        error_code=rejected.code,
        reason=rejected.reason,
        consumer=CONSUMER_NAME,
        failed_at=failed_at,
    )


Request = PaymentRequested | PaymentCommand


def decode_batch(
    events: Sequence[Event],
) -> tuple[list[tuple[Event, Request]], list[Rejected]]:
    """Decode every message of a batch; undecodable ones become rejections."""
    decoded: list[tuple[Event, Request]] = []
    rejected: list[Rejected] = []
    for event in events:
        raw = event.value
        try:
            if not isinstance(raw, bytes):
                raise DecodeError("invalid_json", "message has no value")
            request = PAYMENTS_REQUESTED.decode(raw)
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
    processor through ``streams.connectors``.  A payment missing from the answer is decided by
    the rules."""

    async def verdicts(self, requests: Sequence[PaymentRequested]) -> Mapping[str, Verdict]:
        """The verdict per ``payment_id`` for ``requests``."""
        ...

    async def aclose(self) -> None: ...


class RulesAuthorizer:
    """Authorizes by :func:`streams.decisions.rules_verdict` alone, asking nobody."""

    async def verdicts(self, requests: Sequence[PaymentRequested]) -> Mapping[str, Verdict]:
        return {r.payment_id: rules_verdict(r) for r in requests}

    async def aclose(self) -> None:
        return None


def decide_batch(
    decoded: Sequence[tuple[Event, PaymentRequested]],
    profiles: Mapping[str, MerchantProfile],
    settings: WorkerSettings,
    verdicts: Mapping[str, Verdict] | None = None,
) -> tuple[list[tuple[Event, Decided]], list[Rejected]]:
    """Decide every decoded payment with its verdict (default: the rules), priced with its
    merchant's fee terms; a payment of a merchant RizzPay does not know is rejected."""
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
        verdict = verdicts.get(request.payment_id)
        decided.append((event, decide(request, terms, verdict)))
    return decided, rejected


class PaymentsProcessor:
    """Holds the agent's connections; ``handle`` processes one batch."""

    def __init__(
        self, app: faust.App, settings: WorkerSettings, authorizer: Authorizer | None = None
    ) -> None:
        self.settings = settings
        self.authorizer: Authorizer = authorizer or RulesAuthorizer()
        prefix = settings.topic_prefix
        self.lifecycle = raw_topic(app, PAYMENTS_LIFECYCLE, prefix)
        self.deadletter = raw_topic(app, PAYMENTS_DEADLETTER, prefix)
        self._pool: asyncpg.Pool | None = None

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await retry_transient(
                lambda: asyncpg.create_pool(
                    self.settings.pg_dsn, min_size=1, max_size=self.settings.pg_pool_size_max
                ),
                backoff_s_max=self.settings.retry_backoff_s_max,
                what="connecting to PostgreSQL",
            )
        return self._pool

    async def close(self) -> None:
        await self.authorizer.aclose()
        if self._pool is not None:
            await self._pool.close()

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
        verdicts = await self.authorizer.verdicts(known) if known else {}
        decided, refused = decide_batch(creations, profiles, self.settings, verdicts)
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
                    key=f"{letter.source_topic}/{letter.partition}/{letter.offset}".encode(),
                    value=encode(letter),
                )
            )
        if pending:
            await asyncio.gather(*pending)


def install(app: faust.App, settings: WorkerSettings) -> PaymentsProcessor:
    """Register the payments agent on ``app``."""
    processor = PaymentsProcessor(app, settings)
    requested = raw_topic(app, PAYMENTS_REQUESTED, settings.topic_prefix)

    @app.agent(requested, name=CONSUMER_NAME, concurrency=1)
    async def authorize_and_post(stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, Stream)  # StreamT's hints lack take_events
        async for events in stream.take_events(
            settings.batch_size_max, within=settings.batch_wait_s
        ):
            result = await processor.handle(events)
            log.debug(
                "batch: %d recorded, %d replayed, %d conflicts",
                len(result.recorded),
                len(result.replayed),
                len(result.conflicts),
            )

    return processor
