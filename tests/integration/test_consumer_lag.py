"""The fetch responses' high watermark (librdkafka statistics) is exact on the embedded broker.

Tansu answers a ListOffsets ("latest") lookup wrongly, so lag cannot come from there. This test
checks the other source, the watermark each fetch carries, against the true end of every
partition (the producer's delivery reports), with a consumer part-way through the topic, and
the lag it gives against the records really left.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from loganalyzer.consumer_lag import high_watermarks, lag
from streaming.consumer import LogConsumer
from tests.integration.consumer_harness import consumer_env, running_consumer
from tests.support import count, new_topic, produce, valid_values, wait_for

pytestmark = pytest.mark.integration


def test_statistics_watermarks_give_the_exact_lag_mid_stream(broker: str) -> None:
    topic = new_topic(broker, partitions=2)
    ends: dict[int, int] = {}

    def delivered(err: Any, msg: Any) -> None:  # msg: confluent_kafka.Message
        assert err is None, err
        ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)

    producer = Producer({"bootstrap.servers": broker, "linger.ms": 10})
    for i, value in enumerate(valid_values(20_000)):
        producer.produce(topic, value, key=f"k{i % 16}".encode(), on_delivery=delivered)
        if i % 5000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    stats: list[dict[str, Any]] = []
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": "lag-probe",
            "enable.auto.commit": False,
            "queued.max.messages.kbytes": 64,  # keep the consumer well behind the end
            "max.partition.fetch.bytes": 50_000,
            "statistics.interval.ms": 200,
            "stats_cb": lambda doc: stats.append(orjson.loads(doc)),
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in (0, 1)])
        position: dict[int, int] = {}
        while sum(position.values()) < 3000:
            for msg in consumer.consume(100, 0.5):
                partition, offset = msg.partition(), msg.offset()
                assert partition is not None and offset is not None
                position[partition] = offset + 1
        consumer.pause(consumer.assignment())  # poll() now serves callbacks only
        seen = len(stats)
        wait_for(lambda: consumer.poll(0.1) is None and len(stats) > seen + 1, 10, "fresh statistics")
        watermarks = high_watermarks(stats[-1], topic)
    finally:
        consumer.close()
    assert watermarks == ends  # exact, unlike a ListOffsets lookup on this broker
    stored = {p: position.get(p, 0) for p in ends}
    assert lag(watermarks, stored) == {p: ends[p] - stored[p] for p in ends}
    assert sum(lag(watermarks, stored).values()) == 20_000 - sum(stored.values())


def _lag_total(consumer: LogConsumer) -> float:
    return sum(sample.value for metric in consumer.metrics.lag.collect() for sample in metric.samples)


def test_the_lag_gauge_counts_exactly_what_is_not_yet_stored(broker: str, database_url: str) -> None:
    """Caught up: 0. While PostgreSQL holds every write back, exactly the records produced since."""
    topic = new_topic(broker, partitions=2)
    produce(broker, topic, valid_values(5000))
    env = consumer_env(database_url, broker, topic, KAFKA_PROPERTY_STATISTICS_INTERVAL_MS="200")
    with running_consumer(env) as consumer:
        wait_for(lambda: count(database_url) == 5000, 60, "the first rows")
        wait_for(lambda: _lag_total(consumer) == 0, 15, "a lag of 0 once caught up")
        with psycopg.connect(database_url) as blocker:
            blocker.execute("LOCK TABLE ingest_offsets IN ACCESS EXCLUSIVE MODE")  # every write waits
            produce(broker, topic, valid_values(3000, start=5000))
            # the batch in flight waits for the lock while consume() goes on serving statistics
            wait_for(lambda: _lag_total(consumer) == 3000, 30, "a lag of exactly 3,000")
            blocker.rollback()
        wait_for(lambda: count(database_url) == 8000, 60, "the rows after the stall")
        wait_for(lambda: _lag_total(consumer) == 0, 15, "the lag back to 0")
