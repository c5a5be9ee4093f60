"""Authorization by the processors: the payments agent's :class:`ConnectorAuthorizer` and the
status poller that settles what a processor has not decided yet.

New payments of a batch are charged concurrently (at most ``charge_concurrency_max`` at once)
through the :class:`~streams.connectors.routing.Router`, whose attempt log is PostgreSQL
(``processor_attempts``, :class:`warehouse.processor_store.PgAttemptLog`).  The RizzPay wallet
stays with the rules: the ledger moves wallet money, no processor does.  RizzPay's own method
limits (UPI ₹1 lakh, IMPS ₹5 lakh) decline before any processor is asked.

What each answer becomes (:func:`verdict_for`):

=================== =================================================================
answer              the payment
=================== =================================================================
``Approved``        authorized (and captured when the processor captured it)
``Declined``        declined with the processor's code; never tried elsewhere
``Failed``          failed
``RequiresAction``  requires_action (3-D Secure, netbanking redirect, UPI collect)
``Pending``         recorded ``created``, no events: a bank transfer the customer has yet
                    to send, or a payment still processing
``ProcessorError``  recorded ``created``, no events: the outcome is unknown (the processor
                    may hold it) or no processor could take it
``Unroutable``      failed: no processor serves that method in that currency
=================== =================================================================

A ``created`` or ``requires_action`` payment is never lost or decided twice: the poller
(:func:`commands_for`, run by the payments agent every ``processor_poll_interval_s``) asks the
processor that may hold it, by our reference, and applies the answer through the lifecycle
state machine, whose command keys make a repeated answer a no-op.  A payment no processor holds
is charged again through the router (which resumes at any provider the log names first).  A
redelivered request of a payment already recorded is never charged again: the agent re-announces
the recorded decision (``streams.decisions.stored_decision``).

Fraud scoring's decision comes first: a blocked payment is never sent to a processor (the
payments agent declines it with ``risk_blocked``), and one held for review is charged with
manual capture, so the processor only holds the money until an analyst decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from models.events import PaymentRequested
from streams.authorization import METHOD_LIMIT_MINOR_INR
from streams.connectors.base import (
    RETURN_URL_DEFAULT,
    Approved,
    ChargeRequest,
    ChargeResult,
    Connector,
    Declined,
    Failed,
    NotFound,
    Pending,
    ProcessorError,
    ProviderName,
    RequiresAction,
    StatusResult,
    UpiCollectAction,
    action_id_for,
    lifecycle_decision,
)
from streams.connectors.routing import ENQUIRY_DELAY_S_DEFAULT, Router, Unroutable
from streams.decisions import Outcome, Undecided, capture_id_for
from streams.lifecycle import (
    ACTION_VALIDITY_MAX,
    Authorize,
    Capture,
    Command,
    CompleteAction,
    Decline,
    Expire,
    Fail,
    PaymentState,
    RequireAction,
    Status,
)
from warehouse.processor_store import PgAttemptLog, record_customer_action, register_requests

log = logging.getLogger("rizzpay.streams.authorizer")

# How many charges of one batch are in flight at once by default: processors answer in
# 0.1-3 s, so a batch of 500 would otherwise take minutes one by one; the bound keeps the HTTP
# pools (64 connections per provider) and the processors' rate limits from being overrun.
CHARGE_CONCURRENCY_DEFAULT = 32

PoolFactory = Callable[[], Awaitable[asyncpg.Pool]]


# --- pure: answers as lifecycle commands ------------------------------------------------------


def _reason(text: str) -> str:
    return text[:255] or "processor failure"


def _action_deadline(expires_at: datetime | None, now: datetime) -> datetime | None:
    """The processor's deadline if the state machine accepts it at ``now``, else ``None`` (the
    machine's default per action type): a provider clock a little behind ours must not make a
    valid answer an illegal transition."""
    if expires_at is None or not now < expires_at <= now + ACTION_VALIDITY_MAX:
        return None
    return expires_at


def method_limit_decline(request: PaymentRequested) -> Decline | None:
    """RizzPay's own per-method ceiling (``streams.authorization``), checked before any
    processor is asked: the rails refuse these anyway, and asking costs a round trip."""
    limit = METHOD_LIMIT_MINOR_INR.get(request.method.type)
    amount = request.amount
    if amount.currency == "INR" and limit is not None and amount.minor > limit:
        return Decline("amount_over_method_limit")
    return None


def risk_of(request: PaymentRequested) -> str:
    """Fraud scoring's decision the request carries (``streams.scoring.ScoredRequest``), or
    ``"allow"`` for a request that was not scored."""
    return str(getattr(request, "risk", "allow"))


def as_charged(request: PaymentRequested) -> PaymentRequested:
    """The request as a processor is asked to charge it, and as the poller keeps it: a plain
    ``payment.requested`` (no scoring fields), with manual capture when fraud review holds it,
    so no money is taken before an analyst decides."""
    plain = PaymentRequested.model_validate(
        request.model_dump(include=set(PaymentRequested.model_fields))
    )
    if risk_of(request) == "review" and plain.capture == "automatic":
        return plain.model_copy(update={"capture": "manual"})
    return plain


def verdict_for(request: PaymentRequested, result: ChargeResult | Unroutable) -> Outcome:
    """The verdict a router's answer stands for (see the module docstring's table)."""
    if isinstance(result, Unroutable):
        return Fail(_reason(f"no processor serves {result.method_type} in {result.currency}"))
    if isinstance(result, Pending):
        return Undecided(f"{result.provider}: {result.detail}")
    if isinstance(result, ProcessorError):
        return Undecided(f"{result.provider}: {result.code}")
    decision = lifecycle_decision(result)
    assert decision is not None  # only Pending and ProcessorError map to None
    if isinstance(decision, RequireAction):
        deadline = _action_deadline(decision.expires_at, request.occurred_at)
        return RequireAction(decision.action_id, decision.action_type, deadline)
    if isinstance(decision, Fail):
        return Fail(_reason(decision.reason))
    return decision


def customer_action_of(result: ChargeResult | Unroutable) -> dict[str, object] | None:
    """What the customer must do next, as JSON for the checkout page (``None``: nothing)."""
    if isinstance(result, RequiresAction):
        action = result.action
        expires = None if result.expires_at is None else result.expires_at.isoformat()
        if isinstance(action, UpiCollectAction):
            return {"type": "upi_collect", "vpa": action.vpa, "expires_at": expires}
        return {
            "type": "redirect",
            "action_type": action.action_type,
            "url": action.url,
            "expires_at": expires,
        }
    if isinstance(result, Pending) and result.instructions is not None:
        i = result.instructions
        return {
            "type": "bank_transfer",
            "account_number": i.account_number,
            "ifsc": i.ifsc,
            "beneficiary_name": i.beneficiary_name,
            "amount_minor": i.amount_minor,
            "currency": i.currency,
            "modes": list(i.modes),
            "expires_at": None if i.expires_at is None else i.expires_at.isoformat(),
        }
    return None


def _authorized(state: PaymentState, result: Approved) -> list[Command]:
    commands: list[Command] = [Authorize()]
    if result.captured:  # the processor took the money: the book must say so too
        commands.append(
            Capture(capture_id_for(state.payment_id), state.amount_minor, state.currency)
        )
    return commands


def commands_for(  # noqa: PLR0911 (one return per case of the table)
    state: PaymentState, result: StatusResult | None, now: datetime
) -> list[Command]:
    """What a processor's latest answer about a waiting payment changes, as lifecycle commands
    to apply in order (empty: nothing to change yet).

    ``created``: the answer decides it as a new payment would be.  ``requires_action``: approved
    completes the action and authorizes; declined/failed end it; still waiting past our
    deadline expires it (the processor expires its own action by then too).  No answer, pending
    or unknown never changes a payment: it could still be charged.
    """
    if result is None or isinstance(result, NotFound | Pending | ProcessorError):
        return []
    match state.status:
        case Status.CREATED | Status.PROCESSING:
            if isinstance(result, Approved):
                return _authorized(state, result)
            if isinstance(result, RequiresAction):
                return [
                    RequireAction(
                        action_id_for(result.provider, result.provider_ref),
                        result.action.action_type,
                        _action_deadline(result.expires_at, now),
                    )
                ]
        case Status.REQUIRES_ACTION:
            assert state.pending_action_id is not None
            if isinstance(result, Approved):
                return [CompleteAction(state.pending_action_id), *_authorized(state, result)]
            if isinstance(result, RequiresAction):
                expired = state.action_expires_at is not None and now >= state.action_expires_at
                return [Expire()] if expired else []
        case _:
            return []
    if isinstance(result, Declined):
        return [Decline(result.code)]
    if isinstance(result, Failed):
        return [Fail(_reason(f"{result.provider}: {result.reason}"))]
    return []


# --- the authorizer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorAuthorizerConfig:
    charge_concurrency_max: int = CHARGE_CONCURRENCY_DEFAULT
    enquiry_delay_s: float = ENQUIRY_DELAY_S_DEFAULT
    return_url: str = RETURN_URL_DEFAULT


class ConnectorAuthorizer:
    """:class:`streams.payments.Authorizer` through the processors (module docstring)."""

    def __init__(
        self,
        connectors: Mapping[ProviderName, Connector],
        pool: PoolFactory,
        config: ConnectorAuthorizerConfig | None = None,
    ) -> None:
        self.config = config or ConnectorAuthorizerConfig()
        if self.config.charge_concurrency_max < 1:
            raise ValueError("charge_concurrency_max must be at least 1")
        self._connectors = dict(connectors)
        self._pool = pool
        self._router: Router | None = None

    @property
    def connectors(self) -> Mapping[ProviderName, Connector]:
        """The connectors by provider (the operation sender sends through the same ones)."""
        return self._connectors

    async def router(self) -> Router:
        if self._router is None:
            attempts = PgAttemptLog(await self._pool())
            self._router = Router(
                self._connectors, attempts, enquiry_delay_s=self.config.enquiry_delay_s
            )
        return self._router

    async def verdicts(self, requests: Sequence[PaymentRequested]) -> Mapping[str, Outcome]:
        """Each non-wallet payment's verdict.  Database errors propagate (the caller retries
        the whole call: every charge already sent is then found again by enquiry, not resent)."""
        out: dict[str, Outcome] = {}
        to_charge: list[PaymentRequested] = []
        seen: set[str] = set()
        for request in requests:
            if request.payment_id in seen:
                continue  # a duplicate in the batch: one charge per payment, ever
            seen.add(request.payment_id)
            if request.method.type == "wallet" or risk_of(request) == "block":
                continue  # the rules decide; the ledger moves wallet money; blocked: no charge
            limit = method_limit_decline(request)
            if limit is not None:
                out[request.payment_id] = limit
            else:
                to_charge.append(as_charged(request))
        if not to_charge:
            return out
        await register_requests(await self._pool(), to_charge)
        router = await self.router()
        gate = asyncio.Semaphore(self.config.charge_concurrency_max)

        async def one(request: PaymentRequested) -> None:
            async with gate:
                out[request.payment_id] = await self._charge(router, request)

        await asyncio.gather(*(one(r) for r in to_charge))
        return out

    async def _charge(self, router: Router, request: PaymentRequested) -> Outcome:
        try:
            charge = ChargeRequest.from_requested(request, return_url=self.config.return_url)
            routed = await router.charge(charge)
        except (ValueError, KeyError) as exc:
            # The request cannot be expressed to any processor (a currency a provider cannot
            # take, a card token the vault does not know): final, nothing was charged.
            log.warning("%s cannot be charged: %s", request.payment_id, exc)
            return Fail(_reason(f"not chargeable: {exc}"))
        if isinstance(routed.result, ProcessorError):
            # Recorded created; the poller settles it once the processor answers.
            log.warning("%s undecided: %s", request.payment_id, routed.result)
        action = customer_action_of(routed.result)
        if action is not None:
            await record_customer_action(await self._pool(), request.payment_id, action)
        return verdict_for(request, routed.result)

    async def settle(
        self, request: PaymentRequested, state: PaymentState, now: datetime
    ) -> list[Command]:
        """The poller's step for one waiting payment: charge a ``created`` one (resuming at
        the provider that may hold it), ask about one waiting for the customer."""
        router = await self.router()
        result: StatusResult | None
        if state.status is Status.CREATED:
            charge = ChargeRequest.from_requested(request, return_url=self.config.return_url)
            routed = await router.charge(charge)
            if isinstance(routed.result, Unroutable):
                return [Fail(_reason(f"no processor serves {request.method.type}"))]
            result = routed.result
        else:
            result = await router.status(request.payment_id)
        return commands_for(state, result, now)

    async def status_of(self, payment_id: str) -> StatusResult | None:
        """What the processor that may hold ``payment_id`` says of it now (``None``: none
        was asked to charge it)."""
        return await (await self.router()).status(payment_id)

    async def aclose(self) -> None:
        for connector in self._connectors.values():
            await connector.aclose()
