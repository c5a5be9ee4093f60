"""Connectors end to end against the real sandboxes, over real HTTP on 127.0.0.1.

The sandboxes run as ``rizzpay sandbox serve --port 0`` in a subprocess started by this module
(no other service is needed); every test uses fresh payment ids, so tests share the sandboxes
without seeing each other's payments.  What is checked is what a merchant cares about: the
outcome of each test instrument, the customer steps (3-D Secure, UPI collect, netbanking,
bank transfers), and, from the sandboxes' own ledgers, that no payment is ever charged twice,
even when answers are lost or the primary processor dies mid-burst.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import sandbox
from models.events import DeclineCode
from models.ids import payment_id_for
from models.methods import BankTransferMethod, CardMethod, NetbankingMethod, UpiMethod
from streams.connectors.amounts import to_bank_amount
from streams.connectors.base import (
    Approved,
    ChargeRequest,
    ChargeResult,
    Connector,
    Declined,
    Done,
    Failed,
    NotFound,
    PaymentRef,
    Pending,
    ProcessorError,
    ProviderName,
    RedirectAction,
    Refused,
    RequiresAction,
    StatusResult,
    UpiCollectAction,
)
from streams.connectors.breaker import BreakerConfig
from streams.connectors.cards import SandboxCardVault
from streams.connectors.http import HttpSettings
from streams.connectors.razorpay import RazorpayConnector
from streams.connectors.routing import InMemoryAttemptLog, Routed, Router
from streams.connectors.settings import ConnectorSettings, build_connectors
from tests.sandboxes import running_sandboxes

pytestmark = pytest.mark.integration

MERCHANT = "m_connectors"
RETURN_URL = "https://merchant.example/return"
# The customer's side, compressed: a UPI collect is approved after 200 ms or expires at 600 ms.
SANDBOX_ARGS = [
    "--latency-ms-min", "1",
    "--latency-ms-max", "4",
    "--seed", "7",
    "--upi-approve-ms", "200",
    "--upi-expiry-ms", "600",
    "--neft-settle-ms", "200",
]  # fmt: skip
HTTP = HttpSettings(
    connect_timeout_s=0.5,
    read_timeout_s=1.0,
    write_timeout_s=0.5,
    attempts_max=3,
    backoff_s_initial=0.02,
    backoff_s_max=0.1,
    call_deadline_s=5.0,
)
BREAKER = BreakerConfig(
    failures_consecutive_max=3, window_calls=20, window_calls_min=10, open_s=0.3
)
HOLD_S = 3.0  # a held ("timeout") answer outlasts HTTP.read_timeout_s

CARD_PROVIDERS: tuple[ProviderName, ...] = ("razorpay", "payu", "stripe")
INDIAN_PROVIDERS: tuple[ProviderName, ...] = ("razorpay", "payu")
CARD_INSTRUMENTS: list[tuple[str, DeclineCode | None]] = [
    ("1111", None),
    ("0002", "do_not_honor"),
    ("9995", "insufficient_funds"),
    ("0069", "expired_card"),
]
SANDBOX_NAMES: dict[ProviderName, str] = {
    "razorpay": "razorpay",
    "payu": "payu",
    "stripe": "stripe",
    "bank_transfer": "bank",
}


# --- the sandboxes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """``rizzpay sandbox serve`` on free loopback ports; its first stdout line says where."""
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with running_sandboxes(log, SANDBOX_ARGS) as listing:
        yield listing


@pytest.fixture
async def admin(sandboxes: dict[str, dict[str, str]]) -> AsyncIterator[Admin]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        helper = Admin(client, sandboxes)
        yield helper
        for name in sandboxes:  # leave every sandbox healthy for the next test
            await helper.fault(name, mode="none")


class Admin:
    """The sandboxes' admin API: faults and ledgers."""

    def __init__(self, client: httpx.AsyncClient, sandboxes: dict[str, dict[str, str]]) -> None:
        self.client = client
        self.sandboxes = sandboxes

    async def fault(self, name: str, **body: Any) -> None:
        response = await self.client.post(
            f"{self.sandboxes[name]['admin_url']}/__sandbox/faults", json=body
        )
        assert response.status_code == 200, response.text

    async def ledger(self, name: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"{self.sandboxes[name]['admin_url']}/__sandbox/ledger")
        entries: list[dict[str, Any]] = response.json()["entries"]
        return entries

    async def entries_for(self, payment_ids: set[str]) -> list[dict[str, Any]]:
        entries = []
        for name in self.sandboxes:
            entries += [
                e for e in await self.ledger(name) if e["merchant_reference"] in payment_ids
            ]
        return entries


@pytest.fixture
async def connectors(
    sandboxes: dict[str, dict[str, str]],
) -> AsyncIterator[dict[ProviderName, Connector]]:
    settings = ConnectorSettings(
        razorpay_url=sandboxes["razorpay"]["url"],
        payu_url=sandboxes["payu"]["url"],
        stripe_url=sandboxes["stripe"]["url"],
        bank_url=sandboxes["bank"]["url"],
    )
    built = build_connectors(
        settings, SandboxCardVault(), http_settings=HTTP, breaker_config=BREAKER
    )
    yield built
    for connector in built.values():
        await connector.aclose()


@pytest.fixture
async def customer() -> AsyncIterator[httpx.AsyncClient]:
    """The customer's browser (never follows redirects, so tests see where it would go)."""
    async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as client:
        yield client


# --- helpers ----------------------------------------------------------------------------------


def new_payment_id() -> str:
    return payment_id_for(MERCHANT, uuid.uuid4().hex)


def card(last4: str, bin_digits: str = "411111") -> CardMethod:
    return CardMethod(token=f"tok_{uuid.uuid4().hex[:12]}", bin=bin_digits, last4=last4)


def charge_request(
    method: Any,
    *,
    amount_minor: int = 49_900,
    currency: str = "INR",
    capture: str = "automatic",
    payment_id: str | None = None,
) -> ChargeRequest:
    return ChargeRequest(
        payment_id=payment_id or new_payment_id(),
        merchant_id=MERCHANT,
        amount_minor=amount_minor,
        currency=currency,
        method=method,
        capture=capture,  # type: ignore[arg-type]
        return_url=RETURN_URL,
    )


def currency_for(provider: ProviderName) -> str:
    return "USD" if provider == "stripe" else "INR"


async def settle(connector: Connector, payment_id: str, *, timeout_s: float = 5.0) -> StatusResult:
    """Poll the status enquiry until the payment leaves Pending/RequiresAction."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = await connector.status(payment_id)
        if not isinstance(status, Pending | RequiresAction):
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"{payment_id} still {status!r} after {timeout_s}s")
        await asyncio.sleep(0.05)


async def act(client: httpx.AsyncClient, url: str, outcome: str) -> httpx.Response:
    """The customer on the issuer's or bank's page: it shows a form; they submit ``outcome``."""
    page = await client.get(url)
    assert page.status_code == 200 and "<form" in page.text
    return await client.post(url, data={"outcome": outcome})


def assert_outcome(result: object, expected: DeclineCode | None, amount_minor: int) -> None:
    if expected is None:
        assert isinstance(result, Approved), result
        assert result.amount_minor == amount_minor and result.captured
    else:
        assert isinstance(result, Declined), result
        assert result.code == expected


def charged(entries: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["merchant_reference"] for e in entries if e["charged"])


# --- cards ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("last4", "expected"), CARD_INSTRUMENTS)
@pytest.mark.parametrize("provider", CARD_PROVIDERS)
async def test_card_instruments(
    connectors: dict[ProviderName, Connector],
    admin: Admin,
    provider: ProviderName,
    last4: str,
    expected: DeclineCode | None,
) -> None:
    connector = connectors[provider]
    request = charge_request(card(last4), currency=currency_for(provider))
    result = await connector.charge(request)
    assert_outcome(result, expected, request.amount_minor)
    # The enquiry by our reference tells the same story.
    assert_outcome(await connector.status(request.payment_id), expected, request.amount_minor)
    entries = await admin.entries_for({request.payment_id})
    assert len(entries) == 1 and entries[0]["provider"] == SANDBOX_NAMES[provider]
    assert charged(entries)[request.payment_id] == (1 if expected is None else 0)


@pytest.mark.parametrize("bin_digits", ["652111", "555555", "378282", "361111", "222300"])
async def test_every_network_is_accepted(
    connectors: dict[ProviderName, Connector], bin_digits: str
) -> None:
    for provider in INDIAN_PROVIDERS:
        result = await connectors[provider].charge(charge_request(card("4444", bin_digits)))
        assert isinstance(result, Approved), (provider, result)


async def test_an_unknown_payment_is_not_found(connectors: dict[ProviderName, Connector]) -> None:
    for provider, connector in connectors.items():
        assert isinstance(await connector.status(new_payment_id()), NotFound), provider


@pytest.mark.parametrize("provider", CARD_PROVIDERS)
async def test_manual_capture_and_refunds_are_idempotent(
    connectors: dict[ProviderName, Connector], admin: Admin, provider: ProviderName
) -> None:
    connector = connectors[provider]
    request = charge_request(card("1111"), currency=currency_for(provider), capture="manual")
    held = await connector.charge(request)
    assert isinstance(held, Approved) and not held.captured
    ref = PaymentRef(request.payment_id, held.provider_ref, request.currency)
    for _ in range(2):  # a repeated capture is the same capture
        assert isinstance(await connector.capture(ref, request.amount_minor, "cap_1"), Done)
    first = await connector.refund(ref, 10_000, "rfd_a")
    again = await connector.refund(ref, 10_000, "rfd_a")
    assert isinstance(first, Done) and isinstance(again, Done)
    assert first.provider_ref == again.provider_ref
    assert isinstance(await connector.refund(ref, request.amount_minor, "rfd_b"), Refused)
    [entry] = await admin.entries_for({request.payment_id})
    assert entry["captured_minor"] == request.amount_minor
    assert entry["refunded_minor"] == 10_000  # refunded once, not twice


@pytest.mark.parametrize("provider", ["payu", "stripe"])
async def test_void_releases_an_authorization(
    connectors: dict[ProviderName, Connector], admin: Admin, provider: ProviderName
) -> None:
    connector = connectors[provider]
    request = charge_request(card("1111"), currency=currency_for(provider), capture="manual")
    held = await connector.charge(request)
    assert isinstance(held, Approved)
    ref = PaymentRef(request.payment_id, held.provider_ref, request.currency)
    assert isinstance(await connector.void(ref), Done)
    assert isinstance(await connector.capture(ref, request.amount_minor, "cap_1"), Refused)
    [entry] = await admin.entries_for({request.payment_id})
    assert entry["captured_minor"] == 0


async def test_razorpay_has_no_void(connectors: dict[ProviderName, Connector]) -> None:
    ref = PaymentRef(new_payment_id(), "pay_X", "INR")
    result = await connectors["razorpay"].void(ref)
    assert isinstance(result, Refused) and result.provider_code == "void_not_supported"


@pytest.mark.parametrize("outcome", ["success", "failure"])
@pytest.mark.parametrize("provider", CARD_PROVIDERS)
async def test_3d_secure(
    connectors: dict[ProviderName, Connector],
    customer: httpx.AsyncClient,
    provider: ProviderName,
    outcome: str,
) -> None:
    connector = connectors[provider]
    request = charge_request(card("3184"), currency=currency_for(provider))
    result = await connector.charge(request)
    assert isinstance(result, RequiresAction), result
    assert isinstance(result.action, RedirectAction)
    assert result.action.action_type == "three_d_secure"
    pending = await connector.status(request.payment_id)
    assert isinstance(pending, Pending | RequiresAction)  # nothing decided before the customer
    back = await act(customer, result.action.url, outcome)
    assert back.status_code == 303 and back.headers["location"].startswith(RETURN_URL)
    final = await settle(connector, request.payment_id)
    if outcome == "success":
        assert isinstance(final, Approved) and final.amount_minor == request.amount_minor
    else:
        assert isinstance(final, Failed), final


# --- UPI and netbanking -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vpa", "expected"),
    [
        ("customer@okhdfc", None),
        ("timeout.user@ybl", "upi_timeout"),
        ("nofunds@paytm", "insufficient_funds"),
        ("rejectme@axl", "bank_rejected"),
    ],
)
@pytest.mark.parametrize("provider", INDIAN_PROVIDERS)
async def test_upi_collect_completes_asynchronously(
    connectors: dict[ProviderName, Connector],
    admin: Admin,
    provider: ProviderName,
    vpa: str,
    expected: DeclineCode | None,
) -> None:
    connector = connectors[provider]
    request = charge_request(UpiMethod(vpa=vpa))
    result = await connector.charge(request)
    assert isinstance(result, RequiresAction) and result.action == UpiCollectAction(vpa)
    assert isinstance(await connector.status(request.payment_id), Pending)
    final = await settle(connector, request.payment_id)
    assert_outcome(final, expected, request.amount_minor)
    assert charged(await admin.entries_for({request.payment_id}))[request.payment_id] == (
        1 if expected is None else 0
    )


@pytest.mark.parametrize("provider", INDIAN_PROVIDERS)
async def test_a_timed_out_collect_can_turn_into_a_debit_that_is_refunded(
    connectors: dict[ProviderName, Connector], admin: Admin, provider: ProviderName
) -> None:
    """NPCI's deemed success: the collect is reported timed out, then the remitter bank's debit
    is confirmed; the status enquiry must show it, and a refund must reach it."""
    connector = connectors[provider]
    request = charge_request(UpiMethod(vpa="late.confirm@okhdfc"))
    assert isinstance(await connector.charge(request), RequiresAction)
    assert_outcome(await settle(connector, request.payment_id), "upi_timeout", 0)
    deadline = time.monotonic() + 5.0
    while not isinstance(found := await connector.status(request.payment_id), Approved):
        assert isinstance(found, Declined), found  # stays timed out until the bank confirms
        assert time.monotonic() < deadline, f"{request.payment_id} never confirmed"
        await asyncio.sleep(0.05)
    assert (found.captured, found.amount_minor) == (True, request.amount_minor)
    ref = PaymentRef(request.payment_id, found.provider_ref, request.currency)
    refund_id = f"rfd_{uuid.uuid4().hex[:20]}"
    assert isinstance(await connector.refund(ref, request.amount_minor, refund_id), Done)
    [entry] = await admin.entries_for({request.payment_id})
    assert entry["refunded_minor"] == request.amount_minor


@pytest.mark.parametrize("provider", INDIAN_PROVIDERS)
async def test_an_invalid_vpa_is_declined_at_once(
    connectors: dict[ProviderName, Connector], provider: ProviderName
) -> None:
    result = await connectors[provider].charge(charge_request(UpiMethod(vpa="invalid.id@okaxis")))
    assert isinstance(result, Declined) and result.code == "invalid_vpa"


@pytest.mark.parametrize("outcome", ["success", "failure"])
@pytest.mark.parametrize("provider", INDIAN_PROVIDERS)
async def test_netbanking_redirect_and_callback(
    connectors: dict[ProviderName, Connector],
    customer: httpx.AsyncClient,
    provider: ProviderName,
    outcome: str,
) -> None:
    connector = connectors[provider]
    request = charge_request(NetbankingMethod(bank_code="HDFC"))
    result = await connector.charge(request)
    assert isinstance(result, RequiresAction) and isinstance(result.action, RedirectAction)
    assert result.action.action_type == "netbanking_redirect"
    back = await act(customer, result.action.url, outcome)
    location = back.headers["location"]
    assert back.status_code == 303 and location.startswith(RETURN_URL)
    final = await settle(connector, request.payment_id)
    if outcome == "failure":
        assert isinstance(final, Declined) and final.code == "bank_rejected"
        return
    assert isinstance(final, Approved)
    if isinstance(connector, RazorpayConnector):
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert connector.verify_callback(
            params["razorpay_order_id"],
            params["razorpay_payment_id"],
            params["razorpay_signature"],
        )
        assert not connector.verify_callback(
            params["razorpay_order_id"], "pay_forged", params["razorpay_signature"]
        )


# --- bank transfers ---------------------------------------------------------------------------

TRANSFER_AMOUNTS = {"neft": 50_000_00, "rtgs": 2_50_000_00, "imps": 10_000_00}
REFERENCE_FORMATS = {
    "neft": re.compile(r"^HDFCN\d{2}\d{3}\d{6}$"),  # 16 characters
    "rtgs": re.compile(r"^HDFCR\d\d{8}\d{8}$"),  # 22 characters
    "imps": re.compile(r"^\d{12}$"),  # RRN
}


async def customer_transfer(
    bank: httpx.AsyncClient,
    instructions: Any,
    mode: str,
    amount_minor: int,
    *,
    ifsc: str,
    account: str,
) -> httpx.Response:
    """The customer's bank sends the transfer to the virtual account."""
    return await bank.post(
        "/cbs/v1/transfers",
        json={
            "clientReference": f"cust_{uuid.uuid4().hex[:16]}",
            "mode": mode.upper(),
            "amount": to_bank_amount(amount_minor),
            "remitter": {"ifsc": ifsc, "accountNumber": account, "name": "A Customer"},
            "beneficiary": {
                "ifsc": instructions.ifsc,
                "accountNumber": instructions.account_number,
            },
        },
    )


@pytest.fixture
async def bank(sandboxes: dict[str, dict[str, str]]) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-Client-Id": sandbox.BANK_CLIENT_ID, "X-Api-Key": sandbox.BANK_API_KEY}
    async with httpx.AsyncClient(
        base_url=sandboxes["bank"]["url"], headers=headers, timeout=5.0
    ) as client:
        yield client


@pytest.mark.parametrize("mode", ["neft", "rtgs", "imps"])
async def test_bank_transfer_into_a_virtual_account(
    connectors: dict[ProviderName, Connector],
    admin: Admin,
    bank: httpx.AsyncClient,
    mode: str,
) -> None:
    connector = connectors["bank_transfer"]
    method = BankTransferMethod(type=mode, ifsc="ICIC0004321", account_last4="4321")
    amount = TRANSFER_AMOUNTS[mode]
    request = charge_request(method, amount_minor=amount)
    pending = await connector.charge(request)
    assert isinstance(pending, Pending) and pending.instructions is not None
    assert pending.instructions.amount_minor == amount and pending.instructions.modes == (mode,)
    # A repeated charge names the same virtual account.
    again = await connector.charge(request)
    assert isinstance(again, Pending) and again.provider_ref == pending.provider_ref
    sent = await customer_transfer(
        bank, pending.instructions, mode, amount, ifsc="ICIC0004321", account="00012304321"
    )
    assert sent.status_code == 201, sent.text
    transfer = sent.json()["transfer"]
    reference = transfer["rrn"] if mode == "imps" else transfer["utr"]
    assert REFERENCE_FORMATS[mode].match(reference), reference
    assert transfer["status"] == ("PENDING" if mode == "neft" else "SUCCESS")
    final = await settle(connector, request.payment_id)
    assert isinstance(final, Approved) and final.network_ref == reference
    assert final.amount_minor == amount
    ref = PaymentRef(request.payment_id, final.provider_ref, "INR")
    assert isinstance(await connector.capture(ref, amount, "cap_1"), Done)
    refunded = await connector.refund(ref, 1_000_00, f"rfd_{uuid.uuid4().hex[:10]}")
    assert isinstance(refunded, Done)
    assert charged(await admin.entries_for({request.payment_id}))[request.payment_id] == 1


@pytest.mark.parametrize(
    ("account", "expected", "provider_code"),
    [
        ("00012300002", "bank_rejected", "BANK_REJECTED"),
        ("00012309995", "insufficient_funds", "INSUFFICIENT_FUNDS"),
        ("00012308888", "bank_rejected", "TPV_MISMATCH"),  # not the registered account
    ],
)
async def test_bank_rejections(
    connectors: dict[ProviderName, Connector],
    bank: httpx.AsyncClient,
    account: str,
    expected: DeclineCode,
    provider_code: str,
) -> None:
    connector = connectors["bank_transfer"]
    last4 = account[-4:] if provider_code != "TPV_MISMATCH" else "4321"
    method = BankTransferMethod(type="imps", ifsc="SBIN0000456", account_last4=last4)
    request = charge_request(method, amount_minor=5_000_00)
    pending = await connector.charge(request)
    assert isinstance(pending, Pending)
    sent = await customer_transfer(
        bank, pending.instructions, "imps", 5_000_00, ifsc="SBIN0000456", account=account
    )
    assert sent.json()["transfer"]["status"] == "REJECTED"
    final = await connector.status(request.payment_id)
    assert isinstance(final, Declined)
    assert (final.code, final.provider_code) == (expected, provider_code)


async def test_rtgs_below_the_minimum_and_imps_above_the_maximum_are_refused(
    connectors: dict[ProviderName, Connector], bank: httpx.AsyncClient
) -> None:
    connector = connectors["bank_transfer"]
    method = BankTransferMethod(type="rtgs", ifsc="HDFC0001234", account_last4="1234")
    below = await connector.charge(charge_request(method, amount_minor=1_99_999_99))
    assert isinstance(below, Declined) and below.code == "amount_below_method_minimum"
    at_minimum = await connector.charge(charge_request(method, amount_minor=2_00_000_00))
    assert isinstance(at_minimum, Pending)
    imps = BankTransferMethod(type="imps", ifsc="HDFC0001234", account_last4="1234")
    over = await connector.charge(charge_request(imps, amount_minor=5_00_000_01))
    assert isinstance(over, Declined) and over.code == "amount_over_method_limit"
    # The bank refuses an RTGS transfer below ₹2 lakh outright, whoever sends it.
    direct = await bank.post(
        "/cbs/v1/transfers",
        json={
            "clientReference": f"cust_{uuid.uuid4().hex[:16]}",
            "mode": "RTGS",
            "amount": "100000.00",
            "remitter": {"ifsc": "HDFC0001234", "accountNumber": "00012301234"},
            "beneficiary": {"ifsc": "ICIC0000001", "accountNumber": "000999888777"},
        },
    )
    assert direct.status_code == 422 and direct.json()["errorCode"] == "RTGS_MIN_AMOUNT"


# --- lost answers and failover ----------------------------------------------------------------

CREATE_PATHS: dict[ProviderName, str] = {
    "razorpay": "/v1/payments/create",
    "payu": "/_payment",
    "stripe": "/v1/payment_intents",
}


@pytest.mark.parametrize("provider", CARD_PROVIDERS)
async def test_a_lost_answer_is_not_charged_twice(
    connectors: dict[ProviderName, Connector], admin: Admin, provider: ProviderName
) -> None:
    """The provider charges, then its answer never arrives: the connector must find that charge
    (idempotent resend or enquiry) instead of making a second one."""
    await admin.fault(
        SANDBOX_NAMES[provider],
        mode="timeout",
        count=1,
        hold_s=HOLD_S,
        path_prefix=CREATE_PATHS[provider],
    )
    request = charge_request(card("1111"), currency=currency_for(provider))
    result = await connectors[provider].charge(request)
    assert isinstance(result, Approved), result
    entries = await admin.entries_for({request.payment_id})
    assert charged(entries)[request.payment_id] == 1
    assert [e["provider_ref"] for e in entries if e["charged"]] == [result.provider_ref]


def router_for(connectors: dict[ProviderName, Connector]) -> Router:
    return Router(connectors, InMemoryAttemptLog(), enquiry_delay_s=0.05)


async def test_failover_when_the_primary_is_down(
    connectors: dict[ProviderName, Connector], admin: Admin
) -> None:
    await admin.fault("razorpay", mode="down")
    router = router_for(connectors)
    request = charge_request(card("1111"))
    routed = await router.charge(request)
    assert isinstance(routed.result, Approved) and routed.provider == "payu"
    assert [s.event for s in routed.steps][:2] == ["sent", "not_sent"]
    assert [e["provider"] for e in await admin.entries_for({request.payment_id})] == ["payu"]


async def test_failover_when_the_primary_answers_500_before_processing(
    connectors: dict[ProviderName, Connector], admin: Admin
) -> None:
    await admin.fault("razorpay", mode="http_500")
    routed = await router_for(connectors).charge(charge_request(card("9995")))
    # The decline comes from the secondary; the primary never saw a payment.
    assert routed.provider == "payu"
    assert isinstance(routed.result, Declined) and routed.result.code == "insufficient_funds"


async def test_slow_answers_within_the_timeout_still_count(
    connectors: dict[ProviderName, Connector], admin: Admin
) -> None:
    await admin.fault("stripe", mode="slow", delay_ms=300)
    started = time.monotonic()
    result = await connectors["stripe"].charge(charge_request(card("1111"), currency="EUR"))
    assert isinstance(result, Approved) and time.monotonic() - started >= 0.3


# --- the burst --------------------------------------------------------------------------------

BURST_SIZE = 200
BURST_CONCURRENCY = 20
BURST_INSTRUMENTS = ["1111", "1111", "1111", "1111", "0002", "1111", "9995", "1111", "0069", "1111"]
EXPECTED = dict(CARD_INSTRUMENTS)


async def test_primary_dies_mid_burst_and_no_payment_is_lost_or_charged_twice(
    connectors: dict[ProviderName, Connector], admin: Admin
) -> None:
    router = router_for(connectors)
    requests = [
        charge_request(card(BURST_INSTRUMENTS[i % len(BURST_INSTRUMENTS)]), amount_minor=10_000 + i)
        for i in range(BURST_SIZE)
    ]
    gate = asyncio.Semaphore(BURST_CONCURRENCY)
    results: dict[str, Routed] = {}
    half_done = asyncio.Event()

    async def pay(request: ChargeRequest) -> None:
        async with gate:
            results[request.payment_id] = await router.charge(request)
        if len(results) >= BURST_SIZE // 2:
            half_done.set()

    async def kill_primary() -> None:
        await half_done.wait()
        # Up to BURST_CONCURRENCY payments are in flight: their connections die with it.
        await admin.fault("razorpay", mode="down")

    killer = asyncio.create_task(kill_primary())
    await asyncio.gather(*(pay(request) for request in requests))
    await killer

    # Payments whose answer died with the primary stay unknown: nothing was charged elsewhere.
    # As the payments agent would, retry them once the primary is back.
    unknown = [r for r in requests if _unknown(results[r.payment_id].result)]
    print(f"burst: {len(unknown)} payments unknown until the primary came back")
    await admin.fault("razorpay", mode="none")
    deadline = time.monotonic() + 10.0
    while unknown and time.monotonic() < deadline:
        await asyncio.sleep(BREAKER.open_s)
        for request in list(unknown):
            results[request.payment_id] = await router.charge(request)
            if not _unknown(results[request.payment_id].result):
                unknown.remove(request)
    assert not unknown, [results[r.payment_id] for r in unknown]

    by_provider: Counter[str] = Counter()
    for request in requests:
        routed = results[request.payment_id]
        assert isinstance(request.method, CardMethod)
        expected = EXPECTED[request.method.last4]
        assert_outcome(routed.result, expected, request.amount_minor)
        assert routed.provider is not None
        by_provider[routed.provider] += 1
    assert by_provider["razorpay"] >= BURST_SIZE // 4, by_provider
    assert by_provider["payu"] >= BURST_SIZE // 4, by_provider

    entries = await admin.entries_for({r.payment_id for r in requests})
    charges = charged(entries)
    for request in requests:
        routed = results[request.payment_id]
        mine = [e for e in entries if e["merchant_reference"] == request.payment_id]
        if isinstance(routed.result, Approved):
            # Charged exactly once, where the router says, for the exact amount.
            assert charges[request.payment_id] == 1, mine
            [entry] = [e for e in mine if e["charged"]]
            assert entry["provider"] == routed.provider
            assert entry["provider_ref"] == routed.result.provider_ref
            assert entry["amount_minor"] == request.amount_minor
        else:
            # Declined once, by one provider, and never charged anywhere.
            assert charges[request.payment_id] == 0, mine
            assert len({e["provider"] for e in mine}) == 1, mine


def _unknown(result: ChargeResult | object) -> bool:
    return isinstance(result, ProcessorError)
