"""Provider signatures against their documented formulas, and the sandboxes' agreement."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import sandbox
from sandbox import payu as payu_sandbox
from streams.connectors.cards import SandboxCardVault
from streams.connectors.payu import command_hash, payment_hash, response_hash
from streams.connectors.razorpay import RazorpayConnector
from streams.connectors.settings import ConnectorSettings

FIELDS = {
    "key": "JP***g",
    "txnid": "pay_abc",
    "amount": "10.00",
    "productinfo": "iPhone",
    "firstname": "Ashish",
    "email": "test@gmail.com",
    "status": "success",
}


def sha512(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


def test_payu_payment_hash_is_the_documented_string() -> None:
    # PayU: sha512(key|txnid|amount|productinfo|firstname|email|||||||||||SALT) without udfs.
    documented = "JP***g|pay_abc|10.00|iPhone|Ashish|test@gmail.com|||||||||||salt"
    assert payment_hash(FIELDS, "salt") == sha512(documented)
    with_udf = {**FIELDS, "udf1": "m_1"}
    assert payment_hash(with_udf, "salt") == sha512(
        "JP***g|pay_abc|10.00|iPhone|Ashish|test@gmail.com|m_1||||||||||salt"
    )


def test_payu_reverse_hash_is_the_documented_string() -> None:
    documented = "salt|success|||||||||||test@gmail.com|Ashish|iPhone|10.00|pay_abc|JP***g"
    assert response_hash(FIELDS, "salt") == sha512(documented)


def test_payu_command_hash() -> None:
    assert command_hash("key", "verify_payment", "pay_abc", "salt") == sha512(
        "key|verify_payment|pay_abc|salt"
    )


def test_the_payu_sandbox_computes_the_same_hashes() -> None:
    assert payu_sandbox.payment_hash(FIELDS, "s") == payment_hash(FIELDS, "s")
    assert payu_sandbox.response_hash(FIELDS, "s") == response_hash(FIELDS, "s")
    assert payu_sandbox.command_hash("k", "c", "v", "s") == command_hash("k", "c", "v", "s")


def test_razorpay_callback_signature() -> None:
    connector = RazorpayConnector(
        base_url="http://razorpay.test",
        key_id="rzp_test_x",
        key_secret="secret",
        vault=SandboxCardVault(),
    )
    signature = hmac.new(b"secret", b"order_1|pay_1", hashlib.sha256).hexdigest()
    assert connector.verify_callback("order_1", "pay_1", signature)
    assert not connector.verify_callback("order_1", "pay_2", signature)
    assert not connector.verify_callback("order_1", "pay_1", signature.upper())
    asyncio.run(connector.aclose())


def test_development_defaults_are_the_sandboxes_credentials() -> None:
    defaults = ConnectorSettings()
    assert defaults.razorpay_key_id == sandbox.RAZORPAY_KEY_ID
    assert defaults.razorpay_key_secret.get_secret_value() == sandbox.RAZORPAY_KEY_SECRET
    assert (defaults.payu_key, defaults.payu_salt.get_secret_value()) == (
        sandbox.PAYU_KEY,
        sandbox.PAYU_SALT,
    )
    assert defaults.stripe_secret_key.get_secret_value() == sandbox.STRIPE_SECRET_KEY
    assert defaults.bank_client_id == sandbox.BANK_CLIENT_ID
    assert defaults.bank_api_key.get_secret_value() == sandbox.BANK_API_KEY
    assert defaults.bank_settlement_ifsc == sandbox.BANK_IFSC
