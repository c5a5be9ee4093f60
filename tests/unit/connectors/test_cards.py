"""Luhn, BIN ranges to network, test PANs and the masking of card data."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.methods import CardMethod
from sandbox.instruments import TEST_CARDS, card_outcome, upi_outcome
from streams.authorization import CARD_TEST_DECLINES
from streams.connectors.cards import (
    CardSecret,
    SandboxCardVault,
    bin_info,
    luhn_check_digit,
    luhn_valid,
    mask_pan,
    network_for_bin,
    pan_valid,
    sandbox_pan,
)


@pytest.mark.parametrize(
    "pan",
    [
        "4111111111111111",  # Visa
        "4012888888881881",
        "5555555555554444",  # Mastercard
        "2223003122003222",  # Mastercard 2-series
        "378282246310005",  # Amex
        "371449635398431",
        "30569309025904",  # Diners
        "6521111111111110",  # RuPay
        "79927398713",  # the classic Luhn example (too short for a card, checked below)
    ],
)
def test_luhn_accepts_known_valid_numbers(pan: str) -> None:
    assert luhn_valid(pan) is (len(pan) >= 12)
    assert luhn_check_digit(pan[:-1]) == pan[-1]


@pytest.mark.parametrize(
    "pan",
    ["4111111111111112", "5555555555554440", "378282246310006", "4111 1111 1111 1111", "", "x"],
)
def test_luhn_refuses_wrong_check_digits_and_non_digits(pan: str) -> None:
    assert not luhn_valid(pan)


@given(st.text(alphabet="0123456789", min_size=11, max_size=18))
def test_the_check_digit_always_validates_and_no_other_does(partial: str) -> None:
    digit = luhn_check_digit(partial)
    assert luhn_valid(partial + digit)
    others = [d for d in "0123456789" if d != digit]
    assert not any(luhn_valid(partial + d) for d in others)


@pytest.mark.parametrize(
    ("bin_digits", "network"),
    [
        ("411111", "visa"),
        ("400000", "visa"),
        ("499999", "visa"),
        ("510000", "mastercard"),
        ("555555", "mastercard"),
        ("559999", "mastercard"),
        ("222100", "mastercard"),
        ("272099", "mastercard"),
        ("340000", "amex"),
        ("370000", "amex"),
        ("360000", "diners"),
        ("380000", "diners"),
        ("300000", "diners"),
        ("305999", "diners"),
        ("600000", "rupay"),
        ("652111", "rupay"),
        ("810000", "rupay"),
        ("820000", "rupay"),
        ("508500", "rupay"),
    ],
)
def test_bin_ranges_name_the_network(bin_digits: str, network: str) -> None:
    assert network_for_bin(bin_digits) == network


@pytest.mark.parametrize(
    "bin_digits",
    [
        "222099",
        "272100",
        "500000",
        "509999",
        "560000",
        "350000",
        "306000",
        "390000",
        "830000",
        "12345",
        "abcdef",
        "",
    ],
)
def test_bins_outside_the_ranges_have_no_network(bin_digits: str) -> None:
    assert network_for_bin(bin_digits) is None


def test_network_details() -> None:
    amex = bin_info("378282")
    rupay = bin_info("608000")
    assert amex is not None and amex.cvc_length == 4 and amex.pan_lengths == (15,)
    assert rupay is not None and rupay.domestic
    visa = bin_info("411111")
    assert visa is not None and not visa.domestic


@pytest.mark.parametrize("pan", list(TEST_CARDS))
def test_the_published_test_cards_are_valid(pan: str) -> None:
    assert pan_valid(pan)


@given(
    st.sampled_from(["411111", "555555", "222300", "378282", "361111", "652111", "508500"]),
    st.text(alphabet="0123456789", min_size=4, max_size=4),
)
def test_sandbox_pans_keep_bin_and_last4_and_pass_luhn(bin_digits: str, last4: str) -> None:
    pan = sandbox_pan(bin_digits, last4)
    assert pan.startswith(bin_digits) and pan.endswith(last4)
    assert pan_valid(pan)


def test_card_data_is_masked_in_reprs() -> None:
    secret = CardSecret("4111111111111111", 12, 2035)
    assert "4111111111111111" not in repr(secret)
    assert mask_pan(secret.pan) == "411111XXXXXX1111"
    assert mask_pan("378282246310005") == "378282XXXXX0005"


def test_the_sandbox_vault_reveals_a_pan_with_the_tokens_bin_and_last4() -> None:
    card = CardMethod(token="tok_test_0001", bin="652111", last4="9995")
    secret = asyncio.run(SandboxCardVault().reveal(card))
    assert secret.pan.startswith("652111") and secret.pan.endswith("9995")
    assert card_outcome(secret.pan) == "insufficient_funds"


def test_sandbox_card_outcomes_agree_with_the_authorization_rules() -> None:
    for last4, code in CARD_TEST_DECLINES.items():
        assert card_outcome(sandbox_pan("411111", last4)) == code
    assert card_outcome(sandbox_pan("411111", "1111")) == "approve"
    assert card_outcome("4111111111111112") == "invalid_number"


@pytest.mark.parametrize(
    ("vpa", "outcome"),
    [
        ("customer@okhdfc", "approve"),
        ("invalid.user@okicici", "invalid_vpa"),
        ("timeout@ybl", "upi_timeout"),
        ("nofunds@paytm", "insufficient_funds"),
        ("rejected@axl", "bank_rejected"),
        ("no-handle", "invalid_vpa"),
    ],
)
def test_upi_instruments(vpa: str, outcome: str) -> None:
    assert upi_outcome(vpa) == outcome
