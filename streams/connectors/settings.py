"""Where the processors are and how to reach them: one settings object, built once at an entry
point (``RIZZPAY_CONNECTORS_*`` environment variables), and the function that builds the
connectors from it.

The defaults are the local sandboxes (``rizzpay sandbox serve``) and their public test
credentials: development only.  Production sets every URL and secret explicitly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.connectors.bank_transfer import BankTransferConnector
from streams.connectors.base import Connector, ProviderName
from streams.connectors.breaker import BreakerConfig, CircuitBreaker
from streams.connectors.cards import CardVault
from streams.connectors.http import HttpSettings
from streams.connectors.payu import PayuConnector
from streams.connectors.razorpay import RazorpayConnector
from streams.connectors.stripe import StripeConnector

# ``rizzpay sandbox serve`` default ports, one per provider from here (sandbox.server.ports_for).
SANDBOX_PORT_DEFAULT = 18100


class ConnectorSettings(BaseSettings):
    """URLs and credentials of the processors.  Defaults: the sandboxes' public test values
    (``sandbox/__init__.py``; a unit test keeps the two in step).  Production code does not
    import the sandbox package, so the values are repeated here."""

    model_config = SettingsConfigDict(env_prefix="RIZZPAY_CONNECTORS_", extra="ignore")

    razorpay_url: str = f"http://127.0.0.1:{SANDBOX_PORT_DEFAULT}"
    razorpay_key_id: str = "rzp_test_rizzpaysandbox"
    razorpay_key_secret: SecretStr = SecretStr("rzp_test_secret_sandbox")
    payu_url: str = f"http://127.0.0.1:{SANDBOX_PORT_DEFAULT + 1}"
    payu_key: str = "rzpTST"
    payu_salt: SecretStr = SecretStr("sandboxsalt123")
    stripe_url: str = f"http://127.0.0.1:{SANDBOX_PORT_DEFAULT + 2}"
    stripe_secret_key: SecretStr = SecretStr("sk_test_rizzpay_sandbox")
    bank_url: str = f"http://127.0.0.1:{SANDBOX_PORT_DEFAULT + 3}"
    bank_client_id: str = "RIZZPAY"
    bank_api_key: SecretStr = SecretStr("bank_test_key_sandbox")
    # RizzPay's own current account at the bank: refunds of bank transfers are paid from it.
    bank_settlement_account: str = "50200012345678"
    bank_settlement_ifsc: str = "HDFC0000001"


def build_connectors(
    settings: ConnectorSettings,
    vault: CardVault,
    *,
    http_settings: HttpSettings | None = None,
    breaker_config: BreakerConfig | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[ProviderName, Connector]:
    """One connector per provider, each with its own breaker on ``clock``."""

    def breaker(name: str) -> CircuitBreaker:
        return CircuitBreaker(name, breaker_config, clock=clock)

    http = http_settings or HttpSettings()
    return {
        "razorpay": RazorpayConnector(
            base_url=settings.razorpay_url,
            key_id=settings.razorpay_key_id,
            key_secret=settings.razorpay_key_secret.get_secret_value(),
            vault=vault,
            http_settings=http,
            breaker=breaker("razorpay"),
        ),
        "payu": PayuConnector(
            base_url=settings.payu_url,
            key=settings.payu_key,
            salt=settings.payu_salt.get_secret_value(),
            vault=vault,
            http_settings=http,
            breaker=breaker("payu"),
        ),
        "stripe": StripeConnector(
            base_url=settings.stripe_url,
            secret_key=settings.stripe_secret_key.get_secret_value(),
            vault=vault,
            http_settings=http,
            breaker=breaker("stripe"),
        ),
        "bank_transfer": BankTransferConnector(
            base_url=settings.bank_url,
            client_id=settings.bank_client_id,
            api_key=settings.bank_api_key.get_secret_value(),
            settlement_account=settings.bank_settlement_account,
            settlement_ifsc=settings.bank_settlement_ifsc,
            http_settings=http,
            breaker=breaker("bank_transfer"),
        ),
    }
