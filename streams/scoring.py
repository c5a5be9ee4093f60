"""The fraud scoring agent: ``payments.requested`` in, ``payments.scored`` out.

A thin shell around :func:`fraud.scoring.score_batch`: decode a batch, score the new payments
with the online feature state, the champion (and the challenger in shadow) and the analysts'
rules, record the scores in PostgreSQL, then send, in the order read, a ``payment.scored`` for
each payment and every merchant command unchanged (same key, so on the same partition of
``payments.scored``: a payment's creation still precedes its commands).  The payments agent
(``streams/payments.py``) authorizes from ``payments.scored``: block declines with
``risk_blocked``, review authorizes and holds the capture until an analyst decides
(``api/reviews.py``).

**State and crashes.**  The feature state is one :class:`fraud.scoring.FeatureState` for every
partition this worker reads (features of a customer or a card span partitions: the topic is
keyed by payment), kept in memory and made durable by ``fraud_scores`` in PostgreSQL, which is
its changelog: each batch's scores, feature inputs and feature times are committed in feed order
*before* the batch's messages are sent, and the Kafka offsets are committed only after the sends
were acknowledged.  So after a crash anywhere:

* scores committed, events not sent: the batch is redelivered; its payments are found in
  ``fraud_scores`` and their stored events are sent again (same event ids and content); the
  state is not fed twice;
* nothing committed: the batch is redelivered and scored afresh, as if the first try never
  happened, because the state was rebuilt without it.

On start (and after any failure inside a batch) the state is rebuilt by feeding the last 38 days
of ``fraud_scores`` in ``seq`` order at their recorded feature times, then applying the labels,
so the rebuilt state equals the one that was lost.  A single scoring consumer must own every
partition for the features to see all payments (run one worker, or give scoring its own); see
docs/fraud.md for scaling out.

Concurrency is 1: scores are the input of money-moving decisions (faust-streaming #606).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import faust
from faust.types import EventT

from fraud.registry import ModelRegistry, RegistryError
from fraud.rules import RuleSet, RuleSetHolder
from fraud.scoring import (
    NO_RULES,
    FeatureState,
    Models,
    ScoredPayment,
    score_batch,
    transaction_for,
)
from models.events import (
    DeadLetter,
    DecodeError,
    PaymentCommand,
    PaymentRequested,
    PaymentScored,
    RiskDecision,
    ShadowScore,
    encode,
)
from models.ids import derived_event_id
from models.topics import PAYMENTS_DEADLETTER, PAYMENTS_REQUESTED, PAYMENTS_SCORED
from streams.app import batch_agent, raw_topic
from streams.deadletters import dead_letter_key, dead_letter_of
from streams.decisions import (
    CommandPlan,
    Decided,
    Outcome,
    decide,
    rules_verdict,
    to_lifecycle_command,
)
from streams.lifecycle import Decline
from streams.retry import LazyPool, retry_transient
from streams.settings import WorkerSettings
from warehouse.fraud_store import (
    ScoreRow,
    feature_history,
    labels_since,
    record_scores,
    scored_events,
)

log = logging.getLogger("rizzpay.streams.scoring")

CONSUMER_NAME = "payments.fraud_scoring"
Event = EventT[bytes]
Request = PaymentRequested | PaymentCommand
#: The registry's aliases are re-read at most this often (a promotion takes effect within it).
MODELS_CHECK_INTERVAL_S = 10.0


# -- pure pieces ---------------------------------------------------------------------------------


def scored_event(
    request: PaymentRequested, scored: ScoredPayment, scored_at: datetime
) -> PaymentScored:
    """The ``payment.scored`` event of one scoring outcome (its id derived from the payment)."""
    shadow = None
    if scored.shadow_version is not None:
        shadow = ShadowScore(
            model_version=scored.shadow_version,
            score=scored.shadow_score,
            error=scored.shadow_error,
        )
    return PaymentScored(
        event_id=derived_event_id(request.payment_id, "payment.scored"),
        payment_id=request.payment_id,
        merchant_id=request.merchant_id,
        occurred_at=request.occurred_at,
        request=request,
        decision=scored.decision,
        reason=scored.reason,
        score=scored.score,
        model_version=scored.model_version,
        rule_hits=scored.rule_hits,
        ruleset_sha256=scored.ruleset_sha256,
        features=scored.features,
        shadow=shadow,
        scored_at=scored_at,
    )


def score_request(event: Request) -> PaymentScored | PaymentCommand:
    """What scoring makes of one message of ``payments.requested`` on its own (fresh feature
    state, no model, no rules): a ``payment.scored``, or the command unchanged."""
    if not isinstance(event, PaymentRequested):
        return event
    [scored] = score_batch(
        FeatureState(), [(transaction_for(event), event.occurred_at)], NO_RULES, Models()
    )
    return scored_event(event, scored, event.occurred_at)


class ScoredRequest(PaymentRequested):
    """A requested payment as the payments agent sees it after scoring: the request, with the
    risk decision it must honour.  Internal to the worker, never published."""

    risk: RiskDecision = "allow"


def scored_request(event: PaymentScored) -> ScoredRequest:
    """The request inside ``event`` carrying its risk decision (no re-validation: the request
    was validated when ``event`` was decoded)."""
    fields: dict[str, Any] = dict(event.request)
    return ScoredRequest.model_construct(
        _fields_set={*event.request.model_fields_set, "risk"}, **fields, risk=event.decision
    )


def risk_verdict(
    risk: RiskDecision, verdict: Outcome | None, request: PaymentRequested
) -> tuple[Outcome, bool]:
    """How the risk decision shapes authorization: ``(verdict, hold)``.

    block → declined with ``risk_blocked`` (whatever a processor said); review → the usual
    verdict, but an authorization is held uncaptured until an analyst decides; allow → the usual
    verdict.  ``verdict`` None means the rules' (:func:`streams.decisions.rules_verdict`).
    """
    if risk == "block":
        return Decline("risk_blocked"), False
    return (verdict if verdict is not None else rules_verdict(request)), risk == "review"


def authorization_plan(event: PaymentScored | PaymentCommand) -> Decided | CommandPlan:
    """What the payments agent does with each message of ``payments.scored`` (rules as the
    authorizer, no fees): decide a scored payment honouring its risk decision, or plan a
    command on an existing one."""
    if isinstance(event, PaymentScored):
        verdict, hold = risk_verdict(event.decision, None, event.request)
        return decide(event.request, None, verdict, hold=hold)
    return CommandPlan(event.payment_id, to_lifecycle_command(event))


def _score_row(event: PaymentScored, scored: ScoredPayment, raw: bytes) -> ScoreRow:
    request = event.request
    transaction = transaction_for(request)
    return ScoreRow(
        payment_id=request.payment_id,
        merchant_id=request.merchant_id,
        request_fingerprint=request.request_fingerprint,
        occurred_at=request.occurred_at,
        feature_time=scored.feature_time,
        scored_at=event.scored_at,
        amount_minor=request.amount.minor,
        currency=request.amount.currency,
        decision=scored.decision,
        reason=scored.reason,
        score=scored.score,
        model_version=scored.model_version,
        rule_hits=scored.rule_hits,
        ruleset_sha256=scored.ruleset_sha256,
        features=scored.features,
        shadow_model_version=scored.shadow_version,
        shadow_score=scored.shadow_score,
        shadow_error=scored.shadow_error,
        transaction=transaction,
        event=raw,
    )


# -- the agent -----------------------------------------------------------------------------------


class ScoringProcessor:
    """Holds the scorer's state and connections; ``handle`` processes one batch."""

    def __init__(self, app: faust.App, settings: WorkerSettings) -> None:
        self.settings = settings
        prefix = settings.topic_prefix
        self.scored = raw_topic(app, PAYMENTS_SCORED, prefix)
        self.deadletter = raw_topic(app, PAYMENTS_DEADLETTER, prefix)
        self.rules: RuleSetHolder | None = (
            RuleSetHolder(settings.fraud_rules) if settings.fraud_rules is not None else None
        )
        self.registry: ModelRegistry | None = (
            ModelRegistry(settings.fraud_registry) if settings.fraud_registry is not None else None
        )
        self.models = Models()
        self._models_checked_at = -MODELS_CHECK_INTERVAL_S
        self._state: FeatureState | None = None
        self._label_revision = 0
        self._pg = LazyPool(
            self.settings.pg_dsn,
            max_size=2,
            backoff_s_max=self.settings.retry_backoff_s_max,
        )
        if self.rules is None:
            log.warning("no fraud rule set (RIZZPAY_FRAUD_RULES): every payment is allowed")

    async def pool(self) -> asyncpg.Pool:
        return await self._pg.get()

    async def close(self) -> None:
        await self._pg.close()

    def rule_set(self) -> RuleSet:
        return NO_RULES if self.rules is None else self.rules.get()

    def refresh_models(self) -> Models:
        """The deployed champion and challenger, re-read when the registry's aliases changed.
        A registry that cannot be read keeps the models in use (and says so)."""
        now = time.monotonic()
        if self.registry is None or now - self._models_checked_at < MODELS_CHECK_INTERVAL_S:
            return self.models
        self._models_checked_at = now
        try:
            aliases = self.registry.aliases()
            loaded = (
                None if self.models.champion is None else self.models.champion.version,
                None if self.models.challenger is None else self.models.challenger.version,
            )
            if (aliases.champion, aliases.challenger) == loaded:
                return self.models
            champion = self.registry.load(aliases.champion) if aliases.champion else None
            challenger = self.registry.load(aliases.challenger) if aliases.challenger else None
        except (RegistryError, OSError) as exc:
            log.error("cannot load fraud models (%s); keeping %s", exc, self.models)
            return self.models
        self.models = Models(champion, challenger)
        log.info(
            "fraud models: champion %s, challenger %s (shadow)",
            aliases.champion or "none (rules only)",
            aliases.challenger or "none",
        )
        return self.models

    async def state(self) -> FeatureState:
        """The feature state, rebuilt from ``fraud_scores`` when not in memory; new labels
        applied."""
        pool = await self.pool()
        if self._state is None:
            history, labels, revision = await retry_transient(
                lambda: feature_history(pool),
                backoff_s_max=self.settings.retry_backoff_s_max,
                what="reading the fraud feature history",
            )
            state = FeatureState()
            for transaction, when in history:
                state.feed(transaction, when)
            for payment_id, is_fraud in labels:
                state.observe_label(payment_id, is_fraud)
            self._state, self._label_revision = state, revision
            log.info("fraud feature state rebuilt from %d scored payments", len(history))
            return state
        labels, revision = await retry_transient(
            lambda: labels_since(pool, self._label_revision),
            backoff_s_max=self.settings.retry_backoff_s_max,
            what="reading fraud labels",
        )
        for payment_id, is_fraud in labels:
            self._state.observe_label(payment_id, is_fraud)
        self._label_revision = revision
        return self._state

    def _decode(self, events: Sequence[Event]) -> tuple[list[tuple[Event, Request]], list[Any]]:
        decoded: list[tuple[Event, Request]] = []
        rejected: list[tuple[Event, str, str]] = []
        for event in events:
            raw = event.value
            try:
                if not isinstance(raw, bytes):
                    raise DecodeError("invalid_json", "message has no value")
                request = PAYMENTS_REQUESTED.decode(raw)
                assert isinstance(request, Request)
            except DecodeError as exc:
                rejected.append((event, exc.code, exc.reason))
                continue
            key = event.message.key
            if key is not None and key != request.payment_id.encode():
                rejected.append((event, "key_mismatch", "message key is not its payment_id"))
                continue
            decoded.append((event, request))
        return decoded, rejected

    async def handle(self, events: Sequence[Event]) -> int:
        """Score one batch and send its messages on; returns how many payments were scored."""
        decoded, rejected = self._decode(events)
        creations = [r for _, r in decoded if isinstance(r, PaymentRequested)]
        pool = await self.pool()
        known = await retry_transient(
            lambda: scored_events(pool, [r.payment_id for r in creations]),
            backoff_s_max=self.settings.retry_backoff_s_max,
            what="reading fraud scores",
        )
        fresh: dict[str, PaymentRequested] = {}
        for r in creations:
            if r.payment_id not in known and r.payment_id not in fresh:
                fresh[r.payment_id] = r
        out: dict[str, bytes] = {pid: raw for pid, (_, raw) in known.items()}
        if fresh:
            out.update(await self._score(list(fresh.values())))
        pending: list[Awaitable[Any]] = []
        for event, request in decoded:
            key = request.payment_id.encode()
            value = event.value
            if isinstance(request, PaymentRequested):
                value = out[request.payment_id]
                first = known.get(request.payment_id, (None, b""))[0]
                if first is None:
                    first = fresh[request.payment_id].request_fingerprint
                if first != request.request_fingerprint:
                    # A reused payment id with another body: pass it on, decided as before, for
                    # the payments agent to refuse as an idempotency conflict.
                    value = self._conflicting(request, value)
            assert isinstance(value, bytes)
            pending.append(await self.scored.send(key=key, value=value))
        now = datetime.now(UTC)
        for event, code, reason in rejected:
            letter = _dead_letter(event, code, reason, now)
            log.warning("dead-lettering %s: %s", code, reason)
            pending.append(
                await self.deadletter.send(
                    key=dead_letter_key(letter),
                    value=encode(letter),
                )
            )
        if pending:
            await asyncio.gather(*pending)
        return len(fresh)

    @staticmethod
    def _conflicting(request: PaymentRequested, stored: bytes) -> bytes:
        first = PAYMENTS_SCORED.decode_as(stored, PaymentScored)
        return encode(first.model_copy(update={"request": request}))

    async def _score(self, requests: list[PaymentRequested]) -> dict[str, bytes]:
        """Score new payments, commit their scores; their events by payment id."""
        state = await self.state()
        rules, models = self.rule_set(), self.refresh_models()
        batch = [(transaction_for(r), r.occurred_at) for r in requests]
        try:
            scored = score_batch(state, batch, rules, models)
        except Exception:
            # The champion failed (or a payment could not be fed): decide on the rules alone
            # rather than hold up authorization, from a state rebuilt without this batch.
            log.exception("scoring with the champion failed; this batch is scored by rules only")
            self._state = None
            state = await self.state()
            models = Models()
            scored = score_batch(state, batch, rules, models)
        scored_at = datetime.now(UTC)
        events = [scored_event(r, s, scored_at) for r, s in zip(requests, scored, strict=True)]
        raws = [encode(e) for e in events]
        rows = [_score_row(e, s, raw) for e, s, raw in zip(events, scored, raws, strict=True)]
        # Feed order: by occurred_at, ties in input order (as score_batch fed them).
        order = sorted(range(len(rows)), key=lambda i: requests[i].occurred_at)
        pool = await self.pool()

        async def record() -> int:
            async with pool.acquire() as conn:
                return await record_scores(conn, [rows[i] for i in order])

        try:
            await retry_transient(
                record, backoff_s_max=self.settings.retry_backoff_s_max, what="recording scores"
            )
        except asyncpg.PostgresError:
            # Not recorded: the state must not keep what its changelog lacks.  The decisions
            # still go on to authorization (a review without a queue row is visible in the log).
            log.exception("fraud scores of %d payments not recorded", len(rows))
            self._state = None
        for event in events:
            if event.shadow is not None:
                log.info(
                    "shadow %s: %s score %s (champion %s %s, decision %s)",
                    event.payment_id,
                    event.shadow.model_version,
                    event.shadow.score if event.shadow.error is None else event.shadow.error,
                    event.model_version,
                    event.score,
                    event.decision,
                )
        return {e.payment_id: raw for e, raw in zip(events, raws, strict=True)}


def _dead_letter(event: Event, code: str, reason: str, failed_at: datetime) -> DeadLetter:
    return dead_letter_of(event, code, reason, consumer=CONSUMER_NAME, failed_at=failed_at)


def install(app: faust.App, settings: WorkerSettings) -> ScoringProcessor:
    """Register the fraud scoring agent on ``app``."""
    processor = ScoringProcessor(app, settings)
    requested = raw_topic(app, PAYMENTS_REQUESTED, settings.topic_prefix)

    async def score_payments(events: Sequence[Event]) -> None:
        scored = await processor.handle(events)
        log.debug("scoring batch: %d messages, %d scored", len(events), scored)

    batch_agent(
        app,
        requested,
        name=CONSUMER_NAME,
        batch_size_max=settings.batch_size_max,
        batch_wait_s=settings.batch_wait_s,
        handle=score_payments,
    )

    return processor
