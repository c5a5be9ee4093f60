"""The pure parts of AML monitoring: deadlines on worked examples, customer links, windows,
ratios, currency conversion, alert ids and the FIU report builder."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from warehouse.aml import rules
from warehouse.aml.deadlines import add_working_days, fiu_due_on, is_overdue, str_due_on
from warehouse.aml.fiu import FiuInputs, build_fiu_report
from warehouse.aml.rules import CustomerLinks, WalletMove, connected_groups
from warehouse.aml.settings import SOURCES, AmlSettings

SETTINGS = AmlSettings()


# --- deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("determined", "holidays", "due"),
    [
        # Monday → Tue 3 … Fri 6 (4), Mon 9 … Wed 11 (7).
        (date(2026, 11, 2), (), date(2026, 11, 11)),
        # Friday: the weekend does not count.  Mon 2 Nov … Tue 10 Nov.
        (date(2026, 10, 30), (), date(2026, 11, 10)),
        # Saturday: counting starts on Monday 9 Nov.
        (date(2026, 11, 7), (), date(2026, 11, 17)),
        # A listed holiday (Monday 9 Nov) moves it one working day on.
        (date(2026, 11, 7), (date(2026, 11, 9),), date(2026, 11, 18)),
        # Republic Day (Monday 26 Jan 2026) is built in: Tue 27 … Wed 4 Feb.
        (date(2026, 1, 23), (), date(2026, 2, 4)),
        # Across the year end: Thu 31 Dec 2026 → Fri 1, Mon 4 … Fri 8, Mon 11 Jan 2027.
        (date(2026, 12, 31), (), date(2027, 1, 11)),
    ],
)
def test_str_deadline_worked_examples(
    determined: date, holidays: tuple[date, ...], due: date
) -> None:
    settings = AmlSettings(holidays=frozenset(holidays))
    assert str_due_on(determined, settings.str_working_days, settings.is_holiday) == due


def test_working_days_skip_weekends_and_holidays() -> None:
    def never(_: date) -> bool:
        return False

    assert add_working_days(date(2026, 11, 6), 1, never) == date(2026, 11, 9)  # Fri → Mon
    assert add_working_days(date(2026, 11, 6), 1, lambda d: d == date(2026, 11, 9)) == date(
        2026, 11, 10
    )
    with pytest.raises(ValueError, match="at least 1"):
        add_working_days(date(2026, 11, 6), 0, never)


def test_overdue_only_after_the_due_day_and_never_once_filed() -> None:
    due = date(2026, 11, 10)
    assert not is_overdue(due, date(2026, 11, 10), filed=False)
    assert is_overdue(due, date(2026, 11, 11), filed=False)
    assert not is_overdue(due, date(2026, 12, 1), filed=True)


def test_fiu_report_is_due_on_the_15th_of_the_next_month() -> None:
    assert fiu_due_on("2026-10", 15) == date(2026, 11, 15)
    assert fiu_due_on("2026-12", 15) == date(2027, 1, 15)
    with pytest.raises(ValueError):
        fiu_due_on("2026-13", 15)


# --- rules' pure parts ----------------------------------------------------------------------


def test_customers_sharing_any_link_are_one_group_transitively() -> None:
    customers = [
        CustomerLinks("c1", 400, 2, frozenset({"device:d1", "card:t1"})),
        CustomerLinks("c2", 300, 1, frozenset({"device:d1", "vpa:x@ok"})),
        CustomerLinks("c3", 200, 1, frozenset({"vpa:x@ok"})),  # linked to c1 only through c2
        CustomerLinks("c4", 900, 5, frozenset({"card:t9"})),  # alone
        CustomerLinks("c5", 100, 1, frozenset()),
    ]
    (group,) = connected_groups(customers)
    assert group.members == ("c1", "c2", "c3")
    assert (group.total_minor, group.payments) == (900, 4)
    assert group.shared_links == ("device:d1", "vpa:x@ok")


def test_velocity_needs_both_the_floor_and_the_multiple_of_the_baseline() -> None:
    s = AmlSettings(velocity_min_daily=20, velocity_multiplier=5, velocity_baseline_days=30)
    first, end = date(2026, 10, 1), date(2026, 11, 1)
    quiet = {date(2026, 9, d): 6 for d in range(1, 31)}  # 180 in 30 days: mean 6
    assert rules.velocity_hits({**quiet, date(2026, 10, 1): 29}, first, end, s) is None  # < 5x6
    spike = rules.velocity_hits({**quiet, date(2026, 10, 1): 30}, first, end, s)
    assert spike == (date(2026, 10, 1), 30, 180)
    assert rules.velocity_hits({date(2026, 10, 5): 19}, first, end, s) is None  # under floor
    assert rules.velocity_hits({date(2026, 9, 30): 50}, first, end, s) is None  # not in month


def test_wallet_pass_through_window_and_share() -> None:
    s = AmlSettings(wallet_window_hours=48, wallet_min_inflow_minor=100, wallet_out_share_bps=9000)
    t0 = datetime(2026, 10, 10, tzinfo=UTC)
    first, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    load = WalletMove(t0, "in1", 1000, inflow=True)
    fast = WalletMove(t0 + timedelta(hours=47), "out1", 900, inflow=False)
    slow = WalletMove(t0 + timedelta(hours=49), "out1", 900, inflow=False)
    part = WalletMove(t0 + timedelta(hours=1), "out1", 899, inflow=False)
    hit = rules.pass_through([load, fast], first, end, s)
    assert hit is not None and hit[:2] == (1000, 900)
    assert rules.pass_through([load, slow], first, end, s) is None  # outside the window
    assert rules.pass_through([load, part], first, end, s) is None  # under 90 %
    small = WalletMove(t0, "in1", 99, inflow=True)
    assert rules.pass_through([small, fast], first, end, s) is None  # inflow under the floor


def test_refund_share_jump_in_integers() -> None:
    s = AmlSettings(refund_jump_floor_bps=1000, refund_jump_multiplier=3, refund_jump_min_events=5)

    def jumped(now: int, cap: int, base: int, base_cap: int, count: int = 10) -> bool:
        return rules.share_jumped(
            now, cap, base_minor=base, base_captured_minor=base_cap, count=count, s=s
        )

    assert jumped(3_000, 10_000, 100, 10_000)  # 30 % against 1 %
    assert not jumped(900, 10_000, 0, 10_000)  # 9 %: under the floor
    assert not jumped(2_000, 10_000, 1_000, 10_000)  # 20 % against 10 %: only 2x
    assert jumped(3_000, 10_000, 1_000, 10_000)  # exactly 3x
    assert not jumped(3_000, 10_000, 100, 10_000, count=4)  # too few refunds
    assert jumped(3_000, 10_000, 0, 0)  # no history: any share over the floor


def test_foreign_amounts_are_priced_in_paise_with_integers() -> None:
    rates = {"USD": 8_400, "JPY": 56, "KWD": 27_300}
    assert rules.inr_minor(7_000_00, "USD", rates) == 5_88_000_00
    assert rules.inr_minor(10_000, "JPY", rates) == 5_60_000  # ¥10,000 (exponent 0)
    assert rules.inr_minor(1_500, "KWD", rates) == 40_950  # 1.500 KWD (exponent 3)
    assert rules.inr_minor(123, "INR", rates) == 123
    assert rules.inr_minor(100, "EUR", rates) is None


def test_alert_ids_are_stable_and_distinct() -> None:
    a = rules.alert_id(rules.MONTHLY_TOTAL, "2026-10", "customer", "c1")
    assert a == rules.alert_id(rules.MONTHLY_TOTAL, "2026-10", "customer", "c1")
    assert a.startswith("aml_") and len(a) == 28
    assert a != rules.alert_id(rules.MONTHLY_TOTAL, "2026-11", "customer", "c1")
    assert a != rules.alert_id(rules.ROUND_AMOUNTS, "2026-10", "customer", "c1")


def test_every_threshold_names_its_source() -> None:
    for name in SOURCES:
        assert name in AmlSettings.model_fields, name
    assert SETTINGS.monthly_total_minor == 10_00_000_00
    assert SETTINGS.cross_border_minor == 5_00_000_00


# --- FIU report -----------------------------------------------------------------------------


def _alert(rule: str, subject: str, amount: int, **evidence: object) -> dict[str, object]:
    return {
        "alert_id": rules.alert_id(rule, "2026-10", "customer", subject),
        "rule": rule,
        "period": "2026-10",
        "subject_kind": "customer",
        "subject_id": subject,
        "amount_minor": amount,
        "currency": "INR",
        "transaction_count": 2,
        "evidence": {"transactions": [{"id": "p1", "amount_minor": amount, "at": "t"}], **evidence},
    }


def test_fiu_report_sections_and_fingerprint() -> None:
    inputs = FiuInputs(
        alerts=[
            _alert(rules.MONTHLY_TOTAL, "c1", 11_00_000_00),
            _alert(rules.ROUND_AMOUNTS, "c2", 3_00_000_00),  # not a threshold report
            _alert(rules.CROSS_BORDER, "pay_1", 6_00_000_00, original_currency="USD"),
        ],
        strs=[],
    )
    at = datetime(2026, 11, 3, tzinfo=UTC)
    report = build_fiu_report("2026-10", inputs, settings=SETTINGS, generated_at=at)
    assert report["format"] == "rizzpay.fiu-monthly/1"
    assert [t["subject_id"] for t in report["threshold_reports"]] == ["c1"]
    assert report["threshold_reports"][0]["members"] == ["c1"]
    assert [c["payment_id"] for c in report["cross_border_reports"]] == ["pay_1"]
    assert report["summary"]["threshold_total_minor"] == 11_00_000_00
    later = build_fiu_report(
        "2026-10", inputs, settings=SETTINGS, generated_at=at + timedelta(days=1)
    )
    assert later["inputs_sha256"] == report["inputs_sha256"]
    fewer = FiuInputs(alerts=inputs.alerts[:1], strs=[])
    other = build_fiu_report("2026-10", fewer, settings=SETTINGS, generated_at=at)
    assert other["inputs_sha256"] != report["inputs_sha256"]
