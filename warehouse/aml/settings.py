"""AML thresholds, each with where it comes from.  Built once at the entry point
(``AmlSettings()`` reads ``RIZZPAY_AML_*``) and passed down; nothing below reads the environment.

Amounts are paise (``*_minor``), shares are basis points (``*_bps``), windows are hours or days
as their names say.  The regulatory figures are the Prevention of Money-laundering (Maintenance
of Records) Rules, 2005 (PML Rules) as summarised in FACTS.md; the rest are RizzPay's own
policy, to be tuned by compliance (their source says so).
"""

from __future__ import annotations

from datetime import date

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LAKH_MINOR = 1_00_000 * 100  # ₹1,00,000 in paise

#: Setting name → its source, shown by ``rizzpay aml run`` and in docs/aml.md.
SOURCES: dict[str, str] = {
    "monthly_total_minor": "PML Rules 2005 rule 3(1)(A)-(B): cash transactions, or connected ones, "
    "over ₹10 lakh in a month (applied here to every payment method: RizzPay policy)",
    "cross_border_minor": "PML Rules 2005 rule 3(1)(F): cross-border wire transfers over ₹5 lakh",
    "structuring_thresholds_minor": "₹50,000 (Income-tax Rule 114B, PAN quoted), ₹2 lakh "
    "(Income-tax Act s.269ST), ₹10 lakh (PML Rules reporting): thresholds people split "
    "payments to stay under (FATF 'structuring' typology); band and count are RizzPay policy",
    "wallet_window_hours": "RizzPay policy (FATF 'pass-through account' typology)",
    "velocity_min_daily": "RizzPay policy",
    "round_unit_minor": "RizzPay policy (FATF round-amount red flag)",
    "refund_jump_multiplier": "RizzPay policy",
    "str_working_days": "PML Rules 2005 rule 8: STR within 7 working days of being satisfied "
    "that a transaction is suspicious (FACTS.md marks the figure secondary)",
    "fiu_due_day": "PML Rules 2005 rule 8: monthly reports by the 15th of the following month",
    "holidays": "RizzPay's compliance office calendar: national holidays built in, bank "
    "holidays listed by compliance (RIZZPAY_AML_HOLIDAYS)",
    "reference_rates_paise": "RBI / FBIL reference rates, set by compliance; a currency without "
    "a rate cannot be priced in rupees and is listed as unpriced",
}


def national_holidays(year: int) -> frozenset[date]:
    """The three fixed-date national holidays (Republic Day, Independence Day, Gandhi
    Jayanti).  Other holidays move with the calendar and are listed in settings."""
    return frozenset({date(year, 1, 26), date(year, 8, 15), date(year, 10, 2)})


class AmlSettings(BaseSettings):
    """Every threshold the AML rules and deadlines use; see :data:`SOURCES`."""

    model_config = SettingsConfigDict(env_prefix="RIZZPAY_AML_", extra="ignore", frozen=True)

    # Customers (alone, or connected through a shared card, VPA, wallet or device) whose
    # captured payments in an IST calendar month exceed this.
    monthly_total_minor: int = Field(default=10 * LAKH_MINOR, gt=0)
    # A single cross-border payment (foreign currency, or a foreign payer) over this, in rupees.
    cross_border_minor: int = Field(default=5 * LAKH_MINOR, gt=0)
    # Structuring: at least ``structuring_min_count`` payments in the month each within
    # ``structuring_band_bps`` below one of these thresholds, together above it.
    structuring_thresholds_minor: tuple[int, ...] = (50_000 * 100, 2 * LAKH_MINOR, 10 * LAKH_MINOR)
    structuring_band_bps: int = Field(default=1_000, gt=0, lt=10_000)
    structuring_min_count: int = Field(default=3, ge=2)
    # Wallet pass-through: money loaded into (or transferred to) a customer's wallet and sent
    # on within ``wallet_window_hours``: inflow at least ``wallet_min_inflow_minor`` and outflow
    # at least ``wallet_out_share_bps`` of it.
    wallet_window_hours: int = Field(default=48, gt=0)
    wallet_min_inflow_minor: int = Field(default=1 * LAKH_MINOR, gt=0)
    wallet_out_share_bps: int = Field(default=9_000, gt=0, le=10_000)
    # Velocity: a customer's payment requests on one IST day at least ``velocity_min_daily``
    # and at least ``velocity_multiplier`` times their daily mean over the previous
    # ``velocity_baseline_days``.
    velocity_min_daily: int = Field(default=20, gt=0)
    velocity_multiplier: int = Field(default=5, gt=1)
    velocity_baseline_days: int = Field(default=30, gt=0)
    # Round amounts: at least ``round_min_count`` captured payments in the month that are whole
    # multiples of ``round_unit_minor`` and at least ``round_min_amount_minor``.
    round_unit_minor: int = Field(default=10_000 * 100, gt=0)
    round_min_amount_minor: int = Field(default=50_000 * 100, gt=0)
    round_min_count: int = Field(default=3, ge=2)
    # Merchant refund / chargeback jump: this month's refunded (or charged-back) share of
    # captured amount at least ``refund_jump_floor_bps`` and ``refund_jump_multiplier`` times the
    # previous ``refund_baseline_months`` months' share, over at least
    # ``refund_jump_min_events`` refunds (chargebacks).
    refund_jump_floor_bps: int = Field(default=1_000, gt=0)
    refund_jump_multiplier: int = Field(default=3, gt=1)
    refund_jump_min_events: int = Field(default=5, gt=0)
    refund_baseline_months: int = Field(default=3, gt=0)
    # Deadlines.
    str_working_days: int = Field(default=7, gt=0)
    fiu_due_day: int = Field(default=15, ge=1, le=28)
    holidays: frozenset[date] = frozenset()
    # INR paise per one major unit of a foreign currency (USD 8_400 = ₹84.00 per dollar).
    reference_rates_paise: dict[str, int] = Field(default_factory=dict)
    # How many transaction ids an alert keeps as evidence (the count and sum cover them all).
    evidence_ids_max: int = Field(default=200, gt=0)
    # The reporting entity named in FIU-IND reports.
    reporting_entity_name: str = "RizzPay Payments Pvt Ltd"
    fiu_reporting_entity_id: str = "XXXXXXXXXX"

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays or day in national_holidays(day.year)
