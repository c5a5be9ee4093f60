"""A local sandbox for the notification providers: MSG91 (SMS), FCM HTTP v1 and APNs (push).

One FastAPI app answers each provider's published request shape at its own path, checks the
credentials it was created with, and records what it accepted; ``GET /__sandbox/messages``
lists them (for tests and for a developer looking at what would have been sent).

Test instruments:

* SMS to a number starting ``+91999``: MSG91's error answer (``{"type": "error"}``, HTTP 200).
* FCM token ``unregistered``: 404 ``UNREGISTERED`` (an uninstalled app).
* APNs token ``dead``: 410 ``Unregistered``.
* Any recipient containing ``flaky``: 503 on its first request, then accepted.

(E-mail needs no sandbox here: the tests run a real SMTP server, aiosmtpd.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

__all__ = ["DEAD_APNS_TOKEN", "UNREGISTERED_FCM_TOKEN", "NotificationSandbox", "create_app"]

#: Test instruments (device tokens, not secrets).
UNREGISTERED_FCM_TOKEN = "unregistered"  # noqa: S105
DEAD_APNS_TOKEN = "dead"  # noqa: S105


@dataclass
class NotificationSandbox:
    """The credentials the sandbox accepts and what it received."""

    msg91_authkey: str = "sandbox-msg91-authkey"
    fcm_project: str = "rizzpay-sandbox"
    fcm_token: str = "sandbox-fcm-access-token"  # noqa: S105 -- the sandbox's own test value
    apns_provider_token: str = "sandbox-apns-jwt"  # noqa: S105 -- the sandbox's own test value
    apns_topic: str = "dev.rizzpay.app"
    accepted: list[dict[str, Any]] = field(default_factory=list)
    seen_flaky: set[str] = field(default_factory=set)

    def _flaky_first(self, recipient: str) -> bool:
        if "flaky" not in recipient or recipient in self.seen_flaky:
            return False
        self.seen_flaky.add(recipient)
        return True


def create_app(state: NotificationSandbox | None = None) -> FastAPI:
    state = state or NotificationSandbox()
    app = FastAPI(title="RizzPay notification sandbox")
    app.state.sandbox = state

    @app.post("/api/v5/flow/")
    async def msg91_flow(request: Request) -> Response:
        if request.headers.get("authkey") != state.msg91_authkey:
            return JSONResponse({"type": "error", "message": "Authentication failure"}, 401)
        body = await request.json()
        recipients = body.get("recipients") or []
        if not body.get("template_id") or not recipients:
            return JSONResponse({"type": "error", "message": "template_id and recipients"}, 400)
        mobile = str(recipients[0].get("mobiles", ""))
        if state._flaky_first(mobile):
            return JSONResponse({"type": "error", "message": "Service unavailable"}, 503)
        if mobile.startswith("91999") or not mobile.isdigit():
            return JSONResponse({"type": "error", "message": "Invalid mobile number"})
        request_id = uuid.uuid4().hex[:24]
        state.accepted.append({"provider": "msg91", "id": request_id, "to": mobile, "body": body})
        return JSONResponse({"type": "success", "message": request_id})

    @app.post("/v1/projects/{project}/messages:send")
    async def fcm_send(project: str, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {state.fcm_token}":
            return _fcm_error(401, "UNAUTHENTICATED", "Request had invalid credentials.")
        if project != state.fcm_project:
            return _fcm_error(404, "NOT_FOUND", "Requested entity was not found.")
        body = await request.json()
        message = body.get("message") or {}
        token = str(message.get("token", ""))
        if not token:
            return _fcm_error(400, "INVALID_ARGUMENT", "The registration token is missing.")
        if state._flaky_first(token):
            return _fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.")
        if token == UNREGISTERED_FCM_TOKEN:
            return _fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        name = f"projects/{project}/messages/0:{uuid.uuid4().int % 10**16}"
        state.accepted.append({"provider": "fcm", "id": name, "to": token, "body": body})
        return JSONResponse({"name": name})

    @app.post("/3/device/{token}")
    async def apns_push(token: str, request: Request) -> Response:
        if request.headers.get("authorization") != f"bearer {state.apns_provider_token}":
            return JSONResponse({"reason": "InvalidProviderToken"}, 403)
        if request.headers.get("apns-topic") != state.apns_topic:
            return JSONResponse({"reason": "TopicDisallowed"}, 400)
        apns_id = request.headers.get("apns-id") or str(uuid.uuid4()).upper()
        if state._flaky_first(token):
            return JSONResponse({"reason": "ServiceUnavailable"}, 503)
        if token == DEAD_APNS_TOKEN:
            return JSONResponse({"reason": "Unregistered", "timestamp": 0}, 410)
        body = await request.json()
        state.accepted.append({"provider": "apns", "id": apns_id, "to": token, "body": body})
        return Response(status_code=200, headers={"apns-id": apns_id})

    @app.get("/__sandbox/messages")
    async def messages() -> dict[str, Any]:
        return {"data": state.accepted}

    return app


def _fcm_error(status: int, code: str, message: str, fcm_code: str | None = None) -> Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if fcm_code is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": fcm_code,
            }
        ]
    return JSONResponse({"error": error}, status)
