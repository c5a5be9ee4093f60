"""Standard Webhooks signing: vectors computed independently, the 300 s window, rotation."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.webhooks.signing import (
    InvalidWebhookSecret,
    WebhookVerificationError,
    generate_secret,
    secret_key,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

# The Standard Webhooks specification's published example.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP_S = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# RizzPay's own fixed vector: a 32-byte key of 0x00..0x1f.
KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
MSG_ID = "evt_01J9Z3K7Q8Y2N4M6P0R5T7V9X1"
TIMESTAMP_S = 1_735_689_600  # 2025-01-01T00:00:00Z
BODY = b'{"type":"payment.captured","data":{"amount":10000,"currency":"INR"}}'


def independent_signature(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The signature computed straight from the spec's definition, not through the module."""
    mac = hmac.new(key, msg_id.encode() + b"." + str(timestamp_s).encode() + b"." + body, "sha256")
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers_for(signature: str, *, msg_id: str = MSG_ID, ts: int = TIMESTAMP_S) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def expect_code(code: str, *args: object, **kwargs: object) -> None:
    with pytest.raises(WebhookVerificationError) as info:
        verify(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code


# --- vectors ------------------------------------------------------------------------------------


def test_sign_matches_an_independently_computed_hmac() -> None:
    expected = independent_signature(KEY, MSG_ID, TIMESTAMP_S, BODY)
    assert sign(SECRET, MSG_ID, TIMESTAMP_S, BODY) == expected
    # Pinned: computed outside Python with
    #   printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt hexkey:0001..1f -binary
    #   | base64
    assert expected == "v1,pjW9b0LV82K1RhA/zZqn/GZ77i9Kg/lklRR8Hi41TiI="
    assert SECRET == "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def test_sign_reproduces_the_standard_webhooks_published_example() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP_S, SPEC_BODY) == SPEC_SIGNATURE
    verify([SPEC_SECRET], headers_for(SPEC_SIGNATURE, msg_id=SPEC_ID, ts=SPEC_TIMESTAMP_S),
           SPEC_BODY, now=SPEC_TIMESTAMP_S)  # fmt: skip


def test_webhook_headers_carry_id_timestamp_and_signature() -> None:
    headers = webhook_headers([SECRET], MSG_ID, TIMESTAMP_S, BODY)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP_S),
        "webhook-signature": independent_signature(KEY, MSG_ID, TIMESTAMP_S, BODY),
    }
    verify([SECRET], headers, BODY, now=TIMESTAMP_S)


def test_header_names_are_case_insensitive() -> None:
    signature = sign(SECRET, MSG_ID, TIMESTAMP_S, BODY)
    headers = {
        "Webhook-Id": MSG_ID,
        "WEBHOOK-TIMESTAMP": str(TIMESTAMP_S),
        "Webhook-Signature": signature,
    }
    verify([SECRET], headers, BODY, now=TIMESTAMP_S)


# --- secrets ------------------------------------------------------------------------------------


def test_generated_secrets_are_whsec_base64_of_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(secret_key(first)) == 32
    assert first != second
    assert len(secret_key(generate_secret(24))) == 24
    with pytest.raises(ValueError):
        generate_secret(16)


@pytest.mark.parametrize(
    "secret",
    [
        base64.b64encode(KEY).decode(),  # no prefix
        "whsec_not base64!",
        "whsec_" + base64.b64encode(bytes(23)).decode(),  # too short
        "whsec_" + base64.b64encode(bytes(65)).decode(),  # too long
    ],
)
def test_invalid_secrets_are_refused(secret: str) -> None:
    with pytest.raises(InvalidWebhookSecret) as info:
        secret_key(secret)
    assert info.value.code == "invalid_secret"


def test_signing_refuses_bad_ids_timestamps_and_no_secrets() -> None:
    for msg_id in ("", "has space", "x" * 256, "new\nline"):
        with pytest.raises(ValueError):
            sign(SECRET, msg_id, TIMESTAMP_S, BODY)
    with pytest.raises(ValueError):
        sign(SECRET, MSG_ID, -1, BODY)
    with pytest.raises(ValueError):
        signature_header([], MSG_ID, TIMESTAMP_S, BODY)
    with pytest.raises(TypeError):
        signature_header(SECRET, MSG_ID, TIMESTAMP_S, BODY)


# --- the 300 s window ---------------------------------------------------------------------------


def signed_headers() -> dict[str, str]:
    return headers_for(sign(SECRET, MSG_ID, TIMESTAMP_S, BODY))


def test_a_timestamp_exactly_300_s_old_or_ahead_is_accepted() -> None:
    verify([SECRET], signed_headers(), BODY, now=TIMESTAMP_S + 300)
    verify([SECRET], signed_headers(), BODY, now=TIMESTAMP_S - 300)
    at = datetime.fromtimestamp(TIMESTAMP_S, UTC)
    verify([SECRET], signed_headers(), BODY, now=at + timedelta(seconds=300))
    verify([SECRET], signed_headers(), BODY, now=at - timedelta(seconds=300))


def test_a_timestamp_301_s_old_is_refused() -> None:
    expect_code("timestamp_too_old", [SECRET], signed_headers(), BODY, now=TIMESTAMP_S + 301)
    at = datetime.fromtimestamp(TIMESTAMP_S, UTC)
    expect_code(
        "timestamp_too_old", [SECRET], signed_headers(), BODY, now=at + timedelta(seconds=301)
    )
    # The boundary is exact: one microsecond past 300 s is too old.
    expect_code(
        "timestamp_too_old",
        [SECRET],
        signed_headers(),
        BODY,
        now=at + timedelta(seconds=300, microseconds=1),
    )


def test_a_timestamp_301_s_in_the_future_is_refused() -> None:
    expect_code("timestamp_in_future", [SECRET], signed_headers(), BODY, now=TIMESTAMP_S - 301)
    at = datetime.fromtimestamp(TIMESTAMP_S, UTC)
    expect_code(
        "timestamp_in_future", [SECRET], signed_headers(), BODY, now=at - timedelta(seconds=301)
    )


def test_the_clock_may_be_in_any_time_zone_but_not_naive() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    verify([SECRET], signed_headers(), BODY, now=datetime.fromtimestamp(TIMESTAMP_S, ist))
    naive = datetime.fromtimestamp(TIMESTAMP_S, UTC).replace(tzinfo=None)
    with pytest.raises(ValueError):
        verify([SECRET], signed_headers(), BODY, now=naive)


def test_the_tolerance_is_configurable() -> None:
    verify([SECRET], signed_headers(), BODY, now=TIMESTAMP_S + 600, tolerance_s=600)
    expect_code(
        "timestamp_too_old", [SECRET], signed_headers(), BODY, now=TIMESTAMP_S + 61, tolerance_s=60
    )


# --- rotation and forgery -----------------------------------------------------------------------


def test_during_rotation_either_secret_verifies() -> None:
    header = signature_header([SECRET, OTHER_SECRET], MSG_ID, TIMESTAMP_S, BODY)
    assert header.split(" ") == [
        independent_signature(KEY, MSG_ID, TIMESTAMP_S, BODY),
        independent_signature(secret_key(OTHER_SECRET), MSG_ID, TIMESTAMP_S, BODY),
    ]
    verify([SECRET], headers_for(header), BODY, now=TIMESTAMP_S)  # receiver still on the old
    verify([OTHER_SECRET], headers_for(header), BODY, now=TIMESTAMP_S)  # receiver on the new
    # A receiver that holds both accepts a delivery signed with either alone.
    only_new = sign(OTHER_SECRET, MSG_ID, TIMESTAMP_S, BODY)
    verify([SECRET, OTHER_SECRET], headers_for(only_new), BODY, now=TIMESTAMP_S)


def test_a_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b"10000", b"99999")
    expect_code("no_matching_signature", [SECRET], signed_headers(), tampered, now=TIMESTAMP_S)


def test_a_wrong_secret_is_refused() -> None:
    expect_code("no_matching_signature", [OTHER_SECRET], signed_headers(), BODY, now=TIMESTAMP_S)


def test_a_changed_id_or_timestamp_is_refused() -> None:
    signature = sign(SECRET, MSG_ID, TIMESTAMP_S, BODY)
    other_id = headers_for(signature, msg_id="evt_other")
    expect_code("no_matching_signature", [SECRET], other_id, BODY, now=TIMESTAMP_S)
    replayed_later = headers_for(signature, ts=TIMESTAMP_S + 1)
    expect_code("no_matching_signature", [SECRET], replayed_later, BODY, now=TIMESTAMP_S)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(missing: str) -> None:
    headers = signed_headers()
    del headers[missing]
    expect_code("missing_header", [SECRET], headers, BODY, now=TIMESTAMP_S)
    headers[missing] = "  "
    expect_code("missing_header", [SECRET], headers, BODY, now=TIMESTAMP_S)


@pytest.mark.parametrize("timestamp", ["abc", "-5", "1.5", "1e9", "9" * 16])
def test_a_malformed_timestamp_is_refused(timestamp: str) -> None:
    headers = signed_headers()
    headers["webhook-timestamp"] = timestamp
    expect_code("malformed_timestamp", [SECRET], headers, BODY, now=TIMESTAMP_S)


@pytest.mark.parametrize(
    "signature",
    [
        "v1",  # no comma
        ",abc",  # no version
        "v1,not*base64",
        "v1," + base64.b64encode(b"short").decode(),  # not 32 bytes
        " ".join(["v1a,x"] * 17),  # too many entries
    ],
)
def test_a_malformed_signature_is_refused(signature: str) -> None:
    expect_code("malformed_signature", [SECRET], headers_for(signature), BODY, now=TIMESTAMP_S)


def test_signatures_of_other_versions_are_ignored() -> None:
    good = sign(SECRET, MSG_ID, TIMESTAMP_S, BODY)
    expect_code("no_matching_signature", [SECRET], headers_for("v1a,abc"), BODY, now=TIMESTAMP_S)
    verify([SECRET], headers_for(f"v1a,abc {good}"), BODY, now=TIMESTAMP_S)


def test_verify_needs_a_list_of_secrets() -> None:
    with pytest.raises(ValueError):
        verify([], signed_headers(), BODY, now=TIMESTAMP_S)
    with pytest.raises(TypeError):
        verify(SECRET, signed_headers(), BODY, now=TIMESTAMP_S)


# --- properties ---------------------------------------------------------------------------------


@given(
    body=st.binary(max_size=512),
    msg_id=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
    timestamp_s=st.integers(min_value=0, max_value=10**10),
    skew_s=st.integers(min_value=-300, max_value=300),
)
def test_whatever_is_signed_verifies_within_the_window(
    body: bytes, msg_id: str, timestamp_s: int, skew_s: int
) -> None:
    headers = webhook_headers([SECRET, OTHER_SECRET], msg_id[:255], timestamp_s, body)
    verify([OTHER_SECRET], headers, body, now=timestamp_s + skew_s)
    assert headers["webhook-signature"].split(" ")[0] == independent_signature(
        KEY, msg_id[:255], timestamp_s, body
    )


@given(body=st.binary(min_size=1, max_size=256), data=st.data())
def test_changing_any_byte_of_the_body_breaks_the_signature(
    body: bytes, data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    headers = webhook_headers([SECRET], MSG_ID, TIMESTAMP_S, body)
    expect_code("no_matching_signature", [SECRET], headers, tampered, now=TIMESTAMP_S)


# --- the merchant guide's snippet ---------------------------------------------------------------

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"


def guide_verifier() -> Callable[..., None]:
    """The ``verify_webhook`` function of docs/webhooks.md, so the guide cannot rot."""
    text = GUIDE.read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(GUIDE), "exec"), namespace)
    verifier: Callable[..., None] = namespace["verify_webhook"]
    return verifier


def test_the_guides_snippet_verifies_what_rizzpay_signs() -> None:
    verify_webhook = guide_verifier()
    spec_headers = headers_for(SPEC_SIGNATURE, msg_id=SPEC_ID, ts=SPEC_TIMESTAMP_S)
    verify_webhook([SPEC_SECRET], spec_headers, SPEC_BODY, now_s=SPEC_TIMESTAMP_S)
    rotating = webhook_headers([SECRET, OTHER_SECRET], MSG_ID, TIMESTAMP_S, BODY)
    verify_webhook([OTHER_SECRET], rotating, BODY, now_s=TIMESTAMP_S + 300)
    verify_webhook([SECRET], rotating, BODY, now_s=TIMESTAMP_S - 300)


@pytest.mark.parametrize(
    ("headers", "body", "now_s"),
    [
        (headers_for(sign(SECRET, MSG_ID, TIMESTAMP_S, BODY)), BODY, TIMESTAMP_S + 301),
        (headers_for(sign(SECRET, MSG_ID, TIMESTAMP_S, BODY)), BODY, TIMESTAMP_S - 301),
        (headers_for(sign(SECRET, MSG_ID, TIMESTAMP_S, BODY)), BODY + b" ", TIMESTAMP_S),
        (headers_for(sign(OTHER_SECRET, MSG_ID, TIMESTAMP_S, BODY)), BODY, TIMESTAMP_S),
        (headers_for("v1,ünïcode"), BODY, TIMESTAMP_S),
        ({"webhook-id": MSG_ID}, BODY, TIMESTAMP_S),
        (
            {**headers_for(sign(SECRET, MSG_ID, TIMESTAMP_S, BODY)), "webhook-timestamp": "１２３"},
            BODY,
            TIMESTAMP_S,
        ),
    ],
)
def test_the_guides_snippet_refuses_what_verify_refuses(
    headers: dict[str, str], body: bytes, now_s: int
) -> None:
    verify_webhook = guide_verifier()
    with pytest.raises(Exception) as info:
        verify_webhook([SECRET], headers, body, now_s=now_s)
    assert type(info.value).__name__ == "InvalidWebhook"
    with pytest.raises(WebhookVerificationError):
        verify([SECRET], headers, body, now=now_s)
