"""The ``payments.deadletter`` record of a message an agent cannot process: where it came from,
its raw bytes, and a stable reason code.  Every agent dead-letters through here, so a letter
reads the same whichever consumer wrote it."""

from __future__ import annotations

from datetime import datetime

from faust.types import EventT

from models.events import DeadLetter


def dead_letter_of(
    event: EventT[bytes], code: str, reason: str, *, consumer: str, failed_at: datetime
) -> DeadLetter:
    """The dead letter of ``event`` refused by ``consumer`` for ``code`` (``reason`` in words)."""
    message = event.message
    key = message.key
    return DeadLetter(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key.decode("utf-8", "replace") if isinstance(key, bytes) else None,
        value=bytes(message.value or b"").decode("utf-8", "replace"),
        error_code=code,
        reason=reason,
        consumer=consumer,
        failed_at=failed_at,
    )


def dead_letter_key(letter: DeadLetter) -> bytes:
    """The letter's Kafka key: its source position, so a re-sent letter has the same key."""
    return f"{letter.source_topic}/{letter.partition}/{letter.offset}".encode()
