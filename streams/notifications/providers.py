"""The channels' providers, each shaped after its published API.

* :class:`SmtpEmail` -- plain SMTP (RFC 5321) with STARTTLS and AUTH, as every e-mail provider
  offers.  The ``Message-ID`` is derived from the notification id, so a resend after a crash
  is recognisable as the same message.
* :class:`Msg91Sms` -- MSG91's SMS Flow API: ``POST /api/v5/flow/`` with header ``authkey`` and
  ``{"template_id", "short_url", "recipients": [{"mobiles": "91...", "var1": ...}]}``; it
  answers ``{"type": "success", "message": "<request id>"}`` or ``{"type": "error", ...}``.
* :class:`FcmPush` -- Firebase Cloud Messaging HTTP v1:
  ``POST /v1/projects/{project}/messages:send`` with an OAuth bearer token and
  ``{"message": {"token", "notification": {"title", "body"}, "data"}}``; it answers
  ``{"name": "projects/.../messages/..."}``; 404 ``UNREGISTERED`` for a dead token.
* :class:`ApnsPush` -- APNs: ``POST /3/device/{token}`` with ``authorization: bearer <jwt>``,
  ``apns-topic``, ``apns-push-type: alert``, ``apns-id``; 200 with the ``apns-id`` header,
  410 ``Unregistered``, 400 ``BadDeviceToken``.

Every provider raises :class:`SendError`; ``transient`` says whether trying again can help
(timeouts, 429, 5xx) or not (a bad address, a dead token, an error answer).
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import formatdate
from typing import Final, Protocol

import httpx

from streams.notifications.messages import Notification
from streams.notifications.settings import (
    ApnsSettings,
    EmailSettings,
    FcmSettings,
    NotificationSettings,
    SmsSettings,
)

__all__ = [
    "ApnsPush",
    "FcmPush",
    "Msg91Sms",
    "SendError",
    "Sender",
    "SmtpEmail",
    "senders_for",
]

_ERROR_CHARS_MAX: Final = 500


class SendError(Exception):
    """A provider did not take the message.  ``transient``: worth another attempt."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message[:_ERROR_CHARS_MAX])
        self.transient = transient


class Sender(Protocol):
    async def send(self, notification: Notification) -> str:
        """Hand ``notification`` to the provider; return the provider's message id."""
        ...


def _http_error(exc: httpx.HTTPError) -> SendError:
    return SendError(f"{type(exc).__name__}: {exc}", transient=True)


def _status_error(provider: str, response: httpx.Response) -> SendError:
    transient = response.status_code == 429 or response.status_code >= 500
    return SendError(
        f"{provider} answered {response.status_code}: {response.text}", transient=transient
    )


class SmtpEmail:
    """E-mail through an SMTP relay.  ``smtplib`` runs in a thread (it blocks)."""

    def __init__(self, settings: EmailSettings, *, timeout_s: float) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    def message(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = notification.recipient
        message["Subject"] = notification.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{notification.notification_id}@rizzpay.dev>"
        message["X-RizzPay-Payment"] = notification.payment_id
        message.set_content(notification.text)
        return message

    def _send_blocking(self, message: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.host, s.port, timeout=self.timeout_s) as smtp:
            if s.starttls:
                smtp.starttls()
            if s.username is not None and s.password is not None:
                smtp.login(s.username, s.password.get_secret_value())
            smtp.send_message(message)

    async def send(self, notification: Notification) -> str:
        message = self.message(notification)
        try:
            await asyncio.to_thread(self._send_blocking, message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"recipient refused: {exc.recipients}", transient=False) from exc
        except smtplib.SMTPResponseException as exc:
            # 4xx replies are temporary by definition (RFC 5321 §4.2.1), 5xx permanent.
            raise SendError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", transient=exc.smtp_code < 500
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}", transient=True) from exc
        return str(message["Message-ID"])


class Msg91Sms:
    """SMS through an MSG91-shaped gateway, with a DLT template whose ``var1`` is the text."""

    def __init__(self, settings: SmsSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, notification: Notification) -> str:
        body = {
            "template_id": self.settings.template_id,
            "short_url": "0",
            "recipients": [
                {"mobiles": notification.recipient.removeprefix("+"), "var1": notification.text}
            ],
        }
        try:
            response = await self.client.post(
                f"{self.settings.base_url}/api/v5/flow/",
                json=body,
                headers={"authkey": self.settings.authkey.get_secret_value()},
            )
        except httpx.HTTPError as exc:
            raise _http_error(exc) from exc
        if response.status_code != 200:
            raise _status_error("MSG91", response)
        answer = response.json()
        if answer.get("type") != "success":
            raise SendError(f"MSG91 error: {answer.get('message')}", transient=False)
        return str(answer["message"])


class FcmPush:
    """Android (and web) push through FCM HTTP v1."""

    def __init__(self, settings: FcmSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, notification: Notification) -> str:
        body = {
            "message": {
                "token": notification.recipient,
                "notification": {"title": notification.subject, "body": notification.text},
                "data": {
                    "payment_id": notification.payment_id,
                    "event_type": notification.event_type,
                    "notification_id": notification.notification_id,
                },
            }
        }
        url = f"{self.settings.base_url}/v1/projects/{self.settings.project_id}/messages:send"
        token = self.settings.access_token.get_secret_value()
        try:
            response = await self.client.post(
                url, json=body, headers={"authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise _http_error(exc) from exc
        if response.status_code != 200:
            raise _status_error("FCM", response)
        return str(response.json()["name"])


class ApnsPush:
    """iOS push through APNs with a provider token."""

    def __init__(self, settings: ApnsSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, notification: Notification) -> str:
        # apns-id is a UUID; derived from the notification so a resend carries the same one.
        apns_id = str(uuid.UUID(hex=notification.notification_id.removeprefix("ntf_")))
        body = {
            "aps": {"alert": {"title": notification.subject, "body": notification.text}},
            "payment_id": notification.payment_id,
        }
        headers = {
            "authorization": f"bearer {self.settings.provider_token.get_secret_value()}",
            "apns-topic": self.settings.bundle_id,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-id": apns_id,
        }
        url = f"{self.settings.base_url}/3/device/{notification.recipient}"
        try:
            response = await self.client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _http_error(exc) from exc
        if response.status_code != 200:
            raise _status_error("APNs", response)
        return str(response.headers.get("apns-id", apns_id))


class _Push:
    """The push channel: FCM or APNs by the customer's platform."""

    def __init__(self, fcm: FcmPush | None, apns: ApnsPush | None) -> None:
        self.fcm = fcm
        self.apns = apns

    async def send(self, notification: Notification) -> str:
        sender = self.apns if notification.push_platform == "apns" else self.fcm
        if sender is None:
            raise SendError(f"no {notification.push_platform} provider configured", transient=False)
        return await sender.send(notification)


def senders_for(settings: NotificationSettings, client: httpx.AsyncClient) -> dict[str, Sender]:
    """The configured channels' senders, by channel name."""
    senders: dict[str, Sender] = {}
    if settings.email is not None:
        senders["email"] = SmtpEmail(settings.email, timeout_s=settings.timeout_s)
    if settings.sms is not None:
        senders["sms"] = Msg91Sms(settings.sms, client)
    fcm = None if settings.fcm is None else FcmPush(settings.fcm, client)
    apns = None if settings.apns is None else ApnsPush(settings.apns, client)
    if fcm is not None or apns is not None:
        senders["push"] = _Push(fcm, apns)
    return senders
