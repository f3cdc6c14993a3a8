"""Kafka administration the platform needs: making sure the `logs` topic exists."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

log = logging.getLogger(__name__)


def ensure_topic(client_config: dict[str, Any], topic: str, partitions: int, timeout: float = 15.0) -> bool:
    """Create `topic` with `partitions` partitions when it is missing. Returns True when created.

    Why explicitly: a broker that auto-creates topics picks its own partition count, and the
    partition count bounds how many consumers of one group can share the work.
    """
    admin = AdminClient(client_config)
    meta = admin.list_topics(timeout=timeout)
    if topic in meta.topics and meta.topics[topic].error is None:
        return False
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        futures[topic].result(timeout)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" in str(exc):
            return False
        raise
    log.info("created topic %s with %d partitions", topic, partitions)
    return True
