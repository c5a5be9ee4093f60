"""Shared fixtures.

Tests marked ``integration`` use the real services that ``make test`` starts (``rizzpay stack
up``).  Each such test gets its own PostgreSQL database (a copy of a migrated template), its own
topic prefix and therefore its own topics and consumer group, and its own merchants, so tests
never see each other's data.  Unmarked tests get none of these fixtures' services.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.settings import ApiSettings
from models.config import REPO_ROOT, ServiceEndpoints
from tests.sandboxes import Listing, running_sandboxes, worker_env
from warehouse.merchants import create_merchant
from warehouse.migrate import migrate_postgres
from warehouse.topics import ensure_topics

# One template per pytest process, so concurrent test runs against one stack never drop each
# other's template.
TEMPLATE_DB = f"rizzpay_test_template_{os.getpid()}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath) and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def endpoints() -> ServiceEndpoints:
    return ServiceEndpoints()


def _with_database(dsn: str, database: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
async def pg_template(endpoints: ServiceEndpoints) -> AsyncIterator[str]:
    """A database migrated once per session, copied for each test, dropped at the end."""
    try:
        conn = await asyncpg.connect(endpoints.pg_dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at the configured DSN is unreachable ({exc}); run `make up`")
    try:
        await drop_database(conn, TEMPLATE_DB)
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await conn.close()
    await migrate_postgres(_with_database(endpoints.pg_dsn, TEMPLATE_DB))
    yield TEMPLATE_DB
    conn = await asyncpg.connect(endpoints.pg_dsn)
    try:
        await drop_database(conn, TEMPLATE_DB)
    finally:
        await conn.close()


async def drop_database(conn: asyncpg.Connection, name: str) -> None:
    """Drop ``name``, ending the test's own leftover connections.  ``WITH (FORCE)`` is refused
    while an autovacuum worker (a superuser process our role may not signal) is in that
    database; a plain DROP cancels autovacuum itself, so that is the fallback, and leftover
    connections are ended by a retry of FORCE once autovacuum has gone."""
    for _ in range(10):
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            return
        except asyncpg.InsufficientPrivilegeError:
            with contextlib.suppress(asyncpg.ObjectInUseError):
                await conn.execute(f"DROP DATABASE IF EXISTS {name}")
                return
            await asyncio.sleep(0.5)
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def pg_dsn(endpoints: ServiceEndpoints, pg_template: str) -> AsyncIterator[str]:
    name = f"rizzpay_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(endpoints.pg_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    finally:
        await conn.close()
    yield _with_database(endpoints.pg_dsn, name)
    conn = await asyncpg.connect(endpoints.pg_dsn)
    try:
        await drop_database(conn, name)
    finally:
        await conn.close()


@pytest.fixture
async def pg(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def topic_prefix(endpoints: ServiceEndpoints) -> str:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(endpoints.kafka_bootstrap, prefix)
    return prefix


@dataclass
class Merchant:
    merchant_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
async def merchant(pg: asyncpg.Pool) -> Merchant:
    merchant_id = f"m_{uuid.uuid4().hex[:10]}"
    key = await create_merchant(pg, merchant_id, "Test Merchant Pvt Ltd", "27")
    return Merchant(merchant_id, key)


@pytest.fixture
def api_settings(endpoints: ServiceEndpoints, pg_dsn: str, topic_prefix: str) -> ApiSettings:
    return ApiSettings(pg_dsn=pg_dsn, topic_prefix=topic_prefix, publish_timeout_ms=3000)


@pytest.fixture
async def api(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (lifespan and all) behind an in-process HTTP client."""
    app: FastAPI = create_app(api_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rizzpay.test") as client:
            yield client


class WorkerProcess:
    """``rizzpay worker`` as a real OS process, so a test can SIGKILL it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"],
            cwd=REPO_ROOT,
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def ensure_running(self) -> bool:
        """Restart the worker if it exited, as its supervisor (Kubernetes, compose) would.
        Returns whether a restart was needed."""
        if self.proc is not None and self.proc.poll() is None:
            return False
        self.start()
        return True

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def processor_sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listing]:
    """The processors' sandboxes (``rizzpay sandbox serve``) the ``worker`` charges through,
    one set per test session.  A test that sets faults overrides this fixture with its own."""
    with running_sandboxes(tmp_path_factory.mktemp("sandboxes") / "sandbox.log") as listing:
        yield listing


def worker_base_env(pg_dsn: str, topic_prefix: str) -> dict[str, str]:
    """A test worker's environment: this test's database and topics, none of the developer's
    own ``RIZZPAY_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIZZPAY_")}
    env.update(
        RIZZPAY_PG_DSN=pg_dsn,
        RIZZPAY_TOPIC_PREFIX=topic_prefix,
        RIZZPAY_KAFKA_BOOTSTRAP=ServiceEndpoints().kafka_bootstrap,
        RIZZPAY_LOG_LEVEL=os.environ.get("RIZZPAY_TEST_WORKER_LOG_LEVEL", "warning"),
    )
    return env


@pytest.fixture
def worker(
    pg_dsn: str, topic_prefix: str, tmp_path: Path, processor_sandboxes: Listing
) -> Iterator[WorkerProcess]:
    """A real worker that authorizes through the processors' sandboxes."""
    env = worker_base_env(pg_dsn, topic_prefix) | worker_env(processor_sandboxes)
    process = WorkerProcess(env, tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


async def wait_for(
    probe: Any, *, timeout_s: float, interval_s: float = 0.2, what: str = "condition"
) -> Any:
    """Poll the async ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {value!r})")
        await asyncio.sleep(interval_s)
