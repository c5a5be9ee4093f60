"""Builds the Faust app.  Nothing is created at import time: ``create_app(settings)`` is called
by the worker entry point (and by tests) with settings read once there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import faust
from faust.streams import Stream
from faust.types import EventT

from models.topics import TopicSpec
from streams.settings import WorkerSettings


def create_app(settings: WorkerSettings) -> faust.App:
    app = faust.App(
        f"{settings.topic_prefix}{settings.app_id}",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        producer_acks=-1,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        web_port=settings.web_port,
        # ``rizzpay migrate`` creates the registry's topics first, so Faust only ever declares
        # its own internal ones (the leader-election topic).
        topic_allow_declare=True,
    )
    # Imported here because the agents' module needs ``raw_topic`` from this one.
    from streams import payments, scoring  # noqa: PLC0415

    payments.install(app, settings)
    scoring.install(app, settings)
    from streams.webhooks import agent as webhooks  # noqa: PLC0415

    webhooks.install(app, settings)
    from streams.notifications import agent as notifications  # noqa: PLC0415

    notifications.install(app, settings)
    from streams import balances  # noqa: PLC0415

    balances.install(app, settings)
    from streams import wallet_expiry  # noqa: PLC0415

    wallet_expiry.install(app, settings)
    return app


def raw_topic(app: faust.App, spec: TopicSpec, prefix: str) -> faust.TopicT:
    """A Faust topic over raw bytes: agents decode with the registry so that a bad message
    becomes a dead letter instead of an exception inside Faust's deserializer."""
    return app.topic(
        spec.full_name(prefix),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
    )


BatchHandler = Callable[[Sequence[EventT[bytes]]], Awaitable[object]]


def batch_agent(
    app: faust.App,
    topic: faust.TopicT,
    *,
    name: str,
    batch_size_max: int,
    batch_wait_s: float,
    handle: BatchHandler,
) -> None:
    """Register an agent named ``name`` that feeds ``topic`` to ``handle`` in batches of up to
    ``batch_size_max`` messages (or what arrived within ``batch_wait_s``).

    Concurrency is 1: with more, Faust can commit an offset past a batch still in flight
    (faust-streaming #606) and a crash would lose it.  ``handle`` must retry what fails
    transiently itself: Faust acknowledges a batch whose handler raised."""

    async def consume(stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, Stream)  # StreamT's hints lack take_events
        async for events in stream.take_events(batch_size_max, within=batch_wait_s):
            await handle(events)

    app.agent(topic, name=name, concurrency=1)(consume)
