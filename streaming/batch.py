"""Turning a list of Kafka records into a batch to write: pure, no I/O.

Why per partition: offsets, fencing and (later) detection state are all per Kafka partition, so
the batch keeps each partition's accepted rows, its dead letters and its offset range.
Rows are plain tuples whose shape (columns, types, indices) is defined in `streaming.log_row`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from loganalyzer.events import EventParser, ParseLimits, Rejection, unparseable


class KafkaRecord(Protocol):
    """The part of confluent_kafka.Message the consumer uses (also easy to build in tests)."""

    def error(self) -> Any: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    kafka_timestamp_ms: int | None
    raw: bytes | None
    reason: str
    detail: str


@dataclass(slots=True)
class PartitionBatch:
    partition: int
    first_offset: int
    last_offset: int = -1
    #: accepted events as `logs` rows, in offset order
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    #: the raw value of each row (same index), kept for the rare row PostgreSQL itself rejects
    raws: list[bytes | None] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: Kafka timestamp (ms) of the first record: when the oldest event of this batch arrived,
    #: so detection lag (arrival → committed anomaly) has an upper bound without a per-row cost
    first_arrival_ms: int | None = None


@dataclass(slots=True)
class Batch:
    topic: str
    partitions: dict[int, PartitionBatch] = field(default_factory=dict)
    min_event_time: datetime | None = None
    max_event_time: datetime | None = None
    #: Kafka records that were not records (errors, partition EOF), for logging
    errors: list[Any] = field(default_factory=list)

    @property
    def days(self) -> list[date]:
        """Every UTC day between the earliest and latest event (the partitions the rows need)."""
        if self.min_event_time is None or self.max_event_time is None:
            return []
        first, last = self.min_event_time.date(), self.max_event_time.date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    @property
    def record_count(self) -> int:
        return sum(len(p.rows) + len(p.dead_letters) for p in self.partitions.values())

    @property
    def event_count(self) -> int:
        return sum(len(p.rows) for p in self.partitions.values())

    @property
    def dead_letter_count(self) -> int:
        return sum(len(p.dead_letters) for p in self.partitions.values())


def build_batch(topic: str, records: Iterable[KafkaRecord], limits: ParseLimits, now: datetime) -> Batch:
    """Parse every record; invalid ones become dead letters, never exceptions.

    EventParser.fields already turns any error into a dead letter (`unparseable`); the guard
    here keeps the promise for this loop itself, whatever parser it runs. A record that raised
    would otherwise stop the consumer at the same offset after every restart."""
    batch = Batch(topic)
    parse = EventParser(limits, now).fields
    parts = batch.partitions
    lo: datetime | None = None
    hi: datetime | None = None
    pb: PartitionBatch | None = None
    for rec in records:
        if rec.error() is not None:
            batch.errors.append(rec.error())
            continue
        partition = rec.partition()
        offset = rec.offset()
        if partition is None or offset is None or offset < 0:
            continue
        if pb is None or pb.partition != partition:
            pb = parts.get(partition)
            if pb is None:
                ts_type, ts_ms = rec.timestamp()
                pb = parts[partition] = PartitionBatch(
                    partition, first_offset=offset, first_arrival_ms=ts_ms if ts_type != 0 else None
                )
        pb.last_offset = offset
        raw = rec.value()
        try:
            result = parse(raw)
        except Exception as exc:  # one record's problem, whatever it is
            result = unparseable(exc)
        if type(result) is tuple:
            pb.rows.append((*result, topic, partition, offset))
            pb.raws.append(raw)
            ts = result[0]
            if hi is None or ts > hi:
                hi = ts
            if lo is None or ts < lo:
                lo = ts
        else:
            assert isinstance(result, Rejection)
            ts_type, ts_ms = rec.timestamp()
            pb.dead_letters.append(
                DeadLetter(
                    partition,
                    offset,
                    rec.key(),
                    ts_ms if ts_type != 0 else None,
                    raw,
                    result.reason,
                    result.detail,
                )
            )
    batch.min_event_time, batch.max_event_time = lo, hi
    return batch
