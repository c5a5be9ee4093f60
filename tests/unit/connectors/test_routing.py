"""Routing decisions with scripted connectors: which provider is asked, when failover is safe,
and what the attempt log remembers.  No network."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from models.methods import BankTransferMethod, CardMethod, NetbankingMethod, UpiMethod
from streams.connectors.base import (
    Approved,
    ChargeRequest,
    ChargeResult,
    Declined,
    Failed,
    NotFound,
    OperationResult,
    PaymentRef,
    Pending,
    ProcessorError,
    ProviderName,
    RedirectAction,
    Refused,
    RequiresAction,
    StatusResult,
    UpiCollectAction,
    action_id_for,
    lifecycle_decision,
)
from streams.connectors.breaker import BreakerConfig, CircuitBreaker
from streams.connectors.routing import (
    ROUTES,
    InMemoryAttemptLog,
    Routed,
    Router,
    Unroutable,
    route_for,
)
from streams.lifecycle import Authorize, Decline, Fail, RequireAction

PAYMENT_ID = "pay_" + "a" * 26
CARD = CardMethod(token="tok_card_1", bin="411111", last4="1111")


class ScriptedConnector:
    """A connector that answers from scripts and records what it was asked."""

    def __init__(
        self,
        name: ProviderName,
        charges: Sequence[ChargeResult] = (),
        statuses: Sequence[StatusResult] = (),
    ) -> None:
        self.name: ProviderName = name
        self.breaker = CircuitBreaker(name, BreakerConfig(failures_consecutive_max=1))
        self._charges = list(charges)
        self._statuses = list(statuses)
        self.charged: list[str] = []
        self.enquired: list[str] = []

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        self.charged.append(request.payment_id)
        return self._charges.pop(0)

    async def status(self, payment_id: str) -> StatusResult:
        self.enquired.append(payment_id)
        return self._statuses.pop(0)

    async def capture(
        self, ref: PaymentRef, amount_minor: int, capture_id: str, *, final: bool = True
    ) -> OperationResult:
        return Refused(self.name, "unused", "")

    async def refund(self, ref: PaymentRef, amount_minor: int, refund_id: str) -> OperationResult:
        return Refused(self.name, "unused", "")

    async def void(self, ref: PaymentRef) -> OperationResult:
        return Refused(self.name, "unused", "")

    async def aclose(self) -> None:
        return None


def approved(provider: ProviderName) -> Approved:
    return Approved(provider, f"{provider}_1", 10_000, "INR", captured=True)


def not_sent(provider: ProviderName) -> ProcessorError:
    return ProcessorError(provider, "connect_failed", "refused", True, False)


def maybe_sent(provider: ProviderName) -> ProcessorError:
    return ProcessorError(provider, "timeout", "no answer", True, True)


def request(method: object = CARD, currency: str = "INR") -> ChargeRequest:
    return ChargeRequest(PAYMENT_ID, "m_1", 10_000, currency, method)  # type: ignore[arg-type]


def route(
    primary: ScriptedConnector, secondary: ScriptedConnector, log: InMemoryAttemptLog | None = None
) -> tuple[Routed, InMemoryAttemptLog]:
    log = log or InMemoryAttemptLog()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    router = Router({"razorpay": primary, "payu": secondary}, log, enquiry_delay_s=0.5, sleep=sleep)
    routed = asyncio.run(router.charge(request()))
    # An enquiry after an ambiguous failure waits first; nothing else sleeps.
    assert sleeps == [0.5] * sum(1 for s in routed.steps if s.event == "maybe_sent")
    return routed, log


# --- the routing table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "currency", "expected"),
    [
        ("card", "INR", ("razorpay", "payu")),
        ("upi", "INR", ("razorpay", "payu")),
        ("netbanking", "INR", ("razorpay", "payu")),
        ("card", "USD", ("stripe",)),
        ("card", "JPY", ("stripe",)),
        ("neft", "INR", ("bank_transfer",)),
        ("rtgs", "INR", ("bank_transfer",)),
        ("imps", "INR", ("bank_transfer",)),
        ("upi", "USD", ()),
        ("neft", "EUR", ()),
        ("wallet", "INR", ()),
    ],
)
def test_route_table(method: str, currency: str, expected: tuple[str, ...]) -> None:
    assert route_for(method, currency) == expected  # type: ignore[arg-type]


def test_every_route_names_known_connectors() -> None:
    known = {"razorpay", "payu", "stripe", "bank_transfer"}
    assert all(set(providers) <= known and providers for providers in ROUTES.values())


def test_a_method_without_a_route_is_unroutable() -> None:
    router = Router({}, InMemoryAttemptLog())
    routed = asyncio.run(router.charge(request(UpiMethod(vpa="ab@okhdfc"), "USD")))
    assert routed.result == Unroutable("upi", "USD")
    assert routed.provider is None


def test_methods_reach_their_connectors() -> None:
    for method, currency, provider in [
        (NetbankingMethod(bank_code="HDFC"), "INR", "razorpay"),
        (CARD, "EUR", "stripe"),
        (
            BankTransferMethod(type="rtgs", ifsc="HDFC0001234", account_last4="1234"),
            "INR",
            "bank_transfer",
        ),
    ]:
        connector = ScriptedConnector(provider, [approved(provider)])  # type: ignore[arg-type]
        router = Router({provider: connector}, InMemoryAttemptLog())  # type: ignore[dict-item]
        routed = asyncio.run(router.charge(request(method, currency)))
        assert routed.provider == provider and connector.charged == [PAYMENT_ID]


# --- rules ----------------------------------------------------------------------------------


def test_the_primary_answers() -> None:
    primary, secondary = (
        ScriptedConnector("razorpay", [approved("razorpay")]),
        ScriptedConnector("payu"),
    )
    routed, log = route(primary, secondary)
    assert routed.result == approved("razorpay") and routed.provider == "razorpay"
    assert secondary.charged == [] and not routed.failed_over
    assert log.holders == {PAYMENT_ID: "razorpay"}


def test_a_decline_is_final() -> None:
    decline = Declined("razorpay", "insufficient_funds", "insufficient_funds", "no money")
    primary, secondary = ScriptedConnector("razorpay", [decline]), ScriptedConnector("payu")
    routed, _ = route(primary, secondary)
    assert routed.result == decline and secondary.charged == []


def test_an_open_breaker_is_skipped_without_sending() -> None:
    primary = ScriptedConnector("razorpay")
    primary.breaker.acquire().failure()  # threshold 1: now open
    secondary = ScriptedConnector("payu", [approved("payu")])
    routed, log = route(primary, secondary)
    assert primary.charged == [] and primary.enquired == []
    assert routed.provider == "payu" and log.holders == {PAYMENT_ID: "payu"}
    assert [s.event for s in routed.steps] == ["skipped_breaker_open", "sent", "answered"]


def test_not_sent_fails_over_at_once_and_clears_the_primary() -> None:
    primary = ScriptedConnector("razorpay", [not_sent("razorpay")])
    secondary = ScriptedConnector("payu", [approved("payu")])
    routed, log = route(primary, secondary)
    assert routed.provider == "payu" and routed.failed_over
    assert primary.enquired == []  # nothing could have been charged: no need to ask
    assert log.holders == {PAYMENT_ID: "payu"}


def test_maybe_sent_enquires_and_fails_over_only_on_not_found() -> None:
    primary = ScriptedConnector(
        "razorpay", [maybe_sent("razorpay")], [NotFound("razorpay", PAYMENT_ID)]
    )
    secondary = ScriptedConnector("payu", [approved("payu")])
    routed, log = route(primary, secondary)
    assert primary.enquired == [PAYMENT_ID]
    assert routed.provider == "payu" and log.holders == {PAYMENT_ID: "payu"}


def test_maybe_sent_adopts_what_the_primary_did() -> None:
    primary = ScriptedConnector("razorpay", [maybe_sent("razorpay")], [approved("razorpay")])
    secondary = ScriptedConnector("payu")
    routed, log = route(primary, secondary)
    assert routed.result == approved("razorpay") and secondary.charged == []
    assert log.holders == {PAYMENT_ID: "razorpay"}


def test_an_unanswered_enquiry_stops_routing_with_an_unknown_outcome() -> None:
    primary = ScriptedConnector("razorpay", [maybe_sent("razorpay")], [not_sent("razorpay")])
    secondary = ScriptedConnector("payu")
    routed, log = route(primary, secondary)
    assert isinstance(routed.result, ProcessorError)
    assert routed.result.code == "outcome_unknown" and routed.result.charge_possible
    assert secondary.charged == []  # never charge elsewhere while the primary may have it
    assert log.holders == {PAYMENT_ID: "razorpay"}


def test_a_redelivery_asks_the_provider_that_may_have_it_first() -> None:
    log = InMemoryAttemptLog({PAYMENT_ID: "payu"})
    primary = ScriptedConnector("razorpay")
    secondary = ScriptedConnector("payu", statuses=[approved("payu")])
    routed, _ = route(primary, secondary, log)
    assert routed.result == approved("payu") and routed.provider == "payu"
    assert primary.charged == [] and secondary.charged == []


def test_a_redelivery_with_an_unreachable_holder_stays_unknown() -> None:
    log = InMemoryAttemptLog({PAYMENT_ID: "razorpay"})
    primary = ScriptedConnector("razorpay", statuses=[not_sent("razorpay")])
    secondary = ScriptedConnector("payu")
    routed, _ = route(primary, secondary, log)
    assert isinstance(routed.result, ProcessorError) and routed.result.code == "outcome_unknown"
    assert secondary.charged == []


def test_a_redelivery_the_holder_never_saw_routes_afresh() -> None:
    log = InMemoryAttemptLog({PAYMENT_ID: "razorpay"})
    primary = ScriptedConnector(
        "razorpay", [approved("razorpay")], [NotFound("razorpay", PAYMENT_ID)]
    )
    secondary = ScriptedConnector("payu")
    routed, _ = route(primary, secondary, log)
    assert routed.provider == "razorpay" and primary.charged == [PAYMENT_ID]


def test_non_retryable_errors_do_not_fail_over() -> None:
    invalid = ProcessorError("razorpay", "unexpected_400", "bad request", False, False)
    primary, secondary = ScriptedConnector("razorpay", [invalid]), ScriptedConnector("payu")
    routed, log = route(primary, secondary)
    assert routed.result == invalid and secondary.charged == [] and log.holders == {}


def test_when_every_connector_is_down_nothing_is_held() -> None:
    primary = ScriptedConnector("razorpay", [not_sent("razorpay")])
    secondary = ScriptedConnector("payu", [not_sent("payu")])
    routed, log = route(primary, secondary)
    assert isinstance(routed.result, ProcessorError)
    assert routed.result.code == "no_connector_available" and not routed.result.charge_possible
    assert log.holders == {}


# --- results as lifecycle commands ------------------------------------------------------------


def test_results_map_to_lifecycle_commands() -> None:
    assert lifecycle_decision(approved("payu")) == Authorize()
    assert lifecycle_decision(Declined("payu", "bank_rejected", "E503", "rejected")) == Decline(
        decline_code="bank_rejected"
    )
    fail = lifecycle_decision(Failed("stripe", "3DS failed", "auth"))
    assert isinstance(fail, Fail) and fail.reason.startswith("stripe:")
    action = lifecycle_decision(
        RequiresAction("razorpay", "pay_X", RedirectAction("three_d_secure", "https://acs"))
    )
    assert action == RequireAction(
        action_id=action_id_for("razorpay", "pay_X"), action_type="three_d_secure"
    )
    upi = lifecycle_decision(RequiresAction("payu", "4001", UpiCollectAction("a@ybl")))
    assert isinstance(upi, RequireAction) and upi.action_type == "upi_collect"
    assert lifecycle_decision(Pending("bank_transfer", "RIZZ1", "waiting")) is None
    assert lifecycle_decision(maybe_sent("razorpay")) is None


def test_action_ids_are_stable_and_valid() -> None:
    first = action_id_for("razorpay", "pay_X")
    assert first == action_id_for("razorpay", "pay_X") != action_id_for("payu", "pay_X")
    assert first.startswith("act_") and len(first) == 30 and first[4:].isalnum()
