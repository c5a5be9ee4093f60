"""The GST report on worked examples computed by hand (amounts in paise; gateway in Karnataka, 29).

Hand computations used below:

* ₹1,000.00 card payment at 190 bp: fee = 1,00,000 × 1.90 % = 1,900 paise (₹19.00).
  - Intra-state (merchant in 29): CGST 9 % = 171 paise (₹1.71), SGST 9 % = 171 paise (₹1.71);
    invoice value 1,900 + 342 = 2,242 paise (₹22.42).
  - Inter-state (merchant in 27, Maharashtra): IGST 18 % = 342 paise (₹3.42); value ₹22.42.
* Refund of ₹500.00 of it under the ``proportional`` policy: fee reversed =
  half_up(1,900 × 500/1,000) = 950 paise; intra-state CGST 9 % of 950 = 85.5 → 86, SGST 86;
  the credit note is taxable ₹9.50, CGST ₹0.86, SGST ₹0.86 (value ₹11.22).  Net for the month:
  taxable 1,900 − 950 = 950, CGST 171 − 86 = 85, SGST 85.
* Month boundary: 30 Nov 2026 23:59 IST = 18:29 UTC belongs to November; 1 Dec 2026 00:00 IST =
  30 Nov 18:30 UTC belongs to December.
* B2CL threshold ₹1,00,000 = 1,00,00,000 paise: fee 84,74,576 paise + IGST 18 % (15,25,423.68 →
  15,25,424) = exactly 1,00,00,000 → not above the threshold → B2CS; one paisa more of fee
  (84,74,577; IGST 15,25,423.86 → 15,25,424) → value 1,00,00,001 → B2CL.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from models.ids import payment_id_for
from models.money import Money
from streams.fees import (
    FeeReversal,
    MdrSchedule,
    fee_reversal_for_refund,
    gstin_check_char,
)
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
from warehouse.reports.gst import (
    EntrySums,
    LedgerTotals,
    Recipient,
    ReportConfig,
    build_report,
    document_number,
    financial_year_start,
    ist_month_of,
    ist_month_window,
    render_csv_sections,
    render_json,
    rupees,
)

GATEWAY = "29"
CONFIG = ReportConfig(gateway_state=GATEWAY)
SCHEDULE = MdrSchedule(default_bps=200, method_bps={"card": 190})
NOV = datetime(2026, 11, 10, 6, 0, tzinfo=UTC)


def _gstin(state: str, pan: str = "AABCK1234F") -> str:
    first14 = f"{state}{pan}1Z"
    return first14 + gstin_check_char(first14)


BLR = Recipient("m_blr", "Bengaluru Kirana", "29", None)  # intra-state, unregistered
PUNE = Recipient("m_pune", "Pune Traders", "27", _gstin("27"))  # inter-state, registered
DELHI = Recipient("m_delhi", "Delhi Shop", "07", None)  # inter-state, unregistered
RECIPIENTS = {r.merchant_id: r for r in (BLR, PUNE, DELHI)}


def capture_entry(merchant: Recipient, order: str, amount_minor: int = 1_000_00) -> JournalEntry:
    """The ledger's capture entry for a card payment (streams.ledger.entry_for)."""
    terms = FeeTerms(SCHEDULE, "card", merchant_state=merchant.state_code, gateway_state=GATEWAY)
    state = PaymentState.new(
        payment_id=payment_id_for(merchant.merchant_id, order),
        merchant_id=merchant.merchant_id,
        amount=Money(minor=amount_minor, currency="INR"),
        method_type="card",
    )
    state = apply(state, Authorize(), now=NOV).state
    events = apply(state, Capture(f"cap_{order:0>10}", amount_minor, "INR"), now=NOV).events
    entry = entry_for(events[0], terms)
    assert entry is not None
    return entry


def reversal_entry(merchant: Recipient, entry_id: str, reversal: FeeReversal) -> JournalEntry:
    """A fee reversal as it would be posted: platform fee_income and gst_output_* debited,
    the merchant's fees and gst_payable credited."""
    m, legs = merchant.merchant_id, []
    legs.append((platform_account("fee_income", "INR"), reversal.fee_minor))
    legs.append((merchant_account(m, "fees", "INR"), -reversal.fee_minor))
    for kind, minor in (
        ("cgst", reversal.gst.cgst_minor),
        ("sgst", reversal.gst.sgst_minor),
        ("igst", reversal.gst.igst_minor),
    ):
        if minor:
            legs.append((platform_account(f"gst_output_{kind}", "INR"), minor))
            legs.append((merchant_account(m, "gst_payable", "INR"), -minor))
    postings = tuple(Posting(f"{entry_id}:{n}", a, v) for n, (a, v) in enumerate(legs))
    return JournalEntry(entry_id, "pay_x", m, "fee_reversal", "INR", postings)


def sums(entry: JournalEntry, booked_at: datetime) -> EntrySums:
    """What load_entry_sums reads for one entry."""
    c: Counter[str] = Counter()
    for p in entry.postings:
        owner, kind = account_owner_kind(p.account_id)
        if owner == "platform":
            c[kind] += p.amount_minor
        elif owner == entry.merchant_id and kind == "fees":
            c["merchant_fees"] += p.amount_minor
        elif owner == entry.merchant_id and kind == "gst_payable":
            c["gst_payable"] += p.amount_minor
    return EntrySums(
        entry.entry_id,
        entry.kind,
        entry.merchant_id,
        booked_at,
        merchant_fees=c["merchant_fees"],
        gst_payable=c["gst_payable"],
        fee_income=c["fee_income"],
        gst_output_cgst=c["gst_output_cgst"],
        gst_output_sgst=c["gst_output_sgst"],
        gst_output_igst=c["gst_output_igst"],
    )


def ledger_of(entries: list[EntrySums], month: str) -> LedgerTotals:
    """The ledger's own totals for the month (what load_ledger_totals returns)."""
    start, end = ist_month_window(month)
    t: Counter[str] = Counter()
    for e in entries:
        if start <= e.booked_at < end:
            p = "settlement_" if e.kind == "settlement" else ""
            t[f"{p}cgst_minor"] -= e.gst_output_cgst
            t[f"{p}sgst_minor"] -= e.gst_output_sgst
            t[f"{p}igst_minor"] -= e.gst_output_igst
            t[f"{p}fee_income_minor"] -= e.fee_income
    return LedgerTotals(**t)


def report(entries: list[EntrySums], month: str = "2026-11") -> dict[str, Any]:
    return build_report(month, entries, RECIPIENTS, ledger_of(entries, month), CONFIG)


def test_intra_state_fee_invoice_is_cgst_171_and_sgst_171() -> None:
    entries = [sums(capture_entry(BLR, "o1"), NOV)]
    r = report(entries)
    (inv,) = r["invoices"]
    assert (inv["taxable_minor"], inv["cgst_minor"], inv["sgst_minor"], inv["igst_minor"]) == (
        1_900,
        171,
        171,
        0,
    )
    assert inv["value_minor"] == 2_242
    assert inv["number"] == "RZP/2627/I000001"
    assert inv["date"] == "2026-11-30"
    assert inv["place_of_supply"] == "29-Karnataka"
    assert inv["rate_check"]["difference_minor"] == 0
    gstr1 = r["gstr1"]
    assert gstr1["b2b"] == [] and gstr1["b2cl"] == []
    (b2cs,) = gstr1["b2cs"]
    assert (b2cs["taxable_minor"], b2cs["cgst_minor"], b2cs["sgst_minor"]) == (1_900, 171, 171)
    assert r["reconciliation"]["reconciled"] is True
    assert r["problems"] == []


def test_inter_state_registered_fee_invoice_is_igst_342_in_b2b() -> None:
    r = report([sums(capture_entry(PUNE, "o1"), NOV)])
    (row,) = r["gstr1"]["b2b"]
    assert row["recipient_gstin"] == PUNE.gstin
    assert row["place_of_supply"] == "27-Maharashtra"
    assert row["rate_percent"] == 18
    assert (row["taxable_minor"], row["igst_minor"], row["cgst_minor"], row["sgst_minor"]) == (
        1_900,
        342,
        0,
        0,
    )
    assert row["value_minor"] == 2_242
    (hsn,) = r["gstr1"]["hsn"]["b2b"]
    assert hsn["sac"] == "997158" and hsn["igst_minor"] == 342
    assert r["gstr1"]["hsn"]["b2c"] == []


def test_credit_note_for_a_proportional_refund_of_half() -> None:
    capture = capture_entry(BLR, "o1")
    charged = FeeTerms(SCHEDULE, "card", merchant_state="29", gateway_state=GATEWAY).breakdown(
        1_000_00
    )
    reversal = fee_reversal_for_refund("proportional", charged, 500_00)
    assert (reversal.fee_minor, reversal.gst.cgst_minor, reversal.gst.sgst_minor) == (950, 86, 86)
    entries = [
        sums(capture, NOV),
        sums(reversal_entry(BLR, "rev_o1", reversal), NOV.replace(day=12)),
    ]
    r = report(entries)
    (note,) = r["credit_notes"]
    assert note["number"] == "RZP/2627/C000001"
    assert (note["taxable_minor"], note["cgst_minor"], note["sgst_minor"]) == (950, 86, 86)
    assert note["value_minor"] == 1_122
    # Unregistered and intra-state: the credit note reduces B2CS (no CDNUR row).
    assert r["gstr1"]["cdnur"] == []
    (b2cs,) = r["gstr1"]["b2cs"]
    assert (b2cs["taxable_minor"], b2cs["cgst_minor"], b2cs["sgst_minor"]) == (950, 85, 85)
    recon = r["reconciliation"]
    assert recon["reconciled"] is True
    assert recon["gst_documents_net_minor"] == 342 - 172


def test_credit_note_to_a_registered_merchant_goes_to_cdnr() -> None:
    charged = FeeTerms(SCHEDULE, "card", merchant_state="27", gateway_state=GATEWAY).breakdown(
        1_000_00
    )
    reversal = fee_reversal_for_refund("proportional", charged, 1_000_00)  # full: all of it back
    entries = [
        sums(capture_entry(PUNE, "o1"), NOV),
        sums(reversal_entry(PUNE, "rev_o1", reversal), NOV),
    ]
    r = report(entries)
    (row,) = r["gstr1"]["cdnr"]
    assert (row["note_type"], row["taxable_minor"], row["igst_minor"]) == ("C", 1_900, 342)
    assert r["gstr1"]["hsn"]["b2b"] == []  # net of the credit note: nothing left to summarise
    assert r["reconciliation"]["reconciled"] is True


def test_month_boundary_2359_ist_is_november_0000_ist_is_december() -> None:
    assert ist_month_window("2026-11") == (
        datetime(2026, 10, 31, 18, 30, tzinfo=UTC),
        datetime(2026, 11, 30, 18, 30, tzinfo=UTC),
    )
    last_minute = datetime(2026, 11, 30, 18, 29, tzinfo=UTC)  # 30 Nov 23:59 IST
    midnight = datetime(2026, 11, 30, 18, 30, tzinfo=UTC)  # 1 Dec 00:00 IST
    assert ist_month_of(last_minute) == "2026-11"
    assert ist_month_of(midnight) == "2026-12"
    entries = [
        sums(capture_entry(DELHI, "late"), last_minute),
        sums(capture_entry(DELHI, "next"), midnight),
    ]
    nov, dec = report(entries, "2026-11"), report(entries, "2026-12")
    (n,) = nov["invoices"]
    (d,) = dec["invoices"]
    assert (n["taxable_minor"], n["igst_minor"], n["number"]) == (1_900, 342, "RZP/2627/I000001")
    # December continues the financial year's series after November's invoice.
    assert (d["taxable_minor"], d["igst_minor"], d["number"]) == (1_900, 342, "RZP/2627/I000002")
    assert (d["date"], n["date"]) == ("2026-12-31", "2026-11-30")
    assert nov["reconciliation"]["reconciled"] and dec["reconciliation"]["reconciled"]


def test_numbers_are_gap_free_per_financial_year_and_fit_16_characters() -> None:
    entries = [
        sums(capture_entry(m, f"o{i}"), datetime(2026, mon, 5, tzinfo=UTC))
        for i, (m, mon) in enumerate([(PUNE, 4), (BLR, 4), (DELHI, 6), (BLR, 11), (PUNE, 11)])
    ]
    numbers = [d["number"] for d in report(entries)["invoices"]]
    # April: m_blr 1, m_pune 2; June: m_delhi 3; November: m_blr 4, m_pune 5.
    assert numbers == ["RZP/2627/I000004", "RZP/2627/I000005"]
    assert len(document_number("RZP", "2027-03", "credit_note", 999_999)) == 16
    assert document_number("RZP", "2027-03", "invoice", 7) == "RZP/2627/I000007"
    assert financial_year_start("2026-03") == "2025-04"
    assert document_number("RZP", "2026-03", "invoice", 1) == "RZP/2526/I000001"
    with pytest.raises(ValueError, match="999999"):
        document_number("RZP", "2026-11", "invoice", 1_000_000)
    with pytest.raises(ValueError, match="prefix"):
        ReportConfig(gateway_state=GATEWAY, prefix="RIZZPAY")


def test_b2cl_only_above_one_lakh_and_inter_state() -> None:
    def fee_entry(entry_id: str, merchant: str, taxable: int, igst: int) -> EntrySums:
        return EntrySums(
            entry_id,
            "capture",
            merchant,
            NOV,
            merchant_fees=taxable,
            gst_payable=igst,
            fee_income=-taxable,
            gst_output_igst=-igst,
        )

    at_limit = fee_entry("e1", "m_delhi", 84_74_576, 15_25_424)  # value exactly ₹1,00,000.00
    r = report([at_limit])
    assert r["invoices"][0]["value_minor"] == 1_00_00_000
    assert r["gstr1"]["b2cl"] == [] and len(r["gstr1"]["b2cs"]) == 1
    above = fee_entry("e1", "m_delhi", 84_74_577, 15_25_424)  # ₹1,00,000.01
    r = report([above])
    assert [x["value_minor"] for x in r["gstr1"]["b2cl"]] == [1_00_00_001]
    assert r["gstr1"]["b2cs"] == []


def test_instant_settlement_fee_is_invoiced_and_settlement_clearing_is_not_a_credit_note() -> None:
    m = BLR.merchant_id
    capture = sums(capture_entry(BLR, "o1"), NOV)
    # Settlement clears the merchant's fees (credit 1,900) and charges an instant fee of 100
    # paise with CGST 9 + SGST 9 (9 % of 100 = 9 each).
    settlement = EntrySums(
        "batch_1", "settlement", m, NOV, merchant_fees=-1_900, gst_payable=-342,
        fee_income=-100, gst_output_cgst=-9, gst_output_sgst=-9,
    )  # fmt: skip
    payout = EntrySums("batch_1.payout", "payout_instruction", m, NOV)
    r = report([capture, settlement, payout])
    assert r["credit_notes"] == []
    (inv,) = r["invoices"]
    assert (inv["taxable_minor"], inv["cgst_minor"], inv["instant_settlement_fee_minor"]) == (
        2_000,
        180,
        100,
    )
    recon = r["reconciliation"]
    assert recon["reconciled"] is True
    cgst = recon["components"][0]
    assert (cgst["non_settlement_documents_minor"], cgst["ledger_change_minor"]) == (171, 180)


def test_a_ledger_difference_is_reported_not_hidden() -> None:
    entries = [sums(capture_entry(BLR, "o1"), NOV)]
    stray = EntrySums("stray", "adjustment", None, NOV, gst_output_cgst=-1)  # GST, no merchant
    ledger = ledger_of([*entries, stray], "2026-11")
    r = build_report("2026-11", [*entries, stray], RECIPIENTS, ledger, CONFIG)
    recon = r["reconciliation"]
    assert recon["reconciled"] is False
    assert recon["gst_difference_minor"] == -1
    assert recon["components"][0]["difference_minor"] == -1
    assert any("stray" in p for p in r["problems"])


def test_rate_check_reports_a_ledger_split_that_is_not_18_percent() -> None:
    wrong = EntrySums(
        "e1", "capture", "m_blr", NOV, merchant_fees=1_900, gst_payable=344,
        fee_income=-1_900, gst_output_cgst=-172, gst_output_sgst=-172,
    )  # fmt: skip
    r = report([wrong])
    inv = r["invoices"][0]
    assert inv["cgst_minor"] == 172  # the ledger's figure, not the rate's
    assert inv["rate_check"]["difference_minor"] == 2
    assert any("differs from 18 %" in p for p in r["problems"])


def test_re_running_gives_identical_bytes_whatever_the_input_order() -> None:
    entries = [
        sums(capture_entry(m, f"o{i}"), NOV)
        for i, m in enumerate([BLR, PUNE, DELHI, BLR, PUNE, DELHI])
    ]
    first = render_json(report(entries))
    shuffled = entries[:]
    random.Random(7).shuffle(shuffled)
    assert render_json(report(shuffled)) == first
    assert render_csv_sections(report(shuffled)) == render_csv_sections(report(entries))


def test_csv_amounts_are_exact_rupees() -> None:
    assert [rupees(v) for v in (0, 5, 2_242, -1_122, 1_00_00_001)] == [
        "0.00",
        "0.05",
        "22.42",
        "-11.22",
        "100000.01",
    ]
    csvs = render_csv_sections(report([sums(capture_entry(PUNE, "o1"), NOV)]))
    header, row = csvs["b2b"].splitlines()
    assert header.startswith("number,date,recipient_gstin,recipient_name,value_inr,")
    assert "22.42" in row and "3.42" in row and "19.00" in row
