"""The webhook agent's batch handling: undecodable messages and events PostgreSQL refuses are
dead-lettered with a stable code, and the rest of the batch is still enqueued in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from models.events import LifecycleEvent, PaymentCaptured, encode
from models.ids import derived_event_id, payment_id_for
from models.money import Money
from streams.webhooks.agent import Undecodable, WebhookProcessor, decode_pairs


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class _Event:
    message: _Message

    @property
    def value(self) -> bytes | None:
        return self.message.value


def _captured(n: int) -> PaymentCaptured:
    pid = payment_id_for("kirana_mart", f"order-{n}")
    return PaymentCaptured(
        event_id=derived_event_id(pid, "payment.captured"),
        payment_id=pid,
        merchant_id="kirana_mart",
        occurred_at=datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        amount=Money(minor=100_00 * n, currency="INR"),
    )


def _batch(*values: bytes | None) -> list[Any]:
    return [
        _Event(_Message("payments.lifecycle", 0, offset, b"k", value))
        for offset, value in enumerate(values)
    ]


class _Processor(WebhookProcessor):
    """The real ``handle`` with PostgreSQL and the dead-letter topic replaced: ``refuse`` names
    the event PostgreSQL refuses (and any batch containing it)."""

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.enqueued: list[str] = []
        self.dead: list[Undecodable] = []

    async def _enqueue(self, decoded: Sequence[LifecycleEvent]) -> int:
        if any(e.event_id == self.refuse for e in decoded):
            raise asyncpg.CheckViolationError("refused")
        self.enqueued.extend(e.event_id for e in decoded)
        return len(decoded)

    async def _dead_letter(self, bad: Sequence[Undecodable]) -> None:
        self.dead.extend(bad)


def test_decode_pairs_keeps_order_and_sets_bad_messages_aside() -> None:
    first, second = _captured(1), _captured(2)
    pairs, bad = decode_pairs(_batch(encode(first), b"{not json", None, encode(second)))
    assert [e.event_id for _, e in pairs] == [first.event_id, second.event_id]
    assert [(b.event.message.offset, b.code) for b in bad] == [
        (1, "invalid_json"),
        (2, "invalid_json"),
    ]


async def test_a_refused_event_is_dead_lettered_and_the_rest_enqueued_in_order() -> None:
    events = [_captured(n) for n in range(1, 5)]
    processor = _Processor(refuse=events[1].event_id)
    added = await processor.handle(_batch(*(encode(e) for e in events), b"[]"))
    assert added == 3
    assert processor.enqueued == [events[0].event_id, events[2].event_id, events[3].event_id]
    assert sorted((d.event.message.offset, d.code) for d in processor.dead) == [
        (1, "database_refused"),
        (4, "schema_mismatch"),
    ]
