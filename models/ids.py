"""Identifiers.

``payment_id`` is derived from (merchant, Idempotency-Key), so a retried request can only ever
name the same payment, whichever API replica receives it and whether or not Redis remembers the
key.  Event ids of events that the stream derives from a payment are deterministic too, so a
replayed input produces the same event id and consumers can drop the duplicate.
"""

from __future__ import annotations

import base64
import hashlib
import uuid

# Idempotency keys longer than this are refused (IETF draft / Stripe use 255).
IDEMPOTENCY_KEY_LEN_MAX = 255


def _digest32(*parts: str) -> str:
    h = hashlib.sha256("\x1f".join(parts).encode())
    return base64.b32encode(h.digest()).decode().rstrip("=").lower()[:26]


def payment_id_for(merchant_id: str, idempotency_key: str) -> str:
    """The payment id that ``idempotency_key`` names for ``merchant_id``.

    ``pay_`` followed by 26 lowercase base32 characters (130 bits of SHA-256)."""
    return "pay_" + _digest32("payment", merchant_id, idempotency_key)


def command_id_for(prefix: str, merchant_id: str, idempotency_key: str) -> str:
    """The id of a capture (``cap``) or refund (``rfd``) named by a merchant's key."""
    return f"{prefix}_" + _digest32(prefix, merchant_id, idempotency_key)


def derived_event_id(payment_id: str, event_type: str, step: str = "") -> str:
    """A stable event id for the ``event_type`` event that the stream emits for ``payment_id``."""
    return "evt_" + _digest32("event", payment_id, event_type, step)


def new_event_id() -> str:
    """A fresh random event id, for events born at the edge (the API)."""
    return "evt_" + uuid.uuid4().hex
