"""Fees and tax (streams/fees.py): worked examples computed by hand, then properties.

Units: every amount is paise (₹1 = 100), every rate basis points (190 bp = 1.90 %).  Rounding is
half up to the paisa everywhere.
"""

from __future__ import annotations

import string
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.methods import MethodType
from models.money import INT64_MAX
from streams.fees import (
    GST_STATES,
    LEGACY_AND_SPECIAL_STATES,
    VALID_STATE_CODES,
    CardNetwork,
    CardRate,
    CardType,
    FeeBreakdown,
    FeeReversal,
    GstSplit,
    InvalidAmount,
    InvalidGstin,
    InvalidRefund,
    InvalidStateCode,
    MdrSchedule,
    apply_bps,
    breakdown_for,
    fee_for,
    fee_reversal_for_refund,
    gst_on_fee,
    gstin_check_char,
    gstin_state_code,
    instant_settlement_fee,
    is_valid_gstin,
    rate_bps_for,
    state_name,
    validate_gstin,
    validate_state_code,
)

MAHARASHTRA, KARNATAKA = "27", "29"
CARD_190 = MdrSchedule(default_bps=190)


# --- Worked examples ------------------------------------------------------------------------


def test_card_payment_inter_state_worked_example() -> None:
    # ₹1,000.00 card payment at 190 bp, merchant in Maharashtra (27), gateway in Karnataka (29):
    #   fee  = 1,00,000 paise × 190 / 10,000 = 1,900 paise        = ₹19.00
    #   IGST = 1,900 × 18 %                  =   342 paise        = ₹3.42   (different states)
    #   net  = 1,00,000 − 1,900 − 342        = 97,758 paise       = ₹977.58
    b = breakdown_for(
        CARD_190, 100_000, "card", network="visa", merchant_state="27", gateway_state="29"
    )
    assert (b.fee_minor, b.gst.igst_minor, b.gst.cgst_minor, b.gst.sgst_minor) == (1_900, 342, 0, 0)
    assert b.gst.total_minor == 342 and b.gst.taxable_minor == 1_900
    assert b.net_minor == 97_758
    assert not b.gst.intra_state and b.gst.place_of_supply == "27"
    assert b.describe() == "amount 1,000.00 INR − fee 19.00 INR − GST 3.42 INR = net 977.58 INR"


def test_card_payment_intra_state_worked_example() -> None:
    # Same payment, merchant and gateway both in Karnataka (29):
    #   CGST = 1,900 × 9 % = 171 paise = ₹1.71;  SGST = ₹1.71;  GST = ₹3.42;  net = ₹977.58
    b = breakdown_for(
        CARD_190, 100_000, "card", network="visa", merchant_state="29", gateway_state="29"
    )
    assert (b.gst.cgst_minor, b.gst.sgst_minor, b.gst.igst_minor) == (171, 171, 0)
    assert b.gst.total_minor == 342 and b.net_minor == 97_758 and b.gst.intra_state


def test_fee_rounds_half_up_at_the_half_paisa() -> None:
    # 200 bp of ₹1,000.25 = 1,00,025 × 0.02 = 2,000.50 paise → 2,001
    #   (half up; half-even would give 2,000)
    # 200 bp of ₹1,000.24 = 2,000.48 paise → 2,000;  of ₹1,000.75 = 2,001.50 → 2,002
    schedule = MdrSchedule(default_bps=200)
    assert fee_for(schedule, 100_025, "netbanking") == 2_001
    assert fee_for(schedule, 100_024, "netbanking") == 2_000
    assert fee_for(schedule, 100_075, "netbanking") == 2_002
    # The smallest case: 100 bp of 50 paise is 0.5 paise → 1;  of 49 paise 0.49 → 0.
    assert apply_bps(50, 100) == 1 and apply_bps(49, 100) == 0


def test_gst_rounds_each_component_half_up() -> None:
    # ₹1,000.00 at 195 bp → fee 1,950 paise (₹19.50).
    #   intra-state: 9 % = 175.5 paise → 176 each; CGST ₹1.76 + SGST ₹1.76 = ₹3.52; net ₹976.98
    #   inter-state: 18 % = 351.0 paise → IGST ₹3.51; net ₹976.99
    # So the intra-state total is one paisa above 18 % rounded (the documented ±1 paisa).
    schedule = MdrSchedule(default_bps=195)
    intra = breakdown_for(schedule, 100_000, "netbanking", merchant_state="29", gateway_state="29")
    inter = breakdown_for(schedule, 100_000, "netbanking", merchant_state="27", gateway_state="29")
    assert intra.fee_minor == inter.fee_minor == 1_950
    assert (intra.gst.cgst_minor, intra.gst.sgst_minor, intra.gst.total_minor) == (176, 176, 352)
    assert (inter.gst.igst_minor, inter.gst.total_minor) == (351, 351)
    assert (intra.net_minor, inter.net_minor) == (97_698, 97_699)
    # Fee ₹19.25: 9 % = 173.25 → 173 each, total 346; 18 % = 346.5 → 347: one paisa below.
    assert gst_on_fee(1_925, "27", "27").total_minor == 346
    assert gst_on_fee(1_925, "27", "29").total_minor == 347
    # Fee 50 paise: 9 % = 4.5 → 5 each (total 10); 18 % = 9.
    assert gst_on_fee(50, "27", "27").total_minor == 10
    assert gst_on_fee(50, "27", "29").total_minor == 9


def test_zero_mdr_upi_p2m_and_rupay_debit() -> None:
    # UPI at a configured 50 bp + ₹2 fixed + ₹1 minimum, and RuPay debit at 190 bp: all zero.
    schedule = MdrSchedule(
        default_bps=190, method_bps={"upi": 50}, fixed_fee_minor=200, min_fee_minor=100
    )
    upi = breakdown_for(schedule, 50_000, "upi", merchant_state="27", gateway_state="29")
    assert (upi.fee_minor, upi.gst.total_minor, upi.net_minor) == (0, 0, 50_000)
    assert fee_for(schedule, 100_000, "card", network="rupay", card_type="debit") == 0
    # A RuPay card of unknown type is treated as debit (never charge a zero-rated card).
    assert fee_for(schedule, 100_000, "card", network="rupay") == 0
    # RuPay credit and prepaid are not covered: 1,900 + 200 fixed = 2,100 paise.
    assert fee_for(schedule, 100_000, "card", network="rupay", card_type="credit") == 2_100
    assert fee_for(schedule, 100_000, "card", network="rupay", card_type="prepaid") == 2_100
    # Visa debit is not covered either.
    assert fee_for(schedule, 100_000, "card", network="visa", card_type="debit") == 2_100
    # With the rule switched off the configured rates apply: UPI 50 bp of ₹500 = 250 + 200 fixed.
    off = schedule.model_copy(update={"zero_mdr": False})
    assert fee_for(off, 50_000, "upi") == 450
    assert fee_for(off, 100_000, "card", network="rupay", card_type="debit") == 2_100


def test_min_and_max_fee_caps() -> None:
    # 200 bp + ₹3 fixed, at least ₹5, at most ₹250:
    schedule = MdrSchedule(
        default_bps=200, fixed_fee_minor=300, min_fee_minor=500, max_fee_minor=25_000
    )
    assert fee_for(schedule, 10_000, "wallet") == 500  # ₹100: 200 + 300 = ₹5.00 exactly
    assert fee_for(schedule, 5_000, "wallet") == 500  # ₹50: 100 + 300 = ₹4.00 → minimum ₹5
    assert fee_for(schedule, 2_000_000, "wallet") == 25_000  # ₹20,000: ₹403 → maximum ₹250
    assert fee_for(schedule, 300, "wallet") == 300  # ₹3: minimum ₹5 → never above the amount


def test_tiny_payment_fee_is_lowered_so_net_is_not_negative() -> None:
    # ₹3.00 with a ₹5 minimum: fee_for gives 300 (the whole amount), but 300 + GST > 300.
    # Largest fee that fits: 254 paise + IGST 18 % × 254 = 45.72 → 46; 254 + 46 = 300, net 0.
    # (255 + 18 % × 255 = 45.9 → 46 makes 301.)  Intra-state: 9 % × 254 = 22.86 → 23 each.
    schedule = MdrSchedule(default_bps=200, min_fee_minor=500)
    inter = breakdown_for(schedule, 300, "wallet", merchant_state="27", gateway_state="29")
    assert (inter.fee_minor, inter.gst.igst_minor, inter.net_minor) == (254, 46, 0)
    intra = breakdown_for(schedule, 300, "wallet", merchant_state="29", gateway_state="29")
    assert (intra.fee_minor, intra.gst.cgst_minor, intra.gst.sgst_minor) == (254, 23, 23)
    assert intra.net_minor == 0


def test_rate_lookup_most_specific_first() -> None:
    schedule = MdrSchedule(
        default_bps=250,
        method_bps={"card": 190, "upi": 30, "netbanking": 150},
        card_rates=(
            CardRate(network="amex", bps=300),
            CardRate(network="visa", card_type="debit", bps=90),
            CardRate(card_type="prepaid", bps=220),
        ),
    )
    assert rate_bps_for(schedule, "card", "visa", "debit") == 90  # network + type
    assert rate_bps_for(schedule, "card", "amex", "debit") == 300  # network, any type
    assert rate_bps_for(schedule, "card", "mastercard", "prepaid") == 220  # any network, type
    assert rate_bps_for(schedule, "card", "visa", "prepaid") == 220
    assert rate_bps_for(schedule, "card", "mastercard", "credit") == 190  # card default
    assert rate_bps_for(schedule, "card") == 190
    assert rate_bps_for(schedule, "netbanking") == 150
    assert rate_bps_for(schedule, "imps") == 250  # schedule default
    with pytest.raises(ValueError, match="card payments only"):
        fee_for(schedule, 100, "upi", network="visa")
    # Schedules are configuration: they round-trip through JSON unchanged.
    assert MdrSchedule.model_validate_json(schedule.model_dump_json()) == schedule
    loaded = MdrSchedule.model_validate_json(schedule.model_dump_json())
    assert rate_bps_for(loaded, "card", "visa", "debit") == 90


def test_schedule_validation_refuses_floats_and_inconsistency() -> None:
    with pytest.raises(ValidationError):
        MdrSchedule(default_bps=1.9)
    with pytest.raises(ValidationError):
        MdrSchedule(default_bps=10_001)
    with pytest.raises(ValidationError):
        MdrSchedule(default_bps=100, fixed_fee_minor=-1)
    with pytest.raises(ValidationError, match="exceeds"):
        MdrSchedule(default_bps=100, min_fee_minor=500, max_fee_minor=400)
    with pytest.raises(ValidationError, match="twice"):
        MdrSchedule(default_bps=100, card_rates=(CardRate(network="visa", bps=1),) * 2)
    with pytest.raises(ValidationError, match="method_bps"):
        MdrSchedule(default_bps=100, card_rates=(CardRate(bps=1),))
    with pytest.raises(ValidationError):
        MdrSchedule(default_bps=100, method_bps={"cash": 0})
    with pytest.raises(InvalidAmount):
        fee_for(CARD_190, 0, "card")
    with pytest.raises(InvalidAmount):
        fee_for(CARD_190, INT64_MAX + 1, "card")


def test_instant_settlement_fee() -> None:
    # ₹50,000.00 settled instantly at 25 bp: 50,00,000 × 0.0025 = 12,500 paise = ₹125.00,
    # plus IGST 18 % = ₹22.50 when the merchant is in another state.
    schedule = MdrSchedule(default_bps=190, instant_settlement_bps=25)
    fee = instant_settlement_fee(schedule, 5_000_000)
    assert fee == 12_500
    assert gst_on_fee(fee, "27", "29").igst_minor == 2_250
    assert instant_settlement_fee(schedule, 0) == 0
    assert instant_settlement_fee(schedule, 200) == 1  # 0.5 paise → 1 (half up)
    assert instant_settlement_fee(MdrSchedule(default_bps=190), 5_000_000) == 0
    with pytest.raises(InvalidAmount):
        instant_settlement_fee(schedule, -1)


# --- Refunds ----------------------------------------------------------------------------------


def _refund_all(
    charged: FeeBreakdown, parts: list[int], policy: str = "proportional"
) -> list[FeeReversal]:
    reversals: list[FeeReversal] = []
    before, refunded = FeeReversal.zero_for(charged), 0
    for part in parts:
        r = fee_reversal_for_refund(
            "proportional" if policy == "proportional" else "retained",
            charged,
            part,
            refunded_before_minor=refunded,
            reversed_before=before,
        )
        reversals.append(r)
        before, refunded = before.plus(r), refunded + part
    return reversals


def test_partial_refunds_reverse_exactly_fee_and_gst_inter_state() -> None:
    # ₹1,000.00 at 190 bp, 27 → 29: fee 1,900, IGST 342.  Refunds ₹333.33 × 3 then ₹0.01:
    #   after 33,333:  fee 1,900 × 33,333 / 1,00,000 = 633.327 → 633;
    #                  IGST 18 % × 633 = 113.94 → 114
    #   after 66,666:  1,266.654 → 1,267 (reverse 634);  IGST 228.06 → 228 (reverse 114)
    #   after 99,999:  1,899.981 → 1,900 (reverse 633);  IGST 342 (reverse 114)
    #   after 1,00,000 (full): the remainder, 0 and 0.
    charged = breakdown_for(CARD_190, 100_000, "card", merchant_state="27", gateway_state="29")
    reversals = _refund_all(charged, [33_333, 33_333, 33_333, 1])
    assert [(r.fee_minor, r.gst.igst_minor) for r in reversals] == [
        (633, 114),
        (634, 114),
        (633, 114),
        (0, 0),
    ]
    assert sum(r.fee_minor for r in reversals) == 1_900
    assert sum(r.gst.total_minor for r in reversals) == 342


def test_partial_refunds_last_one_takes_the_remainder_intra_state() -> None:
    # Fee ₹19.25 (1,925 paise), 29 → 29: CGST = SGST = 9 % × 1,925 = 173.25 → 173 each.
    # Refund half (₹500 of ₹1,000): fee 1,925 / 2 = 962.5 → 963; CGST 9 % × 963 = 86.67 → 87 each.
    # Refund the other half: the remainder, fee 962 and CGST 173 − 87 = 86 each (note 9 % × 962
    # would be 86.58 → 87: recomputing would have reversed 174, one paisa more than charged).
    schedule = MdrSchedule(default_bps=0, fixed_fee_minor=1_925)
    charged = breakdown_for(schedule, 100_000, "neft", merchant_state="29", gateway_state="29")
    assert (charged.fee_minor, charged.gst.cgst_minor) == (1_925, 173)
    first, second = _refund_all(charged, [50_000, 50_000])
    assert (first.fee_minor, first.gst.cgst_minor, first.gst.sgst_minor) == (963, 87, 87)
    assert (second.fee_minor, second.gst.cgst_minor, second.gst.sgst_minor) == (962, 86, 86)
    assert first.gst.taxable_minor == 963 and second.gst.taxable_minor == 962


def test_retained_policy_reverses_nothing_and_refunds_are_bounded() -> None:
    charged = breakdown_for(CARD_190, 100_000, "card", merchant_state="27", gateway_state="29")
    for r in _refund_all(charged, [40_000, 60_000], policy="retained"):
        assert r.fee_minor == 0 and r.gst.total_minor == 0
    with pytest.raises(InvalidRefund, match="exceed"):
        fee_reversal_for_refund("proportional", charged, 60_001, refunded_before_minor=40_000)
    with pytest.raises(InvalidRefund):
        fee_reversal_for_refund("proportional", charged, 0)
    too_much = FeeReversal(2_000, gst_on_fee(2_000, "27", "29"))
    with pytest.raises(InvalidRefund, match="does not fit"):
        fee_reversal_for_refund(
            "proportional", charged, 1, refunded_before_minor=1, reversed_before=too_much
        )
    other_supply = FeeReversal(0, gst_on_fee(0, "29", "29"))
    with pytest.raises(InvalidRefund):
        fee_reversal_for_refund("proportional", charged, 1, reversed_before=other_supply)


def test_reversal_clamps_inconsistent_history_and_still_ends_exact() -> None:
    # If earlier reversals were computed differently (here: one paisa of fee more than the
    # target), the next refund reverses nothing rather than a negative amount, and the final
    # refund still brings every component to exactly what was charged.
    charged = breakdown_for(CARD_190, 100_000, "card", merchant_state="27", gateway_state="29")
    before = FeeReversal(634, gst_on_fee(634, "27", "29"))  # target after 33,333 is 633
    nothing = fee_reversal_for_refund(
        "proportional", charged, 1, refunded_before_minor=33_332, reversed_before=before
    )
    assert nothing.fee_minor == 0 and nothing.gst.total_minor == 0
    last = fee_reversal_for_refund(
        "proportional", charged, 66_667, refunded_before_minor=33_333, reversed_before=before
    )
    assert before.plus(last).fee_minor == 1_900 and before.plus(last).gst.igst_minor == 342


def test_full_refund_reverses_what_was_charged_even_if_gst_was_computed_otherwise() -> None:
    # A payment charged before a rounding change (say IGST 343 on a fee of 1,900, not 342):
    # the refund that completes the capture reverses exactly what remains of what was charged.
    old_gst = GstSplit(0, 0, 343, 343, 1_900, "27", "29")
    charged = FeeBreakdown(100_000, 1_900, old_gst, 100_000 - 1_900 - 343)
    first, second = _refund_all(charged, [50_000, 50_000])
    assert (first.fee_minor, first.gst.igst_minor) == (950, 171)  # 18 % × 950 = 171.0
    assert (second.fee_minor, second.gst.igst_minor) == (950, 172)  # 343 − 171
    with pytest.raises(ValueError, match="net"):
        FeeBreakdown(100_000, 1_900, old_gst, 100_000 - 1_900)  # net + fee + GST != amount


# --- State codes and GSTIN ----------------------------------------------------------------------


def test_state_codes() -> None:
    assert len(GST_STATES) == 36  # 28 states + 8 union territories
    assert state_name("27") == "Maharashtra" and state_name("29") == "Karnataka"
    assert state_name("38") == "Ladakh" and state_name("97") == "Other Territory"
    assert "Daman and Diu" in state_name("25")
    valid = {f"{n:02d}" for n in range(1, 39)} | {"97"}
    assert set(GST_STATES) | set(LEGACY_AND_SPECIAL_STATES) == valid
    for code in valid:
        assert validate_state_code(code) == code
    for bad in ("00", "39", "96", "99", "7", "027", "2a", "", " 27"):
        with pytest.raises(InvalidStateCode):
            validate_state_code(bad)
    with pytest.raises(InvalidStateCode):
        gst_on_fee(100, "27", "39")


def test_gstin_checksum_worked_example() -> None:
    # 27AAPFU0939F1Z: code points 2 7 10 10 25 15 30 0 9 3 9 15 1 35, weights 1 2 1 2 …
    # products 2 14 10 20 25 30 30 0 9 6 9 30 1 70; 70 = 1×36 + 34 → 35; others < 36.
    # sum = 221; 221 mod 36 = 5; (36 − 5) mod 36 = 31 → "V".  (Also python-stdnum's example.)
    assert gstin_check_char("27AAPFU0939F1Z") == "V"
    # 29ABCDE1234F1Z: products 2 18 10 22 12 26 14 2 2 6 4 30 1 70(→35), sum 184,
    # 184 mod 36 = 4, 36 − 4 = 32 → "W".
    assert gstin_check_char("29ABCDE1234F1Z") == "W"
    for gstin in ("27AAPFU0939F1ZV", "29ABCDE1234F1ZW", "07AAGCB7383J1ZA", "97AAACR1234A1ZW"):
        assert validate_gstin(gstin) == gstin and is_valid_gstin(gstin)
    assert gstin_state_code("29ABCDE1234F1ZW") == KARNATAKA


@pytest.mark.parametrize(
    ("gstin", "reason"),
    [
        ("27AAPFU0939F1ZO", "check character"),  # wrong check character
        ("27AAPFU0939F1Z", "15 characters"),
        ("27aapfu0939f1zv", "not state"),  # lower case
        ("27AAPFU0939F0ZV", "not state"),  # entity number 0
        ("27AAPFU0939F1YV", "not state"),  # 14th not Z
        ("2AAAPFU0939F1ZV", "not state"),  # state not two digits
        ("39AAPFU0939F1ZV", "not a GST state code"),
        ("27AAPFU0000F1Z" + gstin_check_char("27AAPFU0000F1Z"), "0000"),
        ("27AAP1U0939F1ZV", "not state"),  # PAN with a digit among its letters
    ],
)
def test_invalid_gstins(gstin: str, reason: str) -> None:
    with pytest.raises(InvalidGstin, match=reason):
        validate_gstin(gstin)
    assert not is_valid_gstin(gstin)


# --- Properties --------------------------------------------------------------------------------

NETWORKS: tuple[CardNetwork, ...] = get_args(CardNetwork)
CARD_TYPES: tuple[CardType, ...] = get_args(CardType)
METHODS: tuple[MethodType, ...] = get_args(MethodType)
STATES = sorted(VALID_STATE_CODES)
bps = st.integers(0, 10_000)
amounts = st.one_of(st.integers(1, 1_000_000), st.integers(1, INT64_MAX))


@st.composite
def schedules(draw: st.DrawFn) -> MdrSchedule:
    min_fee = draw(st.none() | st.integers(0, 100_000))
    max_fee = draw(st.none() | st.integers(min_fee or 0, 10_000_000))
    rates = draw(
        st.lists(
            st.builds(
                CardRate,
                network=st.none() | st.sampled_from(NETWORKS),
                card_type=st.none() | st.sampled_from(CARD_TYPES),
                bps=bps,
            ).filter(lambda r: (r.network, r.card_type) != (None, None)),
            unique_by=lambda r: (r.network, r.card_type),
            max_size=5,
        )
    )
    return MdrSchedule(
        default_bps=draw(bps),
        method_bps=draw(st.dictionaries(st.sampled_from(METHODS), bps)),
        card_rates=tuple(rates),
        fixed_fee_minor=draw(st.integers(0, 10_000)),
        min_fee_minor=min_fee,
        max_fee_minor=max_fee,
        zero_mdr=draw(st.booleans()),
    )


@st.composite
def payments(draw: st.DrawFn) -> tuple[MethodType, CardNetwork | None, CardType | None]:
    method = draw(st.sampled_from(METHODS))
    if method != "card":
        return method, None, None
    return (
        method,
        draw(st.none() | st.sampled_from(NETWORKS)),
        draw(st.none() | st.sampled_from(CARD_TYPES)),
    )


@given(schedules(), amounts, payments(), st.sampled_from(STATES), st.sampled_from(STATES))
@settings(max_examples=400)
def test_breakdown_properties(
    schedule: MdrSchedule,
    amount: int,
    payment: tuple[MethodType, CardNetwork | None, CardType | None],
    merchant_state: str,
    gateway_state: str,
) -> None:
    method, network, card_type = payment
    fee = fee_for(schedule, amount, method, network, card_type)
    assert 0 <= fee <= amount
    b = breakdown_for(
        schedule,
        amount,
        method,
        network=network,
        card_type=card_type,
        merchant_state=merchant_state,
        gateway_state=gateway_state,
    )
    assert b.net_minor + b.fee_minor + b.gst.total_minor == amount
    assert b.net_minor >= 0 and 0 <= b.fee_minor <= fee
    assert b.gst.cgst_minor == b.gst.sgst_minor
    if b.fee_minor < fee:  # lowered only as far as needed: one paisa more would not fit
        more = gst_on_fee(b.fee_minor + 1, merchant_state, gateway_state)
        assert b.fee_minor + 1 + more.total_minor > amount
    if schedule.zero_mdr and (
        method == "upi" or (network == "rupay" and card_type in ("debit", None))
    ):
        assert b.fee_minor == 0 and b.gst.total_minor == 0


@given(st.integers(0, 10**15), st.sampled_from(STATES), st.sampled_from(STATES))
def test_gst_properties(fee: int, merchant_state: str, gateway_state: str) -> None:
    split = gst_on_fee(fee, merchant_state, gateway_state)
    assert split.cgst_minor == split.sgst_minor
    assert split.total_minor == split.cgst_minor + split.sgst_minor + split.igst_minor
    assert split.taxable_minor == fee
    # The total is within one paisa of 18 % rounded half up (exactly it when inter-state).
    assert abs(split.total_minor - apply_bps(fee, 1_800)) <= 1
    if merchant_state != gateway_state:
        assert split.total_minor == apply_bps(fee, 1_800) and split.cgst_minor == 0
    else:
        assert split.igst_minor == 0
    # Exact: |total − fee × 18 / 100| <= 1 paisa, checked in integers (× 100).
    assert abs(split.total_minor * 100 - fee * 18) <= 100


@st.composite
def refund_plans(draw: st.DrawFn) -> tuple[int, list[int]]:
    captured = draw(st.integers(1, 10**10))
    cuts = draw(st.lists(st.integers(1, captured), max_size=6, unique=True))
    if draw(st.booleans()):
        cuts.append(captured)  # a full refund in the end
    points = sorted(set(cuts))
    parts = [b - a for a, b in zip([0, *points], points, strict=False)]
    return captured, parts


@given(
    refund_plans(),
    st.integers(0, 10_000),
    st.integers(0, 100_000),
    st.sampled_from(STATES),
    st.sampled_from(STATES),
)
@settings(max_examples=300)
def test_cumulative_refund_reversal_never_exceeds_and_ends_exact(
    plan: tuple[int, list[int]], rate: int, fixed: int, merchant_state: str, gateway_state: str
) -> None:
    captured, parts = plan
    schedule = MdrSchedule(default_bps=rate, fixed_fee_minor=fixed)
    charged = breakdown_for(
        schedule, captured, "card", merchant_state=merchant_state, gateway_state=gateway_state
    )
    total, refunded = FeeReversal.zero_for(charged), 0
    for part, r in zip(parts, _refund_all(charged, parts), strict=True):
        refunded += part
        assert r.fee_minor >= 0 and r.gst.cgst_minor >= 0 and r.gst.igst_minor >= 0
        assert r.gst.cgst_minor == r.gst.sgst_minor
        total = total.plus(r)
        assert total.fee_minor <= charged.fee_minor
        assert total.gst.cgst_minor <= charged.gst.cgst_minor
        assert total.gst.sgst_minor <= charged.gst.sgst_minor
        assert total.gst.igst_minor <= charged.gst.igst_minor
        if refunded < captured:
            # Cumulative fee reversed is the fee in proportion, half up, and its GST is the
            # GST on that cumulative fee (integers: (2·fee·R + C) // 2C).
            expected = (2 * charged.fee_minor * refunded + captured) // (2 * captured)
            assert total.fee_minor == expected
            assert total.gst == gst_on_fee(expected, merchant_state, gateway_state)
    if refunded == captured:
        assert total.fee_minor == charged.fee_minor
        assert total.gst == charged.gst


PAN_CHARS = st.sampled_from(string.ascii_uppercase)
ALNUM = string.digits + string.ascii_uppercase


@st.composite
def gstins(draw: st.DrawFn) -> str:
    state = draw(st.sampled_from(STATES))
    letters = "".join(draw(st.lists(PAN_CHARS, min_size=5, max_size=5)))
    serial = f"{draw(st.integers(1, 9999)):04d}"
    prefix = state + letters + serial + draw(PAN_CHARS) + draw(st.sampled_from(ALNUM[1:])) + "Z"
    return prefix + gstin_check_char(prefix)


@given(gstins(), st.integers(0, 14), st.sampled_from(ALNUM))
def test_gstin_any_single_substitution_is_caught(gstin: str, position: int, char: str) -> None:
    assert is_valid_gstin(gstin)
    if gstin[position] == char:
        return
    changed = gstin[:position] + char + gstin[position + 1 :]
    # Luhn mod 36 detects every single-character substitution, so the change is caught either
    # by the shape rules or by the check character.
    assert not is_valid_gstin(changed)
