"""Commits PostgreSQL loses (a crash with synchronous_commit = off, a failover) are read again.

The consumer commits without waiting for the WAL flush. A crash can then lose the newest
transactions, each of which holds a batch's rows and its offsets together; the consumer still
believes they are stored. It must notice on its next write and read them again from Kafka.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loganalyzer.db.connection import connect
from tests.integration.consumer_harness import (
    consumer_env,
    consumer_process,
    running_consumer,
    stop_gracefully,
)
from tests.support import count, new_topic, produce, valid_values, wait_for

pytestmark = pytest.mark.integration

LOST = 400


def _lose_newest_commits(url: str, topic: str) -> int:
    """What the crash leaves behind: the newest LOST records of every partition gone, rows,
    dead letters and stored offsets together (one transaction held all three)."""
    lost = 0
    with connect(url) as conn:
        stored = conn.execute(
            "SELECT kafka_partition, next_offset FROM ingest_offsets WHERE kafka_topic = %s", (topic,)
        ).fetchall()
        for partition, next_offset in stored:
            back = max(0, next_offset - LOST)
            for table in ("logs", "dead_letters"):
                cur = conn.execute(
                    f"DELETE FROM {table} "
                    "WHERE kafka_topic = %s AND kafka_partition = %s AND kafka_offset >= %s",
                    (topic, partition, back),
                )
                lost += cur.rowcount
            conn.execute(
                "UPDATE ingest_offsets SET next_offset = %s WHERE kafka_topic = %s AND kafka_partition = %s",
                (back, topic, partition),
            )
            # a detector checkpoint newer than what survived was lost with it
            conn.execute(
                "DELETE FROM detector_checkpoints "
                "WHERE kafka_topic = %s AND kafka_partition = %s AND next_offset > %s",
                (topic, partition, back),
            )
    return lost


def test_commits_lost_by_postgresql_are_read_again(broker: str, database_url: str) -> None:
    topic = new_topic(broker, partitions=2)
    produce(broker, topic, valid_values(3000))
    env = consumer_env(database_url, broker, topic, CONSUMER_BATCH_MAX_MESSAGES="500")
    with running_consumer(env) as consumer:
        assert consumer.settings.consumer.async_commit  # the default this test is about
        wait_for(lambda: count(database_url) == 3000, 60, "the first 3,000 rows")
        lost = _lose_newest_commits(database_url, topic)
        assert count(database_url) == 3000 - lost and lost >= LOST
        produce(broker, topic, valid_values(1000, start=3000))  # the next write meets the gap
        wait_for(lambda: count(database_url) == 4000, 90, "every row, the lost ones included")
        time.sleep(1)  # nothing more arrives: no duplicate is written late
        restarts = consumer.metrics.restarts._value.get()
    assert count(database_url) == 4000
    assert count(database_url, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM logs") == 4000
    assert restarts >= 1


def test_without_lost_commits_the_consumer_never_starts_over(broker: str, database_url: str) -> None:
    """The check must not fire on ordinary traffic (consumed in several batches per partition)."""
    topic = new_topic(broker, partitions=2)
    produce(broker, topic, valid_values(3000))
    env = consumer_env(database_url, broker, topic, CONSUMER_BATCH_MAX_MESSAGES="300")
    with running_consumer(env) as consumer:
        wait_for(lambda: count(database_url) == 3000, 60, "3,000 rows")
        produce(broker, topic, valid_values(1000, start=3000))
        wait_for(lambda: count(database_url) == 4000, 60, "4,000 rows")
        restarts = consumer.metrics.restarts._value.get()
    assert restarts == 0


def test_lost_commits_with_detection_on_are_read_again(
    broker: str, database_url: str, tmp_path: Path
) -> None:
    """The `loganalyzer consume` process, detection on: the new session restores each partition
    from what survived of its checkpoint and still stores every record exactly once."""
    topic = new_topic(broker, partitions=2)
    produce(broker, topic, valid_values(3000))
    env = consumer_env(
        database_url, broker, topic, CONSUMER_BATCH_MAX_MESSAGES="500", DETECTION_CHECKPOINT_SECONDS="0.1"
    )
    log = tmp_path / "consumer.log"
    with consumer_process(env, log) as proc:
        wait_for(lambda: count(database_url) == 3000, 60, "the first 3,000 rows")
        lost = _lose_newest_commits(database_url, topic)
        assert lost >= LOST
        produce(broker, topic, valid_values(1000, start=3000))
        wait_for(lambda: count(database_url) == 4000, 90, "every row, the lost ones included")
        time.sleep(1)
        stop_gracefully(proc, log)
    assert count(database_url) == 4000
    assert count(database_url, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM logs") == 4000
    assert "starting over" in log.read_text()


def test_commits_lost_right_after_an_assignment_are_read_again(broker: str, database_url: str) -> None:
    """The member that is assigned the partitions has committed nothing there yet: its first
    write must compare the stored offsets with those it was assigned at, or the range PostgreSQL
    lost after the assignment would never be read again."""
    topic = new_topic(broker, partitions=2)
    produce(broker, topic, valid_values(3000))
    env = consumer_env(database_url, broker, topic, CONSUMER_BATCH_MAX_MESSAGES="500")
    with running_consumer(env):
        wait_for(lambda: count(database_url) == 3000, 60, "the first 3,000 rows")
    with running_consumer(env) as successor:
        wait_for(lambda: successor.metrics.assigned_partitions._value.get() == 2, 60, "the assignment")
        lost = _lose_newest_commits(database_url, topic)  # after it read the stored offsets
        assert lost >= LOST
        produce(broker, topic, valid_values(1000, start=3000))
        wait_for(lambda: count(database_url) == 4000, 90, "every row, the lost ones included")
        time.sleep(1)
        restarts = successor.metrics.restarts._value.get()
    assert count(database_url, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM logs") == 4000
    assert count(database_url) == 4000
    assert restarts >= 1
