"""The no-Docker local stack: everything RizzPay talks to, started from this repository alone.

* Apache Kafka in KRaft mode, one node that is both broker and controller.  Its jars come from
  Maven Central through ``deploy/kafka/pom.xml`` into a cache that outlives ``down``, so only
  the first ``up`` on a machine downloads anything.
* PostgreSQL and Redis from Debian packages (installed with apt-get when missing), each run as
  our own server on its own port -- never the system service -- so the stack cannot disturb, or
  be disturbed by, whatever else the machine runs.
* ClickHouse is embedded through chDB: there is no server to start; one process owns the data
  path (see FACTS.md), so this module only reports the DSN.

Any of Kafka, PostgreSQL and Redis can instead be one that is already running: set
``RIZZPAY_STACK_MANAGE_<SERVICE>=false`` and its DSN, and the stack only health-checks it.

All data, logs and generated secrets live under ``settings.home`` (``<repo>/.rizzpay`` unless
``RIZZPAY_HOME`` says otherwise); deleting that folder resets the stack.  Every operation is
idempotent: ``up`` starts only what is not already healthy, ``down`` stops only what we started.

The functions block (they wait for health with sleeps); call them from sync code or from a
worker thread of an async test.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg
import httpx
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from pydantic import Field, model_validator

from models.config import REPO_ROOT, ServiceEndpoints, default_home

KAFKA_DEPLOY_DIR = REPO_ROOT / "deploy" / "kafka"
KAFKA_POM = KAFKA_DEPLOY_DIR / "pom.xml"
KAFKA_LOG4J_CONFIG = KAFKA_DEPLOY_DIR / "log4j2.yaml"

ServiceName = Literal["kafka", "postgres", "redis", "sandbox", "clickhouse"]
MANAGEABLE: tuple[ServiceName, ...] = ("kafka", "postgres", "redis", "sandbox")
ALL_SERVICES: tuple[ServiceName, ...] = (*MANAGEABLE, "clickhouse")

PG_ROLE = "rizzpay"
PG_DATABASE = "rizzpay"
PG_OS_USER = "postgres"

# How often health is re-checked while waiting for a service to come up or go away.
POLL_INTERVAL_S = 0.2
# Lines of a service's log shown when it fails to start: enough for a Java stack trace's cause.
LOG_TAIL_LINES = 40


class StackSettings(ServiceEndpoints):
    """Endpoints plus what the stack needs to run its own servers.

    Environment variables use the same ``RIZZPAY_`` prefix, e.g. ``RIZZPAY_KAFKA_PORT`` or
    ``RIZZPAY_STACK_MANAGE_POSTGRES=false``.  For a managed service the endpoint follows the port
    unless it was set explicitly, so changing one port is enough to move a service.  Limits end
    in their unit (``_s`` seconds, ``_mb`` mebibytes).
    """

    kafka_version: str = "4.1.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap_mb: int = 512
    # Off so a misspelt topic name fails loudly instead of silently creating a new topic; code
    # and tests create their topics explicitly (AdminClient / Faust's topic declaration).
    kafka_auto_create_topics: bool = False
    # Jars survive ``down`` and deleting ``home``: the download is the slow part of a first ``up``.
    jar_cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "rizzpay")
    pg_port: int = 15432
    # None: the newest /usr/lib/postgresql/<version>/bin that has initdb.
    pg_bin_dir: Path | None = None
    pg_max_connections: int = 200
    redis_port: int = 16379
    # The processors' sandboxes (``rizzpay sandbox serve``): provider i of sandbox.PROVIDERS
    # (razorpay, payu, stripe, bank) on sandbox_port + i, its admin API on sandbox_port + 100 + i.
    sandbox_port: int = 18100
    # Answers take 50-300 ms like a processor's; lower them for quick demos
    # (RIZZPAY_SANDBOX_LATENCY_MS_MAX).  The customer-side delays stand for a person approving
    # a UPI collect and an NEFT batch (real ones take minutes).
    sandbox_latency_ms_min: int = 50
    sandbox_latency_ms_max: int = 300
    sandbox_upi_approve_ms: int = 1500
    sandbox_upi_expiry_ms: int = 5000
    sandbox_neft_settle_ms: int = 2000

    stack_manage_kafka: bool = True
    stack_manage_postgres: bool = True
    stack_manage_redis: bool = True
    stack_manage_sandbox: bool = True

    jar_fetch_timeout_s: float = 900.0
    kafka_start_timeout_s: float = 90.0
    pg_start_timeout_s: float = 60.0
    redis_start_timeout_s: float = 15.0
    sandbox_start_timeout_s: float = 30.0
    stop_timeout_s: float = 30.0
    health_timeout_s: float = 2.0

    @model_validator(mode="after")
    def _endpoints_follow_ports(self) -> StackSettings:
        """Point managed services' endpoints at the ports we will listen on."""
        explicit = set(self.model_fields_set)
        if self.stack_manage_kafka and "kafka_bootstrap" not in explicit:
            self.kafka_bootstrap = f"127.0.0.1:{self.kafka_port}"
        if self.stack_manage_postgres and "pg_dsn" not in explicit:
            self.pg_dsn = f"postgresql://{PG_ROLE}@127.0.0.1:{self.pg_port}/{PG_DATABASE}"
        if self.stack_manage_redis and "redis_url" not in explicit:
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        if "clickhouse_dsn" not in explicit:
            # The inherited default follows RIZZPAY_HOME; follow a home passed in code as well.
            self.clickhouse_dsn = f"chdb://{self.home.resolve() / 'clickhouse'}"
        return self


def load_settings(home: Path | None = None) -> StackSettings:
    """Build settings that read ``<home>/stack.env``.

    ``ServiceEndpoints`` fixes its env file when ``models.config`` is imported; passing the file
    here means a home chosen later (a test's temporary home) still gets its generated password.
    """
    root = (home if home is not None else default_home()).resolve()
    return StackSettings(_env_file=root / "stack.env", home=root)


class StackError(RuntimeError):
    """A service would not start, stop or answer.  ``service`` names it (or several, joined)."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service

    @classmethod
    def combine(cls, errors: Sequence[StackError]) -> StackError:
        """One error for several failed services, each message kept whole."""
        if len(errors) == 1:
            return errors[0]
        combined = cls(", ".join(e.service for e in errors), "")
        combined.args = ("\n\n".join(str(e) for e in errors),)
        return combined


@dataclass(frozen=True)
class ServiceStatus:
    """One row of ``status``: is the service answering, and where.

    ``endpoint`` has any password replaced by ``***`` so the row can be printed or logged.
    ``state`` is ``embedded`` for chDB, which has no server to be up or down.
    """

    name: ServiceName
    state: Literal["up", "down", "embedded"]
    endpoint: str
    managed: bool
    pid: int | None = None
    detail: str = ""

    @property
    def up(self) -> bool:
        """True when the service can be used (an embedded ClickHouse always can)."""
        return self.state != "down"


@dataclass(frozen=True)
class StackPaths:
    """Where each service keeps its files, all under ``home`` except the jar cache."""

    home: Path
    logs: Path
    env_file: Path
    kafka_dir: Path
    kafka_data: Path
    kafka_config: Path
    kafka_pid: Path
    kafka_out: Path
    kafka_log: Path
    kafka_lib: Path
    pg_root: Path
    pg_data: Path
    pg_socket_dir: Path
    pg_log: Path
    redis_dir: Path
    redis_pid: Path
    redis_log: Path


def stack_paths(settings: StackSettings) -> StackPaths:
    """The file layout for ``settings`` (nothing is created)."""
    home = settings.home.resolve()
    logs = home / "logs"
    kafka_dir = home / "kafka"
    pg_root = home / "postgres"
    redis_dir = home / "redis"
    return StackPaths(
        home=home,
        logs=logs,
        env_file=home / "stack.env",
        kafka_dir=kafka_dir,
        kafka_data=kafka_dir / "data",
        kafka_config=kafka_dir / "server.properties",
        kafka_pid=kafka_dir / "kafka.pid",
        kafka_out=logs / "kafka.out",
        kafka_log=logs / "kafka.log",
        kafka_lib=settings.jar_cache_dir / f"kafka-{settings.kafka_version}" / "lib",
        pg_root=pg_root,
        pg_data=pg_root / "data",
        pg_socket_dir=pg_root / "run",
        pg_log=logs / "postgres.log",
        redis_dir=redis_dir,
        redis_pid=redis_dir / "redis.pid",
        redis_log=logs / "redis.log",
    )


# --------------------------------------------------------------------------------------------
# Small process and file helpers
# --------------------------------------------------------------------------------------------


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log, or a note that it is missing, for error messages."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last lines of {path} ---\n{tail}" if tail else f"({path} is empty)"


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _log_errors(path: Path, since: int, limit: int = 20) -> str:
    """ERROR/FATAL lines (with their exception message) written to ``path`` after ``since``.

    Kafka logs a few hundred lines of orderly shutdown after a fatal startup error, so the plain
    tail of its log hides the cause (e.g. "Address already in use").
    """
    try:
        with path.open("rb") as f:
            f.seek(since if since <= _log_size(path) else 0)  # rolled over: read it all
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    picked: list[str] = []
    for index, line in enumerate(lines):
        if " ERROR " in line or " FATAL " in line:
            picked.append(line)
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if following and not following.startswith(("[", "\t")):
                picked.append(f"    {following}")
        elif line.startswith("Caused by:"):
            picked.append(f"    {line}")
    if not picked:
        return ""
    return f"--- errors logged in {path} ---\n" + "\n".join(picked[:limit])


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process.

    A zombie counts as dead: PID 1 in some containers never reaps orphans, so a crashed daemon
    can linger as a zombie that ``kill(pid, 0)`` would still report as present.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    """The arguments of ``pid`` (empty if it is gone or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None when the file is missing or garbled."""
    try:
        first = path.read_text().split()[0]
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def _find_process(pid_file: Path, matches: Callable[[list[str]], bool]) -> int | None:
    """Our process for a service: the pid file's pid if it is still ours, else a /proc scan.

    Checking the command line guards against a recycled pid; the scan finds a server whose pid
    file was lost, so ``down`` can still stop it.
    """
    pid = read_pid(pid_file)
    if pid is not None and pid_alive(pid) and matches(_cmdline(pid)):
        return pid
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            candidate = int(entry.name)
            if pid_alive(candidate) and matches(_cmdline(candidate)):
                return candidate
    return None


def terminate_process(pid: int, timeout_s: float) -> None:
    """SIGTERM ``pid`` so it shuts down cleanly; SIGKILL it if it is still there at the deadline."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(POLL_INTERVAL_S)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while pid_alive(pid):
        time.sleep(POLL_INTERVAL_S)


@functools.cache
def _apt_update() -> None:
    """``apt-get update`` at most once per process: it is slow and the lists do not change."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=False)


def _apt_install(service: str, packages: Sequence[str]) -> None:
    """Install Debian packages a service needs; a fresh machine has none of them."""
    if os.geteuid() != 0:
        raise StackError(
            service, f"not installed; run: sudo apt-get install -y {' '.join(packages)}"
        )
    if shutil.which("apt-get") is None:
        raise StackError(service, f"not installed and no apt-get here; install {packages}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"[stack] installing {' '.join(packages)} with apt-get for {service} ...", flush=True)
    _apt_update()
    done = subprocess.run(["apt-get", "install", "-y", "-q", *packages], env=env, check=False)
    if done.returncode != 0:
        raise StackError(service, f"apt-get install {' '.join(packages)} failed")


def _require_binary(service: str, binary: str, packages: Sequence[str]) -> str:
    """The path of ``binary``, installing its packages first when it is missing."""
    found = shutil.which(binary)
    if found is None:
        _apt_install(service, packages)
        found = shutil.which(binary)
    if found is None:
        raise StackError(service, f"{binary} still not found after installing {packages}")
    return found


def _redact(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***``, for tables and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of ``stack.env`` (comments and blanks ignored)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and "=" in stripped:
            key, value = stripped.split("=", 1)
            values[key.strip()] = value.strip().strip("'\"")
    return values


def _write_env_value(path: Path, key: str, value: str) -> None:
    """Set one KEY=VALUE in ``stack.env``, keeping other lines; the file stays mode 0600.

    Written to a temporary file first and renamed, so a crash cannot leave half a password.
    """
    lines = (
        path.read_text().splitlines()
        if path.exists()
        else [
            "# Written by `rizzpay stack up`; read by models.config.ServiceEndpoints. Private.",
        ]
    )
    kept = [line for line in lines if not line.strip().startswith(f"{key}=")]
    kept.append(f"{key}={value}")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(kept) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _ensure_dirs(paths: StackPaths) -> None:
    """Create ``home`` and its shared folders; ``home`` must be traversable by ``postgres``."""
    for folder in (paths.home, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    # Not secret (stack.env inside is 0600); the postgres OS user must traverse it.
    os.chmod(paths.home, 0o755)  # noqa: S103


# --------------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------------


def _any_port_open(bootstrap: str, timeout_s: float) -> bool:
    """True if any ``host:port`` of a bootstrap list accepts a TCP connection.

    A refused connection answers in microseconds, while librdkafka would keep retrying until
    its timeout: this makes probing a stopped broker (every cold ``up``, ``status``) cheap.
    """
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def kafka_healthy(bootstrap: str, timeout_s: float) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request and lists itself."""
    if not _any_port_open(bootstrap, timeout_s):
        return False
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000)),
            # librdkafka otherwise prints "Connection refused" to stderr on every probe of a
            # broker that is still starting (or meant to be down).
            "log_level": 0,
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def _is_our_kafka(paths: StackPaths) -> Callable[[list[str]], bool]:
    config = str(paths.kafka_config)
    return lambda argv: "kafka.Kafka" in argv and config in argv


def kafka_pid(settings: StackSettings) -> int | None:
    """The pid of the broker this stack started, if it is running."""
    paths = stack_paths(settings)
    return _find_process(paths.kafka_pid, _is_our_kafka(paths))


def ensure_kafka_jars(settings: StackSettings) -> Path:
    """The folder of broker jars, fetched from Maven Central with ``mvn`` only when missing.

    Copied into a temporary folder and renamed when complete, so an interrupted download is
    retried rather than used.
    """
    lib = stack_paths(settings).kafka_lib
    if (lib / ".complete").exists():
        return lib
    _require_binary("kafka", "java", ["default-jre-headless"])
    mvn = _require_binary("kafka", "mvn", ["maven"])
    lib.parent.mkdir(parents=True, exist_ok=True)
    staging = lib.parent / f"lib.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    print(
        f"[stack] fetching Kafka {settings.kafka_version} jars from Maven Central into {lib} ...",
        flush=True,
    )
    cmd = [
        mvn, "-q", "-B", "-f", str(KAFKA_POM),
        f"-Dkafka.version={settings.kafka_version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=settings.jar_fetch_timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(
            "kafka", f"fetching jars took over {settings.jar_fetch_timeout_s:.0f} s"
        ) from exc
    jars = list(staging.glob("kafka_2.13-*.jar")) if staging.exists() else []
    if done.returncode != 0 or not jars:
        shutil.rmtree(staging, ignore_errors=True)
        output = "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise StackError(
            "kafka",
            f"could not fetch Kafka {settings.kafka_version} jars from Maven Central "
            f"(mvn exit {done.returncode}):\n{output}",
        )
    (staging / ".complete").write_text(f"org.apache.kafka:kafka_2.13:{settings.kafka_version}\n")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    return lib


def _kafka_properties(settings: StackSettings, paths: StackPaths) -> str:
    """server.properties for a single-node KRaft cluster (broker and controller in one JVM)."""
    host = "127.0.0.1"
    broker = f"PLAINTEXT://{host}:{settings.kafka_port}"
    controller = f"CONTROLLER://{host}:{settings.kafka_controller_port}"
    auto_create = str(settings.kafka_auto_create_topics).lower()
    return f"""# Generated by deploy/stack.py on every start; edit StackSettings instead.
process.roles=broker,controller
node.id=1
# Dynamic quorum (KIP-853): formatted with --standalone, so no controller.quorum.voters.
controller.quorum.bootstrap.servers={host}:{settings.kafka_controller_port}
listeners={broker},{controller}
advertised.listeners={broker},{controller}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={paths.kafka_data}
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable={auto_create}
# One broker: every internal topic must have replication factor 1 or it can never be created.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: the first consumer group or transaction
# creates them, and 50 of each slows the first test down for nothing on one node.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
# Consumers join at once instead of waiting 3 s for more members: keeps tests fast.
group.initial.rebalance.delay.ms=0
log.retention.hours=168
"""


def _kafka_java_cmd(settings: StackSettings, paths: StackPaths, lib: Path, main: str) -> list[str]:
    heap = settings.kafka_heap_mb
    return [
        _require_binary("kafka", "java", ["default-jre-headless"]),
        f"-Xms{min(256, heap)}m", f"-Xmx{heap}m",
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={paths.logs}",
        "-cp", f"{lib}/*",
        main,
    ]  # fmt: skip


def _format_kafka_storage(settings: StackSettings, paths: StackPaths, lib: Path) -> None:
    """Format the log directory once, as a standalone KRaft controller, with a new cluster id."""
    if (paths.kafka_data / "meta.properties").exists():
        return
    # Kafka's own Uuid.randomUuid: url-safe base64 of 16 random bytes, never starting with "-"
    # (a leading dash would read as a command-line flag).
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    cmd = [
        *_kafka_java_cmd(settings, paths, lib, "kafka.tools.StorageTool"),
        "format", "--cluster-id", cluster_id, "--config", str(paths.kafka_config), "--standalone",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise StackError(
            "kafka", f"formatting storage in {paths.kafka_data} failed:\n{done.stdout}{done.stderr}"
        )


@dataclass
class _KafkaLaunch:
    """A broker that was started but not yet waited for (so other services start meanwhile).

    ``log_offset`` is the size of kafka.log at launch, so a failure shows this run's errors.
    """

    pid: int
    started_at: float
    log_offset: int = 0


def _launch_kafka(settings: StackSettings) -> _KafkaLaunch:
    """Fetch jars, format once, write the config and start the JVM detached; don't wait.

    When our broker process is already running (perhaps still starting), that one is returned.
    """
    paths = stack_paths(settings)
    _ensure_dirs(paths)
    existing = kafka_pid(settings)
    if existing is not None:
        return _KafkaLaunch(existing, time.monotonic(), _log_size(paths.kafka_log))
    lib = ensure_kafka_jars(settings)
    paths.kafka_data.mkdir(parents=True, exist_ok=True)
    started_at = time.monotonic()
    log_offset = _log_size(paths.kafka_log)
    paths.kafka_config.write_text(_kafka_properties(settings, paths))
    _format_kafka_storage(settings, paths, lib)
    cmd = [*_kafka_java_cmd(settings, paths, lib, "kafka.Kafka"), str(paths.kafka_config)]
    # Started through sh so the JVM is not our child: it outlives this process without becoming
    # a zombie we would have to reap, exactly like a daemon.  "$0" is the output file.
    launcher = ["sh", "-c", '"$@" </dev/null >>"$0" 2>&1 & echo $!', str(paths.kafka_out), *cmd]
    done = subprocess.run(
        launcher, capture_output=True, text=True, cwd=paths.kafka_dir, start_new_session=True,
        check=False,
    )  # fmt: skip
    try:
        pid = int(done.stdout.strip())
    except ValueError as exc:
        raise StackError("kafka", f"could not launch the JVM: {done.stderr.strip()}") from exc
    paths.kafka_pid.write_text(f"{pid}\n")
    return _KafkaLaunch(pid, started_at, log_offset)


def _wait_for_kafka(settings: StackSettings, launch: _KafkaLaunch) -> float:
    """Block until the broker answers; seconds it took.  On failure stop it and say why."""
    paths = stack_paths(settings)

    def diagnosis() -> str:
        errors = _log_errors(paths.kafka_log, launch.log_offset)
        tail = log_tail(paths.kafka_log, lines=10 if errors else LOG_TAIL_LINES)
        # kafka.out only has content when the JVM failed before log4j started.
        out = log_tail(paths.kafka_out) if _log_size(paths.kafka_out) else ""
        return "\n".join(part for part in (errors, tail, out) if part)

    deadline = launch.started_at + settings.kafka_start_timeout_s
    while True:
        if not pid_alive(launch.pid):
            raise StackError(
                "kafka",
                f"the broker (pid {launch.pid}) exited during startup.\n{diagnosis()}",
            )
        if kafka_healthy(settings.kafka_bootstrap, timeout_s=1.0):
            return time.monotonic() - launch.started_at
        if time.monotonic() > deadline:
            terminate_process(launch.pid, settings.stop_timeout_s)
            raise StackError(
                "kafka",
                f"not healthy at {settings.kafka_bootstrap} after "
                f"{settings.kafka_start_timeout_s:.0f} s; stopped it.\n{diagnosis()}",
            )
        time.sleep(POLL_INTERVAL_S)


def start_kafka(settings: StackSettings) -> float:
    """Start our broker unless Kafka already answers; seconds spent (0.0 if it was up).

    Data is kept across restarts, so ``stop_kafka`` then ``start_kafka`` simulates an outage.
    """
    if kafka_healthy(settings.kafka_bootstrap, settings.health_timeout_s):
        return 0.0
    if not settings.stack_manage_kafka:
        raise StackError(
            "kafka",
            f"not reachable at {settings.kafka_bootstrap}, and RIZZPAY_STACK_MANAGE_KAFKA=false "
            "says not to start one",
        )
    return _wait_for_kafka(settings, _launch_kafka(settings))


def stop_kafka(settings: StackSettings) -> int | None:
    """Stop our broker (SIGTERM: a controlled shutdown; SIGKILL after ``stop_timeout_s``).

    Returns the pid that was stopped, None if it was not running.  Leaves its data in place.
    """
    paths = stack_paths(settings)
    pid = kafka_pid(settings)
    if pid is not None:
        terminate_process(pid, settings.stop_timeout_s)
    paths.kafka_pid.unlink(missing_ok=True)
    return pid


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def _pg_bin_dir(settings: StackSettings) -> Path:
    """Where initdb, pg_ctl and psql are: configured, else the newest Debian version installed."""
    if settings.pg_bin_dir is not None:
        if not (settings.pg_bin_dir / "initdb").exists():
            raise StackError("postgres", f"no initdb in RIZZPAY_PG_BIN_DIR={settings.pg_bin_dir}")
        return settings.pg_bin_dir

    def newest() -> Path | None:
        found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
        numeric = [p for p in found if p.parent.name.isdigit()]
        return max(numeric, key=lambda p: int(p.parent.name), default=None)

    bin_dir = newest()
    if bin_dir is None:
        _apt_install("postgres", ["postgresql"])
        bin_dir = newest()
    if bin_dir is None:
        raise StackError("postgres", "initdb not found under /usr/lib/postgresql after install")
    return bin_dir


def _run_as_pg(
    cmd: Sequence[str], cwd: Path, timeout_s: float, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool as the ``postgres`` OS user: initdb and postgres refuse root.

    Uses subprocess's own uid switch (no runuser/PAM); as a non-root user runs it directly.
    """
    if os.geteuid() == 0:
        return subprocess.run(
            list(cmd), cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout_s,
            user=PG_OS_USER, group=PG_OS_USER, extra_groups=[], start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd),
                 "LC_ALL": "C.UTF-8"},
            check=False,
        )  # fmt: skip
    return subprocess.run(
        list(cmd), cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout_s,
        start_new_session=True, check=False,
    )  # fmt: skip


def _chown_pg(path: Path) -> None:
    """Give ``path`` to the postgres OS user (only meaningful when we run as root)."""
    if os.geteuid() == 0:
        shutil.chown(path, PG_OS_USER, PG_OS_USER)


def stored_pg_password(settings: StackSettings) -> str | None:
    """The generated password of the ``rizzpay`` role, from ``<home>/stack.env``, if any."""
    dsn = _read_env_file(stack_paths(settings).env_file).get("RIZZPAY_PG_DSN")
    if not dsn:
        return None
    password = urlsplit(dsn).password
    return unquote(password) if password else None


def managed_pg_dsn(settings: StackSettings, password: str | None = None) -> str:
    """The DSN of our PostgreSQL, with the stored password when there is one."""
    password = password if password is not None else stored_pg_password(settings)
    auth = PG_ROLE if password is None else f"{PG_ROLE}:{quote(password, safe='')}"
    return f"postgresql://{auth}@127.0.0.1:{settings.pg_port}/{PG_DATABASE}"


def _ensure_pg_password(settings: StackSettings) -> str:
    """The role's password: generated once and kept in stack.env (0600) across restarts.

    Only the DSN line is rewritten when the port changes; the password stays.
    """
    paths = stack_paths(settings)
    password = stored_pg_password(settings) or secrets.token_urlsafe(24)
    dsn = managed_pg_dsn(settings, password)
    if _read_env_file(paths.env_file).get("RIZZPAY_PG_DSN") != dsn:
        _write_env_value(paths.env_file, "RIZZPAY_PG_DSN", dsn)
    return password


def pg_endpoint(settings: StackSettings) -> str:
    """The DSN clients should use: ours (with its password) when managed, else the configured."""
    return managed_pg_dsn(settings) if settings.stack_manage_postgres else settings.pg_dsn


async def _pg_select_one(dsn: str, timeout_s: float) -> None:
    conn = await asyncpg.connect(dsn, timeout=timeout_s)
    try:
        await conn.fetchval("SELECT 1", timeout=timeout_s)
    finally:
        await conn.close(timeout=timeout_s)


def pg_healthy(dsn: str, timeout_s: float) -> bool:
    """True when ``dsn`` accepts a login and answers ``SELECT 1`` (checks the password too).

    Runs its own event loop in a worker thread, so it also works when called from async code.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(asyncio.run, _pg_select_one(dsn, timeout_s))
        try:
            future.result()
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
    return True


def postgres_pid(settings: StackSettings) -> int | None:
    """The postmaster's pid from its pid file, if that process is alive."""
    pid = read_pid(stack_paths(settings).pg_data / "postmaster.pid")
    return pid if pid is not None and pid_alive(pid) else None


def _pg_conf(settings: StackSettings, paths: StackPaths, bin_dir: Path) -> str:
    """Our settings, included from postgresql.conf and rewritten on every start."""
    lines = [
        "# Generated by deploy/stack.py on every start; edit StackSettings instead.",
        "listen_addresses = '127.0.0.1'",
        f"port = {settings.pg_port}",
        f"unix_socket_directories = '{paths.pg_socket_dir}'",
        f"max_connections = {settings.pg_max_connections}",
        "shared_buffers = 128MB",
        "password_encryption = 'scram-sha-256'",
        "timezone = 'UTC'",
        "log_timezone = 'UTC'",
    ]
    # TimescaleDB is used where installed (DESIGN.md); it must be preloaded to be creatable.
    if (bin_dir.parent / "lib" / "timescaledb.so").exists():
        lines += ["shared_preload_libraries = 'timescaledb'", "timescaledb.telemetry_level = off"]
    return "\n".join(lines) + "\n"


PG_HBA = """# Generated by deploy/stack.py.  TCP only from this machine, always with a password.
local   all   all                 peer
host    all   all   127.0.0.1/32  scram-sha-256
host    all   all   ::1/128       scram-sha-256
"""


def _init_postgres(settings: StackSettings, paths: StackPaths, bin_dir: Path) -> None:
    """initdb once (as ``postgres``), with our pg_hba and an include of our settings file."""
    paths.pg_root.mkdir(parents=True, exist_ok=True)
    paths.pg_socket_dir.mkdir(parents=True, exist_ok=True)
    for folder in (paths.pg_root, paths.pg_socket_dir):
        os.chmod(folder, 0o700)
        _chown_pg(folder)
    paths.pg_log.touch(exist_ok=True)
    _chown_pg(paths.pg_log)
    if (paths.pg_data / "PG_VERSION").exists():
        return
    probe = _run_as_pg(["test", "-w", str(paths.pg_root)], cwd=Path("/"), timeout_s=10)
    if probe.returncode != 0:
        raise StackError(
            "postgres",
            f"the {PG_OS_USER} OS user cannot write {paths.pg_root}; put RIZZPAY_HOME on a path "
            "every user can traverse",
        )
    done = _run_as_pg(
        [str(bin_dir / "initdb"), "-D", str(paths.pg_data), "-U", "postgres", "-E", "UTF8",
         "--locale=C", "--auth-local=peer", "--auth-host=scram-sha-256"],
        cwd=paths.pg_root, timeout_s=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise StackError("postgres", f"initdb failed:\n{done.stdout}{done.stderr}")
    hba = paths.pg_data / "pg_hba.conf"
    hba.write_text(PG_HBA)
    _chown_pg(hba)
    main_conf = paths.pg_data / "postgresql.conf"
    with main_conf.open("a") as f:
        f.write("\n# RizzPay local stack\ninclude_if_exists = 'rizzpay.conf'\n")


def _bootstrap_pg_role(settings: StackSettings, paths: StackPaths, bin_dir: Path, pw: str) -> None:
    """Create (or repair) the ``rizzpay`` role and database, as superuser over the socket.

    The role gets CREATEDB because tests create a database per test.  The password goes in on
    stdin, never on a command line that ``ps`` would show.
    """
    literal = pw.replace("'", "''")
    # Only our constants and the quote-escaped password are interpolated.
    sql = f"""
SELECT 'CREATE ROLE {PG_ROLE} LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_ROLE}')\\gexec
ALTER ROLE {PG_ROLE} WITH LOGIN CREATEDB PASSWORD '{literal}';
SELECT 'CREATE DATABASE {PG_DATABASE} OWNER {PG_ROLE}'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{PG_DATABASE}')\\gexec
"""  # noqa: S608
    done = _run_as_pg(
        [str(bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(paths.pg_socket_dir),
         "-p", str(settings.pg_port), "-U", "postgres", "-d", "postgres"],
        cwd=paths.pg_root, timeout_s=60, stdin=sql,
    )  # fmt: skip
    if done.returncode != 0:
        raise StackError("postgres", f"creating role/database failed:\n{done.stderr}")


def _pg_running(paths: StackPaths, bin_dir: Path) -> bool:
    if not (paths.pg_data / "PG_VERSION").exists():
        return False
    done = _run_as_pg([str(bin_dir / "pg_ctl"), "-D", str(paths.pg_data), "status"],
                      cwd=paths.pg_root, timeout_s=10)  # fmt: skip
    return done.returncode == 0


def start_postgres(settings: StackSettings) -> float:
    """Start our PostgreSQL unless the DSN already works; seconds spent (0.0 if it was up)."""
    if pg_healthy(pg_endpoint(settings), settings.health_timeout_s):
        return 0.0
    if not settings.stack_manage_postgres:
        raise StackError(
            "postgres",
            f"cannot log in at {_redact(settings.pg_dsn)}, and RIZZPAY_STACK_MANAGE_POSTGRES=false "
            "says not to start one",
        )
    started_at = time.monotonic()
    paths = stack_paths(settings)
    _ensure_dirs(paths)
    bin_dir = _pg_bin_dir(settings)
    password = _ensure_pg_password(settings)
    _init_postgres(settings, paths, bin_dir)
    conf = paths.pg_data / "rizzpay.conf"
    conf.write_text(_pg_conf(settings, paths, bin_dir))
    _chown_pg(conf)
    if not _pg_running(paths, bin_dir):
        timeout = settings.pg_start_timeout_s
        done = _run_as_pg(
            [str(bin_dir / "pg_ctl"), "-D", str(paths.pg_data), "-l", str(paths.pg_log),
             "-w", "-t", str(int(timeout)), "-s", "start"],
            cwd=paths.pg_root, timeout_s=timeout + 10,
        )  # fmt: skip
        if done.returncode != 0:
            raise StackError(
                "postgres",
                f"pg_ctl start failed (exit {done.returncode}) {done.stderr.strip()}\n"
                f"{log_tail(paths.pg_log)}",
            )
    _bootstrap_pg_role(settings, paths, bin_dir, password)
    dsn = managed_pg_dsn(settings, password)
    if not pg_healthy(dsn, settings.health_timeout_s):
        raise StackError(
            "postgres", f"started, but cannot log in at {_redact(dsn)}\n{log_tail(paths.pg_log)}"
        )
    return time.monotonic() - started_at


def stop_postgres(settings: StackSettings) -> int | None:
    """``pg_ctl stop -m fast`` (abort open transactions, shut down cleanly); pid or None."""
    paths = stack_paths(settings)
    pid = postgres_pid(settings)
    if pid is None:
        return None
    bin_dir = _pg_bin_dir(settings)
    timeout = settings.stop_timeout_s
    done = _run_as_pg(
        [str(bin_dir / "pg_ctl"), "-D", str(paths.pg_data), "-m", "fast", "-w",
         "-t", str(int(timeout)), "-s", "stop"],
        cwd=paths.pg_root, timeout_s=timeout + 10,
    )  # fmt: skip
    if done.returncode != 0 and pid_alive(pid):
        # "immediate" skips the shutdown checkpoint; WAL replay on the next start recovers.
        _run_as_pg(
            [str(bin_dir / "pg_ctl"), "-D", str(paths.pg_data), "-m", "immediate", "-w", "stop"],
            cwd=paths.pg_root, timeout_s=timeout + 10,
        )  # fmt: skip
    return pid


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


def redis_healthy(url: str, timeout_s: float) -> bool:
    """True when the server at ``url`` answers PING."""
    client = redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _is_our_redis(settings: StackSettings) -> Callable[[list[str]], bool]:
    # redis-server rewrites its argv to "redis-server 127.0.0.1:<port>".
    needle = f"127.0.0.1:{settings.redis_port}"
    return lambda argv: bool(argv) and "redis-server" in argv[0] and needle in " ".join(argv)


def redis_pid(settings: StackSettings) -> int | None:
    """The pid of the redis-server this stack started, if it is running."""
    return _find_process(stack_paths(settings).redis_pid, _is_our_redis(settings))


def start_redis(settings: StackSettings) -> float:
    """Start our own redis-server (not the system service); seconds spent (0.0 if it was up).

    Append-only persistence is on so a restart keeps rate-limit and idempotency state.
    """
    if redis_healthy(settings.redis_url, settings.health_timeout_s):
        return 0.0
    if not settings.stack_manage_redis:
        raise StackError(
            "redis",
            f"no PONG from {_redact(settings.redis_url)}, and RIZZPAY_STACK_MANAGE_REDIS=false "
            "says not to start one",
        )
    started_at = time.monotonic()
    paths = stack_paths(settings)
    _ensure_dirs(paths)
    paths.redis_dir.mkdir(parents=True, exist_ok=True)
    server = _require_binary("redis", "redis-server", ["redis-server"])
    if redis_pid(settings) is None:
        done = subprocess.run(
            [server, "--port", str(settings.redis_port), "--bind", "127.0.0.1",
             "--dir", str(paths.redis_dir), "--daemonize", "yes",
             "--pidfile", str(paths.redis_pid), "--logfile", str(paths.redis_log),
             "--appendonly", "yes"],
            capture_output=True, text=True, timeout=30, start_new_session=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise StackError(
                "redis",
                f"redis-server exited {done.returncode}: {done.stderr.strip()}\n"
                f"{log_tail(paths.redis_log)}",
            )
    deadline = started_at + settings.redis_start_timeout_s
    while not redis_healthy(settings.redis_url, settings.health_timeout_s):
        if time.monotonic() > deadline:
            raise StackError(
                "redis",
                f"no PONG from {settings.redis_url} after {settings.redis_start_timeout_s:.0f} s\n"
                f"{log_tail(paths.redis_log)}",
            )
        time.sleep(POLL_INTERVAL_S)
    return time.monotonic() - started_at


def stop_redis(settings: StackSettings) -> int | None:
    """SIGTERM our redis-server (it writes its data and exits); pid or None."""
    pid = redis_pid(settings)
    if pid is not None:
        terminate_process(pid, settings.stop_timeout_s)
    stack_paths(settings).redis_pid.unlink(missing_ok=True)
    return pid


# --------------------------------------------------------------------------------------------
# Processor sandboxes
# --------------------------------------------------------------------------------------------

# (sandbox name, the RIZZPAY_CONNECTORS_* variable workers read its URL from), in port order
# (sandbox.PROVIDERS; not imported so the stack does not load the sandboxes' apps).
SANDBOXES: tuple[tuple[str, str], ...] = (
    ("razorpay", "RIZZPAY_CONNECTORS_RAZORPAY_URL"),
    ("payu", "RIZZPAY_CONNECTORS_PAYU_URL"),
    ("stripe", "RIZZPAY_CONNECTORS_STRIPE_URL"),
    ("bank", "RIZZPAY_CONNECTORS_BANK_URL"),
)
SANDBOX_ADMIN_OFFSET = 100


def sandbox_urls(settings: StackSettings) -> dict[str, str]:
    """Each sandbox's API URL (what the connectors call)."""
    return {
        name: f"http://127.0.0.1:{settings.sandbox_port + i}"
        for i, (name, _) in enumerate(SANDBOXES)
    }


def _sandbox_files(settings: StackSettings) -> tuple[Path, Path]:
    home = settings.home.resolve()
    return home / "run" / "sandbox.pid", home / "logs" / "sandbox.log"


def sandbox_healthy(settings: StackSettings) -> bool:
    """True when every sandbox's admin API answers its health check."""
    for i in range(len(SANDBOXES)):
        port = settings.sandbox_port + SANDBOX_ADMIN_OFFSET + i
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/__sandbox/health", timeout=settings.health_timeout_s
            )
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
    return True


def _is_our_sandbox(settings: StackSettings) -> Callable[[list[str]], bool]:
    port = str(settings.sandbox_port)
    return lambda argv: "sandbox" in argv and "serve" in argv and port in argv


def sandbox_pid(settings: StackSettings) -> int | None:
    """The pid of the ``rizzpay sandbox serve`` this stack started, if it is running."""
    return _find_process(_sandbox_files(settings)[0], _is_our_sandbox(settings))


def start_sandbox(settings: StackSettings) -> float:
    """Start ``rizzpay sandbox serve`` detached; seconds spent (0.0 if it was up)."""
    if sandbox_healthy(settings):
        return 0.0
    if not settings.stack_manage_sandbox:
        raise StackError(
            "sandbox", "the sandboxes do not answer, and RIZZPAY_STACK_MANAGE_SANDBOX=false"
        )
    started_at = time.monotonic()
    pid_file, log_file = _sandbox_files(settings)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if sandbox_pid(settings) is None:
        with log_file.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "sandbox", "serve",
                 "--port", str(settings.sandbox_port),
                 "--latency-ms-min", str(settings.sandbox_latency_ms_min),
                 "--latency-ms-max", str(settings.sandbox_latency_ms_max),
                 "--upi-approve-ms", str(settings.sandbox_upi_approve_ms),
                 "--upi-expiry-ms", str(settings.sandbox_upi_expiry_ms),
                 "--neft-settle-ms", str(settings.sandbox_neft_settle_ms)],
                cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives `rizzpay stack up`
            )  # fmt: skip
        pid_file.write_text(f"{proc.pid}\n")
    deadline = started_at + settings.sandbox_start_timeout_s
    while not sandbox_healthy(settings):
        if time.monotonic() > deadline:
            raise StackError(
                "sandbox",
                f"no answer on ports {settings.sandbox_port}+ after "
                f"{settings.sandbox_start_timeout_s:.0f} s\n{log_tail(log_file)}",
            )
        time.sleep(POLL_INTERVAL_S)
    return time.monotonic() - started_at


def stop_sandbox(settings: StackSettings) -> int | None:
    """SIGTERM our sandboxes; pid or None."""
    pid = sandbox_pid(settings)
    if pid is not None:
        terminate_process(pid, settings.stop_timeout_s)
    _sandbox_files(settings)[0].unlink(missing_ok=True)
    return pid


# --------------------------------------------------------------------------------------------
# ClickHouse (embedded: report only)
# --------------------------------------------------------------------------------------------


def clickhouse_status(settings: StackSettings) -> ServiceStatus:
    """Report the ClickHouse DSN; ping it only when it names a server.

    A ``chdb://`` path is never opened here: one process per data path, and that process is the
    warehouse owner, not ``rizzpay stack status``.
    """
    dsn = settings.clickhouse_dsn
    parts = urlsplit(dsn)
    if parts.scheme not in ("http", "https"):
        return ServiceStatus(
            "clickhouse", "embedded", _redact(dsn), managed=False,
            detail="chDB in the owning process; no server to run",
        )  # fmt: skip
    base = urlunsplit((parts.scheme, parts.netloc, "/ping", "", ""))
    try:
        response = httpx.get(base, timeout=settings.health_timeout_s)
        ok = response.status_code == 200
        detail = "" if ok else f"/ping answered HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        ok, detail = False, f"/ping failed: {exc}"
    return ServiceStatus(
        "clickhouse", "up" if ok else "down", _redact(dsn), managed=False, detail=detail
    )


# --------------------------------------------------------------------------------------------
# The whole stack
# --------------------------------------------------------------------------------------------


def _managed(settings: StackSettings, name: ServiceName) -> bool:
    return {
        "kafka": settings.stack_manage_kafka,
        "postgres": settings.stack_manage_postgres,
        "redis": settings.stack_manage_redis,
        "sandbox": settings.stack_manage_sandbox,
        "clickhouse": False,
    }[name]


def service_status(settings: StackSettings, name: ServiceName) -> ServiceStatus:
    """Health, pid and endpoint of one service."""
    timeout = settings.health_timeout_s
    managed = _managed(settings, name)
    if name == "kafka":
        ok = kafka_healthy(settings.kafka_bootstrap, timeout)
        pid = kafka_pid(settings) if managed else None
        endpoint = settings.kafka_bootstrap
    elif name == "postgres":
        endpoint = pg_endpoint(settings)
        ok = pg_healthy(endpoint, timeout)
        pid = postgres_pid(settings) if managed else None
        endpoint = _redact(endpoint)
    elif name == "redis":
        ok = redis_healthy(settings.redis_url, timeout)
        pid = redis_pid(settings) if managed else None
        endpoint = _redact(settings.redis_url)
    elif name == "sandbox":
        ok = sandbox_healthy(settings)
        pid = sandbox_pid(settings) if managed else None
        endpoint = _sandbox_endpoint(settings)
    else:
        return clickhouse_status(settings)
    detail = "" if managed else "external (not managed by the stack)"
    if not ok and pid is not None:
        detail = "process running but not answering"
    return ServiceStatus(name, "up" if ok else "down", endpoint, managed, pid, detail)


def _sandbox_endpoint(settings: StackSettings) -> str:
    first = settings.sandbox_port
    return f"127.0.0.1:{first}-{first + len(SANDBOXES) - 1} (razorpay, payu, stripe, bank)"


def status(settings: StackSettings) -> list[ServiceStatus]:
    """Every service's status, checked concurrently so a down one costs one timeout, not three."""
    with ThreadPoolExecutor(max_workers=len(ALL_SERVICES)) as pool:
        return list(pool.map(lambda name: service_status(settings, name), ALL_SERVICES))


def _selected(services: Iterable[ServiceName] | None) -> list[ServiceName]:
    chosen = set(services) if services is not None else set(ALL_SERVICES)
    return [name for name in ALL_SERVICES if name in chosen]


def _record_endpoints(settings: StackSettings, chosen: Iterable[ServiceName]) -> None:
    """Write managed Kafka's and Redis's endpoints to stack.env.  Every other process (API,
    workers, tests) reads its endpoints from there, so a port chosen for ``up`` reaches them all
    without setting each endpoint by hand.  (The PostgreSQL DSN is written with its password.)"""
    env_file = stack_paths(settings).env_file
    if settings.stack_manage_kafka and "kafka" in chosen:
        _write_env_value(env_file, "RIZZPAY_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    if settings.stack_manage_redis and "redis" in chosen:
        _write_env_value(env_file, "RIZZPAY_REDIS_URL", settings.redis_url)
    if settings.stack_manage_sandbox and "sandbox" in chosen:
        # Workers authorize through the processors once their URLs are configured.
        urls = sandbox_urls(settings)
        for name, variable in SANDBOXES:
            _write_env_value(env_file, variable, urls[name])


PII_TOKEN_KEY_VARIABLE = "RIZZPAY_PII_TOKEN_KEY"  # noqa: S105  (the variable's name)


def _ensure_pii_token_key(env_file: Path) -> None:
    """Generate the API's PII token key (api/pii.py) once and keep it in stack.env (0600).

    Never replaced once written: a new key changes every device and IP token, which restarts
    those fraud features (docs/fraud.md)."""
    if not _read_env_file(env_file).get(PII_TOKEN_KEY_VARIABLE):
        env_file.parent.mkdir(parents=True, exist_ok=True)
        _write_env_value(env_file, PII_TOKEN_KEY_VARIABLE, secrets.token_hex(32))


def stack_up(
    settings: StackSettings, services: Iterable[ServiceName] | None = None
) -> list[ServiceStatus]:
    """Start every selected service that is not already healthy; their statuses afterwards.

    Kafka's JVM is launched first and waited for last, so PostgreSQL and Redis start while it
    boots.  Every service is attempted; failures are collected and raised together as one
    ``StackError`` naming them.  On success ``settings.pg_dsn`` carries the generated password,
    so the caller can connect without reloading settings.
    """
    chosen = _selected(services)
    errors: list[StackError] = []
    notes: dict[ServiceName, str] = {}

    def noted(name: ServiceName, seconds: float) -> None:
        notes[name] = "already running" if seconds == 0.0 else f"started in {seconds:.1f} s"

    launch: _KafkaLaunch | None = None
    if "kafka" in chosen:
        try:
            if kafka_healthy(settings.kafka_bootstrap, settings.health_timeout_s):
                noted("kafka", 0.0)
            elif not settings.stack_manage_kafka:
                start_kafka(settings)  # raises the "not reachable, not managed" error
            else:
                launch = _launch_kafka(settings)
        except StackError as exc:
            errors.append(exc)
    starters: tuple[tuple[ServiceName, Callable[[StackSettings], float]], ...] = (
        ("postgres", start_postgres),
        ("redis", start_redis),
        ("sandbox", start_sandbox),
    )
    for name, start in starters:
        if name in chosen:
            try:
                noted(name, start(settings))
            except StackError as exc:
                errors.append(exc)
    if launch is not None:
        try:
            noted("kafka", _wait_for_kafka(settings, launch))
        except StackError as exc:
            errors.append(exc)
    if settings.stack_manage_postgres and "postgres" in chosen:
        settings.pg_dsn = managed_pg_dsn(settings)
    if errors:
        raise StackError.combine(errors)
    _record_endpoints(settings, chosen)
    _ensure_pii_token_key(stack_paths(settings).env_file)
    rows = [service_status(settings, name) for name in chosen]
    return [
        ServiceStatus(r.name, r.state, r.endpoint, r.managed, r.pid, notes.get(r.name, r.detail))
        for r in rows
    ]


def stack_down(
    settings: StackSettings, services: Iterable[ServiceName] | None = None
) -> list[ServiceStatus]:
    """Stop the selected services this stack manages; external ones are left running.

    Data stays under ``home``; the next ``up`` resumes from it.
    """
    stoppers: dict[ServiceName, Callable[[StackSettings], int | None]] = {
        "kafka": stop_kafka,
        "postgres": stop_postgres,
        "redis": stop_redis,
        "sandbox": stop_sandbox,
    }
    rows: list[ServiceStatus] = []
    for name in _selected(services):
        if name == "clickhouse":
            continue
        if not _managed(settings, name):
            current = service_status(settings, name)
            rows.append(ServiceStatus(
                name, current.state, current.endpoint, False, None, "external; left alone"
            ))  # fmt: skip
            continue
        endpoint = (
            _redact(pg_endpoint(settings)) if name == "postgres"
            else settings.kafka_bootstrap if name == "kafka"
            else _sandbox_endpoint(settings) if name == "sandbox"
            else _redact(settings.redis_url)
        )  # fmt: skip
        started = time.monotonic()
        pid = stoppers[name](settings)
        detail = (
            "was not running" if pid is None
            else f"stopped pid {pid} in {time.monotonic() - started:.1f} s"
        )  # fmt: skip
        rows.append(ServiceStatus(name, "down", endpoint, True, None, detail))
    return rows


def env_exports(settings: StackSettings) -> dict[str, str]:
    """The ``RIZZPAY_*`` variables a shell needs to reach this stack (passwords included)."""
    return {
        "RIZZPAY_HOME": str(settings.home),
        "RIZZPAY_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "RIZZPAY_PG_DSN": pg_endpoint(settings),
        "RIZZPAY_REDIS_URL": settings.redis_url,
        "RIZZPAY_CLICKHOUSE_DSN": settings.clickhouse_dsn,
        **{variable: sandbox_urls(settings)[name] for name, variable in SANDBOXES},
    }
