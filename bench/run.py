"""``make bench``: the foundation benchmark, measured in one run on this machine.

What it measures, each repeated ``--reps`` times (median, min and max reported):

1. **Intake**: payments/s accepted (``POST /v1/payments`` answered 202) and the request latency
   p50/p99, with ``wrk`` as the load generator (closed loop, ``--concurrency`` connections).
2. **End to end**: payments/s carried to the ledger, from the launch of the load generator until
   the last accepted payment's row exists in PostgreSQL (``max(payments.decided_at)``).
3. **Accept-to-ledger latency** p50/p99: ``payments.decided_at`` (``clock_timestamp()`` at
   insert) minus ``payments.requested_at`` (stamped by the API), per accepted payment.
4. **Baseline A**: a bare FastAPI JSON echo (``bench/echo_app.py``) served with the intake's
   uvicorn settings and hit by the same wrk script and concurrency; ratio = intake / echo.
5. **Baseline B**: a raw confluent-kafka loop that consumes the very PaymentRequested messages
   the intake published and produces each to another topic (idempotent producer, acks=all,
   offsets committed after every acknowledged batch), over as many messages as that repetition
   accepted; ratio = end to end / loop.

Beside them, because the intake is the slower stage on a small machine: accept-to-ledger latency
at **light load** (1 connection), and the **worker alone** clearing a backlog that the intake
built while the worker was paused (SIGSTOP / SIGCONT); ratio = worker alone / loop.  Every phase
records the load average before it and the CPU each process used during it (``/proc``), including
how much went to other processes on the machine.

Everything runs against the local stack (started if it is down) but in a fresh PostgreSQL
database and a fresh topic prefix, with its own API, worker and echo processes on their own
ports; at the end the processes are stopped, the database dropped and the bench's keys removed
from Redis (topics stay).

Run it with the project's virtual environment (from any directory), which has the project
installed in editable mode (so the script needs no ``sys.path`` changes)::

    .venv/bin/python bench/run.py            # what ``make bench`` runs
    .venv/bin/python bench/run.py --reps 1 --duration-s 4   # a quick look

It writes ``bench/results/<YYYY-MM-DD>-foundation.json`` and ``.md`` (UTC date).  Units are the
last part of every name: ``_s`` seconds, ``_ms`` milliseconds, ``_per_s`` per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import confluent_kafka
import orjson
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # exported, not in __all__
    AdminClient,
    NewTopic,
)

from api.loadgen import MerchantKey, plan_payments
from deploy.processes import start_app, stop_app, wait_http_ok
from deploy.stack import StackSettings, kafka_pid, load_settings, redis_pid, stack_up
from models.ids import payment_id_for
from models.topics import PAYMENTS_REQUESTED
from warehouse.merchants import create_merchant
from warehouse.migrate import migrate_all
from warehouse.payments import count_recorded

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
WRK_SCRIPT = BENCH_DIR / "wrk_payments.lua"
ECHO_APP = BENCH_DIR / "echo_app.py"
BENCH_NAME = "foundation"
# The bench's own process names under <home>/run and <home>/logs, apart from the demo's.
API_NAME, WORKER_NAME, ECHO_NAME = "bench-api", "bench-worker", "bench-echo"
# Baseline B's output topic: bench scaffolding, not part of the topic registry.
KAFKA_LOOP_TOPIC = "bench.kafka-loop"
# A request slower than this counts as a wrk timeout error (the default 2 s is too tight for a
# first rebalance or a GC pause to be told apart from a hang).
WRK_TIMEOUT_S = 10
# The pool of distinct request bodies cycled through; every request still gets a fresh key.
BODY_POOL_SIZE = 1000
SERVICE_START_TIMEOUT_S = 60.0
LEDGER_POLL_INTERVAL_S = 0.25
# Keys per Redis SCAN step and per UNLINK when the bench cleans up after itself.
REDIS_SCAN_COUNT = 1000
# Baseline B moves a few thousand messages in well under a second; this only catches a hang.
KAFKA_LOOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BenchConfig:
    """How hard and how long to push.  Defaults keep the whole run under about 5 minutes."""

    reps: int = 5
    duration_s: int = 8
    warmup_s: int = 2
    concurrency: int = 32
    # A light load, far below saturation, shows the pipeline's own accept-to-ledger latency.
    light_connections: int = 1
    light_duration_s: int = 4
    wrk_threads: int = 1
    api_port: int = 18400  # clear of the sandboxes (18100-18103, admin 18200-18203)
    echo_port: int = 18401
    merchants: int = 6
    settle_timeout_s: float = 120.0
    kafka_batch_max: int = 500
    seed: int = 7
    out_dir: Path = RESULTS_DIR


@dataclass(frozen=True)
class System:
    """The system under test, running: where to reach it and which processes are whose."""

    settings: StackSettings
    run_hex: str
    db_name: str
    db_dsn: str
    topic_prefix: str
    pool_file: Path
    work_dir: Path
    pids: Mapping[str, int]

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/v1/payments"


# ---------------------------------------------------------------------------------------------
# Machine facts


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)  # the file says kB
    return 0.0


def _kafka_version(settings: StackSettings) -> str:
    """The running broker's version, read from the jars on its class path."""
    pid = kafka_pid(settings)
    if pid is not None:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        for arg in args:
            if arg.endswith(b"/lib/*"):
                jars = sorted(Path(arg[:-1].decode()).glob("kafka-server-*.jar"))
                if jars:
                    return jars[0].stem.removeprefix("kafka-server-")
    return f"{settings.kafka_version} (configured; broker not managed here)"


async def _pg_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


def _redis_version(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        info: dict[str, Any] = client.info("server")
        return str(info.get("redis_version", "unknown"))
    finally:
        client.close()


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].split(" Copyright")[0]


def machine_facts(settings: StackSettings) -> dict[str, Any]:
    """What this machine is and which versions ran, for the results header."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "ram_gib": _ram_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kafka": _kafka_version(settings),
        "librdkafka": confluent_kafka.libversion()[0],
        "postgresql": asyncio.run(_pg_version(settings.pg_dsn)),
        "redis": _redis_version(settings.redis_url),
        "fastapi": importlib.metadata.version("fastapi"),
        "uvicorn": importlib.metadata.version("uvicorn"),
        "faust_streaming": importlib.metadata.version("faust-streaming"),
        "wrk": _wrk_version(),
    }


def ensure_wrk() -> str:
    """The path of ``wrk``, installed from Debian when missing (as the stack installs Redis)."""
    found = shutil.which("wrk")
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit("bench: wrk is missing; install it with: sudo apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("bench: installing wrk with apt-get ...", flush=True)
    subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=True)
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("bench: wrk still missing after apt-get install wrk")
    return found


# ---------------------------------------------------------------------------------------------
# CPU accounting: where the cycles went, per process, during a phase


def _clock_ticks_per_s() -> int:
    return os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds that ``pid`` has used so far, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may contain spaces
    return (int(fields[11]) + int(fields[12])) / _clock_ticks_per_s()


def _pg_backend_pids(db_name: str) -> list[int]:
    """PostgreSQL backends serving ``db_name`` (their process title names the database)."""
    marker = f" {db_name} ".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and marker in title:
            pids.append(int(entry.name))
    return pids


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine since boot, all CPUs summed."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    ticks = _clock_ticks_per_s()
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by each process of interest (pid -> role, seconds) and by the
    whole machine, at monotonic time ``at_s``."""

    at_s: float
    machine_busy_s: float
    machine_steal_s: float
    processes: dict[int, tuple[str, float]]


def cpu_snapshot(system: System) -> CpuSnapshot:
    labelled = [(name, pid) for name, pid in system.pids.items()]
    labelled += [("postgres", pid) for pid in _pg_backend_pids(system.db_name)]
    labelled.append(("bench", os.getpid()))
    processes: dict[int, tuple[str, float]] = {}
    for name, pid in labelled:
        cpu_s = process_cpu_s(pid)
        if cpu_s is not None:
            processes[pid] = (name, cpu_s)
    busy_s, steal_s = _machine_cpu_s()
    return CpuSnapshot(time.monotonic(), busy_s, steal_s, processes)


@dataclass(frozen=True)
class CpuFigures:
    """Where the CPU went during a phase.  ``ms_per_item`` is CPU milliseconds per request,
    payment or message, by process role; ``others`` is every other process on the machine.
    The ``_cores`` figures are averages over the phase's wall time."""

    ms_per_item: dict[str, float]
    busy_cores: float
    others_cores: float
    steal_cores: float


def cpu_figures(
    before: CpuSnapshot, after: CpuSnapshot, items: int, extra_s: Mapping[str, float]
) -> CpuFigures:
    """CPU used between two snapshots, plus ``extra_s`` (role -> seconds) measured apart, such
    as wrk's own CPU time."""
    used_s: dict[str, float] = dict(extra_s)
    for pid, (name, cpu_s) in after.processes.items():
        start_s = before.processes[pid][1] if pid in before.processes else 0.0
        used_s[name] = used_s.get(name, 0.0) + cpu_s - start_s
    busy_s = after.machine_busy_s - before.machine_busy_s
    used_s["others"] = max(busy_s - sum(used_s.values()), 0.0)
    wall_s = max(after.at_s - before.at_s, 1e-9)
    per_item = max(items, 1)
    return CpuFigures(
        ms_per_item={name: round(1000 * s / per_item, 3) for name, s in sorted(used_s.items())},
        busy_cores=round(busy_s / wall_s, 2),
        others_cores=round(used_s["others"] / wall_s, 2),
        steal_cores=round((after.machine_steal_s - before.machine_steal_s) / wall_s, 2),
    )


# ---------------------------------------------------------------------------------------------
# The system under test


def database_dsn(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database on the same server, same credentials."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # name is ours: a fixed prefix + hex
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def create_merchants(dsn: str, run_hex: str, count: int) -> list[MerchantKey]:
    """``count`` fresh merchants (ids unique to this run, so Redis keys never collide)."""
    states = ("27", "29", "07", "06", "36", "33")
    conn = await asyncpg.connect(dsn)
    try:
        keys = []
        for i in range(count):
            merchant_id = f"bench_{run_hex}_{i}"
            state = states[i % len(states)]
            api_key = await create_merchant(conn, merchant_id, f"Bench Merchant {i}", state)
            keys.append(MerchantKey(merchant_id, api_key))
        return keys
    finally:
        await conn.close()


def forget_redis_keys(redis_url: str, run_hex: str) -> int:
    """Delete what the bench's API left in the shared Redis: the idempotency records of the
    run's merchants and the accepted-payment cache entries they name (both live 24 h).
    Returns how many keys were deleted."""
    client = redis.Redis.from_url(redis_url)
    deleted = 0
    try:
        batch: list[str] = []
        for raw in client.scan_iter(match=f"idem:bench_{run_hex}_*", count=REDIS_SCAN_COUNT):
            merchant_id, _, idempotency_key = raw.decode().removeprefix("idem:").partition(":")
            batch += [raw.decode(), f"accepted:{payment_id_for(merchant_id, idempotency_key)}"]
            if len(batch) >= REDIS_SCAN_COUNT:
                deleted += int(client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(client.unlink(*batch))
    finally:
        client.close()
    return deleted


def write_body_pool(path: Path, merchants: Sequence[MerchantKey], *, seed: int) -> None:
    """Realistic request bodies for wrk: ``<api key>\\t<json>`` lines (see wrk_payments.lua)."""
    planned = plan_payments(merchants, BODY_POOL_SIZE, seed=seed, run_id="pool")
    lines = [f"{p.merchant.api_key}\t{orjson.dumps(p.body).decode()}\n" for p in planned]
    path.write_text("".join(lines))


def create_loop_topic(bootstrap: str, name: str) -> None:
    """Baseline B's output topic, shaped like the requested-payments topic."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    spec = NewTopic(
        name,
        num_partitions=PAYMENTS_REQUESTED.partitions,
        replication_factor=-1,
        config=dict(PAYMENTS_REQUESTED.config),
    )
    for future in admin.create_topics([spec], request_timeout=30).values():
        future.result()


def start_echo(home: Path, port: int) -> int:
    """Start baseline A's server detached, with a pid file that ``stop_app`` understands."""
    stop_app(home, ECHO_NAME)  # a leftover from an interrupted run would hold the port
    (home / "run").mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    with (home / "logs" / f"{ECHO_NAME}.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ECHO_APP), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (home / "run" / f"{ECHO_NAME}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def start_rizzpay(system_env: Mapping[str, str], home: Path, api_port: int) -> dict[str, int]:
    """Start the bench's own API and worker; returns their pids."""
    for name in (API_NAME, WORKER_NAME):
        stop_app(home, name)  # leftovers from an interrupted run point at a dropped database
    api_args = ["api", "--host", "127.0.0.1", "--port", str(api_port)]
    return {
        "api": start_app(home, API_NAME, api_args, system_env),
        "worker": start_app(home, WORKER_NAME, ["worker"], system_env),
    }


@contextlib.contextmanager
def system_under_test(settings: StackSettings, config: BenchConfig) -> Iterator[System]:
    """A fresh database, topic prefix, merchants, API, worker and echo; all removed on exit
    except the topics."""
    run_hex = secrets.token_hex(4)
    db_name = f"rizzpay_bench_{run_hex}"
    db_dsn = database_dsn(settings.pg_dsn, db_name)
    prefix = f"bench{run_hex}."
    home = settings.home
    with (
        tempfile.TemporaryDirectory(prefix="rizzpay-bench-") as tmp,
        contextlib.ExitStack() as on_exit,
    ):
        work_dir = Path(tmp)
        asyncio.run(create_database(settings.pg_dsn, db_name))
        on_exit.callback(lambda: asyncio.run(drop_database(settings.pg_dsn, db_name)))
        on_exit.callback(forget_redis_keys, settings.redis_url, run_hex)
        migrate_all(db_dsn, None, settings.kafka_bootstrap, prefix)
        create_loop_topic(settings.kafka_bootstrap, f"{prefix}{KAFKA_LOOP_TOPIC}")
        merchants = asyncio.run(create_merchants(db_dsn, run_hex, config.merchants))
        pool_file = work_dir / "bodies.tsv"
        write_body_pool(pool_file, merchants, seed=config.seed)
        env = {
            **os.environ,
            "RIZZPAY_PG_DSN": db_dsn,
            "RIZZPAY_TOPIC_PREFIX": prefix,
            "RIZZPAY_LOG_LEVEL": "warning",
            # The bench measures RizzPay's own pipeline against the same baselines as before;
            # the processor sandboxes' latency is configured, not ours to measure.
            "RIZZPAY_AUTHORIZER": "rules",
            "FAUST_DATADIR": str(work_dir / "faust-data"),  # not the repository root
        }
        for name in (API_NAME, WORKER_NAME, ECHO_NAME):
            on_exit.callback(stop_app, home, name)
        pids = start_rizzpay(env, home, config.api_port)
        pids["echo"] = start_echo(home, config.echo_port)
        for port, name in ((config.api_port, "api"), (config.echo_port, "echo")):
            health = f"http://127.0.0.1:{port}/healthz"
            wait_http_ok(health, timeout_s=SERVICE_START_TIMEOUT_S, pid=pids[name])
        for name, pid in (("kafka", kafka_pid(settings)), ("redis", redis_pid(settings))):
            if pid is not None:
                pids[name] = pid
        yield System(settings, run_hex, db_name, db_dsn, prefix, pool_file, work_dir, pids)


# ---------------------------------------------------------------------------------------------
# Load generation


@dataclass(frozen=True)
class WrkOutcome:
    """One wrk run, as its Lua ``done()`` reported it."""

    requests: int
    duration_s: float
    issued: int
    status_counts: dict[int, int]
    errors_socket: int
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_max: float
    accepted_ids: list[str]
    wrk_cpu_s: float

    @property
    def ok(self) -> int:
        """Requests answered 2xx."""
        return sum(n for status, n in self.status_counts.items() if 200 <= status < 300)


def parse_wrk_report(text: str, wrk_cpu_s: float) -> WrkOutcome:
    """Read the ``name value`` lines that wrk_payments.lua's ``done()`` writes."""
    values: dict[str, int] = {}
    statuses: dict[int, int] = {}
    accepted: list[str] = []
    issued = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name == "accepted":
            accepted.append(rest)
        elif name == "status":
            status, count = rest.split()
            statuses[int(status)] = statuses.get(int(status), 0) + int(count)
        elif name == "issued":
            issued += int(rest)
        else:
            values[name] = int(rest)
    errors = ("errors_connect", "errors_read", "errors_write", "errors_timeout")
    return WrkOutcome(
        requests=values["requests"],
        duration_s=values["duration_us"] / 1e6,
        issued=issued,
        status_counts=statuses,
        errors_socket=sum(values[e] for e in errors),
        latency_ms_p50=values["latency_us_p50"] / 1000,
        latency_ms_p90=values["latency_us_p90"] / 1000,
        latency_ms_p99=values["latency_us_p99"] / 1000,
        latency_ms_max=values["latency_us_max"] / 1000,
        accepted_ids=accepted,
        wrk_cpu_s=wrk_cpu_s,
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_wrk(
    system: System,
    url: str,
    config: BenchConfig,
    *,
    duration_s: int,
    key_prefix: str,
    connections: int | None = None,
) -> WrkOutcome:
    """Run wrk against ``url`` for ``duration_s`` seconds with ``connections`` open
    (``config.concurrency`` unless given)."""
    out_file = system.work_dir / f"{key_prefix}.wrk"
    env = {
        **os.environ,
        "BENCH_POOL": str(system.pool_file),
        "BENCH_KEY_PREFIX": key_prefix,
        "BENCH_OUT": str(out_file),
    }
    cmd = [
        "wrk",
        f"-t{config.wrk_threads}",
        f"-c{connections or config.concurrency}",
        f"-d{duration_s}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        f"-s{WRK_SCRIPT}",
        url,
    ]
    cpu_before_s = _children_cpu_s()
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await proc.communicate()
    if proc.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr.decode()}{stdout.decode()}")
    return parse_wrk_report(out_file.read_text(), _children_cpu_s() - cpu_before_s)


# ---------------------------------------------------------------------------------------------
# Figures


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile (``fraction`` in [0, 1]) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = fraction * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class HttpFigures:
    """One wrk phase against one server."""

    ok_per_s: float
    ok: int
    requests: int
    duration_s: float
    status_counts: dict[str, int]
    errors_socket: int
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_max: float
    load_avg_1m_before: float
    cpu: CpuFigures


def http_figures(
    outcome: WrkOutcome, load_avg_1m: float, before: CpuSnapshot, after: CpuSnapshot
) -> HttpFigures:
    return HttpFigures(
        ok_per_s=round(outcome.ok / outcome.duration_s, 1),
        ok=outcome.ok,
        requests=outcome.requests,
        duration_s=round(outcome.duration_s, 3),
        status_counts={str(k): v for k, v in sorted(outcome.status_counts.items())},
        errors_socket=outcome.errors_socket,
        latency_ms_p50=outcome.latency_ms_p50,
        latency_ms_p90=outcome.latency_ms_p90,
        latency_ms_p99=outcome.latency_ms_p99,
        latency_ms_max=outcome.latency_ms_max,
        load_avg_1m_before=round(load_avg_1m, 2),
        cpu=cpu_figures(before, after, outcome.ok, {"wrk": outcome.wrk_cpu_s}),
    )


@dataclass(frozen=True)
class LedgerFigures:
    """Accepted payments carried to PostgreSQL, timed from the load generator's launch."""

    payments: int
    payments_per_s: float
    window_s: float
    drain_after_load_s: float
    first_request_after_launch_ms: float
    accept_to_ledger_ms_p50: float
    accept_to_ledger_ms_p99: float
    accept_to_ledger_ms_max: float
    cpu: CpuFigures


async def wait_recorded(pool: asyncpg.Pool, payment_ids: Sequence[str], timeout_s: float) -> None:
    """Return once every payment in ``payment_ids`` has its row in ``payments``."""
    deadline = time.monotonic() + timeout_s
    while (done := await count_recorded(pool, payment_ids)) < len(payment_ids):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {done} of {len(payment_ids)} accepted payments reached the ledger"
                f" within {timeout_s:.0f} s; see the bench-worker log"
            )
        await asyncio.sleep(LEDGER_POLL_INTERVAL_S)


async def ledger_times(pool: asyncpg.Pool, payment_ids: Sequence[str]) -> list[tuple[float, float]]:
    """(requested_at, decided_at) of each payment, as Unix seconds."""
    rows = await pool.fetch(
        """SELECT requested_at, decided_at FROM payments WHERE payment_id = ANY($1::text[])""",
        list(payment_ids),
    )
    return [(r["requested_at"].timestamp(), r["decided_at"].timestamp()) for r in rows]


def ledger_figures(
    times: Sequence[tuple[float, float]],
    *,
    launched_at_s: float,
    load_done_at_s: float,
    cpu: CpuFigures,
) -> LedgerFigures:
    """End-to-end figures from the ledger's own timestamps (Unix seconds, one machine clock)."""
    last_decided_s = max(decided for _, decided in times)
    first_requested_s = min(requested for requested, _ in times)
    window_s = last_decided_s - launched_at_s
    latencies_ms = [(decided - requested) * 1000 for requested, decided in times]
    return LedgerFigures(
        payments=len(times),
        payments_per_s=round(len(times) / window_s, 1),
        window_s=round(window_s, 3),
        drain_after_load_s=round(last_decided_s - load_done_at_s, 3),
        first_request_after_launch_ms=round((first_requested_s - launched_at_s) * 1000, 1),
        accept_to_ledger_ms_p50=round(percentile(latencies_ms, 0.50), 1),
        accept_to_ledger_ms_p99=round(percentile(latencies_ms, 0.99), 1),
        accept_to_ledger_ms_max=round(max(latencies_ms), 1),
        cpu=cpu,
    )


# ---------------------------------------------------------------------------------------------
# Baseline B: a raw consume-and-produce loop


@dataclass(frozen=True)
class LoopFigures:
    messages: int
    msgs_per_s: float
    seconds: float
    message_bytes_mean: float
    load_avg_1m_before: float
    cpu: CpuFigures


def _relay(
    consumer: Consumer, producer: Producer, dest: str, count: int, batch_max: int, timeout_s: float
) -> int:
    """Move ``count`` messages: consume a batch, produce each, wait for every acknowledgement,
    then commit the batch's offsets (at-least-once).  Returns the bytes of values moved."""
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    moved = value_bytes = 0
    deadline = time.monotonic() + timeout_s
    while moved < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"kafka loop moved only {moved} of {count} within {timeout_s} s")
        batch = consumer.consume(num_messages=min(batch_max, count - moved), timeout=0.5)
        for msg in batch:
            if msg.error() is not None:
                raise KafkaException(msg.error())
            value = msg.value()
            producer.produce(dest, value=value, key=msg.key(), on_delivery=on_delivery)
            value_bytes += len(value or b"")
        if batch:
            if producer.flush(timeout_s) > 0 or failures:
                raise RuntimeError(f"kafka loop: deliveries failed: {failures[:3]}")
            consumer.commit(asynchronous=False)
            moved += len(batch)
    return value_bytes


def kafka_loop(
    bootstrap: str, source: str, dest: str, group: str, count: int, batch_max: int
) -> tuple[float, int]:
    """Time moving ``count`` messages of ``source`` to ``dest``.  Returns (seconds, bytes of
    values moved).  One untimed batch goes first, so connections, partition positions, the
    group coordinator and the producer id are in place before the clock starts, as the
    worker's are before it is timed.  ``source`` must hold ``batch_max + count`` messages."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    try:
        partitions = consumer.list_topics(source, timeout=10).topics[source].partitions
        consumer.assign([TopicPartition(source, p, OFFSET_BEGINNING) for p in partitions])
        _relay(consumer, producer, dest, batch_max, batch_max, timeout_s=KAFKA_LOOP_TIMEOUT_S)
        started = time.perf_counter()
        value_bytes = _relay(
            consumer, producer, dest, count, batch_max, timeout_s=KAFKA_LOOP_TIMEOUT_S
        )
        return time.perf_counter() - started, value_bytes
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------------------
# One repetition


@dataclass(frozen=True)
class DrainFigures:
    """The worker alone: paused while the intake built a backlog, then timed clearing it."""

    payments: int
    payments_per_s: float
    seconds: float
    load_avg_1m_before: float
    cpu: CpuFigures


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """Freeze ``pid`` (SIGSTOP) for the block; it always continues (SIGCONT) afterwards.  Short
    pauses stay well inside the consumer group's 60 s session timeout, so no rebalance."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def measure_worker_drain(
    system: System, config: BenchConfig, pool: asyncpg.Pool, rep: int
) -> tuple[HttpFigures, DrainFigures]:
    """Accept payments with the worker paused, then time the worker clearing that backlog
    (from SIGCONT to the last ``decided_at``).  Also returns the intake's figures without the
    worker competing for the CPUs."""
    load_avg_1m = os.getloadavg()[0]
    with paused(system.pids["worker"]):
        before = cpu_snapshot(system)
        outcome = await run_wrk(
            system,
            system.url(config.api_port),
            config,
            duration_s=config.duration_s,
            key_prefix=f"{system.run_hex}-backlog{rep}",
        )
        intake = http_figures(outcome, load_avg_1m, before, cpu_snapshot(system))
        drain_load_avg_1m = os.getloadavg()[0]
        before = cpu_snapshot(system)
        resumed_at_s = time.time()
    await wait_recorded(pool, outcome.accepted_ids, config.settle_timeout_s)
    after = cpu_snapshot(system)
    times = await ledger_times(pool, outcome.accepted_ids)
    seconds = max(decided for _, decided in times) - resumed_at_s
    drain = DrainFigures(
        payments=len(times),
        payments_per_s=round(len(times) / seconds, 1),
        seconds=round(seconds, 3),
        load_avg_1m_before=round(drain_load_avg_1m, 2),
        cpu=cpu_figures(before, after, len(times), {}),
    )
    return intake, drain


@dataclass(frozen=True)
class RepResult:
    rep: int
    echo: HttpFigures
    intake: HttpFigures
    end_to_end: LedgerFigures
    light_intake: HttpFigures
    light_end_to_end: LedgerFigures
    intake_worker_paused: HttpFigures
    worker_drain: DrainFigures
    kafka_loop: LoopFigures
    ratio_intake_vs_echo: float
    ratio_end_to_end_vs_kafka_loop: float
    ratio_worker_drain_vs_kafka_loop: float


async def measure_echo(system: System, config: BenchConfig, rep: int) -> HttpFigures:
    load_avg_1m = os.getloadavg()[0]
    before = cpu_snapshot(system)
    outcome = await run_wrk(
        system,
        system.url(config.echo_port),
        config,
        duration_s=config.duration_s,
        key_prefix=f"{system.run_hex}-echo{rep}",
    )
    return http_figures(outcome, load_avg_1m, before, cpu_snapshot(system))


async def measure_intake(
    system: System,
    config: BenchConfig,
    pool: asyncpg.Pool,
    *,
    connections: int,
    duration_s: int,
    key_prefix: str,
) -> tuple[HttpFigures, LedgerFigures, int]:
    """wrk against the intake, then wait for the ledger.  Also returns how many payments the
    worker had to carry, for baseline B."""
    load_avg_1m = os.getloadavg()[0]
    before = cpu_snapshot(system)
    launched_at_s = time.time()
    outcome = await run_wrk(
        system,
        system.url(config.api_port),
        config,
        duration_s=duration_s,
        key_prefix=f"{system.run_hex}-{key_prefix}",
        connections=connections,
    )
    load_done_at_s = time.time()
    load_done = cpu_snapshot(system)
    await wait_recorded(pool, outcome.accepted_ids, config.settle_timeout_s)
    settled = cpu_snapshot(system)
    times = await ledger_times(pool, outcome.accepted_ids)
    ledger = ledger_figures(
        times,
        launched_at_s=launched_at_s,
        load_done_at_s=load_done_at_s,
        cpu=cpu_figures(before, settled, len(times), {"wrk": outcome.wrk_cpu_s}),
    )
    intake = http_figures(outcome, load_avg_1m, before, load_done)
    return intake, ledger, len(outcome.accepted_ids)


async def measure_kafka_loop(
    system: System, config: BenchConfig, count: int, rep: int
) -> LoopFigures:
    load_avg_1m = os.getloadavg()[0]
    before = cpu_snapshot(system)
    seconds, value_bytes = await asyncio.to_thread(
        kafka_loop,
        system.settings.kafka_bootstrap,
        PAYMENTS_REQUESTED.full_name(system.topic_prefix),
        f"{system.topic_prefix}{KAFKA_LOOP_TOPIC}",
        f"{system.topic_prefix}bench-kafka-loop-{rep}",
        count,
        config.kafka_batch_max,
    )
    after = cpu_snapshot(system)
    return LoopFigures(
        messages=count,
        msgs_per_s=round(count / seconds, 1),
        seconds=round(seconds, 3),
        message_bytes_mean=round(value_bytes / count, 1),
        load_avg_1m_before=round(load_avg_1m, 2),
        cpu=cpu_figures(before, after, count, {}),
    )


async def measure_rep(
    system: System, config: BenchConfig, pool: asyncpg.Pool, rep: int
) -> RepResult:
    echo = await measure_echo(system, config, rep)
    print(f"  rep {rep}: echo {echo.ok_per_s:.0f} req/s", flush=True)
    intake, ledger, carried = await measure_intake(
        system,
        config,
        pool,
        connections=config.concurrency,
        duration_s=config.duration_s,
        key_prefix=f"pay{rep}",
    )
    print(
        f"  rep {rep}: intake {intake.ok_per_s:.0f} payments/s accepted,"
        f" {ledger.payments_per_s:.0f}/s to the ledger",
        flush=True,
    )
    light, light_ledger, _ = await measure_intake(
        system,
        config,
        pool,
        connections=config.light_connections,
        duration_s=config.light_duration_s,
        key_prefix=f"light{rep}",
    )
    print(
        f"  rep {rep}: light load: accept-to-ledger p50"
        f" {light_ledger.accept_to_ledger_ms_p50:.0f} ms",
        flush=True,
    )
    intake_alone, drain = await measure_worker_drain(system, config, pool, rep)
    print(
        f"  rep {rep}: intake with the worker paused {intake_alone.ok_per_s:.0f}/s,"
        f" then the worker cleared the backlog at {drain.payments_per_s:.0f}/s",
        flush=True,
    )
    loop = await measure_kafka_loop(system, config, carried, rep)
    print(f"  rep {rep}: kafka loop {loop.msgs_per_s:.0f} msgs/s", flush=True)
    return RepResult(
        rep=rep,
        echo=echo,
        intake=intake,
        end_to_end=ledger,
        light_intake=light,
        light_end_to_end=light_ledger,
        intake_worker_paused=intake_alone,
        worker_drain=drain,
        kafka_loop=loop,
        ratio_intake_vs_echo=round(intake.ok_per_s / echo.ok_per_s, 3),
        ratio_end_to_end_vs_kafka_loop=round(ledger.payments_per_s / loop.msgs_per_s, 3),
        ratio_worker_drain_vs_kafka_loop=round(drain.payments_per_s / loop.msgs_per_s, 3),
    )


async def warm_up(system: System, config: BenchConfig, pool: asyncpg.Pool) -> int:
    """Exercise both servers and wait until the worker has joined its group (its first
    rebalance takes seconds) and posted the warm-up payments.  Returns how many there were."""
    await run_wrk(
        system,
        system.url(config.echo_port),
        config,
        duration_s=config.warmup_s,
        key_prefix=f"{system.run_hex}-warmecho",
    )
    outcome = await run_wrk(
        system,
        system.url(config.api_port),
        config,
        duration_s=config.warmup_s,
        key_prefix=f"{system.run_hex}-warmpay",
    )
    await wait_recorded(pool, outcome.accepted_ids, config.settle_timeout_s)
    return len(outcome.accepted_ids)


async def measure_all(system: System, config: BenchConfig) -> list[RepResult]:
    pool = await asyncpg.create_pool(system.db_dsn, min_size=1, max_size=2)
    try:
        warmed = await warm_up(system, config, pool)
        print(f"  warm-up: {warmed} payments posted; measuring", flush=True)
        return [await measure_rep(system, config, pool, rep) for rep in range(1, config.reps + 1)]
    finally:
        await pool.close()


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float


def spread(values: Sequence[float]) -> Spread:
    return Spread(round(statistics.median(values), 3), round(min(values), 3), round(max(values), 3))


# (key in the summary, label, unit, how to read it from one repetition)
HEADLINE: tuple[tuple[str, str, str, str], ...] = (
    ("intake_payments_per_s", "Intake: payments accepted (202)", "/s", "intake.ok_per_s"),
    ("intake_latency_ms_p50", "Intake: request latency p50", "ms", "intake.latency_ms_p50"),
    ("intake_latency_ms_p99", "Intake: request latency p99", "ms", "intake.latency_ms_p99"),
    (
        "end_to_end_payments_per_s",
        "End to end: payments carried to the ledger",
        "/s",
        "end_to_end.payments_per_s",
    ),
    (
        "accept_to_ledger_ms_p50",
        "Accept-to-ledger latency p50",
        "ms",
        "end_to_end.accept_to_ledger_ms_p50",
    ),
    (
        "accept_to_ledger_ms_p99",
        "Accept-to-ledger latency p99",
        "ms",
        "end_to_end.accept_to_ledger_ms_p99",
    ),
    (
        "light_accept_to_ledger_ms_p50",
        "Accept-to-ledger latency p50, light load",
        "ms",
        "light_end_to_end.accept_to_ledger_ms_p50",
    ),
    (
        "light_accept_to_ledger_ms_p99",
        "Accept-to-ledger latency p99, light load",
        "ms",
        "light_end_to_end.accept_to_ledger_ms_p99",
    ),
    (
        "light_intake_latency_ms_p50",
        "Intake: request latency p50, light load",
        "ms",
        "light_intake.latency_ms_p50",
    ),
    (
        "worker_drain_payments_per_s",
        "Worker alone: a paused-up backlog carried to the ledger",
        "/s",
        "worker_drain.payments_per_s",
    ),
    (
        "intake_worker_paused_payments_per_s",
        "Intake alone: payments accepted while the worker is paused",
        "/s",
        "intake_worker_paused.ok_per_s",
    ),
    ("echo_requests_per_s", "Baseline A: FastAPI JSON echo", "/s", "echo.ok_per_s"),
    ("echo_latency_ms_p50", "Baseline A: echo latency p50", "ms", "echo.latency_ms_p50"),
    ("echo_latency_ms_p99", "Baseline A: echo latency p99", "ms", "echo.latency_ms_p99"),
    (
        "kafka_loop_msgs_per_s",
        "Baseline B: Kafka consume-produce loop",
        "/s",
        "kafka_loop.msgs_per_s",
    ),
    ("ratio_intake_vs_echo", "Ratio: intake / echo", "×", "ratio_intake_vs_echo"),
    (
        "ratio_end_to_end_vs_kafka_loop",
        "Ratio: end to end / Kafka loop",
        "×",
        "ratio_end_to_end_vs_kafka_loop",
    ),
    (
        "ratio_worker_drain_vs_kafka_loop",
        "Ratio: worker alone / Kafka loop",
        "×",
        "ratio_worker_drain_vs_kafka_loop",
    ),
    (
        "intake_others_cores",
        "Other work on the machine during the intake runs",
        "cores",
        "intake.cpu.others_cores",
    ),
)


def _read_path(rep: dict[str, Any], dotted: str) -> float:
    value: Any = rep
    for part in dotted.split("."):
        value = value[part]
    return float(value)


def summarise(reps: Sequence[dict[str, Any]]) -> dict[str, Spread]:
    return {key: spread([_read_path(r, path) for r in reps]) for key, _, _, path in HEADLINE}


def build_results(
    config: BenchConfig,
    facts: Mapping[str, Any],
    reps: Sequence[RepResult],
    *,
    started_at: datetime,
    wall_s: float,
) -> dict[str, Any]:
    rep_dicts = [asdict(r) for r in reps]
    return {
        "benchmark": BENCH_NAME,
        "date": started_at.date().isoformat(),
        "started_at": started_at.isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 1),
        "machine": dict(facts),
        "method": {
            "load_generator": f"wrk ({config.wrk_threads} thread), bench/wrk_payments.lua",
            "concurrency": config.concurrency,
            "duration_s": config.duration_s,
            "reps": config.reps,
            "warmup_s": config.warmup_s,
            "light_connections": config.light_connections,
            "light_duration_s": config.light_duration_s,
            "kafka_loop_batch_max": config.kafka_batch_max,
            "distinct_bodies": BODY_POOL_SIZE,
            "merchants": config.merchants,
        },
        "summary": {k: asdict(v) for k, v in summarise(rep_dicts).items()},
        "runs": rep_dicts,
    }


def _fmt(value: float, unit: str) -> str:
    if unit == "×":
        return f"{value:.3f}×"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "cores":
        return f"{value:.2f} cores"
    return f"{value:,.0f}/s"


ROLE_ORDER = ("api", "worker", "echo", "kafka", "postgres", "redis", "wrk", "bench", "others")


def _cpu_table(title: str, rows: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """CPU ms per item by role (roles that used none are left out), then whole-machine cores."""
    used = {role for _, cpu in rows for role, ms in cpu["ms_per_item"].items() if ms >= 0.001}
    roles = [r for r in ROLE_ORDER if r in used] + sorted(used - set(ROLE_ORDER))
    header = [*roles, "busy cores", "others cores", "steal cores"]
    lines = [f"**{title}**", "", "| run | " + " | ".join(header) + " |"]
    lines.append("|---|" + "---:|" * len(header))
    for name, cpu in rows:
        ms = [f"{cpu['ms_per_item'].get(r, 0.0):.3f}" for r in roles]
        cores = [f"{cpu[k]:.2f}" for k in ("busy_cores", "others_cores", "steal_cores")]
        lines.append(f"| {name} | " + " | ".join(ms + cores) + " |")
    return [*lines, ""]


def render_markdown(results: Mapping[str, Any]) -> str:
    """The human-readable report: headline figures, machine, method, per-run detail, caveats."""
    m, method, summary = results["machine"], results["method"], results["summary"]
    lines = [
        f"# RizzPay foundation benchmark — {results['date']}",
        "",
        f"Started {results['started_at']} (UTC); whole run {results['wall_s']:.0f} s wall time. "
        f"Figures are the median of {method['reps']} runs, with min–max.",
        "",
        "| figure | median | min | max |",
        "|---|---:|---:|---:|",
    ]
    for key, label, unit, _ in HEADLINE:
        s = summary[key]
        lines.append(
            f"| {label} | {_fmt(s['median'], unit)} | {_fmt(s['min'], unit)}"
            f" | {_fmt(s['max'], unit)} |"
        )
    lines += [
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPUs: {m['cpu_model']}; {m['ram_gib']} GiB RAM; Linux {m['kernel']}",
        f"- Python {m['python']}, FastAPI {m['fastapi']}, uvicorn {m['uvicorn']} (uvloop +"
        f" httptools), faust-streaming {m['faust_streaming']}",
        f"- Kafka {m['kafka']} (KRaft, one node), librdkafka {m['librdkafka']},"
        f" PostgreSQL {m['postgresql']}, Redis {m['redis']}, {m['wrk']}",
        "",
        "## Method",
        "",
        f"- Load generator: {method['load_generator']}, {method['concurrency']} connections,"
        f" closed loop, {method['duration_s']} s per run after a {method['warmup_s']} s warm-up"
        " of each server. Every intake request is a new payment (fresh Idempotency-Key) with a"
        f" realistic body ({method['distinct_bodies']} distinct bodies over"
        f" {method['merchants']} merchants, api.loadgen.plan_payments).",
        "- Baseline A: bench/echo_app.py, FastAPI returning the posted JSON, served with the"
        " intake's uvicorn settings (uvloop, httptools, 1 process, access log off), same wrk"
        " script and connections.",
        "- End to end: from wrk's launch until max(payments.decided_at) of the payments wrk saw"
        " accepted; accept-to-ledger = decided_at − requested_at per payment, from PostgreSQL.",
        "- Baseline B: confluent-kafka consume → produce (idempotent, acks=all, linger.ms=5) →"
        f" commit after each acknowledged batch of ≤{method['kafka_loop_batch_max']}, over as"
        " many of the intake's own PaymentRequested messages as that run accepted, after one"
        " untimed batch that sets up connections and positions (the worker is warm too).",
        f"- Light load: the same intake run with {method['light_connections']} connection(s)"
        f" for {method['light_duration_s']} s, far below saturation, so its accept-to-ledger"
        " latency is the pipeline's own rather than time spent queueing for the CPUs.",
        "- Worker alone: the worker is paused (SIGSTOP) while wrk runs against the intake"
        " again, then resumed (SIGCONT); timed from the resume to the backlog's last"
        " decided_at. It shows the worker's own capacity, which the end-to-end figure cannot"
        " when the intake is the slower stage.",
        "- Each run: echo; intake (+ waiting for the ledger); light load (+ waiting); intake"
        " with the worker paused (+ the worker clearing that backlog); the Kafka loop.",
        "",
        "## Per run",
        "",
        "Load averages (1 min) were read before the echo, intake, paused-intake and loop"
        " phases; others = CPU cores that other processes used during the intake phase."
        " a2l = accept-to-ledger; drain = from wrk's exit to the last row (negative: the last"
        " row was in before wrk had exited).",
        "",
        "| run | load 1m | others | echo /s | intake /s | intake p50 / p99 | e2e /s | drain"
        " | a2l p50 / p99 | light a2l p50 / p99 | intake alone /s | worker alone /s | loop /s"
        " | msg bytes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_run_row(r) for r in results["runs"]]
    lines.append("")
    lines += _non_2xx_lines(results["runs"])
    lines += [
        "## Where the CPU went",
        "",
        "CPU milliseconds per request / payment / message, by process: api, worker, echo;"
        " kafka and redis (the shared stack's servers, whoever used them); postgres (the"
        " backends of the bench's database); wrk; bench (this script, which runs the Kafka"
        " loop); others (every other process on the machine). Then the phase's average CPU"
        " cores in use on the whole machine, by others alone, and stolen by the hypervisor.",
        "",
    ]
    runs = results["runs"]
    lines += _cpu_table("Echo", [(str(r["rep"]), r["echo"]["cpu"]) for r in runs])
    lines += _cpu_table(
        "Intake, during the load only",
        [(str(r["rep"]), r["intake"]["cpu"]) for r in runs],
    )
    lines += _cpu_table(
        "End to end, from launch until the ledger has every payment",
        [(str(r["rep"]), r["end_to_end"]["cpu"]) for r in runs],
    )
    lines += _cpu_table(
        "Worker alone, from the resume until the backlog is in the ledger",
        [(str(r["rep"]), r["worker_drain"]["cpu"]) for r in runs],
    )
    lines += _cpu_table("Kafka loop", [(str(r["rep"]), r["kafka_loop"]["cpu"]) for r in runs])
    lines += [
        "## Read with care",
        "",
        f"- Everything shares this machine's {m['nproc']} CPUs: Kafka, PostgreSQL, Redis, the"
        " API, the worker, wrk and this script. Kafka, PostgreSQL and Redis are the shared local"
        " stack, which other work may be using at the same time. The load averages were taken"
        " before each phase (they include the bench's own previous phase); the 'others cores'"
        " column shows how much CPU everything else took during each phase, and 'steal cores'"
        " what the hypervisor took.",
        "- Latency percentiles are wrk's (closed loop: a slow server is sent fewer requests, so"
        " tail latency under a fixed arrival rate would be worse).",
        "- The intake is pushed as hard as wrk can for the whole run, so when the worker is"
        " slower than the intake a backlog builds up: accept-to-ledger latency then measures"
        " mostly the wait in that backlog, and end-to-end payments/s includes the drain.",
        "- Each figure comes from this one run; nothing is copied from elsewhere.",
        "",
    ]
    return "\n".join(lines)


def _run_row(r: Mapping[str, Any]) -> str:
    e, i, x, k = r["echo"], r["intake"], r["end_to_end"], r["kafka_loop"]
    p, w, light = r["intake_worker_paused"], r["worker_drain"], r["light_end_to_end"]
    loads = " / ".join(f"{f['load_avg_1m_before']:.2f}" for f in (e, i, p, k))
    return (
        f"| {r['rep']} | {loads} | {i['cpu']['others_cores']:.2f}"
        f" | {e['ok_per_s']:,.0f} | {i['ok_per_s']:,.0f}"
        f" | {i['latency_ms_p50']:.1f} / {i['latency_ms_p99']:.1f} ms"
        f" | {x['payments_per_s']:,.0f} | {x['drain_after_load_s']:.2f} s"
        f" | {x['accept_to_ledger_ms_p50']:.0f} / {x['accept_to_ledger_ms_p99']:.0f} ms"
        f" | {light['accept_to_ledger_ms_p50']:.0f} / {light['accept_to_ledger_ms_p99']:.0f} ms"
        f" | {p['ok_per_s']:,.0f} | {w['payments_per_s']:,.0f}"
        f" | {k['msgs_per_s']:,.0f} | {k['message_bytes_mean']:.0f} |"
    )


def _non_2xx_lines(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    notes = []
    for r in runs:
        for phase in ("echo", "intake", "light_intake", "intake_worker_paused"):
            figures = r[phase]
            odd = {s: n for s, n in figures["status_counts"].items() if not s.startswith("2")}
            if odd or figures["errors_socket"]:
                notes.append(
                    f"- run {r['rep']} {phase}: non-2xx {odd or 'none'},"
                    f" socket errors {figures['errors_socket']}"
                )
    return [*notes, ""] if notes else ["All requests were answered 2xx; no socket errors.", ""]


def write_results(results: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{results['date']}-{BENCH_NAME}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(render_markdown(results))
    return json_path, md_path


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_args(argv: Sequence[str] | None) -> BenchConfig:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(description="RizzPay foundation benchmark (make bench)")
    parser.add_argument("--reps", type=int, default=defaults.reps)
    parser.add_argument("--duration-s", type=int, default=defaults.duration_s)
    parser.add_argument("--warmup-s", type=int, default=defaults.warmup_s)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--wrk-threads", type=int, default=defaults.wrk_threads)
    parser.add_argument("--api-port", type=int, default=defaults.api_port)
    parser.add_argument("--echo-port", type=int, default=defaults.echo_port)
    parser.add_argument("--out-dir", type=Path, default=defaults.out_dir)
    args = parser.parse_args(argv)
    return BenchConfig(
        reps=args.reps,
        duration_s=args.duration_s,
        warmup_s=args.warmup_s,
        concurrency=args.concurrency,
        wrk_threads=args.wrk_threads,
        api_port=args.api_port,
        echo_port=args.echo_port,
        out_dir=args.out_dir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    settings = load_settings()
    print("bench: local stack", flush=True)
    stack_up(settings)
    ensure_wrk()
    facts = machine_facts(settings)
    print(f"bench: {facts['nproc']} CPUs ({facts['cpu_model']}); starting the system", flush=True)
    with system_under_test(settings, config) as system:
        print(f"bench: database {system.db_name}, topics {system.topic_prefix}*", flush=True)
        reps = asyncio.run(measure_all(system, config))
    results = build_results(
        config, facts, reps, started_at=started_at, wall_s=time.perf_counter() - started
    )
    json_path, md_path = write_results(results, config.out_dir)
    print(render_markdown(results))
    print(f"bench: wrote {json_path} and {md_path}")
    # Fraud scoring cost: in one process, no stack (bench/fraud_scoring.py writes its results).
    subprocess.run([sys.executable, str(BENCH_DIR / "fraud_scoring.py")], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
