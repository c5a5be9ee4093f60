"""Reports framework against the real PostgreSQL schema: the daily settlement and RBI reports
on a settled, paid-out day; byte-identical re-runs and fingerprints that move with the inputs;
a corrupted row blocking publication with a message naming it; the leader-only scheduler driven
by an injected clock.

The day: merchant ``m_rep_pune`` (state 27, gateway 29, so IGST) captures ₹1,000.00 and
₹2,499.99 by card at 190 bp on 3 Nov 2026 (IST).  Fees 1900 + 4750 = 6650 paise, IGST 342 + 855
= 1197, net 97758 + 244394 = 342152.  T+1: the batch is settled on 4 Nov and paid with a UTR
dated 4 Nov.  ``m_rep_blr`` captures ₹500.00 the same day but has no payout account: its batch
is held, so for RBI its capture missed T+1.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from cli.main import main
from models.config import REPO_ROOT
from streams.fees import MdrSchedule
from streams.settlement import ist_date
from tests.integration.test_gst_report import _gstin, capture, post_at
from warehouse.merchants import create_merchant
from warehouse.reports.framework import list_runs, load_outputs, run_report
from warehouse.reports.kinds import report_kinds
from warehouse.reports.rbi import record_failed_transaction, record_reversal
from warehouse.reports.scheduler import ReportScheduler
from warehouse.settlement_store import (
    PlatformTerms,
    complete_payout,
    configure_merchant,
    settle_merchant,
)

pytestmark = pytest.mark.integration

MDR = MdrSchedule(default_bps=200, method_bps={"card": 190})
TERMS = PlatformTerms(gateway_state="29", default_mdr=MDR)
KINDS = report_kinds(gateway_state="29")
DAY = "2026-11-04"
T = datetime.fromisoformat("2026-11-03T10:00:00+05:30")
SETTLED_AT = datetime.fromisoformat("2026-11-04T10:00:00+05:30")
PAID_AT = datetime.fromisoformat("2026-11-04T15:00:00+05:30")
UTR = "HDFCR52026110400000001"


async def _a_settled_day(conn: asyncpg.Connection, *, pay: bool = True) -> str:
    await create_merchant(conn, "m_rep_pune", "Pune Traders", "27", gstin=_gstin("27"))
    await create_merchant(conn, "m_rep_blr", "Bengaluru Kirana", "29")
    await configure_merchant(
        conn,
        "m_rep_pune",
        now=T,
        holder_name="Pune Traders",
        account_number="123456789012",
        ifsc="HDFC0001234",
    )
    await post_at(
        conn,
        [capture("m_rep_pune", "27", 1_000_00, T), capture("m_rep_pune", "27", 2_499_99, T)],
        T,
    )
    await post_at(conn, [capture("m_rep_blr", "29", 500_00, T)], T)
    pune = await settle_merchant(
        conn, "m_rep_pune", now=SETTLED_AT, terms=TERMS, settlement_date=ist_date(SETTLED_AT)
    )
    blr = await settle_merchant(
        conn, "m_rep_blr", now=SETTLED_AT, terms=TERMS, settlement_date=ist_date(SETTLED_AT)
    )
    assert pune is not None and pune.status == "payout_pending" and pune.net_minor == 342152
    assert blr is not None and blr.status == "held"
    if pay:
        await complete_payout(conn, pune.batch_id, UTR, now=PAID_AT, amount_minor=342152)
    return pune.batch_id


async def test_daily_settlement_report_matches_the_ledger_and_reruns_byte_identical(
    pg_dsn: str,
) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        batch_id = await _a_settled_day(conn)
        now = datetime.fromisoformat("2026-11-05T01:00:00+05:30")
        first = await run_report(conn, KINDS["settlement"], DAY, now=now)
        assert first.status == "published", first.quality.to_json()
        doc = json.loads(first.outputs[f"settlement-{DAY}.json"])
        summary = doc["summary"]
        assert summary["batches_by_status"] == {"held": 1, "paid": 1}
        released = summary["released"]
        assert (released["captured_minor"], released["fees_minor"], released["gst_minor"]) == (
            349999,
            6650,
            1197,
        )
        assert released["net_minor"] == summary["payouts_paid_in_day_minor"] == 342152
        assert summary["reconciled"] is True and summary["reconciliation_checks"] >= 8
        [payout] = doc["payouts"]
        assert (payout["utr"], payout["beneficiary"]) == (UTR, "XXXXXXXX9012")
        pune = next(b for b in doc["batches"] if b["batch_id"] == batch_id)
        assert sum(line["amount_minor"] for line in pune["lines"]) == -342152

        # Re-run: same fingerprint, byte-identical files, stored once, counted twice.
        second = await run_report(conn, KINDS["settlement"], DAY, now=now + timedelta(hours=5))
        assert second.rerun and second.fingerprint == first.fingerprint
        assert second.outputs == first.outputs
        assert await load_outputs(conn, first.run_id) == dict(first.outputs)
        [stored] = await list_runs(conn, kind="settlement", period=DAY)
        assert (stored.run_count, stored.status) == (2, "published")
    finally:
        await conn.close()


async def test_a_changed_input_changes_the_fingerprint(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        batch_id = await _a_settled_day(conn, pay=False)
        now = datetime.fromisoformat("2026-11-05T01:00:00+05:30")
        before = await run_report(conn, KINDS["settlement"], DAY, now=now)
        assert json.loads(before.outputs[f"settlement-{DAY}.json"])["payouts"][0]["utr"] is None
        # The UTR arrives (during the day): a different input, a different run.
        await complete_payout(conn, batch_id, UTR, now=PAID_AT)
        after = await run_report(conn, KINDS["settlement"], DAY, now=now)
        assert after.fingerprint != before.fingerprint and not after.rerun
        assert json.loads(after.outputs[f"settlement-{DAY}.json"])["payouts"][0]["utr"] == UTR
        # The earlier run's files are kept as they were.
        assert await load_outputs(conn, before.run_id) == dict(before.outputs)
        assert {r.run_id for r in await list_runs(conn, kind="settlement")} == {
            before.run_id,
            after.run_id,
        }
    finally:
        await conn.close()


async def test_rbi_report_flags_missed_t_plus_one_and_owes_compensation(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await _a_settled_day(conn)
        # UPI debit on 2 Nov, reversed on 4 Nov (deadline 3 Nov): 1 day late, ₹100.
        await record_failed_transaction(
            conn,
            txn_id="ftx_upi_1",
            merchant_id="m_rep_pune",
            channel="upi",
            amount_minor=750_00,
            currency="INR",
            debited_at=datetime.fromisoformat("2026-11-02T20:00:00+05:30"),
            now=T,
        )
        assert await record_reversal(
            conn,
            "ftx_upi_1",
            reversed_at=datetime.fromisoformat("2026-11-04T09:00:00+05:30"),
            reference="NPCI-RV-1",
        )
        # A retry of the same record changes nothing.
        assert not await record_failed_transaction(
            conn,
            txn_id="ftx_upi_1",
            merchant_id="m_rep_pune",
            channel="upi",
            amount_minor=750_00,
            currency="INR",
            debited_at=datetime.fromisoformat("2026-11-02T20:00:00+05:30"),
            now=T,
        )
        outcome = await run_report(
            conn, KINDS["rbi_tat"], DAY, now=datetime.fromisoformat("2026-11-05T02:00:00+05:30")
        )
        assert outcome.status == "published", outcome.quality.to_json()
        doc = json.loads(outcome.outputs[f"rbi-{DAY}.json"])
        states = {(r["merchant_id"], r["state"]) for r in doc["settlement_t1"]}
        assert states == {("m_rep_pune", "paid_on_time"), ("m_rep_blr", "unpaid_overdue")}
        held = next(r for r in doc["settlement_t1"] if r["merchant_id"] == "m_rep_blr")
        assert (held["batch_status"], held["due_day"], held["utr"]) == ("held", DAY, None)
        [ftx] = doc["failed_transactions"]
        assert (ftx["state"], ftx["days_late"], ftx["compensation_minor"]) == (
            "reversed_late",
            1,
            100_00,
        )
        assert doc["summary"]["settlement_compliant"] is False
        assert f"rbi-{DAY}-failed-transactions.csv" in outcome.outputs
    finally:
        await conn.close()


async def test_a_corrupted_gstin_blocks_the_gst_report_naming_the_merchant(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await _a_settled_day(conn)
        now = datetime.fromisoformat("2026-12-01T03:00:00+05:30")
        ok = await run_report(conn, KINDS["gst"], "2026-11", now=now)
        assert ok.status == "published", ok.quality.to_json()
        # One row corrupted: a GSTIN of the right shape whose check character is wrong.
        good = _gstin("27")
        bad = good[:-1] + ("A" if good[-1] != "A" else "B")
        await conn.execute("UPDATE merchants SET gstin = $1 WHERE merchant_id = 'm_rep_pune'", bad)
        blocked = await run_report(conn, KINDS["gst"], "2026-11", now=now)
        assert blocked.status == "blocked" and blocked.outputs == {}
        [failure] = blocked.quality.failures
        assert failure.ids == ("m_rep_pune",)
        assert "recipients.gstin_check" in failure.message()
        assert "m_rep_pune" in failure.message()
        assert await load_outputs(conn, blocked.run_id) == {}
        runs = {r.run_id: r for r in await list_runs(conn, kind="gst")}
        assert runs[blocked.run_id].status == "blocked"
        assert any("m_rep_pune" in f for f in runs[blocked.run_id].failures)
    finally:
        await conn.close()


async def test_only_the_leader_runs_due_reports(pg_dsn: str) -> None:
    first = await asyncpg.connect(pg_dsn)
    second = await asyncpg.connect(pg_dsn)
    try:
        await _a_settled_day(first)
        now = [datetime.fromisoformat("2026-11-05T00:30:00+05:30")]
        kinds = {"settlement": KINDS["settlement"]}
        a = ReportScheduler(first, kinds, lambda: now[0])
        b = ReportScheduler(second, kinds, lambda: now[0])
        # Before 01:00 IST on 5 Nov the 4 Nov report is not due yet.
        early = await a.tick()
        assert early and a.is_leader and all(o.period < DAY for o in early)
        assert await b.tick() == [] and not b.is_leader
        now[0] = datetime.fromisoformat("2026-11-05T01:00:00+05:30")
        ran = await a.tick()
        assert [o.period for o in ran] == [DAY] and ran[0].status == "published"
        assert await b.tick() == []
        assert await a.tick() == []  # published: nothing more to do
        runs = await list_runs(first, kind="settlement", period=DAY)
        assert [(r.triggered_by, r.run_count) for r in runs] == [("schedule", 1)]
        # The leader goes away: the stand-by takes over, and finds nothing left to run.
        await first.close()
        assert await b.tick() == [] and b.is_leader
    finally:
        if not first.is_closed():
            await first.close()
        await second.close()


async def test_two_scheduler_processes_run_each_report_once(pg_dsn: str) -> None:
    """Two real ``rizzpay reports schedule --once`` processes started together: every due
    report of every kind is run by one of them, exactly once."""
    env = {**os.environ, "RIZZPAY_PG_DSN": pg_dsn}
    argv = [sys.executable, "-m", "cli.main", "reports", "schedule", "--once"]
    procs = [
        await asyncio.create_subprocess_exec(
            *argv,
            cwd=REPO_ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-2000:] for _, err in results]
    conn = await asyncpg.connect(pg_dsn)
    try:
        runs = await list_runs(conn, limit=1000)
    finally:
        await conn.close()
    kinds = {r.kind for r in runs}
    assert {"gst", "settlement", "rbi_tat"} <= kinds
    assert all(r.run_count == 1 and r.triggered_by == "schedule" for r in runs)
    assert len({(r.kind, r.period) for r in runs}) == len(runs)
    assert all(r.status == "published" for r in runs), [r.failures for r in runs]


async def test_cli_run_blocks_with_exit_4_and_show_writes_the_stored_files(
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RIZZPAY_PG_DSN", pg_dsn)
    monkeypatch.setenv("RIZZPAY_GATEWAY_STATE_CODE", "29")
    conn = await asyncpg.connect(pg_dsn)
    try:
        await _a_settled_day(conn)
    finally:
        await conn.close()
    argv = ["reports", "run", "settlement", "--period", DAY, "--out", str(tmp_path / "run")]
    assert await asyncio.to_thread(main, argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "published"
    written = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert written == sorted(summary["outputs"])
    assert (
        await asyncio.to_thread(
            main, ["reports", "show", summary["run_id"], "--out", str(tmp_path / "show")]
        )
        == 0
    )
    for name in written:
        assert (tmp_path / "show" / name).read_bytes() == (tmp_path / "run" / name).read_bytes()

    conn = await asyncpg.connect(pg_dsn)
    try:
        good = _gstin("27")
        bad = good[:-1] + ("A" if good[-1] != "A" else "B")
        await conn.execute("UPDATE merchants SET gstin = $1 WHERE merchant_id = 'm_rep_pune'", bad)
    finally:
        await conn.close()
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["reports", "run", "gst", "--period", "2026-11"]) == 4
    err = capsys.readouterr().err
    assert "blocked:" in err and "m_rep_pune" in err and "gstin_check" in err
    assert await asyncio.to_thread(main, ["reports", "run", "gst", "--period", "2026-13"]) == 1
