"""A checksum of a day's rows that both the export and PostgreSQL can compute cheaply.

Why sums and not a hash of every row: hashing 10M rows in Python would cost more than the export
itself, and PostgreSQL has no hash function that Arrow also has. Sums over integer columns are
vectorised in Arrow and a parallel aggregate in PostgreSQL, and they change when a row is lost,
duplicated, or moved in time, or when a message changes length. Each component is summed per
batch (small enough for int64) and accumulated in Python integers, so nothing overflows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class RowChecksum:
    rows: int = 0
    sum_kafka_offset: int = 0
    sum_kafka_partition: int = 0
    #: microseconds since the start of the exported day (UTC), summed
    sum_timestamp_us: int = 0
    #: UTF-8 bytes of `message`, summed
    sum_message_bytes: int = 0

    def __add__(self, other: RowChecksum) -> RowChecksum:
        return RowChecksum(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RowChecksum:
        return cls(**{k: int(d[k]) for k in asdict(cls())})


def astuple(c: RowChecksum) -> tuple[int, ...]:
    return (c.rows, c.sum_kafka_offset, c.sum_kafka_partition, c.sum_timestamp_us, c.sum_message_bytes)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _sum(arr: Any) -> int:
    value = pc.sum(arr).as_py()
    return int(value) if value is not None else 0


def batch_checksum(batch: pa.RecordBatch | pa.Table, day: date) -> RowChecksum:
    """The checksum of a batch in the export's file schema (timestamp as timestamp[us, UTC])."""
    if batch.num_rows == 0:
        return RowChecksum()
    start_us = int(day_start(day).timestamp()) * 1_000_000
    ts: Any = batch.column("timestamp")
    since = pc.subtract(ts.cast(pa.int64()), start_us)
    message: Any = batch.column("message")
    return RowChecksum(
        rows=batch.num_rows,
        sum_kafka_offset=_sum(batch.column("kafka_offset")),
        sum_kafka_partition=_sum(batch.column("kafka_partition").cast(pa.int64())),
        sum_timestamp_us=_sum(since),
        sum_message_bytes=_sum(pc.binary_length(message).cast(pa.int64())),
    )


#: The same checksum computed by PostgreSQL over one day; parameters: (day start, day start, next day start).
POSTGRES_CHECKSUM_SQL = """
SELECT count(*),
       coalesce(sum(kafka_offset), 0),
       coalesce(sum(kafka_partition), 0),
       coalesce(sum((extract(epoch FROM "timestamp" - %s::timestamptz) * 1000000)::bigint), 0),
       coalesce(sum(octet_length(message)), 0)
FROM logs
WHERE "timestamp" >= %s::timestamptz AND "timestamp" < %s::timestamptz
"""


def checksum_from_row(row: tuple[Any, ...]) -> RowChecksum:
    return RowChecksum(*(int(v) for v in row))
