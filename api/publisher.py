"""Publishing to Kafka: accepted means the broker acknowledged.

A confluent-kafka producer with idempotence and ``acks=all``; a background thread serves its
callbacks and each publish awaits its own delivery report.  A publish that the broker did not
acknowledge within ``message.timeout.ms`` raises :class:`BrokerUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge the message: nothing may be reported as accepted."""


class KafkaPublisher:
    def __init__(self, bootstrap: str, *, delivery_timeout_ms: int) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                # Small batching window: trades ≤5 ms of latency for far fewer requests.
                "linger.ms": 5,
                "message.timeout.ms": delivery_timeout_ms,
                # Same partitioner as the Java client and aiokafka, so a key maps to the same
                # partition whoever produces it.
                "partitioner": "murmur2_random",
                "reconnect.backoff.max.ms": 1000,
            },
            # librdkafka's own log lines go through logging instead of straight to stderr.
            logger=logging.getLogger("rizzpay.kafka.producer"),
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        """Send one message and return once the broker has acknowledged it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, done, err)

        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        except (BufferError, KafkaException) as exc:
            raise BrokerUnavailable(f"producer refused the message: {exc}") from exc
        await done

    def close(self, timeout_s: float = 5.0) -> int:
        """Flush what is queued, stop the poller; returns how many messages were left unsent."""
        left: int = self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(timeout=1.0)
        return left


def _settle(future: asyncio.Future[None], err: Any) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(BrokerUnavailable(f"broker did not acknowledge: {err}"))
