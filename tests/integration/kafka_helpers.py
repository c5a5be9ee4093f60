"""Reading topics back in tests, with a consumer group of their own."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message

from models.config import ServiceEndpoints


def value_of(message: Message) -> bytes:
    value = message.value()
    assert value is not None, "tombstones are not expected on RizzPay's topics"
    return value


def read_topic(
    topic: str, *, expect: int | None = None, idle_s: float = 2.0, timeout_s: float = 60.0
) -> list[Message]:
    """All messages of ``topic`` from the beginning: stops once ``expect`` arrived, or after
    ``idle_s`` without a message (when ``expect`` is None), or at ``timeout_s``."""
    consumer = Consumer(
        {
            "bootstrap.servers": ServiceEndpoints().kafka_bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    last_seen = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                # Assignment takes a moment; only count idleness once we own partitions.
                if (
                    expect is None
                    and consumer.assignment()
                    and time.monotonic() - last_seen > idle_s
                ):
                    break
                continue
            if msg.error():
                continue
            messages.append(msg)
            last_seen = time.monotonic()
            if expect is not None and len(messages) >= expect:
                break
    finally:
        consumer.close()
    return messages
