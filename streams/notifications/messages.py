"""Which lifecycle events notify the customer, and what each notification says.  Pure.

Receipts: ``payment.captured`` (the customer paid) and ``payment.refunded``.  Failure notices:
``payment.declined`` and ``payment.failed``.  Other events (authorization, releases, disputes)
concern the merchant, who hears of them through webhooks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Literal

from models.events import (
    LifecycleEvent,
    PaymentCaptured,
    PaymentDeclined,
    PaymentFailed,
    PaymentRefunded,
)
from models.money import format_minor

__all__ = [
    "Channel",
    "Contacts",
    "Notification",
    "PaymentInfo",
    "notification_id_for",
    "notifications_for",
]

Channel = Literal["email", "sms", "push"]
PushPlatform = Literal["fcm", "apns"]

#: What a customer reads for each decline code: plain words, no internal codes.
_DECLINE_TEXT: Final[dict[str, str]] = {
    "insufficient_funds": "your bank reported insufficient funds",
    "expired_card": "the card has expired",
    "invalid_vpa": "the UPI ID was not found",
    "upi_timeout": "the UPI request was not approved in time",
    "bank_rejected": "your bank declined it",
    "do_not_honor": "your bank declined it",
}
_DECLINE_DEFAULT: Final = "it was declined"


@dataclass(frozen=True)
class PaymentInfo:
    """What the notifier knows of a payment beyond its lifecycle events."""

    payment_id: str
    merchant_id: str
    customer_id: str | None
    method: str
    description: str | None


@dataclass(frozen=True)
class Contacts:
    """Where the customer wants notifications; any may be missing."""

    email: str | None = None
    phone: str | None = None  # E.164
    push_platform: PushPlatform | None = None
    push_token: str | None = None


@dataclass(frozen=True)
class Notification:
    """One message on one channel.  ``notification_id`` is derived from (event, channel), so
    the same event never makes two different notifications."""

    notification_id: str
    event_id: str
    event_type: str
    payment_id: str
    merchant_id: str
    channel: Channel
    recipient: str
    subject: str
    text: str
    push_platform: PushPlatform | None = None


def notification_id_for(event_id: str, channel: Channel) -> str:
    """``ntf_`` + 32 hex digits of SHA-256 of (event id, channel)."""
    digest = hashlib.sha256(f"notification\x1f{event_id}\x1f{channel}".encode())
    return "ntf_" + digest.hexdigest()[:32]


def _wording(event: LifecycleEvent, payment: PaymentInfo) -> tuple[str, str] | None:
    what = f" for {payment.description}" if payment.description else ""
    ref = payment.payment_id
    match event:
        case PaymentCaptured():
            amount = format_minor(event.amount.minor, event.amount.currency)
            return (
                f"Payment receipt: {amount}",
                f"You paid {amount}{what} to {payment.merchant_id}. Reference {ref}.",
            )
        case PaymentRefunded():
            amount = format_minor(event.amount.minor, event.amount.currency)
            return (
                f"Refund of {amount}",
                f"{payment.merchant_id} refunded {amount}{what}. It reaches your account in "
                f"5-7 working days. Reference {event.refund_id}.",
            )
        case PaymentDeclined():
            amount = format_minor(event.amount.minor, event.amount.currency)
            why = _DECLINE_TEXT.get(event.decline_code, _DECLINE_DEFAULT)
            return (
                f"Payment of {amount} not completed",
                f"Your payment of {amount}{what} to {payment.merchant_id} did not go through: "
                f"{why}. No money was taken. Reference {ref}.",
            )
        case PaymentFailed():
            return (
                "Payment not completed",
                f"Your payment{what} to {payment.merchant_id} did not go through. If money "
                f"left your account it is returned automatically. Reference {ref}.",
            )
        case _:
            return None


def notifications_for(
    event: LifecycleEvent, payment: PaymentInfo, contacts: Contacts | None
) -> list[Notification]:
    """The notifications ``event`` makes for the customer at ``contacts`` (none if the event is
    not one that notifies, or the customer left no contacts)."""
    if contacts is None:
        return []
    wording = _wording(event, payment)
    if wording is None:
        return []
    subject, text = wording
    targets: list[tuple[Channel, str | None]] = [
        ("email", contacts.email),
        ("sms", contacts.phone),
        ("push", contacts.push_token),
    ]
    return [
        Notification(
            notification_id=notification_id_for(event.event_id, channel),
            event_id=event.event_id,
            event_type=event.event_type,
            payment_id=event.payment_id,
            merchant_id=event.merchant_id,
            channel=channel,
            recipient=recipient,
            subject=subject,
            text=text,
            push_platform=contacts.push_platform if channel == "push" else None,
        )
        for channel, recipient in targets
        if recipient
    ]
