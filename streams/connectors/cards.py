"""Card numbers: the Luhn check, BIN ranges to network, and the vault that turns RizzPay's card
tokens into the PAN a processor needs.

Card data never travels on RizzPay's streams (``models.methods.CardMethod`` holds a vault token,
the BIN and the last four digits).  A connector asks a :class:`CardVault` for the PAN only while
it builds the provider request, and never logs or stores it: :class:`CardSecret`'s ``repr``
masks the number.

BIN ranges (the leading digits of the PAN) decide the network; the longest matching prefix wins:

=========== ============================= ============ ====
network     prefixes                      PAN lengths  CVC
=========== ============================= ============ ====
Visa        4                             13, 16, 19   3
Mastercard  51-55, 2221-2720              16           3
RuPay       60, 65, 81, 82, 508           16           3
Amex        34, 37                        15           4
Diners      36, 38, 300-305               14, 16, 19   3
=========== ============================= ============ ====

RuPay is NPCI's domestic scheme: its ranges overlap Discover's 60/65 abroad, and in India a
60/65 BIN is RuPay, which is what this table encodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from models.methods import CardMethod

Network = Literal["visa", "mastercard", "rupay", "amex", "diners"]
NETWORKS: tuple[Network, ...] = get_args(Network)

PAN_LEN_MIN = 12
PAN_LEN_MAX = 19


@dataclass(frozen=True, slots=True)
class BinInfo:
    """What a BIN says about a card.  ``domestic``: the scheme is India's own (RuPay), which
    matters for MDR (zero on RuPay debit) and for routing."""

    network: Network
    pan_lengths: tuple[int, ...]
    cvc_length: int
    domestic: bool


_NETWORK_INFO: dict[Network, BinInfo] = {
    "visa": BinInfo("visa", (13, 16, 19), 3, False),
    "mastercard": BinInfo("mastercard", (16,), 3, False),
    "rupay": BinInfo("rupay", (16,), 3, True),
    "amex": BinInfo("amex", (15,), 4, False),
    "diners": BinInfo("diners", (14, 16, 19), 3, False),
}

# (first prefix, last prefix, network): every prefix of the same length in [first, last].
_RANGES: tuple[tuple[str, str, Network], ...] = (
    ("4", "4", "visa"),
    ("51", "55", "mastercard"),
    ("2221", "2720", "mastercard"),
    ("34", "34", "amex"),
    ("37", "37", "amex"),
    ("36", "36", "diners"),
    ("38", "38", "diners"),
    ("300", "305", "diners"),
    ("60", "60", "rupay"),
    ("65", "65", "rupay"),
    ("81", "82", "rupay"),
    ("508", "508", "rupay"),
)


def bin_info(bin_or_pan: str) -> BinInfo | None:
    """The network of the card whose number starts with ``bin_or_pan`` (at least the BIN's 6
    digits for a reliable answer), or ``None`` for a range RizzPay does not accept."""
    if not bin_or_pan.isascii() or not bin_or_pan.isdigit():
        return None
    best: tuple[int, Network] | None = None
    for first, last, network in _RANGES:
        width = len(first)
        prefix = bin_or_pan[:width]
        if len(prefix) == width and first <= prefix <= last and (best is None or width > best[0]):
            best = (width, network)
    return None if best is None else _NETWORK_INFO[best[1]]


def network_for_bin(bin_or_pan: str) -> Network | None:
    """Shorthand for ``bin_info(...).network``."""
    info = bin_info(bin_or_pan)
    return None if info is None else info.network


def _luhn_sum(digits: str, *, check_digit_present: bool) -> int:
    total = 0
    # From the right, every second digit is doubled; which ones depends on whether the
    # rightmost digit is the check digit itself.
    double = not check_digit_present
    for ch in reversed(digits):
        d = ord(ch) - 48
        if double:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        double = not double
    return total


def luhn_valid(pan: str) -> bool:
    """Whether ``pan`` (digits only, 12-19 of them) passes the Luhn (mod 10) check."""
    if not (pan.isascii() and pan.isdigit() and PAN_LEN_MIN <= len(pan) <= PAN_LEN_MAX):
        return False
    return _luhn_sum(pan, check_digit_present=True) % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` Luhn-valid."""
    if not (partial.isascii() and partial.isdigit()):
        raise ValueError("digits only")
    return str((10 - _luhn_sum(partial, check_digit_present=False) % 10) % 10)


def pan_valid(pan: str) -> bool:
    """Luhn-valid, of a known network, and of a length that network issues."""
    info = bin_info(pan)
    return info is not None and len(pan) in info.pan_lengths and luhn_valid(pan)


def mask_pan(pan: str) -> str:
    """The PAN as PCI DSS allows it to be shown: BIN and last four, the rest ``X``."""
    return pan[:6] + "X" * max(len(pan) - 10, 0) + pan[-4:]


@dataclass(frozen=True, slots=True, repr=False)
class CardSecret:
    """A PAN and its expiry, revealed by the vault for one provider request.  Never logged:
    ``repr`` shows the masked number only.  Stored cards carry no CVC (PCI DSS forbids keeping
    it), so connectors send none."""

    pan: str
    exp_month: int
    exp_year: int
    holder_name: str = "RizzPay Customer"

    def __repr__(self) -> str:
        return f"CardSecret({mask_pan(self.pan)}, {self.exp_month:02d}/{self.exp_year})"


class CardVault(Protocol):
    """Turns a card token into the card data a processor needs."""

    async def reveal(self, card: CardMethod) -> CardSecret:
        """The PAN and expiry behind ``card.token``; raises ``KeyError`` for an unknown token."""
        ...


class SandboxCardVault:
    """A vault for the sandboxes: the PAN of a token is the sandbox's test card with the
    token's BIN and last four digits (middle digits chosen so the number passes Luhn), so the
    sandbox's instrument table (keyed by last four) decides the outcome.  Development only."""

    def __init__(self, *, exp_month: int = 12, exp_year: int = 2035) -> None:
        self._exp_month = exp_month
        self._exp_year = exp_year

    async def reveal(self, card: CardMethod) -> CardSecret:
        return CardSecret(sandbox_pan(card.bin, card.last4), self._exp_month, self._exp_year)


def sandbox_pan(bin_digits: str, last4: str, length: int | None = None) -> str:
    """A Luhn-valid PAN that starts with ``bin_digits`` and ends with ``last4``.

    ``length`` defaults to the network's usual length (16, Amex 15, Diners 14).  One middle
    digit is chosen to satisfy Luhn: changing one digit permutes the Luhn sum's last digit, so
    exactly one choice works."""
    info = bin_info(bin_digits)
    if length is None:
        length = {"amex": 15, "diners": 14}.get(info.network, 16) if info else 16
    middle_len = length - len(bin_digits) - len(last4)
    if middle_len < 1:
        raise ValueError(f"no room for a Luhn digit in a {length}-digit PAN")
    for digit in "0123456789":
        pan = bin_digits + "0" * (middle_len - 1) + digit + last4
        if luhn_valid(pan):
            return pan
    raise AssertionError("unreachable: one middle digit always satisfies Luhn")
