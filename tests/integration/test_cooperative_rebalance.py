"""partition.assignment.strategy=cooperative-sticky: a rebalance moves single partitions.

With the cooperative assignor the rebalance callbacks carry only the partitions that move; the
consumer adds and takes away exactly those (incremental_assign / incremental_unassign), with
their offsets and detection state, and the partitions it keeps go on with the state they had.
(Tansu, the local broker, runs the cooperative protocol: it is the clients' own.)"""

from __future__ import annotations

import time

import pytest

from tests.integration.consumer_harness import consumer_env
from tests.integration.test_overlapping_owners import _member
from tests.support import count, new_topic, produce, valid_values, wait_for

pytestmark = pytest.mark.integration


def test_cooperative_sticky_moves_only_the_partitions_that_change_owner(
    broker: str, database_url: str
) -> None:
    topic = new_topic(broker, partitions=4)
    produce(broker, topic, valid_values(4000))
    env = consumer_env(
        database_url,
        broker,
        topic,
        f"coop-{time.monotonic_ns()}",
        KAFKA_PROPERTY_PARTITION_ASSIGNMENT_STRATEGY="cooperative-sticky",
        MLFLOW_TRACKING_URI="",
    )
    with _member(env) as a:
        wait_for(lambda: count(database_url) == 4000, 60, "the first 4,000 rows, all partitions at A")
        assert a.detection is not None
        engines = {p: a.detection.engine(p) for p in range(4)}
        assert all(e is not None for e in engines.values())
        with _member(env) as b:
            assert b.detection is not None
            wait_for(
                lambda: (
                    a.metrics.assigned_partitions._value.get() == 2
                    and b.metrics.assigned_partitions._value.get() == 2
                ),
                60,
                "two partitions each",
            )
            kept = [p for p in range(4) if a.detection.engine(p) is not None]
            moved = [p for p in range(4) if b.detection.engine(p) is not None]
            assert sorted(kept + moved) == [0, 1, 2, 3] and len(kept) == 2
            # the partitions A kept were never revoked: the same engines, state intact
            assert all(a.detection.engine(p) is engines[p] for p in kept)
            produce(broker, topic, valid_values(2000, start=4000))
            wait_for(lambda: count(database_url) == 6000, 60, "the next 2,000 rows, shared")
            time.sleep(1)
            restarts = a.metrics.restarts._value.get() + b.metrics.restarts._value.get()
    assert count(database_url, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM logs") == 6000
    assert count(database_url) == 6000
    assert count(database_url, "SELECT coalesce(sum(count), 0) FROM log_patterns") == 6000
    assert restarts == 0
