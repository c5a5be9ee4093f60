"""Monthly GST report on the gateway's fees, read from the ledger (docs/gst-report.md).

The gateway is the supplier, each merchant the recipient, and the place of supply the merchant's
GST state (``merchants.state_code``).  For an IST calendar month the report issues, per merchant:

* one **tax invoice** for the fees booked in the month: the taxable value is the change of the
  merchant's ``fees`` account over the month's non-settlement entries that debit it, plus any
  instant-settlement fee (platform ``fee_income`` credited inside a ``settlement`` entry); the
  tax is what the ledger posted to platform ``gst_output_cgst``/``_sgst``/``_igst`` in those
  entries — never recomputed from rates;
* one **credit note** for fee reversals: non-settlement entries that credit the merchant's
  ``fees`` (settlement, payout-instruction and payout entries only clear balances and are left
  out), with the ``gst_output_*`` debits of the same entries.

Then an export shaped after the GSTR-1 tables a gateway files (B2B, B2CL, B2CS, CDNR, CDNUR,
HSN/SAC summary), a rate check that recomputes 18 % GST line by line and reports differences,
and a reconciliation: invoice GST − credit-note GST must equal the change of the platform
``gst_output_*`` balances over the month's entries, to the paisa, or the difference is shown.

Units: every amount is an ``int`` in paise (``*_minor``); JSON carries paise, CSV carries
rupees as exact two-decimal strings made from the paise (no float anywhere).  Instants are
timezone-aware; months are IST calendar months (UTC+05:30, no daylight saving).

Invoice numbers: ``RZP/2627/I000123`` (invoice) and ``RZP/2627/C000045`` (credit note) — 16
characters, the CGST Rules 46(b) limit (letters, digits, ``/`` and ``-``), one consecutive series
per kind per financial year (April–March).  Serials are derived, not stored: every (month,
merchant) document of the financial year up to this month, ordered by month then merchant id,
numbered 1, 2, 3…, so numbering is gap-free and a re-run gives the same numbers as long as the
earlier months' ledger entries are unchanged (the ledger is append-only; see
:func:`documents_table_sql` for the stored alternative).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import asyncpg

from streams.fees import (
    GST_RATE_BPS,
    InvalidGstin,
    gst_on_fee,
    state_name,
    validate_gstin,
    validate_state_code,
)
from streams.settlement import IST
from warehouse.payments import SETTLEMENT_KINDS

__all__ = [
    "B2CL_THRESHOLD_MINOR",
    "DEFAULT_SAC",
    "DOCUMENT_NUMBER_MAX_LEN",
    "EntrySums",
    "FeeLine",
    "LedgerTotals",
    "Recipient",
    "ReportConfig",
    "build_report",
    "document_number",
    "documents_table_sql",
    "fee_line",
    "financial_year_start",
    "gst_report",
    "ist_month_of",
    "ist_month_window",
    "load_entry_sums",
    "load_ledger_totals",
    "load_recipients",
    "render_csv_sections",
    "render_json",
    "rupees",
    "write_report",
]

B2CL_THRESHOLD_MINOR = 1_00_000_00
"""₹1,00,000 in paise: an invoice to an unregistered recipient goes to GSTR-1 table 5 (B2CL)
only when it is **inter-state and its value exceeds** this (since 1 Aug 2024; ₹2.5 lakh
before).  Everything else unregistered is summarised in table 7 (B2CS)."""

DEFAULT_SAC = "997158"
"""SAC 997158, "Financial transactions processing and clearing house services" (heading 9971,
group 99715, in the CBIC scheme of classification of services, annexure to Notification
11/2017-Central Tax (Rate)).  Configurable (:class:`ReportConfig` ``sac``, ``--sac``): finance
confirms the code the registration uses."""

DOCUMENT_NUMBER_MAX_LEN = 16
"""CGST Rules, rule 46(b): a consecutive serial number of at most 16 characters, unique for a
financial year, of letters, digits, hyphen and slash."""

_DOCUMENT_NUMBER = re.compile(r"[A-Za-z0-9/-]{1,16}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_GST_KINDS = ("cgst", "sgst", "igst")
_RATE_PERCENT = GST_RATE_BPS // 100

DocumentKind = Literal["invoice", "credit_note"]
LineSource = Literal["fee", "instant_settlement_fee"]


# --------------------------------------------------------------------------------------------
# Months, financial years, document numbers
# --------------------------------------------------------------------------------------------


def _parse_month(month: str) -> tuple[int, int]:
    match = _MONTH.fullmatch(month)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    return int(match.group(1)), int(match.group(2))


def _next_month(month: str) -> str:
    year, mon = _parse_month(month)
    return f"{year + mon // 12}-{mon % 12 + 1:02d}"


def ist_month_window(month: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of IST calendar month ``month`` (``"2026-11"``) as UTC instants:
    ``2026-10-31T18:30Z`` to ``2026-11-30T18:30Z``."""
    year, mon = _parse_month(month)
    nyear, nmon = _parse_month(_next_month(month))
    start = datetime(year, mon, 1, tzinfo=IST)
    end = datetime(nyear, nmon, 1, tzinfo=IST)
    return start.astimezone(UTC), end.astimezone(UTC)


def ist_month_of(instant: datetime) -> str:
    """The IST calendar month (``YYYY-MM``) of a timezone-aware instant."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    local = instant.astimezone(IST)
    return f"{local.year}-{local.month:02d}"


def financial_year_start(month: str) -> str:
    """The first month (April) of the Indian financial year containing ``month``."""
    year, mon = _parse_month(month)
    return f"{year if mon >= 4 else year - 1}-04"


def _fy_code(month: str) -> str:
    """``"2627"`` for FY 2026-27 (April 2026 – March 2027)."""
    first = int(financial_year_start(month)[:4])
    return f"{first % 100:02d}{(first + 1) % 100:02d}"


def _last_day(month: str) -> date:
    _, end = ist_month_window(month)
    return (end.astimezone(IST) - timedelta(days=1)).date()


def document_number(prefix: str, month: str, kind: DocumentKind, serial: int) -> str:
    """``{prefix}/{FY}/{I|C}{serial:06d}``: ``RZP/2627/I000123`` is invoice 123 of FY 2026-27.

    Raises ``ValueError`` when the number would break rule 46(b): more than 16 characters, a
    character other than letters, digits, ``/`` and ``-``, or a serial outside 1..999 999."""
    if not 1 <= serial <= 999_999:
        raise ValueError(f"document serial {serial} outside 1..999999")
    number = f"{prefix}/{_fy_code(month)}/{'I' if kind == 'invoice' else 'C'}{serial:06d}"
    if len(number) > DOCUMENT_NUMBER_MAX_LEN or not _DOCUMENT_NUMBER.fullmatch(number):
        raise ValueError(f"document number {number!r} breaks rule 46(b) (<= 16 of A-Z0-9/-)")
    return number


def rupees(minor: int) -> str:
    """Paise as an exact rupee string with two decimals: ``-1234`` → ``"-12.34"``."""
    sign = "-" if minor < 0 else ""
    whole, paise = divmod(abs(minor), 100)
    return f"{sign}{whole}.{paise:02d}"


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntrySums:
    """One INR journal entry's postings on the accounts the report reads, summed per account
    (signed paise, debit positive): the merchant's ``fees`` and ``gst_payable``, and the platform's
    ``fee_income`` and ``gst_output_*``.  ``booked_at`` is ``journal_entries.created_at``."""

    entry_id: str
    kind: str
    merchant_id: str | None
    booked_at: datetime
    merchant_fees: int = 0
    gst_payable: int = 0
    fee_income: int = 0
    gst_output_cgst: int = 0
    gst_output_sgst: int = 0
    gst_output_igst: int = 0


@dataclass(frozen=True)
class FeeLine:
    """A taxable fee (``taxable_minor > 0``) or a reversal of one (``< 0``) in one entry.

    Amounts in paise, signed alike: a charge is positive, a reversal negative; the GST
    components are the ledger's ``gst_output_*`` postings negated (the platform's credit)."""

    entry_id: str
    merchant_id: str
    month: str
    source: LineSource
    taxable_minor: int
    cgst_minor: int
    sgst_minor: int
    igst_minor: int

    @property
    def gst_minor(self) -> int:
        return self.cgst_minor + self.sgst_minor + self.igst_minor


@dataclass(frozen=True)
class Recipient:
    """A merchant as recipient: GST state (place of supply) and GSTIN if registered."""

    merchant_id: str
    legal_name: str
    state_code: str
    gstin: str | None


@dataclass(frozen=True)
class ReportConfig:
    """The supplier's side: its GST state, its GSTIN (optional, printed in the export), the SAC
    of the fees and the document-number prefix (at most 6 characters, so numbers fit 16)."""

    gateway_state: str
    supplier_gstin: str | None = None
    sac: str = DEFAULT_SAC
    prefix: str = "RZP"

    def __post_init__(self) -> None:
        validate_state_code(self.gateway_state)
        if not re.fullmatch(r"[A-Za-z0-9-]{1,6}", self.prefix):
            raise ValueError(f"prefix {self.prefix!r}: 1-6 of A-Z, 0-9, '-'")
        if not re.fullmatch(r"\d{4,8}", self.sac):
            raise ValueError(f"SAC {self.sac!r} is not 4-8 digits")


@dataclass(frozen=True)
class LedgerTotals:
    """What the ledger's platform accounts moved in the month (paise, credit-normal, so a
    positive number is tax or income owed/earned): ``gst_output_*`` and ``fee_income``, split
    into non-settlement entries and settlement entries (instant-settlement fees)."""

    cgst_minor: int = 0
    sgst_minor: int = 0
    igst_minor: int = 0
    fee_income_minor: int = 0
    settlement_cgst_minor: int = 0
    settlement_sgst_minor: int = 0
    settlement_igst_minor: int = 0
    settlement_fee_income_minor: int = 0


def fee_line(entry: EntrySums) -> tuple[FeeLine | None, list[str]]:
    """The fee line an entry contributes, and problems found in it (sentences naming it).

    * ``settlement``: the instant-settlement fee — taxable ``−fee_income``, tax
      ``−gst_output_*`` (the merchant's ``fees`` legs there only clear earlier charges);
    * ``payout_instruction``/``payout``: no fee; any fee or GST posting is a problem;
    * any other kind: taxable = the merchant's ``fees`` change, tax ``−gst_output_*``.

    A line whose GST has the opposite sign of its taxable value, whose CGST and SGST differ, or
    that has GST but no fee, is a problem; such GST still counts in the ledger totals, so the
    reconciliation shows it as a difference.
    """
    problems: list[str] = []
    cgst, sgst, igst = -entry.gst_output_cgst, -entry.gst_output_sgst, -entry.gst_output_igst
    source: LineSource
    if entry.kind == "settlement":
        taxable, source = -entry.fee_income, "instant_settlement_fee"
    elif entry.kind in SETTLEMENT_KINDS:
        if any((entry.fee_income, cgst, sgst, igst)):
            problems.append(f"entry {entry.entry_id} ({entry.kind}) posts fee income or GST")
        return None, problems
    else:
        taxable, source = entry.merchant_fees, "fee"
        if entry.merchant_fees != -entry.fee_income:
            problems.append(
                f"entry {entry.entry_id}: merchant fees {entry.merchant_fees} != platform "
                f"fee_income {-entry.fee_income} paise"
            )
        if entry.gst_payable != cgst + sgst + igst:
            problems.append(
                f"entry {entry.entry_id}: merchant gst_payable {entry.gst_payable} != GST output "
                f"{cgst + sgst + igst} paise"
            )
    if taxable == 0 and cgst == sgst == igst == 0:
        return None, problems
    if entry.merchant_id is None:
        problems.append(f"entry {entry.entry_id} has fees or GST but no merchant")
        return None, problems
    sign = 1 if taxable > 0 else -1
    if taxable == 0 or any(sign * c < 0 for c in (cgst, sgst, igst)):
        problems.append(
            f"entry {entry.entry_id}: GST ({cgst}/{sgst}/{igst}) does not follow its taxable "
            f"value {taxable} paise; left out of the documents"
        )
        return None, problems
    if cgst != sgst:
        problems.append(f"entry {entry.entry_id}: CGST {cgst} != SGST {sgst} paise")
    line = FeeLine(
        entry.entry_id,
        entry.merchant_id,
        ist_month_of(entry.booked_at),
        source,
        taxable,
        cgst,
        sgst,
        igst,
    )
    return line, problems


# --------------------------------------------------------------------------------------------
# Documents and the report
# --------------------------------------------------------------------------------------------


@dataclass
class _Doc:
    kind: DocumentKind
    merchant_id: str
    lines: list[FeeLine] = field(default_factory=list)

    def total(self, attr: str) -> int:
        """Sum of a line amount, made positive (a credit note's lines are negative)."""
        sign = 1 if self.kind == "invoice" else -1
        return sign * sum(int(getattr(line, attr)) for line in self.lines)


def _documents_by_month(
    lines: Sequence[FeeLine],
) -> dict[str, dict[tuple[DocumentKind, str], _Doc]]:
    docs: dict[str, dict[tuple[DocumentKind, str], _Doc]] = defaultdict(dict)
    for line in lines:
        kind: DocumentKind = "invoice" if line.taxable_minor > 0 else "credit_note"
        doc = docs[line.month].setdefault((kind, line.merchant_id), _Doc(kind, line.merchant_id))
        doc.lines.append(line)
    return docs


def _pos(state_code: str) -> str:
    """Place of supply as GSTR-1 prints it: ``"29-Karnataka"``."""
    return f"{state_code}-{state_name(state_code)}"


def _recomputed(lines: Sequence[FeeLine], pos: str, gateway_state: str) -> tuple[int, int, int]:
    """CGST, SGST, IGST (paise, positive) from 18 % of each line's taxable value."""
    cgst = sgst = igst = 0
    for line in lines:
        split = gst_on_fee(abs(line.taxable_minor), pos, gateway_state)
        cgst, sgst, igst = cgst + split.cgst_minor, sgst + split.sgst_minor, igst + split.igst_minor
    return cgst, sgst, igst


def _registered_gstin(recipient: Recipient, problems: list[str]) -> str | None:
    if recipient.gstin is None:
        return None
    try:
        gstin = validate_gstin(recipient.gstin)
    except InvalidGstin as exc:
        problems.append(f"merchant {recipient.merchant_id}: {exc}; reported as unregistered")
        return None
    if gstin[:2] != recipient.state_code:
        problems.append(
            f"merchant {recipient.merchant_id}: GSTIN state {gstin[:2]} != state_code "
            f"{recipient.state_code}; place of supply is the state_code"
        )
    return gstin


def build_report(
    month: str,
    entries: Sequence[EntrySums],
    recipients: Mapping[str, Recipient],
    ledger: LedgerTotals,
    config: ReportConfig,
) -> dict[str, Any]:
    """The GST report for IST month ``month``.  Pure.

    ``entries``: every INR entry touching the fee/GST accounts from the start of the financial
    year to the end of ``month`` (earlier months only number the documents); ``recipients``:
    every merchant with a fee line in ``month``; ``ledger``: :func:`load_ledger_totals` for
    ``month``.  Amounts in the result are paise; ordering is fixed, so equal inputs give an
    equal result.
    """
    fy_first = financial_year_start(month)
    problems: list[str] = []
    lines: list[FeeLine] = []
    for entry in sorted(entries, key=lambda e: e.entry_id):
        line, found = fee_line(entry)
        if ist_month_of(entry.booked_at) == month:
            problems.extend(found)
        if line is not None and fy_first <= line.month <= month:
            lines.append(line)
    by_month = _documents_by_month(lines)

    # Serial numbers: per kind, months in order, merchants by id within a month.
    serial = {"invoice": 0, "credit_note": 0}
    numbered: list[tuple[str, _Doc]] = []
    cursor = fy_first
    while cursor <= month:
        for key in sorted(by_month.get(cursor, {})):
            doc = by_month[cursor][key]
            serial[doc.kind] += 1
            if cursor == month:
                numbered.append(
                    (document_number(config.prefix, month, doc.kind, serial[doc.kind]), doc)
                )
        cursor = _next_month(cursor)

    doc_date = _last_day(month).isoformat()
    documents: list[dict[str, Any]] = []
    for number, doc in numbered:
        recipient = recipients.get(doc.merchant_id)
        if recipient is None:
            raise ValueError(f"merchant {doc.merchant_id} has fees but no merchants row")
        gstin = _registered_gstin(recipient, problems)
        intra = recipient.state_code == config.gateway_state
        taxable, cgst, sgst, igst = (
            doc.total(a) for a in ("taxable_minor", "cgst_minor", "sgst_minor", "igst_minor")
        )
        if (intra and igst) or (not intra and (cgst or sgst)):
            problems.append(
                f"{number} ({doc.merchant_id}): ledger split CGST {cgst}/SGST {sgst}/IGST {igst} "
                f"does not fit an {'intra' if intra else 'inter'}-state supply"
            )
        rc, rs, ri = _recomputed(doc.lines, recipient.state_code, config.gateway_state)
        documents.append(
            {
                "document_type": doc.kind,
                "number": number,
                "date": doc_date,
                "merchant_id": doc.merchant_id,
                "recipient_name": recipient.legal_name,
                "recipient_gstin": gstin,
                "place_of_supply": _pos(recipient.state_code),
                "supply_type": "intra_state" if intra else "inter_state",
                "sac": config.sac,
                "rate_percent": _RATE_PERCENT,
                "line_count": len(doc.lines),
                "entry_ids": [line.entry_id for line in doc.lines],
                "instant_settlement_fee_minor": sum(
                    abs(x.taxable_minor) for x in doc.lines if x.source != "fee"
                ),
                "taxable_minor": taxable,
                "cgst_minor": cgst,
                "sgst_minor": sgst,
                "igst_minor": igst,
                "gst_minor": cgst + sgst + igst,
                "value_minor": taxable + cgst + sgst + igst,
                "rate_check": {
                    "recomputed_cgst_minor": rc,
                    "recomputed_sgst_minor": rs,
                    "recomputed_igst_minor": ri,
                    "difference_minor": (cgst + sgst + igst) - (rc + rs + ri),
                },
            }
        )
    invoices = [d for d in documents if d["document_type"] == "invoice"]
    notes = [d for d in documents if d["document_type"] == "credit_note"]
    for doc_row in documents:
        if doc_row["rate_check"]["difference_minor"]:
            problems.append(
                f"{doc_row['number']}: ledger GST differs from 18 % recomputed per line by "
                f"{doc_row['rate_check']['difference_minor']} paise"
            )
    sections = _gstr1_sections(invoices, notes, config)
    return {
        "report": "gst_fees_monthly",
        "month": month,
        "return_period": f"{month[5:]}{month[:4]}",
        "window_utc": [w.isoformat() for w in ist_month_window(month)],
        "supplier": {
            "gstin": config.supplier_gstin,
            "state": _pos(config.gateway_state),
            "sac": config.sac,
        },
        "units": "amounts in paise (INR minor units); rate in percent",
        "inputs_fingerprint": _fingerprint(month, lines, documents),
        "invoices": invoices,
        "credit_notes": notes,
        "gstr1": sections,
        "reconciliation": _reconcile(invoices, notes, lines, month, ledger),
        "problems": sorted(set(problems)),
    }


def _taxes(doc: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(doc[k]) for k in ("taxable_minor", "igst_minor", "cgst_minor", "sgst_minor")}


def _gstr1_sections(
    invoices: Sequence[Mapping[str, Any]],
    notes: Sequence[Mapping[str, Any]],
    config: ReportConfig,
) -> dict[str, Any]:
    """GSTR-1 tables 4A (B2B), 5 (B2CL), 7 (B2CS, net of its credit notes), 9B (CDNR, CDNUR)
    and 12 (HSN/SAC summary, split B2B / B2C, net of credit notes).

    A credit note to an unregistered recipient goes to CDNUR (type B2CL) only when it is
    inter-state and its value exceeds ₹1 lakh; every other one reduces B2CS, as GSTR-1
    asks for B2CS."""

    def doc_row(d: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "number": d["number"],
            "date": d["date"],
            "recipient_gstin": d["recipient_gstin"],
            "recipient_name": d["recipient_name"],
            "value_minor": d["value_minor"],
            "place_of_supply": d["place_of_supply"],
            "reverse_charge": "N",
            "rate_percent": _RATE_PERCENT,
            **_taxes(d),
            "cess_minor": 0,
        }

    def is_b2cl(d: Mapping[str, Any]) -> bool:
        return d["supply_type"] == "inter_state" and int(d["value_minor"]) > B2CL_THRESHOLD_MINOR

    b2b = [doc_row(d) for d in invoices if d["recipient_gstin"]]
    b2cl = [doc_row(d) for d in invoices if not d["recipient_gstin"] and is_b2cl(d)]
    cdnr = [doc_row(d) | {"note_type": "C"} for d in notes if d["recipient_gstin"]]
    cdnur = [
        doc_row(d) | {"note_type": "C", "ur_type": "B2CL"}
        for d in notes
        if not d["recipient_gstin"] and is_b2cl(d)
    ]
    b2cs_acc: dict[tuple[str, str], dict[str, int]] = {}
    for sign, docs in ((1, invoices), (-1, notes)):
        for d in docs:
            if d["recipient_gstin"] or is_b2cl(d):
                continue
            acc = b2cs_acc.setdefault(
                (d["place_of_supply"], d["supply_type"]),
                dict.fromkeys(("taxable_minor", "igst_minor", "cgst_minor", "sgst_minor"), 0),
            )
            for k, v in _taxes(d).items():
                acc[k] += sign * v
    b2cs = [
        {
            "type": "OE",
            "place_of_supply": pos,
            "supply_type": supply,
            "rate_percent": _RATE_PERCENT,
            **acc,
            "cess_minor": 0,
        }
        for (pos, supply), acc in sorted(b2cs_acc.items())
    ]
    hsn: dict[str, list[dict[str, Any]]] = {}
    for part, registered in (("b2b", True), ("b2c", False)):
        total = dict.fromkeys(("taxable_minor", "igst_minor", "cgst_minor", "sgst_minor"), 0)
        for sign, docs in ((1, invoices), (-1, notes)):
            for d in docs:
                if bool(d["recipient_gstin"]) == registered:
                    for k, v in _taxes(d).items():
                        total[k] += sign * v
        value = sum(total.values())
        hsn[part] = (
            [
                {
                    "sac": config.sac,
                    "description": "Financial transactions processing services (gateway fees)",
                    "uqc": "NA",
                    "quantity": 0,
                    "rate_percent": _RATE_PERCENT,
                    "total_value_minor": value,
                    **total,
                    "cess_minor": 0,
                }
            ]
            if any(total.values())
            else []
        )
    return {"b2b": b2b, "b2cl": b2cl, "b2cs": b2cs, "cdnr": cdnr, "cdnur": cdnur, "hsn": hsn}


def _reconcile(
    invoices: Sequence[Mapping[str, Any]],
    notes: Sequence[Mapping[str, Any]],
    lines: Sequence[FeeLine],
    month: str,
    ledger: LedgerTotals,
) -> dict[str, Any]:
    """Documents against the ledger, per component, to the paisa (difference = documents −
    ledger; 0 everywhere means reconciled)."""
    docs = {
        k: sum(int(d[f"{k}_minor"]) for d in invoices) - sum(int(d[f"{k}_minor"]) for d in notes)
        for k in (*_GST_KINDS, "taxable")
    }
    in_month = [line for line in lines if line.month == month]
    docs_instant = {
        k: sum(int(getattr(x, f"{k}_minor")) for x in in_month if x.source != "fee")
        for k in (*_GST_KINDS, "taxable")
    }
    ledger_all = {
        "cgst": ledger.cgst_minor + ledger.settlement_cgst_minor,
        "sgst": ledger.sgst_minor + ledger.settlement_sgst_minor,
        "igst": ledger.igst_minor + ledger.settlement_igst_minor,
        "taxable": ledger.fee_income_minor + ledger.settlement_fee_income_minor,
    }
    ledger_settlement = {
        "cgst": ledger.settlement_cgst_minor,
        "sgst": ledger.settlement_sgst_minor,
        "igst": ledger.settlement_igst_minor,
        "taxable": ledger.settlement_fee_income_minor,
    }
    rows = []
    for k in (*_GST_KINDS, "taxable"):
        rows.append(
            {
                "component": k if k != "taxable" else "fee_income",
                "invoices_minor": sum(int(d[f"{k}_minor"]) for d in invoices),
                "credit_notes_minor": sum(int(d[f"{k}_minor"]) for d in notes),
                "documents_net_minor": docs[k],
                "ledger_change_minor": ledger_all[k],
                "difference_minor": docs[k] - ledger_all[k],
                "non_settlement_documents_minor": docs[k] - docs_instant[k],
                "non_settlement_ledger_minor": ledger_all[k] - ledger_settlement[k],
                "non_settlement_difference_minor": (docs[k] - docs_instant[k])
                - (ledger_all[k] - ledger_settlement[k]),
            }
        )
    gst_rows = rows[:3]
    return {
        "components": rows,
        "gst_documents_net_minor": sum(r["documents_net_minor"] for r in gst_rows),
        "gst_ledger_change_minor": sum(r["ledger_change_minor"] for r in gst_rows),
        "gst_difference_minor": sum(r["difference_minor"] for r in gst_rows),
        "reconciled": all(
            r["difference_minor"] == 0 and r["non_settlement_difference_minor"] == 0 for r in rows
        ),
    }


def _fingerprint(month: str, lines: Sequence[FeeLine], documents: Sequence[Any]) -> str:
    """sha256 over the month's fee lines and the documents (canonical JSON): equal inputs,
    equal fingerprint."""
    payload = json.dumps(
        {"month": month, "lines": [asdict(x) for x in lines], "documents": documents},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def render_json(report: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, 2-space indent, trailing newline): byte-identical for an
    equal report."""
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


_CSV_SECTIONS = ("b2b", "b2cl", "b2cs", "cdnr", "cdnur")


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    """One CSV row: nested dicts flattened (``rate_check_difference_minor``), lists dropped,
    ``*_minor`` paise turned into ``*_inr`` rupee strings, ``None`` into an empty cell."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(_flat({f"{key}_{k}": v for k, v in value.items()}))
        elif isinstance(value, list):
            continue
        elif key.endswith("_minor"):
            flat[key.removesuffix("_minor") + "_inr"] = rupees(int(value))
        else:
            flat[key] = "" if value is None else value
    return flat


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    flat = [_flat(row) for row in rows]
    if flat:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(list(flat[0]))
        writer.writerows([list(row.values()) for row in flat])
    return out.getvalue()


def render_csv_sections(report: Mapping[str, Any]) -> dict[str, str]:
    """One CSV per GSTR-1 section plus the document lists and the reconciliation: name → text.
    Amount columns are ``*_inr``, rupees with two decimals made exactly from the JSON's
    ``*_minor`` paise; an empty section is an empty file (no header)."""
    sections = report["gstr1"]
    out = {name: _csv(sections[name]) for name in _CSV_SECTIONS}
    out["hsn_b2b"] = _csv(sections["hsn"]["b2b"])
    out["hsn_b2c"] = _csv(sections["hsn"]["b2c"])
    out["invoices"] = _csv(report["invoices"])
    out["credit_notes"] = _csv(report["credit_notes"])
    out["reconciliation"] = _csv(report["reconciliation"]["components"])
    return out


def write_report(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write ``gst-<month>.json`` and ``gst-<month>-<section>.csv`` under ``out_dir``; returns
    the paths, sorted."""
    out_dir.mkdir(parents=True, exist_ok=True)
    month = report["month"]
    written = [out_dir / f"gst-{month}.json"]
    written[0].write_text(render_json(report), encoding="utf-8")
    for name, text in render_csv_sections(report).items():
        path = out_dir / f"gst-{month}-{name}.csv"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return sorted(written)


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

_ENTRY_SUMS_SQL = """
SELECT e.entry_id, e.kind, e.merchant_id, e.created_at,
       coalesce(sum(p.amount_minor) FILTER (WHERE a.owner <> 'platform' AND a.kind = 'fees'
                                             AND a.owner = e.merchant_id), 0) AS merchant_fees,
       coalesce(sum(p.amount_minor) FILTER (WHERE a.owner <> 'platform'
                                             AND a.kind = 'gst_payable'
                                             AND a.owner = e.merchant_id), 0) AS gst_payable,
       coalesce(sum(p.amount_minor) FILTER (WHERE a.owner = 'platform'
                                             AND a.kind = 'fee_income'), 0) AS fee_income,
       coalesce(sum(p.amount_minor) FILTER (WHERE a.owner = 'platform'
                                             AND a.kind = 'gst_output_cgst'), 0) AS cgst,
       coalesce(sum(p.amount_minor) FILTER (WHERE a.owner = 'platform'
                                             AND a.kind = 'gst_output_sgst'), 0) AS sgst,
       coalesce(sum(p.amount_minor) FILTER (WHERE a.owner = 'platform'
                                             AND a.kind = 'gst_output_igst'), 0) AS igst
  FROM journal_entries e
  JOIN postings p USING (entry_id)
  JOIN ledger_accounts a USING (account_id)
 WHERE e.created_at >= $1 AND e.created_at < $2 AND p.currency = 'INR'
   AND ((a.owner <> 'platform' AND a.kind IN ('fees', 'gst_payable'))
        OR (a.owner = 'platform'
            AND a.kind IN ('fee_income', 'gst_output_cgst', 'gst_output_sgst', 'gst_output_igst')))
 GROUP BY e.entry_id, e.kind, e.merchant_id, e.created_at
 ORDER BY e.entry_id
"""


async def load_entry_sums(
    conn: asyncpg.Connection | asyncpg.Pool, start: datetime, end: datetime
) -> list[EntrySums]:
    """Per INR entry booked in ``[start, end)``: its postings on the fee and GST accounts,
    summed per account (paise)."""
    rows = await conn.fetch(_ENTRY_SUMS_SQL, start, end)
    return [
        EntrySums(
            r["entry_id"],
            r["kind"],
            r["merchant_id"],
            r["created_at"],
            int(r["merchant_fees"]),
            int(r["gst_payable"]),
            int(r["fee_income"]),
            int(r["cgst"]),
            int(r["sgst"]),
            int(r["igst"]),
        )
        for r in rows
    ]


async def load_ledger_totals(
    conn: asyncpg.Connection | asyncpg.Pool, start: datetime, end: datetime
) -> LedgerTotals:
    """The change of platform ``gst_output_*`` and ``fee_income`` (INR, credit-normal paise)
    over entries booked in ``[start, end)``, straight from the postings: the reconciliation's
    independent side."""
    rows = await conn.fetch(
        """SELECT a.kind, e.kind = 'settlement' AS settlement, -sum(p.amount_minor) AS change
             FROM journal_entries e
             JOIN postings p USING (entry_id)
             JOIN ledger_accounts a USING (account_id)
            WHERE e.created_at >= $1 AND e.created_at < $2 AND p.currency = 'INR'
              AND a.owner = 'platform'
              AND a.kind IN ('fee_income', 'gst_output_cgst', 'gst_output_sgst',
                             'gst_output_igst')
            GROUP BY 1, 2""",
        start,
        end,
    )
    values: dict[str, int] = {}
    for r in rows:
        short = "fee_income" if r["kind"] == "fee_income" else r["kind"].removeprefix("gst_output_")
        prefix = "settlement_" if r["settlement"] else ""
        values[f"{prefix}{short}_minor"] = int(r["change"])
    return LedgerTotals(**values)


async def load_recipients(
    conn: asyncpg.Connection | asyncpg.Pool, merchant_ids: Sequence[str]
) -> dict[str, Recipient]:
    """The merchants among ``merchant_ids`` as recipients (state code, GSTIN as stored)."""
    rows = await conn.fetch(
        """SELECT merchant_id, legal_name, state_code, gstin FROM merchants
            WHERE merchant_id = ANY($1::text[])""",
        sorted(set(merchant_ids)),
    )
    return {
        r["merchant_id"]: Recipient(r["merchant_id"], r["legal_name"], r["state_code"], r["gstin"])
        for r in rows
    }


async def gst_report(
    conn: asyncpg.Connection | asyncpg.Pool, month: str, config: ReportConfig
) -> dict[str, Any]:
    """Read the ledger and build :func:`build_report` for IST month ``month`` (``YYYY-MM``).

    Reads the entries from the start of the financial year (to number the documents) to the end
    of the month.  For a consistent snapshot pass a connection inside a ``REPEATABLE READ``
    transaction (the CLI does)."""
    fy_start, _ = ist_month_window(financial_year_start(month))
    start, end = ist_month_window(month)
    entries = await load_entry_sums(conn, fy_start, end)
    ids = [e.merchant_id for e in entries if e.merchant_id is not None and e.booked_at >= start]
    recipients = await load_recipients(conn, ids)
    ledger = await load_ledger_totals(conn, start, end)
    return build_report(month, entries, recipients, ledger, config)


def documents_table_sql() -> str:
    """DDL for storing issued document numbers (the next free migration, if numbers must stay
    fixed even when a past month's ledger changes).  Not used by :func:`gst_report`, which
    derives numbers; kept here so the migration has a reviewed starting point."""
    return """
CREATE TABLE IF NOT EXISTS gst_documents (
    number         text PRIMARY KEY CHECK (number ~ '^[A-Za-z0-9/-]{1,16}$'),
    document_type  text NOT NULL CHECK (document_type IN ('invoice', 'credit_note')),
    financial_year text NOT NULL,            -- '2627'
    serial         integer NOT NULL CHECK (serial > 0),
    month          text NOT NULL CHECK (month ~ '^[0-9]{4}-[0-9]{2}$'),
    merchant_id    text NOT NULL REFERENCES merchants (merchant_id),
    taxable_minor  bigint NOT NULL,
    gst_minor      bigint NOT NULL,
    issued_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (document_type, financial_year, serial),
    UNIQUE (document_type, month, merchant_id)
);
"""
