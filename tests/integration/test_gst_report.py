"""The GST report against the real PostgreSQL schema: a month of captures for three merchants
(one registered in Maharashtra, two unregistered: Karnataka — the gateway's state — and Delhi),
a fee reversal, an instant settlement and a payout, and entries either side of the IST month's
edges.  Entries come from ``streams.ledger.entry_for`` and are inserted with the ``created_at``
they would have had (the journal's triggers refuse updates, not an explicit ``created_at`` on
insert).  The report's totals must equal the ledger's to the paisa, and a re-run (library and
CLI) must give identical bytes.  Amounts are paise."""

from __future__ import annotations

import asyncio
import random
import uuid
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from cli.reports import gst_command
from models.ids import payment_id_for
from models.money import Money
from streams.fees import FeeReversal, MdrSchedule, fee_reversal_for_refund, gstin_check_char
from streams.ledger import (
    FeeTerms,
    JournalEntry,
    Posting,
    account_owner_kind,
    entry_for,
    merchant_account,
    platform_account,
)
from streams.lifecycle import Authorize, Capture, PaymentState, apply
from warehouse.merchants import create_merchant
from warehouse.payments import post_entries
from warehouse.reports.gst import ReportConfig, gst_report, ist_month_window, render_json

pytestmark = pytest.mark.integration

GATEWAY = "29"
SCHEDULE = MdrSchedule(default_bps=200, method_bps={"card": 190})
MONTH = "2026-11"
START, END = ist_month_window(MONTH)  # 2026-10-31T18:30Z .. 2026-11-30T18:30Z


def _gstin(state: str) -> str:
    first14 = f"{state}AABCP1234F1Z"
    return first14 + gstin_check_char(first14)


async def post_at(conn: asyncpg.Connection, entries: list[JournalEntry], at: datetime) -> None:
    """``post_entries`` with the entries booked at ``at`` (journal_entries.created_at)."""
    async with conn.transaction():
        accounts = {
            p.account_id: (*account_owner_kind(p.account_id), e.currency)
            for e in entries
            for p in e.postings
        }
        await conn.executemany(
            """INSERT INTO ledger_accounts (account_id, owner, kind, currency)
               VALUES ($1, $2, $3, $4) ON CONFLICT (account_id) DO NOTHING""",
            [(a, *rest) for a, rest in accounts.items()],
        )
        for e in entries:
            await conn.execute(
                """INSERT INTO journal_entries
                       (entry_id, payment_id, merchant_id, kind, currency, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                e.entry_id,
                e.payment_id,
                e.merchant_id,
                e.kind,
                e.currency,
                at,
            )
            await conn.executemany(
                """INSERT INTO postings (posting_id, entry_id, account_id, amount_minor, currency,
                                         created_at)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                [
                    (p.posting_id, e.entry_id, p.account_id, p.amount_minor, e.currency, at)
                    for p in e.postings
                ],
            )


def capture(merchant: str, state: str, amount: int, at: datetime) -> JournalEntry:
    terms = FeeTerms(SCHEDULE, "card", merchant_state=state, gateway_state=GATEWAY)
    order = uuid.uuid4().hex[:12]
    s = PaymentState.new(
        payment_id=payment_id_for(merchant, order),
        merchant_id=merchant,
        amount=Money(minor=amount, currency="INR"),
        method_type="card",
    )
    s = apply(s, Authorize(), now=at).state
    events = apply(s, Capture(f"cap_{order}", amount, "INR"), now=at).events
    entry = entry_for(events[0], terms)
    assert entry is not None
    return entry


def reversal(merchant: str, entry_id: str, rev: FeeReversal) -> JournalEntry:
    legs = [
        (platform_account("fee_income", "INR"), rev.fee_minor),
        (merchant_account(merchant, "fees", "INR"), -rev.fee_minor),
        (platform_account("gst_output_igst", "INR"), rev.gst.igst_minor),
        (platform_account("gst_output_cgst", "INR"), rev.gst.cgst_minor),
        (platform_account("gst_output_sgst", "INR"), rev.gst.sgst_minor),
        (merchant_account(merchant, "gst_payable", "INR"), -rev.gst.total_minor),
    ]
    postings = tuple(
        Posting(f"{entry_id}:{n}", a, v) for n, (a, v) in enumerate(leg for leg in legs if leg[1])
    )
    return JournalEntry(entry_id, "pay_rev", merchant, "fee_reversal", "INR", postings)


async def ledger_gst(conn: asyncpg.Connection, start: datetime, end: datetime) -> dict[str, int]:
    rows = await conn.fetch(
        """SELECT a.kind, -sum(p.amount_minor) AS v FROM postings p
             JOIN journal_entries e USING (entry_id) JOIN ledger_accounts a USING (account_id)
            WHERE a.owner = 'platform' AND a.kind LIKE 'gst_output_%'
              AND e.created_at >= $1 AND e.created_at < $2
            GROUP BY a.kind""",
        start,
        end,
    )
    return {r["kind"].removeprefix("gst_output_"): int(r["v"]) for r in rows}


async def test_a_month_for_three_merchants_reconciles_to_the_paisa(
    pg: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_dsn: str
) -> None:
    merchants = {"m_pune_gst": "27", "m_blr_shop": "29", "m_delhi_shop": "07"}
    await create_merchant(pg, "m_pune_gst", "Pune Traders", "27", gstin=_gstin("27"))
    await create_merchant(pg, "m_blr_shop", "Bengaluru Kirana", "29")
    await create_merchant(pg, "m_delhi_shop", "Delhi Shop", "07")
    rng = random.Random(2026)
    expected = {m: [0, 0] for m in merchants}  # taxable, GST (paise) booked in November
    async with pg.acquire() as conn:
        for day in range(30):
            for merchant, state in merchants.items():
                amount = rng.randint(100_00, 50_000_00)
                at = START + timedelta(days=day, hours=rng.randint(0, 23), minutes=7)
                fee = FeeTerms(SCHEDULE, "card", state, GATEWAY).breakdown(amount)
                expected[merchant][0] += fee.fee_minor
                expected[merchant][1] += fee.gst_total_minor
                await post_at(conn, [capture(merchant, state, amount, at)], at)
        # The edges: 23:59 IST on 30 Nov counts, 00:00 IST on 1 Dec and 23:59 IST on 31 Oct do not.
        edge = capture("m_delhi_shop", "07", 1_000_00, END - timedelta(minutes=1))
        await post_at(conn, [edge], END - timedelta(minutes=1))
        expected["m_delhi_shop"][0] += 19_00
        expected["m_delhi_shop"][1] += 3_42
        await post_at(conn, [capture("m_delhi_shop", "07", 1_000_00, END)], END)
        before = START - timedelta(minutes=1)
        await post_at(conn, [capture("m_pune_gst", "27", 1_000_00, before)], before)
        # A full fee reversal for one of Pune's ₹1,000 payments: a credit note of ₹19.00 + ₹3.42.
        charged = FeeTerms(SCHEDULE, "card", "27", GATEWAY).breakdown(1_000_00)
        rev = fee_reversal_for_refund("proportional", charged, 1_000_00)
        await post_at(conn, [reversal("m_pune_gst", "rev_1", rev)], START + timedelta(days=3))
        # An instant settlement of Bengaluru's ₹1,000 capture: fee ₹1.00, CGST 9 p + SGST 9 p.
        blr = "m_blr_shop"
        settle = [
            (merchant_account(blr, "pending", "INR"), 1_000_00),
            (merchant_account(blr, "fees", "INR"), -19_00),
            (merchant_account(blr, "gst_payable", "INR"), -3_42),
            (platform_account("fee_income", "INR"), -1_00),
            (platform_account("gst_output_cgst", "INR"), -9),
            (platform_account("gst_output_sgst", "INR"), -9),
            (merchant_account(blr, "available", "INR"), -(1_000_00 - 19_00 - 3_42 - 1_18)),
        ]
        batch = JournalEntry(
            "stl_blr_1",
            "stl_blr_1",
            blr,
            "settlement",
            "INR",
            tuple(Posting(f"stl_blr_1:{n}", a, v) for n, (a, v) in enumerate(settle)),
        )
        net = 1_000_00 - 19_00 - 3_42 - 1_18
        payout = JournalEntry(
            "stl_blr_1.payout",
            "stl_blr_1",
            blr,
            "payout_instruction",
            "INR",
            (
                Posting("stl_blr_1.payout:0", merchant_account(blr, "available", "INR"), net),
                Posting("stl_blr_1.payout:1", platform_account("settlement_payable", "INR"), -net),
            ),
        )
        at = START + timedelta(days=5)
        await post_at(conn, [batch, payout], at)
        # And one entry the ordinary way (booked now): outside November unless today is in it.
        async with conn.transaction():
            await post_entries(conn, [capture(blr, "29", 500_00, datetime.now(UTC))])

        config = ReportConfig(gateway_state=GATEWAY)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            report = await gst_report(conn, MONTH, config)
        ledger = await ledger_gst(conn, START, END)
        assert await conn.fetch("SELECT * FROM ledger_verify_chain()") == []

    now_in_month = START <= datetime.now(UTC) < END
    if now_in_month:
        fee = FeeTerms(SCHEDULE, "card", "29", GATEWAY).breakdown(500_00)
        expected[blr][0] += fee.fee_minor
        expected[blr][1] += fee.gst_total_minor

    invoices = {d["merchant_id"]: d for d in report["invoices"]}
    assert sorted(invoices) == sorted(merchants)
    for merchant, (taxable, gst) in expected.items():
        extra = (1_00, 18) if merchant == blr else (0, 0)
        assert invoices[merchant]["taxable_minor"] == taxable + extra[0], merchant
        assert invoices[merchant]["gst_minor"] == gst + extra[1], merchant
    assert invoices["m_blr_shop"]["igst_minor"] == 0
    assert invoices["m_pune_gst"]["cgst_minor"] == invoices["m_delhi_shop"]["sgst_minor"] == 0
    assert [d["number"] for d in report["invoices"]] == [
        "RZP/2627/I000002",  # October's Pune invoice is I000001
        "RZP/2627/I000003",
        "RZP/2627/I000004",
    ]
    (note,) = report["credit_notes"]
    assert (note["number"], note["taxable_minor"], note["igst_minor"]) == (
        "RZP/2627/C000001",
        19_00,
        3_42,
    )
    # Documents net of the credit note equal the ledger's GST output change, per component.
    recon = report["reconciliation"]
    assert recon["reconciled"] is True, recon
    for row in recon["components"][:3]:
        assert row["documents_net_minor"] == ledger.get(row["component"], 0)
        assert row["difference_minor"] == 0
    assert recon["gst_ledger_change_minor"] == sum(ledger.values())
    gstr1 = report["gstr1"]
    assert [r["recipient_gstin"] for r in gstr1["b2b"]] == [_gstin("27")]
    assert [r["recipient_gstin"] for r in gstr1["cdnr"]] == [_gstin("27")]
    assert {r["place_of_supply"] for r in gstr1["b2cs"]} == {"07-Delhi", "29-Karnataka"}
    assert report["problems"] == []

    # Re-run: identical bytes, through the library and through the CLI (twice).
    async with pg.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        again = await gst_report(conn, MONTH, config)
    assert render_json(again) == render_json(report)
    monkeypatch.setenv("RIZZPAY_PG_DSN", pg_dsn)
    monkeypatch.setenv("RIZZPAY_GATEWAY_STATE_CODE", GATEWAY)
    outputs = []
    for run in ("a", "b"):
        args = Namespace(
            month=MONTH, out=tmp_path / run, sac="997158", supplier_gstin=None, prefix="RZP"
        )
        assert await asyncio.to_thread(gst_command, args) == 0
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / run).iterdir())})
    assert outputs[0] == outputs[1]
    assert outputs[0]["gst-2026-11.json"] == render_json(report).encode()
    assert "gst-2026-11-b2b.csv" in outputs[0] and "gst-2026-11-hsn_b2c.csv" in outputs[0]
