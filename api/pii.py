"""Keyed tokens for the payer's device id and IP address: the only form they leave the intake in.

A raw IP address or device id is personal data, and an unkeyed hash of one is not much better
(there are only 2^32 IPv4 addresses: a SHA-256 of each is a minute's work).  So the intake
replaces each with ``HMAC-SHA256(key, kind || 0x00 || value)`` truncated to 128 bits and written
as ``dev_<32 hex>`` or ``ip_<32 hex>``.  Nothing downstream (Kafka, PostgreSQL, ClickHouse, the
feature state, exported training files) ever sees the raw value, and without the key nobody can
test a guess against a token.

Equal inputs give equal tokens under one key, which is all the fraud features need: velocity
and novelty compare keys for equality.  The ``kind`` prefix keeps a device id that happens to
look like an IP from sharing the IP's token.  Rotating the key changes every token, so device
and IP features start again from empty windows (docs/fraud.md).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal["dev", "ip"]

#: Hex digits kept of the HMAC: 128 bits, collision-free at any realistic number of devices.
TOKEN_HEX_LEN = 32
DEVICE_TOKEN_PATTERN = rf"^dev_[0-9a-f]{{{TOKEN_HEX_LEN}}}$"
IP_TOKEN_PATTERN = rf"^ip_[0-9a-f]{{{TOKEN_HEX_LEN}}}$"
#: A key shorter than this is refused by the settings: HMAC's strength is the key's.
TOKEN_KEY_LEN_MIN = 32


def pii_token(key: bytes, kind: TokenKind, value: str) -> str:
    """The token of ``value`` (already normalised: see :class:`api.schemas.DeviceInfo`)."""
    mac = hmac.new(key, kind.encode() + b"\x00" + value.encode("utf-8"), hashlib.sha256)
    return f"{kind}_{mac.hexdigest()[:TOKEN_HEX_LEN]}"


@dataclass(frozen=True)
class DeviceTokens:
    """The tokens of one request's device: what goes on ``payment.requested`` and into the
    idempotency fingerprint instead of the raw values."""

    device_id: str | None
    ip: str | None

    def canonical(self) -> dict[str, str | None]:
        return {"id": self.device_id, "ip": self.ip}


def device_tokens(key: bytes, device_id: str | None, ip: str | None) -> DeviceTokens:
    """Tokens of a device id and an IP (each optional) under ``key``."""
    return DeviceTokens(
        device_id=None if device_id is None else pii_token(key, "dev", device_id),
        ip=None if ip is None else pii_token(key, "ip", ip),
    )
