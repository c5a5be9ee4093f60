"""Where the services are: the one settings object every entry point builds once.

Values come from environment variables prefixed ``RIZZPAY_`` and, when present, from the file
``$RIZZPAY_HOME/stack.env`` that ``rizzpay stack up`` writes (it holds the generated local
PostgreSQL password).  Nothing below an entry point reads ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    """The project-local folder that holds the stack's data, logs and generated secrets."""
    return Path(os.environ.get("RIZZPAY_HOME", REPO_ROOT / ".rizzpay")).resolve()


class ServiceEndpoints(BaseSettings):
    """Connection strings of the services RizzPay talks to.

    ``topic_prefix`` namespaces every topic name from the registry, so tests and parallel demo
    runs never share a topic.
    """

    model_config = SettingsConfigDict(
        env_prefix="RIZZPAY_",
        env_file=str(default_home() / "stack.env"),
        extra="ignore",
    )

    home: Path = Field(default_factory=default_home)
    kafka_bootstrap: str = "127.0.0.1:19092"
    pg_dsn: str = "postgresql://rizzpay@127.0.0.1:15432/rizzpay"
    redis_url: str = "redis://127.0.0.1:16379/0"
    clickhouse_dsn: str = Field(default_factory=lambda: f"chdb://{default_home() / 'clickhouse'}")
    topic_prefix: str = ""
