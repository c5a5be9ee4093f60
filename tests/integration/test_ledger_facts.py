"""Ledger postings and settlement batches copied from PostgreSQL into ClickHouse by the real
``rizzpay warehouse sink`` (its own chDB path, in a subprocess), then compared with the book of
record: per-account totals equal to the paisa, before and after a full replay of the copy.  The
same runs load fraud scores from ``payments.scored``, a duplicate send included.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from confluent_kafka import Producer

from models.config import REPO_ROOT, ServiceEndpoints
from models.events import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDisputeLost,
    PaymentDisputeOpened,
    PaymentRefunded,
    PaymentScored,
    encode,
)
from models.ids import derived_event_id
from models.money import Money
from models.topics import PAYMENTS_SCORED
from streams.fees import MdrSchedule
from streams.ledger import FeeTerms, JournalEntry, entry_for
from tests.conftest import Merchant
from warehouse.payments import post_entries

pytestmark = pytest.mark.integration

FEES = FeeTerms(
    schedule=MdrSchedule(default_bps=200, method_bps={"card": 190}),
    method="card",
    merchant_state="27",
    gateway_state="29",
)


def _entries(merchant_id: str, n: int, seed: int) -> list[JournalEntry]:
    """Authorizations and captures of ``n`` payments, with some refunds and chargebacks."""
    rng = random.Random(seed)
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    out: list[JournalEntry] = []
    for i in range(n):
        pid = f"pay_{seed:04d}{i:022d}"
        amount = Money(minor=rng.randint(100, 5_00_000_00), currency="INR")
        base = {"payment_id": pid, "merchant_id": merchant_id, "occurred_at": at}
        events = [
            PaymentAuthorized(
                event_id=derived_event_id(pid, "authorized"),
                amount=amount,
                method_type="card",
                **base,
            ),
            PaymentCaptured(event_id=derived_event_id(pid, "captured"), amount=amount, **base),
        ]
        if i % 7 == 0:
            events.append(
                PaymentRefunded(
                    event_id=derived_event_id(pid, "refunded"),
                    refund_id=f"rfd_{seed:04d}{i:08d}",
                    amount=Money(minor=amount.minor // 2, currency="INR"),
                    **base,
                )
            )
        if i % 11 == 0:
            dispute = {"dispute_id": f"dsp_{seed:04d}{i:08d}", "amount": amount}
            events.append(
                PaymentDisputeOpened(
                    event_id=derived_event_id(pid, "dispute_opened"),
                    evidence_due_at=at + timedelta(days=7),
                    **dispute,
                    **base,
                )
            )
            events.append(
                PaymentDisputeLost(
                    event_id=derived_event_id(pid, "dispute_lost"), **dispute, **base
                )
            )
        for event in events:
            entry = entry_for(event, FEES)
            assert entry is not None
            out.append(entry)
    return out


async def _post(pg: asyncpg.Pool, entries: list[JournalEntry], per_tx: int = 50) -> None:
    async with pg.acquire() as conn:
        for i in range(0, len(entries), per_tx):
            async with conn.transaction():
                await post_entries(conn, entries[i : i + per_tx])


async def _ledger(pg: asyncpg.Pool) -> tuple[dict[str, int], int]:
    rows = await pg.fetch("SELECT account_id, sum(amount_minor) AS s FROM postings GROUP BY 1")
    count = await pg.fetchval("SELECT count(*) FROM postings")
    return {r["account_id"]: int(r["s"]) for r in rows}, int(count)


def _rizzpay(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"rizzpay {' '.join(args)} failed:\n{done.stderr[-4000:]}"
    return done.stdout


def _warehouse(
    env: dict[str, str],
) -> tuple[dict[str, int], int, int, list[tuple[str, str, int]], dict[str, int]]:
    """Per-account totals (FINAL), rows (FINAL), rows as stored, and settlement batches
    (id, status, net), in one ``warehouse query`` (each one starts a process)."""
    sql = """
        SELECT 'account' AS k, account_id AS a, '' AS b, sum(amount_minor) AS n
          FROM rizzpay.ledger_postings FINAL GROUP BY account_id
        UNION ALL SELECT 'final', '', '', count() FROM rizzpay.ledger_postings FINAL
        UNION ALL SELECT 'stored', '', '', count() FROM rizzpay.ledger_postings
        UNION ALL SELECT 'batch', batch_id, status, net_minor
          FROM rizzpay.settlement_batches FINAL
        UNION ALL SELECT 'score', decision, '', count() FROM rizzpay.fraud_scores FINAL
         GROUP BY decision"""
    rows = [json.loads(line) for line in _rizzpay(env, "warehouse", "query", sql).splitlines()]
    totals = {r["a"]: int(r["n"]) for r in rows if r["k"] == "account"}
    (final,) = [int(r["n"]) for r in rows if r["k"] == "final"]
    (stored,) = [int(r["n"]) for r in rows if r["k"] == "stored"]
    batches = sorted((r["a"], r["b"], int(r["n"])) for r in rows if r["k"] == "batch")
    scores = {r["a"]: int(r["n"]) for r in rows if r["k"] == "score"}
    return totals, final, stored, batches, scores


def _sink(env: dict[str, str], *extra: str) -> str:
    return _rizzpay(
        env,
        *("warehouse", "sink", "--stop-when-caught-up", "--log-level", "warning"),
        *("--batch-max-wait-ms", "200", "--lag-interval-s", "0.5", *extra),
    )


def _produce_scores(prefix: str, n: int) -> list[PaymentScored]:
    """``n`` scoring verdicts on ``payments.scored`` (from the registry's example), the first
    one sent twice."""
    (example,) = [p for p in PAYMENTS_SCORED.examples() if p.name.startswith("payment.scored")]
    template = PAYMENTS_SCORED.decode_as(example.read_bytes(), PaymentScored)
    decisions = ("allow", "allow", "review", "block")
    events = [
        template.model_copy(
            update={
                "event_id": f"evt_facts{i:020d}",
                "payment_id": f"pay_facts{i:021d}",
                "decision": decisions[i % 4],
            }
        )
        for i in range(n)
    ]
    producer = Producer({"bootstrap.servers": ServiceEndpoints().kafka_bootstrap})
    for event in [*events, events[0]]:
        producer.produce(
            PAYMENTS_SCORED.full_name(prefix), key=event.payment_id.encode(), value=encode(event)
        )
    assert producer.flush(30) == 0
    return events


async def _settlement_batch(pg: asyncpg.Pool, merchant_id: str, batch_id: str) -> None:
    t = datetime(2026, 11, 3, 18, 30, tzinfo=UTC)
    await pg.execute(
        """INSERT INTO settlement_batches (batch_id, merchant_id, currency, cutoff,
            settlement_date, instant, status, line_count, captured_minor, refunds_minor,
            disputes_minor, adjustments_minor, fees_minor, gst_minor, reserve_withheld_minor,
            reserve_released_minor, instant_fee_minor, instant_fee_gst_minor, net_minor,
            created_at, updated_at)
           VALUES ($1, $2, 'INR', $3::timestamptz, $3::date, false, 'payout_pending', 1,
                   100000, 0, 0, 0, 2000, 360, 0, 0, 0, 0, 97640, $3, $3)""",
        batch_id,
        merchant_id,
        t,
    )


async def test_warehouse_postings_equal_the_ledger_after_a_replay(
    pg: asyncpg.Pool, pg_dsn: str, topic_prefix: str, merchant: Merchant, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIZZPAY_")}
    env.update(
        RIZZPAY_PG_DSN=pg_dsn,
        RIZZPAY_TOPIC_PREFIX=topic_prefix,
        RIZZPAY_KAFKA_BOOTSTRAP=ServiceEndpoints().kafka_bootstrap,
        RIZZPAY_CLICKHOUSE_DSN=f"chdb://{tmp_path / 'ch'}",
    )
    first = _entries(merchant.merchant_id, 150, seed=1)
    await _post(pg, first)
    await _settlement_batch(pg, merchant.merchant_id, "b_facts_1")

    scored = _produce_scores(topic_prefix, 40)
    out = _sink(env)
    ledger, count = await _ledger(pg)
    assert f"postings copied {count}" in out
    totals, final, stored, batches, scores = _warehouse(env)
    assert totals == ledger
    assert final == stored == count
    assert scores == dict(Counter(e.decision for e in scored))
    assert sum(totals.values()) == 0  # double entry survives the copy
    assert batches == [("b_facts_1", "payout_pending", 97640)]

    # More entries, a batch paid out; the next run copies only what is new.
    await _post(pg, _entries(merchant.merchant_id, 60, seed=2))
    await pg.execute(
        "UPDATE settlement_batches SET status = 'paid', updated_at = updated_at + "
        "interval '1 hour' WHERE batch_id = 'b_facts_1'"
    )
    out = _sink(env)
    ledger, count2 = await _ledger(pg)
    assert f"postings copied {count2 - count}" in out
    assert "settlement rows copied 1" in out

    # A replay from the start writes every posting again; FINAL still sees each once.
    out = _sink(env, "--replay-facts")
    assert f"postings copied {count2}" in out
    totals, final, stored, batches, scores = _warehouse(env)
    assert totals == ledger
    assert final == count2
    assert stored >= count2  # copies not yet merged are still there, and FINAL hides them
    assert batches == [("b_facts_1", "paid", 97640)]
