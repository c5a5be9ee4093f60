"""The HTTP layer every connector shares: one configured ``httpx.AsyncClient`` per provider,
timeouts on every phase, bounded retries that respect idempotency, and the circuit breaker.

What a failed attempt means
---------------------------
* **not sent**: ``ConnectError``/``ConnectTimeout`` (no TCP connection, so no request bytes
  left us), ``PoolTimeout`` (no connection was free), ``429`` (rate limited: the provider did
  not process it), or the breaker refused.  Repeating it is always safe.
* **ambiguous**: the request may have reached the provider and been processed, but no answer
  says how: read/write timeouts, a connection dropped mid-exchange, a ``5xx``.  Repeating it is
  safe only when the call is idempotent at the provider; callers say so per call with
  ``idempotent=`` (see each connector's table).

Any other answer (2xx, 3xx, 4xx) is the provider's answer and is returned for the connector to
interpret.  A call is retried at most ``attempts_max`` times in total and never beyond
``call_deadline_s``; the error a caller finally sees is *ambiguous* if any attempt was, even if
the last attempt was merely refused a connection, because an earlier one may have been
processed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

import httpx

from streams.connectors.breaker import CircuitBreaker

if TYPE_CHECKING:
    # base.py imports CallFailed from here; the provider names are only annotations here.
    from streams.connectors.base import ProviderName

FailureKind = Literal["not_sent", "ambiguous"]


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Timeouts (seconds), pool sizes and the retry budget of one provider's client.

    Processors answer card authorizations in 1-3 s; ``read_timeout_s`` leaves room for a slow
    issuer without holding an agent for long.  ``keepalive_expiry_s`` is below common server
    keep-alive timeouts (uvicorn's is 5 s) so we never reuse a connection the server is closing,
    which would turn a healthy call into an ambiguous one.
    """

    connect_timeout_s: float = 1.0
    read_timeout_s: float = 5.0
    write_timeout_s: float = 2.0
    pool_timeout_s: float = 1.0
    connections_max: int = 64
    keepalive_connections_max: int = 32
    keepalive_expiry_s: float = 2.0
    attempts_max: int = 3
    backoff_s_initial: float = 0.05
    backoff_s_max: float = 1.0
    call_deadline_s: float = 15.0

    def __post_init__(self) -> None:
        if self.attempts_max < 1:
            raise ValueError("attempts_max must be at least 1")

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout_s,
            read=self.read_timeout_s,
            write=self.write_timeout_s,
            pool=self.pool_timeout_s,
        )


def make_client(
    base_url: str,
    settings: HttpSettings,
    *,
    auth: httpx.Auth | tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """A client for one provider.  Redirects are never followed (a provider's redirect is an
    instruction for the customer's browser, not for us) and proxies are not read from the
    environment (settings come from the entry point only)."""
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        headers=dict(headers or {}),
        timeout=settings.timeout,
        limits=httpx.Limits(
            max_connections=settings.connections_max,
            max_keepalive_connections=settings.keepalive_connections_max,
            keepalive_expiry=settings.keepalive_expiry_s,
        ),
        follow_redirects=False,
        trust_env=False,
        transport=transport,
    )


class CallFailed(Exception):
    """No usable answer.  ``kind`` says whether the request may have been processed."""

    def __init__(
        self, kind: FailureKind, code: str, message: str, status_code: int | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code
        self.message = message
        self.status_code = status_code

    @property
    def maybe_delivered(self) -> bool:
        return self.kind == "ambiguous"


class ProviderHttp:
    """One provider's client with its breaker and retry policy."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        breaker: CircuitBreaker,
        settings: HttpSettings,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.settings = settings
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._sleep = sleep
        self._clock = clock

    async def request(  # noqa: PLR0912 (one branch per failure kind)
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one logical call; return the provider's answer (any status below 500 except
        429) or raise :class:`CallFailed`.

        ``idempotent``: repeating this exact request cannot do anything twice at the provider
        (a GET, or a POST the provider deduplicates by a key it carries).  Only then are
        ambiguous failures retried; not-sent failures are retried either way.
        """
        deadline = self._clock() + self.settings.call_deadline_s
        maybe_delivered = False
        last: CallFailed | None = None
        for attempt in range(1, self.settings.attempts_max + 1):
            permit = self.breaker.try_acquire()
            if permit is None:
                last = CallFailed(
                    "not_sent", "breaker_open", f"{self.breaker.name} circuit breaker is open"
                )
                break  # an open breaker stays open for longer than any backoff
            try:
                response = await self.client.request(
                    method, path, params=params, json=json, data=data, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                permit.failure()
                last = CallFailed("not_sent", "connect_failed", _describe(exc))
            except httpx.PoolTimeout as exc:
                permit.release()  # our pool is exhausted: says nothing about the provider
                last = CallFailed("not_sent", "pool_exhausted", _describe(exc))
            except httpx.TransportError as exc:
                permit.failure()
                maybe_delivered = True
                code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_lost"
                last = CallFailed("ambiguous", code, _describe(exc))
                if not idempotent:
                    break
            else:
                status = response.status_code
                if status >= 500:
                    permit.failure()
                    maybe_delivered = True
                    last = CallFailed(
                        "ambiguous", f"http_{status}", _snippet(response), status_code=status
                    )
                    if not idempotent:
                        break
                elif status == 429:
                    permit.release()
                    last = CallFailed(
                        "not_sent", "rate_limited", _snippet(response), status_code=status
                    )
                else:
                    permit.success()
                    return response
            if attempt == self.settings.attempts_max:
                break
            delay_s = self._backoff_s(attempt)
            if self._clock() + delay_s >= deadline:
                break
            await self._sleep(delay_s)
        assert last is not None
        if maybe_delivered and last.kind == "not_sent":
            last = CallFailed("ambiguous", last.code, last.message, last.status_code)
        raise last

    def _backoff_s(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        cap = min(
            self.settings.backoff_s_max, self.settings.backoff_s_initial * 2.0 ** (attempt - 1)
        )
        return cap / 2 + self._rng.uniform(0, cap / 2)

    async def aclose(self) -> None:
        await self.client.aclose()


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response's JSON object, or ``None`` if the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _snippet(response: httpx.Response) -> str:
    return response.text[:200]


class HttpOptions(TypedDict, total=False):
    """How a connector reaches its provider, apart from the URL and credentials: the client's
    timeouts and retry budget (default :class:`HttpSettings`), the breaker (default: a fresh
    one named after the provider) and, for tests, the transport."""

    http_settings: HttpSettings | None
    breaker: CircuitBreaker | None
    transport: httpx.AsyncBaseTransport | None


class HttpConnector:
    """What every HTTP connector shares: its provider's name, the client built from the entry
    point's settings (credentials go in as ``auth`` or ``headers``), the circuit breaker guarding
    its calls, and closing the client.  Each connector's constructor takes its credentials and
    passes :class:`HttpOptions` through unchanged."""

    def __init__(
        self,
        name: ProviderName,
        base_url: str,
        *,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Unpack[HttpOptions],
    ) -> None:
        settings = options.get("http_settings") or HttpSettings()
        breaker = options.get("breaker") or CircuitBreaker(name)
        client = make_client(
            base_url, settings, auth=auth, headers=headers, transport=options.get("transport")
        )
        self._name: ProviderName = name
        self._http = ProviderHttp(client, breaker, settings)

    @property
    def name(self) -> ProviderName:
        return self._name

    @property
    def breaker(self) -> CircuitBreaker:
        return self._http.breaker

    async def aclose(self) -> None:
        await self._http.aclose()
