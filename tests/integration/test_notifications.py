"""Customer notifications through a real SMTP server (aiosmtpd, started here) and the local
SMS/push sandbox (MSG91, FCM HTTP v1 and APNs shapes): receipts and failure notices driven by
payments through the API and a real worker, once per event and channel, and provider failures
recorded rather than retried forever."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller

from models.config import ServiceEndpoints
from models.events import PaymentCaptured, PaymentDeclined, PaymentRequested
from models.ids import derived_event_id, payment_id_for
from models.methods import UpiMethod
from models.money import Money
from sandbox.notifications import NotificationSandbox, create_app
from streams.notifications.agent import NotificationProcessor
from streams.notifications.settings import (
    ApnsSettings,
    EmailSettings,
    FcmSettings,
    NotificationSettings,
    SmsSettings,
)
from streams.settings import WorkerSettings
from tests.conftest import Merchant, WorkerProcess, wait_for

pytestmark = pytest.mark.integration

CARD = {"type": "card", "token": "tok_visa_0042", "bin": "411111", "last4": "4242"}


@dataclass
class Mailbox:
    """What the local SMTP server received."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


def body_of(message: Message) -> str:
    """The text body, decoded (it travels quoted-printable)."""
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[NotificationSandbox, str]]:
    state = NotificationSandbox()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the notification sandbox did not start"
        time.sleep(0.02)
    yield state, url
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def settings(
    smtp: tuple[Mailbox, int], sandbox: tuple[NotificationSandbox, str]
) -> NotificationSettings:
    state, url = sandbox
    return NotificationSettings(
        email=EmailSettings(host="127.0.0.1", port=smtp[1], starttls=False),
        sms=SmsSettings(base_url=url, authkey=state.msg91_authkey, template_id="dlt_1107160000"),
        fcm=FcmSettings(base_url=url, project_id=state.fcm_project, access_token=state.fcm_token),
        apns=ApnsSettings(
            base_url=url, bundle_id=state.apns_topic, provider_token=state.apns_provider_token
        ),
        timeout_s=5,
        payment_wait_s=5,
    )


@pytest.fixture
def worker(
    pg_dsn: str, topic_prefix: str, tmp_path: Path, settings: NotificationSettings
) -> Iterator[WorkerProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIZZPAY_")}
    secrets = settings.model_dump(mode="json")
    # SecretStr dumps masked: write the real values.
    secrets["sms"]["authkey"] = settings.sms.authkey.get_secret_value()  # type: ignore[union-attr]
    secrets["fcm"]["access_token"] = settings.fcm.access_token.get_secret_value()  # type: ignore[union-attr]
    secrets["apns"]["provider_token"] = settings.apns.provider_token.get_secret_value()  # type: ignore[union-attr]
    env.update(
        RIZZPAY_PG_DSN=pg_dsn,
        RIZZPAY_TOPIC_PREFIX=topic_prefix,
        RIZZPAY_KAFKA_BOOTSTRAP=ServiceEndpoints().kafka_bootstrap,
        RIZZPAY_LOG_LEVEL="warning",
        RIZZPAY_NOTIFICATIONS=json.dumps(secrets),
    )
    process = WorkerProcess(env, tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


async def put_contacts(
    api: httpx.AsyncClient, merchant: Merchant, customer: str, body: dict[str, Any]
) -> None:
    answer = await api.put(
        f"/v1/customers/{customer}/contacts", json=body, headers=merchant.headers
    )
    assert answer.status_code == 200, answer.text


async def test_receipts_and_failure_notices_reach_every_channel_once(
    api: httpx.AsyncClient,
    merchant: Merchant,
    pg: asyncpg.Pool,
    worker: WorkerProcess,
    smtp: tuple[Mailbox, int],
    sandbox: tuple[NotificationSandbox, str],
) -> None:
    mailbox, _ = smtp
    state, _ = sandbox
    tag = uuid.uuid4().hex[:8]
    paying = f"asha.{tag}@example.in"
    failing = f"ravi.{tag}@example.in"
    await put_contacts(
        api,
        merchant,
        "cust_asha",
        {"email": paying, "phone": "+919876543210", "push": {"platform": "fcm", "token": tag}},
    )
    await put_contacts(
        api, merchant, "cust_ravi", {"email": failing, "push": {"platform": "apns", "token": tag}}
    )
    shown = await api.get("/v1/customers/cust_asha/contacts", headers=merchant.headers)
    assert shown.json()["phone"] == "+919876543210"

    headers = {**merchant.headers, "Idempotency-Key": f"n-{tag}-1"}
    paid = await api.post(
        "/v1/payments",
        json={
            "amount": 2_499_00,
            "currency": "INR",
            "method": CARD,
            "customer_id": "cust_asha",
            "description": "Order 1187",
        },
        headers=headers,
    )
    assert paid.status_code == 202, paid.text
    headers["Idempotency-Key"] = f"n-{tag}-2"
    declined = await api.post(
        "/v1/payments",
        json={
            "amount": 150_00,
            "currency": "INR",
            "method": {"type": "upi", "vpa": "invalid@okaxis"},
            "customer_id": "cust_ravi",
        },
        headers=headers,
    )
    assert declined.status_code == 202, declined.text

    async def mails() -> bool:
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
        return bool(mailbox.to(paying)) and bool(mailbox.to(failing))

    await wait_for(mails, timeout_s=90, what="a receipt and a failure notice")
    [receipt] = mailbox.to(paying)
    assert receipt["Subject"] == "Payment receipt: 2,499.00 INR"
    text = body_of(receipt)
    assert "Order 1187" in text and paid.json()["id"] in text
    [notice] = mailbox.to(failing)
    assert notice["Subject"] == "Payment of 150.00 INR not completed"
    assert "UPI ID was not found" in body_of(notice)

    async def pushes() -> list[dict[str, Any]] | None:
        mine = [m for m in state.accepted if m["to"] in (tag, "919876543210")]
        return mine if len(mine) >= 3 else None

    found = await wait_for(pushes, timeout_s=60, what="SMS, FCM and APNs messages")
    assert sorted(m["provider"] for m in found if m["to"] == tag) == ["apns", "fcm"]
    sms = [m for m in found if m["provider"] == "msg91"]
    assert len(sms) == 1 and "2,499.00 INR" in sms[0]["body"]["recipients"][0]["var1"]

    async def recorded() -> list[Any] | None:
        rows = await pg.fetch("SELECT channel, status, event_type FROM notifications")
        return rows if len(rows) == 5 and all(r["status"] != "sending" for r in rows) else None

    rows = await wait_for(recorded, timeout_s=30, what="five notifications recorded")
    assert sorted((r["channel"], r["event_type"]) for r in rows) == [
        ("email", "payment.captured"),
        ("email", "payment.declined"),
        ("push", "payment.captured"),
        ("push", "payment.declined"),
        ("sms", "payment.captured"),
    ]
    assert {r["status"] for r in rows} == {"sent"}


async def test_a_redelivered_event_notifies_once_and_failures_are_recorded(
    pg_dsn: str,
    pg: asyncpg.Pool,
    merchant: Merchant,
    smtp: tuple[Mailbox, int],
    sandbox: tuple[NotificationSandbox, str],
    settings: NotificationSettings,
) -> None:
    """The agent's processor in-process: the same lifecycle event twice sends one e-mail;
    a dead push token and a rejected number are recorded as failed after one attempt; a
    provider that fails once (503) is retried."""
    mailbox, _ = smtp
    state, _ = sandbox
    tag = uuid.uuid4().hex[:8]
    address = f"meera.{tag}@example.in"
    processor = NotificationProcessor(WorkerSettings(pg_dsn=pg_dsn), settings)
    await pg.execute(
        """INSERT INTO customer_contacts (merchant_id, customer_id, email, phone, push_platform,
               push_token, updated_at) VALUES ($1, 'c1', $2, '+919990001111', 'fcm',
               'unregistered', now()),
               ($1, 'c2', NULL, NULL, 'apns', $3, now())""",
        merchant.merchant_id,
        address,
        f"flaky-{tag}",
    )
    at = datetime.now(UTC)
    events = []
    for customer in ("c1", "c2"):
        pid = payment_id_for(merchant.merchant_id, f"{tag}-{customer}")
        await processor.record(
            [
                PaymentRequested(
                    event_id=f"evt_{uuid.uuid4().hex}",
                    payment_id=pid,
                    merchant_id=merchant.merchant_id,
                    occurred_at=at,
                    request_fingerprint="a" * 64,
                    amount=Money(minor=99_00, currency="INR"),
                    method=UpiMethod(vpa="meera@okicici"),
                    customer_id=customer,
                )
            ]
        )
        events.append(
            PaymentCaptured(
                event_id=derived_event_id(pid, "payment.captured"),
                payment_id=pid,
                merchant_id=merchant.merchant_id,
                occurred_at=at,
                amount=Money(minor=99_00, currency="INR"),
            )
        )
    first, unknown = await processor.notify(events)
    assert unknown == []
    assert sorted(n.channel for n in first) == ["email", "push"]  # c1's mail, c2's push
    again, _ = await processor.notify(events)
    assert again == []
    assert len(mailbox.to(address)) == 1

    rows = {
        (r["channel"], r["recipient"]): (r["status"], r["attempts"], r["last_error"])
        for r in await pg.fetch(
            "SELECT channel, recipient, status, attempts, last_error FROM notifications"
        )
    }
    assert rows[("email", address)][:2] == ("sent", 1)
    assert rows[("sms", "+919990001111")][:2] == ("failed", 1)
    assert "Invalid mobile number" in rows[("sms", "+919990001111")][2]
    assert rows[("push", "unregistered")][:2] == ("failed", 1)
    assert rows[("push", f"flaky-{tag}")][:2] == ("sent", 2)
    assert [m["provider"] for m in state.accepted if m["to"] == f"flaky-{tag}"] == ["apns"]

    stray = PaymentDeclined(
        event_id=f"evt_{uuid.uuid4().hex}",
        payment_id=payment_id_for(merchant.merchant_id, f"{tag}-never-requested"),
        merchant_id=merchant.merchant_id,
        occurred_at=at,
        amount=Money(minor=1_00, currency="INR"),
        method_type="card",
        decline_code="do_not_honor",
    )
    sent, unknown = await processor.notify([stray])
    assert sent == [] and unknown == [stray]
    await processor.close()
