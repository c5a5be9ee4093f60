"""The warehouse sink runs the AML rules itself: planted traffic goes through Kafka into the
sink's own embedded ClickHouse (chDB), and the cases open without anyone calling ``aml run``.

The sink runs as ``rizzpay warehouse sink --stop-when-caught-up`` in a subprocess with a chDB
path under tmp_path (one engine per process), as in test_sinks.py; the sink's clock is the real
one, so the traffic is placed in the open IST month.  Which periods are due at which instant is
tested with an injected clock in tests/unit/test_aml_schedule.py.

That the sink keeps consuming while a run is in progress is tested in this process instead (a
chDB path under tmp_path), so that the test can hold the run's rule step until it has seen the
sink load traffic sent in the meantime.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from confluent_kafka import Producer
from pydantic import BaseModel

from models.config import REPO_ROOT, ServiceEndpoints
from models.events import PaymentAuthorized, PaymentCaptured, PaymentRequested, encode
from models.ids import derived_event_id, new_event_id, payment_id_for
from models.methods import UpiMethod
from models.money import Money
from models.topics import PAYMENTS_LIFECYCLE, PAYMENTS_REQUESTED
from tests.conftest import wait_for
from warehouse.aml import monitor, rules
from warehouse.aml.cases import list_cases
from warehouse.aml.schedule import FINAL, LEADER_LOCK_KEY, MONTH_TO_DATE, previous_month
from warehouse.aml.settings import AmlSettings
from warehouse.reports.gst import ist_month_of, ist_month_window
from warehouse.sinks.consumer import SinkSettings, WarehouseSink

pytestmark = pytest.mark.integration

BIG = "cust_sched_big"
LAKH_MINOR = 1_00_000 * 100


def _traffic(now: datetime) -> tuple[list[BaseModel], list[BaseModel]]:
    """Three captured ₹4 lakh UPI payments by BIG (over ₹10 lakh in the month, and round
    amounts), and ten ordinary captured payments by other customers that trip no rule."""
    start, _ = ist_month_window(ist_month_of(now))
    requested: list[BaseModel] = []
    lifecycle: list[BaseModel] = []
    plan = [(BIG, 4 * LAKH_MINOR, "big@okaxis")] * 3
    plan += [(f"cust_sched_{i}", 1_234_00 + i, f"c{i}@okhdfc") for i in range(10)]
    for i, (customer, minor, vpa) in enumerate(plan):
        # Inside the open month even just after it began.
        at = max(start + timedelta(seconds=30), now - timedelta(minutes=i + 1))
        merchant = "m_sched"
        pid = payment_id_for(merchant, f"sched-{uuid.uuid4().hex}")
        money = Money(minor=minor, currency="INR")
        common = {"payment_id": pid, "merchant_id": merchant}
        requested.append(
            PaymentRequested(
                event_id=new_event_id(),
                occurred_at=at,
                request_fingerprint=hashlib.sha256(pid.encode()).hexdigest(),
                amount=money,
                method=UpiMethod(vpa=vpa),
                customer_id=customer,
                **common,
            )
        )
        later = at + timedelta(seconds=2)
        lifecycle.append(
            PaymentAuthorized(
                event_id=derived_event_id(pid, "authorized"), occurred_at=later, amount=money,
                method_type="upi", **common,
            )
        )  # fmt: skip
        lifecycle.append(
            PaymentCaptured(
                event_id=derived_event_id(pid, "captured"), occurred_at=later, amount=money,
                **common,
            )
        )  # fmt: skip
    return requested, lifecycle


def _produce(prefix: str, requested: list[BaseModel], lifecycle: list[BaseModel]) -> None:
    producer = Producer(
        {"bootstrap.servers": ServiceEndpoints().kafka_bootstrap, "enable.idempotence": True}
    )
    for spec, events in ((PAYMENTS_REQUESTED, requested), (PAYMENTS_LIFECYCLE, lifecycle)):
        for event in events:
            key = event.payment_id.encode()  # type: ignore[attr-defined]
            producer.produce(spec.full_name(prefix), key=key, value=encode(event))
    assert producer.flush(30) == 0


def _rizzpay(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"rizzpay {' '.join(args)} failed:\n{done.stderr[-4000:]}"
    return done.stdout


def _sink(env: dict[str, str], group: str) -> None:
    _rizzpay(
        env,
        *("warehouse", "sink", "--stop-when-caught-up", "--group", group),
        *("--batch-max-wait-ms", "200", "--lag-interval-s", "0.5", "--log-level", "warning"),
        *("--aml-interval-s", "3600", "--aml-final-grace-s", "3600"),
    )


def _runs(env: dict[str, str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in _rizzpay(env, "aml", "runs").splitlines()]


async def test_the_sink_runs_the_aml_schedule_as_leader_only(
    pg_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    period = ist_month_of(now)
    requested, lifecycle = _traffic(now)
    _produce(topic_prefix, requested, lifecycle)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIZZPAY_")}
    env.update(
        RIZZPAY_PG_DSN=pg_dsn,
        RIZZPAY_TOPIC_PREFIX=topic_prefix,
        RIZZPAY_KAFKA_BOOTSTRAP=ServiceEndpoints().kafka_bootstrap,
        RIZZPAY_CLICKHOUSE_DSN=f"chdb://{tmp_path / 'ch'}",
    )
    group = f"{topic_prefix}sink"
    conn = await asyncpg.connect(pg_dsn)
    try:
        # Another replica leads: this sink loads the traffic but runs no rules.
        holder = await asyncpg.connect(pg_dsn)
        try:
            assert await holder.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", LEADER_LOCK_KEY
            )
            _sink(env, group)
        finally:
            await holder.close()  # the leader dies: its lock goes with its connection
        assert _runs(env) == []
        assert await list_cases(conn) == []

        # Now this sink leads: the loaded month opens its cases, nobody called `aml run`.
        _sink(env, group)
        cases = await list_cases(conn, period=period)
        assert {(c["rule"], c["subject_id"]) for c in cases} == {
            (rules.MONTHLY_TOTAL, BIG),
            (rules.ROUND_AMOUNTS, BIG),
        }
        total = next(c for c in cases if c["rule"] == rules.MONTHLY_TOTAL)
        assert (total["amount_minor"], total["transaction_count"]) == (12 * LAKH_MINOR, 3)
        runs = _runs(env)
        by_kind = {(r["period"], r["kind"]): r for r in runs}
        assert set(by_kind) == {(period, MONTH_TO_DATE), (previous_month(period), FINAL)}
        mtd = by_kind[(period, MONTH_TO_DATE)]
        assert (mtd["alerts"], mtd["cases_opened"], mtd["error"]) == (2, 2, None)
        assert mtd["finished_at"] is not None
        assert by_kind[(previous_month(period), FINAL)]["cases_opened"] == 0

        # Run again: the open month is checked once more and opens nothing new; the closed
        # month's final run is not repeated.
        _sink(env, group)
        assert len(await list_cases(conn, period=period)) == 2
        runs = _runs(env)
        assert [(r["period"], r["kind"]) for r in runs].count((previous_month(period), FINAL)) == 1
        latest = runs[0]
        assert (latest["kind"], latest["cases_opened"], latest["already_raised"]) == (
            MONTH_TO_DATE,
            0,
            2,
        )
    finally:
        await conn.close()


async def test_the_sink_keeps_consuming_while_the_aml_rules_run(
    pg_dsn: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An AML run holds its rule queries until the test releases it; the test publishes the
    month's traffic only once the run has started, and releases it only after seeing the sink
    load that traffic into both stores.  A sink that stopped consuming during a run would never
    get there.  The released run then finds the cases in the traffic it loaded meanwhile."""
    started, release = threading.Event(), threading.Event()
    real_rules = rules.run_rules

    def gated_rules(client: Any, database: str, period: str, settings: AmlSettings) -> Any:
        started.set()
        if not release.wait(timeout=300):
            raise TimeoutError("the test never released the AML run")
        return real_rules(client, database, period, settings)

    monkeypatch.setattr(monitor, "run_rules", gated_rules)
    now = datetime.now(UTC)
    period = ist_month_of(now)
    settings = SinkSettings(
        kafka_bootstrap=ServiceEndpoints().kafka_bootstrap,
        pg_dsn=pg_dsn,
        clickhouse_dsn=f"chdb://{tmp_path / 'ch'}",
        topic_prefix=topic_prefix,
        batch_max_wait_s=0.2,
        lag_interval_s=0.5,
        aml=AmlSettings(),
        aml_check_interval_s=3600,
    )
    sink = await WarehouseSink.open(settings)
    running = asyncio.create_task(sink.run())
    conn = await asyncpg.connect(pg_dsn)
    try:
        await wait_for(lambda: _is_set(started), timeout_s=60, what="the AML run to start")
        requested, lifecycle = _traffic(now)
        _produce(topic_prefix, requested, lifecycle)
        events = len(requested) + len(lifecycle)

        async def loaded() -> bool:
            logged = await conn.fetchval("SELECT count(*) FROM payment_event_log")
            in_clickhouse = sink.clickhouse.totals()
            return bool(
                logged == events
                and in_clickhouse["payments"][0] == len(requested)
                and in_clickhouse.get("payment_events:payment.captured", (0, 0))[0]
                == len(requested)
            )

        await wait_for(loaded, timeout_s=120, what="the sink to load traffic sent mid-run")
        # The run that was under way when the traffic was sunk has still not finished.
        assert not running.done()
        in_progress = await conn.fetch(
            "SELECT kind FROM aml_runs WHERE finished_at IS NULL AND error IS NULL"
        )
        assert len(in_progress) == 1
        release.set()

        async def finished() -> bool:
            runs = await conn.fetch("SELECT period, kind, finished_at, error FROM aml_runs")
            mtd = [r for r in runs if (r["period"], r["kind"]) == (period, MONTH_TO_DATE)]
            return bool(mtd) and all(r["finished_at"] is not None for r in runs)

        await wait_for(finished, timeout_s=120, what="the released AML run to finish")
        cases = await list_cases(conn, period=period)
        assert {(c["rule"], c["subject_id"]) for c in cases} == {
            (rules.MONTHLY_TOTAL, BIG),
            (rules.ROUND_AMOUNTS, BIG),
        }
    finally:
        release.set()
        sink.stop()
        await running
        await conn.close()


async def _is_set(event: threading.Event) -> bool:
    return event.is_set()
