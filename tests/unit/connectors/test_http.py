"""The shared HTTP layer's retry policy, against scripted transports (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from streams.connectors.breaker import BreakerConfig, BreakerState, CircuitBreaker
from streams.connectors.http import CallFailed, HttpSettings, ProviderHttp, make_client

Step = Callable[[httpx.Request], httpx.Response]


def answer(status: int) -> Step:
    return lambda request: httpx.Response(status, json={"status": status})


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def time_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


def drop(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("server disconnected", request=request)


class Harness:
    """A ProviderHttp whose transport plays ``steps`` in order and whose sleeps are recorded."""

    def __init__(self, steps: list[Step], settings: HttpSettings | None = None) -> None:
        self.steps = steps
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.now_s = 0.0
        self.breaker = CircuitBreaker(
            "p", BreakerConfig(failures_consecutive_max=10), clock=lambda: self.now_s
        )
        self.settings = settings or HttpSettings(attempts_max=3)
        client = make_client(
            "http://provider.test", self.settings, transport=httpx.MockTransport(self._handle)
        )
        self.http = ProviderHttp(
            client, self.breaker, self.settings, sleep=self._sleep, clock=lambda: self.now_s
        )

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.steps.pop(0)(request)

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds

    def call(self, *, idempotent: bool, method: str = "POST") -> httpx.Response:
        async def go() -> httpx.Response:
            try:
                return await self.http.request(method, "/x", idempotent=idempotent)
            finally:
                await self.http.aclose()

        return asyncio.run(go())


def test_idempotent_calls_are_retried_after_5xx_and_timeouts() -> None:
    h = Harness([answer(502), time_out, answer(200)])
    assert h.call(idempotent=True).status_code == 200
    assert len(h.requests) == 3 and len(h.sleeps) == 2


def test_non_idempotent_calls_are_not_repeated_after_an_ambiguous_failure() -> None:
    for failure in (answer(500), time_out, drop):
        h = Harness([failure, answer(200)])
        with pytest.raises(CallFailed) as failed:
            h.call(idempotent=False)
        assert failed.value.kind == "ambiguous" and failed.value.maybe_delivered
        assert len(h.requests) == 1


def test_refused_connections_are_retried_even_for_non_idempotent_calls() -> None:
    h = Harness([refuse, refuse, answer(201)])
    assert h.call(idempotent=False).status_code == 201
    assert len(h.requests) == 3


def test_an_earlier_ambiguous_attempt_makes_the_whole_call_ambiguous() -> None:
    h = Harness([time_out, refuse, refuse])
    with pytest.raises(CallFailed) as failed:
        h.call(idempotent=True)
    assert failed.value.kind == "ambiguous" and failed.value.code == "connect_failed"


def test_only_refusals_leave_the_call_not_sent() -> None:
    h = Harness([refuse, refuse, refuse])
    with pytest.raises(CallFailed) as failed:
        h.call(idempotent=False)
    assert failed.value.kind == "not_sent"


def test_client_errors_are_answers_not_failures() -> None:
    h = Harness([answer(402)])
    assert h.call(idempotent=False).status_code == 402
    assert len(h.requests) == 1 and h.breaker.failure_rate() == 0.0


def test_rate_limiting_is_retried_and_does_not_count_against_the_provider() -> None:
    h = Harness([answer(429), answer(200)])
    assert h.call(idempotent=False).status_code == 200
    assert h.breaker.failure_rate() == 0.0


def test_an_open_breaker_sends_nothing() -> None:
    h = Harness([answer(200)])
    for _ in range(10):
        h.breaker.acquire().failure()
    assert h.breaker.state is BreakerState.OPEN
    with pytest.raises(CallFailed) as failed:
        h.call(idempotent=True)
    assert failed.value.code == "breaker_open" and failed.value.kind == "not_sent"
    assert h.requests == []


def test_failures_feed_the_breaker() -> None:
    h = Harness([answer(503)] * 3)
    with pytest.raises(CallFailed):
        h.call(idempotent=True, method="GET")
    assert h.breaker.failure_rate() == 1.0


def test_retries_stop_at_the_call_deadline() -> None:
    settings = HttpSettings(
        attempts_max=10, backoff_s_initial=1.0, backoff_s_max=1.0, call_deadline_s=2.0
    )
    h = Harness([answer(500)] * 10, settings)
    with pytest.raises(CallFailed):
        h.call(idempotent=True)
    assert sum(h.sleeps) < 2.0 and len(h.requests) < 10


def test_backoff_grows_and_is_capped() -> None:
    settings = HttpSettings(attempts_max=6, backoff_s_initial=0.1, backoff_s_max=0.4)
    h = Harness([answer(500)] * 6, settings)
    with pytest.raises(CallFailed):
        h.call(idempotent=True)
    caps = [0.1, 0.2, 0.4, 0.4, 0.4]
    assert all(cap / 2 <= slept <= cap for slept, cap in zip(h.sleeps, caps, strict=True))


def test_clients_never_follow_redirects() -> None:
    h = Harness([lambda request: httpx.Response(303, headers={"location": "http://elsewhere"})])
    assert h.call(idempotent=True, method="GET").status_code == 303
    assert len(h.requests) == 1
