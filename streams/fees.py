"""Fees and tax: per-merchant MDR schedules, GST on the fee, refunds of fees.  Pure, no I/O.

Units and rules (docs/fees.md has the worked examples):

* Every amount is an ``int`` in paise (INR minor units, ``CURRENCY_EXPONENTS["INR"] == 2``); every
  rate is an ``int`` in basis points (1 bp = 0.01 %, so 190 bp = 1.90 %).  No float anywhere.
  Amounts of foreign-currency payments are converted to INR before these functions see them.
* One rounding rule everywhere: a rate applied to an amount is rounded **half up to the paisa**
  (``amount × bps / 10 000``, a fraction of exactly ½ paisa goes up).  Amounts and rates are
  never negative here, so "half up" and "half away from zero" are the same thing.
* GST on the fee is 18 %: CGST 9 % + SGST 9 % when the merchant's GST state (the place of supply)
  is the gateway's state, IGST 18 % otherwise.  CGST and SGST are each rounded from 9 % of the fee,
  so they are always equal and their sum may differ from 18 % rounded by at most one paisa.
* GST is computed per payment (line level); an invoice's tax is the sum of its lines, so invoices
  and the ledger's GST payable agree to the paisa.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictInt, model_validator

from models.methods import MethodType
from models.money import INT64_MAX, format_minor

__all__ = [
    "BPS_DENOMINATOR",
    "CGST_RATE_BPS",
    "GST_RATE_BPS",
    "GST_STATES",
    "IGST_RATE_BPS",
    "LEGACY_AND_SPECIAL_STATES",
    "SGST_RATE_BPS",
    "VALID_STATE_CODES",
    "CardNetwork",
    "CardRate",
    "CardType",
    "FeeBreakdown",
    "FeeReversal",
    "GstSplit",
    "InvalidAmount",
    "InvalidGstin",
    "InvalidRefund",
    "InvalidStateCode",
    "MdrSchedule",
    "RefundFeePolicy",
    "apply_bps",
    "breakdown_for",
    "fee_for",
    "fee_reversal_for_refund",
    "gst_on_fee",
    "gstin_check_char",
    "gstin_state_code",
    "instant_settlement_fee",
    "is_valid_gstin",
    "is_zero_mdr",
    "rate_bps_for",
    "state_name",
    "validate_gstin",
    "validate_state_code",
]

CardNetwork = Literal["visa", "mastercard", "rupay", "amex", "diners"]
CardType = Literal["credit", "debit", "prepaid"]
RefundFeePolicy = Literal["retained", "proportional"]
"""What a refund does to the fee: ``retained`` (the gateway keeps the whole fee and its GST; no
credit note) or ``proportional`` (fee and GST go back in proportion to the amount refunded, and
the GST report issues a credit note for them)."""

BPS_DENOMINATOR = 10_000
GST_RATE_BPS = 1_800
CGST_RATE_BPS = 900
SGST_RATE_BPS = 900
IGST_RATE_BPS = 1_800

Bps = Annotated[StrictInt, Field(ge=0, le=BPS_DENOMINATOR)]
Paise = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]


class InvalidAmount(ValueError):
    """An amount outside what the function accepts (negative, zero where a payment is meant, or
    beyond a signed 64-bit integer)."""


class InvalidStateCode(ValueError):
    """Not a two-digit GST state code (01–38 or 97)."""


class InvalidGstin(ValueError):
    """Not a well-formed GSTIN, or its check character is wrong; the message says which part."""


class InvalidRefund(ValueError):
    """A refund that does not fit the capture (more than captured in total, or inconsistent
    already-reversed amounts)."""


# --------------------------------------------------------------------------------------------
# Rounding
# --------------------------------------------------------------------------------------------


def _div_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, for ``numerator >= 0`` and
    ``denominator > 0``; exact integer arithmetic."""
    return (2 * numerator + denominator) // (2 * denominator)


def apply_bps(amount_minor: int, bps: int) -> int:
    """``amount_minor × bps / 10 000`` in paise, rounded half up to the paisa.

    ``apply_bps(100_025, 200) == 2_001`` (₹1,000.25 at 2 % is 2,000.5 paise → 2,001);
    ``apply_bps(100_024, 200) == 2_000`` (2,000.48 paise → 2,000).
    """
    if amount_minor < 0 or bps < 0:
        raise InvalidAmount(f"apply_bps needs non-negative inputs, got {amount_minor}, {bps}")
    return _div_half_up(amount_minor * bps, BPS_DENOMINATOR)


def _check_payment_amount(amount_minor: int) -> None:
    if not 0 < amount_minor <= INT64_MAX:
        raise InvalidAmount(f"amount must be 1..{INT64_MAX} paise, got {amount_minor}")


# --------------------------------------------------------------------------------------------
# GST state codes and GSTIN
# --------------------------------------------------------------------------------------------

# The 36 states and union territories by GST state code (28 states + 8 UTs), names as on the
# GST portal today.
GST_STATES: Mapping[str, str] = MappingProxyType(
    {
        "01": "Jammu and Kashmir",
        "02": "Himachal Pradesh",
        "03": "Punjab",
        "04": "Chandigarh",
        "05": "Uttarakhand",
        "06": "Haryana",
        "07": "Delhi",
        "08": "Rajasthan",
        "09": "Uttar Pradesh",
        "10": "Bihar",
        "11": "Sikkim",
        "12": "Arunachal Pradesh",
        "13": "Nagaland",
        "14": "Manipur",
        "15": "Mizoram",
        "16": "Tripura",
        "17": "Meghalaya",
        "18": "Assam",
        "19": "West Bengal",
        "20": "Jharkhand",
        "21": "Odisha",
        "22": "Chhattisgarh",
        "23": "Madhya Pradesh",
        "24": "Gujarat",
        "26": "Dadra and Nagar Haveli and Daman and Diu",
        "27": "Maharashtra",
        "29": "Karnataka",
        "30": "Goa",
        "31": "Lakshadweep",
        "32": "Kerala",
        "33": "Tamil Nadu",
        "34": "Puducherry",
        "35": "Andaman and Nicobar Islands",
        "36": "Telangana",
        "37": "Andhra Pradesh",
        "38": "Ladakh",
    }
)

# Codes that are valid but are not one of the 36: two legacy codes still found on old GSTINs and
# invoices (past periods must re-run), and 97 for supplies to offshore "Other Territory".
LEGACY_AND_SPECIAL_STATES: Mapping[str, str] = MappingProxyType(
    {
        "25": "Daman and Diu (merged into 26 from 26 January 2020)",
        "28": "Andhra Pradesh (before division; now 37)",
        "97": "Other Territory",
    }
)

VALID_STATE_CODES: frozenset[str] = frozenset(GST_STATES) | frozenset(LEGACY_AND_SPECIAL_STATES)


def validate_state_code(code: str) -> str:
    """Return ``code`` if it is a GST state code (``"01"``–``"38"`` or ``"97"``, two digits as a
    string), else raise :class:`InvalidStateCode`."""
    if code not in VALID_STATE_CODES:
        raise InvalidStateCode(f"{code!r} is not a GST state code (01–38 or 97)")
    return code


def state_name(code: str) -> str:
    """The state or territory a valid GST state code names (``"27"`` → ``"Maharashtra"``)."""
    validate_state_code(code)
    return GST_STATES.get(code) or LEGACY_AND_SPECIAL_STATES[code]


_GSTIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_GSTIN_SHAPE = re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]")


def gstin_check_char(first14: str) -> str:
    """The GSTIN check character for the first 14 characters (Luhn mod 36).

    Each character has a code point (``0``–``9`` → 0–9, ``A``–``Z`` → 10–35).  From the left,
    code points are multiplied by 1, 2, 1, 2, …; each product ``p`` adds ``p // 36 + p % 36``
    to a sum; the check code point is ``(36 − sum % 36) % 36``.
    """
    if len(first14) != 14 or any(c not in _GSTIN_ALPHABET for c in first14):
        raise InvalidGstin(f"need 14 characters of 0-9A-Z, got {first14!r}")
    total = 0
    for index, char in enumerate(first14):
        product = _GSTIN_ALPHABET.index(char) * (1 if index % 2 == 0 else 2)
        total += product // 36 + product % 36
    return _GSTIN_ALPHABET[(36 - total % 36) % 36]


def validate_gstin(gstin: str) -> str:
    """Return ``gstin`` if it is a well-formed regular-taxpayer GSTIN, else raise
    :class:`InvalidGstin` naming the part that is wrong.

    15 characters, upper case: a GST state code (01–38, 97), a 10-character PAN (5 letters,
    4 digits not ``0000``, 1 letter), the entity number (``1``–``9`` then ``A``–``Z``), ``Z``,
    and the check character of :func:`gstin_check_char`.  Special-format registrations (UN
    bodies, non-resident OIDAR suppliers, TDS/TCS) are not accepted.
    """
    if len(gstin) != 15:
        raise InvalidGstin(f"GSTIN must be 15 characters, got {len(gstin)}: {gstin!r}")
    if not _GSTIN_SHAPE.fullmatch(gstin):
        raise InvalidGstin(
            f"GSTIN {gstin!r} is not state(2 digits) + PAN(AAAAA9999A) + entity(1-9A-Z) + Z + check"
        )
    if gstin[:2] not in VALID_STATE_CODES:
        raise InvalidGstin(f"GSTIN {gstin!r} starts with {gstin[:2]!r}, not a GST state code")
    if gstin[7:11] == "0000":
        raise InvalidGstin(f"GSTIN {gstin!r}: the PAN's serial number cannot be 0000")
    expected = gstin_check_char(gstin[:14])
    if gstin[14] != expected:
        raise InvalidGstin(
            f"GSTIN {gstin!r}: check character is {gstin[14]!r}, expected {expected!r}"
        )
    return gstin


def is_valid_gstin(gstin: str) -> bool:
    """Whether :func:`validate_gstin` accepts ``gstin``."""
    try:
        validate_gstin(gstin)
    except InvalidGstin:
        return False
    return True


def gstin_state_code(gstin: str) -> str:
    """The GST state code of a valid GSTIN (its first two characters)."""
    return validate_gstin(gstin)[:2]


# --------------------------------------------------------------------------------------------
# MDR schedules
# --------------------------------------------------------------------------------------------

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CardRate(BaseModel):
    """A card rate in basis points for a network and/or card type; ``None`` matches any."""

    model_config = _FROZEN

    network: CardNetwork | None = None
    card_type: CardType | None = None
    bps: Bps


class MdrSchedule(BaseModel):
    """One merchant's MDR (merchant discount rate) schedule.  All rates in basis points, all
    amounts in paise, all ``>= 0``.

    Rate lookup for a payment (first match wins):

    * card: ``card_rates`` entry for (network, card type), then (network, any type), then (any
      network, card type), then ``method_bps["card"]``, then ``default_bps``;
    * any other method: ``method_bps[method]``, then ``default_bps``.

    The fee is ``rate × amount`` (half up to the paisa) ``+ fixed_fee_minor``, then raised to
    ``min_fee_minor`` and lowered to ``max_fee_minor`` (when set), and never more than the
    amount.  With ``zero_mdr`` on (the default) UPI person-to-merchant and RuPay debit payments
    are charged nothing at all — no rate, no fixed fee, no minimum — whatever is configured.
    ``instant_settlement_bps`` prices instant settlement (on the settled amount), and
    ``fee_on_refund`` says whether refunds give the fee back (default ``proportional``).
    """

    model_config = _FROZEN

    default_bps: Bps
    method_bps: dict[MethodType, Bps] = Field(default_factory=dict)
    card_rates: tuple[CardRate, ...] = ()
    fixed_fee_minor: Paise = 0
    min_fee_minor: Paise | None = None
    max_fee_minor: Paise | None = None
    zero_mdr: bool = True
    instant_settlement_bps: Bps = 0
    # Refunds give back the refunded share of the fee and its GST unless the merchant's
    # contract says the gateway keeps it (docs/fees.md, "Refunds").
    fee_on_refund: RefundFeePolicy = "proportional"

    _card_index: dict[tuple[CardNetwork | None, CardType | None], int] = PrivateAttr(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _consistent(self) -> MdrSchedule:
        if (
            self.min_fee_minor is not None
            and self.max_fee_minor is not None
            and self.min_fee_minor > self.max_fee_minor
        ):
            raise ValueError(
                f"min_fee_minor {self.min_fee_minor} exceeds max_fee_minor {self.max_fee_minor}"
            )
        index: dict[tuple[CardNetwork | None, CardType | None], int] = {}
        for rate in self.card_rates:
            key = (rate.network, rate.card_type)
            if key == (None, None):
                raise ValueError("a card rate for any network and type is method_bps['card']")
            if key in index:
                raise ValueError(f"card rate for {key} given twice")
            index[key] = rate.bps
        self._card_index = index
        return self


def _check_card_details(
    method: MethodType, network: CardNetwork | None, card_type: CardType | None
) -> None:
    if method != "card" and (network is not None or card_type is not None):
        raise ValueError(f"network/card_type apply to card payments only, not {method!r}")


def is_zero_mdr(
    method: MethodType, network: CardNetwork | None = None, card_type: CardType | None = None
) -> bool:
    """Whether the government's zero-MDR rule covers this payment: UPI (every UPI payment that
    reaches a gateway is person-to-merchant) and RuPay debit cards.

    A RuPay card whose type is unknown (``card_type=None``) is treated as debit: most RuPay
    cards are debit, and charging MDR on a zero-rated card is forbidden, whereas the cost of the
    other mistake is one RuPay credit card's MDR.  Callers that know the type from the BIN
    should pass it.
    """
    if method == "upi":
        return True
    return method == "card" and network == "rupay" and card_type in ("debit", None)


def rate_bps_for(
    schedule: MdrSchedule,
    method: MethodType,
    network: CardNetwork | None = None,
    card_type: CardType | None = None,
) -> int:
    """The configured rate in basis points for a payment, by the lookup order of
    :class:`MdrSchedule` (the zero-MDR rule is not applied here; :func:`fee_for` applies it)."""
    _check_card_details(method, network, card_type)
    if method == "card":
        index = schedule._card_index
        for key in ((network, card_type), (network, None), (None, card_type)):
            if key in index:
                return index[key]
    return schedule.method_bps.get(method, schedule.default_bps)


def fee_for(
    schedule: MdrSchedule,
    amount_minor: int,
    method: MethodType,
    network: CardNetwork | None = None,
    card_type: CardType | None = None,
) -> int:
    """The MDR fee in paise (before GST) for one payment of ``amount_minor`` paise.

    ``fee = clamp(half_up(amount × bps / 10 000) + fixed, min, max)``, then at most the
    amount; 0 when the schedule's zero-MDR rule covers the payment (:func:`is_zero_mdr`).
    Invariant: ``0 <= fee <= amount_minor``.  Rounding: half up to the paisa, so
    ₹2.50 at 100 bp (2.5 paise) is 3 paise and ₹2.49 at 100 bp (2.49 paise) is 2 paise.
    """
    _check_payment_amount(amount_minor)
    _check_card_details(method, network, card_type)
    if schedule.zero_mdr and is_zero_mdr(method, network, card_type):
        return 0
    fee = apply_bps(amount_minor, rate_bps_for(schedule, method, network, card_type))
    fee += schedule.fixed_fee_minor
    if schedule.min_fee_minor is not None:
        fee = max(fee, schedule.min_fee_minor)
    if schedule.max_fee_minor is not None:
        fee = min(fee, schedule.max_fee_minor)
    return min(fee, amount_minor)


def instant_settlement_fee(schedule: MdrSchedule, settled_minor: int) -> int:
    """The instant-settlement fee in paise (before GST): ``instant_settlement_bps`` of the
    settled amount, rounded half up to the paisa.  0 for a settlement of 0.  GST on it is
    :func:`gst_on_fee` like any other fee of the gateway's."""
    if not 0 <= settled_minor <= INT64_MAX:
        raise InvalidAmount(f"settled amount must be 0..{INT64_MAX} paise, got {settled_minor}")
    return apply_bps(settled_minor, schedule.instant_settlement_bps)


# --------------------------------------------------------------------------------------------
# GST on the fee
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GstSplit:
    """GST on a taxable value (the gateway's fee, or a reversal of it), all in paise.

    Invariants: every amount ``>= 0``; ``cgst_minor == sgst_minor``; ``total_minor ==
    cgst_minor + sgst_minor + igst_minor``; intra-state (``place_of_supply ==
    supplier_state``) carries no IGST, inter-state no CGST/SGST.
    """

    cgst_minor: int
    sgst_minor: int
    igst_minor: int
    total_minor: int
    taxable_minor: int
    place_of_supply: str
    """The recipient's (merchant's) GST state code."""
    supplier_state: str
    """The gateway's GST state code."""

    def __post_init__(self) -> None:
        amounts = (
            self.cgst_minor,
            self.sgst_minor,
            self.igst_minor,
            self.total_minor,
            self.taxable_minor,
        )
        if min(amounts) < 0:
            raise ValueError(f"negative GST amount in {self}")
        if self.cgst_minor != self.sgst_minor:
            raise ValueError(f"CGST {self.cgst_minor} != SGST {self.sgst_minor}")
        if self.total_minor != self.cgst_minor + self.sgst_minor + self.igst_minor:
            raise ValueError(f"GST total {self.total_minor} is not the sum of its parts")
        if self.intra_state and self.igst_minor:
            raise ValueError("intra-state supply with IGST")
        if not self.intra_state and self.cgst_minor:
            raise ValueError("inter-state supply with CGST/SGST")

    @property
    def intra_state(self) -> bool:
        """Whether supplier and place of supply are the same state (CGST + SGST)."""
        return self.place_of_supply == self.supplier_state


def gst_on_fee(fee_minor: int, merchant_state: str, gateway_state: str) -> GstSplit:
    """18 % GST on a fee of ``fee_minor`` paise, by place of supply (the merchant's registered
    GST state) against the gateway's state.

    * same state: ``cgst = sgst = half_up(fee × 9 %)``, ``total = cgst + sgst``;
    * different states: ``igst = half_up(fee × 18 %)``, ``total = igst``.

    Each component is rounded half up to the paisa on its own, so CGST == SGST always and the
    total is what the invoice shows.  An intra-state total may differ from ``half_up(fee × 18
    %)`` by one paisa either way (fee 50 paise: 9 % is 4.5 → 5 each, total 10, while 18 % is 9).
    """
    if not 0 <= fee_minor <= INT64_MAX:
        raise InvalidAmount(f"fee must be 0..{INT64_MAX} paise, got {fee_minor}")
    validate_state_code(merchant_state)
    validate_state_code(gateway_state)
    if merchant_state == gateway_state:
        half = apply_bps(fee_minor, CGST_RATE_BPS)
        return GstSplit(half, half, 0, 2 * half, fee_minor, merchant_state, gateway_state)
    igst = apply_bps(fee_minor, IGST_RATE_BPS)
    return GstSplit(0, 0, igst, igst, fee_minor, merchant_state, gateway_state)


# --------------------------------------------------------------------------------------------
# One payment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeBreakdown:
    """What one captured payment of ``amount_minor`` paise comes to for the merchant.

    Invariants: ``net_minor + fee_minor + gst.total_minor == amount_minor``; ``0 <= fee_minor
    <= amount_minor``; ``net_minor >= 0``; ``gst.taxable_minor == fee_minor``.
    """

    amount_minor: int
    fee_minor: int
    gst: GstSplit
    net_minor: int

    def __post_init__(self) -> None:
        if self.net_minor + self.fee_minor + self.gst.total_minor != self.amount_minor:
            raise ValueError(f"net + fee + GST != amount in {self}")
        if not 0 <= self.fee_minor <= self.amount_minor or self.net_minor < 0:
            raise ValueError(f"fee or net out of range in {self}")
        if self.gst.taxable_minor != self.fee_minor:
            raise ValueError(f"GST taxable value is not the fee in {self}")

    @property
    def gst_total_minor(self) -> int:
        return self.gst.total_minor

    def describe(self) -> str:
        """One line for logs and reports: ``amount 1,000.00 INR − fee 19.00 INR − GST 3.42 INR
        = net 977.58 INR``."""
        amount, fee, gst, net = (
            format_minor(value, "INR")
            for value in (self.amount_minor, self.fee_minor, self.gst_total_minor, self.net_minor)
        )
        return f"amount {amount} − fee {fee} − GST {gst} = net {net}"


def breakdown_for(
    schedule: MdrSchedule,
    amount_minor: int,
    method: MethodType,
    *,
    merchant_state: str,
    gateway_state: str,
    network: CardNetwork | None = None,
    card_type: CardType | None = None,
) -> FeeBreakdown:
    """Fee, GST and net for one payment: ``net = amount − fee − GST``.

    The fee is :func:`fee_for`'s, except on a payment so small that fee plus GST would exceed
    it (a minimum or fixed fee on a few rupees): then the fee is the largest one whose fee + GST
    still fits, so the merchant is never owed a negative amount.  This is the fee to post and
    invoice.
    """
    fee = fee_for(schedule, amount_minor, method, network, card_type)
    gst = gst_on_fee(fee, merchant_state, gateway_state)
    if fee + gst.total_minor > amount_minor:
        # fee + GST(fee) strictly increases with fee and is >= 1.18 × fee − 1, so no fee above
        # floor(amount / 1.18) + 1 fits; step down from there (at most a few steps).
        fee = min(fee, amount_minor * 100 // 118 + 1)
        gst = gst_on_fee(fee, merchant_state, gateway_state)
        while fee + gst.total_minor > amount_minor:
            fee -= 1
            gst = gst_on_fee(fee, merchant_state, gateway_state)
    return FeeBreakdown(amount_minor, fee, gst, amount_minor - fee - gst.total_minor)


# --------------------------------------------------------------------------------------------
# Refunds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeReversal:
    """Fee and GST given back to the merchant for a refund (the credit note's lines), in paise.

    ``gst.taxable_minor == fee_minor`` is the credit note's taxable value.
    """

    fee_minor: int
    gst: GstSplit

    def __post_init__(self) -> None:
        if self.fee_minor < 0 or self.gst.taxable_minor != self.fee_minor:
            raise ValueError(f"inconsistent fee reversal {self}")

    def plus(self, other: FeeReversal) -> FeeReversal:
        """The sum of two reversals of the same payment (to carry ``reversed_before``)."""
        if (self.gst.place_of_supply, self.gst.supplier_state) != (
            other.gst.place_of_supply,
            other.gst.supplier_state,
        ):
            raise ValueError("reversals of different supplies cannot be added")
        return FeeReversal(
            self.fee_minor + other.fee_minor,
            _gst_split(
                self.gst.cgst_minor + other.gst.cgst_minor,
                self.gst.igst_minor + other.gst.igst_minor,
                self.fee_minor + other.fee_minor,
                self.gst,
            ),
        )

    @staticmethod
    def zero_for(charged: FeeBreakdown) -> FeeReversal:
        """Nothing reversed yet for ``charged`` (the starting ``reversed_before``)."""
        return FeeReversal(0, _gst_split(0, 0, 0, charged.gst))


def _gst_split(cgst: int, igst: int, taxable: int, like: GstSplit) -> GstSplit:
    return GstSplit(
        cgst, cgst, igst, 2 * cgst + igst, taxable, like.place_of_supply, like.supplier_state
    )


def fee_reversal_for_refund(
    policy: RefundFeePolicy,
    charged: FeeBreakdown,
    refund_minor: int,
    *,
    refunded_before_minor: int = 0,
    reversed_before: FeeReversal | None = None,
) -> FeeReversal:
    """Fee and GST to reverse for a refund of ``refund_minor`` paise of the payment ``charged``
    (captured amount ``C = charged.amount_minor``), after ``refunded_before_minor`` paise were
    already refunded and ``reversed_before`` already reversed.

    * ``retained``: nothing is reversed.
    * ``proportional``: after this refund the cumulative reversal should be ``F(R) =
      half_up(fee × R / C)`` for the cumulative refunded amount ``R``, and the GST on it
      ``gst_on_fee(F(R))`` component by component (each half up); this refund reverses the
      target minus ``reversed_before``, never less than 0.  The refund that brings ``R`` to
      ``C`` reverses exactly what remains of the fee and each GST component.

    So reversals never total more than was charged, and a full refund in any number of parts
    reverses exactly the fee and the GST charged.  Raises :class:`InvalidRefund` when the
    refunds exceed the capture or ``reversed_before`` exceeds what was charged.
    """
    before = reversed_before if reversed_before is not None else FeeReversal.zero_for(charged)
    captured = charged.amount_minor
    if refund_minor <= 0 or refunded_before_minor < 0:
        raise InvalidRefund(f"refund {refund_minor} / before {refunded_before_minor} not positive")
    if refunded_before_minor + refund_minor > captured:
        raise InvalidRefund(
            f"refunds {refunded_before_minor} + {refund_minor} exceed the capture {captured}"
        )
    charged_gst = charged.gst
    if (
        (before.gst.place_of_supply, before.gst.supplier_state)
        != (charged_gst.place_of_supply, charged_gst.supplier_state)
        or before.fee_minor > charged.fee_minor
        or before.gst.cgst_minor > charged_gst.cgst_minor
        or before.gst.igst_minor > charged_gst.igst_minor
    ):
        raise InvalidRefund(f"already reversed {before} does not fit what was charged {charged}")
    if policy == "retained":
        return FeeReversal.zero_for(charged)

    cumulative = refunded_before_minor + refund_minor
    if cumulative == captured:
        target_fee, target_cgst, target_igst = (
            charged.fee_minor,
            charged_gst.cgst_minor,
            charged_gst.igst_minor,
        )
    else:
        target_fee = _div_half_up(charged.fee_minor * cumulative, captured)
        target_gst = gst_on_fee(target_fee, charged_gst.place_of_supply, charged_gst.supplier_state)
        # A monotone target cannot exceed the charged amounts (target_fee <= fee, and GST is
        # monotone in the fee), but min() keeps that true even for odd hand-made inputs.
        target_cgst = min(target_gst.cgst_minor, charged_gst.cgst_minor)
        target_igst = min(target_gst.igst_minor, charged_gst.igst_minor)
    fee = max(0, target_fee - before.fee_minor)
    cgst = max(0, target_cgst - before.gst.cgst_minor)
    igst = max(0, target_igst - before.gst.igst_minor)
    return FeeReversal(fee, _gst_split(cgst, igst, fee, charged_gst))
