"""Which lifecycle events notify a customer, on which channels, and what the texts say."""

from __future__ import annotations

from datetime import UTC, datetime

from models.events import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
)
from models.money import Money
from streams.notifications.messages import (
    Contacts,
    PaymentInfo,
    notification_id_for,
    notifications_for,
)

AT = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
PID = "pay_xmbu63o5mu4ty2lwhxn44yiotv"
INFO = PaymentInfo(PID, "kirana_mart", "cust_1", "upi", "2 kg basmati")
EVERYWHERE = Contacts("a@example.in", "+919876543210", "fcm", "tok-1")
COMMON = {"payment_id": PID, "merchant_id": "kirana_mart", "occurred_at": AT}


def test_a_capture_makes_a_receipt_on_every_channel_the_customer_has() -> None:
    event = PaymentCaptured(
        event_id="evt_aaaaaaaaaaaaaaaaaaaa", amount=Money(minor=1_234_56, currency="INR"), **COMMON
    )
    made = notifications_for(event, INFO, EVERYWHERE)
    assert [(n.channel, n.recipient) for n in made] == [
        ("email", "a@example.in"),
        ("sms", "+919876543210"),
        ("push", "tok-1"),
    ]
    assert made[0].subject == "Payment receipt: 1,234.56 INR"
    assert "2 kg basmati" in made[0].text and PID in made[0].text
    assert made[2].push_platform == "fcm"
    only_mail = notifications_for(event, INFO, Contacts(email="a@example.in"))
    assert [n.channel for n in only_mail] == ["email"]


def test_declines_say_why_in_plain_words_and_refunds_name_the_refund() -> None:
    declined = PaymentDeclined(
        event_id="evt_bbbbbbbbbbbbbbbbbbbb",
        amount=Money(minor=500_00, currency="INR"),
        method_type="card",
        decline_code="insufficient_funds",
        **COMMON,
    )
    [mail, *_] = notifications_for(declined, INFO, EVERYWHERE)
    assert mail.subject == "Payment of 500.00 INR not completed"
    assert "insufficient funds" in mail.text and "insufficient_funds" not in mail.text
    refunded = PaymentRefunded(
        event_id="evt_cccccccccccccccccccc",
        refund_id="rfd_o7k2xtqnxeemwyvs7oviozl27g",
        amount=Money(minor=100_00, currency="INR"),
        **COMMON,
    )
    [mail, *_] = notifications_for(refunded, INFO, EVERYWHERE)
    assert mail.subject == "Refund of 100.00 INR" and "rfd_o7k2xtqnxeemwyvs7oviozl27g" in mail.text


def test_events_for_the_merchant_or_customers_without_contacts_notify_nobody() -> None:
    authorized = PaymentAuthorized(
        event_id="evt_dddddddddddddddddddd",
        amount=Money(minor=1_00, currency="INR"),
        method_type="upi",
        **COMMON,
    )
    assert notifications_for(authorized, INFO, EVERYWHERE) == []
    captured = PaymentCaptured(
        event_id="evt_eeeeeeeeeeeeeeeeeeee", amount=Money(minor=1_00, currency="INR"), **COMMON
    )
    assert notifications_for(captured, INFO, None) == []
    assert notifications_for(captured, INFO, Contacts()) == []


def test_notification_ids_are_one_per_event_and_channel() -> None:
    assert notification_id_for("evt_1", "email") == notification_id_for("evt_1", "email")
    assert (
        len({notification_id_for(e, c) for e in ("evt_1", "evt_2") for c in ("email", "sms")}) == 4
    )
