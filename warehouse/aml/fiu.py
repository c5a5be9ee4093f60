"""The monthly report to FIU-IND, as a function ``(period, inputs) → report`` (docs/aml.md).

The report is a JSON document in RizzPay's own documented format,
``rizzpay.fiu-monthly/1``.  Its sections are *shaped after* FIU-IND's published report types —
cash/threshold transaction reports (CTR: over ₹10 lakh alone or connected in a month),
cross-border wire transfer reports (CBWTR: over ₹5 lakh) and suspicious transaction reports
(STR) — but it is **not** FIU-IND's FINnet XML schema; a filing tool maps it onto that.

Inputs come from the case file (PostgreSQL, migration 0011), never from ClickHouse directly:
the alerts of the period as the rules raised them, and the STRs whose suspicion was determined
in the period.  So the report for a past month is rebuilt from what was recorded, and the same
inputs always give the same report (``inputs_sha256`` fingerprints them; ``generated_at`` is the
only field that changes between runs, and it comes from the caller's clock).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from warehouse.aml.deadlines import fiu_due_on, is_overdue, ist_date
from warehouse.aml.rules import CONNECTED_TOTAL, CROSS_BORDER, MONTHLY_TOTAL
from warehouse.aml.settings import AmlSettings
from warehouse.reports.gst import ist_month_window

FORMAT = "rizzpay.fiu-monthly/1"
THRESHOLD_RULES = (MONTHLY_TOTAL, CONNECTED_TOTAL)


@dataclass(frozen=True)
class FiuInputs:
    """What the report is built from: alert rows (``aml_alerts`` columns, evidence decoded)
    and STR rows (``aml_str_drafts`` joined with their case's alert)."""

    alerts: Sequence[dict[str, Any]]
    strs: Sequence[dict[str, Any]]


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def inputs_fingerprint(period: str, inputs: FiuInputs) -> str:
    payload = {"period": period, "alerts": inputs.alerts, "strs": inputs.strs}
    text = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def build_fiu_report(
    period: str, inputs: FiuInputs, *, settings: AmlSettings, generated_at: datetime
) -> dict[str, Any]:
    """The report for IST month ``period`` from ``inputs``.  Pure.  Amounts in paise."""
    ist_month_window(period)  # validates the period
    alerts = sorted(inputs.alerts, key=lambda a: (a["rule"], a["subject_id"]))
    threshold = [
        {
            "report_ref": a["alert_id"],
            "basis": "connected" if a["rule"] == CONNECTED_TOTAL else "single",
            "subject_kind": a["subject_kind"],
            "subject_id": a["subject_id"],
            "members": [m["customer_id"] for m in a["evidence"].get("members", [])]
            or [a["subject_id"]],
            "total_minor": a["amount_minor"],
            "currency": a["currency"],
            "transaction_count": a["transaction_count"],
            "transactions": a["evidence"].get("transactions", []),
        }
        for a in alerts
        if a["rule"] in THRESHOLD_RULES
    ]
    cross_border = [
        {
            "report_ref": a["alert_id"],
            "payment_id": a["subject_id"],
            "customer_id": a["evidence"].get("customer_id", ""),
            "merchant_id": a["evidence"].get("merchant_id", ""),
            "amount_inr_minor": a["amount_minor"],
            "original_amount_minor": a["evidence"].get("original_amount_minor"),
            "original_currency": a["evidence"].get("original_currency"),
            "payer_country": a["evidence"].get("payer_country", ""),
            "at": (a["evidence"].get("transactions") or [{}])[0].get("at"),
        }
        for a in alerts
        if a["rule"] == CROSS_BORDER
    ]
    today = ist_date(generated_at)
    suspicious = [
        {
            "str_id": s["str_id"],
            "case_id": s["case_id"],
            "rule": s["rule"],
            "subject_kind": s["subject_kind"],
            "subject_id": s["subject_id"],
            "amount_minor": s["amount_minor"],
            "currency": s["currency"],
            "suspicion_determined_on": _canonical(s["suspicion_determined_on"]),
            "due_on": _canonical(s["due_on"]),
            "status": s["status"],
            "filed_on": _canonical(s["filed_on"]),
            "fiu_reference": s["fiu_reference"],
            "overdue": is_overdue(s["due_on"], today, filed=s["status"] == "filed"),
            "grounds": s["grounds"],
            "transactions": s["evidence"].get("transactions", []),
        }
        for s in sorted(inputs.strs, key=lambda s: s["str_id"])
    ]
    return {
        "format": FORMAT,
        "report_period": period,
        "due_on": fiu_due_on(period, settings.fiu_due_day).isoformat(),
        "generated_at": generated_at.isoformat(),
        "reporting_entity": {
            "name": settings.reporting_entity_name,
            "fiu_reporting_entity_id": settings.fiu_reporting_entity_id,
        },
        "threshold_reports": threshold,
        "cross_border_reports": cross_border,
        "suspicious_reports": suspicious,
        "summary": {
            "threshold_reports": len(threshold),
            "threshold_total_minor": sum(t["total_minor"] for t in threshold),
            "cross_border_reports": len(cross_border),
            "cross_border_total_inr_minor": sum(c["amount_inr_minor"] for c in cross_border),
            "suspicious_reports": len(suspicious),
            "suspicious_overdue": sum(1 for s in suspicious if s["overdue"]),
        },
        "inputs_sha256": inputs_fingerprint(period, inputs),
    }


async def load_fiu_inputs(conn: asyncpg.Connection, period: str) -> FiuInputs:
    """The period's alerts, and the STRs whose suspicion was determined in the period."""
    start, end = ist_month_window(period)
    alert_rows = await conn.fetch(
        """SELECT alert_id, rule, period, subject_kind, subject_id, amount_minor, currency,
                  transaction_count, evidence::text AS evidence
             FROM aml_alerts WHERE period = $1 ORDER BY alert_id""",
        period,
    )
    str_rows = await conn.fetch(
        """SELECT s.str_id, s.case_id, s.suspicion_determined_on, s.due_on, s.grounds, s.status,
                  s.filed_on, s.fiu_reference, a.rule, a.subject_kind, a.subject_id,
                  a.amount_minor, a.currency, a.evidence::text AS evidence
             FROM aml_str_drafts s JOIN aml_cases c USING (case_id)
             JOIN aml_alerts a USING (alert_id)
            WHERE s.suspicion_determined_on >= $1 AND s.suspicion_determined_on < $2
            ORDER BY s.str_id""",
        ist_date(start),
        ist_date(end),
    )

    def decoded(row: asyncpg.Record) -> dict[str, Any]:
        out = dict(row)
        out["evidence"] = json.loads(out["evidence"])
        return out

    return FiuInputs([decoded(r) for r in alert_rows], [decoded(r) for r in str_rows])


async def fiu_report(
    conn: asyncpg.Connection, period: str, *, settings: AmlSettings, now: datetime
) -> dict[str, Any]:
    """Load the inputs and build the report (what a scheduler calls)."""
    return build_fiu_report(
        period, await load_fiu_inputs(conn, period), settings=settings, generated_at=now
    )


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
