"""The REST API's request and response bodies, and their conversion to and from events."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from datetime import datetime
from typing import Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from api.pii import DeviceTokens, device_tokens
from api.problems import Problem
from models.methods import RTGS_MIN_MINOR_INR, PaymentMethod
from models.money import INT64_MAX, AmountMinor, check_currency

#: Longest device id accepted (characters): SDK fingerprints and vendor ids fit well within it.
DEVICE_ID_LEN_MAX = 128


class DeviceInfo(BaseModel):
    """The payer's device, as the merchant's app or checkout saw it; both parts optional.

    ``ip`` is an IPv4 or IPv6 address, normalised to its compressed form (an IPv4-mapped IPv6
    address becomes the IPv4 address), so one client written two ways is one key for the fraud
    features.  Neither value leaves the intake: they are replaced by keyed tokens (api/pii.py).
    Error messages never echo the value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=DEVICE_ID_LEN_MAX)
    ip: str | None = None

    @field_validator("id")
    @classmethod
    def _printable_id(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("device id must be printable text (no control characters)")
        return value

    @field_validator("ip")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            # Scoped (link-local) addresses name an interface, not a client.
            if "%" in value:
                raise ValueError
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("ip must be an IPv4 or IPv6 address") from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.compressed


class PaymentCreate(BaseModel):
    """``POST /v1/payments``: ``amount`` is an integer in minor units (paise for INR).

    ``device`` is optional; ``{}`` (or both parts null) is the same as leaving it out.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: AmountMinor
    currency: str = Field(min_length=3, max_length=3)
    method: PaymentMethod
    customer_id: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=255)
    capture: Literal["automatic", "manual"] = "automatic"
    device: DeviceInfo | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return check_currency(value)

    @model_validator(mode="before")
    @classmethod
    def _empty_device_is_none(cls, data: Any) -> Any:
        device = data.get("device") if isinstance(data, dict) else None
        if (
            isinstance(device, dict)
            and set(device) <= {"id", "ip"}
            and all(v is None for v in device.values())
        ):
            return {**data, "device": None}
        return data

    def fingerprint(self, device: DeviceTokens | None = None) -> str:
        """SHA-256 of the canonical request: equal bodies, however formatted, match.

        Without ``device`` the canonical form has no ``device`` key at all, exactly as before the
        field existed, so keys stored then still match.  With one, its keyed tokens stand in for
        the raw values (pass them as ``device``): the fingerprint is stored in Redis, PostgreSQL
        and on Kafka, and an unkeyed hash over an IP could be brute-forced back to it.  Raises
        ValueError when the body has a device and no tokens are given.
        """
        data = self.model_dump(mode="json", exclude={"device"})
        if self.device is not None:
            if device is None:
                raise ValueError("a body with a device is fingerprinted over its device tokens")
            data["device"] = device.canonical()
        canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()


class PaymentView(BaseModel):
    """A payment as the API shows it."""

    id: str
    object: Literal["payment"] = "payment"
    merchant_id: str
    status: str
    amount: int
    currency: str
    method: str
    decline_code: str | None = None
    created_at: datetime
    updated_at: datetime | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class CaptureCreate(BaseModel):
    """``POST /v1/payments/{id}/capture``: ``amount`` in minor units, default all still held;
    ``final`` (default true) releases whatever is left of the authorization."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    amount: AmountMinor | None = None
    final: bool = True


class RefundCreate(BaseModel):
    """``POST /v1/payments/{id}/refunds``: ``amount`` in minor units."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    amount: AmountMinor
    reason: str | None = Field(default=None, max_length=255)


class VoidCreate(BaseModel):
    """``POST /v1/payments/{id}/void``: no fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def fingerprint_of(*parts: object) -> str:
    """SHA-256 of the canonical JSON of ``parts`` (say, a route and its validated body)."""
    canonical = orjson.dumps(
        [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


M = TypeVar("M", bound=BaseModel)


def parse_body(raw: bytes, model: type[M], *, empty_ok: bool = False) -> M:
    """Parse and validate a JSON body as ``model``, or raise a 4xx :class:`Problem`.

    The standard library parser is used on purpose: it keeps integers beyond 64 bits exact, so
    an oversized amount is reported as out of range rather than silently becoming a float.
    """
    if empty_ok and not raw.strip():
        raw = b"{}"
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "invalid_json", "Body is not valid JSON", str(exc)) from exc
    if not isinstance(data, dict):
        raise Problem(400, "invalid_json", "Body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_problem(exc) from exc


def parse_payment_create(raw: bytes) -> PaymentCreate:
    """Parse and validate a create-payment body, or raise a 4xx :class:`Problem`."""
    request = parse_body(raw, PaymentCreate)
    if request.method.type == "rtgs" and request.amount < RTGS_MIN_MINOR_INR:
        raise Problem(
            422,
            "amount_below_minimum",
            "Amount below the RTGS minimum",
            f"RTGS transfers start at {RTGS_MIN_MINOR_INR} paise (₹2 lakh); use NEFT or IMPS",
        )
    return request


def device_tokens_of(body: PaymentCreate, key: SecretStr | None) -> DeviceTokens | None:
    """The keyed tokens of the body's device (None without one), or a 503 problem when the
    intake has no token key: a payment is refused rather than published with raw values or
    silently without its device."""
    if body.device is None:
        return None
    if key is None:
        raise Problem(
            503,
            "device_tokens_unavailable",
            "Device details cannot be accepted now",
            "The intake has no PII token key configured (RIZZPAY_PII_TOKEN_KEY); retry later "
            "or send the payment without `device`",
        )
    return device_tokens(key.get_secret_value().encode(), body.device.id, body.device.ip)


# The first matching (field, pydantic error type) decides the stable code.
_CODES: tuple[tuple[str | None, str | None, str, str], ...] = (
    (None, "extra_forbidden", "unknown_field", "Unknown field"),
    ("amount", "greater_than", "amount_not_positive", "Amount must be positive"),
    ("amount", "less_than_equal", "amount_out_of_range", "Amount out of range"),
    ("amount", None, "invalid_amount", "Amount must be an integer in minor units"),
    ("currency", None, "unsupported_currency", "Currency not supported"),
    ("method", None, "invalid_method", "Payment method is invalid"),
    ("device", None, "invalid_device", "Device details are invalid"),
)


def _validation_problem(exc: ValidationError) -> Problem:
    errors = [
        {
            "field": ".".join(str(p) for p in err["loc"]),
            "type": err["type"],
            "message": err["msg"],
        }
        for err in exc.errors()
    ]
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else None
    for want_field, want_type, code, title in _CODES:
        if (want_field is None or want_field == field) and (
            want_type is None or want_type == first["type"]
        ):
            detail = errors[0]["message"]
            if code == "amount_out_of_range":
                detail = f"amount must be at most {INT64_MAX} minor units"
            return Problem(422, code, title, f"{errors[0]['field']}: {detail}", errors=errors)
    message = errors[0]["message"]
    return Problem(422, "validation_error", "Request is invalid", message, errors=errors)
