"""The report kinds RizzPay runs and schedules: GST (monthly), AML / FIU-IND (monthly, by the
15th), settlement (daily) and RBI turnaround times (daily).  Each is a
:class:`warehouse.reports.framework.ReportKind`; :func:`report_kinds` builds them from settings
read once at the entry point (docs/reports.md has the schedule table)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from models.money import CURRENCY_EXPONENTS
from streams.fees import InvalidGstin, validate_gstin
from warehouse.reports import gst
from warehouse.reports.framework import ReportInputs, ReportKind, Schedule, canonical_json
from warehouse.reports.quality import Expectation, Suite, TableSpec, epoch_us
from warehouse.reports.rbi import build_rbi_report, load_rbi_inputs, rbi_suite
from warehouse.reports.settlement_daily import (
    build_settlement_report,
    load_settlement_inputs,
    settlement_suite,
)

__all__ = ["GST_SCHEDULE", "report_kinds"]

GST_SCHEDULE = Schedule(run_after=timedelta(hours=2), deadline_after=timedelta(days=10), lookback=3)
"""GST: from 02:00 IST on the 1st; GSTR-1 is due on the 11th of the next month (so the deadline
is the end of the 10th day after the month)."""

AML_SCHEDULE = Schedule(run_after=timedelta(hours=3), deadline_after=timedelta(days=14), lookback=3)
"""FIU-IND monthly reports by the 15th of the next month (PML Rules 2005 rule 8; FACTS.md)."""

SETTLEMENT_SCHEDULE = Schedule(
    run_after=timedelta(hours=1), deadline_after=timedelta(hours=9), lookback=7
)
"""Finance reads day D's settlement report at the start of D+1 (by 09:00 IST)."""

RBI_SCHEDULE = Schedule(
    run_after=timedelta(hours=1, minutes=30), deadline_after=timedelta(hours=12), lookback=7
)
"""Compliance reviews day D's turnaround report on D+1."""


# --------------------------------------------------------------------------------------------
# What the kinds declared here share: their suites' shape and their files' names
# --------------------------------------------------------------------------------------------

_TableDecl = tuple[tuple[str, ...], str, str | None]
"""A suite's table: its columns, the column that names a row, and why that column is unique
(``None``: it need not be)."""


def _suite(name: str, tables: Mapping[str, _TableDecl], *checks: Expectation) -> Suite:
    """The suite ``name`` over ``tables``.  A table's uniqueness check is derived from its id
    column, so the two cannot drift apart; expectations run table by table in declaration
    order, the uniqueness check first, then ``checks`` on that table in the order given.
    Raises ``ValueError`` for a check on an undeclared table (it would never run)."""
    undeclared = {c.table for c in checks} - tables.keys()
    if undeclared:
        raise ValueError(f"{name}: checks on undeclared tables {sorted(undeclared)}")
    expectations: list[Expectation] = []
    for table, (_, id_column, why_unique) in tables.items():
        if why_unique is not None:
            expectations.append(Expectation(table, "unique", id_column, why_unique))
        expectations.extend(c for c in checks if c.table == table)
    return Suite(
        name=name,
        tables={t: TableSpec(columns, id_column) for t, (columns, id_column, _) in tables.items()},
        expectations=tuple(expectations),
    )


def _files(stem: str, document: str, sections: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """A report's files, UTF-8: ``<stem>.json`` holding ``document``, and ``<stem>-<name>.csv``
    per CSV section."""
    out = {f"{stem}.json": document.encode()}
    for section, text in (sections or {}).items():
        out[f"{stem}-{section}.csv"] = text.encode()
    return out


# --------------------------------------------------------------------------------------------
# GST: adapter around warehouse/reports/gst.py
# --------------------------------------------------------------------------------------------

_GST_ENTRY_COLUMNS = (
    "entry_id",
    "kind",
    "merchant_id",
    "booked_at_us",
    "merchant_fees",
    "gst_payable",
    "fee_income",
    "gst_output_cgst",
    "gst_output_sgst",
    "gst_output_igst",
)
_GST_RECIPIENT_COLUMNS = ("merchant_id", "legal_name", "state_code", "gstin", "gstin_check")
_GSTIN_REGEX = r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$"


def _gst_window(period: str) -> tuple[datetime, datetime, datetime]:
    """GST's period rule: month ``period`` is ``[start, end)`` (IST, as UTC instants), and its
    entries are read from ``fy_start``, the start of its financial year (GSTR-1 numbers
    documents per financial year).  Returns ``(fy_start, start, end)``."""
    fy_start, _ = gst.ist_month_window(gst.financial_year_start(period))
    start, end = gst.ist_month_window(period)
    return fy_start, start, end


def _gstin_check(gstin: str | None) -> str:
    if gstin is None:
        return "absent"
    try:
        validate_gstin(gstin)
    except InvalidGstin:
        return "invalid"
    return "valid"


async def _load_gst(
    conn: asyncpg.Connection, period: str, params: Mapping[str, Any]
) -> ReportInputs:
    fy_start, start, end = _gst_window(period)
    entries = await gst.load_entry_sums(conn, fy_start, end)
    ids = [e.merchant_id for e in entries if e.merchant_id is not None and e.booked_at >= start]
    recipients = await gst.load_recipients(conn, ids)
    ledger = await gst.load_ledger_totals(conn, start, end)
    in_month = [e for e in entries if e.booked_at >= start]
    from_entries = {
        "cgst": -sum(e.gst_output_cgst for e in in_month),
        "sgst": -sum(e.gst_output_sgst for e in in_month),
        "igst": -sum(e.gst_output_igst for e in in_month),
        "fee_income": -sum(e.fee_income for e in in_month),
    }
    from_ledger = {
        "cgst": ledger.cgst_minor + ledger.settlement_cgst_minor,
        "sgst": ledger.sgst_minor + ledger.settlement_sgst_minor,
        "igst": ledger.igst_minor + ledger.settlement_igst_minor,
        "fee_income": ledger.fee_income_minor + ledger.settlement_fee_income_minor,
    }
    tables: dict[str, list[dict[str, Any]]] = {
        "entries": [
            {
                "entry_id": e.entry_id,
                "kind": e.kind,
                "merchant_id": e.merchant_id,
                "booked_at_us": epoch_us(e.booked_at),
                "merchant_fees": e.merchant_fees,
                "gst_payable": e.gst_payable,
                "fee_income": e.fee_income,
                "gst_output_cgst": e.gst_output_cgst,
                "gst_output_sgst": e.gst_output_sgst,
                "gst_output_igst": e.gst_output_igst,
            }
            for e in entries
        ],
        "recipients": [
            {
                "merchant_id": r.merchant_id,
                "legal_name": r.legal_name,
                "state_code": r.state_code,
                "gstin": r.gstin,
                "gstin_check": _gstin_check(r.gstin),
            }
            for r in sorted(recipients.values(), key=lambda r: r.merchant_id)
        ],
        "totals": [
            {"component": k, "entries_minor": from_entries[k], "ledger_minor": from_ledger[k]}
            for k in ("cgst", "sgst", "igst", "fee_income")
        ],
    }
    return ReportInputs(tables=tables, payload=(entries, recipients, ledger))


def _gst_suite(period: str) -> Suite:
    fy_start, _, end = _gst_window(period)
    return _suite(
        "gst_monthly",
        {
            "entries": (_GST_ENTRY_COLUMNS, "entry_id", "an entry is counted once"),
            "recipients": (_GST_RECIPIENT_COLUMNS, "merchant_id", "one recipient per merchant"),
            "totals": (("component", "entries_minor", "ledger_minor"), "component", None),
        },
        Expectation(
            "entries",
            "between",
            "booked_at_us",
            "entries fall in the financial year up to the month's end",
            min_value=epoch_us(fy_start),
            max_value=epoch_us(end) - 1,
        ),
        Expectation(
            "recipients", "regex", "state_code", "a two-digit GST state code", regex=r"^\d{2}$"
        ),
        Expectation(
            "recipients",
            "regex",
            "gstin",
            "GSTIN shape (state, PAN, entity, Z, check)",
            regex=_GSTIN_REGEX,
        ),
        Expectation(
            "recipients",
            "in_set",
            "gstin_check",
            "a GSTIN's check character must verify (Luhn mod 36)",
            value_set=("valid", "absent"),
        ),
        Expectation(
            "totals",
            "pair_equal",
            "entries_minor",
            "GST and fee income read per entry equal the ledger accounts' change",
            column_b="ledger_minor",
        ),
    )


def _build_gst(period: str, inputs: ReportInputs, params: Mapping[str, Any]) -> dict[str, bytes]:
    entries, recipients, ledger = inputs.payload
    config = gst.ReportConfig(
        gateway_state=str(params["gateway_state"]),
        supplier_gstin=params.get("supplier_gstin"),
        sac=str(params.get("sac", gst.DEFAULT_SAC)),
        prefix=str(params.get("prefix", "RZP")),
    )
    report = gst.build_report(period, entries, recipients, ledger, config)
    return _files(f"gst-{period}", gst.render_json(report), gst.render_csv_sections(report))


# --------------------------------------------------------------------------------------------
# AML: the FIU-IND monthly report of warehouse/aml/fiu.py (helper H6a's), read from the case
# file in PostgreSQL, so the scheduler needs no ClickHouse.
# --------------------------------------------------------------------------------------------


def _aml_kind(aml_settings: Any) -> ReportKind:
    from warehouse.aml import fiu  # noqa: PLC0415  (AML is optional for the other kinds)

    async def load(
        conn: asyncpg.Connection, period: str, params: Mapping[str, Any]
    ) -> ReportInputs:
        inputs = await fiu.load_fiu_inputs(conn, period)
        # canonical_json turns dates into strings, so the tables are plain JSON values.
        alerts = json.loads(canonical_json(list(inputs.alerts)))
        strs = json.loads(canonical_json(list(inputs.strs)))
        return ReportInputs(tables={"alerts": alerts, "strs": strs}, payload=inputs)

    def suite(period: str) -> Suite:
        currencies = tuple(sorted(CURRENCY_EXPONENTS))
        return _suite(
            "aml_fiu_monthly",
            {
                "alerts": (
                    ("alert_id", "rule", "period", "amount_minor", "currency"),
                    "alert_id",
                    "an alert is reported once",
                ),
                "strs": (
                    ("str_id", "amount_minor", "currency"),
                    "str_id",
                    "an STR is reported once",
                ),
            },
            Expectation("alerts", "in_set", "period", "alerts of this month", value_set=(period,)),
            Expectation("alerts", "between", "amount_minor", "no negative amounts", min_value=0),
            Expectation("alerts", "in_set", "currency", "ISO 4217, accepted", value_set=currencies),
            Expectation("strs", "between", "amount_minor", "no negative amounts", min_value=0),
        )

    def build(period: str, inputs: ReportInputs, params: Mapping[str, Any]) -> dict[str, bytes]:
        # generated_at is the end of the month (not the clock) so the file is reproducible;
        # STR "overdue" flags are therefore as of the month's end.
        _, end = gst.ist_month_window(period)
        report = fiu.build_fiu_report(
            period, inputs.payload, settings=aml_settings, generated_at=end.astimezone(UTC)
        )
        return _files(f"fiu-{period}", fiu.render_json(report))

    return ReportKind(
        name="aml",
        cadence="monthly",
        version=1,
        description="FIU-IND monthly report (threshold, cross-border, STRs) from the AML case file",
        load=load,
        suite=suite,
        build=build,
        schedule=AML_SCHEDULE,
        default_params={
            "reporting_entity_name": getattr(aml_settings, "reporting_entity_name", None),
            "fiu_reporting_entity_id": getattr(aml_settings, "fiu_reporting_entity_id", None),
            "fiu_due_day": getattr(aml_settings, "fiu_due_day", None),
        },
    )


def report_kinds(*, gateway_state: str, aml_settings: Any | None = None) -> dict[str, ReportKind]:
    """Every report kind by name.  ``gateway_state`` is the gateway's GST state code (worker
    settings); ``aml_settings`` an ``AmlSettings`` (``None``: no AML kind)."""
    kinds = [
        ReportKind(
            name="gst",
            cadence="monthly",
            version=1,
            description="GST on the gateway's fees, GSTR-1 sections, ledger reconciliation",
            load=_load_gst,
            suite=_gst_suite,
            build=_build_gst,
            schedule=GST_SCHEDULE,
            default_params={"gateway_state": gateway_state},
        ),
        ReportKind(
            name="settlement",
            cadence="daily",
            version=1,
            description="Daily settlement: batches, lines, fees, GST, reserve, payouts + UTR",
            load=load_settlement_inputs,
            suite=settlement_suite,
            build=build_settlement_report,
            schedule=SETTLEMENT_SCHEDULE,
        ),
        ReportKind(
            name="rbi_tat",
            cadence="daily",
            version=1,
            description="RBI: settlement within T+1, failed-transaction reversals vs TAT",
            load=load_rbi_inputs,
            suite=rbi_suite,
            build=build_rbi_report,
            schedule=RBI_SCHEDULE,
        ),
    ]
    if aml_settings is not None:
        kinds.append(_aml_kind(aml_settings))
    return {k.name: k for k in kinds}
