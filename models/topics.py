"""The topic registry: every topic's name, partitions, configs, key, schemas and consumers.

No topic name is a string literal anywhere else.  ``examples/<topic>/`` beside this file holds
one example payload per schema, and ``tests/unit/test_topic_contracts.py`` runs every example
through every consumer listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from models.events import (
    CaptureRequested,
    DeadLetter,
    DecodeError,
    DisputeOpenRequested,
    DisputeResolveRequested,
    LedgerPosted,
    PaymentActionCompleted,
    PaymentActionRequired,
    PaymentAuthorizationReleased,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
    PaymentDisputeLost,
    PaymentDisputeOpened,
    PaymentDisputeWon,
    PaymentExpired,
    PaymentFailed,
    PaymentRefunded,
    PaymentRequested,
    PaymentScored,
    PaymentVoided,
    RefundRequested,
    SettlementCreated,
    SettlementPaid,
    VoidRequested,
)

M = TypeVar("M", bound=BaseModel)

EXAMPLES_DIR = Path(__file__).parent / "examples"

# Seven days: long enough to replay after a weekend outage; the ledger, not Kafka, is the record.
_RETENTION_7D_MS = str(7 * 24 * 3600 * 1000)


@dataclass(frozen=True)
class TopicSpec:
    """One topic.  ``consumers`` are dotted paths of the pure functions that read it."""

    name: str
    partitions: int
    key: str
    schemas: tuple[type[BaseModel], ...]
    consumers: tuple[str, ...]
    config: Mapping[str, str] = field(default_factory=dict)

    def full_name(self, prefix: str = "") -> str:
        """The topic's name on the broker, under an optional namespace ``prefix``."""
        return f"{prefix}{self.name}"

    def schema_for(self, event_type: str, schema_version: int) -> type[BaseModel]:
        for model in self.schemas:
            fields = model.model_fields
            if fields["event_type"].default == event_type:
                if fields["schema_version"].default == schema_version:
                    return model
                raise DecodeError(
                    "unsupported_schema_version",
                    f"{event_type} v{schema_version} is not a schema of {self.name}",
                )
        raise DecodeError("unknown_event_type", f"{event_type!r} is not carried by {self.name}")

    def decode(self, raw: bytes) -> BaseModel:
        """Decode bytes read from this topic into their event model.

        Raises :class:`DecodeError` with a stable ``code`` (``invalid_json``,
        ``unknown_event_type``, ``unsupported_schema_version``, ``schema_mismatch``).
        """
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DecodeError("invalid_json", str(exc)) from exc
        if not isinstance(data, dict):
            raise DecodeError("schema_mismatch", "payload is not a JSON object")
        event_type, version = data.get("event_type"), data.get("schema_version")
        if not isinstance(event_type, str) or not isinstance(version, int):
            raise DecodeError("schema_mismatch", "event_type or schema_version missing")
        model = self.schema_for(event_type, version)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise DecodeError("schema_mismatch", f"{where}: {first['msg']}") from exc

    def decode_as(self, raw: bytes, model: type[M]) -> M:
        """Decode like :meth:`decode` and require the event to be a ``model``."""
        event = self.decode(raw)
        if not isinstance(event, model):
            raise DecodeError(
                "unexpected_event_type", f"{type(event).__name__}, not {model.__name__}"
            )
        return event

    def examples(self) -> list[Path]:
        return sorted((EXAMPLES_DIR / self.name).glob("*.json"))


PAYMENTS_REQUESTED = TopicSpec(
    name="payments.requested",
    partitions=6,
    key="payment_id",
    schemas=(
        PaymentRequested,
        CaptureRequested,
        VoidRequested,
        RefundRequested,
        DisputeOpenRequested,
        DisputeResolveRequested,
    ),
    # Fraud scoring reads it (and passes commands on to payments.scored); authorization reads
    # payments.scored.  The warehouse sink still records every request from here.
    consumers=("streams.scoring.score_request", "warehouse.sinks.rows.rows_for"),
    config={"retention.ms": _RETENTION_7D_MS, "min.insync.replicas": "1"},
)

# Scored payments and the merchants' commands, in the order fraud scoring read them from
# payments.requested (same key, same partition count), so a payment's creation still precedes
# its commands.  The payments agent (authorization, ledger) consumes it.
PAYMENTS_SCORED = TopicSpec(
    name="payments.scored",
    partitions=6,
    key="payment_id",
    schemas=(
        PaymentScored,
        CaptureRequested,
        VoidRequested,
        RefundRequested,
        DisputeOpenRequested,
        DisputeResolveRequested,
    ),
    consumers=("streams.scoring.authorization_plan", "warehouse.sinks.rows.rows_for"),
    config={"retention.ms": _RETENTION_7D_MS, "min.insync.replicas": "1"},
)

PAYMENTS_LIFECYCLE = TopicSpec(
    name="payments.lifecycle",
    partitions=6,
    key="payment_id",
    schemas=(
        PaymentAuthorized,
        PaymentDeclined,
        PaymentCaptured,
        PaymentVoided,
        PaymentRefunded,
        PaymentFailed,
        PaymentExpired,
        PaymentActionRequired,
        PaymentActionCompleted,
        PaymentAuthorizationReleased,
        PaymentDisputeOpened,
        PaymentDisputeWon,
        PaymentDisputeLost,
    ),
    consumers=("streams.ledger.entry_for", "warehouse.sinks.rows.rows_for"),
    config={"retention.ms": _RETENTION_7D_MS, "min.insync.replicas": "1"},
)

PAYMENTS_DEADLETTER = TopicSpec(
    name="payments.deadletter",
    partitions=1,
    key="source topic/partition/offset",
    schemas=(DeadLetter,),
    consumers=(),
    # Dead letters are evidence: keep them 30 days for someone to read and replay.
    config={"retention.ms": str(30 * 24 * 3600 * 1000)},
)

# The postings of every lifecycle event's journal entry, keyed by ledger account: the one
# repartition hop from payments.lifecycle (keyed by payment) to the real-time balances and the
# live settlement view (keyed by account).  Same partition count as the lifecycle topic.
LEDGER_POSTINGS = TopicSpec(
    name="ledger.postings",
    partitions=6,
    key="account_id",
    schemas=(LedgerPosted,),
    consumers=("streams.balances.posting_delta",),
    config={"retention.ms": _RETENTION_7D_MS, "min.insync.replicas": "1"},
)

# Settlement batches produced and paid, for merchants' webhooks; keyed by merchant so one
# merchant's events stay in order.
SETTLEMENT_EVENTS = TopicSpec(
    name="settlement.events",
    partitions=3,
    key="merchant_id",
    schemas=(SettlementCreated, SettlementPaid),
    consumers=(),
    config={"retention.ms": _RETENTION_7D_MS, "min.insync.replicas": "1"},
)

TOPICS: tuple[TopicSpec, ...] = (
    PAYMENTS_REQUESTED,
    PAYMENTS_LIFECYCLE,
    PAYMENTS_DEADLETTER,
    PAYMENTS_SCORED,
    LEDGER_POSTINGS,
    SETTLEMENT_EVENTS,
)
