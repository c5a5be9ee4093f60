"""RizzPay's own processes (the API, the workers, the warehouse sink and the report scheduler)
run detached, with pid files under ``<home>/run``, so ``make run`` can leave them serving and
``make down`` can stop them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from deploy.stack import pid_alive, read_pid, terminate_process
from models.config import REPO_ROOT

# The warehouse sink owns the embedded ClickHouse path (one process per chDB path); the report
# scheduler is leader-only (a PostgreSQL advisory lock), so one of each.
APP_NAMES: tuple[str, ...] = ("api", "worker", "warehouse-sink", "report-scheduler")
# A clean Faust shutdown commits offsets and leaves the group; give it time before SIGKILL.
APP_STOP_TIMEOUT_S = 20.0


def _pid_file(home: Path, name: str) -> Path:
    return home / "run" / f"{name}.pid"


def running_pid(home: Path, name: str) -> int | None:
    pid = read_pid(_pid_file(home, name))
    return pid if pid is not None and pid_alive(pid) else None


def start_app(
    home: Path, name: str, args: Sequence[str], env: Mapping[str, str] | None = None
) -> int:
    """Start ``rizzpay <args>`` detached as ``name`` unless it is running; returns its pid."""
    pid = running_pid(home, name)
    if pid is not None:
        return pid
    (home / "run").mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    log = (home / "logs" / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO_ROOT,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # outlives the command that started it
    )
    _pid_file(home, name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop_app(home: Path, name: str) -> int | None:
    """Stop ``name`` if it runs; returns the pid stopped."""
    pid = running_pid(home, name)
    if pid is not None:
        terminate_process(pid, APP_STOP_TIMEOUT_S)
    _pid_file(home, name).unlink(missing_ok=True)
    return pid


def wait_http_ok(url: str, *, timeout_s: float, pid: int | None = None) -> None:
    """Wait until ``url`` answers 200; raise with a clear message if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            raise RuntimeError(f"process {pid} serving {url} exited; see its log")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")
