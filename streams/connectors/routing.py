"""Routing: which connector charges a payment, and when it is safe to fail over to another.

Routes (method, currency → connectors, primary first):

=================================== ===========================
method, currency                    connectors
=================================== ===========================
card, UPI, netbanking in INR        razorpay, then payu
card in any other currency          stripe
NEFT, RTGS, IMPS (INR)              bank_transfer
wallet; UPI/netbanking/transfers    none (:class:`Unroutable`): the wallet is RizzPay's own
in another currency                 ledger, the others are INR-only rails
=================================== ===========================

Rules (the router never charges a payment at a second provider unless the first one is proven
not to have it):

1. **Write-ahead.**  Before a charge request is sent, the provider is recorded in the
   :class:`AttemptLog` for the payment.  It is cleared only when the provider provably did not
   receive it (the connection was refused, the breaker refused) or said ``NotFound``.
2. **Resume where it may be.**  If the log names a provider (a redelivered payment, a retry
   after an unknown outcome), the router asks that provider first (status enquiry by our
   reference): if it has the payment, that is the result; if it says ``NotFound`` the log is
   cleared and routing starts afresh; if it cannot answer, the outcome stays unknown
   (``ProcessorError`` ``outcome_unknown``) and nothing is sent anywhere.
3. **Skip open breakers.**  A provider whose breaker is open is skipped (nothing is sent).
4. **Answers are final.**  Approved, declined, failed, requires-action and pending answers end
   routing: a declined card is never retried elsewhere.  Non-retryable errors (a request the
   provider refuses as invalid) end it too.
5. **Not sent: fail over.**  A retryable error whose request never reached the provider (connect
   refused, breaker open, rate limited) moves on to the next provider at once.
6. **Maybe sent: enquire, then fail over.**  A retryable error after which the provider may have
   acted (timeout, dropped connection, 5xx, after the connector's own idempotent retries) waits
   ``enquiry_delay_s`` (so a request still in flight at the provider finishes first), then asks
   the provider by our reference.  ``NotFound``: clear and fail over.  Found: adopt it.  No
   answer: stop with ``outcome_unknown``; the caller retries later and rule 2 applies.

Every charge carries our ``payment_id`` as the merchant reference, so rule 2's enquiry and each
connector's own deduplication name the same payment.  The remaining risk is a request that is
still being processed at the provider after ``enquiry_delay_s`` *and* the enquiry answered
``NotFound``: set ``enquiry_delay_s`` to at least the provider's own processing timeout;
reconciliation (later work) refunds a late duplicate if one ever appears.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from models.methods import MethodType
from streams.connectors.base import (
    ChargeRequest,
    ChargeResult,
    Connector,
    NotFound,
    ProcessorError,
    ProviderName,
    StatusResult,
)

CurrencyClass = Literal["INR", "other"]

ROUTES: Mapping[tuple[MethodType, CurrencyClass], tuple[ProviderName, ...]] = {
    ("card", "INR"): ("razorpay", "payu"),
    ("upi", "INR"): ("razorpay", "payu"),
    ("netbanking", "INR"): ("razorpay", "payu"),
    ("card", "other"): ("stripe",),
    ("neft", "INR"): ("bank_transfer",),
    ("rtgs", "INR"): ("bank_transfer",),
    ("imps", "INR"): ("bank_transfer",),
}

# By default wait this long after an ambiguous failure before the enquiry that decides a
# failover: longer than a provider takes to finish a request it already received.
ENQUIRY_DELAY_S_DEFAULT = 1.0


def route_for(
    method_type: MethodType,
    currency: str,
    routes: Mapping[tuple[MethodType, CurrencyClass], tuple[ProviderName, ...]] = ROUTES,
) -> tuple[ProviderName, ...]:
    """The connectors for ``method_type`` in ``currency``, primary first; empty if none."""
    return routes.get((method_type, "INR" if currency == "INR" else "other"), ())


@dataclass(frozen=True, slots=True)
class Unroutable:
    """No connector serves this method in this currency."""

    method_type: str
    currency: str


StepEvent = Literal[
    "resume",  # the log says this provider may have the payment
    "skipped_breaker_open",
    "sent",
    "answered",
    "not_sent",
    "refused",  # a non-retryable error: routing ends
    "maybe_sent",
    "enquiry_found",
    "enquiry_not_found",
    "enquiry_failed",
]


@dataclass(frozen=True, slots=True)
class Step:
    provider: ProviderName
    event: StepEvent
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Routed:
    """The result of routing one charge, the provider that holds it (``None`` when none does),
    and the steps taken, for logs and tests."""

    result: ChargeResult | Unroutable
    provider: ProviderName | None
    steps: tuple[Step, ...] = ()

    @property
    def failed_over(self) -> bool:
        sent = [s.provider for s in self.steps if s.event == "sent"]
        return len(set(sent)) > 1


class AttemptLog(Protocol):
    """Which provider may have received a charge for a payment.  Must be durable before a
    charge is sent (the payments agent will keep it in its table, keyed by payment id)."""

    async def holder(self, payment_id: str) -> ProviderName | None:
        """The provider that may have the payment, if any."""
        ...

    async def record(self, payment_id: str, provider: ProviderName) -> None:
        """``provider`` is about to receive a charge for ``payment_id``."""
        ...

    async def clear(self, payment_id: str, provider: ProviderName) -> None:
        """``provider`` provably does not have ``payment_id``."""
        ...


@dataclass
class InMemoryAttemptLog:
    """An :class:`AttemptLog` in a dict: for tests and single-process tools only (it forgets on
    restart, which breaks rule 2 across crashes)."""

    holders: dict[str, ProviderName] = field(default_factory=dict)

    async def holder(self, payment_id: str) -> ProviderName | None:
        return self.holders.get(payment_id)

    async def record(self, payment_id: str, provider: ProviderName) -> None:
        self.holders[payment_id] = provider

    async def clear(self, payment_id: str, provider: ProviderName) -> None:
        if self.holders.get(payment_id) == provider:
            del self.holders[payment_id]


class Router:
    """Charges a payment through its route's connectors following the module's rules."""

    def __init__(
        self,
        connectors: Mapping[ProviderName, Connector],
        attempts: AttemptLog,
        *,
        routes: Mapping[tuple[MethodType, CurrencyClass], tuple[ProviderName, ...]] = ROUTES,
        enquiry_delay_s: float = ENQUIRY_DELAY_S_DEFAULT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._connectors = dict(connectors)
        self._attempts = attempts
        self._routes = routes
        self._enquiry_delay_s = enquiry_delay_s
        self._sleep = sleep

    def connector(self, provider: ProviderName) -> Connector:
        """The connector for capture, refund and void of a payment ``provider`` holds."""
        return self._connectors[provider]

    async def charge(self, request: ChargeRequest) -> Routed:  # noqa: PLR0911 (one per rule)
        route = tuple(
            p
            for p in route_for(request.method.type, request.currency, self._routes)
            if p in self._connectors
        )
        if not route:
            return Routed(Unroutable(request.method.type, request.currency), None)
        steps: list[Step] = []
        holder = await self._attempts.holder(request.payment_id)
        if holder is not None:
            steps.append(Step(holder, "resume"))
            found = await self._enquire(request.payment_id, holder, steps)
            if found is not None:
                return Routed(found, holder, tuple(steps))
        last_error: ProcessorError | None = None
        for provider in route:
            connector = self._connectors[provider]
            if not connector.breaker.allows():
                steps.append(Step(provider, "skipped_breaker_open"))
                continue
            await self._attempts.record(request.payment_id, provider)
            steps.append(Step(provider, "sent"))
            result = await connector.charge(request)
            if not isinstance(result, ProcessorError):
                steps.append(Step(provider, "answered", type(result).__name__))
                return Routed(result, provider, tuple(steps))
            last_error = result
            if not result.retryable:
                steps.append(Step(provider, "refused", result.code))
                if not result.charge_possible:
                    await self._attempts.clear(request.payment_id, provider)
                    return Routed(result, None, tuple(steps))
                return Routed(result, provider, tuple(steps))
            if not result.charge_possible:
                steps.append(Step(provider, "not_sent", result.code))
                await self._attempts.clear(request.payment_id, provider)
                continue
            steps.append(Step(provider, "maybe_sent", result.code))
            await self._sleep(self._enquiry_delay_s)
            found = await self._enquire(request.payment_id, provider, steps)
            if found is not None:
                return Routed(found, provider, tuple(steps))
        if last_error is None:
            last_error = ProcessorError(
                route[0], "all_breakers_open", "every connector of the route is open", True, False
            )
        return Routed(
            ProcessorError(
                last_error.provider,
                "no_connector_available",
                f"no connector of {route} could take the payment: {last_error.code}",
                retryable=True,
                charge_possible=False,
            ),
            None,
            tuple(steps),
        )

    async def _enquire(
        self, payment_id: str, provider: ProviderName, steps: list[Step]
    ) -> ChargeResult | None:
        """Ask ``provider`` for ``payment_id``.  ``None`` (after clearing the log) when it does
        not have it; its state when it does; ``outcome_unknown`` when it cannot answer."""
        status = await self._connectors[provider].status(payment_id)
        if isinstance(status, NotFound):
            steps.append(Step(provider, "enquiry_not_found"))
            await self._attempts.clear(payment_id, provider)
            return None
        if isinstance(status, ProcessorError):
            steps.append(Step(provider, "enquiry_failed", status.code))
            return ProcessorError(
                provider,
                "outcome_unknown",
                f"{provider} may have the payment and cannot say ({status.code}); retry later",
                retryable=True,
                charge_possible=True,
            )
        steps.append(Step(provider, "enquiry_found", type(status).__name__))
        return status

    async def status(self, payment_id: str) -> StatusResult | None:
        """The state of ``payment_id`` at the provider that may have it (``None`` if none)."""
        holder = await self._attempts.holder(payment_id)
        if holder is None:
            return None
        return await self._connectors[holder].status(payment_id)

    async def aclose(self) -> None:
        for connector in self._connectors.values():
            await connector.aclose()
