"""Run the sandboxes: each provider's app on its own loopback port, behind an *edge*.

Each sandbox has two ports:

* the **API port** (``url``): a small TCP edge that forwards bytes to the app.  It is what
  connectors call and what fault mode ``down`` takes away: the edge stops listening (new
  connections are refused) and drops the connections it carries, like a crashed provider.
* the **admin port** (``admin_url``): the app itself, always reachable, so ``/__sandbox/faults``
  can bring a ``down`` sandbox back and ``/__sandbox/ledger`` can be read at any time.

``rizzpay sandbox serve`` (``cli/sandbox.py``) and the integration tests use
:func:`serve_sandboxes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from sandbox import PROVIDERS, SandboxProvider, bank, payu, razorpay, stripe
from sandbox.core import SandboxSettings, SandboxState
from sandbox.faults import FaultMode

AppFactory = Callable[[SandboxSettings], FastAPI]
APP_FACTORIES: Mapping[SandboxProvider, AppFactory] = {
    "razorpay": razorpay.create_app,
    "payu": payu.create_app,
    "stripe": stripe.create_app,
    "bank": bank.create_app,
}

# Bytes read per chunk by the edge; requests and answers are a few KiB.
EDGE_CHUNK_BYTES = 64 * 1024
# A stopping sandbox waits this long for requests in progress (held "timeout" faults are
# cancelled after it).
GRACEFUL_SHUTDOWN_S = 1


class Edge:
    """A TCP forwarder in front of one app; ``down`` closes it."""

    def __init__(self, host: str, port: int, backend_host: str, backend_port: int) -> None:
        self.host = host
        self.port = port
        self._backend = (backend_host, backend_port)
        self._server: asyncio.Server | None = None
        # (client side, app side) of every connection being forwarded, to drop them on "down".
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def open(self) -> None:
        """Start listening (again, on the same port after a ``down``)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every connection in flight."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client, backend in list(self._pairs):
            client.transport.abort()
            backend.transport.abort()
        self._pairs.clear()
        if server is not None:
            await server.wait_closed()

    async def apply_mode(self, mode: FaultMode) -> None:
        if mode == "down":
            await self.close()
        else:
            await self.open()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward one client connection to the app until either side closes."""
        if self._server is None:
            writer.transport.abort()
            return
        try:
            backend_reader, backend_writer = await asyncio.open_connection(*self._backend)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, backend_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(_pipe(reader, backend_writer), _pipe(backend_reader, writer))
        finally:
            self._pairs.discard(pair)
            writer.transport.abort()
            backend_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(EDGE_CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if not writer.transport.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the process runs several servers and handles
    signals once itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    provider: SandboxProvider
    url: str
    admin_url: str
    state: SandboxState


class SandboxServer:
    """One provider sandbox: its app on the admin port, the edge on the API port."""

    def __init__(
        self,
        provider: SandboxProvider,
        settings: SandboxSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.provider = provider
        self.app = APP_FACTORIES[provider](settings)
        self.state: SandboxState = self.app.state.sandbox
        self.host = host
        self._admin_port = admin_port
        self._edge: Edge | None = None
        self._port = port
        self._log_level = log_level
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> RunningSandbox:
        # IPPROTO_TCP explicitly: asyncio disables Nagle only on sockets that name it, and with
        # Nagle on, a response written in two parts waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._admin_port))
        sock.listen(128)
        sock.setblocking(False)
        admin_port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self._log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            timeout_keep_alive=5,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
                raise RuntimeError(f"{self.provider} sandbox stopped during startup")
            await asyncio.sleep(0.01)
        self._edge = Edge(self.host, self._port, self.host, admin_port)
        await self._edge.open()
        self.state.public_url = self._edge.url
        self.state.faults.mode_hooks.append(self._edge.apply_mode)
        return RunningSandbox(
            self.provider, self._edge.url, f"http://{self.host}:{admin_port}", self.state
        )

    async def stop(self) -> None:
        if self._edge is not None:
            await self._edge.close()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task


def ports_for(
    providers: Iterable[SandboxProvider], port: int, admin_port: int | None
) -> dict[SandboxProvider, tuple[int, int]]:
    """(API port, admin port) per provider: consecutive from ``port`` in ``PROVIDERS`` order
    (so razorpay keeps its port whichever others run), admin ports from ``admin_port``
    (default ``port + 100``).  Port 0 means any free port, for every provider."""
    if admin_port is None:
        admin_port = 0 if port == 0 else port + 100
    result: dict[SandboxProvider, tuple[int, int]] = {}
    for provider in providers:
        index = PROVIDERS.index(provider)
        result[provider] = (
            0 if port == 0 else port + index,
            0 if admin_port == 0 else admin_port + index,
        )
    return result


@contextlib.asynccontextmanager
async def serve_sandboxes(
    providers: Iterable[SandboxProvider],
    settings: SandboxSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    admin_port: int | None = None,
    log_level: str = "warning",
) -> AsyncIterator[dict[SandboxProvider, RunningSandbox]]:
    """Start the sandboxes of ``providers`` in the running event loop; stop them on exit."""
    servers: list[SandboxServer] = []
    running: dict[SandboxProvider, RunningSandbox] = {}
    try:
        for provider, (api, admin) in ports_for(providers, port, admin_port).items():
            server = SandboxServer(
                provider, settings, host=host, port=api, admin_port=admin, log_level=log_level
            )
            servers.append(server)
            running[provider] = await server.start()
        yield running
    finally:
        await asyncio.gather(*(s.stop() for s in servers), return_exceptions=True)
