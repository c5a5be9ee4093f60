"""Bad create-payment bodies get a 4xx problem with a stable code."""

from __future__ import annotations

import orjson
import pytest

from api.problems import Problem
from api.schemas import parse_payment_create

UPI = {"type": "upi", "vpa": "ravi@okicici"}


def body(**overrides: object) -> bytes:
    data: dict[str, object] = {"amount": 49900, "currency": "INR", "method": UPI}
    data.update(overrides)
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{", 400, "invalid_json"),
        (b"[]", 400, "invalid_json"),
        (b'{"amount": NaN, "currency": "INR"}', 400, "invalid_json"),
        (body(amount=0), 422, "amount_not_positive"),
        (body(amount=-100), 422, "amount_not_positive"),
        (body(amount=2**63), 422, "amount_out_of_range"),
        (
            b'{"amount": 99999999999999999999999, "currency": "INR", "method": '
            b'{"type": "upi", "vpa": "a@b"}}',
            422,
            "amount_out_of_range",
        ),
        (body(amount=499.5), 422, "invalid_amount"),
        (body(amount="49900"), 422, "invalid_amount"),
        (body(currency="XYZ"), 422, "unsupported_currency"),
        (body(currency="inr"), 422, "unsupported_currency"),
        (body(tip=10), 422, "unknown_field"),
        (body(method={"type": "upi", "vpa": "no-at-sign"}), 422, "invalid_method"),
        (body(method={"type": "card", "number": "4111111111111111"}), 422, "invalid_method"),
        (
            body(method={"type": "rtgs", "ifsc": "HDFC0001234", "account_last4": "1234"}),
            422,
            "amount_below_minimum",
        ),
    ],
)
def test_bad_body_is_a_problem_with_stable_code(raw: bytes, status: int, code: str) -> None:
    with pytest.raises(Problem) as info:
        parse_payment_create(raw)
    assert (info.value.status, info.value.code) == (status, code)
    assert info.value.body()["type"].endswith(code)


def test_raw_card_number_never_accepted_and_never_echoed() -> None:
    pan = "4111111111111111"
    with pytest.raises(Problem) as info:
        parse_payment_create(body(method={"type": "card", "number": pan, "last4": "1111"}))
    assert pan not in orjson.dumps(info.value.body()).decode()


def test_valid_body_and_fingerprint_ignores_formatting() -> None:
    a = parse_payment_create(body())
    b = parse_payment_create(
        b'{ "method": {"vpa": "ravi@okicici", "type": "upi"}, "currency": "INR", "amount": 49900 }'
    )
    assert a.amount == 49900 and a.fingerprint() == b.fingerprint()
    assert parse_payment_create(body(amount=49901)).fingerprint() != a.fingerprint()


def test_rtgs_at_the_minimum_is_accepted() -> None:
    method = {"type": "rtgs", "ifsc": "HDFC0001234", "account_last4": "1234"}
    assert parse_payment_create(body(amount=2_00_000_00, method=method)).amount == 2_00_000_00
