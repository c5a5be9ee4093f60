"""Creates the registry's topics on the broker (part of ``rizzpay migrate``)."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # exported, but not in __all__
    AdminClient,
    NewTopic,
)

from models.topics import TOPICS, TopicSpec

# Topic creation waits this long for the controller before giving up with a clear error.
_CREATE_TIMEOUT_S = 30.0


def ensure_topics(
    bootstrap: str, prefix: str = "", topics: tuple[TopicSpec, ...] = TOPICS
) -> list[str]:
    """Create missing topics with the registry's partitions and configs; returns the created."""
    # Warnings and errors only: librdkafka's info lines (queue purges at exit) are noise here.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    existing = set(admin.list_topics(timeout=_CREATE_TIMEOUT_S).topics)
    wanted = [
        NewTopic(
            spec.full_name(prefix),
            num_partitions=spec.partitions,
            replication_factor=-1,  # the broker's default: 1 locally, 3 in production
            config=dict(spec.config),
        )
        for spec in topics
        if spec.full_name(prefix) not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=_CREATE_TIMEOUT_S).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    return created
