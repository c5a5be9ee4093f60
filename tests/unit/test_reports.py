"""Reports framework, RBI turnaround rules and the daily settlement report, without services.

Worked examples (IST days; RBI circular of 20 Sep 2019 and FACTS.md):

* UPI transfer debited 3 Nov (T), TAT T+1 → deadline 4 Nov.  Reversed 4 Nov: on time.  Reversed
  6 Nov: 2 days late → ₹200.  Outstanding as of 7 Nov: 3 days beyond → ₹300 accrued.
* Card not present debited 3 Nov, TAT T+5 → deadline 8 Nov.  Outstanding on 7 Nov: within TAT;
  on 8 Nov: deadline missed, ₹0 accrued yet; on 10 Nov: ₹200.
* A debit at 3 Nov 18:30 UTC is 4 Nov 00:00 IST: its T is 4 Nov.
* Settlement T+1: captured 3 Nov, paid 4 Nov on time; paid 6 Nov, 2 days late; unpaid at the
  end of 4 Nov: deadline missed.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from warehouse.reports.framework import (
    ReportInputs,
    canonical_json,
    fingerprint,
    previous_periods,
    validate_period,
)
from warehouse.reports.kinds import GST_SCHEDULE, report_kinds
from warehouse.reports.quality import Expectation, Suite, TableSpec, epoch_us, validate
from warehouse.reports.rbi import (
    COMPENSATION_PER_DAY_MINOR,
    build_rbi_report,
    reversal_status,
    settlement_status,
)
from warehouse.reports.scheduler import due_periods
from warehouse.reports.settlement_daily import (
    build_settlement_report,
    reconciliation_rows,
    settlement_suite,
)


def d(day: int) -> date:
    return date(2026, 11, day)


# --------------------------------------------------------------------------------------------
# RBI rules
# --------------------------------------------------------------------------------------------


def test_upi_reversal_worked_examples() -> None:
    assert COMPENSATION_PER_DAY_MINOR == 100_00
    assert reversal_status("upi", d(3), d(4), d(9)) == ("reversed_on_time", d(4), 0, 0)
    assert reversal_status("upi", d(3), d(6), d(9)) == ("reversed_late", d(4), 2, 200_00)
    assert reversal_status("upi", d(3), None, d(3)) == ("within_tat", d(4), 0, 0)
    assert reversal_status("upi", d(3), None, d(7)) == ("overdue", d(4), 3, 300_00)
    assert reversal_status("imps", d(3), d(5), d(9)) == ("reversed_late", d(4), 1, 100_00)


def test_card_not_present_has_five_days() -> None:
    assert reversal_status("card_not_present", d(3), None, d(7)) == ("within_tat", d(8), 0, 0)
    assert reversal_status("card_not_present", d(3), None, d(8)) == ("overdue", d(8), 0, 0)
    assert reversal_status("card_not_present", d(3), None, d(10)) == ("overdue", d(8), 2, 200_00)
    assert reversal_status("upi_merchant", d(3), d(8), d(10))[0] == "reversed_on_time"


def test_channels_outside_the_circular_owe_nothing() -> None:
    assert reversal_status("netbanking", d(3), None, d(30)) == ("not_covered", None, 0, 0)


def test_settlement_t_plus_one() -> None:
    assert settlement_status(d(3), d(4), d(4)) == ("paid_on_time", d(4), 0)
    assert settlement_status(d(3), d(6), d(6)) == ("paid_late", d(4), 2)
    assert settlement_status(d(3), None, d(4)) == ("unpaid_overdue", d(4), 0)
    assert settlement_status(d(3), None, d(5)) == ("unpaid_overdue", d(4), 1)


def _at(iso: str) -> int:
    return epoch_us(datetime.fromisoformat(iso))


def test_rbi_report_counts_compensation_in_ist_days() -> None:
    failed: list[dict[str, Any]] = [
        # 3 Nov 18:30 UTC = 4 Nov 00:00 IST: T = 4 Nov, deadline 5 Nov, reversed 7 Nov IST: 2 days.
        {
            "txn_id": "ftx_boundary",
            "payment_id": None,
            "merchant_id": "m1",
            "channel": "upi",
            "amount_minor": 500_00,
            "currency": "INR",
            "debited_at_us": _at("2026-11-03T18:30:00+00:00"),
            "reversed_at_us": _at("2026-11-07T10:00:00+05:30"),
            "reversal_margin_us": 1,
            "reversal_ref": "RV1",
        },
        # Debited 3 Nov 23:59 IST: T = 3 Nov, deadline 4 Nov; outstanding at the end of 7 Nov.
        {
            "txn_id": "ftx_open",
            "payment_id": "pay_x",
            "merchant_id": "m1",
            "channel": "imps",
            "amount_minor": 1_200_00,
            "currency": "INR",
            "debited_at_us": _at("2026-11-03T23:59:00+05:30"),
            "reversed_at_us": None,
            "reversal_margin_us": None,
            "reversal_ref": None,
        },
    ]
    captures: list[dict[str, Any]] = [
        {
            "posting_id": "p_late",
            "entry_id": "e1",
            "payment_id": "pay_1",
            "merchant_id": "m1",
            "currency": "INR",
            "amount_minor": 1_000_00,
            "booked_at_us": _at("2026-11-05T12:00:00+05:30"),
            "batch_id": "stl_1",
            "batch_status": "paid",
            "utr": "HDFCR52026110700000001",
            "paid_at_us": _at("2026-11-07T11:00:00+05:30"),
        }
    ]
    files = build_rbi_report(
        "2026-11-07",
        ReportInputs({"captures": captures, "failed_transactions": failed}),
        {},
    )
    doc = json.loads(files["rbi-2026-11-07.json"])
    rows = {r["txn_id"]: r for r in doc["failed_transactions"]}
    assert rows["ftx_boundary"]["t_day"] == "2026-11-04"
    assert (rows["ftx_boundary"]["days_late"], rows["ftx_boundary"]["compensation_minor"]) == (
        2,
        200_00,
    )
    assert rows["ftx_open"]["state"] == "overdue"
    assert (rows["ftx_open"]["days_late"], rows["ftx_open"]["compensation_minor"]) == (3, 300_00)
    assert doc["summary"]["compensation_owed_minor"] == 500_00
    late = doc["settlement_t1"][0]
    assert (late["state"], late["due_day"], late["days_late"]) == ("paid_late", "2026-11-06", 1)
    assert doc["summary"]["settlement_compliant"] is False
    table = list(
        csv.DictReader(io.StringIO(files["rbi-2026-11-07-failed-transactions.csv"].decode()))
    )
    assert {r["txn_id"]: r["compensation_minor"] for r in table} == {
        "ftx_boundary": "20000",
        "ftx_open": "30000",
    }


# --------------------------------------------------------------------------------------------
# Settlement reconciliation (docs/settlement.md's day: fees 6650, GST 1197, net 272152)
# --------------------------------------------------------------------------------------------

BATCH: dict[str, Any] = {
    "batch_id": "stl_m_INR_20261103T183000Z",
    "merchant_id": "m",
    "currency": "INR",
    "cutoff_us": _at("2026-11-04T00:00:00+05:30"),
    "settlement_date": "2026-11-04",
    "instant": False,
    "status": "payout_pending",
    "hold_reason": None,
    "line_count": 4,
    "captured_minor": 349999,
    "refunds_minor": 20000,
    "disputes_minor": 50000,
    "adjustments_minor": 0,
    "fees_minor": 6650,
    "gst_minor": 1197,
    "reserve_withheld_minor": 0,
    "reserve_released_minor": 0,
    "instant_fee_minor": 0,
    "instant_fee_gst_minor": 0,
    "net_minor": 272152,
    "entry_id": "stl_m_INR_20261103T183000Z",
}
PAYOUT: dict[str, Any] = {
    "batch_id": BATCH["batch_id"],
    "amount_minor": 272152,
    "_instruction_entry_id": "stl_m.payout",
    "_completion_entry_id": None,
}
LEDGER: dict[str, dict[tuple[str, str], int]] = {
    "stl_m_INR_20261103T183000Z": {
        ("m", "pending"): 299999,
        ("m", "refunds"): -20000,
        ("m", "fees"): -6650,
        ("m", "gst_payable"): -1197,
        ("m", "available"): -272152,
    },
    "stl_m.payout": {("m", "available"): 272152, ("platform", "settlement_payable"): -272152},
}


def test_reconciliation_of_the_worked_day_matches_to_the_paisa() -> None:
    rows = reconciliation_rows([BATCH], [PAYOUT], LEDGER)
    assert {r["component"] for r in rows} >= {"gross", "fees", "gst", "net", "payout_instructed"}
    assert all(r["batch_minor"] == r["ledger_minor"] for r in rows), rows


def test_a_paisa_off_in_the_ledger_shows_in_the_reconciliation() -> None:
    ledger = {**LEDGER, BATCH["entry_id"]: {**LEDGER[BATCH["entry_id"]], ("m", "fees"): -6649}}
    rows = reconciliation_rows([BATCH], [PAYOUT], ledger)
    off = [r for r in rows if r["batch_minor"] != r["ledger_minor"]]
    assert [(r["check_id"], r["batch_minor"] - r["ledger_minor"]) for r in off] == [
        (f"{BATCH['batch_id']}:fees", 1)
    ]


def _settlement_tables(
    ledger: dict[str, dict[tuple[str, str], int]],
) -> dict[str, list[dict[str, Any]]]:
    payout = {
        "batch_id": BATCH["batch_id"],
        "merchant_id": "m",
        "currency": "INR",
        "amount_minor": 272152,
        "holder_name": "M",
        "beneficiary": "XXXXXX1234",
        "ifsc": "HDFC0001234",
        "instructed_at_us": _at("2026-11-04T10:00:00+05:30"),
        "utr": None,
        "completed_at_us": None,
        "in_period_batch": True,
    }
    return {
        "batches": [BATCH],
        "lines": [],
        "payouts": [payout],
        "reconciliation": reconciliation_rows([BATCH], [PAYOUT], ledger),
    }


def test_settlement_report_files_and_totals() -> None:
    files = build_settlement_report("2026-11-04", ReportInputs(_settlement_tables(LEDGER)), {})
    assert sorted(files) == [
        "settlement-2026-11-04-batches.csv",
        "settlement-2026-11-04-lines.csv",
        "settlement-2026-11-04-payouts.csv",
        "settlement-2026-11-04-reconciliation.csv",
        "settlement-2026-11-04.json",
    ]
    doc = json.loads(files["settlement-2026-11-04.json"])
    assert doc["summary"]["released"]["net_minor"] == 272152
    assert doc["summary"]["released"]["fees_minor"] == 6650
    assert doc["summary"]["payouts_instructed_minor"] == 272152
    assert doc["summary"]["reconciled"] is True
    assert doc["batches"][0]["cutoff"] == "2026-11-03T18:30:00+00:00"
    again = build_settlement_report("2026-11-04", ReportInputs(_settlement_tables(LEDGER)), {})
    assert again == files  # byte-identical


def test_quality_suite_blocks_a_paisa_off_and_names_the_check() -> None:
    ledger = {**LEDGER, BATCH["entry_id"]: {**LEDGER[BATCH["entry_id"]], ("m", "fees"): -6649}}
    result = validate(settlement_suite("2026-11-04"), _settlement_tables(ledger))
    assert not result.passed
    [failure] = result.failures
    assert failure.expectation == "expect_column_pair_values_to_be_equal"
    assert failure.ids == (f"{BATCH['batch_id']}:fees",)
    assert f"{BATCH['batch_id']}:fees" in failure.message()
    assert validate(settlement_suite("2026-11-04"), _settlement_tables(LEDGER)).passed


def test_quality_names_each_corrupt_row() -> None:
    suite = Suite(
        "demo",
        {"t": TableSpec(("id", "amount_minor", "currency", "at_us"), "id")},
        (
            Expectation("t", "between", "amount_minor", "no negative amounts", min_value=0),
            Expectation("t", "in_set", "currency", "ISO 4217", value_set=("INR", "USD")),
            Expectation("t", "unique", "id", "no duplicate ids"),
            Expectation("t", "between", "at_us", "in the period", min_value=10, max_value=20),
        ),
    )
    good = {"id": "a", "amount_minor": 5, "currency": "INR", "at_us": 15}
    rows = [
        good,
        {**good, "id": "neg", "amount_minor": -1},
        {**good, "id": "cur", "currency": "XYZ"},
        {**good, "id": "time", "at_us": 21},
        {**good, "id": "a"},
    ]
    result = validate(suite, {"t": rows})
    assert {(f.column, f.expectation, f.ids) for f in result.failures} == {
        ("amount_minor", "expect_column_values_to_be_between", ("neg",)),
        ("currency", "expect_column_values_to_be_in_set", ("cur",)),
        ("id", "expect_column_values_to_be_unique", ("a",)),
        ("at_us", "expect_column_values_to_be_between", ("time",)),
    }
    assert validate(suite, {"t": [good]}).passed


# --------------------------------------------------------------------------------------------
# Framework: canonical JSON, periods, schedules
# --------------------------------------------------------------------------------------------


def test_fingerprint_ignores_key_order_and_refuses_floats_and_naive_times() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    with pytest.raises(TypeError):
        canonical_json({"amount": 1.5})
    with pytest.raises(ValueError, match="naive"):
        canonical_json({"at": datetime(2026, 11, 3)})  # noqa: DTZ001
    ist = datetime.fromisoformat("2026-11-04T00:00:00+05:30")
    assert canonical_json(ist) == '"2026-11-03T18:30:00+00:00"'


def test_periods() -> None:
    assert validate_period("monthly", "2026-11") == "2026-11"
    for bad in ("2026-13", "2026-11-01"):
        with pytest.raises(ValueError):
            validate_period("monthly", bad)
    with pytest.raises(ValueError):
        validate_period("daily", "2026-02-30")
    # 4 Nov 00:30 IST is still 3 Nov 19:00 UTC: the last ended IST day is 3 Nov.
    now = datetime.fromisoformat("2026-11-04T00:30:00+05:30")
    assert previous_periods("daily", now, 2) == ["2026-11-03", "2026-11-02"]
    assert previous_periods("monthly", now, 2) == ["2026-10", "2026-09"]
    assert previous_periods("monthly", datetime(2026, 1, 5, tzinfo=UTC), 1) == ["2025-12"]


def test_schedules_follow_the_ist_clock() -> None:
    kinds = report_kinds(gateway_state="29")
    gst = kinds["gst"]
    assert GST_SCHEDULE.due_at("monthly", "2026-10") == datetime.fromisoformat(
        "2026-11-01T02:00:00+05:30"
    )
    assert GST_SCHEDULE.deadline("monthly", "2026-10") == datetime.fromisoformat(
        "2026-11-11T00:00:00+05:30"
    )
    before = datetime.fromisoformat("2026-11-01T01:59:00+05:30")
    assert "2026-10" not in due_periods(gst, before)
    assert due_periods(gst, before + timedelta(minutes=1))[-1] == "2026-10"
    settlement = kinds["settlement"]
    at = datetime.fromisoformat("2026-11-05T00:59:00+05:30")
    assert due_periods(settlement, at)[-1] == "2026-11-03"
    assert due_periods(settlement, at + timedelta(minutes=1))[-1] == "2026-11-04"
    assert len(due_periods(settlement, at)) == settlement.schedule.lookback - 1
