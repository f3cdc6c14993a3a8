"""`loganalyzer generate` as a user runs it: rate, duration, speedup and ground truth, into a real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from loganalyzer.generator.traffic import seasonality
from tests.support import new_topic

pytestmark = pytest.mark.integration


def _produced(bootstrap: str, topic: str, partitions: int) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "count", "enable.auto.commit": False})
    try:
        marks = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)]
        return sum(high for _, high in marks)
    finally:
        c.close()


def test_rate_duration_and_speedup_shape_what_is_produced(broker: str, tmp_path: Path) -> None:
    topic = new_topic(broker)
    truth = tmp_path / "truth.jsonl"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker, "KAFKA_TOPIC": topic}
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    cmd = [sys.executable, "-m", "loganalyzer", "generate", "--rate", "50", "--duration", "20m"]
    cmd += ["--start", start.isoformat(), "--speedup", "600", "--random-incidents", "1"]
    cmd += ["--ground-truth", str(truth), "--quiet"]
    began = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr.decode()
    # 20 minutes of event time at 600x: 2 s of wall time (pacing), not as fast as possible
    assert took >= 2.0, took
    # 50 events/s of event time times the seasonal factor of each minute (0.1-1.8x: the hour of
    # day and the weekday decide), over 1,200 s. The incidents move it: an outage silences one
    # service (api-gateway, the largest, carries 21 % of the traffic) for at most 15 of the 20
    # minutes, a traffic spike multiplies one by 8 for as long: from 0.84x to 2.1x of that.
    expected = sum(50 * 60 * seasonality(start + timedelta(minutes=k)) for k in range(20))
    produced = _produced(broker, topic, 4)
    assert 0.75 * expected <= produced <= 2.3 * expected, (produced, expected)
    incidents = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    assert sorted(i["type"] for i in incidents) == sorted(
        ["error_burst", "traffic_spike", "outage", "new_error_pattern", "latency_degradation"]
    )
