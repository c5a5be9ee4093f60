"""Payments through the processors, end to end: API → Kafka → worker → sandbox → ledger.

Every method goes through its processor's sandbox with success and each decline code; the
customer's own steps (3-D Secure, netbanking page, UPI approval, a bank transfer into the
virtual account) are taken the way a customer would, on the sandbox's pages and bank API.  The
sandboxes' own ledgers are the processors' books: each captured payment must be charged there
exactly once, each declined one nowhere.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from confluent_kafka import Producer

import sandbox
from models.config import ServiceEndpoints
from models.events import PaymentRequested, encode
from models.ids import new_event_id, payment_id_for
from models.methods import BankTransferMethod
from models.money import Money
from models.topics import PAYMENTS_LIFECYCLE, PAYMENTS_REQUESTED
from streams.connectors.amounts import to_bank_amount
from tests.conftest import Merchant, WorkerProcess, wait_for
from tests.integration.kafka_helpers import read_topic, value_of
from tests.integration.ledger_checks import assert_ledger_invariants
from tests.sandboxes import Listing
from warehouse.processor_store import customer_action

pytestmark = pytest.mark.integration

SETTLE_TIMEOUT_S = 60.0


def card(last4: str, bin_digits: str = "411111") -> dict[str, str]:
    return {
        "type": "card",
        "token": f"tok_{uuid.uuid4().hex[:12]}",
        "bin": bin_digits,
        "last4": last4,
    }


# --- helpers ----------------------------------------------------------------------------------


class Sandboxes:
    """The processors' side: their ledgers, faults, and the customer's bank."""

    def __init__(self, client: httpx.AsyncClient, listing: Listing) -> None:
        self.client = client
        self.listing = listing

    async def fault(self, name: str, **body: Any) -> None:
        url = f"{self.listing[name]['admin_url']}/__sandbox/faults"
        response = await self.client.post(url, json=body)
        assert response.status_code == 200, response.text

    async def entries(self, payment_ids: set[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for s in self.listing.values():
            response = await self.client.get(f"{s['admin_url']}/__sandbox/ledger")
            found += [
                e for e in response.json()["entries"] if e["merchant_reference"] in payment_ids
            ]
        return found

    async def charges(self, payment_ids: set[str]) -> Counter[str]:
        """How many times each payment was charged, over every processor."""
        return Counter(
            e["merchant_reference"] for e in await self.entries(payment_ids) if e["charged"]
        )

    async def transfer(
        self, instructions: dict[str, Any], mode: str, *, ifsc: str, account: str
    ) -> str:
        """The customer's bank sends ``mode`` into the virtual account; the transfer's status."""
        response = await self.client.post(
            f"{self.listing['bank']['url']}/cbs/v1/transfers",
            headers={"X-Client-Id": sandbox.BANK_CLIENT_ID, "X-Api-Key": sandbox.BANK_API_KEY},
            json={
                "clientReference": f"cust_{uuid.uuid4().hex[:16]}",
                "mode": mode.upper(),
                "amount": to_bank_amount(int(instructions["amount_minor"])),
                "remitter": {"ifsc": ifsc, "accountNumber": account, "name": "A Customer"},
                "beneficiary": {
                    "ifsc": instructions["ifsc"],
                    "accountNumber": instructions["account_number"],
                },
            },
        )
        assert response.status_code == 201, response.text
        status: str = response.json()["transfer"]["status"]
        return status


@pytest.fixture
async def processors(processor_sandboxes: Listing) -> AsyncIterator[Sandboxes]:
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
        helper = Sandboxes(client, processor_sandboxes)
        yield helper
        for name in processor_sandboxes:  # leave every sandbox healthy for the next test
            await helper.fault(name, mode="none")


async def create(
    api: httpx.AsyncClient, merchant: Merchant, method: dict[str, str], *, amount: int = 49_900,
    currency: str = "INR", key: str | None = None,
) -> str:  # fmt: skip
    response = await api.post(
        "/v1/payments",
        json={"amount": amount, "currency": currency, "method": method},
        headers={**merchant.headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )
    assert response.status_code == 202, response.text
    payment_id: str = response.json()["id"]
    return payment_id


async def status_of(pg: asyncpg.Pool, payment_id: str) -> tuple[str, str | None] | None:
    row = await pg.fetchrow(
        "SELECT status, decline_code FROM payments WHERE payment_id = $1", payment_id
    )
    return None if row is None else (row["status"], row["decline_code"])


async def becomes(
    pg: asyncpg.Pool, payment_id: str, statuses: set[str], worker: WorkerProcess
) -> tuple[str, str | None]:
    async def probe() -> tuple[str, str | None] | None:
        found = await status_of(pg, payment_id)
        return found if found is not None and found[0] in statuses else None

    result: tuple[str, str | None] = await wait_for(
        probe, timeout_s=SETTLE_TIMEOUT_S, what=f"{payment_id} in {statuses}\n{worker.log_tail()}"
    )
    return result


async def action_of(pg: asyncpg.Pool, payment_id: str, worker: WorkerProcess) -> dict[str, Any]:
    async def probe() -> dict[str, object] | None:
        return await customer_action(pg, payment_id)

    found: dict[str, Any] = await wait_for(
        probe, timeout_s=SETTLE_TIMEOUT_S, what=f"{payment_id}'s next step\n{worker.log_tail()}"
    )
    return found


async def customer_acts(client: httpx.AsyncClient, url: str, outcome: str) -> None:
    """The customer on the issuer's or bank's page submits ``outcome``."""
    page = await client.get(url)
    assert page.status_code == 200 and "<form" in page.text
    done = await client.post(url, data={"outcome": outcome})
    assert done.status_code in (302, 303), done.text


# --- every method, every outcome --------------------------------------------------------------

# method, amount, currency, the status it ends in, its decline code.
IMMEDIATE: list[tuple[dict[str, str], int, str, str, str | None]] = [
    (card("4242"), 49_900, "INR", "captured", None),
    (card("0002"), 49_901, "INR", "declined", "do_not_honor"),
    (card("9995", "652150"), 49_902, "INR", "declined", "insufficient_funds"),
    (card("0069", "510510"), 49_903, "INR", "declined", "expired_card"),
    (card("4242"), 12_50, "USD", "captured", None),  # international: Stripe
    ({"type": "upi", "vpa": "asha.k@okhdfc"}, 25_000, "INR", "captured", None),
    ({"type": "upi", "vpa": "invalid.id@ybl"}, 25_001, "INR", "declined", "invalid_vpa"),
    ({"type": "upi", "vpa": "timeout.user@ybl"}, 25_002, "INR", "declined", "upi_timeout"),
    ({"type": "upi", "vpa": "nofunds@paytm"}, 25_003, "INR", "declined", "insufficient_funds"),
    ({"type": "upi", "vpa": "rejectme@axl"}, 25_004, "INR", "declined", "bank_rejected"),
    (
        {"type": "upi", "vpa": "big.spender@okaxis"},
        1_00_000_01,
        "INR",
        "declined",
        "amount_over_method_limit",
    ),
    ({"type": "wallet", "wallet_id": "wal_c0ffee01"}, 9_900, "INR", "captured", None),
]


async def test_every_method_ends_as_its_processor_says(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    worker: WorkerProcess,
    processors: Sandboxes,
    topic_prefix: str,
) -> None:
    expected: dict[str, tuple[str, str | None]] = {}
    ids: list[str] = []
    for method, amount, currency, status, code in IMMEDIATE:
        pid = await create(api, merchant, method, amount=amount, currency=currency)
        expected[pid] = (status, code)
        ids.append(pid)
    upi_ok, wallet = ids[5], ids[-1]

    # The customer's own steps: 3-D Secure and netbanking pages, bank transfers.
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as browser:
        for method, outcome, status, code in [
            (card("3184"), "success", "captured", None),
            (card("3184"), "failure", "failed", None),
            ({"type": "netbanking", "bank_code": "HDFC"}, "success", "captured", None),
            ({"type": "netbanking", "bank_code": "ICIC"}, "failure", "declined", "bank_rejected"),
        ]:
            pid = await create(api, merchant, method)
            await becomes(pg, pid, {"requires_action"}, worker)
            action = await action_of(pg, pid, worker)
            assert action["type"] == "redirect"
            await customer_acts(browser, str(action["url"]), outcome)
            expected[pid] = (status, code)

    for mode, amount, account, status, code, transfer_status in [
        ("neft", 50_000_00, "00012304321", "captured", None, "PENDING"),
        ("rtgs", 2_50_000_00, "00012304321", "captured", None, "SUCCESS"),
        ("imps", 10_000_00, "00012300002", "declined", "bank_rejected", "REJECTED"),
        ("imps", 10_000_01, "00012309995", "declined", "insufficient_funds", "REJECTED"),
    ]:
        method = {"type": mode, "ifsc": "ICIC0004321", "account_last4": account[-4:]}
        pid = await create(api, merchant, method, amount=amount)
        instructions = await action_of(pg, pid, worker)
        assert instructions["type"] == "bank_transfer" and instructions["modes"] == [mode]
        # Recorded, waiting for the customer's bank: nothing authorized, nothing posted.
        assert await becomes(pg, pid, {"created"}, worker) == ("created", None)
        sent = await processors.transfer(instructions, mode, ifsc="ICIC0004321", account=account)
        assert sent == transfer_status
        expected[pid] = (status, code)

    # RTGS below ₹2 lakh: the API refuses it, and the bank refuses one that got past the API.
    low = {"amount": 1_99_999_99, "currency": "INR",
           "method": {"type": "rtgs", "ifsc": "HDFC0001234", "account_last4": "1234"}}  # fmt: skip
    refused = await api.post(
        "/v1/payments", json=low, headers={**merchant.headers, "Idempotency-Key": "rtgs-low"}
    )
    assert refused.status_code == 422 and refused.json()["code"] == "amount_below_minimum"
    sneaked = PaymentRequested(
        event_id=new_event_id(),
        payment_id=payment_id_for(merchant.merchant_id, "rtgs-sneaked"),
        merchant_id=merchant.merchant_id,
        occurred_at=datetime.now(UTC),
        request_fingerprint="f" * 64,
        amount=Money(minor=1_99_999_99, currency="INR"),
        method=BankTransferMethod(type="rtgs", ifsc="HDFC0001234", account_last4="1234"),
    )
    producer = Producer({"bootstrap.servers": ServiceEndpoints().kafka_bootstrap})
    producer.produce(
        PAYMENTS_REQUESTED.full_name(topic_prefix), key=sneaked.payment_id, value=encode(sneaked)
    )
    assert producer.flush(10) == 0
    expected[sneaked.payment_id] = ("declined", "amount_below_method_minimum")

    final = {"captured", "declined", "failed"}
    for pid, want in expected.items():
        assert await becomes(pg, pid, final, worker) == want, pid
    await assert_ledger_invariants(pg)

    # The processors' books: each captured payment charged exactly once, the rest nowhere.
    charges = await processors.charges(set(expected))
    captured = {pid for pid, (status, _) in expected.items() if status == "captured"}
    charged_once = captured - {wallet}  # the wallet moves RizzPay's own money, no processor's
    assert {pid: charges[pid] for pid in charged_once} == dict.fromkeys(charged_once, 1)
    assert not any(charges[pid] for pid in set(expected) - charged_once)

    # A UPI collect is announced step by step.
    announced = [
        orjson.loads(value_of(m)) for m in read_topic(PAYMENTS_LIFECYCLE.full_name(topic_prefix))
    ]
    steps = [e["event_type"] for e in announced if e["payment_id"] == upi_ok]
    assert steps[:4] == [
        "payment.action_required",
        "payment.action_completed",
        "payment.authorized",
        "payment.captured",
    ]
