"""Producing records to Kafka: batched, keyed by tenant/service, delivery errors counted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import Producer


class DeliveryFailed(RuntimeError):
    pass


class KafkaSink:
    """A thin, fast wrapper around confluent_kafka.Producer for the generator and benchmarks."""

    def __init__(self, config: dict[str, Any], topic: str) -> None:
        self.topic = topic
        self.errors = 0
        self.first_error: str | None = None
        self._producer = Producer(
            {
                "linger.ms": 10,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 500_000,
                "compression.type": "lz4",
                **config,
            }
        )

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors += 1
            if self.first_error is None:
                self.first_error = str(err)

    def send(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise DeliveryFailed(f"{left} records still undelivered after {timeout:.0f}s")
        if self.errors:
            raise DeliveryFailed(f"{self.errors} records failed delivery; first error: {self.first_error}")


def produce_records(records: Iterable[tuple[bytes, bytes]], config: dict[str, Any], topic: str) -> int:
    """Produce (key, value) pairs and wait for delivery. Returns the count; raises on any failure."""
    sink = KafkaSink(config, topic)
    n = 0
    for key, value in records:
        sink.send(key, value)
        n += 1
        if n % 10_000 == 0:
            sink.poll()
    sink.flush()
    return n
