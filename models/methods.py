"""Payment method details as they travel on the stream.

No card number ever enters RizzPay's events: cards travel as a vault token with their BIN and
last four digits (PCI DSS: at most BIN and last 4 may be displayed).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# RTGS is for high-value transfers: RBI sets its minimum at ₹2 lakh.
RTGS_MIN_MINOR_INR = 2_00_000_00


class CardMethod(BaseModel):
    model_config = _FROZEN
    type: Literal["card"] = "card"
    token: str = Field(pattern=r"^tok_[A-Za-z0-9_]{4,64}$")
    bin: str = Field(pattern=r"^[0-9]{6,8}$")
    last4: str = Field(pattern=r"^[0-9]{4}$")
    network: Literal["visa", "mastercard", "rupay", "amex", "diners"] | None = None


class UpiMethod(BaseModel):
    model_config = _FROZEN
    type: Literal["upi"] = "upi"
    vpa: str = Field(pattern=r"^[A-Za-z0-9._-]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$")
    flow: Literal["collect", "intent"] = "collect"


class NetbankingMethod(BaseModel):
    model_config = _FROZEN
    type: Literal["netbanking"] = "netbanking"
    bank_code: str = Field(pattern=r"^[A-Z]{4}$")


class BankTransferMethod(BaseModel):
    model_config = _FROZEN
    type: Literal["neft", "rtgs", "imps"]
    ifsc: str = Field(pattern=r"^[A-Z]{4}0[A-Z0-9]{6}$")
    account_last4: str = Field(pattern=r"^[0-9]{4}$")


class WalletMethod(BaseModel):
    model_config = _FROZEN
    type: Literal["wallet"] = "wallet"
    wallet_id: str = Field(pattern=r"^wal_[A-Za-z0-9]{4,64}$")


PaymentMethod = Annotated[
    CardMethod | UpiMethod | NetbankingMethod | BankTransferMethod | WalletMethod,
    Field(discriminator="type"),
]
MethodType = Literal["card", "upi", "netbanking", "neft", "rtgs", "imps", "wallet"]
