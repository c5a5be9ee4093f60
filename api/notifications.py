"""Where a merchant's customers get receipts and failure notices.

``PUT /v1/customers/{customer_id}/contacts`` sets (replaces) the customer's e-mail, mobile
number (E.164) and push token; payments created with that ``customer_id`` then notify there.
``GET`` reads them back.  Idempotent by nature: the same PUT twice leaves the same contacts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from api.context import AUTH_HEADER, Services, authenticate
from api.problems import Problem
from api.schemas import parse_body
from streams.notifications.messages import Contacts
from streams.notifications.store import contacts_for, put_contacts

router = APIRouter(tags=["notifications"])
_AUTH: Final = {"parameters": [AUTH_HEADER]}


class PushTarget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    platform: Literal["fcm", "apns"]
    token: str = Field(min_length=1, max_length=4096, pattern=r"^[\x21-\x7e]+$")


class ContactsPut(BaseModel):
    """Any of e-mail, phone (E.164, e.g. ``+919876543210``) and push; ``null`` removes one."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{7,14}$")
    push: PushTarget | None = None


def _view(customer_id: str, contacts: Contacts) -> dict[str, Any]:
    push = (
        None
        if contacts.push_platform is None
        else {"platform": contacts.push_platform, "token": contacts.push_token}
    )
    return {
        "object": "customer_contacts",
        "customer_id": customer_id,
        "email": contacts.email,
        "phone": contacts.phone,
        "push": push,
    }


def _check_customer_id(customer_id: str) -> None:
    if not 1 <= len(customer_id) <= 64 or not customer_id.isprintable():
        raise Problem(422, "validation_error", "customer_id is 1 to 64 printable characters")


@router.put("/v1/customers/{customer_id}/contacts", openapi_extra=_AUTH)
async def set_contacts(customer_id: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    _check_customer_id(customer_id)
    body = parse_body(await request.body(), ContactsPut)
    contacts = Contacts(
        email=body.email,
        phone=body.phone,
        push_platform=None if body.push is None else body.push.platform,
        push_token=None if body.push is None else body.push.token,
    )
    await put_contacts(services.pool, merchant_id, customer_id, contacts, now=datetime.now(UTC))
    return _view(customer_id, contacts)


@router.get("/v1/customers/{customer_id}/contacts", openapi_extra=_AUTH)
async def read_contacts(customer_id: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    merchant_id = await authenticate(request)
    contacts = await contacts_for(services.pool, merchant_id, customer_id)
    if contacts is None:
        raise Problem(404, "customer_contacts_not_found", "No contacts for this customer")
    return _view(customer_id, contacts)
