"""The AML case file in PostgreSQL (migration 0011): alerts open cases; an analyst closes a
case with a reason or escalates it to a suspicious-transaction report (STR) draft, whose
deadline is tracked.

* :func:`open_cases` inserts alerts by their derived id, ``ON CONFLICT DO NOTHING``, and opens
  a case for each alert that was new, all in one transaction: running a period again, or
  two runs at once, opens no second case.
* A case moves ``open → closed`` (reason required) or ``open → escalated`` (an STR draft due
  ``str_working_days`` working days after the day suspicion was determined).  Escalating an
  escalated case returns its draft unchanged; any other move from a non-open case is refused
  with :class:`CaseError` (stable ``code``).
* Every move is recorded in the append-only ``aml_case_actions`` with who made it.

Times are aware instants supplied by the caller (``now``); dates are IST calendar dates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from warehouse.aml.deadlines import is_overdue, ist_date, str_due_on
from warehouse.aml.rules import Alert
from warehouse.aml.settings import AmlSettings

RULES_ACTOR = "aml.rules"


class CaseError(ValueError):
    """A case or STR move that cannot be made; ``code`` is stable for callers and scripts:
    ``case_not_found``, ``case_not_open``, ``str_not_found``, ``str_already_filed``,
    ``reason_required``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def case_id_of(alert_id: str) -> str:
    return f"case_{alert_id.removeprefix('aml_')}"


def str_id_of(case_id: str) -> str:
    return f"str_{case_id.removeprefix('case_')}"


@dataclass(frozen=True)
class OpenResult:
    opened: list[str]  # case ids opened by this call
    already_open: int  # alerts that had been raised before (their cases are left as they are)


async def open_cases(
    conn: asyncpg.Connection, alerts: Sequence[Alert], *, now: datetime
) -> OpenResult:
    """Record ``alerts`` and open a case for each one not recorded before."""
    if not alerts:
        return OpenResult([], 0)
    async with conn.transaction():
        new = await conn.fetch(
            """INSERT INTO aml_alerts (alert_id, rule, period, subject_kind, subject_id,
                   amount_minor, currency, transaction_count, evidence, raised_at)
               SELECT a, r, p, k, s, m, c, n, e::jsonb, $10
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::bigint[], $7::text[], $8::int[], $9::text[])
                      AS t (a, r, p, k, s, m, c, n, e)
               ON CONFLICT DO NOTHING
               RETURNING alert_id""",
            [a.alert_id for a in alerts],
            [a.rule for a in alerts],
            [a.period for a in alerts],
            [a.subject_kind for a in alerts],
            [a.subject_id for a in alerts],
            [a.amount_minor for a in alerts],
            [a.currency for a in alerts],
            [a.transaction_count for a in alerts],
            [json.dumps(a.evidence, sort_keys=True) for a in alerts],
            now,
        )
        opened = sorted(case_id_of(r["alert_id"]) for r in new)
        await conn.executemany(
            """INSERT INTO aml_cases (case_id, alert_id, opened_at, updated_at)
               VALUES ($1, $2, $3, $3)""",
            [(case_id_of(r["alert_id"]), r["alert_id"], now) for r in new],
        )
        await _record(conn, [(c, "opened", RULES_ACTOR, None) for c in opened], now)
    return OpenResult(opened, len(alerts) - len(opened))


async def _record(
    conn: asyncpg.Connection, actions: Sequence[tuple[str, str, str, str | None]], now: datetime
) -> None:
    await conn.executemany(
        """INSERT INTO aml_case_actions (case_id, action, actor, note, at)
           VALUES ($1, $2, $3, $4, $5)""",
        [(*a, now) for a in actions],
    )


async def _locked_case(conn: asyncpg.Connection, case_id: str) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM aml_cases WHERE case_id = $1 FOR UPDATE", case_id)
    if row is None:
        raise CaseError("case_not_found", f"no AML case {case_id}")
    return row


async def close_case(
    conn: asyncpg.Connection, case_id: str, *, reason: str, actor: str, now: datetime
) -> None:
    """Close an open case; ``reason`` (non-blank) is kept with it."""
    if not reason.strip():
        raise CaseError("reason_required", "closing a case needs a reason")
    async with conn.transaction():
        case = await _locked_case(conn, case_id)
        if case["status"] != "open":
            raise CaseError("case_not_open", f"case {case_id} is {case['status']}")
        await conn.execute(
            """UPDATE aml_cases SET status = 'closed', closed_at = $2, close_reason = $3,
                      updated_at = $2 WHERE case_id = $1""",
            case_id,
            now,
            reason.strip(),
        )
        await _record(conn, [(case_id, "closed", actor, reason.strip())], now)


@dataclass(frozen=True)
class StrDraft:
    str_id: str
    case_id: str
    suspicion_determined_on: date
    due_on: date
    grounds: str
    status: str
    filed_on: date | None
    fiu_reference: str | None

    def overdue(self, today: date) -> bool:
        return is_overdue(self.due_on, today, filed=self.status == "filed")

    def as_json(self, today: date) -> dict[str, Any]:
        return {
            "str_id": self.str_id,
            "case_id": self.case_id,
            "suspicion_determined_on": self.suspicion_determined_on.isoformat(),
            "due_on": self.due_on.isoformat(),
            "grounds": self.grounds,
            "status": self.status,
            "filed_on": self.filed_on.isoformat() if self.filed_on else None,
            "fiu_reference": self.fiu_reference,
            "overdue": self.overdue(today),
        }


def _draft(row: asyncpg.Record) -> StrDraft:
    return StrDraft(
        row["str_id"],
        row["case_id"],
        row["suspicion_determined_on"],
        row["due_on"],
        row["grounds"],
        row["status"],
        row["filed_on"],
        row["fiu_reference"],
    )


async def escalate_case(
    conn: asyncpg.Connection,
    case_id: str,
    *,
    grounds: str,
    actor: str,
    now: datetime,
    settings: AmlSettings,
    determined_at: datetime | None = None,
) -> StrDraft:
    """Escalate an open case to an STR draft.  Suspicion is determined at ``determined_at``
    (default ``now``); the draft is due ``str_working_days`` working days after that IST date.
    Escalating an already escalated case returns its draft unchanged."""
    if not grounds.strip():
        raise CaseError("reason_required", "an STR draft needs the grounds of suspicion")
    async with conn.transaction():
        case = await _locked_case(conn, case_id)
        if case["status"] == "escalated":
            existing = await conn.fetchrow(
                "SELECT * FROM aml_str_drafts WHERE case_id = $1", case_id
            )
            assert existing is not None  # escalated implies a draft (same transaction)
            return _draft(existing)
        if case["status"] != "open":
            raise CaseError("case_not_open", f"case {case_id} is {case['status']}")
        determined_on = ist_date(determined_at or now)
        due = str_due_on(determined_on, settings.str_working_days, settings.is_holiday)
        row = await conn.fetchrow(
            """INSERT INTO aml_str_drafts (str_id, case_id, suspicion_determined_on, due_on,
                   grounds, created_at)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
            str_id_of(case_id),
            case_id,
            determined_on,
            due,
            grounds.strip(),
            now,
        )
        await conn.execute(
            """UPDATE aml_cases SET status = 'escalated', escalated_at = $2, updated_at = $2
                WHERE case_id = $1""",
            case_id,
            now,
        )
        await _record(conn, [(case_id, "escalated", actor, grounds.strip())], now)
    assert row is not None
    return _draft(row)


async def file_str(
    conn: asyncpg.Connection,
    str_id: str,
    *,
    fiu_reference: str,
    filed_on: date,
    actor: str,
    now: datetime,
) -> StrDraft:
    """Mark a draft filed with FIU-IND (its acknowledgement reference and the filing date)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT * FROM aml_str_drafts WHERE str_id = $1 FOR UPDATE", str_id
        )
        if row is None:
            raise CaseError("str_not_found", f"no STR draft {str_id}")
        if row["status"] == "filed":
            raise CaseError("str_already_filed", f"{str_id} was filed on {row['filed_on']}")
        row = await conn.fetchrow(
            """UPDATE aml_str_drafts SET status = 'filed', filed_on = $2, fiu_reference = $3
                WHERE str_id = $1 RETURNING *""",
            str_id,
            filed_on,
            fiu_reference,
        )
        assert row is not None
        await _record(conn, [(row["case_id"], "str_filed", actor, fiu_reference)], now)
    return _draft(row)


async def list_cases(
    conn: asyncpg.Connection, *, status: str | None = None, period: str | None = None
) -> list[dict[str, Any]]:
    """Cases with their alert, newest first; filtered by status and/or period."""
    rows = await conn.fetch(
        """SELECT c.case_id, c.status, c.opened_at, c.closed_at, c.close_reason, c.escalated_at,
                  a.alert_id, a.rule, a.period, a.subject_kind, a.subject_id, a.amount_minor,
                  a.currency, a.transaction_count
             FROM aml_cases c JOIN aml_alerts a USING (alert_id)
            WHERE ($1::text IS NULL OR c.status = $1) AND ($2::text IS NULL OR a.period = $2)
            ORDER BY c.opened_at DESC, c.case_id""",
        status,
        period,
    )
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
        for r in rows
    ]


async def str_drafts(
    conn: asyncpg.Connection, *, today: date, overdue_only: bool = False
) -> list[StrDraft]:
    """STR drafts by due date; with ``overdue_only``, the unfiled ones past their due date."""
    rows = await conn.fetch("SELECT * FROM aml_str_drafts ORDER BY due_on, str_id")
    drafts = [_draft(r) for r in rows]
    return [d for d in drafts if d.overdue(today)] if overdue_only else drafts
