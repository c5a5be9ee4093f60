"""Standard Webhooks signing and verification (https://www.standardwebhooks.com/).

Every delivery carries three headers:

``webhook-id``
    The event's id.  It is the same on every retry of that event, so receivers dedupe by it.
``webhook-timestamp``
    When this attempt was signed, in integer Unix seconds.
``webhook-signature``
    One or more space-separated ``v1,<base64>`` entries, where ``<base64>`` is the standard
    (padded) base64 of ``HMAC-SHA256(key, f"{id}.{timestamp}.".encode() + body)`` and ``key`` is
    the base64-decoded part of the endpoint's ``whsec_...`` secret.  While a secret is being
    rotated the sender signs with the old and the new secret, so either verifies.

The body is signed exactly as sent, byte for byte: a receiver must verify the raw request body,
never a re-serialized parse of it.

``verify`` refuses (with a stable :class:`WebhookVerificationError` code) a missing header, a
timestamp more than ``tolerance_s`` (300 s) away from ``now`` in either direction, and a request
none of whose ``v1`` signatures matches any of the given secrets.  Signatures are compared with
``hmac.compare_digest``.  Clocks are injected: ``now`` is a timezone-aware ``datetime`` or integer
Unix seconds; naive datetimes are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, Literal

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SECRET_PREFIX",
    "InvalidWebhookSecret",
    "VerificationErrorCode",
    "WebhookVerificationError",
    "generate_secret",
    "secret_key",
    "sign",
    "signature_header",
    "verify",
    "webhook_headers",
]

HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 -- the format's prefix, not a secret
#: The spec asks for keys of 24 to 64 bytes; ``generate_secret`` makes 32-byte keys.
MIN_KEY_BYTES: Final = 24
MAX_KEY_BYTES: Final = 64
DEFAULT_KEY_BYTES: Final = 32

#: How far (seconds) a timestamp may be from the receiver's clock, in either direction.
DEFAULT_TOLERANCE_S: Final = 300

#: A receiver never needs more than a handful of signatures (rotation uses two).
MAX_SIGNATURES: Final = 16

_VERSION: Final = "v1"
_DIGEST_BYTES: Final = 32  # SHA-256
_MSG_ID = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII: it travels in a header
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_US_PER_S: Final = 1_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

VerificationErrorCode = Literal[
    "missing_header",
    "malformed_timestamp",
    "timestamp_too_old",
    "timestamp_in_future",
    "malformed_signature",
    "no_matching_signature",
]


class WebhookVerificationError(Exception):
    """A webhook failed verification.  ``code`` is stable; branch on it, not on the message."""

    def __init__(self, code: VerificationErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: VerificationErrorCode = code
        self.message = message


class InvalidWebhookSecret(ValueError):
    """A secret is not ``whsec_`` followed by base64 of 24 to 64 bytes (a configuration error)."""

    code: Final = "invalid_secret"


def generate_secret(nbytes: int = DEFAULT_KEY_BYTES) -> str:
    """A new endpoint secret: ``whsec_`` + base64 of ``nbytes`` random bytes from ``secrets``."""
    if not MIN_KEY_BYTES <= nbytes <= MAX_KEY_BYTES:
        raise ValueError(f"nbytes must be between {MIN_KEY_BYTES} and {MAX_KEY_BYTES}")
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret: its base64-decoded part.

    Raises :class:`InvalidWebhookSecret` if the prefix is missing, the base64 is invalid, or the
    key is shorter than 24 or longer than 64 bytes.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidWebhookSecret(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidWebhookSecret("a webhook secret's key part is not valid base64") from exc
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidWebhookSecret(
            f"a webhook secret's key is {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, not {len(key)}"
        )
    return key


def _digest(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def _check_message(msg_id: str, timestamp_s: int) -> None:
    if not _MSG_ID.fullmatch(msg_id):
        raise ValueError("msg_id must be 1 to 255 visible ASCII characters")
    if isinstance(timestamp_s, bool) or not isinstance(timestamp_s, int) or timestamp_s < 0:
        raise ValueError("timestamp_s must be a non-negative integer (Unix seconds)")


def sign(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """One signature entry, ``v1,<base64>``, of ``body`` sent as ``msg_id`` at ``timestamp_s``.

    ``timestamp_s`` is integer Unix seconds, the value of the ``webhook-timestamp`` header.
    """
    _check_message(msg_id, timestamp_s)
    digest = _digest(secret_key(secret), msg_id, timestamp_s, body)
    return f"{_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one entry per secret (two during rotation), in order."""
    if isinstance(secrets, str):
        raise TypeError("secrets is a sequence of secrets, not one secret")
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(sign(secret, msg_id, timestamp_s, body) for secret in dict.fromkeys(secrets))


def webhook_headers(
    secrets: Sequence[str], msg_id: str, timestamp_s: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp_s),
        HEADER_SIGNATURE: signature_header(secrets, msg_id, timestamp_s, body),
    }


def _now_us(now: datetime | int) -> int:
    """``now`` as integer Unix microseconds (exact, so the 300 s boundary is exact)."""
    if isinstance(now, datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        delta = now - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * _US_PER_S + delta.microseconds
    if isinstance(now, bool) or not isinstance(now, int):
        raise TypeError("now is a timezone-aware datetime or integer Unix seconds")
    return now * _US_PER_S


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if value is None or not value.strip():
        raise WebhookVerificationError("missing_header", f"the {name} header is missing")
    return value.strip()


def _candidate_digests(header: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a header; entries of other versions are ignored."""
    entries = header.split()
    if len(entries) > MAX_SIGNATURES:
        raise WebhookVerificationError(
            "malformed_signature", f"more than {MAX_SIGNATURES} signatures"
        )
    digests: list[bytes] = []
    for entry in entries:
        version, sep, value = entry.partition(",")
        if not sep or not version:
            raise WebhookVerificationError(
                "malformed_signature", "each signature is '<version>,<base64>'"
            )
        if version != _VERSION:
            continue  # e.g. "v1a" (asymmetric): not ours to check
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WebhookVerificationError(
                "malformed_signature", "a v1 signature is not valid base64"
            ) from exc
        if len(digest) != _DIGEST_BYTES:
            raise WebhookVerificationError(
                "malformed_signature", f"a v1 signature is {_DIGEST_BYTES} bytes"
            )
        digests.append(digest)
    return digests


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime | int,
    tolerance_s: int | float = DEFAULT_TOLERANCE_S,
) -> None:
    """Check a received webhook; return ``None`` if it is authentic and fresh, else raise.

    ``secrets``: the endpoint's current secrets (one, or two during rotation); any may match.
    ``headers``: the request headers (looked up case-insensitively).  ``body``: the raw body bytes.
    ``now``: the receiver's clock, a timezone-aware ``datetime`` or integer Unix seconds.
    ``tolerance_s``: seconds the timestamp may be off in either direction; exactly
    ``tolerance_s`` is accepted, anything beyond is refused.

    Raises :class:`WebhookVerificationError` with code ``missing_header``,
    ``malformed_timestamp``, ``timestamp_too_old``, ``timestamp_in_future``,
    ``malformed_signature`` or ``no_matching_signature``; :class:`InvalidWebhookSecret` if one
    of ``secrets`` is itself invalid.
    """
    if tolerance_s < 0:
        raise ValueError("tolerance_s must not be negative")
    if isinstance(secrets, str):
        raise TypeError("secrets is a sequence of secrets, not one secret")
    keys = [secret_key(secret) for secret in secrets]
    if not keys:
        raise ValueError("at least one secret is needed to verify")
    now_us = _now_us(now)

    msg_id = _header(headers, HEADER_ID)
    timestamp_text = _header(headers, HEADER_TIMESTAMP)
    signature_text = _header(headers, HEADER_SIGNATURE)

    if not _TIMESTAMP.fullmatch(timestamp_text):
        raise WebhookVerificationError(
            "malformed_timestamp", f"{HEADER_TIMESTAMP} is not integer Unix seconds"
        )
    timestamp_s = int(timestamp_text)
    offset_us = now_us - timestamp_s * _US_PER_S
    tolerance_us = round(tolerance_s * _US_PER_S)
    if offset_us > tolerance_us:
        raise WebhookVerificationError(
            "timestamp_too_old", f"the timestamp is more than {tolerance_s} s in the past"
        )
    if -offset_us > tolerance_us:
        raise WebhookVerificationError(
            "timestamp_in_future", f"the timestamp is more than {tolerance_s} s in the future"
        )

    candidates = _candidate_digests(signature_text)
    matched = False
    for key in keys:
        expected = _digest(key, msg_id, timestamp_s, body)
        for candidate in candidates:
            # Every comparison runs, so timing says nothing about which one matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookVerificationError(
            "no_matching_signature", "no v1 signature matches any of the endpoint's secrets"
        )
