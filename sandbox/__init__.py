"""Local sandboxes shaped after the processors' published APIs (Razorpay, PayU, Stripe) and an
HDFC/ICICI-style corporate banking API, so RizzPay's connectors speak real HTTP to real servers
in development and tests.  Deterministic test instruments (``sandbox.instruments``), realistic
latency and switchable fault modes (``sandbox.faults``); ``sandbox.server`` runs them.

Development only: the credentials below are public test values.
"""

from __future__ import annotations

from typing import Literal

SandboxProvider = Literal["razorpay", "payu", "stripe", "bank"]
PROVIDERS: tuple[SandboxProvider, ...] = ("razorpay", "payu", "stripe", "bank")

# Test credentials the sandboxes accept (and the connectors' development defaults).
RAZORPAY_KEY_ID = "rzp_test_rizzpaysandbox"
RAZORPAY_KEY_SECRET = "rzp_test_secret_sandbox"  # noqa: S105 - public test value
PAYU_KEY = "rzpTST"
PAYU_SALT = "sandboxsalt123"
STRIPE_SECRET_KEY = "sk_test_rizzpay_sandbox"  # noqa: S105 - public test value
BANK_CLIENT_ID = "RIZZPAY"
BANK_API_KEY = "bank_test_key_sandbox"
BANK_IFSC = "HDFC0000001"
BANK_BENEFICIARY_NAME = "RIZZPAY PAYMENTS PVT LTD"
