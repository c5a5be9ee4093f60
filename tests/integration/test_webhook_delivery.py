"""Merchant webhooks through real PostgreSQL and a real HTTP receiver on 127.0.0.1.

The receiver is a small FastAPI app served by uvicorn in a thread; the engine reaches it over
TCP with the development setting ``allow_loopback=True``.  Time is a virtual clock stepped from
one due time to the next, with the retry schedule compressed, so the 72 h schedule runs in
well under a second of wall time.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, ip_address

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request, Response

from models.events import PaymentCaptured, PaymentRefunded
from models.ids import payment_id_for
from models.money import Money
from streams.webhooks import (
    DEFAULT_SCHEDULE,
    RetrySchedule,
    UnsafeWebhookUrl,
    WebhookVerificationError,
    verify,
)
from streams.webhooks.address_guard import IPAddress, Resolver
from streams.webhooks.delivery import AttemptResult, deliver_due, new_http_client
from streams.webhooks.store import (
    Delivery,
    Endpoint,
    EndpointDisabled,
    UnknownEventType,
    create_endpoint,
    delivery_id_for,
    enable_endpoint,
    enqueue,
    event_body,
    get_delivery,
    get_endpoint,
    list_dead_letters,
    replay,
    rotate_secret,
)
from tests.local_server import serving

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
#: 72 h of retries in 72 s of virtual time.
COMPRESSED = DEFAULT_SCHEDULE.compressed(1 / 3600)
#: One attempt only: the first failure dead-letters the delivery.
ONE_SHOT = RetrySchedule(window_s=0)


@dataclass
class Received:
    name: str
    event_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None


@dataclass
class Receiver:
    """What the local HTTP receiver answers, per endpoint name, and what it got."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    fail_event_ids: set[str] = field(default_factory=set)
    delay_s: dict[str, float] = field(default_factory=dict)
    secrets: dict[str, list[str]] = field(default_factory=dict)

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hooks/{name}"

    def got(self, name: str) -> list[Received]:
        return [r for r in self.received if r.name == name]


def _receiver_app(receiver: Receiver) -> FastAPI:
    app = FastAPI()

    @app.post("/hooks/{name}")
    async def hook(name: str, request: Request) -> Response:
        body = await request.body()
        await asyncio.sleep(receiver.delay_s.get(name, 0.0))
        headers = dict(request.headers)
        verified: bool | None = None
        secrets = receiver.secrets.get(name)
        if secrets:
            try:
                verify(secrets, headers, body, now=int(time.time()))
                verified = True
            except WebhookVerificationError:
                verified = False
        event_id = headers.get("webhook-id", "")
        receiver.received.append(Received(name, event_id, headers, body, verified))
        if verified is False:
            return Response(status_code=401)
        if event_id in receiver.fail_event_ids:
            return Response(status_code=500)
        return Response(status_code=receiver.status.get(name, 200))

    return app


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    with serving(_receiver_app(state)) as port:
        state.port = port
        yield state


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with new_http_client() as client:
        yield client


def loopback_resolver(host: str) -> list[IPAddress]:
    """Every name is 127.0.0.1 (the test receiver)."""
    return [IPv4Address("127.0.0.1")]


async def local_endpoint(
    pg: asyncpg.Pool, merchant_id: str, url: str, event_types: list[str] | None = None
) -> Endpoint:
    """An endpoint on this machine's test receiver (loopback allowed, as in development)."""
    return await create_endpoint(
        pg,
        merchant_id=merchant_id,
        url=url,
        event_types=["*"] if event_types is None else event_types,
        resolver=loopback_resolver,
        now=T0,
        allow_loopback=True,
    )


def _name() -> str:
    return uuid.uuid4().hex[:12]


def captured(merchant_id: str, payment_key: str, *, at: datetime = T0) -> PaymentCaptured:
    return PaymentCaptured(
        event_id="evt_" + uuid.uuid4().hex,
        payment_id=payment_id_for(merchant_id, payment_key),
        merchant_id=merchant_id,
        occurred_at=at,
        amount=Money(minor=150_000, currency="INR"),
    )


def refunded(merchant_id: str, payment_key: str, *, at: datetime = T0) -> PaymentRefunded:
    return PaymentRefunded(
        event_id="evt_" + uuid.uuid4().hex,
        payment_id=payment_id_for(merchant_id, payment_key),
        merchant_id=merchant_id,
        occurred_at=at,
        refund_id="rfd_" + uuid.uuid4().hex[:20],
        amount=Money(minor=50_000, currency="INR"),
    )


async def run(
    pg: asyncpg.Pool,
    client: httpx.AsyncClient,
    now: datetime,
    schedule: RetrySchedule = COMPRESSED,
    resolver: Resolver = loopback_resolver,
) -> list[AttemptResult]:
    return await deliver_due(
        pg,
        now=now,
        rng=random.Random(7),
        http_client=client,
        resolver=resolver,
        schedule=schedule,
        allow_loopback=True,
        concurrency=1,
        timeout_s=5.0,
    )


async def delivery(pg: asyncpg.Pool, event_id: str, endpoint_id: str) -> Delivery:
    return await get_delivery(pg, delivery_id_for(event_id, endpoint_id))


async def test_signed_delivery_verifies_at_a_real_receiver(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    name = _name()
    # A host name, resolved by the injected resolver: the engine connects to the checked
    # address and sends the name in the Host header.
    url = receiver.url(name, host="hooks.merchant.test")
    with pytest.raises(UnsafeWebhookUrl) as refused:  # loopback needs the development setting
        await create_endpoint(
            pg,
            merchant_id=merchant.merchant_id,
            url=url,
            event_types=["*"],
            resolver=loopback_resolver,
            now=T0,
        )
    assert refused.value.code == "scheme_not_allowed"
    with pytest.raises(UnsafeWebhookUrl) as refused:
        await local_endpoint(pg, merchant.merchant_id, "https://10.1.2.3/hooks")
    assert refused.value.code == "resolves_to_private_address"
    endpoint = await local_endpoint(pg, merchant.merchant_id, url)
    now = datetime.now(UTC)  # the receiver verifies against its real clock
    old_secret = endpoint.secret
    rotated = await rotate_secret(pg, endpoint.endpoint_id, now=now)
    receiver.secrets[name] = [rotated.secret]

    event = captured(merchant.merchant_id, "order-1", at=now)
    async with pg.acquire() as conn:
        assert await enqueue(conn, event, now=now) == 1
    results = await run(pg, http_client, now)

    assert [r.outcome for r in results] == ["delivered"]
    [got] = receiver.got(name)
    assert got.verified is True
    assert got.body == event_body(event)
    assert got.event_id == event.event_id
    assert got.headers["host"] == f"hooks.merchant.test:{receiver.port}"
    assert got.headers["content-type"] == "application/json"
    # During rotation both secrets sign: the merchant's old secret verifies too.
    assert len(got.headers["webhook-signature"].split()) == 2
    verify([old_secret], got.headers, got.body, now=now)
    stored = await delivery(pg, event.event_id, endpoint.endpoint_id)
    assert (stored.status, stored.attempts, stored.last_status) == ("delivered", 1, 200)


async def test_failing_receiver_is_retried_on_the_schedule_then_dead_lettered(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    name = _name()
    receiver.status[name] = 500
    endpoint = await local_endpoint(
        pg, merchant.merchant_id, receiver.url(name), event_types=["payment.captured"]
    )
    event = captured(merchant.merchant_id, "order-2")
    async with pg.acquire() as conn:
        await enqueue(conn, event, now=T0)

    now = T0
    attempt_times: list[datetime] = []
    for _ in range(COMPRESSED.max_attempts + 5):
        results = await run(pg, http_client, now)
        assert len(results) == 1
        attempt_times.append(now)
        stored = await delivery(pg, event.event_id, endpoint.endpoint_id)
        if stored.status == "dead":
            break
        assert stored.status == "pending"
        assert stored.next_attempt_at > now
        # Nothing is due before the next attempt time.
        assert await run(pg, http_client, stored.next_attempt_at - timedelta(microseconds=1)) == []
        now = stored.next_attempt_at

    assert len(receiver.got(name)) == COMPRESSED.max_attempts == 15
    assert (stored.status, stored.dead_reason, stored.attempts) == ("dead", "retries_exhausted", 15)
    assert stored.last_status == 500
    offsets_s = [(t - T0).total_seconds() for t in attempt_times]
    nominal_s = COMPRESSED.nominal_offsets_s
    for k in range(1, len(offsets_s)):
        gap_s = nominal_s[k] - nominal_s[k - 1]
        slack_s = COMPRESSED.jitter * gap_s + COMPRESSED.initial_delay_s
        assert abs(offsets_s[k] - nominal_s[k]) <= slack_s, (k, offsets_s[k], nominal_s[k])
        assert offsets_s[k] > offsets_s[k - 1]
    assert offsets_s[-1] >= COMPRESSED.window_s  # at least the (compressed) 72 h

    [dead] = await list_dead_letters(pg, merchant.merchant_id)
    assert dead.delivery_id == stored.delivery_id
    # The same event id on every attempt, so the receiver can dedupe.
    assert {r.event_id for r in receiver.got(name)} == {event.event_id}


async def test_410_disables_the_endpoint_and_dead_letters_its_queue(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    gone, alive = _name(), _name()
    receiver.status[gone] = 410
    endpoints = {}
    for name in (gone, alive):
        endpoints[name] = await local_endpoint(pg, merchant.merchant_id, receiver.url(name))
    events = [captured(merchant.merchant_id, f"order-410-{i}") for i in range(3)]
    async with pg.acquire() as conn:
        for event in events:
            assert await enqueue(conn, event, now=T0) == 2

    await run(pg, http_client, T0)

    assert len(receiver.got(gone)) == 1  # the first 410 stops everything else
    assert len(receiver.got(alive)) == 3  # the merchant's other endpoint is unaffected
    disabled = await get_endpoint(pg, endpoints[gone].endpoint_id)
    assert (disabled.enabled, disabled.disabled_reason) == (False, "gone")
    dead = await list_dead_letters(pg, merchant.merchant_id)
    reasons = sorted(d.dead_reason or "" for d in dead)
    assert reasons == ["endpoint_disabled", "endpoint_disabled", "endpoint_gone"]
    assert {d.endpoint_id for d in dead} == {endpoints[gone].endpoint_id}

    # A disabled endpoint gets no new deliveries, and its dead letters cannot be replayed
    # until it is enabled again.
    async with pg.acquire() as conn:
        assert await enqueue(conn, captured(merchant.merchant_id, "order-410-x"), now=T0) == 1
        with pytest.raises(EndpointDisabled):
            await replay(conn, dead[0].delivery_id, now=T0)
    assert await run(pg, http_client, T0 + timedelta(hours=1)) != []
    assert len(receiver.got(gone)) == 1

    receiver.status[gone] = 200
    await enable_endpoint(
        pg, endpoints[gone].endpoint_id, resolver=loopback_resolver, allow_loopback=True
    )
    async with pg.acquire() as conn:
        for d in dead:
            assert await replay(conn, d.delivery_id, now=T0 + timedelta(hours=2)) is True
    results = await run(pg, http_client, T0 + timedelta(hours=2))
    assert [r.outcome for r in results] == ["delivered"] * 3
    # Replays keep the payment order of the original events (each payment has one here).
    assert {r.event_id for r in receiver.got(gone)} == {e.event_id for e in events}


async def test_replay_from_the_dead_letter_store_delivers_once(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    name = _name()
    receiver.status[name] = 503
    endpoint = await local_endpoint(pg, merchant.merchant_id, receiver.url(name))
    event = captured(merchant.merchant_id, "order-replay")
    async with pg.acquire() as conn:
        await enqueue(conn, event, now=T0)
    [result] = await run(pg, http_client, T0, schedule=ONE_SHOT)
    assert (result.outcome, result.dead_reason, result.status) == ("dead", "retries_exhausted", 503)
    [dead] = await list_dead_letters(pg, merchant.merchant_id)
    assert dead.delivery_id == delivery_id_for(event.event_id, endpoint.endpoint_id)
    assert await list_dead_letters(pg, "m_someone_else") == []

    receiver.status[name] = 200
    later = T0 + timedelta(days=5)
    async with pg.acquire() as conn:
        assert await replay(conn, dead.delivery_id, now=later) is True
        assert await replay(conn, dead.delivery_id, now=later) is False  # idempotent
    queued = await get_delivery(pg, dead.delivery_id)
    assert (queued.status, queued.attempts, queued.replays) == ("pending", 0, 1)
    assert queued.dead_reason is None

    results = await run(pg, http_client, later, schedule=ONE_SHOT)
    assert [(r.outcome, r.attempt_number) for r in results] == [("delivered", 1)]
    assert await list_dead_letters(pg, merchant.merchant_id) == []
    async with pg.acquire() as conn:
        assert await replay(conn, dead.delivery_id, now=later) is False  # delivered: no-op
    assert await run(pg, http_client, later + timedelta(days=1)) == []
    assert [r.event_id for r in receiver.got(name)] == [event.event_id] * 2


async def test_per_payment_order_holds_while_the_first_delivery_fails(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    name = _name()
    endpoint = await local_endpoint(pg, merchant.merchant_id, receiver.url(name))
    first = captured(merchant.merchant_id, "order-seq")
    second = refunded(merchant.merchant_id, "order-seq")
    other = captured(merchant.merchant_id, "order-other")  # another payment: not held back
    receiver.fail_event_ids.add(first.event_id)
    async with pg.acquire() as conn:
        for event in (first, second, other):
            await enqueue(conn, event, now=T0)

    await run(pg, http_client, T0)
    # Different payments have no order between them.
    assert {r.event_id for r in receiver.got(name)} == {first.event_id, other.event_id}
    held = await delivery(pg, second.event_id, endpoint.endpoint_id)
    assert (held.status, held.attempts) == ("pending", 0)

    # Retried and failing again: the second still waits, even long after it was due.
    retry_at = (await delivery(pg, first.event_id, endpoint.endpoint_id)).next_attempt_at
    await run(pg, http_client, retry_at)
    assert [r.event_id for r in receiver.got(name)][2:] == [first.event_id]

    receiver.fail_event_ids.discard(first.event_id)
    retry_at = (await delivery(pg, first.event_id, endpoint.endpoint_id)).next_attempt_at
    results = await run(pg, http_client, retry_at)
    # In one pass: the first is delivered, which releases the second.
    assert [r.event_id for r in results] == [first.event_id, second.event_id]
    assert [r.event_id for r in receiver.got(name)][3:] == [first.event_id, second.event_id]

    # A dead first delivery also releases the ones after it.
    third = captured(merchant.merchant_id, "order-seq-2")
    fourth = refunded(merchant.merchant_id, "order-seq-2")
    receiver.fail_event_ids.add(third.event_id)
    async with pg.acquire() as conn:
        await enqueue(conn, third, now=T0)
        await enqueue(conn, fourth, now=T0)
    results = await run(pg, http_client, T0, schedule=ONE_SHOT)
    assert [(r.event_id, r.outcome) for r in results] == [
        (third.event_id, "dead"),
        (fourth.event_id, "delivered"),
    ]


async def test_event_type_filters_choose_the_endpoints(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    async def endpoint(event_types: list[str]) -> str:
        created = await local_endpoint(
            pg, merchant.merchant_id, receiver.url(_name()), event_types=event_types
        )
        return created.endpoint_id

    everything = await endpoint(["*"])
    captures = await endpoint(["payment.captured"])
    refunds = await endpoint(["payment.refunded", "payment.voided"])
    for bad in (["payment.teleported"], [], ["*", "payment.captured"]):
        with pytest.raises(UnknownEventType):
            await endpoint(bad)

    capture = captured(merchant.merchant_id, "order-filter")
    refund = refunded(merchant.merchant_id, "order-filter")
    async with pg.acquire() as conn:
        assert await enqueue(conn, capture, now=T0) == 2
        assert await enqueue(conn, refund, now=T0) == 2
        rows = await conn.fetch(
            "SELECT event_id, endpoint_id FROM webhook_deliveries WHERE merchant_id = $1",
            merchant.merchant_id,
        )
    assert {(r["event_id"], r["endpoint_id"]) for r in rows} == {
        (capture.event_id, everything),
        (capture.event_id, captures),
        (refund.event_id, everything),
        (refund.event_id, refunds),
    }
    # Another merchant's event reaches none of these endpoints.
    async with pg.acquire() as conn:
        assert await enqueue(conn, captured("m_other_merchant", "order-filter"), now=T0) == 0


async def test_enqueueing_the_same_event_again_is_a_no_op(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    name = _name()
    endpoint = await local_endpoint(pg, merchant.merchant_id, receiver.url(name))
    event = captured(merchant.merchant_id, "order-dup")
    async with pg.acquire() as conn:
        assert await enqueue(conn, event, now=T0) == 1
        assert await enqueue(conn, event, now=T0 + timedelta(minutes=1)) == 0
    await run(pg, http_client, T0)
    async with pg.acquire() as conn:
        assert await enqueue(conn, event, now=T0 + timedelta(minutes=2)) == 0  # even delivered
        count = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE event_id = $1", event.event_id
        )
    assert count == 1
    assert [r.event_id for r in receiver.got(name)] == [event.event_id]
    stored = await delivery(pg, event.event_id, endpoint.endpoint_id)
    assert stored.status == "delivered"


async def test_url_is_checked_again_before_sending(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    """DNS rebinding: public at registration, private at send time -> nothing is sent."""
    answers = {"hooks.rebind.test": ip_address("93.184.216.34")}

    def resolver(host: str) -> list[IPAddress]:
        return [answers[host]]

    endpoint = await create_endpoint(
        pg,
        merchant_id=merchant.merchant_id,
        url="https://hooks.rebind.test/webhooks",
        event_types=["*"],
        resolver=resolver,
        now=T0,
    )
    answers["hooks.rebind.test"] = ip_address("169.254.169.254")
    event = captured(merchant.merchant_id, "order-rebind")
    async with pg.acquire() as conn:
        await enqueue(conn, event, now=T0)
    results = await deliver_due(
        pg,
        now=T0,
        rng=random.Random(1),
        http_client=http_client,
        resolver=resolver,
        schedule=COMPRESSED,
        concurrency=1,
    )
    [result] = results
    assert (result.outcome, result.status) == ("retry", None)
    assert result.error is not None and "link-local" in result.error
    stored = await delivery(pg, event.event_id, endpoint.endpoint_id)
    assert (stored.status, stored.attempts, stored.last_status) == ("pending", 1, None)


async def test_a_slow_receiver_times_out_and_is_retried(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    name = _name()
    receiver.delay_s[name] = 2.0
    endpoint = await local_endpoint(pg, merchant.merchant_id, receiver.url(name))
    event = captured(merchant.merchant_id, "order-slow")
    async with pg.acquire() as conn:
        await enqueue(conn, event, now=T0)
    started = time.monotonic()
    [result] = await deliver_due(
        pg,
        now=T0,
        rng=random.Random(3),
        http_client=http_client,
        resolver=loopback_resolver,
        schedule=COMPRESSED,
        allow_loopback=True,
        timeout_s=0.3,
    )
    assert time.monotonic() - started < 1.5
    assert (result.outcome, result.status) == ("retry", None)
    assert result.error is not None and "Timeout" in result.error
    stored = await delivery(pg, event.event_id, endpoint.endpoint_id)
    assert (stored.status, stored.attempts, stored.last_status) == ("pending", 1, None)
    assert stored.next_attempt_at >= T0 + timedelta(seconds=COMPRESSED.initial_delay_s)


async def test_concurrent_engines_send_each_event_once_and_in_payment_order(
    pg: asyncpg.Pool, merchant, receiver: Receiver, http_client: httpx.AsyncClient
) -> None:
    name = _name()
    receiver.delay_s[name] = 0.02
    await local_endpoint(pg, merchant.merchant_id, receiver.url(name))
    per_payment: dict[str, list[str]] = {}
    async with pg.acquire() as conn:
        for p in range(4):
            for _ in range(3):
                event = captured(merchant.merchant_id, f"order-conc-{p}")
                per_payment.setdefault(event.payment_id, []).append(event.event_id)
                await enqueue(conn, event, now=T0)

    async def engine(seed: int) -> list[AttemptResult]:
        return await deliver_due(
            pg,
            now=T0,
            rng=random.Random(seed),
            http_client=http_client,
            resolver=loopback_resolver,
            schedule=COMPRESSED,
            allow_loopback=True,
            concurrency=3,
        )

    passes = await asyncio.gather(engine(1), engine(2))
    results = [r for one in passes for r in one]
    assert len(results) == 12 and all(r.outcome == "delivered" for r in results)
    got = [r.event_id for r in receiver.got(name)]
    assert sorted(got) == sorted(e for ids in per_payment.values() for e in ids)  # each once
    for ids in per_payment.values():
        assert [e for e in got if e in ids] == ids
