"""``rizzpay aml`` as an operator runs it: real processes against the test's PostgreSQL and an
embedded ClickHouse of their own (the rules themselves are tested in test_aml.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from models.config import REPO_ROOT, ServiceEndpoints
from warehouse.aml import rules
from warehouse.aml.cases import open_cases

pytestmark = pytest.mark.integration


def _rizzpay(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == expect, f"rizzpay {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done


async def test_operator_runs_cases_str_and_fiu_report(
    pg: asyncpg.Pool, pg_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIZZPAY_")}
    env.update(
        RIZZPAY_PG_DSN=pg_dsn,
        RIZZPAY_TOPIC_PREFIX=topic_prefix,
        RIZZPAY_KAFKA_BOOTSTRAP=ServiceEndpoints().kafka_bootstrap,
        RIZZPAY_CLICKHOUSE_DSN=f"chdb://{tmp_path / 'ch'}",
    )
    _rizzpay(env, "migrate")
    summary = json.loads(_rizzpay(env, "aml", "run", "--period", "2026-10").stdout)
    assert summary["alerts"] == 0 and summary["cases_opened"] == 0  # an empty warehouse
    (run,) = [json.loads(line) for line in _rizzpay(env, "aml", "runs").stdout.splitlines()]
    assert (run["period"], run["kind"], run["alerts"], run["cases_opened"]) == (
        "2026-10",
        "manual",
        0,
        0,
    )

    alerts = [
        rules.Alert(rules.MONTHLY_TOTAL, "2026-10", "customer", f"c{i}", 11_00_000_00, 12, {})
        for i in range(2)
    ]
    async with pg.acquire() as conn:
        opened = await open_cases(conn, alerts, now=datetime(2026, 11, 1, tzinfo=UTC))
    keep, close = opened.opened

    lines = _rizzpay(env, "aml", "cases", "--status", "open").stdout.splitlines()
    assert sorted(json.loads(line)["case_id"] for line in lines) == sorted(opened.opened)

    _rizzpay(env, "aml", "close", close, "--reason", "known payroll", "--actor", "ana")
    refused = _rizzpay(env, "aml", "close", close, "--reason", "x", "--actor", "ana", expect=2)
    assert "case_not_open" in refused.stderr

    draft = json.loads(
        _rizzpay(
            env,
            *("aml", "escalate", keep, "--grounds", "splits", "--actor", "mlro"),
            *("--determined-at", "2026-10-30T17:00+05:30"),
        ).stdout
    )
    assert draft["due_on"] == "2026-11-10"
    on_time = _rizzpay(env, "aml", "str", "--overdue", "--today", "2026-11-10")
    assert on_time.stdout == ""
    late = _rizzpay(env, "aml", "str", "--overdue", "--today", "2026-11-11", expect=3)
    assert json.loads(late.stdout)["str_id"] == draft["str_id"]
    _rizzpay(
        env,
        *("aml", "str", "--file", draft["str_id"], "--reference", "ACK-1", "--actor", "mlro"),
        *("--filed-on", "2026-11-11"),
    )
    _rizzpay(env, "aml", "str", "--overdue", "--today", "2026-11-20")  # filed: not overdue

    out = tmp_path / "fiu-2026-10.json"
    _rizzpay(env, "aml", "fiu-report", "--period", "2026-10", "--out", str(out))
    report = json.loads(out.read_text())
    assert report["format"] == "rizzpay.fiu-monthly/1"
    assert len(report["threshold_reports"]) == 2
    assert report["suspicious_reports"][0]["status"] == "filed"
