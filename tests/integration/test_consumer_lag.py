"""The fetch responses' high watermark (librdkafka statistics) is exact on the embedded broker.

Tansu answers a ListOffsets ("latest") lookup wrongly, so lag cannot come from there. This test
checks the other source, the watermark each fetch carries, against the true end of every
partition (the producer's delivery reports), with a consumer part-way through the topic, and
the lag it gives against the records really left.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from loganalyzer.consumer_lag import high_watermarks, lag
from tests.support import new_topic, valid_values, wait_for

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
